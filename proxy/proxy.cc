#include "proxy/proxy.h"
#include "core/strings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/crypto.h"
#include "core/log.h"
#include "proxy/cancel.h"
#include "proxy/client_session.h"
#include "proxy/server_conn.h"

namespace wirepool::proxy {
namespace {

constexpr absl::Duration kJanitorInterval = absl::Seconds(1);

}  // namespace

ProxyInstance::ProxyInstance(core::EventLoop& loop, config::ProxySettings settings,
                             codec::ProtocolPtr protocol, UserTablePtr users)
    : loop_(loop),
      settings_(std::move(settings)),
      protocol_(std::move(protocol)),
      users_(std::move(users)),
      janitor_(loop.get(), [this] { Janitor(); }) {}

ProxyInstance::~ProxyInstance() { CloseAll("shutting down"); }

absl::Status ProxyInstance::Start() {
  const auto& backend = settings_.backends.front();
  auto addr = core::ResolveAddress(backend.host, backend.port);
  if (!addr.ok()) {
    return addr.status();
  }
  backend_address_ = *addr;
  auto tls = LoadTlsContexts(settings_, protocol_->TlsAlpn());
  if (!tls.ok()) {
    return tls.status();
  }
  tls_ = *std::move(tls);
  auto listen_addr = core::ResolveAddress(settings_.listen.host, settings_.listen.port);
  if (!listen_addr.ok()) {
    return listen_addr.status();
  }
  listener_ =
      std::make_unique<core::TcpListener>(loop_.get(), [this](uv_stream_t* s) { Accept(s); });
  absl::Status st = listener_->Listen(*listen_addr);
  if (!st.ok()) {
    return st;
  }
  janitor_.StartRepeating(kJanitorInterval);
  Probe();
  spdlog::info(
      "proxy={} listening on {} protocol={} pool_mode={} backend={} client_tls={} "
      "backend_tls={}",
      settings_.name, listener_->BoundAddress(), settings_.protocol, settings_.pool_mode,
      core::FormatAddress(backend_address_), core::TlsModeName(settings_.client_tls.mode),
      core::TlsModeName(settings_.backend_tls.mode));
  return absl::OkStatus();
}

std::vector<std::string> ProxyInstance::Reload(const config::ProxySettings& s, UserTablePtr users) {
  std::vector<std::string> restart;
  if (s.protocol != settings_.protocol) restart.push_back("protocol");
  if (s.listen.host != settings_.listen.host || s.listen.port != settings_.listen.port) {
    restart.push_back("listen");
  }
  if (s.pool_mode != settings_.pool_mode) restart.push_back("pool_mode");
  bool backends_same = s.backends.size() == settings_.backends.size();
  for (size_t i = 0; backends_same && i < s.backends.size(); ++i) {
    backends_same = s.backends[i].host == settings_.backends[i].host &&
                    s.backends[i].port == settings_.backends[i].port;
  }
  if (!backends_same) restart.push_back("backends");
  config::ProxySettings next = s;
  // Certificates and keys are read again; a file that no longer loads keeps the old context (and
  // the old TLS settings with it), so a bad rotation never takes TLS away.
  auto tls = LoadTlsContexts(s, protocol_->TlsAlpn());
  if (tls.ok()) {
    tls_ = *std::move(tls);
  } else {
    spdlog::error("proxy={} reload: TLS settings kept as they were: {}", settings_.name,
                  tls.status().message());
    next.client_tls = settings_.client_tls;
    next.backend_tls = settings_.backend_tls;
  }
  // What needs a restart keeps its running value.
  next.protocol = settings_.protocol;
  next.listen = settings_.listen;
  next.pool_mode = settings_.pool_mode;
  next.backends = settings_.backends;
  settings_ = std::move(next);
  users_ = std::move(users);
  ServeAllWaiters();  // a raised limit may let waiters in now
  return restart;
}

void ProxyInstance::Random(uint8_t* out, size_t len) { crypto::RandomBytes(out, len); }

namespace {
AuthGuardSettings GuardSettings(const config::ProxySettings& s) {
  return AuthGuardSettings{s.auth_failure_delay, s.auth_failure_limit, s.auth_failure_ban};
}
}  // namespace

void ProxyInstance::RememberScramClientKey(const User& user, std::string client_key) {
  if (!client_key.empty()) {
    scram_client_keys_[user.secret.name] = std::move(client_key);
  }
}

std::string ProxyInstance::ScramClientKey(const User& user) const {
  auto it = scram_client_keys_.find(user.secret.name);
  // A reload may have given the user another verifier: the old key no longer proves anything.
  if (it == scram_client_keys_.end() ||
      !crypto::ConstantTimeEquals(crypto::Sha256(it->second), user.secret.scram.stored_key)) {
    return {};
  }
  return it->second;
}

uint64_t ProxyInstance::AuthBannedForMs(std::string_view host) const {
  return auth_guard_.BannedForMs(host, now_ms());
}

void ProxyInstance::RecordAuthFailure(std::string_view host) {
  if (auth_guard_.RecordFailure(host, now_ms(), GuardSettings(settings_))) {
    CountError("auth_banned");
    spdlog::warn(
        "proxy={} {} failed to log in {} times: refused for {} (auth_failure_limit, "
        "auth_failure_ban)",
        settings_.name, host, settings_.auth_failure_limit,
        absl::FormatDuration(settings_.auth_failure_ban));
  }
}

void ProxyInstance::Probe() {
  const User* user = users_->First();
  if (user == nullptr) {
    return;
  }
  CancelTarget target;
  target.backend = backend_address_;
  target.timeout = settings_.server_connect_timeout;
  target.protocol = protocol_;
  target.tls = tls_.backend;
  target.login.user = user->backend_user;
  target.login.password = user->backend_password;
  if (user->scram_passthrough) {
    target.login.scram_client_key = ScramClientKey(*user);
    target.login.scram_server_key = user->secret.scram.server_key;
    if (target.login.scram_client_key.empty()) {
      return;  // no client has logged in yet: nothing to log in with (and no failed login to cause)
    }
  }
  target.login.database = user->backend_user;
  target.login.random = [](uint8_t* out, size_t len) { crypto::RandomBytes(out, len); };
  // The probe may outlive this proxy (a quick shutdown): it reaches it only through a weak token.
  std::weak_ptr<ProxyInstance*> alive = alive_;
  target.on_params = [alive](const codec::ParamList& params) {
    auto self = alive.lock();
    if (self != nullptr && (*self)->server_params_ == nullptr && !params.empty()) {
      (*self)->set_server_params(params);
    }
  };
  ProbeServer(loop_, target);
}

void ProxyInstance::Accept(uv_stream_t* server) {
  auto client = std::make_unique<ClientSession>(*this, next_client_id_++);
  absl::Status st = client->Accept(server);
  if (!st.ok()) {
    spdlog::warn("proxy={} accept failed: {}", settings_.name, st.message());
    loop_.DeleteLater(std::move(client));
    return;
  }
  ++stats_.clients_accepted;
  ClientSession* raw = client.get();
  clients_.emplace(raw, std::move(client));
  if (draining_) {
    raw->FailWith(codec::ProxyError::kShuttingDown, "wirepool is shutting down");
    return;
  }
  if (clients_.size() > settings_.max_client_connections) {
    raw->FailWith(codec::ProxyError::kTooManyClients,
                  Cat("too many client connections to proxy \"", settings_.name,
                      "\" (max_client_connections ", settings_.max_client_connections, ")"));
  }
}

Pool& ProxyInstance::PoolFor(const std::string& user, const std::string& key) {
  auto& slot = pools_[{user, key}];
  if (slot == nullptr) {
    slot = std::make_unique<Pool>();
    slot->name = Cat(settings_.name, "/", user, "/", key);
    slot->user = user;
    slot->key = key;
  }
  return *slot;
}

void ProxyInstance::Borrow(ClientSession& client, Pool& pool) {
  pool.waiters.push_back(&client);
  ServeWaiters(pool);
}

void ProxyInstance::CancelWait(ClientSession& client, Pool& pool) {
  auto it = std::find(pool.waiters.begin(), pool.waiters.end(), &client);
  if (it != pool.waiters.end()) {
    pool.waiters.erase(it);
  }
}

void ProxyInstance::ServeWaiters(Pool& pool) {
  while (!pool.waiters.empty()) {
    if (!pool.idle.empty()) {
      ServerConn* server = pool.idle.back();
      pool.idle.pop_back();
      ClientSession* client = pool.waiters.front();
      pool.waiters.pop_front();
      ++stats_.servers_reused;
      server->Attach(*client);
      continue;
    }
    if (pool.connecting >= static_cast<int>(pool.waiters.size())) {
      return;  // enough servers are on their way
    }
    if (total_servers_ >= static_cast<int>(settings_.max_backend_connections) &&
        !CloseIdleElsewhere(pool)) {
      return;  // at the limit: wait for a release
    }
    auto server = std::make_unique<ServerConn>(*this, pool, next_server_id_++);
    ServerConn* raw = server.get();
    servers_.emplace(raw, std::move(server));
    ++total_servers_;
    ++pool.total;
    ++pool.connecting;
    ++stats_.servers_opened;
    raw->Connect();
  }
}

void ProxyInstance::ServeAllWaiters() {
  for (auto& [key, pool] : pools_) {
    if (!pool->waiters.empty()) {
      ServeWaiters(*pool);
    }
  }
}

bool ProxyInstance::CloseIdleElsewhere(const Pool& except) {
  ServerConn* oldest = nullptr;
  for (auto& [key, pool] : pools_) {
    if (pool.get() == &except || pool->idle.empty()) {
      continue;
    }
    ServerConn* candidate = pool->idle.front();
    if (oldest == nullptr || candidate->idle_since_ms() < oldest->idle_since_ms()) {
      oldest = candidate;
    }
  }
  if (oldest == nullptr) {
    return false;
  }
  oldest->Close("closed to make room for another pool");
  return true;
}

void ProxyInstance::RemoveIdle(ServerConn& server) {
  auto& idle = server.pool().idle;
  auto it = std::find(idle.begin(), idle.end(), &server);
  if (it != idle.end()) {
    idle.erase(it);
  }
}

void ProxyInstance::OnServerLoggedIn(ServerConn& server) {
  --server.pool().connecting;
  OnServerIdle(server);
}

void ProxyInstance::OnServerIdle(ServerConn& server) {
  Pool& pool = server.pool();
  pool.idle.push_back(&server);
  ServeWaiters(pool);
  if (pool.waiters.empty() && !draining_) {
    ServeAllWaiters();
  }
}

void ProxyInstance::OnServerLoginFailed(ServerConn& server, const codec::WireError& error) {
  Pool& pool = server.pool();
  --pool.connecting;
  if (!pool.waiters.empty()) {
    ClientSession* client = pool.waiters.front();
    pool.waiters.pop_front();
    client->FailWithServerError(error);
  }
  OnServerClosed(server);
}

void ProxyInstance::OnServerConnectFailed(ServerConn& server, std::string_view why) {
  Pool& pool = server.pool();
  --pool.connecting;
  spdlog::warn("conn={} pool={} cannot reach server {}: {}", server.name(), pool.name,
               core::FormatAddress(backend_address_), why);
  if (!pool.waiters.empty()) {
    ClientSession* client = pool.waiters.front();
    pool.waiters.pop_front();
    client->FailWith(codec::ProxyError::kServerUnavailable,
                     Cat("wirepool could not connect to server ",
                         core::FormatAddress(backend_address_), ": ", why));
  }
  OnServerClosed(server);
}

void ProxyInstance::OnServerSetupFailed(ServerConn& server, std::string_view message) {
  Pool& pool = server.pool();
  --pool.connecting;
  if (!pool.waiters.empty()) {
    ClientSession* client = pool.waiters.front();
    pool.waiters.pop_front();
    client->FailWith(codec::ProxyError::kServerUnavailable, message);
  }
  OnServerClosed(server);
}

void ProxyInstance::OnServerClosed(ServerConn& server) {
  auto it = servers_.find(&server);
  if (it == servers_.end()) {
    return;
  }
  RemoveIdle(server);
  --total_servers_;
  --server.pool().total;
  loop_.DeleteLater(std::move(it->second));
  servers_.erase(it);
  if (!draining_) {
    ServeAllWaiters();
  }
}

void ProxyInstance::OnClientClosed(ClientSession& client) {
  auto it = clients_.find(&client);
  if (it == clients_.end()) {
    return;
  }
  loop_.DeleteLater(std::move(it->second));
  clients_.erase(it);
}

void ProxyInstance::RegisterCancelKey(const std::string& key, ClientSession& client) {
  cancel_keys_[key] = &client;
}

void ProxyInstance::UnregisterCancelKey(const std::string& key) { cancel_keys_.erase(key); }

void ProxyInstance::ForwardCancel(std::string_view key) {
  auto it = cancel_keys_.find(Av(key));
  if (it == cancel_keys_.end()) {
    spdlog::info("proxy={} cancel request with an unknown key ignored", settings_.name);
    return;
  }
  it->second->CancelRunning();
}

void ProxyInstance::CountPin(codec::PinReason reason, bool set) {
  ++(set ? stats_.pins : stats_.unpins)[static_cast<size_t>(reason)];
}

void ProxyInstance::CancelOn(ServerConn& server, std::function<void()> on_done) {
  if (server.state() != ServerConn::State::kActive) {
    if (on_done) {
      on_done();
    }
    return;
  }
  codec::CancelPlan plan = protocol_->PlanCancel(server.codec().CancelKey());
  spdlog::debug("conn={} forwarding a cancel", server.name());
  CancelTarget target;
  target.backend = backend_address_;
  target.timeout = settings_.server_connect_timeout;
  target.protocol = protocol_;
  target.tls = tls_.backend;
  if (plan.login_first) {
    const User* user = users_->Find(server.pool().user);
    if (user == nullptr) {
      if (on_done) {
        on_done();
      }
      return;
    }
    target.login.user = user->backend_user;
    target.login.password = user->backend_password;
    if (user->scram_passthrough) {
      target.login.scram_client_key = ScramClientKey(*user);
      target.login.scram_server_key = user->secret.scram.server_key;
    }
    target.login.random = [](uint8_t* out, size_t len) { crypto::RandomBytes(out, len); };
  }
  target.on_done = std::move(on_done);
  SendCancel(loop_, target, std::move(plan));
}

bool ProxyInstance::Kill(ClientSession& asker, std::string_view target_key, bool whole_connection) {
  auto it = cancel_keys_.find(Av(target_key));
  if (it == cancel_keys_.end() || it->second->startup().user != asker.startup().user) {
    return false;
  }
  ClientSession* target = it->second;
  spdlog::info("conn={} kills {} of {}", asker.name(), whole_connection ? "connection" : "query",
               target->name());
  target->CancelRunning();
  if (whole_connection && target != &asker) {
    target->FailWith(codec::ProxyError::kKilled, "connection was killed");
  }
  return true;
}

void ProxyInstance::Janitor() {
  uint64_t now = now_ms();
  auth_guard_.Prune(now, GuardSettings(settings_));
  int64_t idle_ms = absl::ToInt64Milliseconds(settings_.server_idle_timeout);
  int64_t life_ms = absl::ToInt64Milliseconds(settings_.server_lifetime);
  std::vector<ServerConn*> expired;
  for (auto& [key, pool] : pools_) {
    for (ServerConn* s : pool->idle) {
      if ((idle_ms > 0 && now - s->idle_since_ms() >= static_cast<uint64_t>(idle_ms)) ||
          (life_ms > 0 && now - s->created_ms() >= static_cast<uint64_t>(life_ms))) {
        expired.push_back(s);
      }
    }
  }
  for (ServerConn* s : expired) {
    s->Close("server_idle_timeout or server_lifetime reached");
  }
  if (now - last_stats_ms_ >= 60000) {
    last_stats_ms_ = now;
    LogStats();
  }
  if (draining_) {
    DrainStep();
  }
}

void ProxyInstance::LogStats() {
  if (settings_.pool_mode != "transaction") {
    return;
  }
  std::string pins;
  std::string unpins;
  for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
    std::string_view name = codec::PinReasonName(static_cast<codec::PinReason>(i));
    if (stats_.pins[i] > 0) {
      pins += Cat(pins.empty() ? "" : " ", name, "=", stats_.pins[i]);
    }
    if (stats_.unpins[i] > 0) {
      unpins += Cat(unpins.empty() ? "" : " ", name, "=", stats_.unpins[i]);
    }
  }
  std::string line =
      Cat("pins: ", pins.empty() ? "none" : pins, "; unpins: ", unpins.empty() ? "none" : unpins);
  if (line != last_stats_line_) {
    last_stats_line_ = line;
    spdlog::info("proxy={} stats {}", settings_.name, line);
  }
}

void ProxyInstance::BeginDrain() {
  draining_ = true;
  if (listener_ != nullptr) {
    listener_->Close();
    listener_.reset();
  }
  janitor_.StartRepeating(absl::Milliseconds(100));
  DrainStep();
}

void ProxyInstance::DrainStep() {
  std::vector<ClientSession*> clients;
  for (auto& [raw, owned] : clients_) {
    clients.push_back(raw);
  }
  for (ClientSession* c : clients) {
    c->CloseIfIdle("terminating connection due to administrator command");
  }
}

void ProxyInstance::CloseAll(std::string_view reason) {
  draining_ = true;
  if (listener_ != nullptr) {
    listener_->Close();
    listener_.reset();
  }
  janitor_.Stop();
  std::vector<ClientSession*> clients;
  for (auto& [raw, owned] : clients_) {
    clients.push_back(raw);
  }
  for (ClientSession* c : clients) {
    c->FailWith(codec::ProxyError::kShuttingDown, reason);
  }
  std::vector<ServerConn*> servers;
  for (auto& [raw, owned] : servers_) {
    servers.push_back(raw);
  }
  for (ServerConn* s : servers) {
    s->Close(reason);
  }
}

}  // namespace wirepool::proxy
