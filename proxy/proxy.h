#pragma once

// One configured proxy on one worker (event-loop thread): its clients, its server connections,
// its pools (one per user × database for PostgreSQL — the key is whatever the protocol cannot
// change on a live connection), and the routing between waiting clients and server connections.
// Worker 0 also owns the listener and hands accepted sockets to the workers in turn. What the
// workers of a proxy share (the global limit, cancel keys, ...) is in ProxyShared; an idle server
// connection moves to a worker whose clients wait for one (see docs/architecture.md, "Workers").

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "codecs/api/codec.h"
#include "core/deadlines.h"
#include "core/fifo.h"
#include "core/loop.h"
#include "core/tcp.h"
#include "core/timer.h"
#include "proto/config_loader.h"
#include "proxy/auth_guard.h"
#include "proxy/shared.h"
#include "proxy/startup_table.h"
#include "proxy/tls_contexts.h"
#include "proxy/users.h"

namespace wirepool::proxy {

class ClientSession;
struct ClientBusy;
class ServerConn;

struct Pool {
  std::string name;  // "proxy/user/key" (PostgreSQL: the database), for logs and errors
  std::string user;
  std::string key;
  std::vector<ServerConn*> idle;        // most recently used last
  core::Fifo<ClientSession*> waiters;   // first come, first served; no allocation per wait
  int connecting = 0;                   // servers being set up for waiters
  int total = 0;                        // every open server of this pool on this worker
  PoolCounts* counts = nullptr;         // what every worker has of this pool
  ProxyShared::CancelHome cancel_home;  // of this pool's clients' cancel keys
  bool asked_elsewhere = false;         // another worker was asked for a server, no answer yet
};

struct ProxyStats {
  uint64_t clients_accepted = 0;
  uint64_t servers_opened = 0;
  uint64_t servers_reused = 0;
  uint64_t pins[codec::kPinReasonCount] = {};
  uint64_t unpins[codec::kPinReasonCount] = {};
  absl::flat_hash_map<std::string, uint64_t> errors;  // by ProxyErrorName or reason
};

class ProxyInstance {
 public:
  ProxyInstance(core::EventLoop& loop, config::ProxySettings settings, codec::ProtocolPtr protocol,
                UserTablePtr users, std::shared_ptr<ProxyShared> shared, int worker);
  ~ProxyInstance();

  // Worker 0 listens (and probes the backend); every worker runs its janitor.
  absl::Status Start(TlsContexts tls);
  // Applies what can change on a live proxy; returns the names of settings that need a restart.
  // `tls`: the contexts loaded from the new settings, or why they could not be.
  std::vector<std::string> Reload(const config::ProxySettings& settings, UserTablePtr users,
                                  const absl::StatusOr<TlsContexts>& tls);
  // Stops accepting; clients between transactions are closed as they become idle.
  void BeginDrain();
  // Readable from any thread.
  bool drained() const { return client_count_.load(std::memory_order_acquire) == 0; }
  void CloseAll(std::string_view reason);
  int worker() const { return worker_; }
  ProxyShared& shared() { return *shared_; }

  // For sessions and servers.
  uv_loop_t* uv_loop() { return loop_.get(); }
  // Client deadlines (login, borrow, idle in transaction) of this worker.
  core::DeadlineQueue& deadlines() { return deadlines_; }
  // Wraps a callback that may outlive `client` (a cancel's completion): it runs `task` only if
  // the client is still open on this worker (closed clients leave clients_ at once).
  std::function<void()> WhileClientOpen(ClientSession& client,
                                        std::function<void(ClientSession&)> task);
  // The busy parts idle clients gave back (see ClientBusy): null when there is none spare.
  std::unique_ptr<ClientBusy> TakeSpareBusy();
  // Keeps a clean busy part for the next client, up to kSpareBusyKept (then frees it).
  void KeepSpareBusy(std::unique_ptr<ClientBusy> busy);
  core::EventLoop& loop() { return loop_; }
  const codec::Protocol& protocol() const { return *protocol_; }
  const config::ProxySettings& settings() const { return settings_; }
  // pool_mode transaction (it needs a restart to change): asked on every request.
  bool transaction_pooling() const { return transaction_pooling_; }
  const UserTablePtr& users() const { return users_; }
  const sockaddr_storage& backend_address() const { return backend_address_; }
  // The current TLS contexts (null where a leg is disabled); new connections take these.
  const core::TlsContextPtr& client_tls() const { return tls_.client; }
  const core::TlsContextPtr& backend_tls() const { return tls_.backend; }
  uint64_t now_ms() const { return uv_now(const_cast<core::EventLoop&>(loop_).get()); }
  void Random(uint8_t* out, size_t len);
  ProxyStats& stats() { return stats_; }
  void CountError(std::string_view what) { ++stats_.errors[std::string(what)]; }

  Pool& PoolFor(const std::string& user, const std::string& key);
  // The worker's copy of a logged-in client's startup packet: clients that sent the same one
  // (most of an application's connections do) share it instead of holding one each. Copies no
  // client holds any more go at the next janitor run.
  std::shared_ptr<const codec::StartupInfo> InternStartup(
      std::shared_ptr<const codec::StartupInfo> startup);
  // What the last server login reported (server version, parameters), for new clients.
  std::shared_ptr<const codec::ParamList> server_params() const { return shared_->server_params(); }
  void set_server_params(const codec::ParamList& params) {
    shared_->SetServerParams(params, false);
  }
  void Borrow(ClientSession& client, Pool& pool);
  // Clients waiting for `pool`'s key on every worker (as each last published its count).
  size_t WaitingClients(const Pool& pool) const;
  void CancelWait(ClientSession& client, Pool& pool);
  // A server logged in, or was reset: pool it or hand it to a waiter.
  void OnServerLoggedIn(ServerConn& server);
  void OnServerIdle(ServerConn& server);
  void OnServerLoginFailed(ServerConn& server, const codec::WireError& error);
  void OnServerConnectFailed(ServerConn& server, std::string_view why);
  // A new server's setup (startup_parameters, init_sql) failed; `message` is for its first waiter.
  void OnServerSetupFailed(ServerConn& server, std::string_view message);
  // A server is gone (its Close ran); forget it.
  void OnServerClosed(ServerConn& server);
  void OnClientClosed(ClientSession& client);

  // Puts `client`'s cancel key (entry.key, in `entry`, a part of the client) in the shared table.
  void RegisterCancelKey(ClientSession& client, ProxyShared::CancelEntry& entry);
  void UnregisterCancelKey(const ProxyShared::CancelEntry& entry);
  void ForwardCancel(std::string_view key);
  // Cancels what `server` runs, on a side connection; `on_done` (may be null) runs when that is
  // finished, well or not.
  void CancelOn(ServerConn& server, std::function<void()> on_done);
  // Failed logins per source address (auth_failure_*): how long `host` is still refused (0: not),
  // and a failure to count.
  uint64_t AuthBannedForMs(std::string_view host) const;
  // SCRAM pass-through: the ClientKey a client of `user` proved it holds, for backend logins;
  // empty until one has logged in (or when it no longer fits the user's verifier).
  void RememberScramClientKey(const User& user, std::string client_key);
  std::string ScramClientKey(const User& user) const;
  void RecordAuthFailure(std::string_view host);
  // Transaction pooling: a pin set (true) or cleared (false), counted per reason.
  void CountPin(codec::PinReason reason, bool set);
  // A client's request to kill another client's query or connection; false if no such client of
  // the same user exists.
  bool Kill(ClientSession& asker, std::string_view target_key, bool whole_connection);

 private:
  // Worker 0: an accepted socket, for the next worker in turn.
  void Accept(int fd);
  void AcceptHere(int fd);
  // On the worker of the client holding `key`: that client, if it is still here.
  ClientSession* CancelTargetHere(std::string_view key) const;
  // Publishes this worker's idle and waiting counts of `pool` to the other workers.
  void Publish(Pool& pool);
  // Multi-worker: `pool` has waiters and no server can be opened here (the global limit): ask a
  // worker that has an idle server for one (or to close an idle server of another pool).
  void AskOtherWorkers(Pool& pool);
  // Runs on the asked worker: gives `to` an idle server of the pool, or makes room, or neither.
  void GiveServer(const std::string& user, const std::string& key, int to);
  // The answer to AskOtherWorkers: `retry` when room was made (or a server is on its way).
  void OnAskAnswered(const std::string& user, const std::string& key, bool retry);
  // Hands an idle server to worker `to` (whose clients wait); false if it cannot move now. Never
  // from inside one of the server's own callbacks: only from a task posted to this loop.
  bool MoveServer(ServerConn& server, int to);
  // Moves this worker's idle servers of the pool to workers whose clients wait for it.
  void Rebalance(const std::string& user, const std::string& key);
  void PostRebalance(const Pool& pool);  // Rebalance once the current callback has unwound
  void AdoptServer(ServerConn* server, int fd, const std::string& user, const std::string& key);
  // Tells the workers that have waiting clients that a server slot may be free.
  void NudgeWaitingWorkers();
  bool OtherPoolsWaitElsewhere(const Pool& pool) const;  // waiters of other pools, other workers
  // Runs `task` with worker `worker`'s instance of this proxy, on its thread (now, if it is this
  // one); dropped if that instance is gone.
  void OnWorker(int worker, std::function<void(ProxyInstance&)> task);
  // A worker (other than this one) whose clients wait for `pool`'s key, or -1.
  int WorkerWaitingFor(const Pool& pool) const;
  // Learns the backend's parameters before the first client needs them.
  void Probe();
  void ServeWaiters(Pool& pool);
  void ServeAllWaiters();
  // Closes the oldest idle server of a pool other than `except` (null: of any pool).
  bool CloseIdleElsewhere(const Pool* except);
  void RemoveIdle(ServerConn& server);
  void Janitor();
  // The once-a-minute stats line (pins and unpins by reason), when something changed.
  void LogStats();
  void DrainStep();

  core::EventLoop& loop_;
  std::shared_ptr<ProxyShared> shared_;
  int worker_;
  int next_worker_ = 0;  // worker 0: who gets the next accepted socket
  config::ProxySettings settings_;
  const bool transaction_pooling_;
  codec::ProtocolPtr protocol_;
  UserTablePtr users_;
  sockaddr_storage backend_address_{};
  TlsContexts tls_;
  std::unique_ptr<core::TcpListener> listener_;
  core::Timer janitor_;
  core::DeadlineQueue deadlines_;  // before clients_: outlives every client
  // More than the clients busy at once in the steady state (about the pool size plus those
  // waiting), few enough that a burst costs little after it (each one is ~200 bytes).
  static constexpr size_t kSpareBusyKept = 256;
  std::vector<std::unique_ptr<ClientBusy>> spare_busy_;  // after deadlines_: their timers
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pool>> pools_;
  // Found by address (absl hashes a unique_ptr as its pointer): 8 bytes a slot, not 16.
  absl::flat_hash_set<std::unique_ptr<ClientSession>> clients_;
  StartupTable startups_;
  absl::flat_hash_map<ServerConn*, std::unique_ptr<ServerConn>> servers_;
  std::atomic<size_t> client_count_{0};
  bool draining_ = false;
  ProxyStats stats_;
  uint64_t last_stats_ms_ = 0;
  std::string last_stats_line_ = "pins: none; unpins: none";
  std::shared_ptr<ProxyInstance*> alive_ = std::make_shared<ProxyInstance*>(this);
};

}  // namespace wirepool::proxy
