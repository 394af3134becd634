// mysql::ServerCodec: the proxy logging in to a MySQL / MariaDB server and framing its responses.
//
// Hand-built packet sequences cover each login flow and each response grammar; recordings of real
// MariaDB 10.11 bytes (tests/golden/mysql/*.txt) are replayed through the codec's S side. Every
// script runs whole, byte by byte and in seeded random splits, and all runs must report the same
// events, which the tests then check.
//
// Fixture files (tools/record-fixture's format, plus `A` lines):
//   # comment lines
//   user: / password: / database:   how the codec logs in
//   client_flags: N                 the login option (else the recorded client's own flags)
//   C <hex>                         a chunk the client sent
//   S <hex>                         a chunk the server sent
//   A reset | A schema <db> | A query <sql>
//                                   the codec's own request (SendReset, SendSetParameters,
//                                   SendInternalQuery); the next C line is that request's bytes
// Replaying: S chunks are fed to the codec; each client packet with sequence id 0 in a C chunk is a
// command, announced with ExpectResponse(its first byte); A lines call the codec.

#include "codecs/mysql/server_codec.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/mysql/auth.h"
#include "codecs/mysql/wire.h"
#include "core/crypto.h"
#include "core/strings.h"
#include "gtest/gtest.h"

namespace wirepool::codec::mysql {
namespace {

namespace fs = std::filesystem;
using namespace ::wirepool::codec::testing;  // NOLINT(build/namespaces): the shared harness

constexpr size_t kMaxInlineBytes = 96;
constexpr int kRandomSplits = 20;
constexpr size_t kProxyMaxWholeMessage = 1 << 20;  // proxy/server_conn.cc

// Capabilities of MariaDB 10.11 (CLIENT_MYSQL clear) and of a MySQL 8 server, as they announce.
constexpr uint32_t kMariaDbCaps = 0x81fff7fe;
constexpr uint32_t kMariaDbExtCaps = 0x1d;
constexpr uint32_t kMySql8Caps = 0xdfffffff;

constexpr char kPassword[] = "s3cret-pw";
constexpr char kScramble[] = "abcdefghijklmnopqrst";  // 20 bytes

// ---------------------------------------------------------------------------------------------
// Bytes

std::string Bytes(std::string_view raw) { return HexOrDigest(raw, kMaxInlineBytes); }

std::string Pkt(uint8_t seq, std::string_view payload) { return FramePacket(payload, seq); }

// ---------------------------------------------------------------------------------------------
// Server packets

std::string Handshake(std::string_view plugin, uint32_t caps = kMariaDbCaps,
                      std::string_view version = "5.5.5-10.11.19-MariaDB-0+deb12u1",
                      uint32_t thread_id = 4711, std::string_view scramble = kScramble) {
  Writer w;
  w.U8(10).NulString(version).U32(thread_id).Bytes(scramble.substr(0, 8)).U8(0);
  w.U16(static_cast<uint16_t>(caps & 0xffff)).U8(45).U16(kStatusAutocommit);
  w.U16(static_cast<uint16_t>(caps >> 16)).U8(static_cast<uint8_t>(scramble.size() + 1));
  w.Bytes(std::string(6, '\0')).U32((caps & kLongPassword) ? 0 : kMariaDbExtCaps);
  w.Bytes(scramble.substr(8)).U8(0).NulString(plugin);
  return Pkt(0, w.payload());
}

std::string Ok(uint16_t status = kStatusAutocommit, std::string session_state = "",
               uint32_t caps = kProtocol41 | kSessionTrack) {
  OkPacket ok;
  ok.status =
      static_cast<uint16_t>(status | (session_state.empty() ? 0 : kStatusSessionStateChanged));
  ok.session_state = std::move(session_state);
  return OkPayload(ok, caps);
}

// An OK in place of an EOF (CLIENT_DEPRECATE_EOF).
std::string OkFe(uint16_t status = kStatusAutocommit) {
  std::string p = Ok(status);
  p[0] = static_cast<char>(0xfe);
  return p;
}

std::string Eof(uint16_t status = kStatusAutocommit) {
  Writer w;
  w.U8(0xfe).U16(0).U16(status);
  return w.payload();
}

std::string Err(uint16_t code, std::string_view message, std::string_view state = "HY000") {
  return ErrPayload(code, state, message);
}

std::string SchemaTrack(std::string_view schema) {
  Writer data;
  data.LenencString(schema);
  Writer w;
  w.U8(1).LenencString(data.payload());
  return w.payload();
}

std::string VariableTrack(std::string_view name, std::string_view value) {
  Writer data;
  data.LenencString(name).LenencString(value);
  Writer w;
  w.U8(0).LenencString(data.payload());
  return w.payload();
}

std::string ColumnCount(uint64_t n) {
  Writer w;
  w.LenencInt(n);
  return w.payload();
}

std::string ColumnDef(std::string_view name) {
  Writer w;
  w.LenencString("def").LenencString("wp_db").LenencString("t").LenencString("t");
  w.LenencString(name).LenencString(name).LenencInt(0x0c).U16(45).U32(80).U8(0xfd).U16(0).U8(0);
  w.U16(0);
  return w.payload();
}

std::string TextRow(std::initializer_list<std::string_view> values) {
  Writer w;
  for (std::string_view v : values) {
    w.LenencString(v);
  }
  return w.payload();
}

std::string PrepareOk(uint32_t id, uint16_t columns, uint16_t params) {
  Writer w;
  w.U8(0).U32(id).U16(columns).U16(params).U8(0).U16(0);
  return w.payload();
}

// Packets `first_seq`, `first_seq`+1, ... of a sequence of payloads.
std::string Packets(uint8_t first_seq, const std::vector<std::string>& payloads) {
  std::string out;
  for (const std::string& p : payloads) {
    out += Pkt(first_seq++, p);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Running a script

struct Action {
  std::string bytes;                       // from the server, when `call` is empty
  std::function<void(ServerCodec&)> call;  // a call from the proxy
  std::string label;
};
using Script = std::vector<Action>;

Action Feed(std::string bytes) { return Action{std::move(bytes), nullptr, ""}; }
Action Call(std::string label, std::function<void(ServerCodec&)> call) {
  return Action{"", std::move(call), std::move(label)};
}
Action Expect(uint8_t command) {
  return Call(Cat("expect ", static_cast<int>(command)),
              [command](ServerCodec& c) { c.ExpectResponse(command); });
}

struct RunOptions {
  size_t redact_sends_over = SIZE_MAX;  // sends longer than this are logged by size only
};

enum class Mode { kWhole, kBytewise, kRandom };

class CodecRun final : public ServerCodecSink {
 public:
  CodecRun(const ServerLogin& login, RunOptions options) : options_(options) {
    codec_ = std::make_unique<ServerCodec>(login, *this);
  }

  ServerCodec& codec() { return *codec_; }
  const std::vector<std::string>& sent() const { return sent_; }
  size_t max_need() const { return max_need_; }
  size_t steps() const { return steps_; }

  void SendToServer(std::string_view bytes) override {
    sent_.emplace_back(bytes);
    Add(bytes.size() > options_.redact_sends_over ? Cat("send ", bytes.size(), " bytes")
                                                  : Cat("send ", Bytes(bytes)));
  }
  void OnLoginComplete() override { Add("login-complete"); }
  void OnLoginFailed(const WireError& e) override {
    Add(Cat("login-failed ", e.code, " fatal=", e.fatal ? 1 : 0, " ", e.message,
            " raw=", Bytes(e.raw)));
  }
  void OnTlsOffer(bool accepted) override { Add(Cat("tls-offer ", accepted ? 1 : 0)); }
  void OnReadyForQuery(TxState state) override {
    Add(state == TxState::kIdle            ? "ready idle"
        : state == TxState::kInTransaction ? "ready trans"
                                           : "ready failed");
  }
  void OnParameterStatus(std::string_view name, std::string_view value) override {
    Add(Cat("param ", name, "=", value));
  }
  void OnInternalDone(const WireError* e) override {
    Add(e == nullptr ? std::string("internal-done ok")
                     : Cat("internal-done ", e->code, " ", e->message, " raw=", Bytes(e->raw)));
  }
  void OnProtocolError(const absl::Status& status) override {
    Add(Cat("protocol-error ", Sv(status.message())));
  }

  void Call(const Action& a) {
    Add(Cat("call ", a.label));
    a.call(*codec_);
  }

  void Feed(std::string_view chunk) {
    if (stopped_) {
      return;
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    buf_.append(chunk);
    while (!stopped_ && pos_ < buf_.size()) {
      size_t avail = buf_.size() - pos_;
      Step s = codec_->OnBytes(AsBytes(std::string_view(buf_).substr(pos_)));
      ++steps_;
      switch (s.verdict) {
        case Verdict::kNeedMore:
          EXPECT_GT(s.bytes, avail) << "kNeedMore must ask for more than is available";
          EXPECT_LE(s.bytes, kProxyMaxWholeMessage) << "more than the proxy holds whole";
          max_need_ = std::max(max_need_, s.bytes);
          return;
        case Verdict::kForward:
        case Verdict::kConsume:
          if (s.bytes == 0 || s.bytes > avail) {
            ADD_FAILURE() << "a Step took " << s.bytes << " of " << avail << " bytes";
            Add("contract violation");
            stopped_ = true;
            return;
          }
          if (s.verdict == Verdict::kForward) {
            FlushConsumed();
            forward_.append(buf_, pos_, s.bytes);
          } else {
            FlushForward();
            consumed_ += s.bytes;
          }
          pos_ += s.bytes;
          break;
        case Verdict::kPause:
          ADD_FAILURE() << "the server codec never pauses";
          return;
        case Verdict::kStop:
          Add("stop");
          stopped_ = true;
          return;
      }
    }
  }

  std::vector<std::string> Finish() {
    // After a stop, what was left depends on how the input was split.
    Add(stopped_ ? std::string("end") : Cat("end buffered=", buf_.size() - pos_));
    return std::move(events_);
  }

  // Everything forwarded, in order.
  const std::string& all_forwarded() const { return all_forwarded_; }

 private:
  void Add(std::string event) {
    FlushForward();
    FlushConsumed();
    events_.push_back(std::move(event));
  }
  void FlushForward() {
    if (!forward_.empty()) {
      all_forwarded_ += forward_;
      events_.push_back(Cat("forward ", Bytes(forward_)));
      forward_.clear();
    }
  }
  void FlushConsumed() {
    if (consumed_ > 0) {
      events_.push_back(Cat("consume ", consumed_));
      consumed_ = 0;
    }
  }

  RunOptions options_;
  std::unique_ptr<ServerCodec> codec_;
  std::vector<std::string> events_;
  std::vector<std::string> sent_;
  std::string buf_;
  size_t pos_ = 0;
  std::string forward_;
  std::string all_forwarded_;
  size_t consumed_ = 0;
  bool stopped_ = false;
  size_t max_need_ = 0;
  size_t steps_ = 0;
};

// Runs `script` one way; `run` (if given) receives the finished CodecRun for further checks.
std::vector<std::string> Execute(const ServerLogin& login, const Script& script, Mode mode,
                                 uint32_t seed, RunOptions options = {},
                                 const std::function<void(CodecRun&)>& inspect = nullptr) {
  CodecRun run(login, options);
  std::mt19937 rng(seed);
  run.codec().Start();
  for (const Action& a : script) {
    if (a.call) {
      run.Call(a);
      continue;
    }
    std::string_view rest = a.bytes;
    while (!rest.empty()) {
      size_t n = rest.size();
      if (mode == Mode::kBytewise) {
        n = 1;
      } else if (mode == Mode::kRandom) {
        // Mostly small pieces, sometimes large ones, so that both header and payload splits occur.
        n = (rng() % 2 == 0) ? 1 + rng() % 8 : 1 + rng() % rest.size();
        n = std::min(n, rest.size());
      }
      run.Feed(rest.substr(0, n));
      rest.remove_prefix(n);
    }
  }
  std::vector<std::string> events = run.Finish();
  if (inspect) {
    inspect(run);
  }
  return events;
}

// Runs `script` whole, byte by byte and in seeded random splits; all must agree.
std::vector<std::string> RunAllWays(const ServerLogin& login, const Script& script,
                                    RunOptions options = {}, bool bytewise = true) {
  std::vector<std::string> whole = Execute(login, script, Mode::kWhole, 0, options);
  if (bytewise) {
    EXPECT_EQ(Join(Execute(login, script, Mode::kBytewise, 0, options)), Join(whole))
        << "byte by byte";
  }
  for (int i = 0; i < kRandomSplits; ++i) {
    EXPECT_EQ(Join(Execute(login, script, Mode::kRandom, kSplitSeed + i, options)), Join(whole))
        << "random split seed " << kSplitSeed + i;
  }
  return whole;
}

ServerLogin Login(std::string database = "wp_db", ParamList options = {}) {
  ServerLogin login;
  login.user = "wp_user";
  login.password = kPassword;
  login.database = std::move(database);
  login.options = std::move(options);
  login.random = [](uint8_t* out, size_t len) { std::fill(out, out + len, 0x42); };
  return login;
}

// The HandshakeResponse41 the codec must send.
std::string ExpectedResponse(uint32_t flags, std::string_view auth, std::string_view plugin,
                             std::string_view database = "wp_db", uint8_t charset = 45,
                             std::string_view user = "wp_user") {
  Writer w;
  w.U32(flags).U32(0x01000000).U8(charset).Bytes(std::string(23, '\0')).NulString(user);
  w.LenencString(auth);
  if (flags & kConnectWithDb) {
    w.NulString(database);
  }
  w.NulString(plugin);
  return Pkt(1, w.payload());
}

// The flags the codec asks a MariaDB server for by default.
constexpr uint32_t kDefaultMariaDbFlags =
    ((ServerCodec::kDefaultClientFlags & kMariaDbCaps) | kProtocol41 | kSecureConnection |
     kPluginAuth | kPluginAuthLenencClientData | kTransactions | kLongPassword | kLongFlag |
     kConnectWithDb);

std::string NativeLoginResponse() {
  return ExpectedResponse(kDefaultMariaDbFlags, NativePasswordResponse(kPassword, kScramble),
                          "mysql_native_password");
}

// A MariaDB login with mysql_native_password, then the script.
Script LoggedIn(Script rest, std::string login_ok = Pkt(2, Ok())) {
  Script s;
  s.push_back(Feed(Handshake("mysql_native_password") + login_ok));
  for (Action& a : rest) {
    s.push_back(std::move(a));
  }
  return s;
}

// The events after login (the first events are checked by the login tests).
std::vector<std::string> After(std::vector<std::string> events, size_t skip) {
  if (events.size() < skip) {
    ADD_FAILURE() << "too few events:\n" << Join(events);
    return {};
  }
  return std::vector<std::string>(events.begin() + static_cast<ptrdiff_t>(skip), events.end());
}

// ---------------------------------------------------------------------------------------------
// Login

TEST(MysqlServerCodecTest, MariaDbNativeLogin) {
  std::string handshake = Handshake("mysql_native_password");
  std::string ok = Pkt(2, Ok(kStatusAutocommit, SchemaTrack("wp_db")));
  auto events = RunAllWays(Login(), {Feed(handshake + ok)});
  EXPECT_EQ(Join(events),
            Join({Cat("send ", Bytes(NativeLoginResponse())), Cat("consume ", handshake.size()),
                  "login-complete", Cat("consume ", ok.size()), "end buffered=0"}));

  Execute(Login(), {Feed(handshake + ok)}, Mode::kWhole, 0, {}, [&](CodecRun& run) {
    ServerCodec& c = run.codec();
    EXPECT_EQ(c.CancelKey(), "4711");
    EXPECT_EQ(c.client_flags(), kDefaultMariaDbFlags);
    EXPECT_TRUE(c.client_flags() & kDeprecateEof);
    EXPECT_FALSE(c.client_flags() & kConnectAttrs);
    ParamList expected = {{"server_version", "5.5.5-10.11.19-MariaDB-0+deb12u1"},
                          {"capabilities", Cat(kMariaDbCaps)},
                          {"mariadb_capabilities", Cat(kMariaDbExtCaps)},
                          {"charset", "45"},
                          {"connection_id", "4711"}};
    EXPECT_EQ(c.Parameters(), expected);
    EXPECT_TRUE(c.ParametersToApply({{"schema", "wp_db"}}).empty());
    EXPECT_EQ(c.ParametersToApply({{"schema", "other"}}), (ParamList{{"schema", "other"}}));
  });
}

TEST(MysqlServerCodecTest, ClientFlagsAndCharsetFromLoginOptions) {
  // The client's own flags, minus what the codec never asks for, plus what it always needs.
  uint32_t client = kLongPassword | kFoundRows | kLongFlag | kConnectWithDb | kLocalFiles |
                    kProtocol41 | kSsl | kCompress | kTransactions | kSecureConnection |
                    kMultiResults | kConnectAttrs | kSessionTrack | kQueryAttributes |
                    kRememberOptions;
  ServerLogin login = Login("", {{"client_flags", Cat(client)}, {"charset", "33"}});
  uint32_t expected = kLongPassword | kFoundRows | kLongFlag | kLocalFiles | kProtocol41 |
                      kTransactions | kSecureConnection | kMultiResults | kSessionTrack |
                      kPluginAuth | kPluginAuthLenencClientData;
  std::string handshake = Handshake("mysql_native_password", kMySql8Caps, "8.0.36", 9);
  auto events = RunAllWays(login, {Feed(handshake)});
  std::string response = ExpectedResponse(expected, NativePasswordResponse(kPassword, kScramble),
                                          "mysql_native_password", "", 33);
  EXPECT_EQ(Join(events), Join({Cat("send ", Bytes(response)), Cat("consume ", handshake.size()),
                                "end buffered=0"}));
  Execute(login, {Feed(handshake)}, Mode::kWhole, 0, {}, [&](CodecRun& run) {
    EXPECT_EQ(run.codec().client_flags(), expected);
    // A MySQL server (CLIENT_MYSQL set) has no MariaDB capabilities.
    for (const auto& [name, value] : run.codec().Parameters()) {
      EXPECT_NE(name, "mariadb_capabilities");
    }
  });
}

TEST(MysqlServerCodecTest, Ed25519AfterAuthSwitch) {
  std::string scramble32 = "0123456789abcdefghijklmnopqrstuv";
  Writer sw;
  sw.U8(0xfe).NulString("client_ed25519").Bytes(scramble32);
  std::string handshake = Handshake("mysql_native_password");
  std::string rest = Pkt(2, sw.payload()) + Pkt(4, Ok());
  auto events = RunAllWays(Login(), {Feed(handshake), Feed(rest)});
  absl::StatusOr<std::string> signature = Ed25519Response(kPassword, scramble32);
  ASSERT_TRUE(signature.ok());
  ASSERT_EQ(signature->size(), 64u);
  EXPECT_EQ(Join(events),
            Join({Cat("send ", Bytes(NativeLoginResponse())), Cat("consume ", handshake.size()),
                  Cat("send ", Bytes(Pkt(3, *signature))), Cat("consume ", 4 + sw.payload().size()),
                  "login-complete", Cat("consume ", Pkt(2, Ok()).size()), "end buffered=0"}));
}

TEST(MysqlServerCodecTest, Ed25519NonceEndingInZeroIsSignedWhole) {
  std::string scramble32 = "0123456789abcdefghijklmnopqrstu";
  scramble32.push_back('\0');  // random nonces do this once in 256 logins
  Writer sw;
  sw.U8(0xfe).NulString("client_ed25519").Bytes(scramble32);
  std::string handshake = Handshake("mysql_native_password");
  auto events = RunAllWays(Login(), {Feed(handshake), Feed(Pkt(2, sw.payload()) + Pkt(4, Ok()))});
  absl::StatusOr<std::string> signature = Ed25519Response(kPassword, scramble32);
  ASSERT_TRUE(signature.ok());
  EXPECT_EQ(events[2], Cat("send ", Bytes(Pkt(3, *signature))));
  EXPECT_EQ(events[4], "login-complete");
}

TEST(MysqlServerCodecTest, AuthSwitchStripsTrailingNulAndAnswersNative) {
  std::string scramble2 = "ABCDEFGHIJKLMNOPQRST";
  Writer sw;
  sw.U8(0xfe).NulString("mysql_native_password").Bytes(scramble2).U8(0);
  auto events = RunAllWays(
      Login(), {Feed(Handshake("client_ed25519") + Pkt(2, sw.payload()) + Pkt(4, Ok()))});
  // A handshake naming ed25519 is answered with ed25519 (it is supported).
  absl::StatusOr<std::string> first = Ed25519Response(kPassword, kScramble);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(events[0],
            Cat("send ", Bytes(ExpectedResponse(kDefaultMariaDbFlags, *first, "client_ed25519"))));
  EXPECT_EQ(events[2], Cat("send ", Bytes(Pkt(3, NativePasswordResponse(kPassword, scramble2)))));
  EXPECT_EQ(events[4], "login-complete");
}

TEST(MysqlServerCodecTest, CachingSha2FastPath) {
  std::string handshake = Handshake("caching_sha2_password", kMySql8Caps, "8.0.36");
  std::string rest = Pkt(2, std::string("\x01\x03", 2)) + Pkt(3, Ok());
  auto events = RunAllWays(Login(), {Feed(handshake + rest)});
  uint32_t flags = (ServerCodec::kDefaultClientFlags & kMySql8Caps) | kConnectWithDb;
  EXPECT_EQ(
      Join(events),
      Join({Cat("send ", Bytes(ExpectedResponse(flags, CachingSha2Response(kPassword, kScramble),
                                                "caching_sha2_password"))),
            Cat("consume ", handshake.size() + 6), "login-complete",
            Cat("consume ", Pkt(2, Ok()).size()), "end buffered=0"}));
}

const RsaKeyPair& TestKeys() {
  static const RsaKeyPair* keys = [] {
    absl::StatusOr<RsaKeyPair> k = RsaKeyPair::Generate(2048);
    EXPECT_TRUE(k.ok());
    return new RsaKeyPair(*std::move(k));
  }();
  return *keys;
}

TEST(MysqlServerCodecTest, CachingSha2FullAuthWithServerKey) {
  const RsaKeyPair& keys = TestKeys();
  std::string handshake = Handshake("caching_sha2_password", kMySql8Caps, "8.0.36");
  std::string more = Pkt(2, std::string("\x01\x04", 2));
  std::string key = Pkt(4, Cat("\x01", keys.public_pem()));
  std::string ok = Pkt(6, Ok());
  RunOptions options;
  options.redact_sends_over = 200;  // the OAEP ciphertext differs on every run
  auto events = RunAllWays(Login(), {Feed(handshake + more + key + ok)}, options);
  EXPECT_EQ(events[2], Cat("send ", Bytes(Pkt(3, "\x02"))));
  EXPECT_EQ(events[4], "send 260 bytes");
  EXPECT_EQ(events[6], "login-complete");
  Execute(Login(), {Feed(handshake + more + key + ok)}, Mode::kWhole, 0, {}, [&](CodecRun& run) {
    ASSERT_EQ(run.sent().size(), 3u);
    const std::string& encrypted = run.sent()[2];
    ASSERT_EQ(static_cast<uint8_t>(encrypted[3]), 5);  // sequence id
    EXPECT_TRUE(VerifyCachingSha2Full(keys, kPassword, kScramble, encrypted.substr(4)));
  });
}

TEST(MysqlServerCodecTest, ClearPasswordAfterAuthSwitch) {
  Writer sw;
  sw.U8(0xfe).NulString("mysql_clear_password");
  auto events = RunAllWays(
      Login(), {Feed(Handshake("mysql_native_password") + Pkt(2, sw.payload()) + Pkt(4, Ok()))});
  EXPECT_EQ(events[2], Cat("send ", Bytes(Pkt(3, Cat(kPassword, '\0')))));
  EXPECT_EQ(events[4], "login-complete");
}

TEST(MysqlServerCodecTest, UnsupportedPluginFailsLogin) {
  Writer sw;
  sw.U8(0xfe).NulString("auth_gssapi_client").Bytes("principal");
  auto events = RunAllWays(
      Login(), {Feed(Handshake("mysql_native_password") + Pkt(2, sw.payload()) + Pkt(4, Ok()))});
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events[3], "stop");
  // The synthesized error is a real ERR packet with ER_NOT_SUPPORTED_AUTH_MODE.
  struct Capture final : ServerCodecSink {
    void SendToServer(std::string_view) override {}
    void OnLoginComplete() override {}
    void OnLoginFailed(const WireError& e) override { error = e; }
    void OnReadyForQuery(TxState) override {}
    void OnParameterStatus(std::string_view, std::string_view) override {}
    void OnInternalDone(const WireError*) override {}
    void OnProtocolError(const absl::Status&) override {}
    WireError error;
  } sink;
  ServerCodec codec(Login(), sink);
  codec.Start();
  std::string bytes = Handshake("mysql_native_password");
  ASSERT_EQ(codec.OnBytes(AsBytes(bytes)).verdict, Verdict::kConsume);
  bytes = Pkt(2, sw.payload());
  EXPECT_EQ(codec.OnBytes(AsBytes(bytes)).verdict, Verdict::kStop);
  EXPECT_EQ(sink.error.code, "1251");
  EXPECT_TRUE(sink.error.fatal);
  EXPECT_NE(sink.error.message.find("auth_gssapi_client"), std::string::npos);
  auto header = ReadHeader(AsBytes(sink.error.raw));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->length + kHeaderLen, sink.error.raw.size());
  auto err = ParseErr(AsBytes(sink.error.raw).subspan(kHeaderLen));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, 1251);
  EXPECT_EQ(err->message, sink.error.message);
  // Nothing more is read.
  EXPECT_EQ(codec.OnBytes(AsBytes(Pkt(4, Ok()))).verdict, Verdict::kStop);
}

TEST(MysqlServerCodecTest, UnknownHandshakePluginFallsBackToNative) {
  auto events = RunAllWays(Login(), {Feed(Handshake("dialog") + Pkt(2, Ok()))});
  EXPECT_EQ(events[0], Cat("send ", Bytes(NativeLoginResponse())));
  EXPECT_EQ(events[2], "login-complete");
}

TEST(MysqlServerCodecTest, ErrInsteadOfHandshake) {
  // MySQL refuses a connection over max_connections before any handshake.
  std::string err = Pkt(0, Cat("\xff", std::string("\x10\x04", 2), "Too many connections"));
  auto events = RunAllWays(Login(), {Feed(err)});
  EXPECT_EQ(Join(events),
            Join({Cat("login-failed 1040 fatal=1 Too many connections raw=", Bytes(err)), "stop",
                  "end"}));
}

TEST(MysqlServerCodecTest, AccessDeniedAfterResponse) {
  std::string err = Pkt(2, Err(1045, "Access denied for user 'wp_user'@'localhost'", "28000"));
  auto events = RunAllWays(Login(), {Feed(Handshake("mysql_native_password") + err)});
  EXPECT_EQ(events[2], Cat("login-failed 1045 fatal=1 Access denied for user "
                           "'wp_user'@'localhost' raw=",
                           Bytes(err)));
  EXPECT_EQ(events[3], "stop");
}

// ---------------------------------------------------------------------------------------------
// TLS (ServerLogin::tls): after the greeting the codec sends the SSL request where the server
// offers CLIENT_SSL, says whether it did (OnTlsOffer), and waits for ContinueLogin, which sends the
// HandshakeResponse41.

ServerLogin TlsLogin() {
  ServerLogin login = Login();
  login.tls = true;
  return login;
}

Action Continue(bool encrypted) {
  return Call(Cat("continue ", encrypted ? "encrypted" : "plain"),
              [encrypted](ServerCodec& c) { c.ContinueLogin(encrypted); });
}

// The flags the codec asks a MySQL 8 server for by default.
constexpr uint32_t kDefaultMySql8Flags =
    (ServerCodec::kDefaultClientFlags & kMySql8Caps) | kConnectWithDb;

// The SSL request: the fixed head of a HandshakeResponse41, sequence id 1.
std::string ExpectedSslRequest(uint32_t flags) {
  Writer w;
  w.U32(flags).U32(0x01000000).U8(45).Bytes(std::string(23, '\0'));
  return Pkt(1, w.payload());
}

std::string Reframe(uint8_t seq, std::string_view packet) { return Pkt(seq, packet.substr(4)); }

TEST(MysqlServerTlsTest, SslRequestThenResponseThroughTls) {
  ASSERT_NE(kMySql8Caps & kSsl, 0u);
  std::string handshake = Handshake("mysql_native_password", kMySql8Caps, "8.0.36");
  std::string ok = Pkt(3, Ok());
  Script script = {Feed(handshake), Continue(true), Feed(ok)};
  auto events = RunAllWays(TlsLogin(), script);
  const uint32_t flags = kDefaultMySql8Flags | kSsl;
  std::string response =
      Reframe(2, ExpectedResponse(flags, NativePasswordResponse(kPassword, kScramble),
                                  "mysql_native_password"));
  EXPECT_EQ(Join(events), Join({Cat("send ", Bytes(ExpectedSslRequest(flags))), "tls-offer 1",
                                Cat("consume ", handshake.size()), "call continue encrypted",
                                Cat("send ", Bytes(response)), "login-complete",
                                Cat("consume ", ok.size()), "end buffered=0"}));
  Execute(TlsLogin(), script, Mode::kWhole, 0, {}, [&](CodecRun& run) {
    EXPECT_NE(run.codec().client_flags() & kSsl, 0u);
    ASSERT_EQ(run.sent().size(), 2u);
    EXPECT_EQ(run.sent()[0].size(), 4u + 32u);
  });
}

TEST(MysqlServerTlsTest, NoSslInTheGreetingWaitsForContinueLogin) {
  ASSERT_EQ(kMariaDbCaps & kSsl, 0u);
  std::string handshake = Handshake("mysql_native_password");
  std::string ok = Pkt(2, Ok());
  auto events = RunAllWays(TlsLogin(), {Feed(handshake), Continue(false), Feed(ok)});
  EXPECT_EQ(Join(events), Join({"tls-offer 0", Cat("consume ", handshake.size()),
                                "call continue plain", Cat("send ", Bytes(NativeLoginResponse())),
                                "login-complete", Cat("consume ", ok.size()), "end buffered=0"}));
  const std::string response = NativeLoginResponse();
  EXPECT_EQ(response[3], 1) << "sequence id 1, as without TLS";
  Reader r(AsBytes(response).subspan(4));
  EXPECT_EQ(r.U32().value_or(kSsl) & kSsl, 0u) << "no CLIENT_SSL";
}

// Whatever the server sends before the TLS handshake did not come through it.
TEST(MysqlServerTlsTest, ServerBytesBeforeContinueLoginFailTheLogin) {
  for (uint32_t caps : {kMySql8Caps, kMariaDbCaps}) {
    SCOPED_TRACE(caps);
    std::string handshake = Handshake("mysql_native_password", caps);
    auto events = RunAllWays(TlsLogin(), {Feed(handshake + Pkt(2, Ok()))});
    ASSERT_GE(events.size(), 4u) << Join(events);
    EXPECT_EQ(events[events.size() - 2], "stop");
    EXPECT_EQ(events[events.size() - 3].rfind(
                  "login-failed 1156 fatal=1 wirepool could not log in to the server: the server "
                  "sent unencrypted data before the TLS handshake",
                  0),
              0u)
        << Join(events);
    EXPECT_EQ(events[events.size() - 4], Cat("consume ", handshake.size())) << Join(events);
  }
}

// Inside TLS the caching_sha2 password goes as it is, NUL-terminated, with no key request.
TEST(MysqlServerTlsTest, CachingSha2FullAuthInCleartextInsideTls) {
  std::string handshake = Handshake("caching_sha2_password", kMySql8Caps, "8.0.36");
  std::string more = Pkt(3, std::string("\x01\x04", 2));
  std::string ok = Pkt(5, Ok());
  auto events = RunAllWays(TlsLogin(), {Feed(handshake), Continue(true), Feed(more + ok)});
  const uint32_t flags = kDefaultMySql8Flags | kSsl;
  std::string response = Reframe(
      2,
      ExpectedResponse(flags, CachingSha2Response(kPassword, kScramble), "caching_sha2_password"));
  EXPECT_EQ(Join(events),
            Join({Cat("send ", Bytes(ExpectedSslRequest(flags))), "tls-offer 1",
                  Cat("consume ", handshake.size()), "call continue encrypted",
                  Cat("send ", Bytes(response)), Cat("send ", Bytes(Pkt(4, Cat(kPassword, '\0')))),
                  Cat("consume ", more.size()), "login-complete", Cat("consume ", ok.size()),
                  "end buffered=0"}));
}

// A server without TLS: the password still travels under its RSA key.
TEST(MysqlServerTlsTest, CachingSha2WithoutTlsStillAsksForTheKey) {
  const RsaKeyPair& keys = TestKeys();
  const uint32_t caps = kMySql8Caps & ~uint32_t{kSsl};
  std::string handshake = Handshake("caching_sha2_password", caps, "8.0.36");
  std::string more = Pkt(2, std::string("\x01\x04", 2));
  std::string key = Pkt(4, Cat("\x01", keys.public_pem()));
  std::string ok = Pkt(6, Ok());
  RunOptions options;
  options.redact_sends_over = 200;  // the OAEP ciphertext differs on every run
  auto events =
      RunAllWays(TlsLogin(), {Feed(handshake), Continue(false), Feed(more + key + ok)}, options);
  ASSERT_GE(events.size(), 8u) << Join(events);
  EXPECT_EQ(events[0], "tls-offer 0");
  EXPECT_EQ(events[2], "call continue plain");
  EXPECT_EQ(events[4], Cat("send ", Bytes(Pkt(3, "\x02"))));
  EXPECT_EQ(events[6], "send 260 bytes");
  EXPECT_EQ(events[8], "login-complete");
}

// ContinueLogin means something only while the codec waits for it.
TEST(MysqlServerTlsTest, ContinueLoginOutOfTurnIsIgnored) {
  std::string handshake = Handshake("mysql_native_password");
  auto events =
      RunAllWays(Login(), {Continue(true), Feed(handshake), Continue(true), Feed(Pkt(2, Ok()))});
  EXPECT_EQ(Join(events),
            Join({"call continue encrypted", Cat("send ", Bytes(NativeLoginResponse())),
                  Cat("consume ", handshake.size()), "call continue encrypted", "login-complete",
                  Cat("consume ", Pkt(2, Ok()).size()), "end buffered=0"}));
}

TEST(MysqlServerCodecTest, BadHandshakesFailLogin) {
  Writer v9;
  v9.U8(9).NulString("3.23").U32(1);
  Writer truncated;
  truncated.U8(10).NulString("5.7").U32(1).Bytes("12345678").U8(0).U16(0xffff);
  Writer no41;
  no41.U8(10).NulString("4.0").U32(1).Bytes("12345678").U8(0).U16(kSecureConnection).U8(8);
  no41.U16(2).U16(0).U8(21).Bytes(std::string(10, '\0')).Bytes("123456789012").U8(0);
  std::string good = Handshake("mysql_native_password");
  std::string wrong_seq = good;
  wrong_seq[3] = 1;
  std::string lying = std::string("\xff\xff\xff\x00", 4) + "garbage";
  for (const std::string& bytes :
       {Pkt(0, v9.payload()), Pkt(0, truncated.payload()), Pkt(0, no41.payload()), wrong_seq, lying,
        Pkt(0, ""), good + Pkt(3, Ok()), good + Pkt(2, "\x07junk")}) {
    SCOPED_TRACE(Hex(bytes.substr(0, 40)));
    auto events = RunAllWays(Login(), {Feed(bytes)});
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events[events.size() - 2], "stop");
    EXPECT_EQ(events[events.size() - 3].rfind("login-failed ", 0), 0u) << Join(events);
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

// The events a response gives: its packets but the last forwarded, then the verdict (the codec
// reports it in the step that passes the last packet), then the last packet.
class Expected {
 public:
  Expected& Add(std::string event) {
    events_.push_back(std::move(event));
    return *this;
  }
  Expected& Answer(std::string_view ready, std::string_view response) {
    std::string rest(response);
    std::vector<std::string> packets;
    while (rest.size() >= kHeaderLen) {
      size_t len = static_cast<uint8_t>(rest[0]) | (static_cast<uint8_t>(rest[1]) << 8) |
                   (static_cast<uint8_t>(rest[2]) << 16);
      packets.push_back(rest.substr(0, kHeaderLen + len));
      rest.erase(0, kHeaderLen + len);
    }
    std::string head;
    for (size_t i = 0; i + 1 < packets.size(); ++i) {
      head += packets[i];
    }
    if (!head.empty()) {
      Forward(head);
    }
    Add(Cat("ready ", ready));
    return Forward(packets.empty() ? std::string() : packets.back());
  }
  Expected& Forward(std::string_view bytes) {
    // Coalesced with a forward just before, as the event log does.
    if (!events_.empty() && events_.back().rfind("forward ", 0) == 0) {
      pending_ += bytes;
      events_.back() = Cat("forward ", Bytes(pending_));
    } else {
      pending_ = std::string(bytes);
      events_.push_back(Cat("forward ", Bytes(pending_)));
    }
    return *this;
  }
  std::string Text() const { return Join(events_) + "end buffered=0\n"; }

 private:
  std::vector<std::string> events_;
  std::string pending_;
};

ServerLogin EofLogin() {
  return Login("wp_db", {{"client_flags",
                          Cat(ServerCodec::kDefaultClientFlags & ~uint32_t{kDeprecateEof})}});
}

TEST(MysqlServerCodecTest, TextResultSetWithDeprecateEof) {
  std::string response = Packets(1, {ColumnCount(2), ColumnDef("n"), ColumnDef("label"),
                                     TextRow({"1", "row 1"}), TextRow({"2", "row 2"}), OkFe()});
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(response)}));
  EXPECT_EQ(Join(After(events, 4)),
            Expected().Add("call expect 3").Answer("idle", response).Text());
}

TEST(MysqlServerCodecTest, TextResultSetWithEofPackets) {
  // A client without CLIENT_DEPRECATE_EOF: EOF after the definitions and after the rows.
  std::string begin = Pkt(1, Ok(kStatusAutocommit | kStatusInTrans));
  std::string response =
      Packets(1, {ColumnCount(1), ColumnDef("n"), Eof(kStatusInTrans), TextRow({"1"}),
                  TextRow({"\xfe\x01"}), Eof(kStatusInTrans | kStatusAutocommit)});
  std::string commit = Pkt(1, Ok());
  auto events = RunAllWays(EofLogin(), LoggedIn({Expect(kComQuery), Feed(begin), Expect(kComQuery),
                                                 Feed(response), Expect(kComQuery), Feed(commit)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 3")
                                        .Answer("trans", begin)
                                        .Add("call expect 3")
                                        .Answer("trans", response)
                                        .Add("call expect 3")
                                        .Answer("idle", commit)
                                        .Text());
}

TEST(MysqlServerCodecTest, MultiResults) {
  std::string response =
      Packets(1, {ColumnCount(1), ColumnDef("a"), TextRow({"1"}),
                  OkFe(kStatusAutocommit | kStatusMoreResultsExist), Ok(kStatusMoreResultsExist),
                  ColumnCount(1), ColumnDef("b"), OkFe(kStatusMoreResultsExist | kStatusInTrans),
                  Ok(kStatusInTrans)});
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(response)}));
  EXPECT_EQ(Join(After(events, 4)),
            Expected().Add("call expect 3").Answer("trans", response).Text());
  // An ERR ends the response, whatever came before; it has no status, so the last one stands.
  std::string failing =
      Packets(1, {Ok(kStatusMoreResultsExist | kStatusInTrans), Err(1064, "error", "42000")});
  events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(failing)}));
  EXPECT_EQ(Join(After(events, 4)),
            Expected().Add("call expect 3").Answer("trans", failing).Text());
}

TEST(MysqlServerCodecTest, LocalInfileFromTheClient) {
  // The client's data packets move the sequence ids on; the server's answer continues from there.
  std::string request = Pkt(1, "\xfb/tmp/data.csv");
  // MariaDB's progress report (as recorded from MariaDB 10.11), then the answer.
  std::string progress =
      Pkt(6, std::string("\xff\xff\xff\x01\x02\x02\x00\x00\x00\x0f", 10) + "End bulk insert");
  std::string answer = progress + Pkt(7, Ok(kStatusAutocommit | kStatusMoreResultsExist));
  std::string next = Packets(8, {ColumnCount(1), ColumnDef("c"), TextRow({"20"}), OkFe()});
  auto events =
      RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(request), Feed(answer + next)}));
  EXPECT_EQ(Join(After(events, 4)),
            Expected().Add("call expect 3").Answer("idle", request + answer + next).Text());
}

TEST(MysqlServerCodecTest, PrepareAndExecute) {
  std::string prepare =
      Packets(1, {PrepareOk(7, 2, 1), ColumnDef("?"), ColumnDef("id"), ColumnDef("v")});
  std::string prepare_none = Pkt(1, PrepareOk(8, 0, 0));
  std::string prepare_params = Packets(1, {PrepareOk(9, 0, 2), ColumnDef("?"), ColumnDef("?")});
  std::string execute = Packets(1, {ColumnCount(2), ColumnDef("id"), ColumnDef("v"),
                                    std::string("\x00\x00\x03\x00\x00\x00\x05three", 12),
                                    std::string("\x00\x08\x05\x00\x00\x00", 6), OkFe()});
  std::string execute_ok = Pkt(1, Ok());
  std::string prepare_err = Pkt(1, Err(1054, "Unknown column 'x'", "42S22"));
  auto events = RunAllWays(
      Login(),
      LoggedIn({Expect(kComStmtPrepare), Feed(prepare), Expect(kComStmtPrepare), Feed(prepare_none),
                Expect(kComStmtPrepare), Feed(prepare_params), Expect(kComStmtExecute),
                Feed(execute), Expect(kComStmtExecute), Feed(execute_ok), Expect(kComStmtClose),
                Expect(kComStmtSendLongData), Expect(kComStmtPrepare), Feed(prepare_err)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 22")
                                        .Answer("idle", prepare)
                                        .Add("call expect 22")
                                        .Answer("idle", prepare_none)
                                        .Add("call expect 22")
                                        .Answer("idle", prepare_params)
                                        .Add("call expect 23")
                                        .Answer("idle", execute)
                                        .Add("call expect 23")
                                        .Answer("idle", execute_ok)
                                        .Add("call expect 25")
                                        .Add("call expect 24")
                                        .Add("call expect 22")
                                        .Answer("idle", prepare_err)
                                        .Text());
}

TEST(MysqlServerCodecTest, PrepareWithEofPackets) {
  std::string both = Packets(
      1, {PrepareOk(1, 1, 2), ColumnDef("?"), ColumnDef("?"), Eof(), ColumnDef("x"), Eof()});
  std::string params_only = Packets(1, {PrepareOk(2, 0, 1), ColumnDef("?"), Eof()});
  std::string columns_only = Packets(1, {PrepareOk(3, 1, 0), ColumnDef("x"), Eof()});
  auto events = RunAllWays(
      EofLogin(), LoggedIn({Expect(kComStmtPrepare), Feed(both), Expect(kComStmtPrepare),
                            Feed(params_only), Expect(kComStmtPrepare), Feed(columns_only)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 22")
                                        .Answer("idle", both)
                                        .Add("call expect 22")
                                        .Answer("idle", params_only)
                                        .Add("call expect 22")
                                        .Answer("idle", columns_only)
                                        .Text());
}

TEST(MysqlServerCodecTest, CursorAndFetch) {
  // MariaDB ends an execute that opened a cursor after the definitions, with CURSOR_EXISTS: with
  // CLIENT_DEPRECATE_EOF as an OK-0xfe, without it as an EOF (both recorded from MariaDB 10.11).
  uint16_t cursor = kStatusAutocommit | kStatusCursorExists;
  std::string row = std::string("\x00\x00\x02\x00\x00\x00", 6);
  std::string execute = Packets(1, {ColumnCount(1), ColumnDef("id"), OkFe(cursor)});
  std::string fetch1 = Packets(1, {row, OkFe(cursor)});
  std::string fetch2 = Packets(1, {OkFe(cursor | kStatusLastRowSent)});
  auto events =
      RunAllWays(Login(), LoggedIn({Expect(kComStmtExecute), Feed(execute), Expect(kComStmtFetch),
                                    Feed(fetch1), Expect(kComStmtFetch), Feed(fetch2)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 23")
                                        .Answer("idle", execute)
                                        .Add("call expect 28")
                                        .Answer("idle", fetch1)
                                        .Add("call expect 28")
                                        .Answer("idle", fetch2)
                                        .Text());

  execute = Packets(1, {ColumnCount(1), ColumnDef("id"), Eof(cursor)});
  fetch1 = Packets(1, {row, Eof(cursor)});
  events = RunAllWays(EofLogin(), LoggedIn({Expect(kComStmtExecute), Feed(execute),
                                            Expect(kComStmtFetch), Feed(fetch1)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 23")
                                        .Answer("idle", execute)
                                        .Add("call expect 28")
                                        .Answer("idle", fetch1)
                                        .Text());
}

TEST(MysqlServerCodecTest, OtherCommands) {
  std::string field_list = Packets(1, {ColumnDef("id"), ColumnDef("v"), OkFe()});
  std::string statistics = Pkt(1, "Uptime: 5  Threads: 1  Questions: 3");
  std::string empty_statistics = Pkt(1, "");
  std::string ping = Pkt(1, Ok());
  std::string set_option = Pkt(1, Eof());
  std::string init_db = Pkt(1, Err(1049, "Unknown database 'x'", "42000"));
  auto events = RunAllWays(
      Login(), LoggedIn({Expect(kComFieldList), Feed(field_list), Expect(kComStatistics),
                         Feed(statistics), Expect(kComStatistics), Feed(empty_statistics),
                         Expect(kComPing), Feed(ping), Expect(kComSetOption), Feed(set_option),
                         Expect(kComInitDb), Feed(init_db), Expect(kComQuit)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 4")
                                        .Answer("idle", field_list)
                                        .Add("call expect 9")
                                        .Answer("idle", statistics)
                                        .Add("call expect 9")
                                        .Answer("idle", empty_statistics)
                                        .Add("call expect 14")
                                        .Answer("idle", ping)
                                        .Add("call expect 27")
                                        .Answer("idle", set_option)
                                        .Add("call expect 2")
                                        .Answer("idle", init_db)
                                        .Add("call expect 1")
                                        .Text());
}

TEST(MysqlServerCodecTest, PipelinedResponses) {
  std::string first = Pkt(1, Ok(kStatusInTrans));
  std::string second = Packets(1, {ColumnCount(1), ColumnDef("a"), TextRow({"1"}), OkFe()});
  auto events =
      RunAllWays(Login(), LoggedIn({Expect(kComQuery), Expect(kComQuery), Feed(first + second)}));
  EXPECT_EQ(Join(After(events, 4)), Expected()
                                        .Add("call expect 3")
                                        .Add("call expect 3")
                                        .Answer("trans", first)
                                        .Answer("idle", second)
                                        .Text());
}

TEST(MysqlServerCodecTest, SessionTrackingReportsVariables) {
  std::string ok = Pkt(1, Ok(kStatusAutocommit, VariableTrack("time_zone", "+02:00")));
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(ok)}));
  EXPECT_EQ(
      Join(After(events, 4)),
      Expected().Add("call expect 3").Add("param time_zone=+02:00").Answer("idle", ok).Text());
}

// Bigger than one physical packet: forwarded in pieces, never asked for whole.
TEST(MysqlServerCodecTest, BigRowsForwardedInPieces) {
  std::string row = TextRow({std::string(17 << 20, 'x'), "2"});
  ASSERT_EQ(static_cast<uint8_t>(row[0]), 0xfe);  // an 8-byte length: not an EOF
  // A row payload of exactly 0xffffff bytes: an empty packet follows it.
  std::string exact_row = TextRow({std::string(kMaxPayload - 5, 'y'), ""});
  ASSERT_EQ(exact_row.size(), kMaxPayload);
  std::string head = Pkt(1, ColumnCount(2)) + Pkt(2, ColumnDef("big")) +
                     Pkt(3, ColumnDef("small")) + FramePacket(row, 4);
  uint8_t seq = static_cast<uint8_t>(4 + row.size() / kMaxPayload + 1);
  std::string framed_exact = FramePacket(exact_row, seq);
  ASSERT_EQ(framed_exact.size(), kMaxPayload + 2 * kHeaderLen);
  std::string last = Pkt(static_cast<uint8_t>(seq + 2), OkFe());
  std::string response = head + framed_exact + last;
  Script script = LoggedIn({Expect(kComQuery)});
  for (size_t i = 0; i < response.size(); i += 65536) {
    script.push_back(Feed(response.substr(i, 65536)));
  }
  auto events = RunAllWays(Login(), script, {}, /*bytewise=*/false);
  EXPECT_EQ(
      Join(After(events, 4)),
      Expected().Add("call expect 3").Forward(head + framed_exact).Answer("idle", last).Text());
  Execute(Login(), script, Mode::kWhole, 0, {}, [&](CodecRun& run) {
    EXPECT_LE(run.max_need(), 16u) << "only headers and short packets are asked for whole";
    EXPECT_GT(run.steps(), response.size() / 65536);
    EXPECT_EQ(run.all_forwarded(), response);
  });
}

TEST(MysqlServerCodecTest, WholeRowsPassInOneStep) {
  std::vector<std::string> packets = {ColumnCount(1), ColumnDef("n")};
  for (int i = 0; i < 100; ++i) {
    packets.push_back(TextRow({Cat("row ", i)}));
  }
  packets.push_back(OkFe());
  std::string response = Packets(1, packets);
  // Fed whole, in pieces and byte by byte: the same bytes reach the client, and the end of the
  // response is heard with its last packet.
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(response)}));
  EXPECT_EQ(Join(After(events, 4)),
            Expected().Add("call expect 3").Answer("idle", response).Text());
  size_t login_steps = 0;
  Execute(Login(), LoggedIn({}), Mode::kWhole, 0, {},
          [&](CodecRun& run) { login_steps = run.steps(); });
  Execute(Login(), LoggedIn({Expect(kComQuery), Feed(response)}), Mode::kWhole, 0, {},
          [&](CodecRun& run) {
            EXPECT_EQ(run.all_forwarded(), response);
            // The count, the definition, the 100 rows, the OK.
            EXPECT_EQ(run.steps() - login_steps, 4u);
          });
}

TEST(MysqlServerCodecTest, RowOutOfSequenceInARunIsAProtocolError) {
  std::string head = Packets(1, {ColumnCount(1), ColumnDef("n"), TextRow({"1"}), TextRow({"2"})});
  std::string bad = Pkt(9, TextRow({"3"}));  // 5 expected
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComQuery), Feed(head + bad)}));
  EXPECT_NE(Join(events).find("protocol-error the server sent sequence id 9, expected 5"),
            std::string::npos)
      << Join(events);
}

TEST(MysqlServerCodecTest, OversizedOkIsAProtocolError) {
  OkPacket ok;
  ok.info = std::string(2 << 20, 'i');
  std::string big = Pkt(1, OkPayload(ok, kProtocol41));
  auto events = RunAllWays(Login(), LoggedIn({Expect(kComPing), Feed(big)}));
  ASSERT_EQ(events.size(), 8u) << Join(events);
  EXPECT_EQ(events[5].rfind("protocol-error ", 0), 0u) << Join(events);
  EXPECT_EQ(events[6], "stop");
}

// ---------------------------------------------------------------------------------------------
// The codec's own requests

TEST(MysqlServerCodecTest, InternalRequestsAreConsumed) {
  std::string reset_ok = Pkt(1, Ok());
  std::string init_ok = Pkt(1, Ok(kStatusAutocommit, SchemaTrack("other")));
  std::string query = Packets(1, {ColumnCount(1), ColumnDef("a"), TextRow({"1"}), OkFe()});
  std::string query_err = Pkt(1, Err(1064, "syntax", "42000"));
  auto events = RunAllWays(
      Login(),
      LoggedIn({Call("reset", [](ServerCodec& c) { c.SendReset(); }), Feed(reset_ok),
                Call("set",
                     [](ServerCodec& c) {
                       EXPECT_TRUE(c.ParametersToApply({{"schema", "wp_db"}}).empty());
                       ParamList diff = c.ParametersToApply({{"schema", "other"}});
                       EXPECT_EQ(diff, (ParamList{{"schema", "other"}}));
                       c.SendSetParameters(diff);
                     }),
                Feed(init_ok),
                Call("check",
                     [](ServerCodec& c) {
                       EXPECT_TRUE(c.ParametersToApply({{"schema", "other"}}).empty());
                     }),
                Call("query", [](ServerCodec& c) { c.SendInternalQuery("SELECT 1"); }), Feed(query),
                Call("bad", [](ServerCodec& c) { c.SendInternalQuery("SELEC"); }),
                Feed(query_err)}));
  size_t query_head = query.size() - Pkt(4, OkFe()).size();
  EXPECT_EQ(
      Join(After(events, 4)),
      Join({"call reset", Cat("send ", Bytes(Pkt(0, "\x1f"))), "internal-done ok",
            Cat("consume ", reset_ok.size()), "call set", Cat("send ", Bytes(Pkt(0, "\x02other"))),
            "internal-done ok", Cat("consume ", init_ok.size()), "call check", "call query",
            Cat("send ", Bytes(Pkt(0, "\x03SELECT 1"))), Cat("consume ", query_head),
            "internal-done ok", Cat("consume ", query.size() - query_head), "call bad",
            Cat("send ", Bytes(Pkt(0, "\x03SELEC"))),
            Cat("internal-done 1064 syntax raw=", Bytes(query_err)),
            Cat("consume ", query_err.size()), "end buffered=0"}));
}

// The COM_CHANGE_USER the codec resets with: the backend user, answered against the handshake's
// scramble, back to the login's database and character set.
std::string ChangeUserPacket(std::string_view auth, std::string_view plugin) {
  Writer w;
  w.U8(kComChangeUser).NulString("wp_user").U8(static_cast<uint8_t>(auth.size())).Bytes(auth);
  w.NulString("wp_db").U16(45).NulString(plugin);
  return Pkt(0, w.payload());
}

TEST(MysqlServerCodecTest, ResetWithChangeUser) {
  ServerLogin login = Login();
  login.reset_method = std::string(kResetChangeUser);
  std::string scramble32 = "0123456789abcdefghijklmnopqrstuv";
  Writer sw;
  sw.U8(0xfe).NulString("client_ed25519").Bytes(scramble32);
  std::string init_ok = Pkt(1, Ok(kStatusAutocommit, SchemaTrack("other")));
  auto events = RunAllWays(
      login,
      LoggedIn({Call("set",
                     [](ServerCodec& c) {
                       c.SendSetParameters({{"schema", "other"}});
                     }),
                Feed(init_ok), Call("reset", [](ServerCodec& c) { c.SendReset(); }),
                Feed(Pkt(1, Ok())),
                Call("check",
                     [](ServerCodec& c) {
                       // Back to the login's database, not the one selected since.
                       EXPECT_TRUE(c.ParametersToApply({{"schema", "wp_db"}}).empty());
                       EXPECT_EQ(c.ResponseState(), "2");
                     }),
                Call("reset", [](ServerCodec& c) { c.SendReset(); }), Feed(Pkt(1, sw.payload())),
                Feed(Pkt(3, Ok())), Expect(kComPing), Feed(Pkt(1, Ok()))}));
  std::string change =
      ChangeUserPacket(NativePasswordResponse(kPassword, kScramble), "mysql_native_password");
  absl::StatusOr<std::string> signature = Ed25519Response(kPassword, scramble32);
  ASSERT_TRUE(signature.ok());
  EXPECT_EQ(Join(After(events, 4)),
            Join({"call set", Cat("send ", Bytes(Pkt(0, "\x02other"))), "internal-done ok",
                  Cat("consume ", init_ok.size()), "call reset", Cat("send ", Bytes(change)),
                  "internal-done ok", Cat("consume ", Pkt(1, Ok()).size()), "call check",
                  "call reset", Cat("send ", Bytes(change)),
                  Cat("send ", Bytes(Pkt(2, *signature))), Cat("consume ", 4 + sw.payload().size()),
                  "internal-done ok", Cat("consume ", Pkt(3, Ok()).size()), "call expect 14",
                  "ready idle", Cat("forward ", Bytes(Pkt(1, Ok()))), "end buffered=0"}));
}

// A server that refuses COM_RESET_CONNECTION gets COM_CHANGE_USER instead, then and from then on;
// with reset_method reset_connection the refusal is the reset's outcome.
TEST(MysqlServerCodecTest, ResetFallsBackToChangeUser) {
  std::string refused = Pkt(1, Err(1047, "Unknown command", "08S01"));
  std::string change =
      ChangeUserPacket(NativePasswordResponse(kPassword, kScramble), "mysql_native_password");
  Script script =
      LoggedIn({Call("reset", [](ServerCodec& c) { c.SendReset(); }), Feed(refused),
                Feed(Pkt(1, Ok())), Call("reset", [](ServerCodec& c) { c.SendReset(); }),
                Feed(Pkt(1, Err(1045, "Access denied for user 'wp_user'", "28000")))});
  auto events = RunAllWays(Login(), script);
  EXPECT_EQ(Join(After(events, 4)),
            Join({"call reset", Cat("send ", Bytes(Pkt(0, "\x1f"))), Cat("send ", Bytes(change)),
                  Cat("consume ", refused.size()), "internal-done ok",
                  Cat("consume ", Pkt(1, Ok()).size()), "call reset", Cat("send ", Bytes(change)),
                  "internal-done 1045 Access denied for user 'wp_user' raw=" +
                      Bytes(Pkt(1, Err(1045, "Access denied for user 'wp_user'", "28000"))),
                  "stop", "end"}));

  ServerLogin strict = Login();
  strict.reset_method = std::string(kResetConnection);
  events = RunAllWays(
      strict, LoggedIn({Call("reset", [](ServerCodec& c) { c.SendReset(); }), Feed(refused)}));
  EXPECT_EQ(Join(After(events, 4)),
            Join({"call reset", Cat("send ", Bytes(Pkt(0, "\x1f"))),
                  "internal-done 1047 Unknown command raw=" + Bytes(refused),
                  Cat("consume ", refused.size()), "end buffered=0"}));
}

TEST(MysqlServerCodecTest, InternalLocalInfileIsRefused) {
  std::string request = Pkt(1, "\xfbx.csv");
  std::string answer = Pkt(3, Err(2, "File not found"));
  auto events = RunAllWays(
      Login(), LoggedIn({Call("query", [](ServerCodec& c) { c.SendInternalQuery("LOAD"); }),
                         Feed(request + answer)}));
  EXPECT_EQ(Join(After(events, 4)),
            Join({"call query", Cat("send ", Bytes(Pkt(0, "\x03LOAD"))),
                  Cat("send ", Bytes(Pkt(2, ""))), Cat("consume ", request.size()),
                  Cat("internal-done 2 File not found raw=", Bytes(answer)),
                  Cat("consume ", answer.size()), "end buffered=0"}));
}

TEST(MysqlServerCodecTest, SchemaKnowledge) {
  // Without tracking proof, a client request makes the schema unknown.
  Script script = LoggedIn(
      {Call("known",
            [](ServerCodec& c) {
              EXPECT_TRUE(c.ParametersToApply({{"schema", "wp_db"}}).empty());
              EXPECT_TRUE(c.ParametersToApply({{"schema", ""}}).empty());
              EXPECT_TRUE(c.ParametersToApply({{"application_name", "x"}}).empty());
            }),
       Expect(kComQuery),
       Call("unknown",
            [](ServerCodec& c) {
              EXPECT_EQ(c.ParametersToApply({{"schema", "wp_db"}}),
                        (ParamList{{"schema", "wp_db"}}));
            }),
       Feed(Pkt(1, Ok())),
       // A USE the client ran, reported by session tracking: known again, and tracked from now.
       Expect(kComQuery), Feed(Pkt(1, Ok(kStatusAutocommit, SchemaTrack("other")))),
       Call("tracked",
            [](ServerCodec& c) {
              EXPECT_TRUE(c.ParametersToApply({{"schema", "other"}}).empty());
            }),
       Expect(kComQuery), Feed(Pkt(1, Ok())),
       Call("still",
            [](ServerCodec& c) {
              EXPECT_TRUE(c.ParametersToApply({{"schema", "other"}}).empty());
            }),
       // A client COM_INIT_DB whose OK does not say the schema: tracking is off after all.
       Expect(kComInitDb), Feed(Pkt(1, Ok())), Call("untracked", [](ServerCodec& c) {
         EXPECT_EQ(c.ParametersToApply({{"schema", "other"}}), (ParamList{{"schema", "other"}}));
       })});
  RunAllWays(Login(), script);
}

// ---------------------------------------------------------------------------------------------
// Garbage

TEST(MysqlServerCodecTest, UnexpectedBytesStop) {
  struct Case {
    std::string name;
    Script script;
  };
  std::vector<Case> cases = {
      {"nothing outstanding", LoggedIn({Feed(Pkt(1, Ok()))})},
      {"error with nothing outstanding",
       LoggedIn({Feed(Pkt(0, Err(1927, "Connection was killed", "70100")))})},
      {"wrong sequence", LoggedIn({Expect(kComQuery), Feed(Pkt(2, Ok()))})},
      {"wrong sequence mid-response",
       LoggedIn({Expect(kComQuery),
                 Feed(Pkt(1, ColumnCount(1)) + Pkt(2, ColumnDef("a")) + Pkt(4, TextRow({"1"})))})},
      {"EOF first", LoggedIn({Expect(kComQuery), Feed(Pkt(1, Eof()))})},
      {"LOCAL INFILE to an execute", LoggedIn({Expect(kComStmtExecute), Feed(Pkt(1, "\xfbx"))})},
      {"empty row",
       LoggedIn({Expect(kComQuery), Feed(Packets(1, {ColumnCount(1), ColumnDef("a"), ""}))})},
      {"LOCAL INFILE to a ping", LoggedIn({Expect(kComPing), Feed(Pkt(1, "\xfbx"))})},
      {"row to a ping", LoggedIn({Expect(kComPing), Feed(Pkt(1, TextRow({"1"})))})},
      {"bad prepare", LoggedIn({Expect(kComStmtPrepare), Feed(Pkt(1, "\x00\x01"))})},
      {
          "no EOF after definitions",
          LoggedIn({Expect(kComQuery),
                    Feed(Packets(1, {ColumnCount(1), ColumnDef("a"), TextRow({"1"})}))}),
      },
      {"change user continues",
       LoggedIn({Expect(kComChangeUser), Feed(Pkt(1, "\xfemysql_native_password"))})},
  };
  // "no EOF after definitions" only holds without CLIENT_DEPRECATE_EOF.
  ServerLogin eof_login = EofLogin();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto events = RunAllWays(c.name == "no EOF after definitions" ? eof_login : Login(), c.script);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events[events.size() - 2], "stop");
    EXPECT_EQ(events[events.size() - 3].rfind("protocol-error ", 0), 0u) << Join(events);
    if (c.name == "error with nothing outstanding") {
      EXPECT_NE(events[events.size() - 3].find("1927"), std::string::npos);
    }
  }
}

// Random bytes after login, with random requests outstanding: the codec never crashes, never
// takes more than it was given, and never asks the proxy to hold more than it can.
TEST(MysqlServerCodecTest, RandomBytesNeverBreakTheContract) {
  std::mt19937 rng(kSplitSeed);
  const uint8_t commands[] = {kComQuery,     kComStmtExecute, kComStmtPrepare, kComStmtFetch,
                              kComFieldList, kComStatistics,  kComPing};
  for (int i = 0; i < 300; ++i) {
    std::string bytes;
    size_t packets = 1 + rng() % 6;
    for (size_t p = 0; p < packets; ++p) {
      std::string payload(rng() % 24, '\0');
      for (char& ch : payload) {
        ch = static_cast<char>(rng() % 4 == 0 ? 0xfe + rng() % 2 : rng() % 256);
      }
      bytes += Pkt(static_cast<uint8_t>(p + 1), payload);
    }
    if (rng() % 3 == 0) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng() % 256);
    }
    Script script = LoggedIn({Expect(commands[rng() % std::size(commands)]), Feed(bytes)});
    Execute(Login(), script, Mode::kRandom, static_cast<uint32_t>(i));
    Execute(Login(), script, Mode::kWhole, 0);
  }
  // And random bytes as a handshake.
  for (int i = 0; i < 300; ++i) {
    std::string bytes(rng() % 120, '\0');
    for (char& ch : bytes) {
      ch = static_cast<char>(rng() % 256);
    }
    if (bytes.size() >= 4) {
      bytes[0] = static_cast<char>(bytes.size() - 4);
      bytes[1] = bytes[2] = bytes[3] = 0;
      if (bytes.size() > 4 && rng() % 2 == 0) {
        bytes[4] = 10;
      }
    }
    Execute(Login(), {Feed(bytes)}, Mode::kRandom, static_cast<uint32_t>(i));
  }
}

// ---------------------------------------------------------------------------------------------
// Recorded from real servers

struct Fixture {
  std::map<std::string, std::string> header;
  Script script;
  std::vector<std::string> client_login_packets;  // payloads of C packets during login
  std::vector<std::string> codec_packets;         // C packets the codec itself sent (framed)
  std::string expected_forward;                   // S bytes of the client's responses
  std::string server_login;                       // S bytes up to the login's end
  int commands = 0;                               // client requests that have a response
  int internal = 0;                               // A lines
};

// Splits a stream into whole packets (header included), keeping an unfinished tail in `pending`.
std::vector<std::string> TakePackets(std::string& pending) {
  std::vector<std::string> out;
  while (pending.size() >= kHeaderLen) {
    size_t len = static_cast<uint8_t>(pending[0]) | (static_cast<uint8_t>(pending[1]) << 8) |
                 (static_cast<uint8_t>(pending[2]) << 16);
    if (pending.size() < kHeaderLen + len) {
      break;
    }
    out.push_back(pending.substr(0, kHeaderLen + len));
    pending.erase(0, kHeaderLen + len);
  }
  return out;
}

std::optional<Fixture> LoadFixture(const fs::path& path) {
  std::ifstream in(path);
  if (!in) {
    return std::nullopt;
  }
  Fixture f;
  std::string line;
  std::string c_pending;
  std::string s_pending;
  bool login_done = false;
  bool next_c_internal = false;  // the C line after an A line is the codec's own request
  bool in_internal = false;      // S bytes now answer a request of the codec's own
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (line.rfind("A ", 0) == 0) {
      std::string what = line.substr(2);
      ++f.internal;
      next_c_internal = true;
      in_internal = true;
      if (what == "reset") {
        f.script.push_back(Call("reset", [](ServerCodec& c) { c.SendReset(); }));
      } else if (what.rfind("schema ", 0) == 0) {
        std::string db = what.substr(7);
        f.script.push_back(Call(what, [db](ServerCodec& c) {
          c.SendSetParameters(c.ParametersToApply({{"schema", db}}));
        }));
      } else if (what.rfind("query ", 0) == 0) {
        std::string sql = what.substr(6);
        f.script.push_back(Call(what, [sql](ServerCodec& c) { c.SendInternalQuery(sql); }));
      } else {
        return std::nullopt;
      }
      continue;
    }
    if (line.size() < 2 || line[1] != ' ') {
      auto colon = line.find(": ");
      if (colon == std::string::npos) {
        return std::nullopt;
      }
      f.header[line.substr(0, colon)] = line.substr(colon + 2);
      continue;
    }
    auto bytes = Unhex(std::string_view(line).substr(2));
    if (!bytes) {
      return std::nullopt;
    }
    if (line[0] == 'S') {
      f.script.push_back(Feed(*bytes));
      if (!login_done) {
        // The login ends with the server's first OK or ERR after the handshake.
        s_pending += *bytes;
        for (const std::string& p : TakePackets(s_pending)) {
          if (login_done) {
            f.expected_forward += p;
            continue;
          }
          f.server_login += p;
          uint8_t first = p.size() > kHeaderLen ? static_cast<uint8_t>(p[kHeaderLen]) : 0;
          if (static_cast<uint8_t>(p[3]) > 0 && (first == 0x00 || first == 0xff)) {
            login_done = true;
          }
        }
        if (login_done) {
          f.expected_forward += s_pending;
        }
      } else if (!in_internal) {
        f.expected_forward += *bytes;
      }
      continue;
    }
    if (line[0] != 'C') {
      return std::nullopt;
    }
    c_pending += *bytes;
    for (const std::string& p : TakePackets(c_pending)) {
      uint8_t seq = static_cast<uint8_t>(p[3]);
      if (!login_done) {
        f.client_login_packets.push_back(p.substr(kHeaderLen));
        f.codec_packets.push_back(p);
        continue;
      }
      if (next_c_internal || seq != 0) {
        // The codec's own request, or a LOCAL INFILE packet (from the client, or the codec's
        // refusal when the request was its own).
        if (next_c_internal || in_internal) {
          f.codec_packets.push_back(p);
        }
        continue;
      }
      in_internal = false;
      uint8_t command = p.size() > kHeaderLen ? static_cast<uint8_t>(p[kHeaderLen]) : 0;
      if (command != kComQuit && command != kComStmtClose && command != kComStmtSendLongData) {
        ++f.commands;
      }
      f.script.push_back(Expect(command));
    }
    next_c_internal = false;
  }
  return f;
}

// The auth response in a HandshakeResponse41 payload.
std::optional<std::string> AuthField(std::string_view payload) {
  Reader r(AsBytes(payload));
  auto flags = r.U32();
  if (!flags || !r.Bytes(4 + 1 + 23) || !r.NulString()) {
    return std::nullopt;
  }
  auto auth = r.LenencString();
  return auth ? std::optional<std::string>(*auth) : std::nullopt;
}

std::string GoldenDir() { return std::string(WIREPOOL_SOURCE_DIR) + "/tests/golden/mysql"; }

struct Expectation {
  std::string ready;            // one letter per OnReadyForQuery: I(dle) or T(ransaction)
  std::string login_failure;    // the code, when the login must fail
  bool codec_recorded = false;  // C lines are the codec's own: it must send them again
};

const std::map<std::string, Expectation>& Expectations() {
  static const auto* e = new std::map<std::string, Expectation>{
      {"mariadb_cli_native", {"IITTIIIIII", "", false}},
      {"mariadb_cli_ed25519", {"I", "", false}},
      {"mariadb_cli_local_infile", {"IIIII", "", false}},
      {"mariadb_cli_too_many", {"", "1040", false}},
      {"mysql2_prepared", {"IIIIIIIII", "", false}},
      {"server_codec_live_deprecate_eof", {"IIIITTIIIIIIIIIIIIIIIII", "", true}},
      {"server_codec_live_eof", {"IIIIITTIIIIIIIIIIIIIIIIII", "", true}},
      {"server_codec_live_ed25519", {"I", "", true}},
  };
  return *e;
}

TEST(MysqlServerGoldenTest, ReplaysRecordedServers) {
  int replayed = 0;
  for (const auto& entry : fs::directory_iterator(GoldenDir())) {
    if (entry.path().extension() != ".txt") {
      continue;
    }
    std::string name = entry.path().stem().string();
    SCOPED_TRACE(name);
    auto fixture = LoadFixture(entry.path());
    ASSERT_TRUE(fixture) << "unreadable fixture";
    auto expectation = Expectations().find(name);
    ASSERT_NE(expectation, Expectations().end()) << "no expectation for this fixture";
    const Expectation& want = expectation->second;

    ServerLogin login;
    login.user = fixture->header["user"];
    login.password = fixture->header["password"];
    login.database = fixture->header["database"];
    login.random = [](uint8_t* out, size_t len) { std::fill(out, out + len, 0); };
    if (fixture->header.count("client_flags")) {
      login.options.emplace_back("client_flags", fixture->header["client_flags"]);
    } else if (!fixture->client_login_packets.empty() &&
               fixture->client_login_packets[0].size() >= 4) {
      // Frame as the recorded client did.
      Reader r(AsBytes(fixture->client_login_packets[0]));
      login.options.emplace_back("client_flags", Cat(*r.U32()));
    }

    std::vector<std::string> events = RunAllWays(login, fixture->script);
    std::string ready;
    int internal_done = 0;
    bool failed_as_wanted = false;
    for (const std::string& e : events) {
      EXPECT_EQ(e.rfind("protocol-error", 0), std::string::npos) << e;
      if (e == "ready idle") {
        ready += 'I';
      } else if (e == "ready trans") {
        ready += 'T';
      } else if (e.rfind("internal-done", 0) == 0) {
        ++internal_done;
      } else if (e.rfind("login-failed ", 0) == 0) {
        EXPECT_EQ(e.rfind(Cat("login-failed ", want.login_failure, " "), 0), 0u) << e;
        failed_as_wanted = !want.login_failure.empty();
      }
    }
    EXPECT_EQ(ready, want.ready);
    EXPECT_EQ(ready.size(), static_cast<size_t>(fixture->commands));
    EXPECT_EQ(internal_done, fixture->internal);
    EXPECT_EQ(failed_as_wanted, !want.login_failure.empty());

    Execute(login, fixture->script, Mode::kWhole, 0, {}, [&](CodecRun& run) {
      if (want.login_failure.empty()) {
        EXPECT_EQ(run.all_forwarded(), fixture->expected_forward);
      }
      std::vector<std::string> sent = run.sent();
      if (want.codec_recorded) {
        EXPECT_EQ(sent, fixture->codec_packets);
        return;
      }
      // A real client's login: same auth answers (the scramble is the server's), other flags.
      ASSERT_FALSE(sent.empty());
      auto mine = AuthField(std::string_view(sent[0]).substr(kHeaderLen));
      auto theirs = AuthField(fixture->client_login_packets[0]);
      ASSERT_TRUE(mine && theirs);
      EXPECT_EQ(Hex(*mine), Hex(*theirs));
      for (size_t i = 1; i < sent.size() && i < fixture->client_login_packets.size(); ++i) {
        EXPECT_EQ(Hex(sent[i].substr(kHeaderLen)), Hex(fixture->client_login_packets[i]));
      }
    });
    ++replayed;
  }
  EXPECT_GE(replayed, 8);
}

}  // namespace
}  // namespace wirepool::codec::mysql
