#include "proxy/startup_table.h"

#include <string>
#include <tuple>

#include "absl/hash/hash.h"

namespace wirepool::proxy {

size_t StartupTable::Hash::operator()(const Ptr& s) const {
  return absl::Hash<std::tuple<const std::string&, const std::string&, const std::string&,
                               const codec::ParamList&, const codec::ParamList&>>{}(
      std::tie(s->user, s->database, s->pool_key, s->params, s->login_options));
}

bool StartupTable::Eq::operator()(const Ptr& a, const Ptr& b) const {
  return a->user == b->user && a->database == b->database && a->pool_key == b->pool_key &&
         a->params == b->params && a->login_options == b->login_options;
}

StartupTable::Ptr StartupTable::Intern(Ptr startup) {
  return *set_.insert(std::move(startup)).first;
}

void StartupTable::Sweep() {
  for (auto it = set_.begin(); it != set_.end();) {
    if (it->use_count() == 1) {
      set_.erase(it++);  // only the table holds it
    } else {
      ++it;
    }
  }
}

}  // namespace wirepool::proxy
