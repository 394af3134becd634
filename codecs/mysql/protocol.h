#pragma once

#include "codecs/api/registry.h"

namespace wirepool::codec::mysql {

// Registers the built-in MySQL / MariaDB codec under the name "mysql".
absl::Status Register(Registry& registry);

}  // namespace wirepool::codec::mysql
