#include "proxy/client_session.h"

#include <algorithm>
#include <utility>

#include "core/log.h"
#include "core/strings.h"
#include "proxy/proxy.h"
#include "proxy/pump.h"
#include "proxy/server_conn.h"

namespace wirepool::proxy {
namespace {

constexpr size_t kMaxWholeMessage = 1 << 20;

std::string PinNames(codec::PinSet pins) {
  std::string out;
  for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
    auto reason = static_cast<codec::PinReason>(i);
    if (pins & codec::PinBit(reason)) {
      out += Cat(out.empty() ? "" : ",", codec::PinReasonName(reason));
    }
  }
  return out;
}

// What a client that has not sent its startup packet yet has: nothing.
const std::shared_ptr<const codec::StartupInfo>& NoStartup() {
  static const auto* none =
      new std::shared_ptr<const codec::StartupInfo>(std::make_shared<const codec::StartupInfo>());
  return *none;
}

}  // namespace

ClientBusy::ClientBusy()
    : timer([](void* self) { static_cast<ClientBusy*>(self)->owner->OnDeadline(); }, this) {}

ClientSession::ClientSession(ProxyInstance& proxy, uint64_t id)
    : proxy_(proxy), id_(id), stream_(proxy.uv_loop(), *this), startup_(NoStartup()) {}

ClientSession::~ClientSession() = default;

ClientBusy& ClientSession::TakeBusy() {
  busy_ = proxy_.TakeSpareBusy();
  if (busy_ == nullptr) {
    busy_ = std::make_unique<ClientBusy>();
  }
  busy_->owner = this;
  return *busy_;
}

void ClientSession::GiveBackBusy() {
  if (busy_ != nullptr && busy_->clean()) {
    busy_->owner = nullptr;
    busy_->tls = nullptr;  // TLS, if any, started before the login ended
    proxy_.KeepSpareBusy(std::move(busy_));
  }
}

std::string_view ClientSession::peer_host() const {
  std::string_view peer = stream_.peer();
  return peer.substr(0, peer.rfind(':'));
}

void ClientSession::Arm(Deadline what, absl::Duration after) {
  ClientBusy& b = busy();
  b.deadline = what;
  proxy_.deadlines().Arm(b.timer, after);
}

void ClientSession::Disarm(Deadline what) {
  if (busy_ != nullptr && busy_->deadline != Deadline::kNone &&
      (what == Deadline::kNone || what == busy_->deadline)) {
    busy_->deadline = Deadline::kNone;
    proxy_.deadlines().Disarm(busy_->timer);
  }
}

void ClientSession::OnDeadline() {
  Deadline what = busy_->deadline;  // fired: the timer is in busy_
  busy_->deadline = Deadline::kNone;
  switch (what) {
    case Deadline::kNone:
      return;
    case Deadline::kAuthDelay:
      Close("authentication failed");
      return;
    case Deadline::kLogin:
      FailWith(codec::ProxyError::kLoginTimeout, "timeout while logging in to wirepool");
      return;
    case Deadline::kBorrow:
      FailWith(codec::ProxyError::kPoolTimeout,
               Cat("no server connection available in pool \"", pool_->name,
                   "\" within connection_borrow_timeout (",
                   proxy_.settings().connection_borrow_timeout, ")"));
      return;
    case Deadline::kIdleTransaction:
      FailWith(codec::ProxyError::kIdleTransactionTimeout,
               Cat("terminating connection due to idle-in-transaction timeout "
                   "(idle_transaction_timeout ",
                   proxy_.settings().idle_transaction_timeout, ")"));
      return;
  }
}

absl::Status ClientSession::Accept(int fd) {
  absl::Status st = stream_.Adopt(fd);
  if (!st.ok()) {
    return st;
  }
  codec::ClientCodecOptions options;
  options.auth_method = proxy_.settings().client_auth;
  options.random = [this](uint8_t* out, size_t len) { proxy_.Random(out, len); };
  options.server_params = proxy_.server_params();
  options.connection_id = static_cast<uint32_t>(id_);
  options.classify = transaction_mode();
  if (options.classify) {
    for (const std::string& reason : proxy_.settings().pin_as_error) {
      for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
        auto pin = static_cast<codec::PinReason>(i);
        if (codec::PinReasonName(pin) == reason) {
          refuse_pins_ |= codec::PinBit(pin);
        }
      }
    }
    options.refuse_pins = refuse_pins_;
  }
  options.peer_host = std::string(peer_host());
  const core::TlsContextPtr& tls = proxy_.client_tls();
  options.tls_available = tls != nullptr;
  if (tls != nullptr) {
    options.tls_server_end_point = tls->server_end_point();
    tls_mode_ = tls->mode();
    busy().tls = tls;
  }
  codec_ = proxy_.protocol().NewClientCodec(options, *this);
  users_ = proxy_.users();
  Arm(Deadline::kLogin, proxy_.settings().client_login_timeout);
  codec_->Start();
  stream_.Flush();
  stream_.StartReading();
  spdlog::debug("conn={} proxy={} accepted from {}", name(), proxy_.settings().name,
                stream_.peer());
  return absl::OkStatus();
}

bool ClientSession::transaction_mode() const { return proxy_.transaction_pooling(); }

void ClientSession::OnReadable(core::TcpStream&) { Drive(); }

void ClientSession::Drive() {
  if (driving_) {
    redrive_ = true;
    return;
  }
  if (busy_ != nullptr && busy_->cancels_in_flight > 0) {
    // What the client sends once a cancel of its statement is under way waits for the cancel to
    // be through: a cancel that meets the end of its statement then finds the server idle, and
    // cannot stop the client's next statement instead.
    return;
  }
  if (logged_in_ && state_ != State::kActive) {
    // Between transactions the codec reads nothing until a server is there to take it: the
    // first byte of the next request is what asks for one. A goodbye needs none, nor does a
    // message the codec answers itself (MySQL COM_STMT_CLOSE).
    bool goodbye = state_ == State::kIdle && !stream_.input().empty() &&
                   !codec_->NeedsServer(stream_.input().view());
    if (!goodbye) {
      if (state_ == State::kIdle && !stream_.input().empty()) {
        BorrowServer();
      }
      return;
    }
  }
  Disarm(Deadline::kIdleTransaction);
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
        // Without a server the codec takes one message at a time: each one after it is asked
        // again whether it needs a server.
        [this] { return state_ != State::kClosed && !(logged_in_ && state_ == State::kIdle); });
  } while (redrive_ && state_ != State::kClosed && exit != PumpExit::kStopped);
  driving_ = false;
  if (state_ == State::kClosed) {
    return;
  }
  if (tls_request_.has_value()) {
    StartTls();
    return;
  }
  if (auth_failed_) {
    return;  // the error goes out when auth_failure_delay is over, not now
  }
  if (state_ == State::kIdle && exit == PumpExit::kStopped && !stream_.input().empty()) {
    Drive();
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
    return;
  }
  awaiting_server_ = exit == PumpExit::kPaused && state_ == State::kActive;
  UpdateIdleTransactionTimer();
  if (!awaiting_server_) {
    // The codec may have answered the client itself (or taken a message that has no answer):
    // then no server output follows to release the server.
    MaybeRelease();
  }
}

void ClientSession::OnTlsRequest(codec::TlsStart how) { tls_request_ = how; }

void ClientSession::StartTls() {
  const codec::TlsStart how = *tls_request_;
  tls_request_.reset();
  tls_direct_ = how == codec::TlsStart::kDirect;
  // Whatever is read from now on goes to TLS, never to the codec. What the codec had not taken
  // yet is refused (kAfterGoAhead: the codec has already failed the connection for it) or is the
  // client's TLS hello.
  // The context offered at accept: the login (and so the busy part) is still under way.
  absl::Status st = stream_.StartTls(std::move(busy().tls), how != codec::TlsStart::kAfterGoAhead);
  if (!st.ok()) {
    proxy_.CountError("client_tls_failed");
    spdlog::info("conn={} proxy={} TLS with {} failed: {}", name(), proxy_.settings().name,
                 stream_.peer(), st.message());
    Close("TLS failed");
    return;
  }
  codec_->OnTlsStarted();
}

void ClientSession::OnTlsReady(core::TcpStream&) {
  const core::TlsSession* tls = stream_.tls_session();
  if (tls_direct_ && tls->AlpnSelected().empty()) {
    // A client that opens with TLS must say which protocol it speaks in it (as PostgreSQL 17
    // insists), so that a TLS connection meant for another service is never read as ours.
    proxy_.CountError("client_tls_failed");
    spdlog::info("conn={} proxy={} direct TLS from {} without ALPN \"{}\": refused", name(),
                 proxy_.settings().name, stream_.peer(), proxy_.protocol().TlsAlpn());
    Close("direct TLS without ALPN");
    return;
  }
  spdlog::debug("conn={} proxy={} TLS from {}: {}", name(), proxy_.settings().name, stream_.peer(),
                tls->Describe());
  Drive();
}

bool ClientSession::RefusedByTlsMode(const codec::StartupInfo& info) {
  const core::TlsMode mode = tls_mode_;
  if (mode >= core::TlsMode::kRequire && !stream_.tls()) {
    FailWith(codec::ProxyError::kTlsRequired,
             Cat("connections without TLS are refused by this proxy (client_tls mode ",
                 core::TlsModeName(mode), ")"));
    return true;
  }
  if (mode == core::TlsMode::kVerifyFull && stream_.tls() &&
      stream_.tls_session()->PeerCommonName() != info.user) {
    // The handshake verified the certificate; verify-full also wants it to be this user's.
    spdlog::info("conn={} proxy={} client certificate of {} is not for user \"{}\"", name(),
                 proxy_.settings().name, stream_.peer(), info.user);
    FailWith(codec::ProxyError::kAuthFailed,
             Cat("certificate authentication failed for user \"", info.user, "\""));
    return true;
  }
  return false;
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
    logged_in_ = false;
    ForgetSessionState();
    users_ = proxy_.users();
    Arm(Deadline::kLogin, proxy_.settings().client_login_timeout);
    spdlog::debug("conn={} logs in again as {}", name(), info.user);
  }
  startup_ = std::make_shared<const codec::StartupInfo>(info);  // shared once logged in
  params_.clear();
  params_own_ = false;
  if (RefusedByTlsMode(info)) {
    return;
  }
  if (uint64_t banned_ms = proxy_.AuthBannedForMs(peer_host()); banned_ms > 0) {
    FailWith(codec::ProxyError::kAuthFailed,
             Cat("too many failed logins from ", peer_host(), ": refused for another ",
                 (banned_ms + 999) / 1000, "s"));
    return;
  }
  user_ = users_->Find(info.user);
  codec_->BeginAuth(user_ != nullptr ? &user_->secret : nullptr);
}

void ClientSession::OnCancelRequest(std::string_view cancel_key) {
  proxy_.ForwardCancel(cancel_key);
  Close("cancel request handled");
}

void ClientSession::OnAuthenticated() {
  Disarm(Deadline::kLogin);
  if (user_ != nullptr && user_->scram_passthrough) {
    proxy_.RememberScramClientKey(*user_, codec_->AuthClientKey());
  }
  startup_ = proxy_.InternStartup(std::move(startup_));
  pool_ = &proxy_.PoolFor(startup_->user, startup_->pool_key);
  // The first server also proves the backend login works and gives the client the server's
  // parameters; in transaction pooling it goes back as soon as the client is logged in.
  BorrowServer();
}

void ClientSession::BorrowServer() {
  const auto& s = proxy_.settings();
  if (proxy_.WaitingClients(*pool_) >= s.max_waiting_clients) {
    FailWith(codec::ProxyError::kTooManyWaiting,
             Cat("too many clients waiting for a server connection in pool \"", pool_->name,
                 "\" (max_waiting_clients ", s.max_waiting_clients, ")"));
    return;
  }
  state_ = State::kWaiting;
  proxy_.Borrow(*this, *pool_);
  if (state_ == State::kWaiting) {
    // Only a client that really waits needs the timer: most borrows are served at once.
    Arm(Deadline::kBorrow, s.connection_borrow_timeout);
  }
}

void ClientSession::OnAuthFailed(std::string_view reason) {
  proxy_.CountError("auth_failed");
  spdlog::info("conn={} proxy={} user=\"{}\" authentication failed from {}: {}", name(),
               proxy_.settings().name, startup_->user, stream_.peer(), reason);
  proxy_.RecordAuthFailure(peer_host());
  const absl::Duration delay = proxy_.settings().auth_failure_delay;
  if (delay <= absl::ZeroDuration()) {
    Close("authentication failed");
    return;
  }
  // The codec's error is queued, not sent: a guesser learns the answer only after the delay, and
  // nothing more is read from it meanwhile. The login timer is reused (the login is over).
  auth_failed_ = true;
  stream_.StopReading();
  Arm(Deadline::kAuthDelay, delay);
}

void ClientSession::OnServerAssigned(ServerConn& server) {
  Disarm(Deadline::kBorrow);
  server_ = &server;
  state_ = State::kAttaching;
}

void ClientSession::OnServerReady() {
  state_ = State::kActive;
  if (!logged_in_) {
    logged_in_ = true;
    codec_->CompleteLogin(server_->codec().Parameters());
    if (!cancel_.key.empty()) {
      proxy_.UnregisterCancelKey(cancel_);  // logged in again: written only out of the table
    }
    cancel_.key = codec_->CancelKey();
    proxy_.RegisterCancelKey(*this, cancel_);
    spdlog::debug("conn={} logged in as {} to pool {} on {}", name(), startup_->user, pool_->name,
                  server_->name());
  }
  Drive();
  if (state_ == State::kActive && server_ != nullptr) {
    server_->Flush();
    AfterServerOutput();
  }
}

void ClientSession::OnRequestEffects(const codec::RequestEffects& effects) {
  if (!transaction_mode()) {
    return;  // a session keeps its server anyway, and the reset clears everything
  }
  SetPins(effects.pins, effects.statement);
  busy().next_effects.Merge(effects);
}

void ClientSession::OnRequestRefused(const codec::RequestEffects& effects) {
  proxy_.CountError("pin_as_error");
  spdlog::info("conn={} proxy={} statement refused ({} listed in pin_as_error): {}", name(),
               proxy_.settings().name, PinNames(effects.pins & refuse_pins_), effects.statement);
}

void ClientSession::SendToServer(std::string_view bytes) {
  if (server_ != nullptr && state_ == State::kActive) {
    server_->Write(bytes);
  }
}

bool ClientSession::ServerHasStatement(std::string_view key) {
  return server_ != nullptr && server_->codec().HasStatement(key);
}

bool ClientSession::ServerIsQuiet() { return server_ != nullptr && server_->codec().Quiet(); }

codec::ServerStatement ClientSession::FindServerStatement(std::string_view key) {
  return server_ != nullptr ? server_->codec().FindStatement(key) : codec::ServerStatement{};
}

void ClientSession::OnStatementMessage(const codec::StatementNote& note) {
  if (server_ != nullptr) {
    server_->NoteStatementMessage(note);
  }
}

void ClientSession::OnRequestEnd(uint32_t tag) {
  if (transaction_mode()) {
    ClientBusy& b = busy();
    SentRequest& sent = b.sent.emplace_back();
    sent.tag = tag;
    if (!b.next_effects.empty()) {
      // Most requests do nothing to the session: their strings are not moved for nothing. (A
      // statement is kept only with a pin, RequestEffects::Merge, so empty() covers it.)
      sent.effects = std::move(b.next_effects);
      b.next_effects = {};
    }
  }
  if (server_ != nullptr) {
    server_->OnClientRequest(tag);
  }
}

void ClientSession::OnServerStateChanged() {
  if (busy_ != nullptr && !busy_->sent.empty()) {
    busy_->sent.front().state_changed = true;
  }
}

void ClientSession::OnServerRequestFailed() {
  if (busy_ != nullptr && !busy_->sent.empty()) {
    busy_->sent.front().failed = true;
  }
}

void ClientSession::OnServerRequestDone() {
  if (busy_ == nullptr || busy_->sent.empty()) {
    return;
  }
  if (const SentRequest& front = busy_->sent.front();
      front.effects.empty() && !front.state_changed) {
    // Nothing to read back, clear or pin: the common request, without moving its strings.
    const uint32_t tag = front.tag;
    const bool failed = front.failed;
    busy_->sent.pop_front();
    codec_->OnRequestAnswered(tag, failed);
    return;
  }
  SentRequest done = std::move(busy_->sent.front());
  busy_->sent.pop_front();
  codec_->OnRequestAnswered(done.tag, done.failed);
  codec::RequestEffects& e = done.effects;
  // Whatever the request did to parameters, even if it failed half-way, the server knows: it is
  // read back once the transaction is over. (busy() again: no reference to it is held across a
  // call out of the session.)
  auto read_back = [this](std::string name) {
    std::vector<std::string>& names = busy().read_back;
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(std::move(name));
    }
  };
  for (std::string& name : e.read_back) {
    read_back(std::move(name));
  }
  if (e.reset_params) {
    for (const auto& [name, value] : params()) {
      read_back(name);
    }
    // What init_sql or the user's startup parameters set is gone from the session too.
    if (server_ != nullptr) {
      for (std::string& name : server_->codec().BaselineNames()) {
        read_back(std::move(name));
      }
    }
  }
  if (!done.failed) {
    ClearPins(e.unpins);
  }
  if (done.state_changed && e.empty()) {
    // Something the classifier did not see coming (a stored procedure's SET @u, say): what it
    // changed cannot be replayed, so the client keeps this server.
    SetPins(codec::PinBit(codec::PinReason::kSessionState),
            "(a request the server reported as changing the session, in a way the classifier did "
            "not foresee)");
  }
}

void ClientSession::RecordParameter(std::string_view name, std::string_view value) {
  auto named = [name](const auto& param) { return param.first == name; };
  const codec::ParamList& now = params();
  auto same = std::find_if(now.begin(), now.end(), named);
  if (same != now.end() && same->second == value) {
    return;
  }
  if (!params_own_) {
    // The first change: from now on the client has parameters of its own.
    params_ = startup_->params;
    params_own_ = true;
  }
  auto it = std::find_if(params_.begin(), params_.end(), named);
  if (it != params_.end()) {
    it->second = std::string(value);
  } else {
    params_.emplace_back(std::string(name), std::string(value));
  }
}

void ClientSession::OnReadBackFailed(std::string_view why) {
  SetPins(codec::PinBit(codec::PinReason::kUnclassified),
          Cat("(reading back session parameters failed: ", why, ")"));
}

void ClientSession::SetPins(codec::PinSet pins, std::string_view statement) {
  codec::PinSet added = pins & ~pins_;
  if (added == 0) {
    return;
  }
  pins_ |= pins;
  for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
    if (added & codec::PinBit(static_cast<codec::PinReason>(i))) {
      proxy_.CountPin(static_cast<codec::PinReason>(i), true);
    }
  }
  codec::PinSet unexplained = added & ~pins_logged_;
  if (unexplained != 0) {
    pins_logged_ |= unexplained;
    spdlog::info("conn={} proxy={} pinned to its server ({}) by: {}", name(),
                 proxy_.settings().name, PinNames(unexplained), statement);
  }
}

void ClientSession::ClearPins(codec::PinSet pins) {
  codec::PinSet cleared = pins & pins_;
  pins_ &= ~pins;
  if (cleared == 0) {
    return;  // every request that succeeds comes here, seldom with a pin to clear
  }
  for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
    if (cleared & codec::PinBit(static_cast<codec::PinReason>(i))) {
      proxy_.CountPin(static_cast<codec::PinReason>(i), false);
    }
  }
}

void ClientSession::ForgetSessionState() {
  ClearPins(pins_);
  if (busy_ != nullptr) {
    busy_->sent.clear();
    busy_->next_effects = {};
    busy_->read_back.clear();
  }
}

void ClientSession::AfterServerOutput() {
  if (awaiting_server_ && state_ == State::kActive && server_ != nullptr) {
    awaiting_server_ = false;
    Drive();  // which releases the server if it may
    return;
  }
  MaybeRelease();
}

void ClientSession::MaybeRelease() {
  if (!transaction_mode() || state_ != State::kActive || server_ == nullptr || driving_) {
    return;
  }
  UpdateIdleTransactionTimer();
  if (!server_->clean() || mid_request() || pins_ != 0 ||
      (busy_ != nullptr && (!busy_->sent.empty() || busy_->cancels_in_flight > 0))) {
    return;
  }
  if (busy_ != nullptr && !busy_->read_back.empty()) {
    std::vector<std::string> names = std::move(busy_->read_back);
    busy_->read_back.clear();
    if (server_->ReadBack(names)) {
      // Nothing of the client's may reach the server before the values are in: OnServerReady
      // brings the client back.
      state_ = State::kAttaching;
      return;
    }
  }
  ReleaseServer();
}

void ClientSession::ReleaseServer() {
  ServerConn* server = server_;
  server_ = nullptr;
  state_ = State::kIdle;
  Disarm(Deadline::kIdleTransaction);
  // Input left now is an incomplete message (the codec read all it could): more bytes will come,
  // and they ask for a server then.
  server->Release();
  GiveBackBusy();
}

void ClientSession::UpdateIdleTransactionTimer() {
  absl::Duration limit = proxy_.settings().idle_transaction_timeout;
  if (!transaction_mode() || limit <= absl::ZeroDuration()) {
    return;
  }
  bool idle_in_transaction = state_ == State::kActive && server_ != nullptr &&
                             server_->idle_in_transaction() && !mid_request();
  if (!idle_in_transaction) {
    Disarm(Deadline::kIdleTransaction);
  } else if (busy().deadline != Deadline::kIdleTransaction) {
    Arm(Deadline::kIdleTransaction, limit);
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
  if (server_ == nullptr) {
    return;  // between transactions nothing runs for this client: nothing to cancel
  }
  if (!transaction_mode()) {
    proxy_.CancelOn(*server_, nullptr);
    return;
  }
  if (server_->outstanding() == 0) {
    return;
  }
  // The server stays with this client until the cancel is through, so that it can never stop
  // the next client's statement.
  ++busy().cancels_in_flight;
  proxy_.CancelOn(*server_, proxy_.WhileClientOpen(*this, [](ClientSession& session) {
    int& in_flight = session.busy().cancels_in_flight;  // kept while one is in flight
    --in_flight;
    if (in_flight == 0 && !session.stream_.input().empty()) {
      session.Drive();  // what the client sent meanwhile (Drive releases the server if it may)
    } else if (session.server_ != nullptr) {
      session.AfterServerOutput();
    }
  }));
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
  if (state_ == State::kLogin || state_ == State::kWaiting || state_ == State::kIdle) {
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
  Disarm(Deadline::kNone);
  spdlog::debug("conn={} closed: {}", name(), reason);
  if (!cancel_.key.empty()) {
    proxy_.UnregisterCancelKey(cancel_);
  }
  if (was == State::kWaiting && pool_ != nullptr) {
    proxy_.CancelWait(*this, *pool_);
  }
  ClearPins(pins_);
  ServerConn* server = server_;
  server_ = nullptr;
  stream_.CloseAfterFlush();
  if (server != nullptr) {
    server->Detach();
  }
  proxy_.OnClientClosed(*this);
}

void ClientSession::OnStreamClosed(core::TcpStream&, const absl::Status& why) {
  if (stream_.tls() && !stream_.tls_session()->handshake_done()) {
    proxy_.CountError("client_tls_failed");
    spdlog::info("conn={} proxy={} TLS handshake with {} failed: {}", name(),
                 proxy_.settings().name, stream_.peer(), why.message());
  }
  Close(Cat("client connection closed: ", why.message()));
}

}  // namespace wirepool::proxy
