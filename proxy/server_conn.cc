#include "proxy/server_conn.h"
#include "core/strings.h"

#include <algorithm>

#include "absl/strings/match.h"
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
    : proxy_(&proxy),
      pool_(&pool),
      id_(id),
      stream_(std::make_unique<core::TcpStream>(proxy.uv_loop(), *this)) {
  MakeTimer();
  created_ms_ = proxy_->now_ms();
}

ServerConn::~ServerConn() = default;

void ServerConn::MakeTimer() {
  connect_timer_ = std::make_unique<core::Timer>(proxy_->uv_loop(), [this] {
    Close("connect/login timeout");
    // Close already told the proxy; nothing else to do.
  });
}

int ServerConn::LeaveWorker() {
  if (state_ != State::kIdle || client_ != nullptr || outstanding_ != 0 || driving_) {
    return -1;
  }
  int fd = stream_->ReleaseFd();
  if (fd < 0) {
    return -1;
  }
  connect_timer_.reset();  // closes its handle on this loop
  return fd;
}

absl::Status ServerConn::JoinWorker(ProxyInstance& proxy, Pool& pool, int fd) {
  proxy_ = &proxy;
  pool_ = &pool;
  MakeTimer();
  return stream_->Reopen(proxy.uv_loop(), fd);
}

void ServerConn::Connect() {
  const User* user = proxy_->users()->Find(pool_->user);
  codec::ServerLogin login;
  login.user = user != nullptr ? user->backend_user : pool_->user;
  login.password = user != nullptr ? user->backend_password : "";
  if (user != nullptr && user->scram_passthrough) {
    login.scram_client_key = proxy_->ScramClientKey(*user);
    login.scram_server_key = user->secret.scram.server_key;
  }
  login.random = [this](uint8_t* out, size_t len) { proxy_->Random(out, len); };
  login.reset_method = proxy_->settings().server_reset;
  login.max_prepared_statements = proxy_->settings().max_prepared_statements;
  login.transaction_pooling = proxy_->transaction_pooling();
  tls_ = proxy_->backend_tls();
  // `allow` tries plaintext first (and TLS if that login fails); the other modes ask for TLS.
  login.tls = tls_ != nullptr && tls_->mode() != core::TlsMode::kAllow;
  if (user != nullptr) {
    startup_parameters_ = user->startup_parameters;
  }
  init_sql_ = proxy_->settings().init_sql;
  // The user's startup parameters, then the first waiter's own, become this connection's
  // baseline (a waiter's value for a parameter the user's list names is SET on attach, so the
  // list stays the baseline); others are SET on attach.
  login.params = startup_parameters_;
  if (!pool_->waiters.empty()) {
    const ClientSession& waiter = *pool_->waiters.front();
    const codec::StartupInfo& first = waiter.startup();
    login.database = first.database;
    for (const auto& param : waiter.startup_params()) {
      bool listed =
          std::any_of(startup_parameters_.begin(), startup_parameters_.end(),
                      [&](const auto& p) { return absl::EqualsIgnoreCase(p.first, param.first); });
      if (!listed) {
        login.params.push_back(param);
      }
    }
    login.options = first.login_options;
  }
  login_ = std::move(login);
  connect_timer_->Start(proxy_->settings().server_connect_timeout);
  Open();
}

void ServerConn::Open() {
  codec_ = proxy_->protocol().NewServerCodec(login_, *this);
  absl::Status st = stream_->Connect(proxy_->backend_address());
  if (!st.ok()) {
    state_ = State::kClosed;
    proxy_->OnServerConnectFailed(*this, Sv(st.message()));
  }
}

void ServerConn::RetryWithTls() {
  retry_with_tls_ = false;
  login_.tls = true;
  state_ = State::kConnecting;
  // The old stream may be the one whose callback is running: it goes once the stack unwinds.
  proxy_->loop().DeleteLater(std::move(stream_));
  stream_ = std::make_unique<core::TcpStream>(proxy_->uv_loop(), *this);
  Open();
}

void ServerConn::OnConnected(core::TcpStream&, const absl::Status&) {
  state_ = State::kLogin;
  stream_->StartReading();
  codec_->Start();
  stream_->Flush();
}

void ServerConn::OnTlsOffer(bool accepted) {
  // Acted on after the codec's call returns, once the answer is consumed (AfterTlsOffer).
  if (accepted) {
    tls_next_ = TlsNext::kStart;
  } else {
    tls_next_ = tls_->mode() >= core::TlsMode::kRequire ? TlsNext::kRefused : TlsNext::kPlain;
  }
}

void ServerConn::AfterTlsOffer() {
  TlsNext next = tls_next_;
  tls_next_ = TlsNext::kNone;
  switch (next) {
    case TlsNext::kStart: {
      absl::Status st = stream_->StartTls(tls_);
      if (!st.ok()) {
        proxy_->CountError("server_tls_failed");
        Close(Cat("TLS with the server failed: ", st.message()));
      }
      return;
    }
    case TlsNext::kRefused:
      proxy_->CountError("server_tls_failed");
      Close(Cat("the server does not offer TLS, which backend_tls mode ",
                core::TlsModeName(tls_->mode()), " requires"));
      return;
    case TlsNext::kPlain:
      codec_->ContinueLogin(false);
      stream_->Flush();
      return;
    case TlsNext::kNone:
      return;
  }
}

void ServerConn::OnTlsReady(core::TcpStream&) {
  spdlog::debug("conn={} server={} TLS with {}: {}", name(), pool_->name, stream_->peer(),
                stream_->tls_session()->Describe());
  codec_->ContinueLogin(true);
  stream_->Flush();
  Drive();
}

void ServerConn::OnLoginComplete() {
  spdlog::debug("conn={} server={} logged in to {}", name(), pool_->name, stream_->peer());
  BeginSetup(/*after_reset=*/false);
}

void ServerConn::BeginSetup(bool after_reset) {
  setup_after_reset_ = after_reset;
  setup_step_ = 0;
  // Even without startup_parameters or init_sql the codec may have a baseline of its own to set
  // (MySQL's state-change tracker); each step that sends nothing costs nothing.
  state_ = State::kSettingUp;
  NextSetupStep();
}

void ServerConn::NextSetupStep() {
  while (state_ == State::kSettingUp) {
    const size_t step = setup_step_++;
    bool sent = true;
    if (step == 0) {
      // MySQL SETs them; PostgreSQL had them in the startup packet (and DISCARD ALL keeps them).
      sent = codec_->ApplyParameters(startup_parameters_);
    } else if (step <= init_sql_.size()) {
      codec_->SendInternalQuery(init_sql_[step - 1]);
    } else if (step == init_sql_.size() + 1) {
      sent = codec_->SendBaseline(init_sql_);
    } else {
      FinishSetup();
      return;
    }
    if (sent) {
      stream_->Flush();
      return;  // OnInternalDone goes on
    }
  }
}

void ServerConn::FinishSetup() {
  if (setup_after_reset_) {
    if (PastLifetime()) {
      Close("server_lifetime reached");
      return;
    }
    MarkIdle(proxy_->now_ms());
    proxy_->OnServerIdle(*this);
    return;
  }
  connect_timer_->Stop();
  MarkIdle(proxy_->now_ms());
  proxy_->set_server_params(codec_->Parameters());
  proxy_->OnServerLoggedIn(*this);
}

void ServerConn::SetupFailed(const codec::WireError& error) {
  // Which step failed; never the statement's text, which may hold a secret.
  const size_t step = setup_step_ - 1;
  std::string what = step == 0                  ? std::string("setting startup_parameters")
                     : step <= init_sql_.size() ? Cat("init_sql[", step - 1, "]")
                                                : std::string("reading back what init_sql set");
  spdlog::warn("conn={} server={} {} failed{}: {} {}", name(), pool_->name, what,
               setup_after_reset_ ? " after a reset" : "", error.code, error.message);
  proxy_->CountError("server_setup_failed");
  if (setup_after_reset_) {
    Close(Cat(what, " failed after a reset"));
    return;
  }
  connect_timer_->Stop();
  state_ = State::kClosed;
  stream_->Close();
  proxy_->OnServerSetupFailed(*this, Cat("wirepool could not set up a server connection: ", what,
                                         " failed: ", error.code, " ", error.message));
}

void ServerConn::OnLoginFailed(const codec::WireError& error) {
  if (tls_ != nullptr && tls_->mode() == core::TlsMode::kAllow && !login_.tls) {
    // As libpq's allow: a refused plaintext login is tried once more through TLS (a server that
    // only lets TLS in), once the codec's call has returned (Drive).
    spdlog::debug("conn={} server={} plaintext login refused ({} {}): trying TLS", name(),
                  pool_->name, error.code, error.message);
    retry_with_tls_ = true;
    return;
  }
  connect_timer_->Stop();
  spdlog::warn("conn={} server={} login refused: {} {}", name(), pool_->name, error.code,
               error.message);
  state_ = State::kClosed;
  stream_->Close();
  proxy_->OnServerLoginFailed(*this, error);
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
  stream_->Flush();
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
  MarkIdle(proxy_->now_ms());
  proxy_->OnServerIdle(*this);
}

bool ServerConn::ReadBack(const std::vector<std::string>& names) {
  if (state_ != State::kActive || !codec_->SendReadBack(names)) {
    return false;
  }
  state_ = State::kReadingBack;
  stream_->Flush();
  return true;
}

bool ServerConn::PastLifetime() const {
  absl::Duration lifetime = proxy_->settings().server_lifetime;
  return lifetime > absl::ZeroDuration() &&
         proxy_->now_ms() - created_ms_ >=
             static_cast<uint64_t>(absl::ToInt64Milliseconds(lifetime));
}

void ServerConn::OnRequestFailed() {
  if (client_ != nullptr) {
    client_->OnServerRequestFailed();
  }
}

void ServerConn::OnParameterStatus(std::string_view name, std::string_view value) {
  if (client_ != nullptr && proxy_->transaction_pooling()) {
    client_->RecordParameter(name, value);
  }
}

void ServerConn::OnSessionStateChanged() {
  if (client_ != nullptr && state_ == State::kActive) {
    client_->OnServerStateChanged();
  }
}

void ServerConn::SendToClient(std::string_view bytes) {
  if (client_ != nullptr && state_ == State::kActive) {
    client_->SendToClient(bytes);
  }
}

void ServerConn::OnInternalDone(const codec::WireError* error) {
  if (state_ == State::kSettingUp) {
    if (error != nullptr) {
      SetupFailed(*error);
      return;
    }
    NextSetupStep();
    return;
  }
  if ((state_ == State::kApplying || state_ == State::kReadingBack) && client_ == nullptr) {
    // The client left while our own request ran: now that it is answered, reset and pool.
    if (error != nullptr) {
      Close(Cat("client gone, and its parameters failed: ", error->message));
      return;
    }
    state_ = State::kResetting;
    codec_->SendReset();
    stream_->Flush();
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
    BeginSetup(/*after_reset=*/true);  // then pooled
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
  stream_->Flush();
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
      stream_->input(), kMaxWholeMessage,
      [this](codec::ByteView in) { return codec_->OnBytes(in); },
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
  if (retry_with_tls_) {
    RetryWithTls();
    return;
  }
  if (tls_next_ != TlsNext::kNone) {
    AfterTlsOffer();
    return;
  }
  stream_->Flush();
  if (client_ != nullptr) {
    client_->Flush();
    if (client_ != nullptr && client_->over_high_water()) {
      stream_->StopReading();
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
  stream_->StartReading();
  Drive();
}

void ServerConn::OnWritesDrained(core::TcpStream&) {
  if (client_ != nullptr) {
    client_->ResumeReading();
  }
}

void ServerConn::OnProtocolError(const absl::Status& status) {
  spdlog::error("conn={} server={} protocol error from server: {}", name(), pool_->name,
                status.message());
  proxy_->CountError("server_protocol_error");
  Close("server protocol error");
}

void ServerConn::OnStreamClosed(core::TcpStream&, const absl::Status& why) {
  if (state_ == State::kConnecting) {
    state_ = State::kClosed;
    connect_timer_->Stop();
    proxy_->OnServerConnectFailed(*this, Sv(why.message()));
    return;
  }
  if (stream_->tls() && !stream_->tls_session()->handshake_done()) {
    proxy_->CountError("server_tls_failed");
    Close(Cat("TLS with the server failed: ", why.message()));
    return;
  }
  Close(Cat("server closed the connection: ", why.message()));
}

void ServerConn::Close(std::string_view reason) {
  if (state_ == State::kClosed && !stream_->open()) {
    return;
  }
  State was = state_;
  state_ = State::kClosed;
  connect_timer_->Stop();
  stream_->Close();
  if (was == State::kConnecting || was == State::kLogin ||
      (was == State::kSettingUp && !setup_after_reset_)) {
    proxy_->OnServerConnectFailed(*this, reason);
    return;
  }
  spdlog::debug("conn={} server={} closed: {}", name(), pool_->name, reason);
  ClientSession* client = client_;
  client_ = nullptr;
  if (client != nullptr) {
    client->OnServerLost(reason);
  }
  proxy_->OnServerClosed(*this);
}

}  // namespace wirepool::proxy
