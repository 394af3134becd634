// Golden fixtures for the PostgreSQL codec: bytes recorded from real clients (psql, pgbench,
// psycopg2) talking to a real PostgreSQL 15 through tools/record-fixture, replayed through
// postgres::ClientCodec (the C stream) and postgres::ServerCodec (the S stream). Each side records
// what the codec told its sink, and the bytes it forwarded, as a list of events. Every case runs
// in the chunks it was recorded in, whole, byte by byte and in 20 seeded random splits; all runs
// must give the same events, and those must equal
// tests/golden/postgres/<case>.{client,server}.events. WIREPOOL_UPDATE_GOLDEN=1 (re)writes those
// files instead of comparing.
//
// Fixture files (tests/golden/postgres/<case>.txt), written by tools/record-fixture:
//   # comment lines
//   user: fixture               the role the client logged in as
//   password: fixture-pw        its password (md5-stored in the recording server)
//   random: <hex>               what the codec's RandomFn yields first (then a counter pattern)
//   C <hex>                     a chunk the client sent
//   S <hex>                     a chunk the server sent
// How a recorded md5 login replays: the client codec takes its md5 salt from the RandomFn, and
// `random:` holds the salt of the recorded server's AuthenticationMD5Password, so the codec asks
// for the salt psql saw and psql's recorded response verifies. The test checks that the header
// agrees with the salt in the S stream, so a stale header fails with a clear message.
// The server side replays the S stream minus the one-byte answers to any SSLRequest /
// GSSENCRequest the client opened with (the server codec never sends those requests); the server
// codec logs in with the header's user and password, so its md5 response must equal the one the
// real client sent, which the test also checks.
//
// Events are one line each. Forwarded bytes are coalesced into one `forward` event between other
// events, so a message forwarded in pieces reads the same as one forwarded whole. Byte payloads
// over kMaxInlineBytes are written `<n> bytes sha256:<first 16 hex digits>`.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/server_codec.h"
#include "codecs/postgres/wire.h"
#include "core/crypto.h"
#include "core/strings.h"
#include "gtest/gtest.h"

namespace wirepool::codec::postgres {
namespace {

namespace fs = std::filesystem;
using namespace ::wirepool::codec::testing;  // NOLINT(build/namespaces): the shared harness

constexpr size_t kMaxInlineBytes = 96;
constexpr int kRandomSplits = 20;

std::string GoldenDir() { return std::string(WIREPOOL_SOURCE_DIR) + "/tests/golden/postgres"; }

bool UpdateGolden() {
  const char* v = std::getenv("WIREPOOL_UPDATE_GOLDEN");
  return v != nullptr && std::string_view(v) == "1";
}

// Hex, or a length and digest prefix when long.
std::string Bytes(std::string_view raw) { return HexOrDigest(raw, kMaxInlineBytes); }

// ---------------------------------------------------------------------------------------------
// Event recording and the pump

// Plays the proxy's pump (proxy/pump.h) over a contiguous buffer, checking every Step against the
// codec contract. `answer()` gives the proxy's deferred answers (CompleteLogin) a turn whenever
// the pump would stop pumping (pause or input used up), as the proxy's event loop would.
class Pump {
 public:
  Pump(std::function<Step(ByteView)> step, EventLog& log, std::function<bool()> answer)
      : step_(std::move(step)), log_(log), answer_(std::move(answer)) {}

  void Feed(std::string_view chunk) {
    if (stopped_) {
      return;
    }
    buf_.erase(0, pos_);
    pos_ = 0;
    buf_.append(chunk);
    Run();
  }

  bool stopped() const { return stopped_; }
  size_t buffered() const { return buf_.size() - pos_; }
  // What the codec has not taken (the proxy hands it to TLS when TLS starts).
  std::string TakeBuffered() {
    std::string rest = buf_.substr(pos_);
    buf_.clear();
    pos_ = 0;
    return rest;
  }

 private:
  void Run() {
    while (!stopped_) {
      size_t avail = buf_.size() - pos_;
      if (avail == 0) {
        if (answer_()) {
          continue;
        }
        return;
      }
      Step s = step_(AsBytes(std::string_view(buf_).substr(pos_)));
      switch (s.verdict) {
        case Verdict::kNeedMore:
          EXPECT_GT(s.bytes, avail) << "kNeedMore must ask for more than is available";
          if (answer_()) {
            continue;
          }
          return;
        case Verdict::kForward:
        case Verdict::kConsume:
          EXPECT_GT(s.bytes, 0u) << "a Step must make progress";
          EXPECT_LE(s.bytes, avail) << "a Step took more bytes than it was given";
          if (s.bytes == 0 || s.bytes > avail) {
            log_.Add("contract violation");
            stopped_ = true;
            return;
          }
          if (s.verdict == Verdict::kForward) {
            log_.Forward(std::string_view(buf_).substr(pos_, s.bytes));
          }
          pos_ += s.bytes;
          break;
        case Verdict::kPause:
          if (answer_()) {
            continue;
          }
          return;
        case Verdict::kStop:
          log_.Add("stop");
          stopped_ = true;
          return;
      }
    }
  }

  std::function<Step(ByteView)> step_;
  EventLog& log_;
  std::function<bool()> answer_;
  std::string buf_;
  size_t pos_ = 0;
  bool stopped_ = false;
};

std::string_view TlsStartName(TlsStart how) {
  switch (how) {
    case TlsStart::kAfterGoAhead:
      return "after_go_ahead";
    case TlsStart::kHelloFollows:
      return "hello_follows";
    case TlsStart::kDirect:
      return "direct";
  }
  return "?";
}

// The client side: a ClientCodec whose sink answers like the proxy does. With tls_available, TLS
// starts as the proxy starts it (proxy/client_session.cc): once the pump yields after
// OnTlsRequest, what the codec left buffered goes to TLS, so do the bytes that arrive after it,
// and then OnTlsStarted. Bytes fed with Decrypted() are what TLS hands on to the codec.
class ClientRun final : public ClientCodecSink {
 public:
  ClientRun(const UserSecret* secret, std::string random_prefix, std::string auth_method = "md5",
            bool tls_available = false)
      : secret_(secret),
        pump_([this](ByteView in) { return codec_->OnBytes(in); }, log_,
              [this] { return Answer(); }) {
    ClientCodecOptions options;
    options.auth_method = std::move(auth_method);
    options.random = CounterRandom(std::move(random_prefix));
    options.tls_available = tls_available;
    codec_ = std::make_unique<ClientCodec>(options, *this);
  }

  void Feed(std::string_view chunk) {
    if (tls_on_ && !decrypted_) {
      to_tls_.append(chunk);  // ciphertext: TLS reads it, the codec never sees it
      return;
    }
    pump_.Feed(chunk);
  }
  // From now on Feed brings what TLS decrypted.
  void Decrypted() { decrypted_ = true; }
  bool stopped() const { return pump_.stopped(); }
  ClientCodec& codec() { return *codec_; }
  // Everything the codec sent to the client, concatenated.
  const std::string& sent() const { return sent_; }
  // The last whole message sent.
  const std::string& last_sent() const { return last_sent_; }

  std::vector<std::string> Finish() {
    if (!to_tls_.empty()) {
      log_.Add(Cat("to TLS ", Bytes(to_tls_)));
    }
    if (!pump_.stopped()) {
      log_.Add(
          Cat("end buffered=", pump_.buffered(), " mid_request=", codec_->MidRequest() ? 1 : 0));
    }
    return log_.Take();
  }

  // Sink.
  void SendToClient(std::string_view bytes) override {
    sent_.append(bytes);
    last_sent_ = std::string(bytes);
    log_.Add(Cat("SendToClient ", Bytes(bytes)));
  }
  void OnStartup(const StartupInfo& info) override {
    std::string e = Cat("OnStartup user=", info.user, " database=", info.database);
    for (const auto& [name, value] : info.params) {
      e += Cat(" ", name, "=", value);
    }
    log_.Add(std::move(e));
    // The proxy answers at once: it looks the user up and begins auth.
    codec_->BeginAuth(secret_);
  }
  void OnCancelRequest(std::string_view cancel_key) override {
    log_.Add(Cat("OnCancelRequest ", Hex(cancel_key)));
  }
  void OnTlsRequest(TlsStart how) override {
    log_.Add(Cat("OnTlsRequest ", TlsStartName(how)));
    tls_pending_ = true;  // TLS starts once the pump yields
  }
  void OnAuthenticated() override {
    log_.Add("OnAuthenticated");
    login_pending_ = true;  // answered once a server is "assigned", i.e. when the pump yields
  }
  void OnAuthFailed(std::string_view reason) override { log_.Add(Cat("OnAuthFailed ", reason)); }
  void OnRequestEnd(uint32_t) override { log_.Add("OnRequestEnd"); }
  void OnTerminate() override { log_.Add("OnTerminate"); }
  void OnProtocolError(const absl::Status& status) override {
    log_.Add(Cat("OnProtocolError ", absl::StatusCodeToString(status.code()), ": ",
                 Sv(status.message())));
  }

 private:
  bool Answer() {
    if (tls_pending_) {
      tls_pending_ = false;
      tls_on_ = true;
      to_tls_ = pump_.TakeBuffered();
      codec_->OnTlsStarted();
      log_.Add("OnTlsStarted");
      return true;
    }
    if (!login_pending_) {
      return false;
    }
    login_pending_ = false;
    codec_->CompleteLogin({{"server_version", "15.0"},
                           {"client_encoding", "UTF8"},
                           {"standard_conforming_strings", "on"}});
    log_.Add(Cat("CompleteLogin cancel_key=", Hex(codec_->CancelKey())));
    return true;
  }

  const UserSecret* secret_;
  EventLog log_{kMaxInlineBytes};
  Pump pump_;
  std::unique_ptr<ClientCodec> codec_;
  bool login_pending_ = false;
  bool tls_pending_ = false;
  bool tls_on_ = false;
  bool decrypted_ = false;
  std::string to_tls_;
  std::string sent_;
  std::string last_sent_;
};

// The server side: a ServerCodec logging in as the fixture's user. With `tls`, the answer to
// OnTlsOffer comes as the proxy gives it (proxy/server_conn.cc): once the pump yields,
// ContinueLogin(accepted).
class ServerRun final : public ServerCodecSink {
 public:
  ServerRun(std::string user, std::string password, std::string random_prefix, bool tls = false)
      : pump_([this](ByteView in) { return codec_->OnBytes(in); }, log_,
              [this] { return Answer(); }) {
    ServerLogin login;
    login.user = std::move(user);
    login.password = std::move(password);
    login.database = "wp_db";
    login.random = CounterRandom(std::move(random_prefix));
    login.tls = tls;
    codec_ = std::make_unique<ServerCodec>(login, *this);
    codec_->Start();
  }

  void Feed(std::string_view chunk) { pump_.Feed(chunk); }
  bool stopped() const { return pump_.stopped(); }
  const std::vector<std::string>& sent() const { return sent_; }
  ServerCodec& codec() { return *codec_; }

  std::vector<std::string> Finish() {
    if (!pump_.stopped()) {
      log_.Add(Cat("end buffered=", pump_.buffered()));
    }
    return log_.Take();
  }

  // Sink.
  void SendToServer(std::string_view bytes) override {
    sent_.emplace_back(bytes);
    log_.Add(Cat("SendToServer ", Bytes(bytes)));
  }
  void OnLoginComplete() override {
    log_.Add(Cat("OnLoginComplete cancel_key=", Hex(codec_->CancelKey())));
    for (const auto& [name, value] : codec_->Parameters()) {
      log_.Add(Cat("  parameter ", name, "=", value));
    }
  }
  void OnLoginFailed(const WireError& error) override {
    log_.Add(Cat("OnLoginFailed code=", error.code, " fatal=", error.fatal ? 1 : 0,
                 " message=", error.message, " raw=", Bytes(error.raw)));
  }
  void OnTlsOffer(bool accepted) override {
    log_.Add(Cat("OnTlsOffer ", accepted ? 1 : 0));
    offer_ = accepted;
  }
  void OnReadyForQuery(TxState state) override {
    const char* name = state == TxState::kIdle ? "I" : state == TxState::kInTransaction ? "T" : "E";
    log_.Add(Cat("OnReadyForQuery ", name));
  }
  void OnParameterStatus(std::string_view name, std::string_view value) override {
    log_.Add(Cat("OnParameterStatus ", name, "=", value));
  }
  void OnInternalDone(const WireError* error) override {
    log_.Add(Cat("OnInternalDone ", error == nullptr ? std::string("ok") : error->code));
  }
  void OnProtocolError(const absl::Status& status) override {
    log_.Add(Cat("OnProtocolError ", absl::StatusCodeToString(status.code()), ": ",
                 Sv(status.message())));
  }

 private:
  bool Answer() {
    if (!offer_.has_value()) {
      return false;
    }
    const bool encrypted = *offer_;
    offer_.reset();
    log_.Add(Cat("ContinueLogin ", encrypted ? 1 : 0));
    codec_->ContinueLogin(encrypted);
    return true;
  }

  EventLog log_{kMaxInlineBytes};
  Pump pump_;
  std::unique_ptr<ServerCodec> codec_;
  std::vector<std::string> sent_;
  std::optional<bool> offer_;  // OnTlsOffer's answer, until the pump yields
};

// ---------------------------------------------------------------------------------------------
// Splits

// The ways each stream is cut into chunks: as recorded (if given), then the shared Splits (whole,
// byte by byte, kRandomSplits seeded random cuts); all must give the same events, which are
// returned.
template <typename MakeRun>
std::vector<std::string> RunAllSplits(const std::string& whole,
                                      const std::vector<std::string>& recorded,
                                      MakeRun&& make_run) {
  std::vector<Split> splits;
  if (!recorded.empty()) {
    splits.push_back({"as recorded", {recorded.begin(), recorded.end()}});
  }
  for (Split& split : Splits(whole, SplitPlan{.random_splits = kRandomSplits})) {
    splits.push_back(std::move(split));
  }
  AgreeingRuns runs;
  for (const Split& split : splits) {
    auto run = make_run();
    runs.Add(split.name, FeedSplit(*run, split));
  }
  return runs.Take();
}

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Fixture {
  std::map<std::string, std::string> headers;
  std::vector<std::string> client_chunks;
  std::vector<std::string> server_chunks;
  std::string client;
  std::string server;
};

std::optional<Fixture> LoadFixture(const std::string& path, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open " + path;
    return std::nullopt;
  }
  Fixture f;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (line.size() > 2 && (line[0] == 'C' || line[0] == 'S') && line[1] == ' ') {
      auto bytes = Unhex(std::string_view(line).substr(2));
      if (!bytes) {
        *error = Cat(path, ":", lineno, ": bad hex");
        return std::nullopt;
      }
      (line[0] == 'C' ? f.client_chunks : f.server_chunks).push_back(*bytes);
      (line[0] == 'C' ? f.client : f.server) += *bytes;
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) {
      *error = Cat(path, ":", lineno, ": expected `key: value`, `C <hex>` or `S <hex>`");
      return std::nullopt;
    }
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    f.headers[line.substr(0, colon)] = value;
  }
  for (const char* key : {"user", "password", "random"}) {
    if (!f.headers.contains(key)) {
      *error = Cat(path, ": missing header `", key, ":`");
      return std::nullopt;
    }
  }
  return f;
}

// How many SSLRequest / GSSENCRequest packets open the client's stream.
size_t EncryptionRequests(std::string_view client) {
  size_t n = 0;
  while (client.size() >= 8 * (n + 1)) {
    const auto* p = reinterpret_cast<const uint8_t*>(client.data()) + 8 * n;
    uint32_t code = ReadU32(p + 4);
    if (ReadU32(p) != 8 || (code != kSslRequestCode && code != kGssEncRequestCode)) {
      break;
    }
    ++n;
  }
  return n;
}

// The server's messages (type + length framing), after the untyped encryption answers.
std::vector<std::string_view> ServerMessages(std::string_view server, size_t skip) {
  std::vector<std::string_view> out;
  size_t pos = skip;
  while (pos + kHeaderLen <= server.size()) {
    uint32_t len = ReadU32(reinterpret_cast<const uint8_t*>(server.data()) + pos + 1);
    if (len < 4 || pos + 1 + len > server.size()) {
      break;
    }
    out.push_back(server.substr(pos, 1 + len));
    pos += 1 + len;
  }
  return out;
}

// The salt of the first AuthenticationMD5Password.
std::optional<std::string> RecordedMd5Salt(const Fixture& f) {
  for (std::string_view m : ServerMessages(f.server, EncryptionRequests(f.client))) {
    if (m[0] == 'R' && m.size() >= 13 && ReadU32(AsBytes(m).data() + 5) == 5) {
      return std::string(m.substr(9, 4));
    }
  }
  return std::nullopt;
}

// The client's first password message ('p'), after its encryption requests and startup packet.
std::optional<std::string> RecordedPasswordMessage(const Fixture& f) {
  std::string_view c = f.client;
  c.remove_prefix(8 * EncryptionRequests(c));
  if (c.size() < 4) {
    return std::nullopt;
  }
  uint32_t startup_len = ReadU32(AsBytes(c).data());
  if (startup_len > c.size()) {
    return std::nullopt;
  }
  c.remove_prefix(startup_len);
  if (c.size() < kHeaderLen || c[0] != 'p') {
    return std::nullopt;
  }
  uint32_t len = ReadU32(AsBytes(c).data() + 1);
  if (1 + size_t{len} > c.size()) {
    return std::nullopt;
  }
  return std::string(c.substr(0, 1 + len));
}

std::vector<std::string> ReadEvents(const std::string& path, bool* found) {
  std::ifstream in(path);
  *found = static_cast<bool>(in);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] != '#') {
      out.push_back(line);
    }
  }
  return out;
}

void WriteEvents(const std::string& path, const std::string& fixture,
                 const std::vector<std::string>& events) {
  std::ofstream out(path, std::ios::trunc);
  out << "# Expected events for " << fixture
      << " (tests/unit/codecs/golden_test.cc); WIREPOOL_UPDATE_GOLDEN=1 rewrites this file.\n"
      << Join(events);
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

void CheckOrUpdate(const std::string& case_name, const std::string& side,
                   const std::vector<std::string>& events) {
  std::string path = Cat(GoldenDir(), "/", case_name, ".", side, ".events");
  if (UpdateGolden()) {
    WriteEvents(path, case_name + ".txt", events);
    return;
  }
  bool found = false;
  std::vector<std::string> expected = ReadEvents(path, &found);
  ASSERT_TRUE(found) << path << " is missing; run with WIREPOOL_UPDATE_GOLDEN=1 to create it";
  EXPECT_TRUE(SameEvents(expected, events))
      << "in " << path << " (run with WIREPOOL_UPDATE_GOLDEN=1 to accept the new events)\n"
      << "actual events:\n"
      << Join(events);
}

std::vector<std::string> FixtureCases() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(GoldenDir(), ec)) {
    if (entry.path().extension() == ".txt") {
      names.push_back(entry.path().stem().string());
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string error;
    auto f = LoadFixture(Cat(GoldenDir(), "/", GetParam(), ".txt"), &error);
    ASSERT_TRUE(f.has_value()) << error;
    fixture_ = std::move(*f);
    auto random = Unhex(fixture_.headers["random"]);
    ASSERT_TRUE(random.has_value()) << "`random:` must be hex";
    random_ = *random;
    secret_.name = fixture_.headers["user"];
    secret_.password = fixture_.headers["password"];
    // PBKDF2 once per password, not once per test.
    static auto* keys = new std::map<std::string, crypto::ScramKeys>;
    auto [it, inserted] = keys->try_emplace(secret_.password);
    if (inserted) {
      it->second = crypto::DeriveScramKeys(secret_.password, "golden-salt", 4096);
    }
    secret_.scram = it->second;
  }

  Fixture fixture_;
  std::string random_;
  UserSecret secret_;
};

TEST(GoldenFixturesTest, AllCasesPresent) {
  std::vector<std::string> cases = FixtureCases();
  for (const char* name :
       {"pgbench_extended", "pgbench_prepared", "psql_copy", "psql_simple", "psycopg2_basic"}) {
    EXPECT_NE(std::find(cases.begin(), cases.end(), name), cases.end())
        << name << ".txt missing from " << GoldenDir();
  }
}

TEST_P(GoldenTest, RandomHeaderIsTheRecordedMd5Salt) {
  auto salt = RecordedMd5Salt(fixture_);
  ASSERT_TRUE(salt.has_value()) << "the S stream has no AuthenticationMD5Password";
  EXPECT_EQ(Hex(random_.substr(0, 4)), Hex(*salt))
      << "`random:` must start with the recorded md5 salt, or the recorded md5 response fails";
}

TEST_P(GoldenTest, ClientSide) {
  std::vector<std::string> events = RunAllSplits(fixture_.client, fixture_.client_chunks, [&] {
    return std::make_unique<ClientRun>(&secret_, random_);
  });
  // Sanity, whatever the expected file says: the recorded login verified.
  EXPECT_NE(std::find(events.begin(), events.end(), "OnAuthenticated"), events.end())
      << Join(events);
  CheckOrUpdate(GetParam(), "client", events);
}

TEST_P(GoldenTest, ServerSide) {
  std::string server = fixture_.server.substr(EncryptionRequests(fixture_.client));
  std::vector<std::string> recorded = fixture_.server_chunks;
  // The first chunk holds the encryption answers (the server waits for the next packet).
  size_t skip = EncryptionRequests(fixture_.client);
  while (skip > 0 && !recorded.empty()) {
    size_t n = std::min(skip, recorded.front().size());
    recorded.front().erase(0, n);
    skip -= n;
    if (recorded.front().empty()) {
      recorded.erase(recorded.begin());
    }
  }
  std::vector<std::string> events = RunAllSplits(server, recorded, [&] {
    return std::make_unique<ServerRun>(secret_.name, secret_.password, random_);
  });
  EXPECT_NE(std::find_if(events.begin(), events.end(),
                         [](const std::string& e) { return e.starts_with("OnLoginComplete"); }),
            events.end())
      << Join(events);
  CheckOrUpdate(GetParam(), "server", events);

  // The server codec's md5 response is the one the real client sent for the same salt.
  ServerRun run(secret_.name, secret_.password, random_);
  run.Feed(server);
  auto password_message = RecordedPasswordMessage(fixture_);
  ASSERT_TRUE(password_message.has_value());
  ASSERT_GE(run.sent().size(), 2u);
  EXPECT_EQ(Hex(run.sent()[1]), Hex(*password_message));
}

INSTANTIATE_TEST_SUITE_P(Postgres, GoldenTest, ::testing::ValuesIn(FixtureCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// ---------------------------------------------------------------------------------------------
// Hand-built bad input. Each runs in every split and must give the same events each time.

constexpr char kSalt[] = "\x01\x02\x03\x04";

class BadInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    secret_ = new UserSecret;
    secret_->name = "fixture";
    secret_->password = "fixture-pw";
    secret_->scram = crypto::DeriveScramKeys("fixture-pw", "golden-salt", 4096);
  }
  static void TearDownTestSuite() {
    delete secret_;
    secret_ = nullptr;
  }

  static std::string Startup(const ParamList& params, uint32_t version = kProtocol30) {
    Writer w;
    w.BeginUntyped().U32(version);
    for (const auto& [name, value] : params) {
      w.CString(name).CString(value);
    }
    return w.U8(0).Take();
  }
  static std::string Md5Response(std::string_view salt, std::string_view password = "fixture-pw") {
    std::string inner = crypto::Md5Hex(Cat(password, "fixture"));
    Writer w;
    return w.Begin('p').CString(Cat("md5", crypto::Md5Hex(Cat(inner, salt)))).Take();
  }
  // Startup and md5 login of user fixture.
  static std::string Login() {
    return Startup({{"user", "fixture"}, {"database", "wp_db"}}) +
           Md5Response(std::string_view(kSalt, 4));
  }

  // Runs `input` through a client codec in every split; returns the events and (through
  // `last_sent`) the last message the codec sent.
  static std::vector<std::string> RunClient(const std::string& input,
                                            std::string* last_sent = nullptr,
                                            const std::string& auth_method = "md5") {
    auto events = RunAllSplits(input, {}, [&] {
      return std::make_unique<ClientRun>(secret_, std::string(kSalt, 4), auth_method);
    });
    if (last_sent != nullptr) {
      ClientRun run(secret_, std::string(kSalt, 4), auth_method);
      run.Feed(input);
      *last_sent = run.last_sent();
    }
    return events;
  }

  // The input must end the connection with a FATAL 08P01 ErrorResponse and OnProtocolError.
  static void ExpectProtocolViolation(const std::string& input) {
    std::string last;
    std::vector<std::string> events = RunClient(input, &last);
    ASSERT_GE(events.size(), 3u) << Join(events);
    EXPECT_EQ(events.back(), "stop") << Join(events);
    EXPECT_TRUE(events[events.size() - 2].starts_with("OnProtocolError INVALID_ARGUMENT"))
        << Join(events);
    ASSERT_GE(last.size(), kHeaderLen);
    EXPECT_EQ(last[0], 'E');
    EXPECT_EQ(ReadU32(AsBytes(last).data() + 1), last.size() - 1);
    auto fields = ParseErrorFields(AsBytes(last).subspan(kHeaderLen));
    ASSERT_TRUE(fields.has_value()) << Hex(last);
    EXPECT_EQ(fields->code, "08P01");
    EXPECT_EQ(fields->severity, "FATAL");
    EXPECT_FALSE(fields->message.empty());
    for (const auto& e : events) {
      EXPECT_FALSE(e.starts_with("forward")) << "bad input must never be forwarded";
    }
  }

  static UserSecret* secret_;
};

UserSecret* BadInputTest::secret_ = nullptr;

TEST_F(BadInputTest, GarbageFirstBytes) {
  ExpectProtocolViolation("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  ExpectProtocolViolation(std::string("\x00\x00\x00\x00\x00\x03\x00\x00", 8));  // length 0
  ExpectProtocolViolation(std::string("\x00\x00\x00\x04", 4));                  // length 4
}

TEST_F(BadInputTest, StartupLengthOf2GiB) {
  ExpectProtocolViolation(std::string("\x80\x00\x00\x00\x00\x03\x00\x00user\0x\0\0", 15));
}

TEST_F(BadInputTest, StartupLongerThanTheCap) {
  ExpectProtocolViolation(Startup({{"user", "fixture"}, {"filler", std::string(10000, 'x')}}));
}

TEST_F(BadInputTest, StartupWithoutTerminator) {
  std::string packet = Startup({{"user", "fixture"}});
  packet.pop_back();  // drop the final NUL and fix the length
  packet[3] = static_cast<char>(packet.size());
  ExpectProtocolViolation(packet);
  // A value without its NUL.
  Writer w;
  ExpectProtocolViolation(w.BeginUntyped().U32(kProtocol30).CString("user").Bytes("fixt").Take());
  // Bytes after the terminator.
  Writer w2;
  ExpectProtocolViolation(w2.BeginUntyped()
                              .U32(kProtocol30)
                              .CString("user")
                              .CString("fixture")
                              .U8(0)
                              .Bytes("x")
                              .Take());
}

TEST_F(BadInputTest, BadPasswordMessage) {
  std::string startup = Startup({{"user", "fixture"}});
  ExpectProtocolViolation(startup + std::string("Q\x00\x00\x00\x04", 5));   // not 'p'
  ExpectProtocolViolation(startup + std::string("p\x00\x00\x00\x02", 5));   // short length
  ExpectProtocolViolation(startup + std::string("p\xff\xff\xff\xff", 5));   // negative length
  ExpectProtocolViolation(startup + std::string("p\x00\x00\x00\x05x", 6));  // no NUL
}

TEST_F(BadInputTest, UnknownMessageTypeAfterLogin) {
  ExpectProtocolViolation(Login() + std::string("Z\x00\x00\x00\x04", 5));
  ExpectProtocolViolation(Login() + std::string("\x00\x00\x00\x00\x08", 5));
}

TEST_F(BadInputTest, BadMessageLengthAfterLogin) {
  ExpectProtocolViolation(Login() + std::string("Q\xff\xff\xff\xff", 5));  // negative
  ExpectProtocolViolation(Login() + std::string("Q\x00\x00\x00\x03", 5));  // short
  ExpectProtocolViolation(Login() + std::string("Q\x00\x00\x00\x00", 5));  // zero
  ExpectProtocolViolation(Login() + std::string("d\x7f\xff\xff\xff", 5));  // > 1 GiB
}

TEST_F(BadInputTest, SslRequestGetsN) {
  std::string ssl("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8);
  std::vector<std::string> events = RunClient(ssl + Startup({{"user", "fixture"}}));
  ASSERT_GE(events.size(), 3u) << Join(events);
  EXPECT_EQ(events[0], "SendToClient 4e");
  EXPECT_EQ(events[1], "OnStartup user=fixture database=fixture");
  // Then the md5 challenge with the injected salt, and the codec waits for the password.
  EXPECT_EQ(events[2], "SendToClient 520000000c0000000501020304");
  EXPECT_EQ(events.back(), "end buffered=0 mid_request=0");
  // GSSENCRequest is refused the same way.
  std::string gss("\x00\x00\x00\x08\x04\xd2\x16\x30", 8);
  EXPECT_EQ(RunClient(gss)[0], "SendToClient 4e");
  // An encryption request with a body is a violation.
  ExpectProtocolViolation(std::string("\x00\x00\x00\x0c\x04\xd2\x16\x2f\0\0\0\0", 12));
}

TEST_F(BadInputTest, CancelRequest) {
  std::string cancel("\x00\x00\x00\x10\x04\xd2\x16\x2e\x01\x02\x03\x04\xa5\xb6\xc7\xd8", 16);
  std::vector<std::string> events = RunClient(cancel);
  EXPECT_EQ(events, (std::vector<std::string>{"OnCancelRequest 01020304a5b6c7d8", "stop"}));
  // A cancel request of the wrong length is a violation.
  ExpectProtocolViolation(std::string("\x00\x00\x00\x0c\x04\xd2\x16\x2e\x01\x02\x03\x04", 12));
}

TEST_F(BadInputTest, WrongPasswordFailsAuth) {
  std::string last;
  std::vector<std::string> events = RunClient(
      Startup({{"user", "fixture"}}) + Md5Response(std::string_view(kSalt, 4), "wrong"), &last);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[events.size() - 2], "OnAuthFailed md5 password did not match");
  auto fields = ParseErrorFields(AsBytes(last).subspan(kHeaderLen));
  ASSERT_TRUE(fields.has_value());
  EXPECT_EQ(fields->code, "28P01");
}

TEST_F(BadInputTest, GoodLoginThenQuery) {
  // The happy path of the hand-built cases, so the violations above are known to be reached from a
  // working login.
  std::string query = QueryMessage("SELECT 1");
  std::vector<std::string> events =
      RunClient(Login() + query + std::string("X\x00\x00\x00\x04", 5));
  ASSERT_GE(events.size(), 4u) << Join(events);
  EXPECT_EQ(std::vector<std::string>(events.end() - 4, events.end()),
            (std::vector<std::string>{"OnRequestEnd", Cat("forward ", Hex(query)), "OnTerminate",
                                      "stop"}));
  EXPECT_NE(std::find(events.begin(), events.end(), "OnAuthenticated"), events.end());
}

// ---------------------------------------------------------------------------------------------
// TLS on the client leg. `before` arrives in plaintext; once the pump yields after OnTlsRequest,
// TLS starts (what the codec left buffered, and whatever arrives after it, is TLS's); `after` is
// what TLS then decrypts. Split i of `before` runs with split i of `after`; all runs must agree.

constexpr char kSslRequest[] = "\x00\x00\x00\x08\x04\xd2\x16\x2f";
constexpr char kGssEncRequest[] = "\x00\x00\x00\x08\x04\xd2\x16\x30";
// The head of a TLS 1.2 ClientHello record: content type 0x16, version, length, then the body.
constexpr char kClientHello[] = "\x16\x03\x01\x00\x2a\x01\x00\x00\x26\x03\x03 not a real hello";

class ClientTlsTest : public BadInputTest {
 protected:
  static std::string Ssl() { return std::string(kSslRequest, 8); }
  static std::string Gss() { return std::string(kGssEncRequest, 8); }
  static std::string Hello() { return std::string(kClientHello, sizeof(kClientHello) - 1); }
  static std::string Terminate() { return std::string("X\x00\x00\x00\x04", 5); }

  static void FeedChunks(ClientRun& run, const std::vector<std::string_view>& chunks) {
    for (std::string_view chunk : chunks) {
      if (run.stopped()) {
        return;
      }
      run.Feed(chunk);
    }
  }

  static std::vector<std::string> RunTls(const std::string& before, const std::string& after,
                                         bool tls_available = true,
                                         std::string* last_sent = nullptr) {
    const SplitPlan plan{.random_splits = kRandomSplits};
    std::vector<Split> first = Splits(before, plan);
    std::vector<Split> second = Splits(after, plan);
    EXPECT_EQ(first.size(), second.size());
    AgreeingRuns runs;
    for (size_t i = 0; i < first.size() && i < second.size(); ++i) {
      ClientRun run(secret_, std::string(kSalt, 4), "md5", tls_available);
      FeedChunks(run, first[i].chunks);
      run.Decrypted();
      FeedChunks(run, second[i].chunks);
      if (i == 0 && last_sent != nullptr) {
        *last_sent = run.last_sent();
      }
      runs.Add(Cat(first[i].name, ", then ", second[i].name), run.Finish());
    }
    return runs.Take();
  }

  // The ErrorResponse `last` must be FATAL with `code` and `message`.
  static void ExpectError(const std::string& last, std::string_view code,
                          std::string_view message) {
    ASSERT_GE(last.size(), kHeaderLen);
    EXPECT_EQ(last[0], 'E');
    auto fields = ParseErrorFields(AsBytes(last).subspan(kHeaderLen));
    ASSERT_TRUE(fields.has_value()) << Hex(last);
    EXPECT_EQ(fields->severity, "FATAL");
    EXPECT_EQ(fields->code, code);
    EXPECT_EQ(fields->message, message);
  }
};

TEST_F(ClientTlsTest, SslRequestGetsSThenTheLoginRunsThroughTls) {
  std::vector<std::string> events = RunTls(Ssl(), Login() + Terminate());
  ASSERT_GE(events.size(), 7u) << Join(events);
  EXPECT_EQ(std::vector<std::string>(events.begin(), events.begin() + 5),
            (std::vector<std::string>{"SendToClient 53", "OnTlsRequest after_go_ahead",
                                      "OnTlsStarted", "OnStartup user=fixture database=wp_db",
                                      "SendToClient 520000000c0000000501020304"}))
      << Join(events);
  EXPECT_NE(std::find(events.begin(), events.end(), "OnAuthenticated"), events.end())
      << Join(events);
  EXPECT_EQ(std::vector<std::string>(events.end() - 2, events.end()),
            (std::vector<std::string>{"OnTerminate", "stop"}));
  for (const auto& e : events) {
    EXPECT_FALSE(e.starts_with("to TLS")) << "the codec left nothing behind its SSLRequest";
  }
}

// CVE-2021-23214: bytes behind the SSLRequest, read before TLS starts, were not sent through TLS.
// Whatever the cut in the request, nothing of them is read as the client's, and the client,
// promised TLS, gets no plaintext answer after the 'S': only the close.
TEST_F(ClientTlsTest, PlaintextAfterTheSslRequestIsRefused) {
  const std::string ssl = Ssl();
  for (const std::string& plaintext :
       {Startup({{"user", "fixture"}}), Login() + Terminate(), std::string(1, '\0')}) {
    for (size_t cut = 0; cut < ssl.size(); ++cut) {
      SCOPED_TRACE(Cat("cut at ", cut, ", plaintext ", Hex(plaintext.substr(0, 16))));
      ClientRun run(secret_, std::string(kSalt, 4), "md5", /*tls_available=*/true);
      if (cut > 0) {
        run.Feed(ssl.substr(0, cut));
      }
      run.Feed(ssl.substr(cut) + plaintext);
      EXPECT_EQ(run.sent(), "S");
      EXPECT_EQ(run.Finish(),
                (std::vector<std::string>{
                    "SendToClient 53", "OnTlsRequest after_go_ahead",
                    "OnProtocolError INVALID_ARGUMENT: received unencrypted data after SSL request",
                    "stop"}));
    }
  }
}

TEST_F(ClientTlsTest, SslRequestGetsNWhereTlsIsNotAvailable) {
  std::vector<std::string> events = RunTls(Ssl() + Login() + Terminate(), "", false);
  ASSERT_GE(events.size(), 3u) << Join(events);
  EXPECT_EQ(events[0], "SendToClient 4e");
  EXPECT_EQ(events[1], "OnStartup user=fixture database=wp_db");
  EXPECT_NE(std::find(events.begin(), events.end(), "OnAuthenticated"), events.end())
      << Join(events);
  EXPECT_EQ(events.back(), "stop");
  for (const auto& e : events) {
    EXPECT_FALSE(e.starts_with("OnTls")) << e;
  }
}

// No GSSAPI encryption, TLS or not; libpq's default order (GSSENCRequest, refused, then
// SSLRequest) still gets TLS.
TEST_F(ClientTlsTest, GssEncRequestAlwaysGetsN) {
  for (bool tls_available : {false, true}) {
    SCOPED_TRACE(Cat("tls_available=", tls_available));
    std::vector<std::string> events = RunTls(Gss() + Login(), "", tls_available);
    ASSERT_GE(events.size(), 2u) << Join(events);
    EXPECT_EQ(events[0], "SendToClient 4e");
    EXPECT_EQ(events[1], "OnStartup user=fixture database=wp_db");
  }
  std::vector<std::string> events = RunTls(Gss() + Ssl(), Login());
  ASSERT_GE(events.size(), 5u) << Join(events);
  EXPECT_EQ(
      std::vector<std::string>(events.begin(), events.begin() + 5),
      (std::vector<std::string>{"SendToClient 4e", "SendToClient 53", "OnTlsRequest after_go_ahead",
                                "OnTlsStarted", "OnStartup user=fixture database=wp_db"}))
      << Join(events);
}

TEST_F(ClientTlsTest, SecondEncryptionRequestInsideTlsIsAViolation) {
  std::string last;
  std::vector<std::string> events = RunTls(Ssl(), Ssl() + Login(), true, &last);
  ASSERT_EQ(events.size(), 6u) << Join(events);
  EXPECT_EQ(
      std::vector<std::string>(events.begin(), events.begin() + 3),
      (std::vector<std::string>{"SendToClient 53", "OnTlsRequest after_go_ahead", "OnTlsStarted"}));
  EXPECT_EQ(events[4],
            "OnProtocolError INVALID_ARGUMENT: SSL request on a connection that is already "
            "encrypted");
  EXPECT_EQ(events[5], "stop");
  ExpectError(last, "08P01", "SSL request on a connection that is already encrypted");
  // A GSSENCRequest inside TLS too.
  events = RunTls(Ssl(), Gss());
  ASSERT_EQ(events.size(), 6u) << Join(events);
  EXPECT_TRUE(events[4].starts_with("OnProtocolError INVALID_ARGUMENT")) << events[4];
}

// PostgreSQL 17's direct TLS: the client opens with its hello. The codec takes none of it and
// pauses; the proxy hands the bytes to TLS, and the startup comes through TLS.
TEST_F(ClientTlsTest, DirectTlsPausesAndTakesNothing) {
  const std::string hello = Hello();
  for (size_t len : {size_t{1}, size_t{3}, size_t{5}, hello.size()}) {
    ClientRun run(secret_, std::string(kSalt, 4), "md5", /*tls_available=*/true);
    Step s = run.codec().OnBytes(AsBytes(std::string_view(hello).substr(0, len)));
    EXPECT_EQ(s.verdict, Verdict::kPause) << len;
    EXPECT_EQ(s.bytes, 0u) << len;
    EXPECT_EQ(run.Finish(),
              (std::vector<std::string>{"OnTlsRequest direct", "end buffered=0 mid_request=0"}));
  }
  std::vector<std::string> events = RunTls(hello, Login() + Terminate());
  ASSERT_GE(events.size(), 6u) << Join(events);
  EXPECT_EQ(std::vector<std::string>(events.begin(), events.begin() + 4),
            (std::vector<std::string>{"OnTlsRequest direct", "OnTlsStarted",
                                      "OnStartup user=fixture database=wp_db",
                                      "SendToClient 520000000c0000000501020304"}))
      << Join(events);
  EXPECT_NE(std::find(events.begin(), events.end(), "OnAuthenticated"), events.end());
  EXPECT_EQ(std::vector<std::string>(events.end() - 3, events.end()),
            (std::vector<std::string>{"OnTerminate", "stop", Cat("to TLS ", Hex(hello))}));
}

// Without TLS on offer a hello is only a startup packet of an impossible length.
TEST_F(ClientTlsTest, DirectTlsWhereTlsIsNotAvailableIsAViolation) {
  ExpectProtocolViolation(Hello());
  std::string last;
  std::vector<std::string> events = RunTls(Hello(), "", false, &last);
  ASSERT_EQ(events.size(), 3u) << Join(events);
  EXPECT_EQ(events[1], "OnProtocolError INVALID_ARGUMENT: invalid length of startup packet: " +
                           std::to_string(ReadU32(AsBytes(Hello()).data())));
  for (const auto& e : events) {
    EXPECT_FALSE(e.starts_with("OnTls")) << e;
  }
}

TEST_F(ClientTlsTest, TlsRequiredIsSqlState28000) {
  ClientRun run(secret_, std::string(kSalt, 4), "md5", /*tls_available=*/true);
  run.codec().SendError(ProxyError::kTlsRequired, "connections without TLS are refused");
  ExpectError(run.last_sent(), "28000", "connections without TLS are refused");
}

// Server side: a server that breaks the protocol after login.
std::string MinimalServerLogin() {
  Writer w;
  std::string out = w.Begin('R').U32(0).Take();
  out += ParameterStatus("server_version", "15.0");
  out += w.Begin('K').U32(42).U32(7).Take();
  out += ReadyForQuery('I');
  return out;
}

std::vector<std::string> RunServer(const std::string& input) {
  return RunAllSplits(input, {}, [] {
    return std::make_unique<ServerRun>("fixture", "fixture-pw", std::string(kSalt, 4));
  });
}

TEST(ServerBadInputTest, ShortLengthAfterLogin) {
  auto events = RunServer(MinimalServerLogin() + std::string("D\x00\x00\x00\x03", 5));
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "stop");
  EXPECT_EQ(events[events.size() - 2], "OnProtocolError DATA_LOSS: server sent message length 3");
}

TEST(ServerBadInputTest, BadReadyForQueryStatus) {
  auto events = RunServer(MinimalServerLogin() + ReadyForQuery('X'));
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "stop");
  EXPECT_TRUE(events[events.size() - 2].starts_with("OnProtocolError DATA_LOSS"));
  // ReadyForQuery without a status byte.
  events = RunServer(MinimalServerLogin() + std::string("Z\x00\x00\x00\x04", 5));
  EXPECT_TRUE(events[events.size() - 2].starts_with("OnProtocolError DATA_LOSS"));
}

TEST(ServerBadInputTest, GarbageDuringLogin) {
  auto events = RunServer("HTTP/1.1 400 Bad Request\r\n\r\n");
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "stop");
  EXPECT_TRUE(events[events.size() - 2].starts_with("OnLoginFailed code=08006")) << Join(events);
  // An unsupported auth method.
  Writer w;
  events = RunServer(w.Begin('R').U32(7).Take());
  EXPECT_TRUE(events[events.size() - 2].starts_with("OnLoginFailed code=08006")) << Join(events);
}

// TLS on the server leg: an SSLRequest first, the startup packet only with ContinueLogin.
std::vector<std::string> RunTlsServer(const std::string& before, const std::string& after) {
  const SplitPlan plan{.random_splits = kRandomSplits};
  std::vector<Split> first = Splits(before, plan);
  std::vector<Split> second = Splits(after, plan);
  AgreeingRuns runs;
  for (size_t i = 0; i < first.size() && i < second.size(); ++i) {
    ServerRun run("fixture", "fixture-pw", std::string(kSalt, 4), /*tls=*/true);
    for (const auto& chunks : {first[i].chunks, second[i].chunks}) {
      for (std::string_view chunk : chunks) {
        if (!run.stopped()) {
          run.Feed(chunk);
        }
      }
    }
    runs.Add(Cat(first[i].name, ", then ", second[i].name), run.Finish());
  }
  return runs.Take();
}

std::string ExpectedStartup() {
  Writer w;
  return w.BeginUntyped()
      .U32(kProtocol30)
      .CString("user")
      .CString("fixture")
      .CString("database")
      .CString("wp_db")
      .U8(0)
      .Take();
}

TEST(ServerTlsTest, StartSendsOnlyAnSslRequest) {
  ServerRun run("fixture", "fixture-pw", std::string(kSalt, 4), /*tls=*/true);
  ASSERT_EQ(run.sent().size(), 1u);
  EXPECT_EQ(Hex(run.sent()[0]), "0000000804d2162f");
  EXPECT_EQ(ReadU32(AsBytes(run.sent()[0]).data() + 4), 80877103u);
  // The answer is one byte, taken alone.
  Step s = run.codec().OnBytes(AsBytes("S"));
  EXPECT_EQ(s.verdict, Verdict::kConsume);
  EXPECT_EQ(s.bytes, 1u);
  EXPECT_EQ(run.sent().size(), 1u) << "no startup before ContinueLogin";
  run.codec().ContinueLogin(true);
  ASSERT_EQ(run.sent().size(), 2u);
  EXPECT_EQ(Hex(run.sent()[1]), Hex(ExpectedStartup()));
}

TEST(ServerTlsTest, SThenTheLoginRunsThroughTls) {
  std::vector<std::string> events = RunTlsServer("S", MinimalServerLogin());
  ASSERT_GE(events.size(), 5u) << Join(events);
  EXPECT_EQ(
      std::vector<std::string>(events.begin(), events.begin() + 4),
      (std::vector<std::string>{"SendToServer 0000000804d2162f", "OnTlsOffer 1", "ContinueLogin 1",
                                Cat("SendToServer ", Hex(ExpectedStartup()))}))
      << Join(events);
  EXPECT_TRUE(events[4].starts_with("OnLoginComplete")) << Join(events);
  EXPECT_NE(std::find(events.begin(), events.end(), "  parameter server_version=15.0"),
            events.end())
      << Join(events);
}

TEST(ServerTlsTest, NThenTheLoginGoesOnInPlaintext) {
  std::vector<std::string> events = RunTlsServer("N", MinimalServerLogin());
  ASSERT_GE(events.size(), 5u) << Join(events);
  EXPECT_EQ(
      std::vector<std::string>(events.begin(), events.begin() + 4),
      (std::vector<std::string>{"SendToServer 0000000804d2162f", "OnTlsOffer 0", "ContinueLogin 0",
                                Cat("SendToServer ", Hex(ExpectedStartup()))}))
      << Join(events);
  EXPECT_TRUE(events[4].starts_with("OnLoginComplete")) << Join(events);
}

// CVE-2021-23222: bytes behind the 'S', read before TLS starts, did not come through TLS.
TEST(ServerTlsTest, BytesBehindTheGoAheadFailTheLogin) {
  for (const std::string& extra : {MinimalServerLogin(), std::string("E")}) {
    ServerRun run("fixture", "fixture-pw", std::string(kSalt, 4), /*tls=*/true);
    run.Feed("S" + extra);
    std::vector<std::string> events = run.Finish();
    ASSERT_EQ(events.size(), 3u) << Join(events);
    EXPECT_EQ(events[0], "SendToServer 0000000804d2162f");
    EXPECT_TRUE(events[1].starts_with(
        "OnLoginFailed code=08006 fatal=1 message=wirepool could not log in to the server: "
        "server sent unencrypted data after its SSL response"))
        << events[1];
    EXPECT_EQ(events[2], "stop");
  }
  // After an 'N' the server owes nothing until the startup packet either.
  ServerRun run("fixture", "fixture-pw", std::string(kSalt, 4), /*tls=*/true);
  run.Feed("N" + MinimalServerLogin());
  std::vector<std::string> events = run.Finish();
  ASSERT_EQ(events.size(), 4u) << Join(events);
  EXPECT_EQ(events[1], "OnTlsOffer 0");
  EXPECT_TRUE(events[2].starts_with("OnLoginFailed code=08006")) << events[2];
  EXPECT_EQ(events[3], "stop");
}

// 'E' is an old server's (or a man in the middle's) error: never shown, never retried here.
TEST(ServerTlsTest, ErrorInsteadOfAnAnswerFailsTheLogin) {
  std::string error = ErrorResponse("FATAL", "XX000", "unsupported frontend protocol");
  std::vector<std::string> events = RunTlsServer(error, "");
  ASSERT_EQ(events.size(), 3u) << Join(events);
  EXPECT_TRUE(events[1].starts_with(
      "OnLoginFailed code=08006 fatal=1 message=wirepool could not log in to the server: "
      "server answered the SSL request with neither S nor N"))
      << events[1];
  EXPECT_EQ(events[2], "stop");
}

}  // namespace
}  // namespace wirepool::codec::postgres
