// Transaction pooling, prepared statements past the renaming of postgres_statements_test.cc
// (codecs/postgres/sql_statements.h, server_statements.cc): SQL-level PREPARE / DEALLOCATE
// followed per client and replayed on attach, the stand-in for a lone DISCARD ALL / DEALLOCATE
// ALL, the 42P05 of a Parse that reuses a name, and max_prepared_statements.
//
// Two client codecs share one server codec here, joined as the proxy joins them: a client's notes
// reach the server codec, the server codec's parameter reports go to the attached client's record,
// and Attach hands that record to ApplyParameters. Server answers are scripted by hand, fed whole
// and then byte by byte (which must give the same bytes to the client).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/server_codec.h"
#include "codecs/postgres/sql_statements.h"
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

std::string I16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string I32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string Str(std::string_view s) { return Cat(s, '\0'); }
std::string Msg(char type, std::string_view body) {
  return Cat(type, I32(static_cast<uint32_t>(4 + body.size())), body);
}
std::string ParseBody(std::string_view sql) { return Cat(Str(sql), I16(0)); }
std::string Parse(std::string_view name, std::string_view body) {
  return Msg('P', Cat(Str(name), body));
}
std::string Bind(std::string_view statement) {
  return Msg('B', Cat(Str(""), Str(statement), I16(0), I16(0), I16(0)));
}
std::string Close(std::string_view name) { return Msg('C', Cat('S', Str(name))); }
std::string Sync() { return Msg('S', ""); }
std::string Query(std::string_view sql) { return Msg('Q', Str(sql)); }
std::string ParseComplete() { return Msg('1', ""); }
std::string BindComplete() { return Msg('2', ""); }
std::string CloseComplete() { return Msg('3', ""); }
std::string Ready(char status) { return Msg('Z', std::string(1, status)); }
std::string Complete(std::string_view tag) { return Msg('C', Str(tag)); }
std::string Error(std::string_view code, std::string_view message) {
  return Msg('E', Cat('S', Str("ERROR"), 'C', Str(code), 'M', Str(message), '\0'));
}
std::string Wp(std::string_view body) {
  return Cat("wp_", Hex(crypto::Sha256(body)).substr(0, 32));
}
std::string KeyOf(std::string_view body) { return Hex(crypto::Sha256(body)).substr(0, 32); }

constexpr char kUser[] = "alice";
constexpr char kPassword[] = "alice-pw";

std::string Startup() {
  std::string body =
      Cat(I32(kProtocol30), Str("user"), Str(kUser), Str("database"), Str("db"), '\0');
  return Cat(I32(static_cast<uint32_t>(4 + body.size())), body);
}
std::string Md5Password() {
  std::string inner = crypto::Md5Hex(Cat(kPassword, kUser));
  return Msg('p', Str(Cat("md5", crypto::Md5Hex(Cat(inner, "\x10\x11\x12\x13")))));
}

void Pump(std::string_view bytes, const std::function<Step(ByteView)>& step, std::string* out) {
  while (!bytes.empty()) {
    Step s = step(AsBytes(bytes));
    if (s.verdict == Verdict::kNeedMore) {
      ADD_FAILURE() << "codec wants more than the script gives";
      return;
    }
    ASSERT_TRUE(s.verdict == Verdict::kForward || s.verdict == Verdict::kConsume);
    if (s.verdict == Verdict::kForward && out != nullptr) {
      out->append(bytes.substr(0, s.bytes));
    }
    bytes.remove_prefix(s.bytes);
  }
}

// A server codec shared by two client codecs, as the proxy shares it.
class Pool final : public ServerCodecSink {
 public:
  class Client final : public ClientCodecSink {
   public:
    Client(Pool& pool) : pool_(pool) {
      ClientCodecOptions options;
      options.auth_method = "md5";
      options.random = CounterRandom("");
      options.classify = true;
      codec_ = std::make_unique<ClientCodec>(options, *this);
      Pump(
          Startup() + Md5Password(), [this](ByteView in) { return codec_->OnBytes(in); }, nullptr);
      codec_->CompleteLogin({{"server_version", "15.0"}});
      to_client_.clear();
    }
    ClientCodec& codec() { return *codec_; }
    ParamList& params() { return params_; }
    std::string TakeToClient() { return std::move(to_client_); }

    void SendToClient(std::string_view bytes) override { to_client_ += bytes; }
    void OnStartup(const StartupInfo& info) override {
      secret_ = UserSecret{info.user, kPassword, {}};
      codec_->BeginAuth(&secret_);
    }
    void OnCancelRequest(std::string_view) override {}
    void OnAuthenticated() override {}
    void OnAuthFailed(std::string_view reason) override { ADD_FAILURE() << reason; }
    void OnRequestEnd(uint32_t) override {}
    void OnTerminate() override {}
    void SendToServer(std::string_view bytes) override { pool_.to_server_ += bytes; }
    bool ServerHasStatement(std::string_view key) override {
      return pool_.server_->HasStatement(key);
    }
    bool ServerIsQuiet() override { return pool_.server_->Quiet(); }
    void OnStatementMessage(const StatementNote& note) override {
      pool_.server_->NoteStatementMessage(note);
    }
    void OnProtocolError(const absl::Status& status) override { ADD_FAILURE() << status.message(); }

   private:
    Pool& pool_;
    std::unique_ptr<ClientCodec> codec_;
    UserSecret secret_;
    ParamList params_;
    std::string to_client_;
  };

  explicit Pool(size_t max_prepared = 0) {
    ServerLogin login;
    login.user = "wp";
    login.database = "db";
    login.max_prepared_statements = max_prepared;
    server_ = std::make_unique<ServerCodec>(login, *this);
    server_->Start();
    Pump(
        Msg('R', I32(0)) + Msg('K', I32(1) + I32(2)) + Ready('I'),
        [this](ByteView in) { return server_->OnBytes(in); }, nullptr);
    clients_.push_back(std::make_unique<Client>(*this));
    clients_.push_back(std::make_unique<Client>(*this));
    to_server_.clear();
  }

  Client& client(int i) { return *clients_[i]; }
  ServerCodec& server() { return *server_; }
  // The server goes to client `i`: what ApplyParameters sent.
  std::string Attach(int i) {
    current_ = i;
    to_server_.clear();
    server_->ApplyParameters(clients_[i]->params());
    return std::move(to_server_);
  }
  // What the server got for the current client's bytes.
  std::string FromClient(std::string_view bytes) {
    to_server_.clear();
    Pump(
        bytes, [this](ByteView in) { return clients_[current_]->codec().OnBytes(in); },
        &to_server_);
    return std::move(to_server_);
  }
  // What the current client got of these server bytes (after what its own codec sent it).
  std::string FromServer(std::string_view bytes) {
    std::string out = clients_[current_]->TakeToClient();
    Pump(
        bytes, [this](ByteView in) { return server_->OnBytes(in); }, &out);
    return out;
  }
  std::vector<std::string> TakeEvents() { return std::move(events_); }
  // The current client's record of its SQL-level statement `name` (nullopt: none).
  std::optional<std::string> Recorded(int i, std::string_view name) {
    for (const auto& [param, value] : clients_[i]->params()) {
      if (param == SqlStatementParam(name)) {
        return value;
      }
    }
    return std::nullopt;
  }

  void SendToServer(std::string_view bytes) override { to_server_ += bytes; }
  void OnLoginComplete() override {}
  void OnLoginFailed(const WireError& e) override { ADD_FAILURE() << e.message; }
  void OnReadyForQuery(TxState) override { events_.push_back("ready"); }
  void OnRequestFailed() override { events_.push_back("failed"); }
  void OnParameterStatus(std::string_view name, std::string_view value) override {
    ParamList& params = clients_[current_]->params();
    for (auto& [k, v] : params) {
      if (k == name) {
        v = std::string(value);
        return;
      }
    }
    params.emplace_back(std::string(name), std::string(value));
  }
  void OnInternalDone(const WireError* e) override {
    events_.push_back(e == nullptr ? "internal ok" : Cat("internal error ", e->code));
  }
  void OnProtocolError(const absl::Status& status) override { ADD_FAILURE() << status.message(); }

 private:
  std::unique_ptr<ServerCodec> server_;
  std::vector<std::unique_ptr<Client>> clients_;
  int current_ = 0;
  std::string to_server_;
  std::vector<std::string> events_;
};

TEST(PostgresSqlStatementsTest, PrepareFollowsItsClientAndNoOtherSeesIt) {
  Pool pool;
  EXPECT_EQ(pool.Attach(0), "");  // nothing on either side: nothing to do
  const std::string prepare0 = "PREPARE s AS SELECT 1";
  EXPECT_EQ(Hex(pool.FromClient(Query(prepare0))), Hex(Query(prepare0)));
  std::string answer = Complete("PREPARE") + Ready('I');
  EXPECT_EQ(Hex(pool.FromServer(answer)), Hex(answer));
  EXPECT_EQ(pool.Recorded(0, "s"), prepare0);

  // Client 1 has none: the server's "s" goes, so that its EXECUTE s fails as on a fresh session.
  EXPECT_EQ(Hex(pool.Attach(1)), Hex(Query("DEALLOCATE \"s\"")));
  EXPECT_EQ(pool.FromServer(Complete("DEALLOCATE") + Ready('I')), "");
  EXPECT_THAT(pool.TakeEvents(), ::testing::ElementsAre("ready", "internal ok"));
  const std::string prepare1 = "prepare S as select 2";
  pool.FromClient(Query(prepare1));
  pool.FromServer(answer);
  EXPECT_EQ(pool.Recorded(1, "s"), prepare1);
  EXPECT_EQ(pool.Recorded(0, "s"), prepare0);

  // Back to client 0: the other text goes, its own comes back; client 1 again: the reverse.
  EXPECT_EQ(Hex(pool.Attach(0)), Hex(Query("DEALLOCATE \"s\"") + Query(prepare0)));
  EXPECT_EQ(pool.FromServer(Complete("DEALLOCATE") + Ready('I') + answer), "");
  EXPECT_EQ(Hex(pool.Attach(1)), Hex(Query("DEALLOCATE \"s\"") + Query(prepare1)));
  pool.FromServer(Complete("DEALLOCATE") + Ready('I') + answer);
  // Nothing to do when the server holds what the client has.
  EXPECT_EQ(pool.Attach(1), "");

  // DEALLOCATE s: gone from the record once it ran.
  pool.FromClient(Query("DEALLOCATE s"));
  pool.FromServer(Complete("DEALLOCATE") + Ready('I'));
  EXPECT_EQ(pool.Recorded(1, "s"), "");
  EXPECT_EQ(Hex(pool.Attach(0)), Hex(Query(prepare0)));
}

TEST(PostgresSqlStatementsTest, OnlyTheStatementsThatRanCount) {
  Pool pool;
  pool.Attach(0);
  pool.FromClient(Query("PREPARE a AS SELECT 1; SELECT 1/0; PREPARE b AS SELECT 2"));
  // PREPARE a ran (and stands, though the implicit transaction rolls back); b never ran.
  std::string answer =
      Complete("PREPARE") + Msg('T', I16(0)) + Error("22012", "division by zero") + Ready('I');
  EXPECT_EQ(Hex(pool.FromServer(answer)), Hex(answer));
  EXPECT_EQ(pool.Recorded(0, "a"), "PREPARE a AS SELECT 1");
  EXPECT_EQ(pool.Recorded(0, "b"), std::nullopt);
  // An unknown name fails as PostgreSQL says; nothing is recorded for EXECUTE.
  pool.FromClient(Query("EXECUTE zz"));
  std::string unknown = Error("26000", "prepared statement \"zz\" does not exist") + Ready('I');
  EXPECT_EQ(Hex(pool.FromServer(unknown)), Hex(unknown));
}

TEST(PostgresSqlStatementsTest, AReplayThatFailsLeavesTheClientBe) {
  Pool pool;
  pool.Attach(0);
  pool.FromClient(Query("PREPARE t AS SELECT * FROM gone"));
  pool.FromServer(Complete("PREPARE") + Ready('I'));
  pool.server().SendReset();  // another server, say
  pool.FromServer(Complete("DISCARD ALL") + Ready('I'));
  pool.TakeEvents();
  EXPECT_EQ(Hex(pool.Attach(0)), Hex(Query("PREPARE t AS SELECT * FROM gone")));
  pool.FromServer(Error("42P01", "relation \"gone\" does not exist") + Ready('I'));
  EXPECT_THAT(pool.TakeEvents(), ::testing::ElementsAre("internal ok"));
  // Still the client's: tried again on the next attach.
  EXPECT_EQ(Hex(pool.Attach(0)), Hex(Query("PREPARE t AS SELECT * FROM gone")));
}

TEST(PostgresSqlStatementsTest, LoneDiscardAllStandsInForWhatIsTheClients) {
  Pool pool;
  pool.Attach(0);
  // A protocol-level statement (shared by the pool) and a SQL-level one of the client's.
  std::string body = ParseBody("SELECT 7");
  pool.FromClient(Parse("S1", body) + Sync() + Query("PREPARE p AS SELECT 8"));
  pool.FromServer(CloseComplete() + ParseComplete() + Ready('I') + Complete("PREPARE") +
                  Ready('I'));
  ASSERT_TRUE(pool.server().HasStatement(KeyOf(body)));
  std::string sent = pool.FromClient(Query("DISCARD ALL"));
  EXPECT_EQ(sent, Query("CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
                        "SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; "
                        "DISCARD SEQUENCES; DEALLOCATE \"p\"; "));
  std::string answer = Complete("CLOSE CURSOR ALL") + Complete("SET") + Complete("RESET") +
                       Complete("UNLISTEN") + Msg('T', I16(0)) + Msg('D', I16(0)) +
                       Complete("SELECT 1") + Complete("DISCARD TEMP") +
                       Complete("DISCARD SEQUENCES") + Complete("DEALLOCATE") + Ready('I');
  // The client sees what PostgreSQL would send: CommandComplete DISCARD ALL, ReadyForQuery.
  EXPECT_EQ(Hex(pool.FromServer(answer)), Hex(Complete("DISCARD ALL") + Ready('I')));
  EXPECT_EQ(pool.Recorded(0, "p"), "");
  // Other clients' statements stay on the server; this client's S1 is forgotten.
  EXPECT_TRUE(pool.server().HasStatement(KeyOf(body)));
  EXPECT_EQ(Hex(pool.FromClient(Bind("S1") + Sync())), Hex(Bind("S1") + Sync()));
}

TEST(PostgresSqlStatementsTest, LoneDeallocateAllWithNothingSendsAnEmptyQuery) {
  Pool pool;
  pool.Attach(0);
  EXPECT_EQ(Hex(pool.FromClient(Query("DEALLOCATE ALL"))), Hex(Query("")));
  EXPECT_EQ(Hex(pool.FromServer(Msg('I', "") + Ready('I'))),
            Hex(Complete("DEALLOCATE ALL") + Ready('I')));
}

TEST(PostgresSqlStatementsTest, DiscardAllInATransactionGoesAsItIs) {
  Pool pool;
  pool.Attach(0);
  pool.FromClient(Query("BEGIN"));
  pool.FromServer(Complete("BEGIN") + Ready('T'));
  EXPECT_EQ(Hex(pool.FromClient(Query("DISCARD ALL"))), Hex(Query("DISCARD ALL")));
  std::string refused =
      Error("25001", "DISCARD ALL cannot run inside a transaction block") + Ready('E');
  EXPECT_EQ(Hex(pool.FromServer(refused)), Hex(refused));
  // Pipelined behind another request, too: the server decides.
  pool.FromClient(Query("ROLLBACK"));
  EXPECT_EQ(Hex(pool.FromClient(Query("DISCARD ALL"))), Hex(Query("DISCARD ALL")));
}

TEST(PostgresSqlStatementsTest, ParseOfATakenNameFailsWith42P05) {
  Pool pool;
  pool.Attach(0);
  std::string body = ParseBody("SELECT 1");
  pool.FromClient(Parse("S1", body) + Sync());
  pool.FromServer(CloseComplete() + ParseComplete() + Ready('I'));
  std::string other = ParseBody("SELECT 2");
  std::string sent = pool.FromClient(Parse("S1", other) + Sync());
  EXPECT_EQ(Hex(sent), Hex(Parse("S1", ParseBody("SELECT")) + Parse("S1", other) + Sync()));
  std::string error = Error("42P05", "prepared statement \"S1\" already exists");
  EXPECT_EQ(Hex(pool.FromServer(ParseComplete() + error + Ready('I'))), Hex(error + Ready('I')));
  // S1 is still the first statement; the placeholder goes before the next client gets the server.
  EXPECT_EQ(Hex(pool.FromClient(Bind("S1") + Sync())), Hex(Bind(Wp(body)) + Sync()));
  pool.FromServer(BindComplete() + Ready('I'));
  EXPECT_EQ(Hex(pool.Attach(1)), Hex(Query("DEALLOCATE \"S1\"")));
}

TEST(PostgresSqlStatementsTest, QuietOnlyWithNothingOutstandingOutsideATransaction) {
  Pool pool;
  pool.Attach(0);
  EXPECT_TRUE(pool.server().Quiet());
  pool.FromClient(Query("SELECT 1"));
  EXPECT_FALSE(pool.server().Quiet());
  pool.FromServer(Complete("SELECT 1") + Ready('T'));
  EXPECT_FALSE(pool.server().Quiet());
  pool.FromClient(Query("COMMIT"));
  pool.FromServer(Complete("COMMIT") + Ready('I'));
  EXPECT_TRUE(pool.server().Quiet());
}

TEST(PostgresSqlStatementsTest, PastTheCapTheLeastRecentlyUsedStatementIsClosed) {
  Pool pool(2);
  pool.Attach(0);
  std::string b1 = ParseBody("SELECT 1"), b2 = ParseBody("SELECT 2"), b3 = ParseBody("SELECT 3");
  pool.FromClient(Parse("S1", b1) + Sync());
  pool.FromServer(CloseComplete() + ParseComplete() + Ready('I'));
  pool.FromClient(Parse("S2", b2) + Sync());
  pool.FromServer(CloseComplete() + ParseComplete() + Ready('I'));
  // S1 is used by this request: S2 (older in use) is the one closed to make room for S3.
  std::string sent = pool.FromClient(Bind("S1") + Parse("S3", b3) + Sync());
  EXPECT_EQ(Hex(sent),
            Hex(Bind(Wp(b1)) + Close(Wp(b2)) + Close(Wp(b3)) + Parse(Wp(b3), b3) + Sync()));
  EXPECT_EQ(Hex(pool.FromServer(BindComplete() + CloseComplete() + CloseComplete() +
                                ParseComplete() + Ready('I'))),
            Hex(BindComplete() + ParseComplete() + Ready('I')));
  // S2 is prepared again where it is needed; S1, now the least recently used, makes room.
  sent = pool.FromClient(Bind("S3") + Bind("S2") + Sync());
  EXPECT_EQ(Hex(sent), Hex(Bind(Wp(b3)) + Close(Wp(b1)) + Close(Wp(b2)) + Parse(Wp(b2), b2) +
                           Bind(Wp(b2)) + Sync()));
  pool.FromServer(BindComplete() + CloseComplete() + CloseComplete() + ParseComplete() +
                  BindComplete() + Ready('I'));
  EXPECT_FALSE(pool.server().HasStatement(KeyOf(b1)));
  EXPECT_TRUE(pool.server().HasStatement(KeyOf(b2)));
  EXPECT_TRUE(pool.server().HasStatement(KeyOf(b3)));
}

}  // namespace
}  // namespace wirepool::codec::postgres
