#pragma once

// The server side of a MySQL / MariaDB connection: the proxy plays the client. Login (Handshake
// v10 answered with HandshakeResponse41; mysql_native_password, caching_sha2_password,
// client_ed25519 and mysql_clear_password with the proxy's stored credentials, AuthSwitchRequest
// between them), then framing of the server's responses: each client request announced with
// ExpectResponse is answered by one response whose grammar depends on the command; the OK / EOF
// status flags at its end give the transaction state. Everything is forwarded unchanged (sequence
// ids too) except the responses to requests the codec sent itself, which are consumed. Packets
// the codec does not need to read (rows, column definitions) are forwarded in pieces as they
// arrive, so a 16 MiB row is never held whole.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "codecs/api/codec.h"
#include "codecs/mysql/wire.h"
#include "core/recycling_resource.h"

namespace wirepool::codec::mysql {

// ServerLogin::reset_method values: COM_RESET_CONNECTION, falling back to COM_CHANGE_USER for
// good once a server refuses it (the default); COM_RESET_CONNECTION only (a refusal closes the
// connection); COM_CHANGE_USER always (re-login as the pool's backend user, back to its database).
constexpr std::string_view kResetAuto = "auto";
constexpr std::string_view kResetConnection = "reset_connection";
constexpr std::string_view kResetChangeUser = "change_user";

class ServerCodec final : public codec::ServerCodec {
 public:
  // Client flags asked for when the login options carry no "client_flags" (before the
  // intersection with what the server offers).
  static constexpr uint32_t kDefaultClientFlags =
      kLongPassword | kLongFlag | kProtocol41 | kTransactions | kSecureConnection |
      kMultiStatements | kMultiResults | kPsMultiResults | kPluginAuth |
      kPluginAuthLenencClientData | kDeprecateEof | kSessionTrack;

  ServerCodec(const ServerLogin& login, ServerCodecSink& sink);
  ~ServerCodec() override;

  void Start() override;
  Step OnBytes(ByteView in) override;
  // With ServerLogin::tls, the HandshakeResponse41 waits for this (after the SSL request).
  void ContinueLogin(bool encrypted) override;
  const ParamList& Parameters() const override { return params_; }
  std::string CancelKey() const override { return cancel_key_; }
  void ExpectResponse(uint32_t tag) override;
  void SendInternalQuery(std::string_view sql) override;
  void SendReset() override;
  void SendSetParameters(const ParamList& params) override;
  ParamList ParametersToApply(const ParamList& wanted) const override;
  // "<status flags>" between responses, "<status flags>:<next sequence id>" inside one.
  std::string ResponseState() const override;
  // COM_INIT_DB for the schema and one SET SESSION for system variables (DEFAULT for what an
  // earlier client changed that `wanted` does not name), answered as one internal request.
  bool ApplyParameters(const ParamList& wanted) override;
  // SELECT @@SESSION.<name>, ...: each non-NULL value is reported.
  bool SendReadBack(const std::vector<std::string>& names) override;
  // Reads back what the proxy's setup set (the user's startup parameters, applied with
  // ApplyParameters, and what init_sql's statements may set, as the classifier reads them): the
  // baseline ApplyParameters returns to in place of DEFAULT.
  bool SendBaseline(const std::vector<std::string>& init_sql) override;
  std::vector<std::string> BaselineNames() const override;
  // Server-side prepared statements (server_statements.cc).
  ServerStatement FindStatement(std::string_view key) const override;
  void NoteStatementMessage(const StatementNote& note) override;

  // The client flags sent in the HandshakeResponse41 (valid once it was sent).
  uint32_t client_flags() const { return client_flags_; }

 private:
  // kTlsPending: the greeting read (and the SSL request sent if the server offers TLS); the
  // server may say nothing until ContinueLogin sends the HandshakeResponse41.
  enum class State { kIdle, kHandshake, kTlsPending, kAuth, kRunning, kDone };

  void SendHandshakeResponse();

  // Where a caching_sha2_password exchange stands.
  enum class Sha2 { kNone, kScrambleSent, kKeyRequested };

  // What the next packet of the current response may be.
  enum class Phase {
    kFirst,              // first packet of a (result of a) COM_QUERY / COM_STMT_EXECUTE response
    kColumnDefs,         // column definitions of a result set, counted
    kColumnsEof,         // the EOF after them (without CLIENT_DEPRECATE_EOF)
    kRows,               // rows until EOF / OK-0xfe / ERR
    kInfileReply,        // the OK / ERR after the client sent a LOCAL INFILE's data
    kPrepareFirst,       // ERR or the COM_STMT_PREPARE OK
    kPrepareParams,      // parameter definitions, counted
    kPrepareParamsEof,   // the EOF after them (without CLIENT_DEPRECATE_EOF)
    kPrepareColumns,     // column definitions, counted
    kPrepareColumnsEof,  // the EOF after them (without CLIENT_DEPRECATE_EOF)
    kFetchRows,          // COM_STMT_FETCH: rows until EOF / OK-0xfe / ERR
    kFieldList,          // COM_FIELD_LIST: column definitions until EOF / OK-0xfe / ERR
    kStatistics,         // COM_STATISTICS: one packet
    kSimple,             // OK / ERR / EOF
  };

  // A request whose response is on its way, in the order the server answers them.
  struct Pending {
    uint32_t command = 0;       // the command byte (ClientCodecSink::OnRequestEnd's tag)
    bool internal = false;      // sent by the codec itself: its response is consumed
    std::string schema;         // the database of an internal COM_INIT_DB
    bool multi_packet = false;  // the command spanned packets: its answer's first id is unknown
    bool report_done = true;    // internal: the last of its group, so OnInternalDone follows it
    // COM_STMT_PREPARE: the statement's key (see FullKey) and, when the client sent it, the
    // client's id for it, which the answer carries in place of the server's.
    std::string statement_key;
    uint32_t client_id = 0;
    // A COM_PING after a client's request that failed: its OK's status flags say whether the
    // session is in a transaction now, and stand for that request's OnReadyForQuery.
    bool probe = false;
    // A SQL-level PREPARE ('P') or DEALLOCATE ('D') of statement `sql_name` (sql_statements.h):
    // applied when the server says OK. `tolerant`: an error is not the group's (a statement the
    // proxy prepares again that no longer prepares is simply missing, as EXECUTE will say).
    char sql_op = 0;
    std::string sql_name;
    std::string sql_text;
    bool tolerant = false;
  };

  // A statement this server has prepared, by FullKey.
  struct Prepared {
    ServerStatement::Status status = ServerStatement::kPreparing;
    uint32_t id = 0;
    uint16_t params = 0;
    std::string bound;  // the parameter types its last execution bound
    uint64_t used = 0;  // for eviction, least recently used first
    std::string error;  // kFailed
  };

  // The flags that decide the server's framing (what both sides have).
  uint32_t caps() const { return client_flags_ & server_caps_; }
  // A WireError from a whole ERR packet (header included).
  static WireError ServerError(ByteView packet, bool fatal);
  void SetParameter(std::string_view name, std::string_view value);
  void SendPacket(std::string_view payload, uint8_t seq);
  // Takes the status flags and session-state changes of an OK packet; `report` passes changed
  // system variables to the sink. True when the OK named the current schema.
  bool ApplyOk(const OkPacket& ok, bool report);
  Pending& SendInternal(uint8_t command, std::string_view arg, std::string schema,
                        bool report_done = true);
  // A SQL-level statement command succeeded (sql_statements.h); `report` tells the proxy.
  void ApplySqlOp(const Pending& request, bool report);
  // Reports every SQL-level statement gone (the client reset its session) and forgets them.
  void ForgetSqlStatements(bool report);
  // A value a client gave this session (tracked or read back).
  void NoteChanged(std::string_view name, std::string_view value);
  // A text row answering SendReadBack.
  void OnReadBackRow(ByteView payload);

  // ---- login (server_login.cc) ----
  Step OnLoginBytes(ByteView in);
  Step OnHandshake(ByteView packet);
  Step OnAuthReply(ByteView packet);
  Step OnAuthSwitch(ByteView payload);
  Step OnAuthMoreData(ByteView payload);
  Step OnLoginOk(ByteView payload);
  // The current plugin's answer to the current scramble; Unimplemented for a plugin wirepool
  // lacks.
  absl::StatusOr<std::string> AuthResponse() const;
  Step LoginFailed(const absl::Status& status);
  Step LoginFailed(MysqlError error, std::string_view message);
  // The login's end when it was a COM_CHANGE_USER reset: reported as the reset's outcome.
  Step ReloginDone(const WireError* error);
  // Resets the session by logging in again with COM_CHANGE_USER (answered like a login).
  void SendChangeUser();

  // ---- responses (server_response.cc) ----
  static Phase FirstPhase(uint32_t command);
  Step OnRunning(ByteView in);
  // Whether a logical packet must be read whole, given its first payload byte.
  bool NeedsWhole(uint8_t first, uint32_t length) const;
  // Whether the opaque packet about to start is the last of the response.
  bool OpaqueEndsResponse() const;
  // Starts an opaque logical packet (advancing the phase) and passes what is there of it.
  Step StartOpaque(ByteView in, uint32_t length);
  // Passes the physical packet at the front of `in`, or as much of it as there is.
  Step PassOpaque(ByteView in, uint32_t length);
  Step ContinuePacket(ByteView in);
  // The bytes of the whole, plain rows at the front of `in` (0 if the first is not one), so that
  // a result's rows pass in one step and one write rather than one per row.
  size_t RowRun(ByteView in);
  void MaybeEndAfterPacket();
  // A packet read whole (header included); false after a protocol error.
  bool OnWholePacket(ByteView packet);
  bool OnResultOkOrErr(ByteView packet);
  bool OnLocalInfile(uint8_t seq);
  void AfterPrepareParams();
  // The status of an EOF or (with CLIENT_DEPRECATE_EOF) an OK-0xfe; nullopt if neither.
  std::optional<uint16_t> TerminatorStatus(ByteView payload);
  void RecordError(ByteView packet);
  // The current response is complete: report it and go on with the next.
  void EndResponse();
  // Server-side prepared statements (server_statements.cc). A statement's key with what decides
  // how the server reads its text here (schema, sql_mode, character set): a statement is shared
  // only by sessions that read it alike. The result is overwritten by the next call: it is one
  // string kept for the purpose, so that the lookup every COM_STMT_EXECUTE makes allocates
  // nothing.
  const std::string& FullKey(std::string_view key) const;
  // The COM_STMT_PREPARE OK of a response: records the statement, and for a client's prepare,
  // sends the client its own id in place of the server's. False when the packet is malformed.
  bool OnPrepareOk(ByteView packet, uint16_t params);
  // A prepare of the codec's own ended (after its definitions, or in an error).
  void EndStatementPrepare(const Pending& request);
  // Closes the least recently used statements over the cap (never `keep`).
  void EvictStatements(const std::string& keep);
  Verdict PassVerdict() const;
  bool Fail(std::string_view message);
  Step ProtocolError(std::string_view message);

  ServerLogin login_;
  ServerCodecSink& sink_;
  State state_ = State::kIdle;
  ParamList params_;
  std::string cancel_key_;

  // Login.
  uint32_t server_caps_ = 0;
  uint32_t client_flags_ = 0;
  uint16_t status_ = 0;  // the last status flags the server reported
  std::string plugin_;
  std::string scramble_;
  Sha2 sha2_ = Sha2::kNone;
  uint8_t login_seq_ = 0;  // the sequence id the server's next login packet must carry
  // What the handshake named, for COM_CHANGE_USER: the server checks its answer against these.
  std::string handshake_plugin_;
  std::string handshake_scramble_;
  uint8_t charset_ = 45;
  bool tls_ = false;      // the login went on through TLS: caching_sha2 sends the password as it is
  bool relogin_ = false;  // the login under way is a COM_CHANGE_USER reset
  bool reset_refused_ = false;  // the server refused COM_RESET_CONNECTION once

  // Responses.
  // A deque, not a core::Fifo: response handlers hold a reference to the front request while
  // they report to the session, and a new request pushed meanwhile must not move it. Its chunks
  // (three requests each) are recycled, so that requests passing through allocate nothing, and
  // a burst of pipelined commands is not kept for the life of the connection.
  core::RecyclingResource pending_chunks_;
  std::pmr::deque<Pending> pending_{&pending_chunks_};
  bool response_started_ = false;  // the first packet of pending_.front()'s response arrived
  Phase phase_ = Phase::kFirst;
  uint8_t next_seq_ = 1;
  bool seq_known_ = true;
  uint64_t left_ = 0;  // column / parameter definitions still to come
  uint32_t prepare_columns_ = 0;
  bool rows_started_ = false;  // a row of the current result set has passed
  size_t packet_left_ = 0;     // bytes of the current physical packet not passed yet
  bool continues_ = false;     // the current logical packet continues in the next physical one
  bool end_after_packet_ = false;
  std::unique_ptr<WireError> internal_error_;

  // Transaction pooling: system variables clients changed on this session, with their values now,
  // and the names of the SendReadBack under way.
  ParamList changed_;
  std::vector<std::string> read_back_;
  // What the session has after the proxy's own setup (SendBaseline); a value in changed_ is one
  // that differs from this, or from the server's default where this names nothing.
  ParamList baseline_;
  bool reading_baseline_ = false;  // the SendReadBack under way is SendBaseline's

  mutable std::string full_key_;  // FullKey's result
  // Server-side prepared statements, by FullKey, and the next prepare's note from the client.
  absl::flat_hash_map<std::string, Prepared> statements_;
  uint64_t statement_clock_ = 0;
  std::optional<StatementNote> next_prepare_;
  std::optional<StatementNote> next_sql_op_;  // for the next COM_QUERY
  // SQL-level statements this server holds, by lower-case name: the PREPARE query of each.
  absl::flat_hash_map<std::string, std::string> sql_prepared_;
  bool consume_packet_ = false;  // the packet read whole was replaced by SendToClient
  bool request_failed_ = false;  // the client's request being answered got an ERR
  // The state-change tracker fired for the client's request without naming a variable or the
  // schema (ServerCodecSink::OnSessionStateChanged); switched on by SendBaseline.
  bool unexplained_change_ = false;
  // Counts the queries after which the schema may have changed unseen (no schema tracking):
  // statements prepared before one of them are not shared after it.
  uint64_t unknown_schema_epoch_ = 0;

  // Schema: what the codec knows this connection has selected.
  bool schema_known_ = false;
  std::string schema_;
  bool tracking_schema_ = false;  // the server reports schema changes (session tracking)
};

}  // namespace wirepool::codec::mysql
