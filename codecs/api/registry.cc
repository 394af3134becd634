#include "codecs/api/registry.h"
#include "core/strings.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace wirepool::codec {

absl::Status Registry::Register(ProtocolPtr protocol) {
  std::string name(protocol->Name());
  if (protocols_.contains(name)) {
    return absl::AlreadyExistsError(Cat("protocol '", name, "' is already registered"));
  }
  protocols_.emplace(std::move(name), std::move(protocol));
  return absl::OkStatus();
}

absl::StatusOr<ProtocolPtr> Registry::Find(std::string_view name) const {
  auto it = protocols_.find(Av(name));
  if (it == protocols_.end()) {
    return absl::NotFoundError(
        Cat("unknown protocol '", name, "' (available: ", absl::StrJoin(Names(), ", "), ")"));
  }
  return it->second;
}

std::vector<std::string> Registry::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : protocols_) {
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string_view ProxyErrorName(ProxyError e) {
  switch (e) {
    case ProxyError::kProtocolViolation:
      return "protocol_violation";
    case ProxyError::kAuthFailed:
      return "auth_failed";
    case ProxyError::kTooManyClients:
      return "too_many_clients";
    case ProxyError::kPoolTimeout:
      return "pool_timeout";
    case ProxyError::kServerUnavailable:
      return "server_unavailable";
    case ProxyError::kServerLost:
      return "server_lost";
    case ProxyError::kLoginTimeout:
      return "login_timeout";
    case ProxyError::kNotSupported:
      return "not_supported";
    case ProxyError::kShuttingDown:
      return "shutting_down";
    case ProxyError::kKilled:
      return "killed";
    case ProxyError::kIdleTransactionTimeout:
      return "idle_transaction_timeout";
    case ProxyError::kTooManyWaiting:
      return "too_many_waiting";
    case ProxyError::kTlsRequired:
      return "tls_required";
    case ProxyError::kInternal:
      return "internal";
  }
  return "unknown";
}

}  // namespace wirepool::codec
