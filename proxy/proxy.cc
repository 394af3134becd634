#include "proxy/proxy.h"
#include "core/strings.h"

#include <unistd.h>

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
                             codec::ProtocolPtr protocol, UserTablePtr users,
                             std::shared_ptr<ProxyShared> shared, int worker)
    : loop_(loop),
      shared_(std::move(shared)),
      worker_(worker),
      settings_(std::move(settings)),
      transaction_pooling_(settings_.pool_mode == "transaction"),
      protocol_(std::move(protocol)),
      users_(std::move(users)),
      janitor_(loop.get(), [this] { Janitor(); }),
      deadlines_(loop.get()) {
  shared_->SetLoop(worker_, &loop_);
  shared_->SetInstance(worker_, this);
}

ProxyInstance::~ProxyInstance() {
  CloseAll("shutting down");
  shared_->SetInstance(worker_, nullptr);
}

absl::Status ProxyInstance::Start(TlsContexts tls) {
  const auto& backend = settings_.backends.front();
  auto addr = backend.unix_path.empty() ? core::ResolveAddress(backend.host, backend.port)
                                        : core::UnixAddress(backend.unix_path);
  if (!addr.ok()) {
    return addr.status();
  }
  backend_address_ = *addr;
  tls_ = std::move(tls);
  janitor_.StartRepeating(kJanitorInterval);
  if (worker_ != 0) {
    return absl::OkStatus();
  }
  auto listen_addr = core::ResolveAddress(settings_.listen.host, settings_.listen.port);
  if (!listen_addr.ok()) {
    return listen_addr.status();
  }
  listener_ = std::make_unique<core::TcpListener>(loop_.get(), [this](int fd) { Accept(fd); });
  absl::Status st = listener_->Listen(*listen_addr);
  if (!st.ok()) {
    return st;
  }
  Probe();
  spdlog::info(
      "proxy={} listening on {} protocol={} pool_mode={} backend={} client_tls={} "
      "backend_tls={}",
      settings_.name, listener_->BoundAddress(), settings_.protocol, settings_.pool_mode,
      core::FormatAddress(backend_address_), core::TlsModeName(settings_.client_tls.mode),
      core::TlsModeName(settings_.backend_tls.mode));
  return absl::OkStatus();
}

std::vector<std::string> ProxyInstance::Reload(const config::ProxySettings& s, UserTablePtr users,
                                               const absl::StatusOr<TlsContexts>& tls) {
  std::vector<std::string> restart;
  if (s.protocol != settings_.protocol) restart.push_back("protocol");
  if (s.listen.host != settings_.listen.host || s.listen.port != settings_.listen.port) {
    restart.push_back("listen");
  }
  if (s.pool_mode != settings_.pool_mode) restart.push_back("pool_mode");
  if (s.backends != settings_.backends) restart.push_back("backends");
  config::ProxySettings next = s;
  // Certificates and keys are read again; a file that no longer loads keeps the old context (and
  // the old TLS settings with it), so a bad rotation never takes TLS away.
  if (tls.ok()) {
    tls_ = *tls;
  } else {
    if (worker_ == 0) {
      spdlog::error("proxy={} reload: TLS settings kept as they were: {}", settings_.name,
                    tls.status().message());
    }
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
    shared_->RememberScramClientKey(user.secret.name, std::move(client_key));
  }
}

std::string ProxyInstance::ScramClientKey(const User& user) const {
  std::string key = shared_->ScramClientKey(user.secret.name);
  // A reload may have given the user another verifier: the old key no longer proves anything.
  if (key.empty() ||
      !crypto::ConstantTimeEquals(crypto::Sha256(key), user.secret.scram.stored_key)) {
    return {};
  }
  return key;
}

uint64_t ProxyInstance::AuthBannedForMs(std::string_view host) const {
  return shared_->AuthBannedForMs(host, now_ms());
}

void ProxyInstance::RecordAuthFailure(std::string_view host) {
  if (shared_->RecordAuthFailure(host, now_ms(), GuardSettings(settings_))) {
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
  target.login.database = protocol_->ProbeDatabase(user->backend_user);
  target.login.random = [](uint8_t* out, size_t len) { crypto::RandomBytes(out, len); };
  // The probe may outlive this proxy (a quick shutdown): it reaches it only through a weak token.
  std::weak_ptr<ProxyInstance*> alive = alive_;
  target.on_params = [alive, name = settings_.name](const codec::ParamList& params) {
    spdlog::debug("proxy={} startup probe done: {} parameters from the backend", name,
                  params.size());
    auto self = alive.lock();
    if (self != nullptr && !params.empty()) {
      (*self)->shared_->SetServerParams(params, true);
    }
  };
  ProbeServer(loop_, target);
}

void ProxyInstance::Accept(int fd) {
  int to = next_worker_;
  next_worker_ = (next_worker_ + 1) % shared_->workers();
  if (to == worker_) {
    AcceptHere(fd);
    return;
  }
  shared_->loop(to).Post([shared = shared_, to, fd] {
    ProxyInstance* target = shared->instance(to);
    if (target == nullptr) {
      ::close(fd);
      return;
    }
    target->AcceptHere(fd);
  });
}

void ProxyInstance::AcceptHere(int fd) {
  auto client = std::make_unique<ClientSession>(*this, shared_->NextClientId());
  absl::Status st = client->Accept(fd);
  if (!st.ok()) {
    spdlog::warn("proxy={} accept failed: {}", settings_.name, st.message());
    loop_.DeleteLater(std::move(client));
    return;
  }
  ++stats_.clients_accepted;
  ClientSession* raw = client.get();
  clients_.insert(std::move(client));
  client_count_.fetch_add(1, std::memory_order_acq_rel);
  size_t all_clients = shared_->AddClient();
  if (draining_) {
    raw->FailWith(codec::ProxyError::kShuttingDown, "wirepool is shutting down");
    return;
  }
  if (all_clients > settings_.max_client_connections) {
    raw->FailWith(codec::ProxyError::kTooManyClients,
                  Cat("too many client connections to proxy \"", settings_.name,
                      "\" (max_client_connections ", settings_.max_client_connections, ")"));
  }
}

std::function<void()> ProxyInstance::WhileClientOpen(ClientSession& client,
                                                     std::function<void(ClientSession&)> task) {
  return [alive = std::weak_ptr<ProxyInstance*>(alive_), raw = &client, id = client.id(),
          task = std::move(task)] {
    auto self = alive.lock();
    if (self == nullptr) {
      return;
    }
    // The address may be another client's by now: the id says whether it is still this one.
    if (!(*self)->clients_.contains(raw) || raw->id() != id) {
      return;
    }
    task(*raw);
  };
}

std::shared_ptr<const codec::StartupInfo> ProxyInstance::InternStartup(
    std::shared_ptr<const codec::StartupInfo> startup) {
  return startups_.Intern(std::move(startup));
}

std::unique_ptr<ClientBusy> ProxyInstance::TakeSpareBusy() {
  if (spare_busy_.empty()) {
    return nullptr;
  }
  std::unique_ptr<ClientBusy> busy = std::move(spare_busy_.back());
  spare_busy_.pop_back();
  return busy;
}

void ProxyInstance::KeepSpareBusy(std::unique_ptr<ClientBusy> busy) {
  if (spare_busy_.size() < kSpareBusyKept) {
    spare_busy_.push_back(std::move(busy));
  }
}

Pool& ProxyInstance::PoolFor(const std::string& user, const std::string& key) {
  auto& slot = pools_[{user, key}];
  if (slot == nullptr) {
    slot = std::make_unique<Pool>();
    slot->name = Cat(settings_.name, "/", user, "/", key);
    slot->user = user;
    slot->key = key;
    slot->counts = &shared_->CountsFor(user, key);
    slot->cancel_home = {worker_, user};
  }
  return *slot;
}

void ProxyInstance::Publish(Pool& pool) {
  if (!shared_->multi()) {
    return;
  }
  auto& mine = pool.counts->slots[worker_];
  auto& totals = shared_->worker_totals(worker_);
  int idle = static_cast<int>(pool.idle.size());
  int waiting = static_cast<int>(pool.waiters.size());
  // Sequentially consistent, as are the reads of other workers' counts: a worker that publishes
  // an idle server and then looks for waiters elsewhere, and one that publishes a waiter and then
  // looks for idle servers elsewhere, cannot both miss the other (acquire/release allows that).
  // On x86 this costs nothing over acq_rel: these are locked instructions and plain loads either
  // way. The slot goes before the totals, so a reader that sees a total sees the slot's part.
  int idle_was = mine.idle.exchange(idle);
  int waiting_was = mine.waiting.exchange(waiting);
  if (idle != idle_was) {
    totals.idle.fetch_add(idle - idle_was);
  }
  if (waiting != waiting_was) {
    totals.waiting.fetch_add(waiting - waiting_was);
  }
}

size_t ProxyInstance::WaitingClients(const Pool& pool) const {
  size_t n = pool.waiters.size();
  for (int w = 0; w < shared_->workers(); ++w) {
    if (w != worker_) {
      n += static_cast<size_t>(pool.counts->slots[w].waiting.load());
    }
  }
  return n;
}

void ProxyInstance::Borrow(ClientSession& client, Pool& pool) {
  pool.waiters.push_back(&client);
  ServeWaiters(pool);
}

void ProxyInstance::CancelWait(ClientSession& client, Pool& pool) {
  auto it = std::find(pool.waiters.begin(), pool.waiters.end(), &client);
  if (it != pool.waiters.end()) {
    pool.waiters.erase(it);
    Publish(pool);
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
      break;  // enough servers are on their way
    }
    if (!shared_->TryReserveServer(settings_.max_backend_connections)) {
      if (CloseIdleElsewhere(&pool)) {
        continue;  // its place is free now (unless a waiter of another pool took it)
      }
      AskOtherWorkers(pool);
      break;  // at the limit: wait for a release
    }
    auto server = std::make_unique<ServerConn>(*this, pool, shared_->NextServerId());
    ServerConn* raw = server.get();
    servers_.emplace(raw, std::move(server));
    ++pool.total;
    ++pool.connecting;
    ++stats_.servers_opened;
    raw->Connect();
  }
  Publish(pool);
}

void ProxyInstance::ServeAllWaiters() {
  for (auto& [key, pool] : pools_) {
    if (!pool->waiters.empty()) {
      ServeWaiters(*pool);
    }
  }
}

bool ProxyInstance::CloseIdleElsewhere(const Pool* except) {
  ServerConn* oldest = nullptr;
  for (auto& [key, pool] : pools_) {
    if (pool.get() == except || pool->idle.empty()) {
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
    Publish(server.pool());
  }
}

void ProxyInstance::OnServerLoggedIn(ServerConn& server) {
  --server.pool().connecting;
  OnServerIdle(server);
}

void ProxyInstance::OnServerIdle(ServerConn& server) {
  Pool& pool = server.pool();
  pool.idle.push_back(&server);
  if (pool.waiters.empty() && shared_->multi() && !draining_ && WorkerWaitingFor(pool) >= 0) {
    // Clients of another worker wait for this pool: the server goes to them, once the callback
    // that made it idle has unwound (the server's own code may still run after this returns).
    Publish(pool);
    PostRebalance(pool);
    return;
  }
  ServeWaiters(pool);
  if (pool.waiters.empty() && !draining_) {
    ServeAllWaiters();
    if (shared_->multi() && server.state() == ServerConn::State::kIdle) {
      if (WorkerWaitingFor(pool) >= 0) {
        // A client of this pool began to wait on another worker since the check above: the
        // server goes to it (closing it to make room would cost that client a new login).
        PostRebalance(pool);
      } else if (shared_->total_servers() >= static_cast<int>(settings_.max_backend_connections) &&
                 OtherPoolsWaitElsewhere(pool)) {
        // Still idle, at the limit, and clients of another pool wait on another worker.
        server.Close("closed to make room for another pool");
      }
    }
  }
}

void ProxyInstance::PostRebalance(const Pool& pool) {
  shared_->loop(worker_).Post([shared = shared_, w = worker_, user = pool.user, key = pool.key] {
    if (ProxyInstance* self = shared->instance(w)) {
      self->Rebalance(user, key);
    }
  });
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
  Pool& pool = server.pool();
  RemoveIdle(server);
  shared_->ReleaseServer();
  --pool.total;
  loop_.DeleteLater(std::move(it->second));
  servers_.erase(it);
  Publish(pool);  // a failed server takes its first waiter with it
  if (!draining_) {
    ServeAllWaiters();
  }
  NudgeWaitingWorkers();
}

void ProxyInstance::OnClientClosed(ClientSession& client) {
  auto it = clients_.find(&client);
  if (it == clients_.end()) {
    return;
  }
  loop_.DeleteLater(std::move(clients_.extract(it).value()));
  client_count_.fetch_sub(1, std::memory_order_acq_rel);
  shared_->RemoveClient();
}

void ProxyInstance::RegisterCancelKey(ClientSession& client, ProxyShared::CancelEntry& entry) {
  entry.session = &client;
  entry.home = &client.pool()->cancel_home;
  shared_->RegisterCancelKey(entry);
}

void ProxyInstance::UnregisterCancelKey(const ProxyShared::CancelEntry& entry) {
  shared_->UnregisterCancelKey(entry);
}

void ProxyInstance::ForwardCancel(std::string_view key) {
  auto owner = shared_->FindCancelKey(key);
  if (!owner.has_value()) {
    spdlog::info("proxy={} cancel request with an unknown key ignored", settings_.name);
    return;
  }
  OnWorker(owner->worker, [key = std::string(key)](ProxyInstance& on) {
    if (ClientSession* target = on.CancelTargetHere(key)) {
      target->CancelRunning();
    }
  });
}

ClientSession* ProxyInstance::CancelTargetHere(std::string_view key) const {
  auto owner = shared_->FindCancelKey(key);
  // The client may have gone, or moved its key, since the request was sent here.
  return owner.has_value() && owner->worker == worker_ ? owner->session : nullptr;
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
  auto owner = shared_->FindCancelKeyOf(target_key, asker.startup().user);
  if (!owner.has_value()) {
    return false;
  }
  spdlog::info("conn={} kills {} with key {}", asker.name(),
               whole_connection ? "connection" : "query", target_key);
  if (owner->session == &asker) {
    asker.CancelRunning();  // its own connection stays (the server closes it, if it must)
    return true;
  }
  OnWorker(owner->worker, [key = std::string(target_key), whole_connection](ProxyInstance& on) {
    ClientSession* target = on.CancelTargetHere(key);
    if (target == nullptr) {
      return;
    }
    target->CancelRunning();
    if (whole_connection) {
      target->FailWith(codec::ProxyError::kKilled, "connection was killed");
    }
  });
  return true;
}

void ProxyInstance::OnWorker(int worker, std::function<void(ProxyInstance&)> task) {
  if (worker == worker_) {
    task(*this);
    return;
  }
  shared_->loop(worker).Post([shared = shared_, worker, task = std::move(task)] {
    if (ProxyInstance* target = shared->instance(worker)) {
      task(*target);
    }
  });
}

void ProxyInstance::AskOtherWorkers(Pool& pool) {
  if (!shared_->multi() || pool.asked_elsewhere || draining_) {
    return;
  }
  const int n = shared_->workers();
  int pick = -1;
  for (int i = 1; i < n && pick < 0; ++i) {  // one with an idle server of this pool
    int w = (worker_ + i) % n;
    if (pool.counts->slots[w].idle.load() > 0) {
      pick = w;
    }
  }
  for (int i = 1; i < n && pick < 0; ++i) {  // else one with any idle server, to make room
    int w = (worker_ + i) % n;
    if (shared_->worker_totals(w).idle.load() > 0) {
      pick = w;
    }
  }
  if (pick < 0) {
    return;  // nothing idle anywhere: a release or a close elsewhere comes here by itself
  }
  pool.asked_elsewhere = true;
  OnWorker(pick, [user = pool.user, key = pool.key, to = worker_](ProxyInstance& on) {
    on.GiveServer(user, key, to);
  });
}

void ProxyInstance::GiveServer(const std::string& user, const std::string& key, int to) {
  auto it = pools_.find({user, key});
  const Pool* pool = it != pools_.end() ? it->second.get() : nullptr;
  bool made_room = false;
  if (pool != nullptr && pool->waiters.empty() && !pool->idle.empty()) {
    if (MoveServer(*pool->idle.back(), to)) {
      return;  // the server is the answer (AdoptServer)
    }
    // Idle but not quiet yet: it is still the right answer, so nothing is closed in its place
    // (the asker would log a new server in while this one sits idle); the janitor asks again.
  } else if (!draining_) {
    made_room = CloseIdleElsewhere(pool);
  }
  OnWorker(to,
           [user, key, made_room](ProxyInstance& on) { on.OnAskAnswered(user, key, made_room); });
}

void ProxyInstance::Rebalance(const std::string& user, const std::string& key) {
  auto it = pools_.find({user, key});
  if (it == pools_.end()) {
    return;
  }
  Pool& pool = *it->second;
  while (!pool.idle.empty() && pool.waiters.empty() && !draining_) {
    int to = WorkerWaitingFor(pool);
    if (to < 0 || !MoveServer(*pool.idle.back(), to)) {
      break;
    }
  }
  ServeWaiters(pool);
  if (pool.waiters.empty() && !draining_) {
    ServeAllWaiters();
  }
}

void ProxyInstance::OnAskAnswered(const std::string& user, const std::string& key, bool retry) {
  Pool& pool = PoolFor(user, key);
  pool.asked_elsewhere = false;
  if (retry) {
    ServeWaiters(pool);
  }
}

bool ProxyInstance::MoveServer(ServerConn& server, int to) {
  auto it = servers_.find(&server);
  if (it == servers_.end()) {
    return false;
  }
  int fd = server.LeaveWorker();
  if (fd < 0) {
    return false;
  }
  Pool& pool = server.pool();
  RemoveIdle(server);
  --pool.total;
  ServerConn* raw = it->second.release();
  servers_.erase(it);
  spdlog::debug("conn={} pool={} moves to worker {}", raw->name(), pool.name, to);
  // The pool's names go by value: this worker's Pool is not the other thread's to read.
  shared_->loop(to).Post([shared = shared_, to, raw, fd, user = pool.user, key = pool.key] {
    ProxyInstance* target = shared->instance(to);
    if (target == nullptr) {
      ::close(fd);
      delete raw;  // holds no loop handle while it moves
      shared->ReleaseServer();
      return;
    }
    target->AdoptServer(raw, fd, user, key);
  });
  return true;
}

void ProxyInstance::AdoptServer(ServerConn* raw, int fd, const std::string& user,
                                const std::string& key) {
  std::unique_ptr<ServerConn> server(raw);
  Pool& pool = PoolFor(user, key);
  pool.asked_elsewhere = false;
  absl::Status st = server->JoinWorker(*this, pool, fd);
  if (!st.ok()) {
    spdlog::warn("conn={} pool={} could not move to worker {}: {}", raw->name(), pool.name, worker_,
                 st.message());
    shared_->ReleaseServer();
    loop_.DeleteLater(std::move(server));
    ServeWaiters(pool);
    return;
  }
  ++pool.total;
  servers_.emplace(raw, std::move(server));
  OnServerIdle(*raw);
}

int ProxyInstance::WorkerWaitingFor(const Pool& pool) const {
  const int n = shared_->workers();
  for (int i = 1; i < n; ++i) {
    int w = (worker_ + i) % n;
    if (pool.counts->slots[w].waiting.load() > 0) {
      return w;
    }
  }
  return -1;
}

bool ProxyInstance::OtherPoolsWaitElsewhere(const Pool& pool) const {
  for (int w = 0; w < shared_->workers(); ++w) {
    if (w == worker_) {
      continue;
    }
    // The total first: Publish writes the slot before the total, so the slot read after it holds
    // at least this pool's part of what the total counts.
    int all = shared_->worker_totals(w).waiting.load();
    if (all - pool.counts->slots[w].waiting.load() > 0) {
      return true;
    }
  }
  return false;
}

void ProxyInstance::NudgeWaitingWorkers() {
  if (!shared_->multi()) {
    return;
  }
  for (int w = 0; w < shared_->workers(); ++w) {
    if (w != worker_ && shared_->worker_totals(w).waiting.load() > 0) {
      OnWorker(w, [](ProxyInstance& on) { on.ServeAllWaiters(); });
    }
  }
}

void ProxyInstance::Janitor() {
  uint64_t now = now_ms();
  startups_.Sweep();
  if (worker_ == 0) {
    shared_->PruneAuthFailures(now, GuardSettings(settings_));
  }
  // An ask that found nothing (the idle server was taken meanwhile) is asked again here.
  for (auto& [key, pool] : pools_) {
    if (!pool->waiters.empty()) {
      AskOtherWorkers(*pool);
    }
  }
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
  if (!transaction_pooling_) {
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
  for (const auto& client : clients_) {
    clients.push_back(client.get());
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
  for (const auto& client : clients_) {
    clients.push_back(client.get());
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
