#pragma once

// One configured proxy: its listener, its users, its pools (one per user × database for
// PostgreSQL — the key is whatever the protocol cannot change on a live connection), its limits,
// and the routing between waiting clients and server connections.

#include <netinet/in.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "codecs/api/codec.h"
#include "core/loop.h"
#include "core/tcp.h"
#include "core/timer.h"
#include "proto/config_loader.h"
#include "proxy/auth_guard.h"
#include "proxy/tls_contexts.h"
#include "proxy/users.h"

namespace wirepool::proxy {

class ClientSession;
class ServerConn;

struct Pool {
  std::string name;  // "proxy/user/key" (PostgreSQL: the database), for logs and errors
  std::string user;
  std::string key;
  std::vector<ServerConn*> idle;       // most recently used last
  std::deque<ClientSession*> waiters;  // FIFO
  int connecting = 0;                  // servers being set up for waiters
  int total = 0;                       // every open server of this pool
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
                UserTablePtr users);
  ~ProxyInstance();

  absl::Status Start();
  // Applies what can change on a live proxy; returns the names of settings that need a restart.
  std::vector<std::string> Reload(const config::ProxySettings& settings, UserTablePtr users);
  // Stops accepting; clients between transactions are closed as they become idle.
  void BeginDrain();
  bool drained() const { return clients_.empty(); }
  void CloseAll(std::string_view reason);

  // For sessions and servers.
  uv_loop_t* uv_loop() { return loop_.get(); }
  core::EventLoop& loop() { return loop_; }
  const codec::Protocol& protocol() const { return *protocol_; }
  const config::ProxySettings& settings() const { return settings_; }
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
  // What the last server login reported (server version, parameters), for new clients.
  const std::shared_ptr<const codec::ParamList>& server_params() const { return server_params_; }
  void set_server_params(const codec::ParamList& params) {
    server_params_ = std::make_shared<const codec::ParamList>(params);
  }
  void Borrow(ClientSession& client, Pool& pool);
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

  void RegisterCancelKey(const std::string& key, ClientSession& client);
  void UnregisterCancelKey(const std::string& key);
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
  void Accept(uv_stream_t* server);
  // Learns the backend's parameters before the first client needs them.
  void Probe();
  void ServeWaiters(Pool& pool);
  void ServeAllWaiters();
  bool CloseIdleElsewhere(const Pool& except);
  void RemoveIdle(ServerConn& server);
  void Janitor();
  // The once-a-minute stats line (pins and unpins by reason), when something changed.
  void LogStats();
  void DrainStep();

  core::EventLoop& loop_;
  config::ProxySettings settings_;
  codec::ProtocolPtr protocol_;
  UserTablePtr users_;
  sockaddr_storage backend_address_{};
  TlsContexts tls_;
  AuthGuard auth_guard_;
  absl::flat_hash_map<std::string, std::string> scram_client_keys_;  // by user name
  std::unique_ptr<core::TcpListener> listener_;
  core::Timer janitor_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Pool>> pools_;
  absl::flat_hash_map<ClientSession*, std::unique_ptr<ClientSession>> clients_;
  absl::flat_hash_map<ServerConn*, std::unique_ptr<ServerConn>> servers_;
  absl::flat_hash_map<std::string, ClientSession*> cancel_keys_;
  uint64_t next_client_id_ = 1;
  uint64_t next_server_id_ = 1;
  int total_servers_ = 0;
  bool draining_ = false;
  ProxyStats stats_;
  std::shared_ptr<const codec::ParamList> server_params_;
  uint64_t last_stats_ms_ = 0;
  std::string last_stats_line_ = "pins: none; unpins: none";
  std::shared_ptr<ProxyInstance*> alive_ = std::make_shared<ProxyInstance*>(this);
};

}  // namespace wirepool::proxy
