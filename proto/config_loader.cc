#include "proto/config_loader.h"

#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "core/strings.h"
#include "proto/config.pb.h"
#include "proto/yaml_to_proto.h"

namespace wirepool::config {
namespace {

constexpr int kScramIterations = 4096;
constexpr size_t kScramSaltBytes = 16;
constexpr absl::Duration kMaxClientLoginTimeout = absl::Minutes(15);
constexpr size_t kMaxConfigFileBytes = 16 << 20;
constexpr size_t kMaxSecretFileBytes = 64 << 10;

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::generic_category().message(err));
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// Reads a whole file of at most `max_bytes`.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path, size_t max_bytes) {
  const std::string what = absl::StrCat("cannot read '", path, "'");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return ErrnoStatus(errno, what);
  }
  std::string data;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0 && data.size() <= max_bytes) {
    data.append(buffer, n);
  }
  const bool failed = std::ferror(file) != 0;
  const int err = errno;
  std::fclose(file);
  if (failed) {
    return ErrnoStatus(err, what);
  }
  if (data.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": larger than ", max_bytes, " bytes"));
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Semantic checks: proto -> Settings.

absl::Duration FromProto(const google::protobuf::Duration& duration) {
  return absl::Seconds(duration.seconds()) + absl::Nanoseconds(duration.nanos());
}

std::string FormatEndpoint(const Endpoint& endpoint) {
  if (absl::StrContains(endpoint.host, ':')) {
    return absl::StrCat("[", endpoint.host, "]:", endpoint.port);
  }
  return absl::StrCat(endpoint.host, ":", endpoint.port);
}

// A backend's Unix-domain socket, given by its absolute path.
absl::StatusOr<Endpoint> ParseUnixPath(absl::string_view text) {
  if (!absl::StartsWith(text, "/")) {
    return absl::InvalidArgumentError("a Unix socket path must be absolute (start with /)");
  }
  constexpr size_t kMaxPath = sizeof(sockaddr_un::sun_path) - 1;
  if (text.size() > kMaxPath) {
    return absl::InvalidArgumentError(
        absl::StrCat("a Unix socket path has at most ", kMaxPath, " bytes"));
  }
  Endpoint endpoint;
  endpoint.unix_path = std::string(text);
  return endpoint;
}

// Parses "host:port" or "[ipv6]:port"; on failure returns the reason.
absl::StatusOr<Endpoint> ParseEndpoint(absl::string_view text, uint32_t min_port) {
  absl::string_view host;
  absl::string_view port;
  if (absl::StartsWith(text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("missing ']' after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 1);
    if (!absl::ConsumePrefix(&port, ":")) {
      return absl::InvalidArgumentError("expected ':' and a port after ']'");
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError("expected host:port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (absl::StrContains(host, ':')) {
      return absl::InvalidArgumentError("write an IPv6 address in brackets, such as [::1]:6432");
    }
  }
  if (host.empty()) {
    return absl::InvalidArgumentError("missing host");
  }
  if (std::any_of(host.begin(), host.end(), [](char c) {
        return absl::ascii_isspace(static_cast<unsigned char>(c)) || c == '[' || c == ']' ||
               c == '/';
      })) {
    return absl::InvalidArgumentError("invalid host");
  }
  uint32_t value = 0;
  const bool digits =
      !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
        return absl::ascii_isdigit(static_cast<unsigned char>(c));
      });
  if (!digits || !absl::SimpleAtoi(port, &value) || value < min_port || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("the port must be a number from ", min_port, " to 65535"));
  }
  Endpoint endpoint;
  endpoint.host = std::string(host);
  endpoint.port = static_cast<uint16_t>(value);
  return endpoint;
}

// The three ways of giving one secret: inline, from an environment variable, from a file.
struct SecretForms {
  absl::string_view key;               // "password" or "backend_password"
  const std::string* value = nullptr;  // each null when not set in the YAML
  const std::string* env = nullptr;
  const std::string* file = nullptr;
};

const std::string* IfSet(bool has, const std::string& value) { return has ? &value : nullptr; }

// A startup parameter's name: a setting's name as both protocols spell them (a PostgreSQL
// custom setting has a dot, `app.tenant`), and none of the PostgreSQL startup packet's own keys.
absl::Status CheckParameterName(absl::string_view name) {
  const bool plain =
      !name.empty() && !absl::ascii_isdigit(static_cast<unsigned char>(name[0])) &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
      });
  if (!plain) {
    return absl::InvalidArgumentError(
        "not a parameter name (letters, digits, '_' and '.', not starting with a digit)");
  }
  static constexpr absl::string_view kReserved[] = {"user", "database", "replication", "options",
                                                    "schema"};
  for (absl::string_view reserved : kReserved) {
    if (absl::EqualsIgnoreCase(name, reserved)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", reserved,
          "' is part of the login, not a session parameter (give each setting its own key)"));
    }
  }
  return absl::OkStatus();
}

class Validator {
 public:
  Validator(YamlErrors* errors, const LoadOptions& options, std::filesystem::path base_dir)
      : errors_(*errors), options_(options), base_dir_(std::move(base_dir)) {}

  Settings Run(const Config& config) {
    Settings settings;
    if (config.has_workers()) {
      if (config.workers() > kMaxWorkers) {
        errors_.Add("workers", absl::StrCat(config.workers(), " is more than the ", kMaxWorkers,
                                            " event-loop threads wirepool runs"));
      }
      settings.workers = config.workers();  // 0: one per core, decided at start
    }
    if (config.has_shutdown_timeout()) {
      settings.shutdown_timeout = FromProto(config.shutdown_timeout());
    }
    if (config.has_log_level()) {
      static constexpr std::string_view kLevels[] = {"trace", "debug", "info", "warn", "error"};
      if (std::find(std::begin(kLevels), std::end(kLevels), config.log_level()) ==
          std::end(kLevels)) {
        errors_.Add("log_level", absl::StrCat("unknown level '", config.log_level(),
                                              "' (expected trace, debug, info, warn or error)"));
      }
      settings.log_level = config.log_level();
    }

    absl::flat_hash_map<std::string, int> user_index;
    for (int i = 0; i < config.users_size(); ++i) {
      const std::string path = absl::StrCat("users[", i, "]");
      settings.users.push_back(ResolveUser(config.users(i), path));
      CheckUnique("user", "users", settings.users.back().name, i, path, &user_index);
    }

    if (config.proxies_size() == 0) {
      errors_.Add("proxies", "at least one proxy is required");
    }
    CheckMysqlParameterNames(config);
    CheckVerifierUsers(config, settings);
    absl::flat_hash_map<std::string, int> proxy_index;
    absl::flat_hash_map<std::string, int> listen_index;
    for (int i = 0; i < config.proxies_size(); ++i) {
      const std::string path = absl::StrCat("proxies[", i, "]");
      settings.proxies.push_back(ResolveProxy(config.proxies(i), path));
      const ProxySettings& proxy = settings.proxies.back();
      CheckUnique("proxy", "proxies", proxy.name, i, path, &proxy_index);
      if (!proxy.listen.host.empty() && proxy.listen.port != 0) {
        auto [it, inserted] = listen_index.emplace(FormatEndpoint(proxy.listen), i);
        if (!inserted) {
          errors_.Add(path + ".listen",
                      absl::StrCat(it->first, " is already the listen address of proxies[",
                                   it->second, "]"));
        }
      }
    }
    return settings;
  }

 private:
  // A verifier proves SCRAM-SHA-256 logins only: no md5 and no MySQL method can check a password
  // against it.
  void CheckVerifierUsers(const Config& config, const Settings& settings) {
    for (size_t u = 0; u < settings.users.size(); ++u) {
      if (!settings.users[u].password_is_verifier) {
        continue;
      }
      for (int i = 0; i < config.proxies_size(); ++i) {
        const Proxy& proxy = config.proxies(i);
        if (proxy.protocol() == "mysql" ||
            (proxy.protocol() == "postgres" && proxy.client_auth() == "md5")) {
          errors_.Add(absl::StrCat("users[", u, "].password"),
                      absl::StrCat("a SCRAM-SHA-256 verifier only serves scram-sha-256 client "
                                   "auth, which proxies[",
                                   i, "] (", proxy.name(), ") does not use"));
        }
      }
    }
  }

  // MySQL system variables have no dot in their names; a PostgreSQL custom setting does.
  void CheckMysqlParameterNames(const Config& config) {
    int mysql = -1;
    for (int i = 0; i < config.proxies_size() && mysql < 0; ++i) {
      if (config.proxies(i).protocol() == "mysql") {
        mysql = i;
      }
    }
    if (mysql < 0) {
      return;
    }
    for (int i = 0; i < config.users_size(); ++i) {
      std::vector<std::string> names;
      for (const auto& [name, value] : config.users(i).startup_parameters()) {
        names.push_back(name);
      }
      std::sort(names.begin(), names.end());
      for (const std::string& name : names) {
        if (absl::StrContains(name, '.')) {
          errors_.Add(absl::StrCat("users[", i, "].startup_parameters.", name),
                      absl::StrCat("not a MySQL system variable name (proxies[", mysql,
                                   "] is a mysql proxy)"));
        }
      }
    }
  }

  void CheckUnique(absl::string_view kind, absl::string_view list, const std::string& name,
                   int index, const std::string& path,
                   absl::flat_hash_map<std::string, int>* seen) {
    if (name.empty()) {
      errors_.Add(path + ".name", "required");
      return;
    }
    auto [it, inserted] = seen->emplace(name, index);
    if (!inserted) {
      errors_.Add(path + ".name", absl::StrCat("duplicate ", kind, " name '", name, "' (also ",
                                               list, "[", it->second, "])"));
    }
  }

  UserSettings ResolveUser(const User& user, const std::string& path) {
    UserSettings settings;
    settings.name = user.name();
    std::optional<std::string> password =
        ResolveSecret(path,
                      {"password", IfSet(user.has_password(), user.password()),
                       IfSet(user.has_password_env(), user.password_env()),
                       IfSet(user.has_password_file(), user.password_file())},
                      /*required=*/true);
    if (password.has_value()) {
      settings.password = std::move(*password);
    }
    if (absl::StartsWith(settings.password, Av(crypto::kScramVerifierPrefix))) {
      std::optional<crypto::ScramKeys> keys = crypto::ParseScramVerifier(settings.password);
      if (!keys.has_value()) {
        // Never the value itself: it is a secret.
        errors_.Add(path + ".password",
                    "starts like a SCRAM-SHA-256 verifier but is not a valid one (expected "
                    "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)");
      } else {
        settings.scram = std::move(*keys);
        settings.password_is_verifier = true;
      }
      settings.password.clear();
    }
    settings.backend_user = user.name();
    if (user.has_backend_user()) {
      if (user.backend_user().empty()) {
        errors_.Add(path + ".backend_user", "must not be empty");
      }
      settings.backend_user = user.backend_user();
    }
    std::optional<std::string> backend_password = ResolveSecret(
        path,
        {"backend_password", IfSet(user.has_backend_password(), user.backend_password()),
         IfSet(user.has_backend_password_env(), user.backend_password_env()),
         IfSet(user.has_backend_password_file(), user.backend_password_file())},
        /*required=*/false);
    settings.backend_password =
        backend_password.has_value() ? std::move(*backend_password) : settings.password;
    if (backend_password.has_value() &&
        absl::StartsWith(settings.backend_password, Av(crypto::kScramVerifierPrefix))) {
      errors_.Add(path + ".backend_password",
                  "a SCRAM verifier cannot log in to a backend: give the password, or leave "
                  "backend_password out for SCRAM pass-through");
    }
    // A proto map has no order: by name, so that settings and errors come out the same each time.
    std::vector<std::pair<std::string, std::string>> parameters(user.startup_parameters().begin(),
                                                                user.startup_parameters().end());
    std::sort(parameters.begin(), parameters.end());
    for (const auto& [name, value] : parameters) {
      const std::string where = absl::StrCat(path, ".startup_parameters.", name);
      if (absl::Status st = CheckParameterName(name); !st.ok()) {
        errors_.Add(where, st.message());
      } else if (absl::StrContains(value, '\0')) {
        errors_.Add(where, "the value must not hold a NUL byte");
      } else {
        settings.startup_parameters.emplace_back(name, value);
      }
    }
    return settings;
  }

  // Returns the secret from the one form of it that is set; nullopt when none is (an error if
  // `required`) or on error. A secret never goes into a message.
  std::optional<std::string> ResolveSecret(const std::string& path, const SecretForms& forms,
                                           bool required) {
    const int count = (forms.value != nullptr) + (forms.env != nullptr) + (forms.file != nullptr);
    const std::string choices =
        absl::StrCat(forms.key, ", ", forms.key, "_env, ", forms.key, "_file");
    if (count == 0) {
      if (required) {
        errors_.Add(path, absl::StrCat("one of ", choices, " is required"));
      }
      return std::nullopt;
    }
    if (count > 1) {
      errors_.Add(path, absl::StrCat("only one of ", choices, " may be set"));
      return std::nullopt;
    }
    std::string where;
    std::string secret;
    if (forms.value != nullptr) {
      where = absl::StrCat(path, ".", forms.key);
      secret = *forms.value;
    } else if (forms.env != nullptr) {
      where = absl::StrCat(path, ".", forms.key, "_env");
      if (forms.env->empty()) {
        errors_.Add(where, "must name an environment variable");
        return std::nullopt;
      }
      const char* value = std::getenv(forms.env->c_str());
      if (value == nullptr) {
        errors_.Add(where, absl::StrCat("environment variable '", *forms.env, "' is not set"));
        return std::nullopt;
      }
      secret = value;
    } else {
      where = absl::StrCat(path, ".", forms.key, "_file");
      if (forms.file->empty()) {
        errors_.Add(where, "must name a file");
        return std::nullopt;
      }
      std::filesystem::path file(*forms.file);
      if (file.is_relative() && !base_dir_.empty()) {
        file = base_dir_ / file;
      }
      absl::StatusOr<std::string> contents = ReadWholeFile(file.string(), kMaxSecretFileBytes);
      if (!contents.ok()) {
        errors_.Add(where, contents.status().message());
        return std::nullopt;
      }
      secret = std::move(*contents);
      // `echo secret > file` leaves a newline that is no part of the secret.
      while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) {
        secret.pop_back();
      }
    }
    if (secret.empty()) {
      errors_.Add(where, absl::StrCat(forms.key, " is empty"));
      return std::nullopt;
    }
    return secret;
  }

  ProxySettings ResolveProxy(const Proxy& proxy, const std::string& path) {
    ProxySettings settings;
    settings.name = proxy.name();
    settings.protocol = proxy.protocol();
    CheckProtocol(proxy, path, &settings);

    if (proxy.listen().empty()) {
      errors_.Add(path + ".listen", "required (host:port; port 0 picks a free one)");
    } else if (absl::StatusOr<Endpoint> listen = ParseEndpoint(proxy.listen(), 0); !listen.ok()) {
      errors_.Add(path + ".listen", absl::StrCat("invalid address '", proxy.listen(),
                                                 "': ", listen.status().message()));
    } else {
      settings.listen = *std::move(listen);
    }

    settings.pool_mode = proxy.pool_mode().empty() ? "transaction" : proxy.pool_mode();
    if (settings.pool_mode != "session" && settings.pool_mode != "transaction") {
      errors_.Add(path + ".pool_mode", absl::StrCat("unknown pool_mode '", proxy.pool_mode(),
                                                    "' (expected transaction or session)"));
    }
    Timeout(proxy.has_idle_transaction_timeout(), proxy.idle_transaction_timeout(),
            path + ".idle_transaction_timeout", /*zero_ok=*/true,
            &settings.idle_transaction_timeout);
    Limit(proxy.has_max_waiting_clients(), proxy.max_waiting_clients(),
          path + ".max_waiting_clients", &settings.max_waiting_clients);
    if (proxy.has_max_prepared_statements()) {
      settings.max_prepared_statements = proxy.max_prepared_statements();  // 0: no limit
    }
    for (int i = 0; i < proxy.init_sql_size(); ++i) {
      const std::string& sql = proxy.init_sql(i);
      const std::string where = absl::StrCat(path, ".init_sql[", i, "]");
      if (absl::StripAsciiWhitespace(sql).empty()) {
        errors_.Add(where, "empty statement");
      } else if (absl::StrContains(sql, '\0')) {
        errors_.Add(where, "must not hold a NUL byte");
      } else {
        settings.init_sql.push_back(sql);
      }
    }
    CheckPinAsError(proxy, path, &settings);
    ResolveClientTls(proxy, path + ".client_tls", &settings.client_tls);
    ResolveBackendTls(proxy, path + ".backend_tls", &settings.backend_tls);

    if (proxy.backends_size() == 0) {
      errors_.Add(path + ".backends",
                  "at least one backend (host:port, or the path of a Unix socket) is required");
    }
    for (int i = 0; i < proxy.backends_size(); ++i) {
      // host:port never holds a '/': anything that does is meant as a socket's path.
      absl::StatusOr<Endpoint> backend = absl::StrContains(proxy.backends(i), '/')
                                             ? ParseUnixPath(proxy.backends(i))
                                             : ParseEndpoint(proxy.backends(i), 1);
      if (!backend.ok()) {
        errors_.Add(absl::StrCat(path, ".backends[", i, "]"),
                    absl::StrCat("invalid address '", proxy.backends(i),
                                 "': ", backend.status().message()));
        continue;
      }
      settings.backends.push_back(*std::move(backend));
    }
    if (!settings.backends.empty() && !settings.backends.front().unix_path.empty() &&
        settings.backend_tls.mode >= core::TlsMode::kRequire) {
      errors_.Add(path + ".backend_tls.mode",
                  absl::StrCat("mode ", std::string(core::TlsModeName(settings.backend_tls.mode)),
                               " needs TLS, which a Unix socket backend does not use "
                               "(use prefer or disable)"));
    }
    if (settings.backend_tls.server_name.empty() && !settings.backends.empty()) {
      settings.backend_tls.server_name = settings.backends.front().host;
    }

    Limit(proxy.has_max_backend_connections(), proxy.max_backend_connections(),
          path + ".max_backend_connections", &settings.max_backend_connections);
    Limit(proxy.has_max_client_connections(), proxy.max_client_connections(),
          path + ".max_client_connections", &settings.max_client_connections);

    Timeout(proxy.has_connection_borrow_timeout(), proxy.connection_borrow_timeout(),
            path + ".connection_borrow_timeout", /*zero_ok=*/false,
            &settings.connection_borrow_timeout);
    Timeout(proxy.has_server_connect_timeout(), proxy.server_connect_timeout(),
            path + ".server_connect_timeout", /*zero_ok=*/false, &settings.server_connect_timeout);
    Timeout(proxy.has_server_idle_timeout(), proxy.server_idle_timeout(),
            path + ".server_idle_timeout", /*zero_ok=*/true, &settings.server_idle_timeout);
    Timeout(proxy.has_server_lifetime(), proxy.server_lifetime(), path + ".server_lifetime",
            /*zero_ok=*/true, &settings.server_lifetime);
    Timeout(proxy.has_client_login_timeout(), proxy.client_login_timeout(),
            path + ".client_login_timeout", /*zero_ok=*/false, &settings.client_login_timeout);
    if (settings.client_login_timeout > kMaxClientLoginTimeout) {
      errors_.Add(path + ".client_login_timeout", "must be at most 15m");
    }
    Timeout(proxy.has_auth_failure_delay(), proxy.auth_failure_delay(),
            path + ".auth_failure_delay", /*zero_ok=*/true, &settings.auth_failure_delay);
    if (settings.auth_failure_delay >= settings.client_login_timeout) {
      errors_.Add(path + ".auth_failure_delay", "must be shorter than client_login_timeout");
    }
    if (proxy.has_auth_failure_limit()) {
      settings.auth_failure_limit = proxy.auth_failure_limit();  // 0: no ban
    }
    Timeout(proxy.has_auth_failure_ban(), proxy.auth_failure_ban(), path + ".auth_failure_ban",
            /*zero_ok=*/false, &settings.auth_failure_ban);
    return settings;
  }

  std::string TlsFile(const std::string& name) {
    std::filesystem::path file(name);
    if (!name.empty() && file.is_relative() && !base_dir_.empty()) {
      file = base_dir_ / file;
    }
    return file.string();
  }

  // What both legs share: the mode's name, TLS versions, ciphers; files made absolute.
  template <typename Tls>
  void ResolveTlsCommon(const Tls& tls, const std::string& path, core::TlsMode default_mode,
                        core::TlsConfig* out) {
    out->mode = default_mode;
    if (tls.has_mode()) {
      std::optional<core::TlsMode> mode = core::ParseTlsMode(tls.mode());
      if (!mode.has_value()) {
        errors_.Add(path + ".mode",
                    absl::StrCat("unknown mode '", tls.mode(),
                                 "' (expected disable, allow, prefer, require, verify-ca or "
                                 "verify-full)"));
      } else {
        out->mode = *mode;
      }
    }
    out->cert_file = TlsFile(tls.cert_file());
    out->key_file = TlsFile(tls.key_file());
    out->ca_file = TlsFile(tls.ca_file());
    out->ciphers = tls.ciphers();
    if (tls.has_min_version()) {
      if (tls.min_version() != "1.2" && tls.min_version() != "1.3") {
        errors_.Add(path + ".min_version", "must be \"1.2\" or \"1.3\"");
      }
      out->min_version = tls.min_version();
    }
    if (tls.has_cert_file() != tls.has_key_file()) {
      errors_.Add(path, "cert_file and key_file go together");
    }
  }

  void ResolveClientTls(const Proxy& proxy, const std::string& path, core::TlsConfig* out) {
    const ClientTls& tls = proxy.client_tls();
    ResolveTlsCommon(tls, path,
                     tls.has_cert_file() ? core::TlsMode::kPrefer : core::TlsMode::kDisable, out);
    if (out->mode != core::TlsMode::kDisable && !tls.has_cert_file()) {
      errors_.Add(path, absl::StrCat("mode ", Av(core::TlsModeName(out->mode)),
                                     " needs cert_file and key_file"));
    }
    if ((out->mode == core::TlsMode::kVerifyCa || out->mode == core::TlsMode::kVerifyFull) &&
        !tls.has_ca_file()) {
      errors_.Add(path, absl::StrCat("mode ", Av(core::TlsModeName(out->mode)),
                                     " needs ca_file (the CA client certificates must chain to)"));
    }
  }

  void ResolveBackendTls(const Proxy& proxy, const std::string& path, core::TlsConfig* out) {
    const BackendTls& tls = proxy.backend_tls();
    ResolveTlsCommon(tls, path, core::TlsMode::kPrefer, out);
    // verify-full checks the backend's host unless told another name (an address behind NAT).
    out->server_name = tls.server_name();
  }

  void CheckProtocol(const Proxy& proxy, const std::string& path, ProxySettings* settings) {
    const std::string& client_auth = proxy.client_auth();
    if (proxy.protocol().empty()) {
      errors_.Add(path + ".protocol", "required");
      return;
    }
    if (!options_.check_protocol) {
      settings->client_auth = client_auth;
      return;
    }
    // The protocol alone first, so that an error lands on the key that is wrong.
    absl::StatusOr<std::string> effective = options_.check_protocol(proxy.protocol(), "");
    if (!effective.ok()) {
      errors_.Add(path + ".protocol", effective.status().message());
      return;
    }
    if (!client_auth.empty()) {
      effective = options_.check_protocol(proxy.protocol(), client_auth);
      if (!effective.ok()) {
        errors_.Add(path + ".client_auth", effective.status().message());
        return;
      }
    }
    settings->client_auth = *std::move(effective);
    settings->server_reset = proxy.server_reset();
    if (options_.check_server_reset) {
      absl::StatusOr<std::string> reset =
          options_.check_server_reset(proxy.protocol(), proxy.server_reset());
      if (!reset.ok()) {
        errors_.Add(path + ".server_reset", reset.status().message());
        return;
      }
      settings->server_reset = *std::move(reset);
    }
  }

  void CheckPinAsError(const Proxy& proxy, const std::string& path, ProxySettings* settings) {
    const std::vector<std::string>& known = options_.pin_reasons;
    for (int i = 0; i < proxy.pin_as_error_size(); ++i) {
      const std::string& reason = proxy.pin_as_error(i);
      const std::string where = absl::StrCat(path, ".pin_as_error[", i, "]");
      if (!known.empty() && std::find(known.begin(), known.end(), reason) == known.end()) {
        errors_.Add(where, absl::StrCat("unknown pin reason '", reason,
                                        "' (expected one of: ", absl::StrJoin(known, ", "), ")"));
        continue;
      }
      if (std::find(settings->pin_as_error.begin(), settings->pin_as_error.end(), reason) ==
          settings->pin_as_error.end()) {
        settings->pin_as_error.push_back(reason);
      }
    }
    if (!settings->pin_as_error.empty() && settings->pool_mode != "transaction") {
      errors_.Add(path + ".pin_as_error",
                  "applies only to pool_mode transaction (a session keeps its server anyway)");
    }
  }

  void Limit(bool has, uint32_t value, const std::string& path, uint32_t* out) {
    if (!has) {
      return;
    }
    if (value < 1) {
      errors_.Add(path, "must be at least 1");
    }
    *out = value;
  }

  void Timeout(bool has, const google::protobuf::Duration& value, const std::string& path,
               bool zero_ok, absl::Duration* out) {
    if (!has) {
      return;
    }
    *out = FromProto(value);
    if (!zero_ok && *out <= absl::ZeroDuration()) {
      errors_.Add(path, "must be greater than 0");
    }
  }

  YamlErrors& errors_;
  const LoadOptions& options_;
  const std::filesystem::path base_dir_;
};

void DeriveScramKeys(UserSettings* user) {
  std::string salt(kScramSaltBytes, '\0');
  crypto::RandomBytes(reinterpret_cast<uint8_t*>(salt.data()), salt.size());
  user->scram = crypto::DeriveScramKeys(user->password, salt, kScramIterations);
}

absl::StatusOr<Settings> Load(std::string_view yaml, const LoadOptions& options,
                              const std::filesystem::path& base_dir) {
  YamlErrors errors;
  Config config;
  if (absl::Status read = ReadYaml(yaml, config, errors); !read.ok()) {
    return read;
  }

  Settings settings = Validator(&errors, options, base_dir).Run(config);
  if (!errors.empty()) {
    return errors.ToStatus();
  }
  for (UserSettings& user : settings.users) {
    if (!user.password_is_verifier) {
      DeriveScramKeys(&user);
    }
  }
  return settings;
}

}  // namespace

absl::StatusOr<Settings> LoadFile(const std::string& path, const LoadOptions& options) {
  absl::StatusOr<std::string> yaml = ReadWholeFile(path, kMaxConfigFileBytes);
  if (!yaml.ok()) {
    return yaml.status();
  }
  return Load(*yaml, options, std::filesystem::path(path).parent_path());
}

absl::StatusOr<Settings> LoadString(std::string_view yaml, const LoadOptions& options) {
  return Load(yaml, options, std::filesystem::path());
}

}  // namespace wirepool::config