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
};

// Users as loaded from the config. Immutable: a reload builds a new table, and a client in the
// middle of logging in keeps the table it started with.
class UserTable {
 public:
  explicit UserTable(const std::vector<config::UserSettings>& users);
  const User* Find(std::string_view name) const;

 private:
  absl::flat_hash_map<std::string, User> users_;
};

using UserTablePtr = std::shared_ptr<const UserTable>;

}  // namespace wirepool::proxy
