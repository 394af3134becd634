// Named prepared statements in transaction pooling (codecs/postgres/client_statements.cc and the
// statement parts of server_codec.cc): the client codec renames a client's statements to
// "wp_<key>" and prepares them again where its server lacks them; the server codec matches each
// ParseComplete / CloseComplete to the StatementNote of its message and keeps which keys its
// server holds.
//
// Each script runs whole, byte by byte and in seeded random cuts; every run must give the same
// events (and the client runs the same bytes for the server), which the tests then check line by
// line. The sinks here are this file's own and log one line per event; forwarded and consumed
// bytes are coalesced between events. The messages are built by hand rather than with wire.h's
// Writer, so that a framing mistake in the codec is not repeated in what it is compared with.

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec_feeder.h"
#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/server_codec.h"
#include "codecs/postgres/wire.h"
#include "core/crypto.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wirepool::codec::postgres {
namespace {

using ::testing::HasSubstr;
using ::wirepool::codec::testing::AsBytes;
using ::wirepool::codec::testing::CounterRandom;
using ::wirepool::codec::testing::Hex;
using ::wirepool::codec::testing::Join;
using ::wirepool::codec::testing::kSplitSeed;

constexpr int kRandomCuts = 12;

// ---------------------------------------------------------------------------------------------
// Messages, by hand

std::string I16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string I32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string Str(std::string_view s) { return Cat(s, '\0'); }
std::string Msg(char type, std::string_view body) {
  return Cat(type, I32(static_cast<uint32_t>(4 + body.size())), body);
}

// Client messages.
constexpr uint32_t kInt4 = 23;
// What follows a Parse's name: the query, its NUL, the parameter count and types.
std::string ParseBody(std::string_view sql, const std::vector<uint32_t>& types) {
  std::string body = Cat(Str(sql), I16(static_cast<uint16_t>(types.size())));
  for (uint32_t t : types) {
    body += I32(t);
  }
  return body;
}
std::string Parse(std::string_view name, std::string_view body) {
  return Msg('P', Cat(Str(name), body));
}
// A Bind's parameter part: no format codes, one text value, no result format codes.
std::string BindParams(std::string_view value) {
  return Cat(I16(0), I16(1), I32(static_cast<uint32_t>(value.size())), value, I16(0));
}
std::string Bind(std::string_view portal, std::string_view statement, std::string_view params) {
  return Msg('B', Cat(Str(portal), Str(statement), params));
}
std::string Describe(char kind, std::string_view name) { return Msg('D', Cat(kind, Str(name))); }
std::string Close(char kind, std::string_view name) { return Msg('C', Cat(kind, Str(name))); }
std::string Execute() { return Msg('E', Cat(Str(""), I32(0))); }
std::string Sync() { return Msg('S', ""); }
std::string Query(std::string_view sql) { return Msg('Q', Str(sql)); }

// Server messages.
std::string ParseComplete() { return Msg('1', ""); }
std::string CloseComplete() { return Msg('3', ""); }
std::string Ready(char status) { return Msg('Z', std::string(1, status)); }
std::string Complete(std::string_view tag) { return Msg('C', Str(tag)); }
std::string Error(std::string_view code, std::string_view message) {
  return Msg('E', Cat('S', Str("ERROR"), 'C', Str(code), 'M', Str(message), '\0'));
}

// The key the client codec files a statement under, computed here on its own: the first 32 hex
// digits of the SHA-256 of the Parse after the statement's name.
std::string KeyOf(std::string_view parse_body) {
  return Hex(crypto::Sha256(parse_body)).substr(0, 32);
}
std::string ServerName(std::string_view key) { return Cat("wp_", key); }

// One line per StatementNote: "note prepare forward <key>", "note close drop <key>", "note sync
// forward" (no key when it is empty).
std::string DescribeNote(const StatementNote& note) {
  std::string_view kind = note.kind == StatementNote::kPrepare ? "prepare"
                          : note.kind == StatementNote::kClose ? "close"
                                                               : "sync";
  return Cat("note ", kind, note.forward ? " forward" : " drop",
             note.key.empty() ? "" : Cat(" ", note.key));
}

// ---------------------------------------------------------------------------------------------
// Feeding and logging

using ::wirepool::codec::testing::Cut;
using ::wirepool::codec::testing::Feeder;

std::string Consume(std::string_view bytes) { return Cat("consume ", bytes.size()); }
std::string Forward(std::string_view bytes) { return Cat("forward ", Hex(bytes)); }
std::string Send(std::string_view bytes) { return Cat("send ", Hex(bytes)); }

// ---------------------------------------------------------------------------------------------
// The client codec

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "alice-pw";

std::string Startup() {
  std::string body =
      Cat(I32(kProtocol30), Str("user"), Str(kUser), Str("database"), Str("db"), '\0');
  return Cat(I32(static_cast<uint32_t>(4 + body.size())), body);
}

// The md5 answer to the salt the codec draws first from CounterRandom: 10 11 12 13.
std::string Md5Password() {
  std::string inner = crypto::Md5Hex(Cat(kPassword, kUser));
  return Msg('p', Str(Cat("md5", crypto::Md5Hex(Cat(inner, "\x10\x11\x12\x13")))));
}

struct ClientSetup {
  bool classify = true;
  std::set<std::string> server_has;  // the keys ServerHasStatement says the server has
};
ClientSetup ServerHas(std::string key) {
  ClientSetup setup;
  setup.server_has.insert(std::move(key));
  return setup;
}
ClientSetup Unclassified() {
  ClientSetup setup;
  setup.classify = false;
  return setup;
}

// A logged-in client codec whose sink logs notes, SendToServer, request ends and errors.
class ClientRun final : public ClientCodecSink {
 public:
  ClientRun(const ClientSetup& setup, Cut cut, uint32_t seed)
      : setup_(setup), feeder_(cut, seed, &to_server_) {
    ClientCodecOptions options;
    options.auth_method = "md5";
    options.random = CounterRandom("");
    options.classify = setup.classify;
    codec_ = std::make_unique<ClientCodec>(options, *this);
    std::string login = Startup() + Md5Password();
    std::string ignored;
    Feeder whole(Cut::kWhole, 0, &ignored);
    whole.Feed(login, [this](ByteView in) { return codec_->OnBytes(in); });
    EXPECT_TRUE(authenticated_);
    codec_->CompleteLogin({{"server_version", "16.2"}});
    logged_in_ = true;
  }

  ClientCodec& codec() { return *codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_->OnBytes(in); });
  }
  std::vector<std::string> Take() { return feeder_.Take(); }
  // What the server gets: the codec's own messages and the forwarded bytes, in order.
  const std::string& to_server() const { return to_server_; }
  // What the client got after its login.
  const std::string& to_client() const { return to_client_; }

  void SendToClient(std::string_view bytes) override {
    if (logged_in_) {
      to_client_ += bytes;
    }
  }
  void OnStartup(const StartupInfo& info) override {
    secret_ = UserSecret{info.user, kPassword, {}};
    codec_->BeginAuth(&secret_);
  }
  void OnCancelRequest(std::string_view) override { feeder_.Add("cancel"); }
  void OnAuthenticated() override { authenticated_ = true; }
  void OnAuthFailed(std::string_view reason) override { ADD_FAILURE() << reason; }
  void OnRequestEnd(uint32_t tag) override {
    feeder_.Add(Cat("request-end ", static_cast<char>(tag)));
  }
  void OnTerminate() override { feeder_.Add("terminate"); }
  void SendToServer(std::string_view bytes) override {
    feeder_.Add(Send(bytes));
    to_server_ += bytes;
  }
  bool ServerHasStatement(std::string_view key) override {
    return setup_.server_has.contains(std::string(key));
  }
  void OnStatementMessage(const StatementNote& note) override { feeder_.Add(DescribeNote(note)); }
  void OnProtocolError(const absl::Status& status) override {
    feeder_.Add(Cat("protocol-error ", Sv(status.message())));
  }

 private:
  ClientSetup setup_;
  std::string to_server_;
  std::string to_client_;
  Feeder feeder_;
  std::unique_ptr<ClientCodec> codec_;
  UserSecret secret_;
  bool authenticated_ = false;
  bool logged_in_ = false;
};

struct ClientResult {
  std::vector<std::string> events;
  std::string to_server;
  std::string to_client;
};

// Feeds `stream` after a login, whole, byte by byte and in seeded random cuts; all runs must
// give the same events and the same bytes for the server.
ClientResult RunClient(std::string_view stream, const ClientSetup& setup = {}) {
  ClientResult first;
  for (int i = -2; i < kRandomCuts; ++i) {
    Cut cut = i == -2 ? Cut::kWhole : i == -1 ? Cut::kBytewise : Cut::kRandom;
    ClientRun run(setup, cut, kSplitSeed + static_cast<uint32_t>(i + 2));
    run.Feed(stream);
    ClientResult result{run.Take(), run.to_server(), run.to_client()};
    if (i == -2) {
      first = std::move(result);
    } else {
      EXPECT_EQ(Join(result.events), Join(first.events)) << "cut " << i;
      EXPECT_EQ(Hex(result.to_server), Hex(first.to_server)) << "cut " << i;
    }
  }
  return first;
}

// The statement most tests use, and what the client codec makes of it.
std::string Body() { return ParseBody("SELECT $1", {kInt4}); }
std::string Key() { return KeyOf(Body()); }
std::string Wp() { return ServerName(Key()); }
std::string Params() { return BindParams("42"); }

// Parse S1 and its Sync, and what they give.
std::string PrepareS1() { return Parse("S1", Body()) + Sync(); }
std::vector<std::string> PrepareS1Events() {
  return {
      Cat("note close drop ", Key()),
      Cat("note prepare forward ", Key()),
      Send(Close('S', Wp()) + Parse(Wp(), Body())),
      Consume(Parse("S1", Body())),
      "note sync forward",
      "request-end S",
      Forward(Sync()),
  };
}
std::string PrepareS1ToServer() { return Close('S', Wp()) + Parse(Wp(), Body()) + Sync(); }

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(PostgresStatementsTest, KeyIsTheHashOfTheParseAfterItsName) {
  // Spelled out once (the digest from Python's hashlib), so that a change in how the key is
  // derived, or in Sha256, shows here too.
  EXPECT_EQ(Body(), std::string("SELECT $1\0\0\1\0\0\0\x17", 16));
  EXPECT_EQ(Key(), "74d920206644c6c5b4c3fa51671842cd");
}

TEST(PostgresStatementsTest, NamedParseBecomesCloseAndParseOfTheKeyName) {
  ClientResult r = RunClient(PrepareS1());
  EXPECT_EQ(Join(r.events), Join(Concat(PrepareS1Events(), {"end buffered=0"})));
  EXPECT_EQ(Hex(r.to_server), Hex(PrepareS1ToServer()));
}

TEST(PostgresStatementsTest, KeyCoversTextAndParameterTypesNotTheClientsName) {
  // S2 has S1's text and types: the same key. S3 has the text without types: another.
  std::string untyped = ParseBody("SELECT $1", {});
  std::string other_key = KeyOf(untyped);
  ASSERT_NE(other_key, Key());
  ClientResult r = RunClient(Parse("S2", Body()) + Parse("S3", untyped) + Sync());
  EXPECT_EQ(Join(r.events),
            Join({
                Cat("note close drop ", Key()),
                Cat("note prepare forward ", Key()),
                Send(Close('S', Wp()) + Parse(Wp(), Body())),
                Consume(Parse("S2", Body())),
                Cat("note close drop ", other_key),
                Cat("note prepare forward ", other_key),
                Send(Close('S', ServerName(other_key)) + Parse(ServerName(other_key), untyped)),
                Consume(Parse("S3", untyped)),
                "note sync forward",
                "request-end S",
                Forward(Sync()),
                "end buffered=0",
            }));
}

TEST(PostgresStatementsTest, BindPreparesTheStatementWhereTheServerLacksIt) {
  std::string bind = Bind("", "S1", Params());
  std::string wp_bind = Bind("", Wp(), Params());
  // The codec sends the Bind's header itself (names rewritten, length covering the parameter
  // part) and forwards the parameter part as the client wrote it.
  std::string wp_head = wp_bind.substr(0, 5 + 1 + Wp().size() + 1);
  ClientResult r = RunClient(PrepareS1() + bind + Execute() + Sync());
  EXPECT_EQ(Join(r.events),
            Join(Concat(PrepareS1Events(), {
                                               Cat("note close drop ", Key()),
                                               Cat("note prepare drop ", Key()),
                                               Send(Close('S', Wp()) + Parse(Wp(), Body())),
                                               Send(wp_head),
                                               Cat("consume ", 5 + 1 + 3),  // up to the names
                                               Forward(Params() + Execute()),
                                               "note sync forward",
                                               "request-end S",
                                               Forward(Sync()),
                                               "end buffered=0",
                                           })));
  EXPECT_EQ(Hex(r.to_server), Hex(PrepareS1ToServer() + Close('S', Wp()) + Parse(Wp(), Body()) +
                                  wp_bind + Execute() + Sync()));
}

TEST(PostgresStatementsTest, BindGoesStraightToTheKeyNameWhereTheServerHasIt) {
  std::string bind = Bind("p1", "S1", Params());
  std::string wp_bind = Bind("p1", Wp(), Params());
  std::string wp_head = wp_bind.substr(0, 5 + 3 + Wp().size() + 1);
  ClientResult r = RunClient(PrepareS1() + bind + Execute() + Sync(), ServerHas(Key()));
  EXPECT_EQ(Join(r.events),
            Join(Concat(PrepareS1Events(), {
                                               Send(wp_head),
                                               Cat("consume ", 5 + 3 + 3),  // up to the names
                                               Forward(Params() + Execute()),
                                               "note sync forward",
                                               "request-end S",
                                               Forward(Sync()),
                                               "end buffered=0",
                                           })));
  EXPECT_EQ(Hex(r.to_server), Hex(PrepareS1ToServer() + wp_bind + Execute() + Sync()));
}

TEST(PostgresStatementsTest, BindParametersStreamOnceTheNamesAreIn) {
  // A 100 000-byte value: the codec must not wait for all of it.
  std::string value(100000, 'v');
  std::string params = BindParams(value);
  std::string bind = Bind("", "S1", params);
  std::string wp_bind = Bind("", Wp(), params);
  size_t names = 5 + 1 + 3;
  ClientRun run(ServerHas(Key()), Cut::kWhole, 0);
  run.Feed(PrepareS1());

  // The header alone is not enough; the names are.
  Step step = run.codec().OnBytes(AsBytes(std::string_view(bind).substr(0, 7)));
  EXPECT_EQ(step.verdict, Verdict::kNeedMore);
  EXPECT_GT(step.bytes, 7u);
  EXPECT_LE(step.bytes, bind.size());
  step = run.codec().OnBytes(AsBytes(std::string_view(bind).substr(0, names + 10)));
  EXPECT_EQ(step.verdict, Verdict::kConsume);
  EXPECT_EQ(step.bytes, names);
  EXPECT_TRUE(run.codec().MidRequest());
  // The parameter part goes on as it comes, in pieces.
  std::string_view rest = std::string_view(bind).substr(names);
  step = run.codec().OnBytes(AsBytes(rest.substr(0, 10)));
  EXPECT_EQ(step.verdict, Verdict::kForward);
  EXPECT_EQ(step.bytes, 10u);
  EXPECT_TRUE(run.codec().MidRequest());
  step = run.codec().OnBytes(AsBytes(rest.substr(10)));
  EXPECT_EQ(step.verdict, Verdict::kForward);
  EXPECT_EQ(step.bytes, rest.size() - 10);
  std::vector<std::string> events = run.Take();
  ASSERT_GE(events.size(), 2u);
  // The header the codec sent counts the whole parameter part.
  EXPECT_EQ(events[events.size() - 2], Send(wp_bind.substr(0, 5 + 1 + Wp().size() + 1)));
}

TEST(PostgresStatementsTest, DescribeOfANamedStatementIsRewrittenTheSameWay) {
  std::string describe = Describe('S', "S1");
  // A portal named like the statement and a statement the codec does not know pass unchanged.
  std::string portal = Describe('P', "S1");
  std::string unknown = Describe('S', "S2");
  std::string stream = PrepareS1() + describe + portal + unknown + Sync();
  std::vector<std::string> tail = {
      Forward(portal + unknown), "note sync forward", "request-end S",
      Forward(Sync()),           "end buffered=0",
  };
  {
    SCOPED_TRACE("server lacks it");
    ClientResult r = RunClient(stream);
    EXPECT_EQ(Join(r.events),
              Join(Concat(Concat(PrepareS1Events(),
                                 {Cat("note close drop ", Key()), Cat("note prepare drop ", Key()),
                                  Send(Close('S', Wp()) + Parse(Wp(), Body())),
                                  Send(Describe('S', Wp())), Consume(describe)}),
                          tail)));
    EXPECT_EQ(Hex(r.to_server), Hex(PrepareS1ToServer() + Close('S', Wp()) + Parse(Wp(), Body()) +
                                    Describe('S', Wp()) + portal + unknown + Sync()));
  }
  {
    SCOPED_TRACE("server has it");
    ClientResult r = RunClient(stream, ServerHas(Key()));
    EXPECT_EQ(Join(r.events),
              Join(Concat(Concat(PrepareS1Events(), {Send(Describe('S', Wp())), Consume(describe)}),
                          tail)));
    EXPECT_EQ(Hex(r.to_server),
              Hex(PrepareS1ToServer() + Describe('S', Wp()) + portal + unknown + Sync()));
  }
}

TEST(PostgresStatementsTest, CloseForgetsTheStatementAndClosesANameNoServerHas) {
  std::string close = Close('S', "S1");
  // After the Close, S1 is the client's no more: its Bind goes to the server as written (and
  // fails there, as it would without the proxy).
  std::string bind = Bind("", "S1", Params());
  std::string close_portal = Close('P', "p1");
  ClientResult r = RunClient(PrepareS1() + close + bind + close_portal + Sync());
  EXPECT_EQ(Join(r.events), Join(Concat(PrepareS1Events(), {
                                                               "note close forward",
                                                               Send(Close('S', "wp_none")),
                                                               Consume(close),
                                                               Forward(bind),
                                                               "note close forward",
                                                               Forward(close_portal),
                                                               "note sync forward",
                                                               "request-end S",
                                                               Forward(Sync()),
                                                               "end buffered=0",
                                                           })));
  EXPECT_EQ(Hex(r.to_server),
            Hex(PrepareS1ToServer() + Close('S', "wp_none") + bind + close_portal + Sync()));
}

TEST(PostgresStatementsTest, UnnamedStatementsAndRequestEndsPassWithTheirNotes) {
  std::string parse = Parse("", ParseBody("SELECT 1", {}));
  std::string bind = Bind("", "", BindParams("x"));
  std::string describe = Describe('S', "");
  std::string close = Close('S', "");
  std::string query = Query("SELECT 2");
  std::string call = Msg('F', I32(1598) + I16(0) + I16(0) + I16(0));  // FunctionCall
  ClientResult r = RunClient(parse + bind + describe + Execute() + close + Sync() + query + call);
  EXPECT_EQ(Join(r.events), Join({
                                "note prepare forward",
                                Forward(parse + bind + describe + Execute()),
                                "note close forward",
                                Forward(close),
                                "note sync forward",
                                "request-end S",
                                Forward(Sync()),
                                "note sync forward",
                                "request-end Q",
                                Forward(query),
                                "note sync forward",
                                "request-end F",
                                Forward(call),
                                "end buffered=0",
                            }));
  EXPECT_EQ(Hex(r.to_server),
            Hex(parse + bind + describe + Execute() + close + Sync() + query + call));
}

TEST(PostgresStatementsTest, NothingIsRenamedWithoutClassify) {
  std::string stream = Parse("S1", Body()) + Bind("", "S1", Params()) + Describe('S', "S1") +
                       Execute() + Close('S', "S1") + Sync() + Query("SELECT 2");
  ClientResult r = RunClient(stream, Unclassified());
  EXPECT_EQ(Join(r.events), Join({
                                Forward(Parse("S1", Body()) + Bind("", "S1", Params()) +
                                        Describe('S', "S1") + Execute() + Close('S', "S1")),
                                "request-end S",
                                Forward(Sync()),
                                "request-end Q",
                                Forward(Query("SELECT 2")),
                                "end buffered=0",
                            }));
  EXPECT_EQ(Hex(r.to_server), Hex(stream));
}

TEST(PostgresStatementsTest, BindWithoutItsNamesIsAProtocolViolation) {
  for (std::string bind : {Msg('B', "abc"), Msg('B', std::string("\0S1", 3))}) {
    SCOPED_TRACE(Hex(bind));
    ClientResult r = RunClient(bind);
    EXPECT_EQ(Join(r.events), Join({
                                  "protocol-error malformed Bind message",
                                  "stop",
                                  Cat("end buffered=", bind.size()),
                              }));
    EXPECT_EQ(r.to_server, "");
    EXPECT_THAT(r.to_client, HasSubstr(Str("C08P01")));
    EXPECT_THAT(r.to_client, HasSubstr(Str("Mmalformed Bind message")));
  }
}

// A Describe or Close whose name has no NUL passes to the server, which rejects it.
//
// Note: OnDescribeOrClose evaluates `!name->empty()` before it checks `it != statements_.end()`,
// so for a kind 'S' with no name it reads a disengaged std::optional (undefined behaviour, which
// libstdc++ with _GLIBCXX_ASSERTIONS turns into an abort). Today the result does not depend on
// what it reads, which is why this passes.
TEST(PostgresStatementsTest, DescribeOrCloseWithoutANamePassesUnchanged) {
  std::string describe = Msg('D', "S");
  std::string close = Msg('C', "SS1");
  ClientResult r = RunClient(PrepareS1() + describe + close + Sync());
  std::vector<std::string> expected = PrepareS1Events();
  expected.back() = Forward(Sync() + describe);  // nothing between them to part them
  EXPECT_EQ(Join(r.events), Join(Concat(expected, {
                                                      "note close forward",
                                                      Forward(close),
                                                      "note sync forward",
                                                      "request-end S",
                                                      Forward(Sync()),
                                                      "end buffered=0",
                                                  })));
  EXPECT_EQ(Hex(r.to_server), Hex(PrepareS1ToServer() + describe + close + Sync()));
}

// ---------------------------------------------------------------------------------------------
// The server codec

std::string LoginAnswer() {
  return Msg('R', I32(0)) + Msg('K', I32(4711) + I32(0x0badcafe)) + Ready('I');
}

ServerLogin Login() {
  ServerLogin login;
  login.user = "wp";
  login.database = "db";
  return login;
}

class ServerRun final : public ServerCodecSink {
 public:
  ServerRun(Cut cut, uint32_t seed) : codec_(Login(), *this), feeder_(cut, seed, &to_client_) {
    codec_.Start();
    Feed(LoginAnswer());
    EXPECT_TRUE(logged_in_) << Join(feeder_.Take());
    to_client_.clear();
    feeder_ = Feeder(cut, seed, &to_client_);  // the tests read what follows the login
  }

  ServerCodec& codec() { return codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_.OnBytes(in); });
  }
  void Log(std::string event) { feeder_.Add(std::move(event)); }
  std::vector<std::string> Take() { return feeder_.Take(); }

  // A simple Query is logged as its text; anything else as hex.
  void SendToServer(std::string_view bytes) override {
    if (bytes.size() >= 6 && bytes[0] == 'Q' && bytes.back() == '\0' &&
        ReadU32(AsBytes(bytes).data() + 1) == bytes.size() - 1) {
      Log(Cat("query ", bytes.substr(5, bytes.size() - 6)));
      return;
    }
    Log(Send(bytes));
  }
  void OnLoginComplete() override { logged_in_ = true; }
  void OnLoginFailed(const WireError& e) override { Log(Cat("login-failed ", e.message)); }
  void OnReadyForQuery(TxState state) override {
    Log(state == TxState::kIdle            ? "ready idle"
        : state == TxState::kInTransaction ? "ready trans"
                                           : "ready failed");
  }
  void OnRequestFailed() override { Log("request-failed"); }
  void OnParameterStatus(std::string_view name, std::string_view value) override {
    Log(Cat("param ", name, "=", value));
  }
  void OnInternalDone(const WireError* e) override {
    Log(e == nullptr ? std::string("internal-done ok")
                     : Cat("internal-done ", e->code, " ", e->message));
  }
  void OnProtocolError(const absl::Status& status) override {
    Log(Cat("protocol-error ", Sv(status.message())));
  }

 private:
  ServerCodec codec_;
  std::string to_client_;
  Feeder feeder_;
  bool logged_in_ = false;
};

// A script: server bytes to feed, or a call from the proxy, logged as it runs.
struct Action {
  std::string bytes;
  std::function<void(ServerRun&)> call;
};
using Script = std::vector<Action>;

Action Feed(std::string bytes) { return {std::move(bytes), nullptr}; }

// ServerCodec::NoteStatementMessage, logged as the client sink logs notes.
Action Note(StatementNote::Kind kind, bool forward, std::string key = "") {
  return {"", [note = StatementNote{kind, forward, std::move(key)}](ServerRun& run) {
            run.Log(DescribeNote(note));
            run.codec().NoteStatementMessage(note);
          }};
}
Action Prepare(std::string key, bool forward) {
  return Note(StatementNote::kPrepare, forward, std::move(key));
}
Action CloseNote(std::string key, bool forward) {
  return Note(StatementNote::kClose, forward, std::move(key));
}
Action SyncNote() { return Note(StatementNote::kSync, true); }

// "has <key> -> true|false"
Action Has(std::string key) {
  return {"", [key = std::move(key)](ServerRun& run) {
            run.Log(Cat("has ", key, " -> ", run.codec().HasStatement(key) ? "true" : "false"));
          }};
}

Action Reset() {
  return {"", [](ServerRun& run) {
            run.Log("reset");
            run.codec().SendReset();
          }};
}

std::vector<std::string> RunScript(const Script& script, Cut cut, uint32_t seed) {
  ServerRun run(cut, seed);
  for (const Action& a : script) {
    if (a.call) {
      a.call(run);
    } else {
      run.Feed(a.bytes);
    }
  }
  return run.Take();
}

// Runs `script` after a login, whole, byte by byte and in seeded random cuts; all must agree.
std::vector<std::string> RunServer(const Script& script) {
  std::vector<std::string> whole = RunScript(script, Cut::kWhole, 0);
  EXPECT_EQ(Join(RunScript(script, Cut::kBytewise, 0)), Join(whole)) << "byte by byte";
  for (int i = 0; i < kRandomCuts; ++i) {
    EXPECT_EQ(Join(RunScript(script, Cut::kRandom, kSplitSeed + i)), Join(whole))
        << "random cut " << i;
  }
  return whole;
}

TEST(PostgresStatementsTest, ServerDropsTheAnswersTheClientDidNotAskFor) {
  // What a client's Parse S1 becomes: Close (answer dropped), Parse (answer forwarded), Sync.
  auto events = RunServer({
      Has("k"),
      CloseNote("k", false),
      Prepare("k", true),
      SyncNote(),
      // A Parse of an earlier request, not answered yet, does not count: an error before it could
      // still make the server skip it.
      Has("k"),
      Feed(CloseComplete()),
      Has("k"),
      Feed(ParseComplete()),
      Has("k"),
      Feed(Ready('I')),
      Has("k"),
  });
  EXPECT_EQ(Join(events), Join({
                              "has k -> false",
                              "note close drop k",
                              "note prepare forward k",
                              "note sync forward",
                              "has k -> false",
                              Consume(CloseComplete()),
                              "has k -> false",
                              Forward(ParseComplete()),
                              "has k -> true",
                              "ready idle",
                              Forward(Ready('I')),
                              "has k -> true",
                              "end buffered=0",
                          }));
}

TEST(PostgresStatementsTest, ServerForgetsAStatementItsCloseCompleteAnswers) {
  auto events = RunServer({
      Prepare("k", true),
      SyncNote(),
      Feed(ParseComplete() + Ready('I')),
      Has("k"),
      CloseNote("k", false),
      SyncNote(),
      Has("k"),  // the Close on its way counts too
      Feed(CloseComplete() + Ready('I')),
      Has("k"),
  });
  EXPECT_EQ(Join(events), Join({
                              "note prepare forward k",
                              "note sync forward",
                              Forward(ParseComplete()),
                              "ready idle",
                              Forward(Ready('I')),
                              "has k -> true",
                              "note close drop k",
                              "note sync forward",
                              "has k -> false",
                              Consume(CloseComplete()),
                              "ready idle",
                              Forward(Ready('I')),
                              "has k -> false",
                              "end buffered=0",
                          }));
}

TEST(PostgresStatementsTest, ServerDropsTheNotesAnErrorMadeTheServerSkip) {
  std::string error = Error("42601", "syntax error at or near \"SELEC\"");
  auto events = RunServer({
      Prepare("k1", false),
      Prepare("k2", true),
      SyncNote(),
      // The first Parse fails; the server skips the second and answers the Sync.
      Feed(error + Ready('I')),
      Has("k1"),
      Has("k2"),
      // The next request's ParseComplete is its own (forwarded), not the skipped k1's (dropped).
      Prepare("k2", true),
      SyncNote(),
      Feed(ParseComplete() + Ready('I')),
      Has("k2"),
      Has("k1"),
  });
  EXPECT_EQ(Join(events), Join({
                              "note prepare drop k1",
                              "note prepare forward k2",
                              "note sync forward",
                              "request-failed",
                              Forward(error),
                              "ready idle",
                              Forward(Ready('I')),
                              "has k1 -> false",
                              "has k2 -> false",
                              "note prepare forward k2",
                              "note sync forward",
                              Forward(ParseComplete()),
                              "ready idle",
                              Forward(Ready('I')),
                              "has k2 -> true",
                              "has k1 -> false",
                              "end buffered=0",
                          }));
}

TEST(PostgresStatementsTest, DiscardAllOrDeallocateAllEmptiesTheServer) {
  std::string prepared = ParseComplete() + ParseComplete() + Ready('I');
  auto events = RunServer({
      Prepare("k1", false),
      Prepare("k2", true),
      SyncNote(),
      Feed(prepared),
      // DEALLOCATE of one name (not one of ours) leaves them be.
      SyncNote(),
      Feed(Complete("DEALLOCATE") + Ready('I')),
      Has("k1"),
      SyncNote(),
      Feed(Complete("DISCARD ALL") + Ready('I')),
      Has("k1"),
      Has("k2"),
      Prepare("k1", false),
      Prepare("k2", true),
      SyncNote(),
      Feed(prepared),
      Has("k2"),
      SyncNote(),
      Feed(Complete("DEALLOCATE ALL") + Ready('I')),
      Has("k1"),
      Has("k2"),
  });
  std::vector<std::string> prepare = {
      "note prepare drop k1",   "note prepare forward k2", "note sync forward",
      Consume(ParseComplete()), Forward(ParseComplete()),  "ready idle",
      Forward(Ready('I')),
  };
  EXPECT_EQ(Join(events), Join(Concat(Concat(prepare,
                                             {
                                                 "note sync forward",
                                                 Forward(Complete("DEALLOCATE")),
                                                 "ready idle",
                                                 Forward(Ready('I')),
                                                 "has k1 -> true",
                                                 "note sync forward",
                                                 Forward(Complete("DISCARD ALL")),
                                                 "ready idle",
                                                 Forward(Ready('I')),
                                                 "has k1 -> false",
                                                 "has k2 -> false",
                                             }),
                                      Concat(prepare, {
                                                          "has k2 -> true",
                                                          "note sync forward",
                                                          Forward(Complete("DEALLOCATE ALL")),
                                                          "ready idle",
                                                          Forward(Ready('I')),
                                                          "has k1 -> false",
                                                          "has k2 -> false",
                                                          "end buffered=0",
                                                      }))));
}

TEST(PostgresStatementsTest, ResetEmptiesTheServerAndItsPendingNotes) {
  std::string reset_answer = Complete("DISCARD ALL") + Ready('I');
  auto events = RunServer({
      Prepare("k1", true),
      SyncNote(),
      Feed(ParseComplete() + Ready('I')),
      // A note whose answer never comes to the codec's notice (the client went away).
      Prepare("k2", false),
      Has("k1"),
      Reset(),
      Has("k1"),
      Has("k2"),
      Feed(reset_answer),
      // The next client's ParseComplete is matched with its own note, not the stale one.
      Prepare("k3", true),
      SyncNote(),
      Feed(ParseComplete() + Ready('I')),
      Has("k3"),
  });
  EXPECT_EQ(Join(events), Join({
                              "note prepare forward k1", "note sync forward",
                              Forward(ParseComplete()),  "ready idle",
                              Forward(Ready('I')),       "note prepare drop k2",
                              "has k1 -> true",          "reset",
                              "query DISCARD ALL",       "has k1 -> false",
                              "has k2 -> false",         Consume(Complete("DISCARD ALL")),
                              "internal-done ok",        Consume(Ready('I')),
                              "note prepare forward k3", "note sync forward",
                              Forward(ParseComplete()),  "ready idle",
                              Forward(Ready('I')),       "has k3 -> true",
                              "end buffered=0",
                          }));
}

TEST(PostgresStatementsTest, WithoutNotesEveryAnswerIsTheClients) {
  // Session pooling: the client codec sends no notes; the client's own answers pass.
  std::string answers = ParseComplete() + CloseComplete() + Complete("DISCARD ALL");
  auto events = RunServer({
      Feed(answers + Ready('I')),
      Has("k"),
  });
  EXPECT_EQ(Join(events), Join({
                              Forward(answers),
                              "ready idle",
                              Forward(Ready('I')),
                              "has k -> false",
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// Both codecs, joined as the proxy joins them

// Client bytes go through a client codec whose notes reach a server codec and whose
// ServerHasStatement that server codec answers. Fed whole.
class Joined final : public ClientCodecSink, public ServerCodecSink {
 public:
  Joined() {
    ClientCodecOptions options;
    options.auth_method = "md5";
    options.random = CounterRandom("");
    options.classify = true;
    client_ = std::make_unique<ClientCodec>(options, static_cast<ClientCodecSink&>(*this));
    server_ = std::make_unique<ServerCodec>(Login(), static_cast<ServerCodecSink&>(*this));
    server_->Start();
    Pump(
        LoginAnswer(), [this](ByteView in) { return server_->OnBytes(in); }, nullptr);
    Pump(
        Startup() + Md5Password(), [this](ByteView in) { return client_->OnBytes(in); }, nullptr);
    client_->CompleteLogin({{"server_version", "16.2"}});
    to_server_.clear();
  }

  // Returns what the server got for these client bytes.
  std::string FromClient(std::string_view bytes) {
    to_server_.clear();
    Pump(
        bytes, [this](ByteView in) { return client_->OnBytes(in); }, &to_server_);
    return std::move(to_server_);
  }
  // Returns what the client got of these server bytes.
  std::string FromServer(std::string_view bytes) {
    std::string out;
    Pump(
        bytes, [this](ByteView in) { return server_->OnBytes(in); }, &out);
    return out;
  }
  ServerCodec& server() { return *server_; }

  // Both sinks: only the bytes for the server matter here.
  void SendToServer(std::string_view bytes) override { to_server_ += bytes; }
  void OnProtocolError(const absl::Status& status) override { ADD_FAILURE() << status.message(); }
  // ClientCodecSink.
  void SendToClient(std::string_view) override {}
  void OnStartup(const StartupInfo& info) override {
    secret_ = UserSecret{info.user, kPassword, {}};
    client_->BeginAuth(&secret_);
  }
  void OnCancelRequest(std::string_view) override {}
  void OnAuthenticated() override {}
  void OnAuthFailed(std::string_view reason) override { ADD_FAILURE() << reason; }
  void OnRequestEnd(uint32_t) override {}
  void OnTerminate() override {}
  bool ServerHasStatement(std::string_view key) override { return server_->HasStatement(key); }
  void OnStatementMessage(const StatementNote& note) override {
    server_->NoteStatementMessage(note);
  }
  // ServerCodecSink.
  void OnLoginComplete() override {}
  void OnLoginFailed(const WireError& e) override { ADD_FAILURE() << e.message; }
  void OnReadyForQuery(TxState) override {}
  void OnParameterStatus(std::string_view, std::string_view) override {}
  void OnInternalDone(const WireError*) override {}

 private:
  static void Pump(std::string_view bytes, const std::function<Step(ByteView)>& step,
                   std::string* forwarded) {
    while (!bytes.empty()) {
      Step s = step(AsBytes(bytes));
      if (s.verdict != Verdict::kForward && s.verdict != Verdict::kConsume) {
        ADD_FAILURE() << "unexpected verdict " << static_cast<int>(s.verdict);
        return;
      }
      if (s.verdict == Verdict::kForward && forwarded != nullptr) {
        forwarded->append(bytes.substr(0, s.bytes));
      }
      bytes.remove_prefix(s.bytes);
    }
  }

  std::unique_ptr<ClientCodec> client_;
  std::unique_ptr<ServerCodec> server_;
  std::string to_server_;
  UserSecret secret_;
};

TEST(PostgresStatementsTest, JoinedCodecsPrepareOncePerServer) {
  Joined j;
  EXPECT_EQ(Hex(j.FromClient(PrepareS1())), Hex(PrepareS1ToServer()));
  EXPECT_EQ(Hex(j.FromServer(CloseComplete() + ParseComplete() + Ready('I'))),
            Hex(ParseComplete() + Ready('I')));
  // The server has it now: a Bind goes straight to it.
  std::string bind = Bind("", "S1", Params());
  EXPECT_EQ(Hex(j.FromClient(bind + Execute() + Sync())),
            Hex(Bind("", Wp(), Params()) + Execute() + Sync()));
  std::string answer = Msg('2', "") + Complete("SELECT 1") + Ready('I');
  EXPECT_EQ(Hex(j.FromServer(answer)), Hex(answer));
  // A server without it (as after a reset, or another server) gets the Parse first, once, even
  // with two Binds before the answer; its ParseComplete does not reach the client.
  j.server().SendReset();
  EXPECT_EQ(j.FromServer(Complete("DISCARD ALL") + Ready('I')), "");
  EXPECT_EQ(Hex(j.FromClient(bind + Execute() + bind + Execute() + Sync())),
            Hex(Close('S', Wp()) + Parse(Wp(), Body()) + Bind("", Wp(), Params()) + Execute() +
                Bind("", Wp(), Params()) + Execute() + Sync()));
  answer = Msg('2', "") + Complete("SELECT 1") + Msg('2', "") + Complete("SELECT 1") + Ready('I');
  EXPECT_EQ(Hex(j.FromServer(CloseComplete() + ParseComplete() + answer)), Hex(answer));
}

// A pipelined request after one that fails must still find its statement prepared.
//
// R1 is the first on a server that lacks S1's key: the client codec puts a Parse of wp_<key>
// before R1's Bind of S1. R2, sent before R1's answer, asks ServerHasStatement, which says yes
// because that Parse is on its way (ServerCodec::HasStatement counts pending Prepare notes), so
// R2 gets no Parse. But an error earlier in R1 makes the server skip the rest of R1, that Parse
// included; at R1's ReadyForQuery the note is dropped and R2's Bind of wp_<key> fails with
// 26000 `prepared statement "wp_..." does not exist`, where without the proxy S1 (prepared by
// the client earlier) would run. The comment in HasStatement ("the client hears of it and
// prepares again") holds only for requests sent after R1's answer.
//
// DISABLED: fails today. A fix might count a pending Parse only within its own request (no Sync
// note after it) and otherwise send Close + Parse again, as OnParse does; this test asks only
// that R2 carries a Parse of the statement before its Bind.
TEST(PostgresStatementsTest, PipelinedRequestAfterAFailedOneStillHasItsStatement) {
  Joined j;
  j.FromClient(PrepareS1());
  j.FromServer(CloseComplete() + ParseComplete() + Ready('I'));
  // The client moves to a server that lacks the key.
  j.server().SendReset();
  j.FromServer(Complete("DISCARD ALL") + Ready('I'));

  std::string bad = Parse("", ParseBody("SELEC 1", {}));
  std::string r1 = bad + Bind("", "", BindParams("x")) + Execute() + Bind("", "S1", Params()) +
                   Execute() + Sync();
  std::string r2 = Bind("", "S1", Params()) + Execute() + Sync();
  std::string r1_to_server = j.FromClient(r1);
  EXPECT_THAT(Hex(r1_to_server), HasSubstr(Hex(Parse(Wp(), Body()))));
  std::string r2_to_server = j.FromClient(r2);
  // The server fails R1 at its first Parse and skips to the Sync.
  j.FromServer(Error("42601", "syntax error at or near \"SELEC\"") + Ready('I'));
  EXPECT_FALSE(j.server().HasStatement(Key()));
  std::string wp_bind = Bind("", Wp(), Params());
  size_t bind_at = r2_to_server.find(wp_bind);
  ASSERT_NE(bind_at, std::string::npos) << Hex(r2_to_server);
  EXPECT_THAT(Hex(r2_to_server.substr(0, bind_at)), HasSubstr(Hex(Parse(Wp(), Body()))));
}

}  // namespace
}  // namespace wirepool::codec::postgres
