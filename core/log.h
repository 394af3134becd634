#pragma once

// Logging goes to stderr through spdlog, as text or as one JSON object per line. Every line about
// a connection carries its id (`conn=c42` / `conn=s7`) so one client's story can be grepped.

#include <string_view>

#include "absl/status/status.h"
#include "core/strings.h"
#include "spdlog/spdlog.h"

namespace wirepool::core {

enum class LogFormat { kText, kJson };

absl::Status InitLogging(std::string_view level, LogFormat format);
absl::Status SetLogLevel(std::string_view level);

}  // namespace wirepool::core
