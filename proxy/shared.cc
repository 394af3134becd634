#include "proxy/shared.h"

#include "core/strings.h"

namespace wirepool::proxy {

ProxyShared::ProxyShared(int workers)
    : loops_(static_cast<size_t>(workers), nullptr),
      instances_(static_cast<size_t>(workers), nullptr) {}

bool ProxyShared::TryReserveServer(uint32_t max) {
  int current = total_servers_.load(std::memory_order_acquire);
  while (current < static_cast<int>(max)) {
    if (total_servers_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel)) {
      return true;
    }
  }
  return false;
}

PoolCounts& ProxyShared::CountsFor(const std::string& user, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = counts_[{user, key}];
  if (slot == nullptr) {
    slot = std::make_unique<PoolCounts>();
  }
  return *slot;
}

void ProxyShared::RegisterCancelKey(const CancelEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cancel_keys_.find(std::string_view(entry.key));
  if (it != cancel_keys_.end()) {
    cancel_keys_.erase(it);
  }
  cancel_keys_.insert(&entry);
}

void ProxyShared::UnregisterCancelKey(const CancelEntry& entry) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cancel_keys_.find(std::string_view(entry.key));
  if (it != cancel_keys_.end() && *it == &entry) {
    cancel_keys_.erase(it);
  }
}

std::optional<ProxyShared::CancelOwner> ProxyShared::FindCancelKey(std::string_view key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cancel_keys_.find(key);
  if (it == cancel_keys_.end()) {
    return std::nullopt;
  }
  return CancelOwner{(*it)->home->worker, (*it)->session};
}

std::optional<ProxyShared::CancelOwner> ProxyShared::FindCancelKeyOf(std::string_view key,
                                                                     std::string_view user) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = cancel_keys_.find(key);
  if (it == cancel_keys_.end() || (*it)->home->user != user) {
    return std::nullopt;
  }
  return CancelOwner{(*it)->home->worker, (*it)->session};
}

uint64_t ProxyShared::AuthBannedForMs(std::string_view host, uint64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mu_);
  return auth_guard_.BannedForMs(host, now_ms);
}

bool ProxyShared::RecordAuthFailure(std::string_view host, uint64_t now_ms,
                                    const AuthGuardSettings& s) {
  std::lock_guard<std::mutex> lock(mu_);
  return auth_guard_.RecordFailure(host, now_ms, s);
}

void ProxyShared::PruneAuthFailures(uint64_t now_ms, const AuthGuardSettings& s) {
  std::lock_guard<std::mutex> lock(mu_);
  auth_guard_.Prune(now_ms, s);
}

void ProxyShared::RememberScramClientKey(const std::string& user, std::string client_key) {
  std::lock_guard<std::mutex> lock(mu_);
  scram_client_keys_[user] = std::move(client_key);
}

std::string ProxyShared::ScramClientKey(const std::string& user) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = scram_client_keys_.find(user);
  return it == scram_client_keys_.end() ? std::string() : it->second;
}

std::shared_ptr<const codec::ParamList> ProxyShared::server_params() const {
  std::lock_guard<std::mutex> lock(mu_);
  return server_params_;
}

void ProxyShared::SetServerParams(const codec::ParamList& params, bool only_if_unknown) {
  auto list = std::make_shared<const codec::ParamList>(params);
  std::lock_guard<std::mutex> lock(mu_);
  if (only_if_unknown && server_params_ != nullptr) {
    return;
  }
  server_params_ = std::move(list);
}

}  // namespace wirepool::proxy
