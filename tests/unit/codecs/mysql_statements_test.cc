// Server-side prepared statements under transaction pooling: a mysql::ClientCodec with classify
// on, wired to two mysql::ServerCodecs the way the proxy wires them (FindServerStatement,
// OnStatementMessage, SendToServer and SendToClient in order with forwarded bytes, the client fed
// again after a pause once its server has answered). The client's statement ids are the proxy's;
// each server has its own, and a statement is prepared again on a server that lacks it.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/sql_statements.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "mysql_packets.h"

namespace wirepool::codec::mysql {
namespace {

using ::wirepool::codec::testing::AsBytes;
using ::wirepool::codec::testing::CounterRandom;
using ::wirepool::codec::testing::Hex;
using namespace ::wirepool::codec::mysql::testing;  // NOLINT: the packet builders

constexpr uint8_t kLongLong = 8;

std::string U32(uint32_t v) { return Writer().U32(v).payload(); }

std::string PrepareOk(uint32_t server_id, uint16_t columns, uint16_t params) {
  Writer w;
  w.U8(0).U32(server_id).U16(columns).U16(params).U8(0).U16(0);
  return w.payload();
}

// The server's whole answer to COM_STMT_PREPARE "SELECT ?" (one parameter, one column).
std::string PrepareAnswer(uint32_t server_id) {
  return Packets(1, {PrepareOk(server_id, 1, 1), ColumnDef("?"), ColumnDef("c")});
}

// COM_STMT_EXECUTE with one BIGINT parameter, its type sent or not.
std::string Execute(uint32_t id, bool send_types, int64_t value, uint8_t flags = 0) {
  Writer w;
  w.U8(kComStmtExecute).U32(id).U8(flags).U32(1).U8(0);  // NULL bitmap of one parameter
  if (send_types) {
    w.U8(1).U8(kLongLong).U8(0);
  } else {
    w.U8(0);
  }
  w.U64(static_cast<uint64_t>(value));
  return Pkt(0, w.payload());
}

std::string ExecuteAnswer() {
  return Packets(1, {ColumnCount(1), ColumnDef("c"), std::string("\x00\x00\x01x", 4), OkFe()});
}

class Pair;

// One server connection: its codec and what the proxy wrote to it.
struct ServerEnd final : public ServerCodecSink {
  ServerEnd(Pair& p) : pair(p), codec(Login(), *this) {}
  void SendToServer(std::string_view bytes) override { to_server += bytes; }
  void SendToClient(std::string_view bytes) override;
  void OnLoginComplete() override { logged_in = true; }
  void OnLoginFailed(const WireError&) override { ADD_FAILURE() << "login failed"; }
  void OnReadyForQuery(TxState) override;
  void OnParameterStatus(std::string_view name, std::string_view value) override;
  void OnInternalDone(const WireError* error) override;
  void OnProtocolError(const absl::Status& status) override {
    ADD_FAILURE() << "server protocol error: " << status.message();
  }

  Pair& pair;
  ServerCodec codec;
  std::string to_server;
  bool logged_in = false;
};

// A client and two servers, the client attached to `current`.
class Pair final : public ClientCodecSink {
 public:
  Pair() {
    for (auto& server : servers_) {
      server = std::make_unique<ServerEnd>(*this);
      server->codec.Start();
      FeedServerTo(*server, Handshake() + Pkt(2, Ok()));
      EXPECT_TRUE(server->logged_in);
      server->to_server.clear();
    }
    ClientCodecOptions options;
    options.auth_method = std::string(kNativePassword);
    options.random = CounterRandom("");
    options.connection_id = 7;
    options.classify = true;
    client_ = std::make_unique<ClientCodec>(options, *this);
    client_->Start();
    FeedClient(ClientLogin());
    EXPECT_TRUE(authenticated_);
    client_->CompleteLogin({{"server_version", "10.11.6-MariaDB"}});
    to_client.clear();
    events.clear();
  }

  ClientCodec& client() { return *client_; }
  ServerEnd& server(int i) { return *servers_[i]; }
  void Attach(int i) { current_ = i; }

  void FeedClient(std::string_view bytes) {
    client_in_ += bytes;
    PumpClient();
  }
  void FeedServer(std::string_view bytes) {
    FeedServerTo(*servers_[current_], bytes);
    if (paused_) {
      paused_ = false;
      PumpClient();  // the proxy drives a paused client after its server's output
    }
  }
  bool paused() const { return paused_; }

  // ClientCodecSink
  void SendToClient(std::string_view bytes) override { to_client += bytes; }
  void OnStartup(const StartupInfo& info) override {
    secret_ = UserSecret{info.user, "alice-pw", {}};
    client_->BeginAuth(&secret_);
  }
  void OnCancelRequest(std::string_view) override {}
  void OnAuthenticated() override { authenticated_ = true; }
  void OnAuthFailed(std::string_view reason) override { ADD_FAILURE() << reason; }
  void OnRequestEnd(uint32_t tag) override {
    events.push_back(Cat("request-end ", tag & 0xff));
    servers_[current_]->codec.ExpectResponse(tag);
  }
  void OnRequestEffects(const RequestEffects& effects) override {
    events.push_back(Cat("effects pins=", effects.pins, " unpins=", effects.unpins));
  }
  void OnTerminate() override { events.push_back("terminate"); }
  void SendToServer(std::string_view bytes) override { servers_[current_]->to_server += bytes; }
  ServerStatement FindServerStatement(std::string_view key) override {
    return servers_[current_]->codec.FindStatement(key);
  }
  void OnStatementMessage(const StatementNote& note) override {
    servers_[current_]->codec.NoteStatementMessage(note);
  }
  void OnProtocolError(const absl::Status& status) override {
    events.push_back(Cat("client protocol error: ", Sv(status.message())));
  }

  std::string to_client;
  std::vector<std::string> events;
  ParamList recorded;     // what the servers reported, as the proxy records it
  int internal_done = 0;  // OnInternalDone without an error

 private:
  void PumpClient() {
    while (!client_in_.empty()) {
      Step s = client_->OnBytes(AsBytes(client_in_));
      if (s.verdict == Verdict::kForward) {
        servers_[current_]->to_server += client_in_.substr(0, s.bytes);
      } else if (s.verdict == Verdict::kPause) {
        paused_ = true;
        return;
      } else if (s.verdict != Verdict::kConsume) {
        return;
      }
      client_in_.erase(0, s.bytes);
    }
  }
  void FeedServerTo(ServerEnd& server, std::string_view bytes) {
    std::string& in = server_in_[&server == servers_[0].get() ? 0 : 1];
    in += bytes;
    while (!in.empty()) {
      Step s = server.codec.OnBytes(AsBytes(in));
      if (s.verdict == Verdict::kForward) {
        to_client += in.substr(0, s.bytes);
      } else if (s.verdict != Verdict::kConsume) {
        return;
      }
      in.erase(0, s.bytes);
    }
  }

  std::unique_ptr<ServerEnd> servers_[2];
  std::string server_in_[2];
  std::unique_ptr<ClientCodec> client_;
  std::string client_in_;
  int current_ = 0;
  bool paused_ = false;
  bool authenticated_ = false;
  UserSecret secret_;
};

void ServerEnd::SendToClient(std::string_view bytes) { pair.to_client += bytes; }
void ServerEnd::OnReadyForQuery(TxState) { pair.events.push_back("ready"); }
void ServerEnd::OnParameterStatus(std::string_view name, std::string_view value) {
  pair.recorded.emplace_back(std::string(name), std::string(value));
}
void ServerEnd::OnInternalDone(const WireError* error) {
  EXPECT_EQ(error, nullptr);
  ++pair.internal_done;
}

// The client prepares "SELECT ?" on server 0 (whose id for it is 55) and executes it once with
// its parameter type; the client's id is 1.
void PrepareAndExecuteOnServer0(Pair& p) {
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ?"));
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")));
  p.FeedServer(PrepareAnswer(55));
  EXPECT_EQ(Hex(p.to_client), Hex(PrepareAnswer(1))) << "the client's own id, defs unchanged";
  p.FeedClient(Execute(1, true, 7));
  p.FeedServer(ExecuteAnswer());
  p.server(0).to_server.clear();
  p.to_client.clear();
  p.events.clear();
}

TEST(MysqlStatementsTest, TheClientSeesItsOwnIdsAndEachServerGetsItsOwn) {
  Pair p;
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ?"));
  p.FeedServer(PrepareAnswer(55));
  EXPECT_EQ(Hex(p.to_client), Hex(PrepareAnswer(1)));
  p.to_client.clear();
  p.FeedClient(Execute(1, true, 7));
  EXPECT_EQ(Hex(p.server(0).to_server),
            Hex(CommandPacket(kComStmtPrepare, "SELECT ?") + Execute(55, true, 7)));
  p.FeedServer(ExecuteAnswer());
  EXPECT_EQ(Hex(p.to_client), Hex(ExecuteAnswer()));
  EXPECT_EQ(p.events,
            (std::vector<std::string>{"request-end 22", "ready", "request-end 23", "ready"}));
  // A second statement gets the client's next id, whatever the server numbers it.
  p.to_client.clear();
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ? + 1"));
  p.FeedServer(PrepareAnswer(3));
  EXPECT_EQ(Hex(p.to_client), Hex(PrepareAnswer(2)));
}

TEST(MysqlStatementsTest, PreparedAgainOnAnotherServerWithTheTypesSentAgain) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  p.Attach(1);
  // Without its types, as libmysqlclient sends a second execution: server 1 never saw them.
  p.FeedClient(Execute(1, false, 8));
  EXPECT_TRUE(p.paused());
  EXPECT_EQ(Hex(p.server(1).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")));
  EXPECT_TRUE(p.client().MidRequest()) << "the server must stay while it prepares";
  p.server(1).to_server.clear();
  p.FeedServer(PrepareAnswer(9));
  EXPECT_FALSE(p.paused());
  EXPECT_EQ(p.to_client, "") << "the proxy's own prepare is not the client's to see";
  EXPECT_EQ(Hex(p.server(1).to_server), Hex(Execute(9, true, 8)));
  p.FeedServer(ExecuteAnswer());
  EXPECT_EQ(Hex(p.to_client), Hex(ExecuteAnswer()));
  EXPECT_FALSE(p.client().MidRequest());

  // Back on server 0, which still has the statement bound to the same types: only the id
  // changes.
  p.Attach(0);
  p.FeedClient(Execute(1, false, 9));
  EXPECT_FALSE(p.paused());
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(Execute(55, false, 9)));
}

TEST(MysqlStatementsTest, AFailedPrepareOnTheNewServerIsTheClientsAnswer) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  p.Attach(1);
  p.FeedClient(Execute(1, false, 8));
  p.FeedServer(Pkt(1, Err(1146, "Table 'wp_db.t' doesn't exist")));
  EXPECT_FALSE(p.paused());
  EXPECT_EQ(Hex(p.to_client), Hex(Pkt(1, Err(1146, "Table 'wp_db.t' doesn't exist"))));
  EXPECT_EQ(Hex(p.server(1).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")))
      << "the execution never reaches the server";
  EXPECT_FALSE(p.client().MidRequest());
  // The next execution tries again.
  p.server(1).to_server.clear();
  p.FeedClient(Execute(1, false, 8));
  EXPECT_TRUE(p.paused());
  EXPECT_EQ(Hex(p.server(1).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")));
}

TEST(MysqlStatementsTest, UnknownIdsNeverReachAServer) {
  Pair p;
  p.FeedClient(Execute(42, true, 1));
  EXPECT_EQ(p.server(0).to_server, "");
  auto header = ReadHeader(AsBytes(p.to_client));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->seq, 1);
  auto err = ParseErr(AsBytes(p.to_client).subspan(kHeaderLen));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, 1243);
  EXPECT_EQ(err->message, "Unknown prepared statement handler (42) given to mysqld_stmt_execute");
  // The connection goes on.
  p.to_client.clear();
  p.FeedClient(QueryPacket("SELECT 1"));
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(QueryPacket("SELECT 1")));
}

TEST(MysqlStatementsTest, CloseStaysInTheProxyAndTheStatementStaysForOthers) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  EXPECT_FALSE(p.client().NeedsServer(AsBytes(CommandPacket(kComStmtClose, U32(1)))));
  p.FeedClient(CommandPacket(kComStmtClose, U32(1)));
  EXPECT_EQ(p.server(0).to_server, "");
  p.FeedClient(Execute(1, false, 1));
  EXPECT_EQ(p.server(0).to_server, "");
  ASSERT_GT(p.to_client.size(), kHeaderLen + 3);
  EXPECT_EQ(ParseErr(AsBytes(p.to_client).subspan(kHeaderLen))->code, 1243);
  // The same text prepared again is a new id for the client, and server 0 still has it.
  p.to_client.clear();
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ?"));
  p.FeedServer(PrepareAnswer(56));
  EXPECT_EQ(Hex(p.to_client), Hex(PrepareAnswer(2)));
  // The server's older id for the same text is closed.
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?") +
                                            CommandPacket(kComStmtClose, U32(55))));
}

TEST(MysqlStatementsTest, AKillNeedsNoServer) {
  // The proxy answers a KILL itself: asking for a server first would leave a client unable to
  // stop the query that holds the pool's last one.
  Pair p;
  const ClientCodec& c = p.client();
  EXPECT_FALSE(c.NeedsServer(AsBytes(QueryPacket("KILL QUERY 7"))));
  EXPECT_FALSE(c.NeedsServer(AsBytes(QueryPacket("/* stop */ kill 7;"))));
  EXPECT_FALSE(c.NeedsServer(AsBytes(CommandPacket(kComProcessKill, U32(7)))));
  // Refused ones are answered here too.
  EXPECT_FALSE(c.NeedsServer(AsBytes(QueryPacket("SELECT 1; KILL QUERY 7"))));
  // Anything else, a KILL in a string, and a KILL not whole yet go to a server.
  EXPECT_TRUE(c.NeedsServer(AsBytes(QueryPacket("SELECT 'kill 7'"))));
  EXPECT_TRUE(c.NeedsServer(AsBytes(QueryPacket("SELECT skill FROM t"))));
  EXPECT_TRUE(c.NeedsServer(AsBytes(QueryPacket("SELECT 1"))));
  std::string kill = QueryPacket("KILL QUERY 7");
  EXPECT_TRUE(c.NeedsServer(AsBytes(kill.substr(0, kill.size() - 1))));
}

TEST(MysqlStatementsTest, LongDataHoldsTheServerUntilTheExecution) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  p.FeedClient(CommandPacket(kComStmtSendLongData, U32(1) + std::string("\x00\x00"
                                                                        "abc",
                                                                        5)));
  EXPECT_EQ(Hex(p.server(0).to_server),
            Hex(CommandPacket(kComStmtSendLongData, U32(55) + std::string("\x00\x00"
                                                                          "abc",
                                                                          5))));
  EXPECT_TRUE(p.client().MidRequest());
  p.FeedClient(Execute(1, false, 1));
  EXPECT_FALSE(p.client().MidRequest());
}

TEST(MysqlStatementsTest, ACursorPinsUntilTheStatementIsReset) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  p.FeedClient(Execute(1, false, 1, /*flags=*/1));
  ASSERT_FALSE(p.events.empty());
  EXPECT_EQ(p.events.front(), Cat("effects pins=", PinBit(PinReason::kHoldCursor), " unpins=0"));
  p.events.clear();
  p.FeedServer(Packets(
      1, {ColumnCount(1), ColumnDef("c"),
          Writer().U8(0xfe).U16(0).U16(kStatusAutocommit | kStatusCursorExists).payload()}));
  p.events.clear();
  p.FeedClient(CommandPacket(kComStmtReset, U32(1)));
  EXPECT_EQ(p.events.front(), Cat("effects pins=0 unpins=", PinBit(PinReason::kHoldCursor)));
  EXPECT_EQ(Hex(p.server(0).to_server).substr(Hex(p.server(0).to_server).size() - 18),
            Hex(CommandPacket(kComStmtReset, U32(55))));
}

TEST(MysqlStatementsTest, ResetConnectionForgetsEveryStatement) {
  Pair p;
  PrepareAndExecuteOnServer0(p);
  p.FeedClient(CommandPacket(kComResetConnection));
  p.FeedServer(Pkt(1, Ok()));
  p.server(0).to_server.clear();
  p.to_client.clear();
  // The client's ids are gone with the session.
  p.FeedClient(Execute(1, false, 1));
  EXPECT_EQ(p.server(0).to_server, "");
  EXPECT_EQ(ParseErr(AsBytes(p.to_client).subspan(kHeaderLen))->code, 1243);
  // And the server's: a new prepare of the same text is not taken for the old one.
  p.to_client.clear();
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ?"));
  p.FeedServer(PrepareAnswer(1));
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")))
      << "no COM_STMT_CLOSE of an id the reset already dropped";
}

TEST(MysqlStatementsTest, AFailedPrepareLeavesNoIdBehind) {
  Pair p;
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT * FROM gone"));
  p.FeedServer(Pkt(1, Err(1146, "Table 'wp_db.gone' doesn't exist")));
  p.client().OnRequestAnswered(kComStmtPrepare, /*failed=*/true);  // as the proxy reports it
  p.server(0).to_server.clear();
  p.to_client.clear();
  p.FeedClient(Execute(1, true, 1));
  EXPECT_EQ(p.server(0).to_server, "");
  EXPECT_EQ(ParseErr(AsBytes(p.to_client).subspan(kHeaderLen))->code, 1243);
}

TEST(MysqlStatementsTest, MariaDbLastPreparedIdNamesTheStatementPreparedLast) {
  Pair p;
  // A prepare and its execution sent together, the execution naming id -1.
  p.FeedClient(CommandPacket(kComStmtPrepare, "SELECT ?") + Execute(0xffffffff, true, 5));
  EXPECT_TRUE(p.paused()) << "the execution waits for the prepare ahead of it";
  EXPECT_EQ(Hex(p.server(0).to_server), Hex(CommandPacket(kComStmtPrepare, "SELECT ?")));
  p.FeedServer(PrepareAnswer(55));
  EXPECT_FALSE(p.paused());
  EXPECT_EQ(Hex(p.server(0).to_server),
            Hex(CommandPacket(kComStmtPrepare, "SELECT ?") + Execute(55, true, 5)));
}

TEST(MysqlStatementsTest, SqlLevelStatementCommandsAreReadInEveryMode) {
  using Op = SqlStatementOp;
  EXPECT_EQ(ReadSqlStatementOp("PREPARE s FROM 'SELECT ?'"), (Op{Op::kPrepare, "s", "SELECT ?"}));
  EXPECT_EQ(ReadSqlStatementOp(" prepare `My``S` from 'SELECT ''x'', ?' ; "),
            (Op{Op::kPrepare, "my`s", "SELECT 'x', ?"}));
  EXPECT_EQ(ReadSqlStatementOp("DEALLOCATE PREPARE S"), (Op{Op::kDeallocate, "s", ""}));
  EXPECT_EQ(ReadSqlStatementOp("drop prepare s"), (Op{Op::kDeallocate, "s", ""}));
  // Not replayable: read differently under ANSI_QUOTES, a backslash, a variable, two
  // statements, a versioned comment (which some servers skip).
  for (std::string_view sql : {"PREPARE s FROM \"SELECT 1\"", "PREPARE s FROM 'SELECT \\'1\\''",
                               "PREPARE s FROM @q", "PREPARE s FROM 'SELECT 1'; SELECT 2",
                               "/*!99999 PREPARE s FROM 'SELECT 1' */", "EXECUTE s", "SELECT 1"}) {
    EXPECT_EQ(ReadSqlStatementOp(sql).kind, Op::kNone) << sql;
  }
}

TEST(MysqlStatementsTest, SqlLevelStatementsAreReplayedOnTheNextServer) {
  Pair p;
  const std::string prepare = "PREPARE s FROM 'SELECT ?'";
  p.FeedClient(QueryPacket(prepare));
  EXPECT_EQ(p.events.front(), "request-end 3") << "a replayable PREPARE pins nothing";
  p.FeedServer(Pkt(1, Ok()));
  ParamList recorded = p.recorded;
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].first, SqlStatementParam("s"));
  EXPECT_EQ(recorded[0].second, prepare);
  // Server 1 gets it again before the client's next request; what it held of another client
  // (put there the same way) goes.
  ServerCodec& other = p.server(1).codec;
  EXPECT_TRUE(other.ApplyParameters({{SqlStatementParam("t"), "PREPARE t FROM 'SELECT 1'"}}));
  p.Attach(1);
  p.FeedServer(Pkt(1, Ok()));
  p.server(1).to_server.clear();
  EXPECT_TRUE(other.ApplyParameters(recorded));
  EXPECT_EQ(p.server(1).to_server, QueryPacket("DEALLOCATE PREPARE `t`") + QueryPacket(prepare));
  p.FeedServer(Pkt(1, Ok()) + Pkt(1, Ok()));
  EXPECT_EQ(p.internal_done, 2) << "one group per ApplyParameters";
  EXPECT_FALSE(other.ApplyParameters(recorded)) << "nothing left to do";
  // DEALLOCATE reports the statement gone.
  p.recorded.clear();
  p.FeedClient(QueryPacket("DEALLOCATE PREPARE s"));
  p.FeedServer(Pkt(1, Ok()));
  ASSERT_EQ(p.recorded.size(), 1u);
  EXPECT_EQ(p.recorded[0].second, "");
}

}  // namespace
}  // namespace wirepool::codec::mysql
