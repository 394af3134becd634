#pragma once

// Failed logins per source address. Each failure costs its client a delay (a timer: the error is
// held back, the loop never sleeps), and an address that fails `limit` times, with no pause as
// long as the ban between two failures, is refused for the ban's length. The table forgets quiet
// addresses and is bounded, so a flood of addresses cannot grow it without end.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace wirepool::proxy {

struct AuthGuardSettings {
  absl::Duration delay;  // 0: none
  uint32_t limit = 0;    // 0: no ban
  absl::Duration ban;
};

class AuthGuard {
 public:
  static constexpr size_t kMaxEntries = 100000;

  // How long `host` is still refused, in milliseconds; 0 when it is not.
  uint64_t BannedForMs(std::string_view host, uint64_t now_ms) const;
  // Records a failure from `host`; true when this one starts a ban.
  bool RecordFailure(std::string_view host, uint64_t now_ms, const AuthGuardSettings& settings);
  // Forgets addresses that are neither banned nor failed within a ban's length.
  void Prune(uint64_t now_ms, const AuthGuardSettings& settings);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t failures = 0;
    uint64_t last_ms = 0;
    uint64_t banned_until_ms = 0;
  };
  absl::flat_hash_map<std::string, Entry> entries_;
};

}  // namespace wirepool::proxy
