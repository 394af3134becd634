#pragma once

// The server side of a PostgreSQL connection: the proxy plays the client. Login (SCRAM-SHA-256,
// md5 or cleartext with the proxy's stored credentials), then framing of the server's messages:
// ReadyForQuery gives the transaction state; ParameterStatus keeps the parameter cache current;
// everything is forwarded unchanged except the answers to requests the codec sent itself.

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

#include "codecs/api/codec.h"
#include "codecs/postgres/scram.h"
#include "codecs/postgres/sql_statements.h"
#include "core/fifo.h"
#include "core/strings.h"

namespace wirepool::codec::postgres {

class ServerCodec final : public codec::ServerCodec {
 public:
  ServerCodec(const ServerLogin& login, ServerCodecSink& sink);

  // With ServerLogin::tls, an SSLRequest first; the startup packet goes with ContinueLogin.
  void Start() override;
  Step OnBytes(ByteView in) override;
  void ContinueLogin(bool encrypted) override;
  const ParamList& Parameters() const override { return params_; }
  std::string CancelKey() const override { return cancel_key_; }
  void SendInternalQuery(std::string_view sql) override { SendInternal(sql); }
  void SendReset() override;
  void SendSetParameters(const ParamList& params) override;
  ParamList ParametersToApply(const ParamList& wanted) const override;
  // With set_config (which reads a value as the config file would, lists included) for what
  // differs, and RESET for what an earlier client changed that `wanted` does not name.
  bool ApplyParameters(const ParamList& wanted) override;
  // SELECT current_setting(name, true), ...: each non-NULL value is reported.
  bool SendReadBack(const std::vector<std::string>& names) override;
  // Reads back what init_sql's statements may set (as the classifier reads them); the values,
  // with the startup packet's, are the baseline ApplyParameters returns to (with set_config where
  // RESET would go back past init_sql to the server's default).
  bool SendBaseline(const std::vector<std::string>& init_sql) override;
  std::vector<std::string> BaselineNames() const override;
  // Marks `key` used by the request under way.
  bool HasStatement(std::string_view key) const override;
  bool Quiet() const override;
  // A kSync note may carry SqlOps (and one the codec stands in for sends its stand-in); a Close +
  // Parse of a key past login.max_prepared_statements closes the least recently used other key
  // first (server_statements.cc).
  void NoteStatementMessage(const StatementNote& note) override;

 private:
  // kTlsAnswer: SSLRequest sent, waiting for 'S' or 'N'; kTlsPending: answered, waiting for
  // ContinueLogin (the server may say nothing more before the handshake).
  enum class State { kIdle, kTlsAnswer, kTlsPending, kLogin, kRunning, kDone };

  void SendStartup();
  bool tls_accepted_ = false;  // the server answered the SSLRequest with 'S'

  Step OnLogin(ByteView message);
  Step OnAuthRequest(ByteView body);
  Step OnRunning(ByteView in);
  // The bytes of the whole DataRow messages at the front of `in`, which pass with the one before.
  static size_t DataRowRun(ByteView in);
  Step LoginFailed(std::string_view message);
  void SetParameter(std::string_view name, std::string_view value);
  // A request of the codec's own, and what its success does to the server's SQL-level
  // statements (kPrepare / kDeallocate: a client's, replayed by ApplyParameters; their errors are
  // not the client's, unlike those of kPlain).
  struct Internal {
    enum Kind : uint8_t { kPlain, kPrepare, kDeallocate };
    Kind kind = kPlain;
    std::string name;
    std::string text;
  };
  void SendInternal(std::string_view sql);
  void SendInternal(std::string_view sql, Internal request);
  // At an internal request's ReadyForQuery.
  void FinishInternal();

  // SQL-level statements (server_statements.cc, sql_statements.h).
  struct SqlRequest {
    SqlOps ops;
    size_t completed = 0;  // CommandCompletes so far: how many of its statements ran
  };
  // The request being answered, if it is one with SqlOps.
  SqlRequest* CurrentSqlRequest();
  // At its ReadyForQuery: what ran of it stands.
  void FinishSqlRequest();
  void ApplySqlOp(const SqlOp& op);
  // The server has none of its SQL-level statements any more (DISCARD ALL, DEALLOCATE ALL).
  void ForgetSqlStatements();
  // Reports a change of the attached client's SQL-level statements (an empty text: gone).
  void ReportSqlStatement(std::string_view name, std::string_view text);
  // What stands in for a client's lone DISCARD ALL / DEALLOCATE ALL: sent, with its ops.
  SqlOps SendStandIn(const SqlOps& ops);
  // ApplyParameters' part: deallocate what `wanted` does not hold, prepare what it lacks.
  bool ApplySqlStatements(const ParamList& wanted);
  // max_prepared_statements: makes room for `key` about to be prepared.
  void EvictFor(const std::string& key);
  // The DataRow answering SendReadBack.
  void OnReadBackRow(ByteView body);
  // ParseComplete / CloseComplete for the oldest note of their kind before the next Sync: whether
  // the client sees it.
  bool OnStatementAnswer(StatementNote::Kind kind);
  // Records a value this session now has that a client gave it (so the next client's
  // ApplyParameters resets it if that client does not want it).
  void NoteChanged(std::string_view name, std::string_view value);

  ServerLogin login_;
  ServerCodecSink& sink_;
  State state_ = State::kIdle;
  std::unique_ptr<ScramClient> scram_;
  ParamList params_;  // as the server reported them
  // Set by the startup packet, by SendSetParameters / ApplyParameters, or changed by a client
  // (reported or read back) since the last reset, with the value the session has now.
  ParamList applied_;
  // What the session has after the proxy's own setup: the startup packet's parameters and what
  // init_sql set (SendBaseline); reset to the startup packet's by SendReset.
  ParamList baseline_;
  // Bumped by every change to params_, applied_ or baseline_. ApplyParameters found nothing to
  // send for `apply_wanted_` at generation `apply_gen_`: the same list at the same generation
  // needs nothing either (a transaction-pooled client that gets its server again, or one with the
  // same parameters: most attaches), without comparing every parameter again.
  uint64_t param_gen_ = 0;
  uint64_t apply_gen_ = UINT64_MAX;
  ParamList apply_wanted_;
  bool reading_baseline_ = false;       // the SendReadBack under way is SendBaseline's
  std::vector<std::string> read_back_;  // the names of the SendReadBack under way
  // Transaction pooling (see StatementNote): the Parse / Close / Sync messages whose answers are
  // still to come, and the statements this server holds.
  core::Fifo<StatementNote> notes_;  // not a deque: that allocates a chunk every few requests
  // Each key with the tick_ of its last use (HasStatement, which is const, marks it).
  mutable absl::flat_hash_map<std::string, uint64_t> prepared_;
  uint64_t tick_ = 0;  // kSync notes so far: the request under way
  // The SQL-level statements this server holds (the PREPARE's text, or kPlaceholderText), and the
  // client Queries with SqlOps still to be answered, in the order of their kSync notes.
  absl::flat_hash_map<std::string, std::string> sql_statements_;
  std::deque<SqlRequest> sql_requests_;
  bool request_failed_ = false;  // OnRequestFailed was given for the current request
  std::string cancel_key_;
  size_t forward_left_ = 0;
  bool consume_rest_ = false;    // the rest of the current message is dropped, not forwarded
  TxState tx_ = TxState::kIdle;  // as the last ReadyForQuery said
  int internal_pending_ = 0;     // ReadyForQuery still owed to requests the codec sent itself
  std::unique_ptr<WireError> internal_error_;
  std::deque<Internal> internal_;                      // the requests internal_pending_ counts
  std::unique_ptr<WireError> internal_request_error_;  // of the internal request being answered
};

}  // namespace wirepool::codec::postgres
