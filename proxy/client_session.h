#pragma once

// One client connection. It logs in against the proxy's own user table, is routed to a pool,
// waits (bounded) for a server connection, and then has its bytes forwarded both ways. In session
// pooling it keeps that server until it leaves.

#include <cstdint>
#include <memory>
#include <string>

#include "codecs/api/codec.h"
#include "core/tcp.h"
#include "core/timer.h"
#include "proxy/users.h"

namespace wirepool::proxy {

class ProxyInstance;
class ServerConn;
struct Pool;

class ClientSession final : public core::TcpStreamHandler, public codec::ClientCodecSink {
 public:
  enum class State { kLogin, kWaiting, kAttaching, kActive, kClosed };

  ClientSession(ProxyInstance& proxy, uint64_t id);
  ~ClientSession() override;

  absl::Status Accept(uv_stream_t* server);

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

  // Bytes from the attached server.
  void Forward(core::Slice bytes) { stream_.Write(std::move(bytes)); }
  void Flush() { stream_.Flush(); }
  bool over_high_water() const { return stream_.over_high_water(); }
  void ResumeReading();

  State state() const { return state_; }
  uint64_t id() const { return id_; }
  std::string name() const { return "c" + std::to_string(id_); }
  const codec::StartupInfo& startup() const { return startup_; }
  const User* user() const { return user_; }
  ServerConn* server() const { return server_; }
  bool mid_request() const { return codec_->MidRequest(); }
  // Cancels whatever the client's server is running for it, if anything.
  void CancelRunning();
  // Closes the client if it is between transactions (used when draining).
  bool CloseIfIdle(std::string_view reason);

  // core::TcpStreamHandler
  void OnReadable(core::TcpStream& stream) override;
  void OnWritesDrained(core::TcpStream& stream) override;
  void OnStreamClosed(core::TcpStream& stream, const absl::Status& why) override;

  // codec::ClientCodecSink
  void SendToClient(std::string_view bytes) override { stream_.Write(bytes); }
  void OnStartup(const codec::StartupInfo& info) override;
  void OnCancelRequest(std::string_view cancel_key) override;
  void OnAuthenticated() override;
  void OnAuthFailed(std::string_view reason) override;
  void OnRequestEnd(uint32_t tag) override;
  void OnKill(std::string_view target_key, bool whole_connection) override;
  void OnTerminate() override;
  void OnProtocolError(const absl::Status& status) override;

 private:
  void Drive();
  void StartWaitTimer();

  ProxyInstance& proxy_;
  uint64_t id_;
  State state_ = State::kLogin;
  core::TcpStream stream_;
  std::unique_ptr<codec::ClientCodec> codec_;
  core::Timer timer_;  // login timeout, then borrow timeout
  UserTablePtr users_;  // the table this client logged in against
  const User* user_ = nullptr;
  codec::StartupInfo startup_;
  Pool* pool_ = nullptr;
  ServerConn* server_ = nullptr;
  std::string cancel_key_;
  bool driving_ = false;
  bool redrive_ = false;
};

}  // namespace wirepool::proxy
