#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "codecs/api/codec.h"

namespace wirepool::codec {

// Protocols by name. Built-in codecs register here at startup; loadable plugins (a later issue)
// will register through the same call.
class Registry {
 public:
  absl::Status Register(ProtocolPtr protocol);
  absl::StatusOr<ProtocolPtr> Find(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  absl::flat_hash_map<std::string, ProtocolPtr> protocols_;
};

}  // namespace wirepool::codec
