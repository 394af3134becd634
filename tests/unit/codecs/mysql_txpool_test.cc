// Transaction pooling in the MySQL codecs: what mysql::ServerCodec does for the proxy
// (ApplyParameters, SendReadBack, OnRequestFailed) and what mysql::ClientCodec reports when
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
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec_feeder.h"
#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/api/session.h"
#include "codecs/mysql/auth.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "mysql_packets.h"

namespace wirepool::codec::mysql {
namespace {

using ::wirepool::codec::testing::AsBytes;
using ::wirepool::codec::testing::CounterRandom;
using ::wirepool::codec::testing::DescribeEffects;
using ::wirepool::codec::testing::Hex;
using ::wirepool::codec::testing::Join;
using ::wirepool::codec::testing::kRandomCuts;
using ::wirepool::codec::testing::kSplitSeed;
using namespace ::wirepool::codec::mysql::testing;  // NOLINT: the packet builders

// ---------------------------------------------------------------------------------------------
// Packets

std::string SchemaTrack(std::string_view schema) {
  Writer data;
  data.LenencString(schema);
  return Writer().U8(1).LenencString(data.payload()).payload();
}

// ---------------------------------------------------------------------------------------------
// Feeding and logging

using ::wirepool::codec::testing::Cut;
using ::wirepool::codec::testing::Feeder;

class ServerRun final : public ServerCodecSink {
 public:
  ServerRun(const ServerLogin& login, Cut cut, uint32_t seed)
      : codec_(login, *this), feeder_(cut, seed) {
    codec_.Start();
    Feed(Handshake() + Pkt(2, Ok()));
    EXPECT_TRUE(logged_in_) << Join(feeder_.Take());
    feeder_ = Feeder(cut, seed);  // the tests read what follows the login
  }

  ServerCodec& codec() { return codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_.OnBytes(in); });
  }
  void Log(std::string event) { feeder_.Add(std::move(event)); }
  std::vector<std::string> Take() { return feeder_.Take(); }

  // A COM_QUERY / COM_INIT_DB packet is logged as text (which also checks its framing).
  void SendToServer(std::string_view bytes) override {
    if (bytes.size() > 5 && bytes[3] == 0 &&
        bytes.size() - 4 == ReadHeader(AsBytes(bytes))->length &&
        (bytes[4] == kComQuery || bytes[4] == kComInitDb)) {
      Log(Cat(bytes[4] == kComQuery ? "COM_QUERY " : "COM_INIT_DB ", bytes.substr(5)));
      return;
    }
    Log(Cat("send ", Hex(bytes)));
  }
  void OnLoginComplete() override { logged_in_ = true; }
  void OnLoginFailed(const WireError& e) override { Log(Cat("login-failed ", e.message)); }
  void OnReadyForQuery(TxState state) override {
    Log(state == TxState::kIdle ? "ready idle" : "ready trans");
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

Action Apply(ParamList wanted) {
  std::string label;
  for (const auto& [name, value] : wanted) {
    label += Cat(label.empty() ? "" : ", ", name, "=", value);
  }
  return {"", Cat("apply {", label, "}"), [wanted = std::move(wanted)](ServerCodec& c) {
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

Action Expect(uint8_t command) {
  return {"", Cat("expect ", static_cast<int>(command)), [command](ServerCodec& c) {
            c.ExpectResponse(command);
            return std::string();
          }};
}

std::vector<std::string> RunAllWays(const Script& script, const ServerLogin& login = Login()) {
  return ::wirepool::codec::testing::RunScriptAllWays<ServerRun>(script, login);
}

using ::wirepool::codec::testing::Consume;

// ---------------------------------------------------------------------------------------------
// ServerCodec::ApplyParameters

TEST(MysqlTxpoolTest, ApplySendsOneSetAndInitDbAsOneInternalRequest) {
  std::string set_ok = Pkt(1, Ok());
  std::string init_ok = Pkt(1, Ok(kStatusAutocommit, SchemaTrack("other")));
  auto events = RunAllWays({
      // The login's database: nothing to do.
      Apply({{"schema", "wp_db"}}),
      Apply({{"sql_mode", "ANSI_QUOTES"}, {"wait_timeout", "100"}, {"schema", "other"}}),
      Feed(set_ok),
      Feed(init_ok),
      // The variables an earlier client set and this one does not want go back to DEFAULT.
      Apply({{"schema", "other"}}),
      Feed(set_ok),
      Apply({{"schema", "other"}}),
  });
  EXPECT_EQ(Join(events),
            Join({
                "apply {schema=wp_db}",
                "-> false",
                "apply {sql_mode=ANSI_QUOTES, wait_timeout=100, schema=other}",
                "COM_QUERY SET @@SESSION.sql_mode = 'ANSI_QUOTES', @@SESSION.wait_timeout = 100",
                "COM_INIT_DB other",
                "-> true",
                Consume(set_ok),
                "internal-done ok",
                Consume(init_ok),
                "apply {schema=other}",
                "COM_QUERY SET @@SESSION.sql_mode = DEFAULT, @@SESSION.wait_timeout = DEFAULT",
                "-> true",
                "internal-done ok",
                Consume(set_ok),
                "apply {schema=other}",
                "-> false",
                "end buffered=0",
            }));
}

TEST(MysqlTxpoolTest, ApplyGroupReportsAnErrorOnceAtItsEnd) {
  std::string set_err = Pkt(1, Err(1231, "Variable 'sql_mode' can't be set to the value of 'X'"));
  std::string init_ok = Pkt(1, Ok(kStatusAutocommit, SchemaTrack("other")));
  std::string init_err = Pkt(1, Err(1049, "Unknown database 'nope'"));
  std::string set_ok = Pkt(1, Ok());
  auto events = RunAllWays({
      Apply({{"sql_mode", "X"}, {"schema", "other"}}),
      Feed(set_err),
      Feed(init_ok),
      Apply({{"schema", "nope"}}),
      Feed(set_ok + init_err),
  });
  EXPECT_EQ(Join(events), Join({
                              "apply {sql_mode=X, schema=other}",
                              "COM_QUERY SET @@SESSION.sql_mode = 'X'",
                              "COM_INIT_DB other",
                              "-> true",
                              Consume(set_err),
                              "internal-done 1231 Variable 'sql_mode' can't be set to the value "
                              "of 'X'",
                              Consume(init_ok),
                              "apply {schema=nope}",
                              "COM_QUERY SET @@SESSION.sql_mode = DEFAULT",
                              "COM_INIT_DB nope",
                              "-> true",
                              Consume(set_ok),
                              "internal-done 1049 Unknown database 'nope'",
                              Consume(init_err),
                              "end buffered=0",
                          }));
}

TEST(MysqlTxpoolTest, ApplyWritesValuesAsMysqlReadsThem) {
  auto events = RunAllWays({
      // Numbers bare, plain text quoted, text with a quote or backslash as a hex literal; a name
      // that is not a plain identifier is never written.
      Apply({{"wait_timeout", "-1.5"},
             {"time_zone", "+00:00"},
             {"init_connect", "it's \\"},
             {"x = 1; DROP TABLE t; --", "1"}}),
  });
  EXPECT_EQ(Join(events),
            Join({
                "apply {wait_timeout=-1.5, time_zone=+00:00, init_connect=it's \\, "
                "x = 1; DROP TABLE t; --=1}",
                "COM_QUERY SET @@SESSION.wait_timeout = -1.5, @@SESSION.time_zone = '+00:00', "
                "@@SESSION.init_connect = X'69742773205c'",
                "-> true",
                "end buffered=0",
            }));
}

// ---------------------------------------------------------------------------------------------
// ServerCodec::SendReadBack

TEST(MysqlTxpoolTest, ReadBackReportsEachNonNullValue) {
  std::string head =
      Packets(1, {ColumnCount(2), ColumnDef("@@SESSION.sql_mode"), ColumnDef("DATABASE()")});
  std::string row = Pkt(4,
                        "\x04"
                        "ANSI\xfb");
  std::string end = Pkt(5, OkFe());
  std::string row2 = Pkt(4,
                         "\x04"
                         "ANSI\x03"
                         "db2");
  std::string set_ok = Pkt(1, Ok());
  auto events = RunAllWays({
      ReadBack({}),
      ReadBack({"sql_mode", "schema"}),
      Feed(head + row + end),
      // What was read back is the session's now: wanting it needs nothing, not wanting it resets.
      Apply({{"sql_mode", "ANSI"}}),
      Apply({{"schema", "wp_db"}}),
      Feed(set_ok),
      ReadBack({"sql_mode", "schema"}),
      Feed(head + row2 + end),
      Apply({{"sql_mode", "ANSI"}, {"schema", "db2"}}),
  });
  EXPECT_EQ(Join(events), Join({
                              "read-back {}",
                              "-> false",
                              "read-back {sql_mode, schema}",
                              "COM_QUERY SELECT @@SESSION.sql_mode, DATABASE()",
                              "-> true",
                              Consume(head),
                              "param sql_mode=ANSI",
                              Consume(row),
                              "internal-done ok",
                              Consume(end),
                              "apply {sql_mode=ANSI}",
                              "-> false",
                              "apply {schema=wp_db}",
                              "COM_QUERY SET @@SESSION.sql_mode = DEFAULT",
                              "-> true",
                              "internal-done ok",
                              Consume(set_ok),
                              "read-back {sql_mode, schema}",
                              "COM_QUERY SELECT @@SESSION.sql_mode, DATABASE()",
                              "-> true",
                              Consume(head),
                              "param sql_mode=ANSI",
                              "param schema=db2",
                              Consume(row2),
                              "internal-done ok",
                              Consume(end),
                              "apply {sql_mode=ANSI, schema=db2}",
                              "-> false",
                              "end buffered=0",
                          }));
}

TEST(MysqlTxpoolTest, ReadBackWithEofPackets) {
  std::string head =
      Packets(1, {ColumnCount(2), ColumnDef("@@SESSION.sql_mode"), ColumnDef("DATABASE()"), Eof()});
  std::string row = Pkt(5,
                        "\x04"
                        "ANSI\xfb");
  std::string end = Pkt(6, Eof());
  auto events = RunAllWays({ReadBack({"sql_mode", "schema", "no such"}), Feed(head + row + end)},
                           Login(/*deprecate_eof=*/false));
  EXPECT_EQ(Join(events), Join({
                              "read-back {sql_mode, schema, no such}",
                              "COM_QUERY SELECT @@SESSION.sql_mode, DATABASE()",
                              "-> true",
                              Consume(head),
                              "param sql_mode=ANSI",
                              Consume(row),
                              "internal-done ok",
                              Consume(end),
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// ServerCodec: OnRequestFailed

TEST(MysqlTxpoolTest, RequestFailedForAClientRequestOnly) {
  std::string err = Pkt(1, Err(1064, "You have an error in your SQL syntax"));
  std::string rows = Packets(1, {ColumnCount(1), ColumnDef("a"),
                                 "\x01"
                                 "1"});
  std::string interrupted = Pkt(4, Err(1317, "Query execution was interrupted"));
  std::string ok = Pkt(1, Ok());
  auto events = RunAllWays({
      Expect(kComQuery),
      Feed(err),
      // An ERR in place of the end of a result set.
      Expect(kComQuery),
      Feed(rows + interrupted),
      Expect(kComQuery),
      Feed(ok),
      // The codec's own request: its ERR is the internal result.
      Internal("SELEC"),
      Feed(err),
  });
  EXPECT_EQ(Join(events), Join({
                              "expect 3",
                              "request-failed",
                              "ready idle",
                              Cat("forward ", Hex(err)),
                              "expect 3",
                              Cat("forward ", Hex(rows)),
                              "request-failed",
                              "ready idle",
                              Cat("forward ", Hex(interrupted)),
                              "expect 3",
                              "ready idle",
                              Cat("forward ", Hex(ok)),
                              "internal query",
                              "COM_QUERY SELEC",
                              "internal-done 1064 You have an error in your SQL syntax",
                              Consume(err),
                              "end buffered=0",
                          }));
}

// ---------------------------------------------------------------------------------------------
// ClientCodec with classify

class ClientRun final : public ClientCodecSink {
 public:
  ClientRun(bool classify, Cut cut, uint32_t seed, PinSet refuse_pins = 0)
      : feeder_(cut, seed), refuse_pins_(refuse_pins) {
    ClientCodecOptions options;
    options.auth_method = std::string(kNativePassword);
    options.random = CounterRandom("");
    options.connection_id = 7;
    options.classify = classify;
    options.refuse_pins = refuse_pins;
    codec_ = std::make_unique<ClientCodec>(options, *this);
    codec_->Start();
    Feeder whole(Cut::kWhole, 0);
    whole.Feed(ClientLogin(), [this](ByteView in) { return codec_->OnBytes(in); });
    EXPECT_TRUE(authenticated_);
    codec_->CompleteLogin({{"server_version", "10.11.6-MariaDB"}});
    logged_in_ = true;
  }

  ClientCodec& codec() { return *codec_; }
  void Feed(std::string_view bytes) {
    feeder_.Feed(bytes, [this](ByteView in) { return codec_->OnBytes(in); });
  }
  std::vector<std::string> Take() { return feeder_.Take(); }
  const std::string& forwarded() const { return feeder_.forwarded(); }

  // pin_as_error: the codec answers a refused request itself.
  void SendToClient(std::string_view bytes) override {
    if (logged_in_ && refuse_pins_ != 0) {
      feeder_.Add(Cat("to-client ", Hex(bytes)));
    }
  }
  void OnRequestRefused(const RequestEffects& effects) override {
    feeder_.Add(Cat("refused ", DescribeEffects(effects)));
  }
  void OnStartup(const StartupInfo& info) override {
    secret_ = UserSecret{info.user, "alice-pw", {}};
    codec_->BeginAuth(&secret_);
  }
  void OnCancelRequest(std::string_view) override { feeder_.Add("cancel"); }
  void OnAuthenticated() override { authenticated_ = true; }
  void OnAuthFailed(std::string_view reason) override { ADD_FAILURE() << reason; }
  void OnRequestEnd(uint32_t tag) override { feeder_.Add(Cat("request-end ", tag)); }
  void OnRequestEffects(const RequestEffects& effects) override {
    feeder_.Add(DescribeEffects(effects));
  }
  void OnKill(std::string_view key, bool) override { feeder_.Add(Cat("kill ", key)); }
  void OnTerminate() override { feeder_.Add("terminate"); }
  void OnProtocolError(const absl::Status& status) override {
    feeder_.Add(Cat("protocol-error ", Sv(status.message())));
  }

 private:
  std::unique_ptr<ClientCodec> codec_;
  Feeder feeder_;
  UserSecret secret_;
  bool authenticated_ = false;
  bool logged_in_ = false;
  PinSet refuse_pins_ = 0;
};

// Feeds `stream` after a login, whole, byte by byte and in seeded random cuts; all runs must
// agree and forward the stream unchanged. Returns the events without the forward lines.
std::vector<std::string> RunClient(std::string_view stream, bool classify = true) {
  std::vector<std::string> first;
  for (int i = -2; i < kRandomCuts; ++i) {
    Cut cut = i == -2 ? Cut::kWhole : i == -1 ? Cut::kBytewise : Cut::kRandom;
    ClientRun run(classify, cut, kSplitSeed + static_cast<uint32_t>(i + 2));
    run.Feed(stream);
    std::vector<std::string> events = run.Take();
    EXPECT_EQ(Hex(run.forwarded()), Hex(stream)) << "cut " << i;
    std::erase_if(events, [](const std::string& e) { return e.starts_with("forward "); });
    if (i == -2) {
      first = std::move(events);
    } else {
      EXPECT_EQ(Join(events), Join(first)) << "cut " << i;
    }
  }
  return first;
}

TEST(MysqlTxpoolTest, SessionVariablesAndSchemaAreReadBack) {
  std::string stream = QueryPacket("SET SESSION sql_mode='X'") + QueryPacket("USE db") +
                       CommandPacket(kComInitDb, "db") + QueryPacket("SELECT 1");
  EXPECT_EQ(Join(RunClient(stream)), Join({
                                         "effects read_back=sql_mode",
                                         "request-end 3",
                                         "effects read_back=schema",
                                         "request-end 3",
                                         "effects read_back=schema",
                                         "request-end 2",
                                         "request-end 3",
                                         "end buffered=0",
                                     }));
}

TEST(MysqlTxpoolTest, FoundRowsPinHoldsForExactlyOneMoreRequest) {
  std::string calc = QueryPacket("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1");
  std::string stream = calc + QueryPacket("SELECT 1") + QueryPacket("SELECT 1") +
                       // Twice in a row: the second keeps the pin; any command lets it go.
                       calc + calc + CommandPacket(kComPing) + CommandPacket(kComPing);
  EXPECT_EQ(Join(RunClient(stream)), Join({
                                         "effects pins=found_rows",
                                         "request-end 3",
                                         "effects unpins=found_rows",
                                         "request-end 3",
                                         "request-end 3",
                                         "effects pins=found_rows",
                                         "request-end 3",
                                         "effects pins=found_rows",
                                         "request-end 3",
                                         "effects unpins=found_rows",
                                         "request-end 14",
                                         "request-end 14",
                                         "end buffered=0",
                                     }));
}

TEST(MysqlTxpoolTest, PrepareAndResetConnection) {
  std::string stream = CommandPacket(kComStmtPrepare, "SELECT ?") +
                       CommandPacket(kComResetConnection) +
                       CommandPacket(kComStmtPrepare, "SET sql_mode = ?");
  // Preparing runs nothing: what a statement does is reported at each execution
  // (mysql_statements_test.cc).
  EXPECT_EQ(Join(RunClient(stream)), Join({
                                         "request-end 22",
                                         "effects unpins=all reset=1",
                                         "request-end 31",
                                         "request-end 22",
                                         "end buffered=0",
                                     }));
}

TEST(MysqlTxpoolTest, NothingIsReportedWithoutClassify) {
  std::string stream = QueryPacket("SET SESSION sql_mode='X'") + QueryPacket("USE db") +
                       CommandPacket(kComInitDb, "db") +
                       QueryPacket("SELECT SQL_CALC_FOUND_ROWS * FROM t") +
                       QueryPacket("SELECT 1") + CommandPacket(kComStmtPrepare, "SELECT ?") +
                       CommandPacket(kComResetConnection);
  EXPECT_EQ(Join(RunClient(stream, /*classify=*/false)),
            Join({"request-end 3", "request-end 3", "request-end 2", "request-end 3",
                  "request-end 3", "request-end 22", "request-end 31", "end buffered=0"}));
}

TEST(MysqlTxpoolTest, QueryIsHeldUntilWholeWhenClassifying) {
  // Up to 64 KiB a COM_QUERY is read whole anyway (for KILL); past it only classify holds it.
  std::string query = QueryPacket(Cat("SELECT '", std::string(70000, 'x'), "'"));
  for (bool classify : {true, false}) {
    SCOPED_TRACE(classify ? "classify" : "no classify");
    ClientRun run(classify, Cut::kWhole, 0);
    Step step = run.codec().OnBytes(AsBytes(std::string_view(query).substr(0, 100)));
    if (classify) {
      EXPECT_EQ(step.verdict, Verdict::kNeedMore);
      EXPECT_EQ(step.bytes, query.size());
    } else {
      EXPECT_EQ(step.verdict, Verdict::kForward);
      EXPECT_EQ(step.bytes, 100u);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The proxy's setup: startup parameters and init_sql as the baseline (SendBaseline)

Action Baseline(std::vector<std::string> init_sql) {
  return {"", "baseline", [init_sql = std::move(init_sql)](ServerCodec& c) {
            return Cat("-> ", c.SendBaseline(init_sql) ? "true" : "false");
          }};
}

Action Reset() {
  return {"", "reset", [](ServerCodec& c) {
            c.SendReset();
            std::string names;
            for (const std::string& n : c.BaselineNames()) {
              names += Cat(names.empty() ? "" : ",", n);
            }
            return Cat("baseline-names {", names, "}");
          }};
}

TEST(MysqlTxpoolTest, StartupParametersAndInitSqlAreTheBaselineApplyReturnsTo) {
  const std::string init = "SET SESSION sql_mode = 'ANSI_QUOTES'";
  std::string ok = Pkt(1, Ok());
  std::string head = Packets(1, {ColumnCount(2), ColumnDef("a"), ColumnDef("b")});
  std::string row = Pkt(4,
                        "\x04"
                        "1234\x0b"
                        "ANSI_QUOTES");
  std::string end = Pkt(5, OkFe());
  auto events = RunAllWays({
      // The user's startup parameters, as the proxy sets them, then init_sql.
      Apply({{"lock_wait_timeout", "1234"}}),
      Feed(ok),
      Internal(init),
      Feed(ok),
      Baseline({init}),
      Feed(head + row + end),
      // The baseline needs nothing; a client's own value is set, and the next client gets the
      // baseline's value back rather than the server's DEFAULT.
      Apply({}),
      Apply({{"sql_mode", "ANSI_QUOTES"}}),
      Apply({{"sql_mode", "TRADITIONAL"}, {"lock_wait_timeout", "5"}}),
      Feed(ok),
      Apply({}),
      Feed(ok),
      Apply({}),
      Reset(),
  });
  EXPECT_EQ(Join(events), Join({
                              "apply {lock_wait_timeout=1234}",
                              "COM_QUERY SET @@SESSION.lock_wait_timeout = 1234",
                              "-> true",
                              "internal-done ok",
                              Consume(ok),
                              "internal query",
                              Cat("COM_QUERY ", init),
                              "internal-done ok",
                              Consume(ok),
                              "baseline",
                              "COM_QUERY SELECT @@SESSION.lock_wait_timeout, @@SESSION.sql_mode",
                              "-> true",
                              Consume(head),
                              "param lock_wait_timeout=1234",
                              "param sql_mode=ANSI_QUOTES",
                              Consume(row),
                              "internal-done ok",
                              Consume(end),
                              "apply {}",
                              "-> false",
                              "apply {sql_mode=ANSI_QUOTES}",
                              "-> false",
                              "apply {sql_mode=TRADITIONAL, lock_wait_timeout=5}",
                              "COM_QUERY SET @@SESSION.sql_mode = 'TRADITIONAL', "
                              "@@SESSION.lock_wait_timeout = 5",
                              "-> true",
                              "internal-done ok",
                              Consume(ok),
                              "apply {}",
                              "COM_QUERY SET @@SESSION.sql_mode = 'ANSI_QUOTES', "
                              "@@SESSION.lock_wait_timeout = 1234",
                              "-> true",
                              "internal-done ok",
                              Consume(ok),
                              "apply {}",
                              "-> false",
                              "reset",
                              "send 010000001f",
                              "baseline-names {}",
                              "end buffered=0",
                          }));
}

TEST(MysqlTxpoolTest, RefusedQueryIsAnsweredWithNotSupportedAndNeverForwarded) {
  const PinSet refuse = PinBit(PinReason::kTempTable);
  std::string refused = QueryPacket("CREATE TEMPORARY TABLE t (a int)");
  std::string next = QueryPacket("SELECT 1");
  std::string lock = QueryPacket("SELECT GET_LOCK('x', 1)");
  std::string error = Pkt(1, ErrPayload(1235, "42000",
                                        "wirepool: statement refused: it would pin this "
                                        "connection (temp_table) and pin_as_error lists "
                                        "temp_table: CREATE TEMPORARY TABLE t (a int)"));
  std::vector<std::string> first;
  for (int i = -2; i < kRandomCuts; ++i) {
    Cut cut = i == -2 ? Cut::kWhole : i == -1 ? Cut::kBytewise : Cut::kRandom;
    ClientRun run(/*classify=*/true, cut, kSplitSeed + static_cast<uint32_t>(i + 2), refuse);
    run.Feed(refused);
    run.Feed(next + lock);
    std::vector<std::string> events = run.Take();
    EXPECT_EQ(Hex(run.forwarded()), Hex(next + lock)) << "cut " << i;
    if (i == -2) {
      first = std::move(events);
    } else {
      EXPECT_EQ(Join(events), Join(first)) << "cut " << i;
    }
  }
  EXPECT_EQ(Join(first), Join({
                             "refused effects pins=temp_table",
                             Cat("to-client ", Hex(error)),
                             Consume(refused),
                             "request-end 3",
                             Cat("forward ", Hex(next)),
                             "effects pins=advisory_lock",
                             "request-end 3",
                             Cat("forward ", Hex(lock)),
                             "end buffered=0",
                         }));
}

}  // namespace
}  // namespace wirepool::codec::mysql
