#pragma once

// The startup packets of one worker's logged-in clients, one copy per distinct packet: clients
// that log in alike (most of an application's connections do) share it instead of holding a copy
// each. Single-threaded, like the worker that owns it.

#include <cstddef>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "codecs/api/codec.h"

namespace wirepool::proxy {

class StartupTable {
 public:
  using Ptr = std::shared_ptr<const codec::StartupInfo>;

  // The table's copy equal to `startup`; `startup` itself becomes it if there is none.
  Ptr Intern(Ptr startup);
  // Drops the copies no client holds any more (the janitor's run).
  void Sweep();
  size_t size() const { return set_.size(); }

 private:
  struct Hash {
    size_t operator()(const Ptr& s) const;
  };
  struct Eq {
    bool operator()(const Ptr& a, const Ptr& b) const;
  };
  absl::flat_hash_set<Ptr, Hash, Eq> set_;
};

}  // namespace wirepool::proxy
