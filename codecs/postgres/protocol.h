#pragma once

#include "codecs/api/registry.h"

namespace wirepool::codec::postgres {

// Registers the built-in PostgreSQL codec under the name "postgres".
absl::Status Register(Registry& registry);

}  // namespace wirepool::codec::postgres
