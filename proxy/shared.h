#pragma once

// What the workers of one configured proxy share. Each worker (an event-loop thread) runs its own
// ProxyInstance with its own clients, server connections and pools; this is the little that must
// be one for all of them: the global server limit, the ids, where each client's cancel key lives,
// the failed-login table, SCRAM pass-through keys, the backend's parameters, and per pool key how
// many idle servers and waiting clients each worker has (so that an idle server can go to a
// worker whose clients wait). Nothing here is touched per message: ids and cancel keys once per
// connection, the limit once per server opened or closed, the counts once per borrow or release
// (a relaxed store into the worker's own cache line).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "codecs/api/codec.h"
#include "core/loop.h"
#include "proto/config_loader.h"
#include "proxy/auth_guard.h"

namespace wirepool::proxy {

class ClientSession;
class ProxyInstance;

// Per pool key: what each worker has, published by that worker, read by the others.
struct PoolCounts {
  struct alignas(64) Slot {
    std::atomic<int> idle{0};
    std::atomic<int> waiting{0};
  };
  Slot slots[config::kMaxWorkers];
};

class ProxyShared {
 public:
  explicit ProxyShared(int workers);

  int workers() const { return static_cast<int>(loops_.size()); }
  bool multi() const { return loops_.size() > 1; }
  // Set before any loop runs, read-only afterwards: any thread may post to any worker's loop.
  void SetLoop(int worker, core::EventLoop* loop) { loops_[worker] = loop; }
  core::EventLoop& loop(int worker) const { return *loops_[worker]; }
  // Worker `worker`'s instance of this proxy, null once it is gone. Only that worker's thread
  // sets it or reads it (a task posted to its loop looks it up when it runs).
  void SetInstance(int worker, ProxyInstance* instance) { instances_[worker] = instance; }
  ProxyInstance* instance(int worker) const { return instances_[worker]; }
  size_t clients() const { return clients_.load(std::memory_order_acquire); }

  uint64_t NextClientId() { return next_client_id_.fetch_add(1, std::memory_order_relaxed); }
  // Client connections of all workers (max_client_connections): the count after adding one.
  size_t AddClient() { return clients_.fetch_add(1, std::memory_order_acq_rel) + 1; }
  void RemoveClient() { clients_.fetch_sub(1, std::memory_order_acq_rel); }
  uint64_t NextServerId() { return next_server_id_.fetch_add(1, std::memory_order_relaxed); }

  // The global server limit (max_backend_connections): a server may be opened only after a
  // successful reservation, and gives it back when it closes.
  bool TryReserveServer(uint32_t max);
  void ReleaseServer() { total_servers_.fetch_sub(1, std::memory_order_acq_rel); }
  int total_servers() const { return total_servers_.load(std::memory_order_acquire); }

  // Stable for the life of the proxy (pools are never removed).
  PoolCounts& CountsFor(const std::string& user, const std::string& key);
  // Per worker: how many of its idle servers (any pool) and waiting clients (any pool).
  PoolCounts::Slot& worker_totals(int worker) { return worker_totals_.slots[worker]; }

  // A client's cancel key, kept in the client session: the table shared by every worker holds a
  // pointer per client (a per-worker copy of each key and a key and user name per table entry
  // cost over 100 bytes per client). The owner writes it only while it is out of the table;
  // `session` may be used only on `worker`, which takes the entry out before the session goes;
  // `user` is the session's pool's user name (a pool outlives its clients and keeps its name).
  // Where a cancel key leads besides its client: the client's worker, and the pool user it
  // logged in as (a KILL reaches only clients of the asker's user). One per pool on a worker,
  // pointed at by each of its clients' entries.
  struct CancelHome {
    int worker = 0;
    std::string user;
  };
  struct CancelEntry {
    std::string key;
    ClientSession* session = nullptr;
    const CancelHome* home = nullptr;
  };
  struct CancelOwner {
    int worker = 0;
    ClientSession* session = nullptr;
  };
  // Replaces any entry with the same key.
  void RegisterCancelKey(const CancelEntry& entry);
  // Only if `entry` is still the one in the table.
  void UnregisterCancelKey(const CancelEntry& entry);
  std::optional<CancelOwner> FindCancelKey(std::string_view key) const;
  // FindCancelKey, but only a client of `user`.
  std::optional<CancelOwner> FindCancelKeyOf(std::string_view key, std::string_view user) const;

  uint64_t AuthBannedForMs(std::string_view host, uint64_t now_ms) const;
  bool RecordAuthFailure(std::string_view host, uint64_t now_ms, const AuthGuardSettings& s);
  void PruneAuthFailures(uint64_t now_ms, const AuthGuardSettings& s);

  void RememberScramClientKey(const std::string& user, std::string client_key);
  std::string ScramClientKey(const std::string& user) const;

  std::shared_ptr<const codec::ParamList> server_params() const;
  // `only_if_unknown`: the startup probe does not overwrite what a real login reported.
  void SetServerParams(const codec::ParamList& params, bool only_if_unknown);

 private:
  std::vector<core::EventLoop*> loops_;
  std::vector<ProxyInstance*> instances_;
  std::atomic<uint64_t> next_client_id_{1};
  std::atomic<uint64_t> next_server_id_{1};
  std::atomic<int> total_servers_{0};
  std::atomic<size_t> clients_{0};
  PoolCounts worker_totals_;

  mutable std::mutex mu_;  // guards everything below
  std::map<std::pair<std::string, std::string>, std::unique_ptr<PoolCounts>> counts_;
  // Looked up by key (a string_view) without a CancelEntry to compare with.
  struct CancelKeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return absl::Hash<std::string_view>{}(key); }
    size_t operator()(const CancelEntry* e) const { return (*this)(e->key); }
  };
  struct CancelKeyEq {
    using is_transparent = void;
    static std::string_view Key(std::string_view key) { return key; }
    static std::string_view Key(const CancelEntry* e) { return e->key; }
    template <typename A, typename B>
    bool operator()(const A& a, const B& b) const {
      return Key(a) == Key(b);
    }
  };
  absl::flat_hash_set<const CancelEntry*, CancelKeyHash, CancelKeyEq> cancel_keys_;
  AuthGuard auth_guard_;
  absl::flat_hash_map<std::string, std::string> scram_client_keys_;  // by user name
  std::shared_ptr<const codec::ParamList> server_params_;
};

}  // namespace wirepool::proxy
