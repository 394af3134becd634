#pragma once

// One connection from the proxy to a backend. Its state is where it sits: connecting, logging in,
// idle in its pool, attached to a client, or running a request of the proxy's own (reset, or
// applying a client's parameters). Every close carries a reason.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codecs/api/codec.h"
#include "core/tcp.h"
#include "core/timer.h"

namespace wirepool::proxy {

class ClientSession;
class ProxyInstance;
struct Pool;

class ServerConn final : public core::TcpStreamHandler, public codec::ServerCodecSink {
 public:
  // kSettingUp: the proxy's own setup after login or a reset (the user's startup_parameters,
  // init_sql, reading back the baseline they leave); kApplying: setting a client's parameters
  // before it gets the connection; kReadingBack: reading back what a client's statements changed
  // before the connection goes back.
  enum class State {
    kConnecting,
    kLogin,
    kSettingUp,
    kIdle,
    kActive,
    kApplying,
    kReadingBack,
    kResetting,
    kClosed
  };

  ServerConn(ProxyInstance& proxy, Pool& pool, uint64_t id);
  ~ServerConn() override;

  void Connect();
  // Hands the connection to a client. Applies the client's parameters first if they differ,
  // then tells the client it is ready (ClientSession::OnServerReady).
  void Attach(ClientSession& client);
  // The client is done with it: reset and pool it if it is clean, close it otherwise.
  void Detach();
  // Transaction pooling: the client is between transactions; pool the connection as it is (its
  // session parameters are set per client on attach).
  void Release();
  // Reads back these session parameters for the attached client (RecordParameter); true if a
  // request went out, and then the client hears OnServerReady once the values are in.
  bool ReadBack(const std::vector<std::string>& names);
  void Close(std::string_view reason);
  // Moving an idle connection to another worker (ProxyInstance::MoveServer): LeaveWorker, on
  // this worker's thread, gives up the loop's handles and returns the socket (-1: it cannot move
  // now: not idle, or bytes queued or unread); JoinWorker, on the new worker's thread, takes it
  // up there. Codec state, TLS and everything else of the session stay as they were.
  int LeaveWorker();
  absl::Status JoinWorker(ProxyInstance& proxy, Pool& pool, int fd);

  // Bytes from the attached client, as it sent them or as its codec rewrote them.
  void Forward(core::Slice bytes) { stream_->Write(std::move(bytes)); }
  void Write(std::string_view bytes) { stream_->Write(bytes); }
  void NoteStatementMessage(const codec::StatementNote& note) {
    codec_->NoteStatementMessage(note);
  }
  void Flush() { stream_->Flush(); }
  bool over_high_water() const { return stream_->over_high_water(); }
  void ResumeReading();
  void OnClientRequest(uint32_t tag) {
    ++outstanding_;
    codec_->ExpectResponse(tag);
  }

  State state() const { return state_; }
  Pool& pool() { return *pool_; }
  uint64_t id() const { return id_; }
  std::string name() const { return "s" + std::to_string(id_); }
  const codec::ServerCodec& codec() const { return *codec_; }
  uint64_t created_ms() const { return created_ms_; }
  uint64_t idle_since_ms() const { return idle_since_ms_; }
  void MarkIdle(uint64_t now_ms);
  // Idle with no request in flight and outside a transaction.
  bool clean() const { return outstanding_ == 0 && tx_ == codec::TxState::kIdle; }
  bool idle_in_transaction() const { return outstanding_ == 0 && tx_ != codec::TxState::kIdle; }
  int64_t outstanding() const { return outstanding_; }

  // core::TcpStreamHandler
  void OnConnected(core::TcpStream& stream, const absl::Status& status) override;
  void OnTlsReady(core::TcpStream& stream) override;
  void OnReadable(core::TcpStream& stream) override;
  void OnWritesDrained(core::TcpStream& stream) override;
  void OnStreamClosed(core::TcpStream& stream, const absl::Status& why) override;

  // codec::ServerCodecSink
  void SendToServer(std::string_view bytes) override { stream_->Write(bytes); }
  void OnLoginComplete() override;
  void OnLoginFailed(const codec::WireError& error) override;
  void OnTlsOffer(bool accepted) override;
  void OnReadyForQuery(codec::TxState state) override;
  void OnRequestFailed() override;
  void OnParameterStatus(std::string_view name, std::string_view value) override;
  void OnSessionStateChanged() override;
  void SendToClient(std::string_view bytes) override;
  void OnInternalDone(const codec::WireError* error) override;
  void OnProtocolError(const absl::Status& status) override;

 private:
  void Drive();
  // Opens the TCP connection and makes the codec for login_.
  void Open();
  // backend_tls allow: the plaintext login was refused; a new connection asks for TLS.
  void RetryWithTls();
  // Acts on the server's answer to the TLS request once the codec has consumed it.
  void AfterTlsOffer();
  bool PastLifetime() const;
  // The proxy's setup of a fresh session (after login, or after a reset), one request at a time:
  // the user's startup parameters, each init_sql statement, then the baseline read-back.
  void BeginSetup(bool after_reset);
  void NextSetupStep();
  void FinishSetup();
  void SetupFailed(const codec::WireError& error);

  void MakeTimer();

  ProxyInstance* proxy_;  // the worker's instance it lives on (it may move to another)
  Pool* pool_;
  uint64_t id_;
  State state_ = State::kConnecting;
  std::unique_ptr<core::TcpStream> stream_;  // replaced when backend_tls allow retries with TLS
  std::unique_ptr<codec::ServerCodec> codec_;
  codec::ServerLogin login_;  // as Connect built it, for a retry through TLS
  bool retry_with_tls_ = false;
  // backend_tls as it was when the connection was opened; null: no TLS.
  core::TlsContextPtr tls_;
  enum class TlsNext { kNone, kStart, kPlain, kRefused };
  TlsNext tls_next_ = TlsNext::kNone;
  std::unique_ptr<core::Timer> connect_timer_;  // made again on each worker it moves to
  ClientSession* client_ = nullptr;
  codec::TxState tx_ = codec::TxState::kIdle;
  int64_t outstanding_ = 0;
  uint64_t created_ms_ = 0;
  uint64_t idle_since_ms_ = 0;
  bool driving_ = false;
  // Setup, as it was when the connection was opened (a reload changes new connections only).
  codec::ParamList startup_parameters_;
  std::vector<std::string> init_sql_;
  size_t setup_step_ = 0;
  bool setup_after_reset_ = false;
};

}  // namespace wirepool::proxy
