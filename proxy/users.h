#pragma once

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "codecs/api/codec.h"
#include "proto/config_loader.h"

namespace wirepool::proxy {

struct User {
  codec::UserSecret secret;  // what a client must prove
  std::string backend_user;
  std::string backend_password;
  // Session parameters every backend connection of this user starts with (its baseline).
  codec::ParamList startup_parameters;
  // The password is a SCRAM verifier and no backend_password is set: backend logins reuse the
  // ClientKey a client's proof revealed (ProxyInstance::ScramClientKey).
  bool scram_passthrough = false;
};

// Users as loaded from the config. Immutable: a reload builds a new table, and a client in the
// middle of logging in keeps the table it started with.
class UserTable {
 public:
  explicit UserTable(const std::vector<config::UserSettings>& users);
  const User* Find(std::string_view name) const;
  // The first user of the config (for probing the backend), or nullptr.
  const User* First() const { return first_.empty() ? nullptr : Find(first_); }

 private:
  absl::flat_hash_map<std::string, User> users_;
  std::string first_;
};

using UserTablePtr = std::shared_ptr<const UserTable>;

}  // namespace wirepool::proxy
