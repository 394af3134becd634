#include "proxy/client_session.h"
#include "core/strings.h"

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/pump.h"
#include "proxy/server_conn.h"

namespace wirepool::proxy {
namespace {

constexpr size_t kMaxWholeMessage = 1 << 20;

}  // namespace

ClientSession::ClientSession(ProxyInstance& proxy, uint64_t id)
    : proxy_(proxy), id_(id), stream_(proxy.uv_loop(), *this), timer_(proxy.uv_loop(), [this] {
        if (state_ == State::kLogin) {
          FailWith(codec::ProxyError::kLoginTimeout, "timeout while logging in to wirepool");
        } else if (state_ == State::kWaiting) {
          FailWith(codec::ProxyError::kPoolTimeout,
                   Cat("no server connection available in pool \"", pool_->name,
                       "\" within connection_borrow_timeout (",
                       absl::FormatDuration(proxy_.settings().connection_borrow_timeout), ")"));
        }
      }) {}

ClientSession::~ClientSession() = default;

absl::Status ClientSession::Accept(uv_stream_t* server) {
  absl::Status st = stream_.AcceptFrom(server);
  if (!st.ok()) {
    return st;
  }
  codec::ClientCodecOptions options;
  options.auth_method = proxy_.settings().client_auth;
  options.random = [this](uint8_t* out, size_t len) { proxy_.Random(out, len); };
  options.server_params = proxy_.server_params();
  options.connection_id = static_cast<uint32_t>(id_);
  options.peer_host = stream_.peer().substr(0, stream_.peer().rfind(':'));
  codec_ = proxy_.protocol().NewClientCodec(options, *this);
  users_ = proxy_.users();
  timer_.Start(proxy_.settings().client_login_timeout);
  codec_->Start();
  stream_.Flush();
  stream_.StartReading();
  spdlog::debug("conn={} proxy={} accepted from {}", name(), proxy_.settings().name,
                stream_.peer());
  return absl::OkStatus();
}

void ClientSession::OnReadable(core::TcpStream&) { Drive(); }

void ClientSession::Drive() {
  if (driving_) {
    redrive_ = true;
    return;
  }
  driving_ = true;
  PumpExit exit;
  do {
    redrive_ = false;
    exit = Pump(
        stream_.input(), kMaxWholeMessage,
        [this](codec::ByteView in) { return codec_->OnBytes(in); },
        [this](core::Slice bytes) {
          if (server_ != nullptr && state_ == State::kActive) {
            server_->Forward(std::move(bytes));
          }
        },
        [this] { return state_ != State::kClosed; });
  } while (redrive_ && state_ != State::kClosed && exit != PumpExit::kStopped);
  driving_ = false;
  if (state_ == State::kClosed) {
    return;
  }
  stream_.Flush();
  if (server_ != nullptr) {
    server_->Flush();
    if (server_->over_high_water()) {
      stream_.StopReading();
    }
  }
  if (exit == PumpExit::kTooLarge) {
    proxy_.CountError("protocol_violation");
    codec_->SendError(codec::ProxyError::kProtocolViolation, "message too large");
    Close("client message too large");
  }
}

void ClientSession::ResumeReading() {
  if (state_ == State::kClosed) {
    return;
  }
  stream_.StartReading();
  Drive();
}

void ClientSession::OnWritesDrained(core::TcpStream&) {
  if (server_ != nullptr) {
    server_->ResumeReading();
  }
}

void ClientSession::OnStartup(const codec::StartupInfo& info) {
  if (state_ == State::kActive) {
    // The client logs in again on this connection (MySQL COM_CHANGE_USER), perhaps as another
    // user: its server goes back to its pool (reset, so nothing of the old session survives),
    // and it borrows from the new user's pool once the codec says the password is right.
    ServerConn* server = server_;
    server_ = nullptr;
    if (server != nullptr) {
      server->Detach();
    }
    state_ = State::kLogin;
    users_ = proxy_.users();
    timer_.Start(proxy_.settings().client_login_timeout);
    spdlog::debug("conn={} logs in again as {}", name(), info.user);
  }
  startup_ = info;
  user_ = users_->Find(info.user);
  codec_->BeginAuth(user_ != nullptr ? &user_->secret : nullptr);
}

void ClientSession::OnCancelRequest(std::string_view cancel_key) {
  proxy_.ForwardCancel(cancel_key);
  Close("cancel request handled");
}

void ClientSession::OnAuthenticated() {
  timer_.Stop();
  pool_ = &proxy_.PoolFor(startup_.user, startup_.pool_key);
  state_ = State::kWaiting;
  timer_.Start(proxy_.settings().connection_borrow_timeout);
  proxy_.Borrow(*this, *pool_);
}

void ClientSession::OnAuthFailed(std::string_view reason) {
  proxy_.CountError("auth_failed");
  spdlog::info("conn={} proxy={} user=\"{}\" authentication failed from {}: {}", name(),
               proxy_.settings().name, startup_.user, stream_.peer(), reason);
  Close("authentication failed");
}

void ClientSession::OnServerAssigned(ServerConn& server) {
  timer_.Stop();
  server_ = &server;
  state_ = State::kAttaching;
}

void ClientSession::OnServerReady() {
  state_ = State::kActive;
  codec_->CompleteLogin(server_->codec().Parameters());
  cancel_key_ = codec_->CancelKey();
  proxy_.RegisterCancelKey(cancel_key_, *this);
  spdlog::debug("conn={} logged in as {} to pool {} on {}", name(), startup_.user, pool_->name,
                server_->name());
  Drive();
}

void ClientSession::OnRequestEnd(uint32_t tag) {
  if (server_ != nullptr) {
    server_->OnClientRequest(tag);
  }
}

void ClientSession::OnKill(std::string_view target_key, bool whole_connection) {
  bool found = proxy_.Kill(*this, target_key, whole_connection);
  if (server_ != nullptr) {
    codec_->FollowServer(server_->codec().ResponseState());
  }
  codec_->AnswerKill(found, target_key);
}

void ClientSession::CancelRunning() {
  if (server_ != nullptr) {
    proxy_.CancelOn(*server_);
  }
}

void ClientSession::OnTerminate() { Close("client terminated"); }

void ClientSession::OnProtocolError(const absl::Status& status) {
  proxy_.CountError("protocol_violation");
  spdlog::info("conn={} proxy={} protocol violation from {}: {}", name(), proxy_.settings().name,
               stream_.peer(), status.message());
  Close("protocol violation");
}

void ClientSession::OnServerLost(std::string_view why) {
  if (server_ != nullptr && state_ == State::kActive) {
    // The error below may land in the middle of the server's answer.
    codec_->FollowServer(server_->codec().ResponseState());
  }
  server_ = nullptr;
  if (state_ == State::kClosed) {
    return;
  }
  FailWith(codec::ProxyError::kServerLost, Cat("server connection lost: ", why));
}

void ClientSession::FailWith(codec::ProxyError error, std::string_view message) {
  if (state_ == State::kClosed) {
    return;
  }
  proxy_.CountError(codec::ProxyErrorName(error));
  spdlog::info("conn={} proxy={} error {}: {}", name(), proxy_.settings().name,
               codec::ProxyErrorName(error), message);
  codec_->SendError(error, message);
  Close(codec::ProxyErrorName(error));
}

void ClientSession::FailWithServerError(const codec::WireError& error) {
  if (state_ == State::kClosed) {
    return;
  }
  server_ = nullptr;
  proxy_.CountError("server_refused_login");
  spdlog::info("conn={} proxy={} server refused the login: {} {}", name(), proxy_.settings().name,
               error.code, error.message);
  codec_->SendServerError(error);
  Close("server refused login");
}

bool ClientSession::CloseIfIdle(std::string_view reason) {
  if (state_ == State::kActive && server_ != nullptr && server_->clean() && !mid_request()) {
    FailWith(codec::ProxyError::kShuttingDown, reason);
    return true;
  }
  if (state_ == State::kLogin || state_ == State::kWaiting) {
    FailWith(codec::ProxyError::kShuttingDown, reason);
    return true;
  }
  return false;
}

void ClientSession::Close(std::string_view reason) {
  if (state_ == State::kClosed) {
    return;
  }
  State was = state_;
  state_ = State::kClosed;
  timer_.Stop();
  spdlog::debug("conn={} closed: {}", name(), reason);
  if (!cancel_key_.empty()) {
    proxy_.UnregisterCancelKey(cancel_key_);
  }
  if (was == State::kWaiting && pool_ != nullptr) {
    proxy_.CancelWait(*this, *pool_);
  }
  ServerConn* server = server_;
  server_ = nullptr;
  stream_.CloseAfterFlush();
  if (server != nullptr) {
    server->Detach();
  }
  proxy_.OnClientClosed(*this);
}

void ClientSession::OnStreamClosed(core::TcpStream&, const absl::Status& why) {
  Close(Cat("client connection closed: ", why.message()));
}

}  // namespace wirepool::proxy
