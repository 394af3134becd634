#pragma once

// Loads wirepool's YAML config file: the YAML is read into the proto schema of proto/config.proto
// (generically, by reflection, so the schema is the one list of keys; see proto/yaml_to_proto.h),
// then checked and resolved into Settings. Every problem found is reported, not just the first,
// each as `<yaml path> (line N): <message>`, e.g. `proxies[0].pool_mode: required`. Secrets
// (passwords, the contents of password files and variables) never appear in an error message.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/crypto.h"
#include "core/tls.h"

namespace wirepool::config {

struct Endpoint {
  std::string host;  // without the brackets of an IPv6 literal
  uint16_t port = 0;
  // A backend given as an absolute path: the server's Unix-domain socket (host and port unset).
  std::string unix_path;

  bool operator==(const Endpoint&) const = default;
};

struct UserSettings {
  std::string name;
  // Resolved from password / password_env / password_file (a file's trailing newline stripped).
  std::string password;
  std::string backend_user;  // defaults to name
  // Defaults to password; empty with a verifier for a password (SCRAM pass-through).
  std::string backend_password;
  // `password` was a SCRAM-SHA-256 verifier (pg_authid's form): `scram` holds it, `password` is
  // empty, and only PostgreSQL proxies with scram-sha-256 client auth can use the user.
  bool password_is_verifier = false;
  // Derived once at load from password with a fresh random 16-byte salt and 4096 iterations.
  crypto::ScramKeys scram;
  // Session parameters every backend connection of this user starts with, sorted by name.
  std::vector<std::pair<std::string, std::string>> startup_parameters;
};

struct ProxySettings {
  std::string name;
  std::string protocol;
  Endpoint listen;                 // port 0 picks a free one
  std::string pool_mode;           // "transaction" (default) or "session"
  std::vector<Endpoint> backends;  // at least one; the first one is used
  uint32_t max_backend_connections = 20;
  uint32_t max_client_connections = 10000;
  absl::Duration connection_borrow_timeout = absl::Seconds(5);
  absl::Duration server_connect_timeout = absl::Seconds(5);
  absl::Duration server_idle_timeout = absl::Minutes(10);  // 0 = never
  absl::Duration server_lifetime = absl::Hours(1);         // 0 = never
  absl::Duration client_login_timeout = absl::Seconds(15);
  // Transaction pooling: how long a client may sit idle inside a transaction holding a server
  // (0 = no limit), and how many clients of one pool may wait for a server at once.
  absl::Duration idle_transaction_timeout = absl::ZeroDuration();
  uint32_t max_waiting_clients = 10000;
  // As checked by LoadOptions::check_protocol: the protocol's default when the YAML leaves it out.
  std::string client_auth;
  // As checked by LoadOptions::check_server_reset; empty means the protocol's default.
  std::string server_reset;
  // Statements run one by one on every new backend connection after login, and after every reset.
  std::vector<std::string> init_sql;
  // Transaction pooling: pin reasons (as LoadOptions::pin_reasons names them) whose statements
  // are refused instead of pinning.
  std::vector<std::string> pin_as_error;
  // Transaction pooling: prepared statements kept per server connection (0 = no limit).
  uint32_t max_prepared_statements = 200;
  // File paths resolved against the config file's directory; the files themselves are loaded
  // (and checked) when the proxy starts or reloads.
  core::TlsConfig client_tls;  // mode kDisable: no TLS offered
  core::TlsConfig backend_tls;
  // Failed client logins: the delay before the error, and the per-address limit and ban.
  absl::Duration auth_failure_delay = absl::Milliseconds(500);
  uint32_t auth_failure_limit = 20;  // 0: no ban
  absl::Duration auth_failure_ban = absl::Minutes(1);
};

// The most event-loop threads (`workers`) a process runs.
inline constexpr uint32_t kMaxWorkers = 64;

struct Settings {
  uint32_t workers = 1;  // 0: one per core
  absl::Duration shutdown_timeout = absl::Seconds(30);
  std::string log_level = "info";  // trace, debug, info, warn, error
  std::vector<UserSettings> users;
  std::vector<ProxySettings> proxies;
};

struct LoadOptions {
  // Validates a protocol name and a client_auth method for it; returns the effective client_auth
  // (the protocol's default when `client_auth` is empty) or an error whose message is shown to
  // the user. The loader calls it with an empty client_auth first to check the protocol alone.
  // Provided by the proxy (codec registry). When null, any protocol is accepted and client_auth
  // is left as given.
  std::function<absl::StatusOr<std::string>(std::string_view protocol,
                                            std::string_view client_auth)>
      check_protocol;
  // Validates `server_reset` for a protocol that check_protocol accepted; returns the effective
  // value (the protocol's default when empty). When null, the value is left as given.
  std::function<absl::StatusOr<std::string>(std::string_view protocol,
                                            std::string_view server_reset)>
      check_server_reset;
  // The pin reasons `pin_as_error` may name (codecs/api/session.h PinReasonName). When empty, any
  // name is accepted.
  std::vector<std::string> pin_reasons;
};

// Reads and loads a config file. A relative password_file / backend_password_file is taken
// relative to the directory of `path`. Errors: InvalidArgument listing every problem, one per line;
// NotFound / PermissionDenied / Unavailable when the file itself cannot be read.
absl::StatusOr<Settings> LoadFile(const std::string& path, const LoadOptions& options);

// Loads a config from YAML text. A relative password_file is taken relative to the current
// directory. Errors: InvalidArgument listing every problem, one per line.
absl::StatusOr<Settings> LoadString(std::string_view yaml, const LoadOptions& options);

}  // namespace wirepool::config
