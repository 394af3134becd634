#pragma once

// The codec contract: a codec is a pure state machine for one side of one connection. It is given
// bytes and reports facts to a sink; the proxy decides what to do with them. A codec never touches
// a socket, a clock or a thread, never throws, never aborts on network bytes, and never keeps a
// view of its input after a call returns. Nothing in proxy/ knows which protocol it is carrying:
// everything protocol-specific goes through these interfaces.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "codecs/api/session.h"
#include "core/crypto.h"

namespace wirepool::codec {

using ByteView = std::span<const uint8_t>;
using ParamList = std::vector<std::pair<std::string, std::string>>;

// Transaction state as the wire reports it (PostgreSQL ReadyForQuery, MySQL status flags).
enum class TxState { kIdle, kInTransaction, kFailed };

// What the codec decided about the bytes at the front of its input.
enum class Verdict {
  kNeedMore,  // `bytes` is how many contiguous bytes it needs before it can decide
  kForward,   // pass the first `bytes` bytes unchanged to the peer
  kConsume,   // the codec handled the first `bytes` bytes itself; drop them
  // The codec waits for the proxy (an answer to OnStartup), or for the client's server (a
  // statement it prepares first; MidRequest() holds meanwhile, and the proxy feeds the input again
  // after the server's next output); keep the input.
  kPause,
  kStop,  // the codec reported a terminal event to its sink; feed nothing more
};

struct Step {
  Verdict verdict;
  size_t bytes = 0;
};

// Errors the proxy itself raises. Each codec maps them to its own wire in exactly one place
// (SQLSTATE for PostgreSQL, error number for MySQL).
enum class ProxyError {
  kProtocolViolation,
  kAuthFailed,
  kTooManyClients,
  kPoolTimeout,
  kServerUnavailable,
  kServerLost,
  kLoginTimeout,
  kNotSupported,
  kShuttingDown,
  kKilled,
  kIdleTransactionTimeout,
  kTooManyWaiting,
  kTlsRequired,  // the client did not use TLS where client_tls requires it
  kInternal,
};

std::string_view ProxyErrorName(ProxyError e);

// An error as a server sent it, kept whole so that it reaches the client unchanged.
struct WireError {
  std::string code;     // SQLSTATE or error number as text
  std::string message;  // primary human-readable message
  std::string raw;      // the message exactly as received, in the codec's own framing
  bool fatal = false;   // the server will close the connection after it
};

// What a client said when it connected.
struct StartupInfo {
  std::string user;
  std::string database;
  // Clients with different pool keys never share a server connection: the key holds what the
  // protocol cannot change on a live connection (PostgreSQL: the database; MySQL: the client
  // flags and character set that change what the server sends).
  std::string pool_key;
  // Session state the client asked for, replayed on whatever server it gets (PostgreSQL:
  // application_name, DateStyle, ...; MySQL: the schema).
  ParamList params;
  // What a server login for this client must carry, opaque to the proxy (MySQL: client flags).
  ParamList login_options;
};

// Transaction pooling: a message that prepares or closes a protocol-level prepared statement (or
// ends a request), sent to the server by the client codec, and what the server codec must do with
// its answer. The client codec keeps a client's statements under names of its own (a key derived
// from the statement's text), so that they can be prepared again on any server; the server codec
// keeps which keys its server has.
struct StatementNote {
  enum Kind : uint8_t {
    kPrepare,  // a Parse / COM_STMT_PREPARE: answered unless an earlier error skips it
    kClose,    // a Close: answered by CloseComplete unless an earlier error skips it
    kSync,     // a message that ends a request (its answer ends with ReadyForQuery)
    kUse,      // a request runs the statement (MySQL COM_STMT_EXECUTE); `data`: what it binds
  };
  StatementNote() = default;
  StatementNote(Kind k, bool f, std::string statement_key, std::string extra = {})
      : kind(k), forward(f), key(std::move(statement_key)), data(std::move(extra)) {}

  Kind kind = kSync;
  bool forward = true;  // the client sent (or stands for) this message and expects its answer
  std::string key;      // the statement's key, empty for the client's own unnamed ones
  // Protocol-defined (MySQL: with kPrepare the client's id for the statement, which the answer
  // must carry; with kUse the parameter types bound, empty when the request binds none).
  std::string data;
};

// Transaction pooling: a statement as one server holds it, for protocols whose servers choose
// the statements' handles (MySQL statement ids), so that a client's request can name it there.
struct ServerStatement {
  enum Status : uint8_t {
    kAbsent,     // the server does not have it
    kPreparing,  // a prepare of it is on its way
    kReady,      // prepared: `handle` names it
    kFailed,     // the last prepare failed: `error` holds the server's error
  };
  Status status = kAbsent;
  std::string handle;   // the server's name for it (MySQL: the statement id, decimal)
  uint32_t params = 0;  // how many parameters it takes
  std::string bound;    // protocol-defined: what was bound to it last (MySQL: parameter types)
  std::string error;    // kFailed: the error exactly as received, in the codec's own framing
};

// A user's secret as the proxy holds it. The SCRAM keys are derived once when the config is
// loaded, so no login ever repeats PBKDF2.
struct UserSecret {
  std::string name;
  std::string password;
  crypto::ScramKeys scram;
};

// How a client starts TLS, which says what the bytes after its request are.
enum class TlsStart : uint8_t {
  // It waits for the go-ahead (PostgreSQL SSLRequest): bytes after the request and before the
  // handshake are plaintext injected ahead of TLS, and the codec refuses them.
  kAfterGoAhead,
  // It sends its TLS hello right behind the request (MySQL's SSL request has no answer): the
  // codec leaves what follows (kPause) and the proxy hands it to TLS.
  kHelloFollows,
  // It opens with TLS, no request at all (PostgreSQL 17 direct TLS): the input holds its hello,
  // and it must name the protocol by ALPN (Protocol::TlsAlpn).
  kDirect,
};

// Injected randomness keeps codecs deterministic under test.
using RandomFn = std::function<void(uint8_t* out, size_t len)>;

class ClientCodecSink {
 public:
  virtual ~ClientCodecSink() = default;
  // Bytes the codec wants written to the client, in order.
  virtual void SendToClient(std::string_view bytes) = 0;
  // A complete startup arrived; the proxy answers with ClientCodec::BeginAuth.
  virtual void OnStartup(const StartupInfo& info) = 0;
  // A cancel request arrived; the connection carries nothing else.
  virtual void OnCancelRequest(std::string_view cancel_key) = 0;
  // The client asked for TLS (ClientCodecOptions::tls_available) and the codec has queued its
  // go-ahead, if the protocol has one. The proxy starts TLS on the stream as soon as the codec's
  // call returns, then calls ClientCodec::OnTlsStarted. See TlsStart for what may follow.
  virtual void OnTlsRequest(TlsStart how) {}
  // The client proved it knows the password.
  virtual void OnAuthenticated() = 0;
  // The client failed auth; the codec has already queued its error.
  virtual void OnAuthFailed(std::string_view reason) = 0;
  // The client sent the last message of a request; the server answers each such request with one
  // OnReadyForQuery (PostgreSQL: Query, Sync, FunctionCall; MySQL: each command that has a
  // response). `tag` is opaque to the proxy and handed to ServerCodec::ExpectResponse.
  virtual void OnRequestEnd(uint32_t tag) = 0;
  // What the request about to end does to the session beyond itself (transaction pooling): given
  // before OnRequestEnd, and only when not empty.
  virtual void OnRequestEffects(const RequestEffects& effects) {}
  // The codec refused a request whose effects would set one of ClientCodecOptions::refuse_pins
  // (`pin_as_error`) and has queued its error (RefusalMessage) in the request's place.
  virtual void OnRequestRefused(const RequestEffects& effects) {}
  // The client asked to stop what another client connection runs (MySQL KILL [QUERY] <id>):
  // `target_key` is that connection's CancelKey. The proxy answers with ClientCodec::AnswerKill.
  virtual void OnKill(std::string_view target_key, bool whole_connection) {}
  // The client said goodbye.
  virtual void OnTerminate() = 0;
  // Bytes the codec wrote for the server in place of, or before, the client's own (a rewritten or
  // an injected message); they go out in order with the forwarded bytes.
  virtual void SendToServer(std::string_view bytes) {}
  // Transaction pooling: whether the client's current server has the statement `key` prepared.
  virtual bool ServerHasStatement(std::string_view key) { return false; }
  // Transaction pooling: the message about to reach the server (given before it is sent).
  virtual void OnStatementMessage(const StatementNote& note) {}
  // Transaction pooling: how the client's current server holds the statement `key`.
  virtual ServerStatement FindServerStatement(std::string_view key) { return {}; }
  // Transaction pooling: the client's server has answered everything sent to it and is outside a
  // transaction, so the codec may stand in for a request (ServerCodec::Quiet).
  virtual bool ServerIsQuiet() { return false; }
  // The client broke the protocol; the codec has already queued its error.
  virtual void OnProtocolError(const absl::Status& status) = 0;
};

struct ClientCodecOptions {
  std::string auth_method;           // e.g. "scram-sha-256", "md5", "mysql_native_password"
  size_t max_startup_bytes = 10000;  // cap on everything the client sends before it is logged in
  RandomFn random;
  // What the proxy knows of its backends (e.g. server_version), for a protocol whose server
  // speaks first. Null before any backend was reached. Shared, not copied: every client of a
  // proxy sees the same list, and an idle client should not carry a copy of it.
  std::shared_ptr<const ParamList> server_params;
  uint32_t connection_id = 0;  // the proxy's own id for this client (unique per proxy)
  // Transaction pooling: classify statements and report OnRequestEffects (reading each query
  // whole to do so, up to a limit past which it pins the client).
  bool classify = false;
  std::string peer_host;  // the client's address, for messages that name it
  // The proxy can start TLS on this connection (client_tls is not disabled): a protocol whose
  // server speaks first offers it, and a request for it is answered with a go-ahead.
  bool tls_available = false;
  // The tls-server-end-point channel binding data of the certificate TLS would use (RFC 5929),
  // for SCRAM-SHA-256-PLUS once TLS is on; empty: no channel binding.
  std::string tls_server_end_point;
  // Transaction pooling (`pin_as_error`): a request whose classified effects would set one of
  // these pins is refused with a kNotSupported error naming the reason and the statement; what
  // the client sent never reaches a server, and the request reports no effects.
  PinSet refuse_pins = 0;
};

class ClientCodec {
 public:
  virtual ~ClientCodec() = default;
  // The connection is up (for protocols whose server speaks first).
  virtual void Start() {}
  virtual Step OnBytes(ByteView in) = 0;
  // TLS is on (after OnTlsRequest): what the client sends from now on is read through it.
  virtual void OnTlsStarted() {}
  // Answers OnStartup: the user's secret, or nullptr for an unknown user. An unknown user goes
  // through the same exchange and fails the same way, so users cannot be enumerated.
  virtual void BeginAuth(const UserSecret* secret) = 0;
  // Logs the client in with the parameters of the server it will use and returns.
  virtual void CompleteLogin(const ParamList& server_params) = 0;
  // Between OnAuthenticated and CompleteLogin: the SCRAM ClientKey the client's proof revealed
  // (for SCRAM pass-through to a backend holding the same verifier); empty for other methods,
  // and after CompleteLogin (the exchange's state is not kept past the login).
  virtual std::string AuthClientKey() const { return {}; }
  // The key a cancel request from this client will carry (valid after CompleteLogin).
  virtual std::string CancelKey() const = 0;
  // Transaction pooling: whether the message at the front of `in` (the start of the client's next
  // request, while it has no server) needs one; false for a goodbye (PostgreSQL Terminate, MySQL
  // COM_QUIT), which the codec then handles without a server.
  virtual bool NeedsServer(ByteView in) const { return true; }
  // True when the client has sent part of a request (a message, or messages, not yet ended by the
  // message that asks for a response): its server is then not safe to reuse.
  virtual bool MidRequest() const = 0;
  // Sends an error of the proxy's own.
  virtual void SendError(ProxyError error, std::string_view message) = 0;
  // Sends an error that a server raised (a login failure, for instance), unchanged in substance.
  virtual void SendServerError(const WireError& error) = 0;
  // Answers OnKill: done, or no such connection of this user.
  virtual void AnswerKill(bool found, std::string_view target_key) {}
  // Transaction pooling: the server answered the client's oldest outstanding request (the one
  // OnRequestEnd tagged `tag`), with an error or not.
  virtual void OnRequestAnswered(uint32_t tag, bool failed) {}
  // What ServerCodec::ResponseState says of the client's server, given before the proxy speaks
  // into that server's answer (an error when the server is lost mid-response, the answer to a
  // KILL), so that what the proxy sends fits where the answer stands.
  virtual void FollowServer(std::string_view response_state) {}
};

class ServerCodecSink {
 public:
  virtual ~ServerCodecSink() = default;
  virtual void SendToServer(std::string_view bytes) = 0;
  // Login finished; parameters and the cancel key are available from the codec.
  virtual void OnLoginComplete() = 0;
  // The server refused the login (bad database, auth failure, too many connections, ...).
  virtual void OnLoginFailed(const WireError& error) = 0;
  // ServerLogin::tls: whether the server agreed to TLS. If it did, the proxy starts TLS on the
  // stream as soon as the codec's call returns (bytes after the server's go-ahead are refused by
  // the codec); either way the login goes on with ServerCodec::ContinueLogin, unless the proxy
  // gives up (TLS required and refused).
  virtual void OnTlsOffer(bool accepted) {}
  // The server finished a request and says what state the session is in.
  virtual void OnReadyForQuery(TxState state) = 0;
  // The answer to the client's current request carries an error (given before its
  // OnReadyForQuery; at most once per request).
  virtual void OnRequestFailed() {}
  virtual void OnParameterStatus(std::string_view name, std::string_view value) = 0;
  // The server reported that the client's current request changed its session in a way it did
  // not detail (MySQL's state-change tracker): the proxy pins the client unless the request's
  // classified effects account for it.
  virtual void OnSessionStateChanged() {}
  // Bytes the codec wrote for the client in place of the server's own (MySQL: the answer to a
  // COM_STMT_PREPARE, carrying the client's statement id); they go out in order with the
  // forwarded bytes.
  virtual void SendToClient(std::string_view bytes) {}
  // A request the codec sent itself (SendReset, SendSetParameters) is finished; its response was
  // consumed, never forwarded. `error` is null on success.
  virtual void OnInternalDone(const WireError* error) = 0;
  virtual void OnProtocolError(const absl::Status& status) = 0;
};

// How the proxy logs in to a backend.
struct ServerLogin {
  std::string user;
  std::string password;
  std::string database;
  ParamList params;
  ParamList options;  // StartupInfo::login_options of the client it is opened for
  RandomFn random;
  // How SendReset resets the session: one of Protocol::ServerResetMethods (empty: the default).
  std::string reset_method;
  // Transaction pooling: the most prepared statements of clients' the codec keeps on this server
  // (`max_prepared_statements`; 0: no limit); past it, the least recently used one is closed.
  size_t max_prepared_statements = 0;
  // Transaction pooling: the transaction state must be exact after every request (MySQL: an ERR
  // packet carries no status flags, so the codec asks the server after one).
  bool transaction_pooling = false;
  // SCRAM pass-through (`password` empty): the ClientKey and ServerKey to log in with, valid when
  // the server holds the same verifier as the proxy.
  std::string scram_client_key;
  std::string scram_server_key;
  // Ask the server for TLS before the login (backend_tls is not disabled); the answer comes as
  // ServerCodecSink::OnTlsOffer.
  bool tls = false;
};

class ServerCodec {
 public:
  virtual ~ServerCodec() = default;
  // Starts the login (the TCP connection is up).
  virtual void Start() = 0;
  virtual Step OnBytes(ByteView in) = 0;
  // After OnTlsOffer: the login goes on, through TLS when `encrypted`.
  virtual void ContinueLogin(bool encrypted) {}
  // The server's current session parameters (from login and every ParameterStatus since).
  virtual const ParamList& Parameters() const = 0;
  // Opaque key to cancel whatever this connection runs (see Protocol::PlanCancel).
  virtual std::string CancelKey() const = 0;
  // A client request tagged by ClientCodecSink::OnRequestEnd is on its way to this server.
  virtual void ExpectResponse(uint32_t tag) {}
  // Sends a statement of the proxy's own (a cancel on a side connection, for instance).
  virtual void SendInternalQuery(std::string_view sql) = 0;
  // Sends a request that returns the session to the state a fresh login has.
  virtual void SendReset() = 0;
  // Sends a request that sets these session parameters.
  virtual void SendSetParameters(const ParamList& params) = 0;
  // Which of the client's parameters this server does not have yet; empty when nothing to do.
  virtual ParamList ParametersToApply(const ParamList& wanted) const = 0;
  // Makes the session's parameters those of `wanted`: sets what differs and, where the protocol
  // can, resets what an earlier client changed that `wanted` does not name. True when a request
  // was sent (OnInternalDone follows); false when nothing needed doing.
  virtual bool ApplyParameters(const ParamList& wanted) {
    ParamList diff = ParametersToApply(wanted);
    if (diff.empty()) {
      return false;
    }
    SendSetParameters(diff);
    return true;
  }
  // Reads the session's current values of these parameters (transaction pooling: what a client's
  // SET left behind): each is reported with OnParameterStatus, then OnInternalDone. False when
  // the protocol cannot, or nothing was asked.
  virtual bool SendReadBack(const std::vector<std::string>& names) { return false; }
  // The proxy's own setup of a new or reset session (the user's startup parameters, then
  // `init_sql`) is done: what the session has now is its baseline, which ApplyParameters goes
  // back to for a parameter that no client asks for. `init_sql` is what ran: the codec reads back
  // the parameters it may have set, each reported with OnParameterStatus, then OnInternalDone.
  // False when nothing needed reading (the baseline is then taken as it is).
  virtual bool SendBaseline(const std::vector<std::string>& init_sql) { return false; }
  // The parameters the baseline sets beyond the server's defaults: a client that resets its own
  // session (RESET ALL, COM_RESET_CONNECTION) reads these back too.
  virtual std::vector<std::string> BaselineNames() const { return {}; }
  // Where the answer to the current request stands (MySQL: the next sequence id and the last
  // status flags), opaque to the proxy and handed to ClientCodec::FollowServer. Empty when the
  // protocol needs nothing of the kind.
  virtual std::string ResponseState() const { return {}; }
  // Transaction pooling: the statements this server has (see StatementNote).
  virtual bool HasStatement(std::string_view key) const { return false; }
  virtual ServerStatement FindStatement(std::string_view key) const { return {}; }
  virtual bool Quiet() const { return false; }
  virtual void NoteStatementMessage(const StatementNote& note) {}
};

struct CancelPlan {
  bool login_first = false;
  std::string payload;  // bytes to send, or the statement to run after login
};

class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::string_view Name() const = 0;
  // Whether the client-side auth method is one this protocol offers.
  virtual bool SupportsClientAuth(std::string_view method) const = 0;
  virtual std::string_view DefaultClientAuth() const = 0;
  // The values the proxy's `server_reset` may take for this protocol, the default first.
  virtual std::vector<std::string_view> ServerResetMethods() const = 0;
  virtual std::unique_ptr<ClientCodec> NewClientCodec(const ClientCodecOptions& options,
                                                      ClientCodecSink& sink) const = 0;
  virtual std::unique_ptr<ServerCodec> NewServerCodec(const ServerLogin& login,
                                                      ServerCodecSink& sink) const = 0;
  // How to cancel the request running on the server connection with this key: raw bytes on a
  // fresh connection (PostgreSQL CancelRequest), or a statement on a freshly logged-in one
  // (MySQL KILL QUERY).
  virtual CancelPlan PlanCancel(std::string_view server_cancel_key) const = 0;
  // TLS on a raw side connection (a PlanCancel without login): the bytes that ask the server for
  // TLS before anything else, empty when the protocol has no such request (its server speaks
  // first, and the login does TLS).
  virtual std::string TlsRequest() const { return {}; }
  // The server's answer to TlsRequest at the front of `in`: nullopt while incomplete, else
  // whether it agreed. The answer is one byte.
  virtual std::optional<bool> TlsAnswer(ByteView in) const { return false; }
  // The ALPN protocol name a client opening with TLS directly must offer, empty for none.
  virtual std::string_view TlsAlpn() const { return {}; }
  // The database the startup probe logs in to as `user`: one that exists on any server, so
  // that the probe neither fails nor leaves an error in the server's log.
  virtual std::string ProbeDatabase(std::string_view user) const { return std::string(user); }
};

using ProtocolPtr = std::shared_ptr<const Protocol>;

}  // namespace wirepool::codec
