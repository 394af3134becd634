#pragma once

// One client connection. It logs in against the proxy's own user table, is routed to a pool,
// waits (bounded) for a server connection, and then has its bytes forwarded both ways. In session
// pooling it keeps that server until it leaves. In transaction pooling it gives the server back
// whenever the release rule holds (the wire says idle, nothing outstanding, the answer forwarded,
// no pin, no cancel in flight), after reading back the session parameters its statements may
// have changed, and borrows one again when its next request starts; its recorded parameters are
// applied to whichever server it gets.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "codecs/api/codec.h"
#include "core/deadlines.h"
#include "core/fifo.h"
#include "core/tcp.h"
#include "proxy/shared.h"
#include "proxy/users.h"

namespace wirepool::proxy {

class ClientSession;
class ProxyInstance;
class ServerConn;
struct Pool;

// The one timer of a session: what it counts down never overlaps (the login, then the
// failed-login delay or a borrow, then idling in a transaction with a server).
enum class ClientDeadline : uint8_t { kNone, kLogin, kAuthDelay, kBorrow, kIdleTransaction };

// A request forwarded to the client's server, not answered yet.
struct SentRequest {
  codec::RequestEffects effects;
  uint32_t tag = 0;
  bool failed = false;
  bool state_changed = false;  // OnServerStateChanged
};

// What a client needs only while it is busy: logging in, waiting for a server, or using one.
// A client between transactions (transaction pooling) gives it back to its worker, which keeps
// a few spare (ProxyInstance::TakeSpareBusy): an idle client costs the session alone, and the
// next transaction of any client reuses a spare instead of allocating.
struct ClientBusy {
  ClientBusy();
  ClientBusy(const ClientBusy&) = delete;
  ClientBusy& operator=(const ClientBusy&) = delete;

  // Nothing pending: what a client may give back.
  bool clean() const {
    return cancels_in_flight == 0 && deadline == ClientDeadline::kNone && sent.empty() &&
           read_back.empty() && next_effects.empty() && next_effects.statement.empty() &&
           !timer.armed();
  }

  ClientSession* owner = nullptr;
  core::Deadline timer;  // in the worker's DeadlineQueue: no uv timer per client
  ClientDeadline deadline = ClientDeadline::kNone;
  int cancels_in_flight = 0;
  // client_tls as it was when the client connected, until TLS starts; null: none offered.
  core::TlsContextPtr tls;
  codec::RequestEffects next_effects;  // of the request the client is sending
  core::Fifo<SentRequest> sent;        // forwarded, not answered yet
  std::vector<std::string> read_back;  // parameters to read back before the server goes
};

class ClientSession final : public core::TcpStreamHandler, public codec::ClientCodecSink {
 public:
  // kIdle: logged in, between transactions, no server (transaction pooling only).
  enum class State : uint8_t { kLogin, kWaiting, kAttaching, kActive, kIdle, kClosed };

  ClientSession(ProxyInstance& proxy, uint64_t id);
  ~ClientSession() override;

  absl::Status Accept(int fd);

  // From the pool: a server connection is assigned and being prepared for this client.
  void OnServerAssigned(ServerConn& server);
  // The assigned server has this client's parameters; log the client in.
  void OnServerReady();
  // The assigned server failed or went away.
  void OnServerLost(std::string_view why);
  // The pool could not give this client a server.
  void FailWith(codec::ProxyError error, std::string_view message);
  void FailWithServerError(const codec::WireError& error);
  // Closes the connection (after flushing what is queued) and gives back the server.
  void Close(std::string_view reason);

  // The attached server's output so far has been forwarded: release it if the rule allows.
  void AfterServerOutput();
  // The attached server finished one of this client's requests (after OnServerRequestFailed if
  // its answer carried an error).
  void OnServerRequestDone();
  void OnServerRequestFailed();
  // The server says the request changed the session in a way it did not detail.
  void OnServerStateChanged();
  // A session parameter as this client's server reported it or read it back.
  void RecordParameter(std::string_view name, std::string_view value);
  // A read-back failed: what the client's statements left behind is unknown.
  void OnReadBackFailed(std::string_view why);
  // What the client's session should have on any server: startup parameters and recorded ones.
  const codec::ParamList& params() const { return params_own_ ? params_ : startup_->params; }

  // Bytes from the attached server.
  void Forward(core::Slice bytes) { stream_.Write(std::move(bytes)); }
  void Flush() { stream_.Flush(); }
  bool over_high_water() const { return stream_.over_high_water(); }
  void ResumeReading();

  State state() const { return state_; }
  uint64_t id() const { return id_; }
  std::string name() const { return "c" + std::to_string(id_); }
  // What the client logged in with (shared with the worker's other clients that logged in
  // alike, see ProxyInstance::InternStartup).
  const codec::StartupInfo& startup() const { return *startup_; }
  // The parameters of the client's startup packet (for a new server's login).
  const codec::ParamList& startup_params() const { return startup_->params; }
  const User* user() const { return user_; }
  // The client's address without the port.
  std::string_view peer_host() const;
  ServerConn* server() const { return server_; }
  Pool* pool() const { return pool_; }
  bool mid_request() const { return codec_->MidRequest(); }
  // Cancels whatever the client's server is running for it, if anything.
  void CancelRunning();
  // Closes the client if it is between transactions (used when draining).
  bool CloseIfIdle(std::string_view reason);

  // core::TcpStreamHandler
  void OnReadable(core::TcpStream& stream) override;
  void OnTlsReady(core::TcpStream& stream) override;
  void OnWritesDrained(core::TcpStream& stream) override;
  void OnStreamClosed(core::TcpStream& stream, const absl::Status& why) override;

  // codec::ClientCodecSink
  void SendToClient(std::string_view bytes) override { stream_.Write(bytes); }
  void OnStartup(const codec::StartupInfo& info) override;
  void OnCancelRequest(std::string_view cancel_key) override;
  void OnTlsRequest(codec::TlsStart how) override;
  void OnAuthenticated() override;
  void OnAuthFailed(std::string_view reason) override;
  void OnRequestEnd(uint32_t tag) override;
  void OnRequestEffects(const codec::RequestEffects& effects) override;
  void OnRequestRefused(const codec::RequestEffects& effects) override;
  void SendToServer(std::string_view bytes) override;
  bool ServerHasStatement(std::string_view key) override;
  codec::ServerStatement FindServerStatement(std::string_view key) override;
  bool ServerIsQuiet() override;
  void OnStatementMessage(const codec::StatementNote& note) override;
  void OnKill(std::string_view target_key, bool whole_connection) override;
  void OnTerminate() override;
  void OnProtocolError(const absl::Status& status) override;

 private:
  friend struct ClientBusy;  // its timer fires OnDeadline
  using Deadline = ClientDeadline;

  // The busy part, taken from the worker's spares when first needed.
  ClientBusy& busy() { return busy_ != nullptr ? *busy_ : TakeBusy(); }
  ClientBusy& TakeBusy();
  // Gives the busy part back if nothing in it is pending (the client is between transactions).
  void GiveBackBusy();
  void Drive();
  // Starts TLS for the client's request, once the codec has consumed it.
  void StartTls();
  // client_tls: refuses a login the mode does not allow (no TLS under require, a certificate
  // naming another user under verify-full); true when refused.
  bool RefusedByTlsMode(const codec::StartupInfo& info);
  // Transaction pooling: gives the server back if the release rule holds.
  void MaybeRelease();
  bool transaction_mode() const;
  // Asks the pool for a server (state kWaiting), within the borrow timeout and the wait cap.
  void BorrowServer();
  void ReleaseServer();
  void UpdateIdleTransactionTimer();
  void SetPins(codec::PinSet pins, std::string_view statement);
  void ClearPins(codec::PinSet pins);
  // Forgets what a session had (a new login on this connection, or a reset server).
  void ForgetSessionState();
  void Arm(Deadline what, absl::Duration after);
  // Stops the timer if it counts `what` (kNone: whatever it counts).
  void Disarm(Deadline what);
  void OnDeadline();

  ProxyInstance& proxy_;
  uint64_t id_;
  core::TcpStream stream_;
  std::unique_ptr<codec::ClientCodec> codec_;
  std::unique_ptr<ClientBusy> busy_;  // null while idle: see ClientBusy
  UserTablePtr users_;                // the table this client logged in against
  const User* user_ = nullptr;
  std::shared_ptr<const codec::StartupInfo> startup_;
  Pool* pool_ = nullptr;
  ServerConn* server_ = nullptr;
  ProxyShared::CancelEntry cancel_;             // in the shared table once logged in
  std::optional<codec::TlsStart> tls_request_;  // asked for, not started yet
  bool tls_direct_ = false;
  bool auth_failed_ = false;  // the error waits for auth_failure_delay, then the connection closes
  bool driving_ = false;
  bool redrive_ = false;
  bool logged_in_ = false;  // CompleteLogin ran for the current login
  // The codec paused for the server (a statement it prepares there first): the server's next
  // output drives it again.
  bool awaiting_server_ = false;

  // Transaction pooling.
  // The session's parameters once they differ from the startup packet's (params_own_); until
  // then empty, and params() is startup_->params.
  codec::ParamList params_;
  bool params_own_ = false;
  State state_ = State::kLogin;  // here: beside the small fields, no padding
  // client_tls's mode when the client connected (a second login is held to it too).
  core::TlsMode tls_mode_ = core::TlsMode::kDisable;
  codec::PinSet pins_ = 0;
  codec::PinSet pins_logged_ = 0;  // reasons already explained in the log
  codec::PinSet refuse_pins_ = 0;  // pin_as_error, as this client's codec applies it
};

}  // namespace wirepool::proxy
