#include "proxy/auth_guard.h"

#include "core/strings.h"

namespace wirepool::proxy {

uint64_t AuthGuard::BannedForMs(std::string_view host, uint64_t now_ms) const {
  auto it = entries_.find(Av(host));
  if (it == entries_.end() || it->second.banned_until_ms <= now_ms) {
    return 0;
  }
  return it->second.banned_until_ms - now_ms;
}

bool AuthGuard::RecordFailure(std::string_view host, uint64_t now_ms,
                              const AuthGuardSettings& settings) {
  if (settings.limit == 0) {
    return false;
  }
  const uint64_t ban_ms = static_cast<uint64_t>(absl::ToInt64Milliseconds(settings.ban));
  if (entries_.size() >= kMaxEntries && !entries_.contains(Av(host))) {
    Prune(now_ms, settings);
    if (entries_.size() >= kMaxEntries) {
      return false;  // full of live entries: this address goes uncounted, never unbounded memory
    }
  }
  Entry& e = entries_[Av(host)];
  if (e.failures > 0 && now_ms - e.last_ms > ban_ms) {
    e.failures = 0;  // a quiet spell as long as a ban starts the count afresh
  }
  ++e.failures;
  e.last_ms = now_ms;
  if (e.failures >= settings.limit && e.banned_until_ms <= now_ms) {
    e.banned_until_ms = now_ms + ban_ms;
    e.failures = 0;
    return true;
  }
  return false;
}

void AuthGuard::Prune(uint64_t now_ms, const AuthGuardSettings& settings) {
  const uint64_t ban_ms = static_cast<uint64_t>(absl::ToInt64Milliseconds(settings.ban));
  absl::erase_if(entries_, [&](const auto& item) {
    const Entry& e = item.second;
    return e.banned_until_ms <= now_ms && now_ms - e.last_ms > ban_ms;
  });
}

}  // namespace wirepool::proxy
