#include "proxy/users.h"
#include "core/strings.h"

namespace wirepool::proxy {

UserTable::UserTable(const std::vector<config::UserSettings>& users) {
  for (const auto& u : users) {
    User user;
    user.secret.name = u.name;
    user.secret.password = u.password;
    user.secret.scram = u.scram;
    user.backend_user = u.backend_user.empty() ? u.name : u.backend_user;
    user.backend_password = u.backend_password.empty() ? u.password : u.backend_password;
    user.scram_passthrough = u.password_is_verifier && u.backend_password.empty();
    user.startup_parameters.assign(u.startup_parameters.begin(), u.startup_parameters.end());
    if (first_.empty()) {
      first_ = u.name;
    }
    users_.emplace(u.name, std::move(user));
  }
}

const User* UserTable::Find(std::string_view name) const {
  auto it = users_.find(Av(name));
  return it == users_.end() ? nullptr : &it->second;
}

}  // namespace wirepool::proxy
