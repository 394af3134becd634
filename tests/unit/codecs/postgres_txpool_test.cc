// Transaction pooling in the PostgreSQL codecs: what postgres::ServerCodec does for the proxy
// (ApplyParameters, SendReadBack, OnRequestFailed) and what postgres::ClientCodec reports when
// ClientCodecOptions::classify is on (OnRequestEffects).
//
// Each script runs whole, byte by byte and in seeded random cuts; every run must give the same
// events, which the tests then check line by line. The sinks here are this file's own and log
// one line per event; forwarded and consumed bytes are coalesced between events, as in
// codec_test_driver.h's EventLog.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec_feeder.h"
#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/api/session.h"
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
using ::wirepool::codec::testing::DescribeEffects;
using ::wirepool::codec::testing::Hex;
using ::wirepool::codec::testing::Join;
using ::wirepool::codec::testing::kRandomCuts;
using ::wirepool::codec::testing::kSplitSeed;
using ::wirepool::codec::testing::PinNames;

// ---------------------------------------------------------------------------------------------
// Messages

std::string AuthOk() { return Writer().Begin('R').U32(0).Take(); }
std::string BackendKey() { return Writer().Begin('K').U32(4711).U32(0x0badcafe).Take(); }
std::string Complete(std::string_view tag) { return Writer().Begin('C').CString(tag).Take(); }
std::string Error(std::string_view code, std::string_view message) {
  return ErrorResponse("ERROR", code, message);
}

std::string RowDescription(const std::vector<std::string>& names) {
  Writer w;
  w.Begin('T').U16(static_cast<uint16_t>(names.size()));
  for (const std::string& name : names) {
    w.CString(name).U32(0).U16(0).U32(25).U16(0xffff).U32(0xffffffff).U16(0);  // text
  }
  return w.Take();
}

std::string DataRow(const std::vector<std::optional<std::string>>& values) {
  Writer w;
  w.Begin('D').U16(static_cast<uint16_t>(values.size()));
  for (const auto& v : values) {
    if (v) {
      w.U32(static_cast<uint32_t>(v->size())).Bytes(*v);
    } else {
      w.U32(0xffffffff);
    }
  }
  return w.Take();
}

// The answer to a one-row SELECT of `values`.
std::string SelectAnswer(const std::vector<std::optional<std::string>>& values) {
  std::vector<std::string> names(values.size(), "c");
  return RowDescription(names) + DataRow(values) + Complete("SELECT 1") + ReadyForQuery('I');
}

// ---------------------------------------------------------------------------------------------
// Feeding and logging

using ::wirepool::codec::testing::Cut;
using ::wirepool::codec::testing::Feeder;

// What the server says to a login with no password.
std::string LoginAnswer() {
  return AuthOk() + ParameterStatus("application_name", "app") +
         ParameterStatus("TimeZone", "UTC") + ParameterStatus("server_version", "16.2") +
         ParameterStatus("is_superuser", "on") + BackendKey() + ReadyForQuery('I');
}

ServerLogin Login() {
  ServerLogin login;
  login.user = "wp";
  login.database = "db";
  login.params = {{"application_name", "app"}, {"DateStyle", "ISO, MDY"}};
  return login;
}

class ServerRun final : public ServerCodecSink {
 public:
  ServerRun(const ServerLogin& login, Cut cut, uint32_t seed)
      : codec_(login, *this), feeder_(cut, seed) {
    codec_.Start();
    Feed(LoginAnswer());
    EXPECT_TRUE(logged_in_) << Join(feeder_.Take());
    feeder_ = Feeder(cut, seed);  // the tests read what follows the login
  }

  ServerCodec& codec() { return codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_.OnBytes(in); });
  }
  void Log(std::string event) { feeder_.Add(std::move(event)); }
  std::vector<std::string> Take() { return feeder_.Take(); }

  // A simple Query is logged as its text (which also checks its framing); anything else as hex.
  void SendToServer(std::string_view bytes) override {
    if (bytes.size() >= 6 && bytes[0] == 'Q' && bytes.back() == '\0' &&
        ReadU32(AsBytes(bytes).data() + 1) == bytes.size() - 1) {
      std::string_view sql = bytes.substr(5, bytes.size() - 6);
      if (sql.find('\0') == std::string_view::npos) {
        Log(Cat("query ", sql));
        return;
      }
    }
    Log(Cat("send ", Hex(bytes)));
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
  Feeder feeder_;
  bool logged_in_ = false;
};

using Action = ::wirepool::codec::testing::ScriptAction<ServerCodec>;
using Script = std::vector<Action>;

Action Feed(std::string bytes) { return {std::move(bytes), "", nullptr}; }

std::string Describe(const ParamList& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    out += Cat(out.empty() ? "" : ", ", name, "=", value);
  }
  return out;
}

Action Apply(ParamList wanted) {
  std::string label = Cat("apply {", Describe(wanted), "}");
  return {"", std::move(label), [wanted = std::move(wanted)](ServerCodec& c) {
            return Cat("-> ", c.ApplyParameters(wanted) ? "true" : "false");
          }};
}

Action ReadBack(std::vector<std::string> names) {
  std::string list;
  for (const std::string& n : names) {
    list += Cat(list.empty() ? "" : ", ", n);
  }
  return {"", Cat("read-back {", list, "}"), [names = std::move(names)](ServerCodec& c) {
            return Cat("-> ", c.SendReadBack(names) ? "true" : "false");
          }};
}

Action Internal(std::string sql) {
  return {"", "internal query", [sql = std::move(sql)](ServerCodec& c) {
            c.SendInternalQuery(sql);
            return std::string();
          }};
}

std::vector<std::string> RunAllWays(const Script& script, const ServerLogin& login = Login()) {
  return ::wirepool::codec::testing::RunScriptAllWays<ServerRun>(script, login);
}

using ::wirepool::codec::testing::Consume;

// ---------------------------------------------------------------------------------------------
// ServerCodec::ApplyParameters

TEST(PostgresTxpoolTest, ApplySetsWhatDiffersInOneQueryAndResetsWhatIsNoLongerWanted) {
  std::string set_answer = SelectAnswer({"64MB", "a, b"});
  std::string reset_answer = Complete("RESET") + Complete("RESET") + ReadyForQuery('I');
  ParamList wanted = {{"work_mem", "64MB"}, {"search_path", "a, b"}};
  auto events = RunAllWays(
      {Apply(wanted), Feed(set_answer), Apply(wanted), Apply({}), Feed(reset_answer), Apply({})});
  std::string head = set_answer.substr(0, set_answer.size() - 6);
  EXPECT_EQ(Join(events), Join({
                              "apply {work_mem=64MB, search_path=a, b}",
                              "query SELECT pg_catalog.set_config(E'work_mem', E'64MB', false), "
                              "pg_catalog.set_config(E'search_path', E'a, b', false);",
                              "-> true",
                              Consume(head),
                              "internal-done ok",
                              "consume 6",
                              "apply {work_mem=64MB, search_path=a, b}",
                              "-> false",
                              "apply {}",
                              "query RESET \"work_mem\";RESET \"search_path\";",
                              "-> true",
                              Consume(reset_answer.substr(0, reset_answer.size() - 6)),
                              "internal-done ok",
                              "consume 6",
                              "apply {}",
                              "-> false",
                              "end buffered=0",
                          }));
}

TEST(PostgresTxpoolTest, ApplyLeavesStartupAndReportedValuesAlone) {
  // The server reports the change (application_name is GUC_REPORT); the codec keeps it to
  // itself, as the request was its own.
  std::string set_answer = SelectAnswer({"psql", "1MB"});
  set_answer.insert(set_answer.size() - 6, ParameterStatus("application_name", "psql"));
  std::string reset_answer = Complete("RESET") + ParameterStatus("application_name", "app") +
                             Complete("RESET") + ReadyForQuery('I');
  auto events = RunAllWays({
      // Equal to the startup packet's value, or to what the server reported at login.
      Apply({{"application_name", "app"}, {"DateStyle", "ISO, MDY"}, {"timezone", "UTC"}}),
      Apply({{"APPLICATION_NAME", "psql"}, {"work_mem", "1MB"}, {"DateStyle", "ISO, MDY"}}),
      Feed(set_answer),
      // DateStyle is the startup value: never reset. application_name goes back to it.
      Apply({{"DateStyle", "ISO, MDY"}}),
      Feed(reset_answer),
      Apply({}),
      Apply({{"application_name", "app"}}),
  });
  EXPECT_EQ(Join(events),
            Join({
                "apply {application_name=app, DateStyle=ISO, MDY, timezone=UTC}",
                "-> false",
                "apply {APPLICATION_NAME=psql, work_mem=1MB, DateStyle=ISO, MDY}",
                "query SELECT pg_catalog.set_config(E'application_name', E'psql', false), "
                "pg_catalog.set_config(E'work_mem', E'1MB', false);",
                "-> true",
                Consume(set_answer.substr(0, set_answer.size() - 6)),
                "internal-done ok",
                "consume 6",
                "apply {DateStyle=ISO, MDY}",
                "query RESET \"application_name\";RESET \"work_mem\";",
                "-> true",
                Consume(reset_answer.substr(0, reset_answer.size() - 6)),
                "internal-done ok",
                "consume 6",
                "apply {}",
                "-> false",
                "apply {application_name=app}",
                "-> false",
                "end buffered=0",
            }));
}

TEST(PostgresTxpoolTest, ApplyNeverSetsReadOnlyParameters) {
  auto events = RunAllWays({
      Apply({{"server_version", "99"},
             {"is_superuser", "off"},
             {"Server_Encoding", "LATIN1"},
             {"integer_datetimes", "off"},
             {"in_hot_standby", "on"}}),
      Apply({{"is_superuser", "off"}, {"work_mem", "2MB"}}),
  });
  EXPECT_EQ(Join(events), Join({
                              "apply {server_version=99, is_superuser=off, Server_Encoding=LATIN1, "
                              "integer_datetimes=off, in_hot_standby=on}",
                              "-> false",
                              "apply {is_superuser=off, work_mem=2MB}",
                              "query SELECT pg_catalog.set_config(E'work_mem', E'2MB', false);",
                              "-> true",
                              "end buffered=0",
                          }));
}

TEST(PostgresTxpoolTest, ApplyQuotesNamesAndValues) {
  std::string set_answer = SelectAnswer({"x"});
  auto events = RunAllWays({
      Apply({{"wp.A\"b", "it's a \\ value"}}),
      Feed(set_answer),
      Apply({}),
  });
  EXPECT_EQ(Join(events), Join({
                              "apply {wp.A\"b=it's a \\ value}",
                              "query SELECT pg_catalog.set_config(E'wp.a\"b', "
                              "E'it''s a \\\\ value', false);",
                              "-> true",
                              Consume(set_answer.substr(0, set_answer.size() - 6)),
                              "internal-done ok",
                              "consume 6",
                              "apply {}",
                              "query RESET \"wp.a\"\"b\";",
                              "-> true",
                              "end buffered=0",
                          }));
}

// ApplyParameters remembers that a list needed nothing; a change the server reports afterwards
// (here a client's SET) must make the same list count again, not reuse that answer.
TEST(PostgresTxpoolTest, ApplyRechecksTheSameListAfterTheServerReportsAChange) {
  std::string client_answer =
      Complete("SET") + ParameterStatus("application_name", "other") + ReadyForQuery('I');
  ParamList wanted = {{"application_name", "app"}};
  auto events = RunAllWays({Apply(wanted), Apply(wanted), Feed(client_answer), Apply(wanted)});
  EXPECT_EQ(Join(events), Join({
                              "apply {application_name=app}",
                              "-> false",
                              "apply {application_name=app}",
                              "-> false",
                              Cat("forward ", Hex(Complete("SET"))),
                              "param application_name=other",
                              Cat("forward ", Hex(ParameterStatus("application_name", "other"))),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "apply {application_name=app}",
                              "query SELECT pg_catalog.set_config(E'application_name', E'app', "
                              "false);",
                              "-> true",
                              "end buffered=0",
                          }));
}

TEST(PostgresTxpoolTest, ChangesAClientMadeAreResetForTheNext) {
  // A client's SET application_name: reported to the sink and forwarded; the next client, who
  // does not want it, gets the startup value back.
  std::string client_answer =
      Complete("SET") + ParameterStatus("application_name", "mine") + ReadyForQuery('I');
  std::string set_line = Complete("SET");
  std::string status = ParameterStatus("application_name", "mine");
  auto events = RunAllWays({Feed(client_answer), Apply({{"application_name", "mine"}}), Apply({})});
  EXPECT_EQ(Join(events), Join({
                              Cat("forward ", Hex(set_line)),
                              "param application_name=mine",
                              Cat("forward ", Hex(status)),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "apply {application_name=mine}",
                              "-> false",
                              "apply {}",
                              "query RESET \"application_name\";",
                              "-> true",
                              "end buffered=0",
                          }));
}

// A read-only parameter the server reports after login must not be RESET for the next client:
// PostgreSQL refuses (55P02 `parameter "is_superuser" cannot be changed`), which fails the whole
// internal query, and with it the next client's attach and the server connection. Reports of
// this kind: is_superuser after a client's SET ROLE / SET SESSION AUTHORIZATION (login as a
// superuser), in_hot_standby sent to every session, idle ones too, when a standby is promoted.
//
// DISABLED: fails today. ServerCodec::OnRunning records every ParameterStatus outside an internal
// request with NoteChanged, and ApplyParameters's reset loop then sends `RESET "is_superuser";
// RESET "in_hot_standby";` (ReadOnly() is checked only for the names in `wanted`). Enable once the
// codec leaves read-only names out of applied_ (or out of the resets).
TEST(PostgresTxpoolTest, ReadOnlyReportsAreNeverReset) {
  std::string role = Complete("SET") + ParameterStatus("is_superuser", "off") + ReadyForQuery('I');
  std::string promoted = ParameterStatus("in_hot_standby", "off");
  auto events = RunAllWays({Feed(role), Feed(promoted), Apply({})});
  EXPECT_EQ(Join(events), Join({
                              Cat("forward ", Hex(Complete("SET"))),
                              "param is_superuser=off",
                              Cat("forward ", Hex(ParameterStatus("is_superuser", "off"))),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "param in_hot_standby=off",
                              Cat("forward ", Hex(promoted)),
                              "apply {}",
                              "-> false",
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// Forwarding

TEST(PostgresTxpoolTest, WholeDataRowsPassInOneStep) {
  std::string rows;
  for (int i = 0; i < 100; ++i) {
    rows += DataRow({Cat("row ", i)});
  }
  std::string cut_row = DataRow({"the last row, cut short"});
  std::string answer =
      RowDescription({"c"}) + rows + cut_row + Complete("SELECT 101") + ReadyForQuery('I');
  ServerRun run(Login(), Cut::kWhole, 0);
  // The last row arrives in two reads: the whole rows before it pass in one step, then what
  // there is of it, then its rest.
  const size_t first_read = answer.size() - Complete("SELECT 101").size() -
                            ReadyForQuery('I').size() - cut_row.size() / 2;
  std::string forwarded;
  std::vector<size_t> steps;
  auto feed = [&](std::string_view bytes) {
    ByteView in = AsBytes(bytes);
    for (size_t at = 0; at < in.size();) {
      Step s = run.codec().OnBytes(in.subspan(at));
      ASSERT_EQ(s.verdict, Verdict::kForward) << "at " << at;
      forwarded.append(bytes.substr(at, s.bytes));
      steps.push_back(s.bytes);
      at += s.bytes;
    }
  };
  feed(std::string_view(answer).substr(0, first_read));
  feed(std::string_view(answer).substr(first_read));
  EXPECT_EQ(forwarded, answer);
  const size_t t = RowDescription({"c"}).size();
  EXPECT_THAT(steps, ::testing::ElementsAre(
                         t, rows.size(), cut_row.size() / 2, cut_row.size() - cut_row.size() / 2,
                         Complete("SELECT 101").size(), ReadyForQuery('I').size()));
}

// ---------------------------------------------------------------------------------------------
// ServerCodec::SendReadBack

TEST(PostgresTxpoolTest, ReadBackReportsEachNonNullValue) {
  std::string answer = SelectAnswer({"8MB", std::nullopt});
  std::string row_description = RowDescription({"c", "c"});
  std::string row = DataRow({"8MB", std::nullopt});
  auto events = RunAllWays({
      ReadBack({}),
      ReadBack({"work_mem", "wp.tag"}),
      Feed(answer),
      // The value read back is the session's now: wanting it needs nothing, not wanting it resets.
      Apply({{"work_mem", "8MB"}}),
      Apply({}),
  });
  EXPECT_EQ(Join(events), Join({
                              "read-back {}",
                              "-> false",
                              "read-back {work_mem, wp.tag}",
                              "query SELECT pg_catalog.current_setting(E'work_mem', true), "
                              "pg_catalog.current_setting(E'wp.tag', true)",
                              "-> true",
                              Consume(row_description),
                              "param work_mem=8MB",
                              Consume(row + Complete("SELECT 1")),
                              "internal-done ok",
                              "consume 6",
                              "apply {work_mem=8MB}",
                              "-> false",
                              "apply {}",
                              "query RESET \"work_mem\";",
                              "-> true",
                              "end buffered=0",
                          }));
}

TEST(PostgresTxpoolTest, ReadBackIgnoresARowOfTheWrongShape) {
  // Not one column per name asked: nothing is reported, nothing is recorded.
  std::string answer =
      RowDescription({"c"}) + DataRow({"8MB"}) + Complete("SELECT 1") + ReadyForQuery('I');
  auto events = RunAllWays({ReadBack({"work_mem", "wp.tag"}), Feed(answer), Apply({})});
  EXPECT_EQ(Join(events), Join({
                              "read-back {work_mem, wp.tag}",
                              "query SELECT pg_catalog.current_setting(E'work_mem', true), "
                              "pg_catalog.current_setting(E'wp.tag', true)",
                              "-> true",
                              Consume(answer.substr(0, answer.size() - 6)),
                              "internal-done ok",
                              "consume 6",
                              "apply {}",
                              "-> false",
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// ServerCodec: OnRequestFailed

TEST(PostgresTxpoolTest, RequestFailedOncePerFailingClientResponse) {
  std::string error = Error("42601", "syntax error at or near \"SELEC\"");
  std::string second = Error("25P02", "current transaction is aborted");
  std::string internal_error = Error("42704", "unrecognized configuration parameter");
  std::string ok = Complete("SELECT 1") + ReadyForQuery('I');
  auto events = RunAllWays({
      Feed(error + ReadyForQuery('I')),
      // Two errors in one response (a pipeline up to one Sync): still once.
      Feed(error + second + ReadyForQuery('E')),
      Feed(ok),
      // The codec's own request: its error is the internal result, not a failed client request.
      Internal("SHOW nope"),
      Feed(internal_error + ReadyForQuery('I')),
      Feed(error + ReadyForQuery('I')),
  });
  EXPECT_EQ(Join(events), Join({
                              "request-failed",
                              Cat("forward ", Hex(error)),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "request-failed",
                              Cat("forward ", Hex(error + second)),
                              "ready failed",
                              Cat("forward ", Hex(ReadyForQuery('E') + Complete("SELECT 1"))),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "internal query",
                              "query SHOW nope",
                              Consume(internal_error),
                              "internal-done 42704 unrecognized configuration parameter",
                              "consume 6",
                              "request-failed",
                              Cat("forward ", Hex(error)),
                              "ready idle",
                              Cat("forward ", Hex(ReadyForQuery('I'))),
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// ClientCodec with classify

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "alice-pw";

std::string Startup() {
  Writer w;
  w.BeginUntyped().U32(kProtocol30).CString("user").CString(kUser);
  w.CString("database").CString("db").U8(0);
  return w.Take();
}

// The md5 answer to the salt the codec draws first from CounterRandom: 10 11 12 13.
std::string Md5Password() {
  std::string inner = crypto::Md5Hex(Cat(kPassword, kUser));
  return Writer()
      .Begin('p')
      .CString(Cat("md5", crypto::Md5Hex(Cat(inner, "\x10\x11\x12\x13"))))
      .Take();
}

std::string Query(std::string_view sql) { return QueryMessage(sql); }
std::string Parse(std::string_view name, std::string_view sql) {
  return Writer().Begin('P').CString(name).CString(sql).U16(0).Take();
}
std::string Bind(std::string_view statement) {
  return Writer().Begin('B').CString("").CString(statement).U16(0).U16(0).U16(0).Take();
}
std::string Execute() { return Writer().Begin('E').CString("").U32(0).Take(); }
std::string Sync() { return Writer().Begin('S').Take(); }

class ClientRun final : public ClientCodecSink {
 public:
  ClientRun(bool classify, Cut cut, uint32_t seed, PinSet refuse_pins = 0)
      : feeder_(cut, seed), refuse_pins_(refuse_pins) {
    ClientCodecOptions options;
    options.auth_method = "md5";
    options.random = CounterRandom("");
    options.classify = classify;
    options.refuse_pins = refuse_pins;
    codec_ = std::make_unique<ClientCodec>(options, *this);
    std::string login = Startup() + Md5Password();
    Feeder whole(Cut::kWhole, 0);
    whole.Feed(login, [this](ByteView in) { return codec_->OnBytes(in); });
    EXPECT_TRUE(authenticated_);
    codec_->CompleteLogin({{"server_version", "16.2"}});
  }

  ClientCodec& codec() { return *codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_->OnBytes(in); });
  }
  std::vector<std::string> Take() { return feeder_.Take(); }
  const std::string& forwarded() const { return feeder_.forwarded(); }
  const std::vector<std::string>& statements() const { return statements_; }

  void SendToClient(std::string_view) override {}
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
  void OnRequestEffects(const RequestEffects& effects) override {
    statements_.push_back(effects.statement);
    feeder_.Add(DescribeEffects(effects));
  }
  void OnTerminate() override { feeder_.Add("terminate"); }
  void OnProtocolError(const absl::Status& status) override {
    feeder_.Add(Cat("protocol-error ", Sv(status.message())));
  }
  // pin_as_error: the refusal, and what the codec sends the server in the request's place.
  void OnRequestRefused(const RequestEffects& effects) override {
    feeder_.Add(Cat("refused ", PinNames(effects.pins)));
  }
  void SendToServer(std::string_view bytes) override {
    if (refuse_pins_ != 0) {
      feeder_.Add(Cat("to-server ", Hex(bytes)));
    }
  }

 private:
  std::unique_ptr<ClientCodec> codec_;
  Feeder feeder_;
  UserSecret secret_;
  bool authenticated_ = false;
  std::vector<std::string> statements_;
  PinSet refuse_pins_ = 0;
};

// Feeds `stream` after a login, whole, byte by byte and in seeded random cuts; all runs must
// agree and forward the stream unchanged. `statements` gets the first run's effect statements.
std::vector<std::string> RunClient(std::string_view stream, bool classify,
                                   std::vector<std::string>* statements = nullptr) {
  std::vector<std::string> first;
  for (int i = -2; i < kRandomCuts; ++i) {
    Cut cut = i == -2 ? Cut::kWhole : i == -1 ? Cut::kBytewise : Cut::kRandom;
    ClientRun run(classify, cut, kSplitSeed + static_cast<uint32_t>(i + 2));
    run.Feed(stream);
    std::vector<std::string> events = run.Take();
    EXPECT_EQ(run.forwarded(), stream) << "cut " << i;
    if (i == -2) {
      first = std::move(events);
      if (statements != nullptr) {
        *statements = run.statements();
      }
    } else {
      EXPECT_EQ(Join(events), Join(first)) << "cut " << i;
    }
  }
  return first;
}

// The events without the forward lines (RunClient checks that everything was forwarded).
std::vector<std::string> Reports(std::vector<std::string> events) {
  std::erase_if(events, [](const std::string& e) { return e.starts_with("forward "); });
  return events;
}

TEST(PostgresTxpoolTest, ClassifiedRequestsReportEffectsBeforeTheirEnd) {
  std::string set = Query("SET work_mem = '1MB'");
  std::string select = Query("SELECT 1");
  // A Parse is classified like a Query; its effects come before the Sync that ends its request.
  std::string lock = Parse("", "SELECT pg_advisory_lock($1)");
  std::string unnamed = Parse("", "SET search_path = a, b");
  std::string portal = Bind("") + Execute();
  std::string plain = Parse("", "SELECT 2");
  std::string stream =
      set + select + lock + portal + Sync() + unnamed + portal + Sync() + plain + portal + Sync();
  std::vector<std::string> statements;
  auto events = RunClient(stream, /*classify=*/true, &statements);
  EXPECT_EQ(Join(events), Join({
                              "effects read_back=work_mem",
                              "request-end Q",
                              Cat("forward ", Hex(set)),
                              "request-end Q",
                              Cat("forward ", Hex(select)),
                              "effects pins=advisory_lock",
                              Cat("forward ", Hex(lock + portal)),
                              "request-end S",
                              Cat("forward ", Hex(Sync())),
                              "effects read_back=search_path",
                              Cat("forward ", Hex(unnamed + portal)),
                              "request-end S",
                              Cat("forward ", Hex(Sync() + plain + portal)),
                              "request-end S",
                              Cat("forward ", Hex(Sync())),
                              "end buffered=0",
                          }));
  ASSERT_EQ(statements.size(), 3u);
  EXPECT_EQ(statements[0], "");
  EXPECT_THAT(statements[1], HasSubstr("pg_advisory_lock"));
  EXPECT_EQ(statements[2], "");
}

TEST(PostgresTxpoolTest, NothingIsReportedWithoutClassify) {
  std::string stream = Query("SET work_mem = '1MB'") + Parse("", "SET search_path = x") + Sync() +
                       Query("SELECT pg_advisory_lock(1)");
  EXPECT_EQ(Join(Reports(RunClient(stream, /*classify=*/false))),
            Join({"request-end Q", "request-end S", "request-end Q", "end buffered=0"}));
  // The same stream, classified.
  EXPECT_EQ(
      Join(Reports(RunClient(stream, /*classify=*/true))),
      Join({"effects read_back=work_mem", "request-end Q", "effects read_back=search_path",
            "request-end S", "effects pins=advisory_lock", "request-end Q", "end buffered=0"}));
}

TEST(PostgresTxpoolTest, QueryIsHeldUntilWholeOnlyWhenClassifying) {
  std::string query = Query("SET work_mem = '1MB'");
  for (bool classify : {true, false}) {
    SCOPED_TRACE(classify ? "classify" : "no classify");
    ClientRun run(classify, Cut::kWhole, 0);
    Step step = run.codec().OnBytes(AsBytes(std::string_view(query).substr(0, 10)));
    if (classify) {
      EXPECT_EQ(step.verdict, Verdict::kNeedMore);
      EXPECT_EQ(step.bytes, query.size());
    } else {
      EXPECT_EQ(step.verdict, Verdict::kForward);
      EXPECT_EQ(step.bytes, 10u);
      EXPECT_TRUE(run.codec().MidRequest());
    }
    EXPECT_EQ(Join(run.Take()),
              Join(classify ? std::vector<std::string>{"end buffered=0"}
                            : std::vector<std::string>{"request-end Q", "end buffered=0"}));
  }
}

TEST(PostgresTxpoolTest, QueryTooLargeToClassifyPinsAtOnce) {
  // Over 1 MiB: not held; the first bytes suffice to pin.
  constexpr size_t kText = (1 << 20) + 10;
  uint32_t len = static_cast<uint32_t>(4 + kText + 1);
  std::string head = std::string("Q") + static_cast<char>(len >> 24) +
                     static_cast<char>(len >> 16) + static_cast<char>(len >> 8) +
                     static_cast<char>(len);
  std::string start = head + "SELECT 1 /* ";
  ClientRun run(/*classify=*/true, Cut::kWhole, 0);
  Step step = run.codec().OnBytes(AsBytes(start));
  EXPECT_EQ(step.verdict, Verdict::kForward);
  EXPECT_EQ(step.bytes, start.size());
  EXPECT_EQ(Join(Reports(run.Take())),
            Join({"effects pins=unclassified", "request-end Q", "end buffered=0"}));
}

// ---------------------------------------------------------------------------------------------
// The proxy's setup: ServerCodec::SendBaseline (init_sql) and ApplyParameters against it

Action Baseline(std::vector<std::string> init_sql) {
  return {"", "baseline", [init_sql = std::move(init_sql)](ServerCodec& c) {
            return Cat("-> ", c.SendBaseline(init_sql) ? "true" : "false");
          }};
}

Action BaselineNames() {
  return {"", "baseline-names", [](ServerCodec& c) {
            std::string names;
            for (const std::string& n : c.BaselineNames()) {
              names += Cat(names.empty() ? "" : ",", n);
            }
            return Cat("-> {", names, "}");
          }};
}

Action Reset() {
  return {"", "reset", [](ServerCodec& c) {
            c.SendReset();
            return std::string();
          }};
}

std::vector<std::string> WithoutConsume(std::vector<std::string> events) {
  std::erase_if(events, [](const std::string& e) { return e.starts_with("consume "); });
  return events;
}

TEST(PostgresTxpoolTest, InitSqlValuesAreTheBaselineApplyReturnsTo) {
  const std::string init = "SET statement_timeout = '7s'; SELECT 1";
  std::string done = Complete("SET") + ReadyForQuery('I');
  auto events = WithoutConsume(RunAllWays({
      Internal(init),
      Feed(Complete("SET") + SelectAnswer({"1"})),
      Baseline({init, "SELECT 2"}),
      Feed(SelectAnswer({"7s"})),
      BaselineNames(),
      // The baseline needs nothing; a client's own value is set, and the next client gets the
      // baseline back with set_config (RESET would go back to the server's default).
      Apply({}),
      Apply({{"statement_timeout", "7s"}}),
      Apply({{"statement_timeout", "1s"}}),
      Feed(SelectAnswer({"1s"})),
      Apply({}),
      Feed(SelectAnswer({"7s"})),
      Apply({}),
      // A reset forgets it: init_sql runs again (the proxy's part), then SendBaseline.
      Reset(),
      Feed(Complete("DISCARD ALL") + ReadyForQuery('I')),
      BaselineNames(),
      Baseline({"SELECT 1"}),
  }));
  EXPECT_EQ(Join(events),
            Join({
                "internal query",
                "query SET statement_timeout = '7s'; SELECT 1",
                "internal-done ok",
                "baseline",
                "query SELECT pg_catalog.current_setting(E'statement_timeout', true)",
                "-> true",
                "param statement_timeout=7s",
                "internal-done ok",
                "baseline-names",
                "-> {statement_timeout}",
                "apply {}",
                "-> false",
                "apply {statement_timeout=7s}",
                "-> false",
                "apply {statement_timeout=1s}",
                "query SELECT pg_catalog.set_config(E'statement_timeout', E'1s', false);",
                "-> true",
                "internal-done ok",
                "apply {}",
                "query SELECT pg_catalog.set_config(E'statement_timeout', E'7s', false);",
                "-> true",
                "internal-done ok",
                "apply {}",
                "-> false",
                "reset",
                "query DISCARD ALL",
                "internal-done ok",
                "baseline-names",
                "-> {}",
                "baseline",
                "-> false",
                "end buffered=0",
            }));
}

// ---------------------------------------------------------------------------------------------
// ClientCodec with refuse_pins (pin_as_error)

std::string ParseTyped(std::string_view name, std::string_view sql,
                       const std::vector<uint32_t>& types) {
  Writer w;
  w.Begin('P').CString(name).CString(sql).U16(static_cast<uint16_t>(types.size()));
  for (uint32_t t : types) {
    w.U32(t);
  }
  return w.Take();
}

constexpr char kRaisePrefix[] =
    "DO $wirepool$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = E'wirepool: statement "
    "refused: it would pin this connection (";

// Feeds `stream` with temp_table and advisory_lock refused, all ways; all runs must agree.
std::vector<std::string> RunRefusing(std::string_view stream, std::string* forwarded = nullptr) {
  const PinSet refuse = PinBit(PinReason::kTempTable) | PinBit(PinReason::kAdvisoryLock);
  std::vector<std::string> first;
  for (int i = -2; i < kRandomCuts; ++i) {
    Cut cut = i == -2 ? Cut::kWhole : i == -1 ? Cut::kBytewise : Cut::kRandom;
    ClientRun run(/*classify=*/true, cut, kSplitSeed + static_cast<uint32_t>(i + 2), refuse);
    run.Feed(stream);
    std::vector<std::string> events = run.Take();
    if (i == -2) {
      first = std::move(events);
      if (forwarded != nullptr) {
        *forwarded = run.forwarded();
      }
    } else {
      EXPECT_EQ(Join(events), Join(first)) << "cut " << i;
    }
  }
  return first;
}

TEST(PostgresTxpoolTest, RefusedQueryIsReplacedByOneThatRaisesTheRefusal) {
  std::string refused = Query("CREATE TEMP TABLE t (a int) -- it's $x$ \\ here");
  std::string next = Query("SELECT 1");
  std::string forwarded;
  auto events = RunRefusing(refused + next, &forwarded);
  std::string raise =
      Cat(kRaisePrefix,
          "temp_table) and pin_as_error lists temp_table: CREATE TEMP TABLE t (a int) -- it''s "
          "\\x24x\\x24 \\\\ here'; END$wirepool$");
  EXPECT_EQ(Join(events), Join({
                              "refused temp_table",
                              Cat("to-server ", Hex(QueryMessage(raise))),
                              "request-end Q",
                              Consume(refused),
                              "request-end Q",
                              Cat("forward ", Hex(next)),
                              "end buffered=0",
                          }));
  EXPECT_EQ(forwarded, next);
}

TEST(PostgresTxpoolTest, RefusedParseKeepsItsParameterTypesAndItsBindStillFits) {
  // Unspecified types become text; the client's own stay.
  std::string refused = ParseTyped("", "SELECT pg_advisory_lock($1), $2", {0, 23});
  std::string rest = Bind("") + Execute() + Sync();
  std::string forwarded;
  auto events = RunRefusing(refused + rest, &forwarded);
  std::string raise = Cat(kRaisePrefix,
                          "advisory_lock) and pin_as_error lists advisory_lock: SELECT "
                          "pg_advisory_lock(\\x241), \\x242'; END$wirepool$");
  EXPECT_EQ(Join(events), Join({
                              "refused advisory_lock",
                              Cat("to-server ", Hex(ParseTyped("", raise, {25, 23}))),
                              Consume(refused),
                              Cat("forward ", Hex(Bind("") + Execute())),
                              "request-end S",
                              Cat("forward ", Hex(Sync())),
                              "end buffered=0",
                          }));
  EXPECT_EQ(forwarded, rest);
}

TEST(PostgresTxpoolTest, RefusedNamedParseIsPreparedUnderItsKeyLikeAnyOther) {
  std::string refused = ParseTyped("s1", "CREATE TEMP TABLE t (a int)", {});
  auto events = RunRefusing(refused + Sync());
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0], "refused temp_table");
  // Close + Parse of "wp_<key>", with the raising text.
  EXPECT_TRUE(events[1].starts_with(Cat("to-server ", Hex(std::string("C")))));
  EXPECT_THAT(events[1], HasSubstr(Hex(std::string_view("Swp_"))));
  EXPECT_THAT(events[1], HasSubstr(Hex(std::string_view(kRaisePrefix))));
  EXPECT_EQ(events[2], Consume(refused));
}

TEST(PostgresTxpoolTest, UnlistedPinsAreReportedAsUsual) {
  std::string stream = Query("LISTEN x") + Query("SET work_mem = '1MB'");
  EXPECT_EQ(Join(Reports(RunRefusing(stream))),
            Join({"effects pins=listen", "request-end Q", "effects read_back=work_mem",
                  "request-end Q", "end buffered=0"}));
}

TEST(PostgresTxpoolTest, RefusedQueryTooLargeToClassifyIsDroppedAsItArrives) {
  constexpr size_t kText = (1 << 20) + 10;
  uint32_t len = static_cast<uint32_t>(4 + kText + 1);
  std::string head = std::string("Q") + static_cast<char>(len >> 24) +
                     static_cast<char>(len >> 16) + static_cast<char>(len >> 8) +
                     static_cast<char>(len);
  ClientRun run(/*classify=*/true, Cut::kWhole, 0, PinBit(PinReason::kUnclassified));
  Step step = run.codec().OnBytes(AsBytes(head + "SELECT 1 /* "));
  EXPECT_EQ(step.verdict, Verdict::kConsume);
  EXPECT_TRUE(run.codec().MidRequest());
  std::string rest = std::string(kText - 12, 'x') + std::string(1, '\0');
  step = run.codec().OnBytes(AsBytes(rest));
  EXPECT_EQ(step.verdict, Verdict::kConsume);
  EXPECT_EQ(step.bytes, rest.size());
  EXPECT_FALSE(run.codec().MidRequest());
  auto events = run.Take();
  ASSERT_EQ(events.size(), 4u) << Join(events);
  EXPECT_EQ(events[0], "refused unclassified");
  EXPECT_THAT(events[1], HasSubstr(Hex(std::string_view(kRaisePrefix))));
  EXPECT_EQ(events[2], "request-end Q");
}

}  // namespace
}  // namespace wirepool::codec::postgres
