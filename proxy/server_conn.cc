#include "proxy/server_conn.h"
#include "core/strings.h"

#include "absl/strings/str_cat.h"
#include "core/log.h"
#include "proxy/client_session.h"
#include "proxy/proxy.h"
#include "proxy/pump.h"

namespace wirepool::proxy {
namespace {

// The most a codec may ask to hold whole for one message; bigger messages are streamed.
constexpr size_t kMaxWholeMessage = 1 << 20;

}  // namespace

ServerConn::ServerConn(ProxyInstance& proxy, Pool& pool, uint64_t id)
    : proxy_(proxy),
      pool_(pool),
      id_(id),
      stream_(proxy.uv_loop(), *this),
      connect_timer_(proxy.uv_loop(), [this] {
        Close("connect/login timeout");
        // Close already told the proxy; nothing else to do.
      }) {
  created_ms_ = proxy_.now_ms();
}

ServerConn::~ServerConn() = default;

void ServerConn::Connect() {
  const User* user = proxy_.users()->Find(pool_.user);
  codec::ServerLogin login;
  login.user = user != nullptr ? user->backend_user : pool_.user;
  login.password = user != nullptr ? user->backend_password : "";
  login.random = [this](uint8_t* out, size_t len) { proxy_.Random(out, len); };
  login.reset_method = proxy_.settings().server_reset;
  // The first waiter's parameters become this connection's baseline; others are SET on attach.
  if (!pool_.waiters.empty()) {
    const codec::StartupInfo& first = pool_.waiters.front()->startup();
    login.database = first.database;
    login.params = first.params;
    login.options = first.login_options;
  }
  codec_ = proxy_.protocol().NewServerCodec(login, *this);
  connect_timer_.Start(proxy_.settings().server_connect_timeout);
  absl::Status st = stream_.Connect(proxy_.backend_address());
  if (!st.ok()) {
    state_ = State::kClosed;
    proxy_.OnServerConnectFailed(*this, Sv(st.message()));
  }
}

void ServerConn::OnConnected(core::TcpStream&, const absl::Status&) {
  state_ = State::kLogin;
  stream_.StartReading();
  codec_->Start();
  stream_.Flush();
}

void ServerConn::OnLoginComplete() {
  connect_timer_.Stop();
  spdlog::debug("conn={} server={} logged in to {}", name(), pool_.name, stream_.peer());
  MarkIdle(proxy_.now_ms());
  proxy_.set_server_params(codec_->Parameters());
  proxy_.OnServerLoggedIn(*this);
}

void ServerConn::OnLoginFailed(const codec::WireError& error) {
  connect_timer_.Stop();
  spdlog::warn("conn={} server={} login refused: {} {}", name(), pool_.name, error.code,
               error.message);
  state_ = State::kClosed;
  stream_.Close();
  proxy_.OnServerLoginFailed(*this, error);
}

void ServerConn::MarkIdle(uint64_t now_ms) {
  state_ = State::kIdle;
  idle_since_ms_ = now_ms;
  client_ = nullptr;
  // A fresh login or a finished reset leaves no transaction and nothing outstanding.
  tx_ = codec::TxState::kIdle;
  outstanding_ = 0;
}

void ServerConn::Attach(ClientSession& client) {
  client_ = &client;
  client.OnServerAssigned(*this);
  state_ = State::kApplying;
  if (!codec_->ApplyParameters(client.params())) {
    state_ = State::kActive;
    client.OnServerReady();
    return;
  }
  stream_.Flush();
}

void ServerConn::Release() {
  client_ = nullptr;
  if (state_ != State::kActive) {
    return;
  }
  if (PastLifetime()) {
    Close("server_lifetime reached");
    return;
  }
  MarkIdle(proxy_.now_ms());
  proxy_.OnServerIdle(*this);
}

bool ServerConn::ReadBack(const std::vector<std::string>& names) {
  if (state_ != State::kActive || !codec_->SendReadBack(names)) {
    return false;
  }
  state_ = State::kReadingBack;
  stream_.Flush();
  return true;
}

bool ServerConn::PastLifetime() const {
  absl::Duration lifetime = proxy_.settings().server_lifetime;
  return lifetime > absl::ZeroDuration() &&
         proxy_.now_ms() - created_ms_ >=
             static_cast<uint64_t>(absl::ToInt64Milliseconds(lifetime));
}

void ServerConn::OnRequestFailed() {
  if (client_ != nullptr) {
    client_->OnServerRequestFailed();
  }
}

void ServerConn::OnParameterStatus(std::string_view name, std::string_view value) {
  if (client_ != nullptr && proxy_.settings().pool_mode == "transaction") {
    client_->RecordParameter(name, value);
  }
}

void ServerConn::OnInternalDone(const codec::WireError* error) {
  if ((state_ == State::kApplying || state_ == State::kReadingBack) && client_ == nullptr) {
    // The client left while our own request ran: now that it is answered, reset and pool.
    if (error != nullptr) {
      Close(Cat("client gone, and its parameters failed: ", error->message));
      return;
    }
    state_ = State::kResetting;
    codec_->SendReset();
    stream_.Flush();
    return;
  }
  if (state_ == State::kApplying) {
    ClientSession* client = client_;
    if (error != nullptr) {
      // The client asked for a parameter the server rejects: it fails as it would directly.
      client_ = nullptr;
      state_ = State::kIdle;
      client->FailWithServerError(*error);
      Close("rejected client parameters");
      return;
    }
    state_ = State::kActive;
    client->OnServerReady();
    return;
  }
  if (state_ == State::kReadingBack) {
    state_ = State::kActive;
    if (client_ == nullptr) {
      return;
    }
    if (error != nullptr) {
      client_->OnReadBackFailed(error->message);
    }
    client_->OnServerReady();
    return;
  }
  if (state_ == State::kResetting) {
    if (error != nullptr) {
      Close(Cat("reset failed: ", error->message));
      return;
    }
    if (PastLifetime()) {
      Close("server_lifetime reached");
      return;
    }
    MarkIdle(proxy_.now_ms());
    proxy_.OnServerIdle(*this);
  }
}

void ServerConn::Detach() {
  ClientSession* client = client_;
  client_ = nullptr;
  if (state_ != State::kActive && state_ != State::kApplying && state_ != State::kReadingBack) {
    return;
  }
  // A transaction left open is fine: the reset ends it. A request of the client's in flight is
  // not: its answer would reach the next client. One of our own (setting or reading back
  // parameters) is simply waited for (OnInternalDone resets then).
  if ((state_ == State::kApplying || state_ == State::kReadingBack) && client != nullptr &&
      outstanding_ == 0 && !client->mid_request()) {
    return;
  }
  if (state_ != State::kActive || client == nullptr || outstanding_ != 0 || client->mid_request()) {
    Close("client left in the middle of a request");
    return;
  }
  state_ = State::kResetting;
  codec_->SendReset();
  stream_.Flush();
}

void ServerConn::OnReadyForQuery(codec::TxState state) {
  tx_ = state;
  if (outstanding_ > 0) {
    --outstanding_;
  }
  if (client_ != nullptr) {
    client_->OnServerRequestDone();
  }
}

void ServerConn::OnReadable(core::TcpStream&) { Drive(); }

void ServerConn::Drive() {
  if (driving_) {
    return;
  }
  driving_ = true;
  PumpExit exit = Pump(
      stream_.input(), kMaxWholeMessage, [this](codec::ByteView in) { return codec_->OnBytes(in); },
      [this](core::Slice bytes) {
        if (client_ != nullptr && state_ == State::kActive) {
          client_->Forward(std::move(bytes));
        }
      },
      [this] { return state_ != State::kClosed; });
  driving_ = false;
  if (state_ == State::kClosed) {
    return;
  }
  stream_.Flush();
  if (client_ != nullptr) {
    client_->Flush();
    if (client_ != nullptr && client_->over_high_water()) {
      stream_.StopReading();
    }
  }
  if (exit == PumpExit::kTooLarge) {
    Close("server message too large to inspect");
  } else if (exit == PumpExit::kStopped && state_ != State::kClosed) {
    Close("server codec stopped");
  } else if (state_ == State::kActive && client_ != nullptr) {
    // Everything the server said so far is on its way to the client: the release rule's third
    // condition holds, and the client checks the others.
    client_->AfterServerOutput();
  }
}

void ServerConn::ResumeReading() {
  if (state_ == State::kClosed) {
    return;
  }
  stream_.StartReading();
  Drive();
}

void ServerConn::OnWritesDrained(core::TcpStream&) {
  if (client_ != nullptr) {
    client_->ResumeReading();
  }
}

void ServerConn::OnProtocolError(const absl::Status& status) {
  spdlog::error("conn={} server={} protocol error from server: {}", name(), pool_.name,
                status.message());
  proxy_.CountError("server_protocol_error");
  Close("server protocol error");
}

void ServerConn::OnStreamClosed(core::TcpStream&, const absl::Status& why) {
  if (state_ == State::kConnecting) {
    state_ = State::kClosed;
    connect_timer_.Stop();
    proxy_.OnServerConnectFailed(*this, Sv(why.message()));
    return;
  }
  Close(Cat("server closed the connection: ", why.message()));
}

void ServerConn::Close(std::string_view reason) {
  if (state_ == State::kClosed && !stream_.open()) {
    return;
  }
  State was = state_;
  state_ = State::kClosed;
  connect_timer_.Stop();
  stream_.Close();
  if (was == State::kConnecting || was == State::kLogin) {
    proxy_.OnServerConnectFailed(*this, reason);
    return;
  }
  spdlog::debug("conn={} server={} closed: {}", name(), pool_.name, reason);
  ClientSession* client = client_;
  client_ = nullptr;
  if (client != nullptr) {
    client->OnServerLost(reason);
  }
  proxy_.OnServerClosed(*this);
}

}  // namespace wirepool::proxy
