// wirepool: a wire-protocol-aware connection pooler for PostgreSQL (and more to come).

#include <cstdio>
#include <cstring>
#include <string>

#include "core/log.h"
#include "core/strings.h"
#include "proxy/runtime.h"
#include "spdlog/spdlog.h"

namespace {

constexpr char kUsage[] =
    "usage: wirepool -c FILE [--check] [--log-format text|json]\n"
    "       wirepool --version\n"
    "\n"
    "  -c, --config FILE   the YAML config file\n"
    "  --check             validate the config file, print every error, and exit\n"
    "  --log-format FMT    text (default) or json, one object per line on stderr\n"
    "  --version           print the version and exit\n"
    "\n"
    "signals: SIGHUP reloads users and limits, SIGTERM drains, SIGINT exits at once\n";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  wirepool::core::LogFormat format = wirepool::core::LogFormat::kText;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if ((arg == "-c" || arg == "--config") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--check") {
      check = true;
    } else if (arg == "--log-format" && i + 1 < argc) {
      std::string f = argv[++i];
      if (f == "json") {
        format = wirepool::core::LogFormat::kJson;
      } else if (f != "text") {
        std::fprintf(stderr, "unknown log format '%s' (text or json)\n", f.c_str());
        return 2;
      }
    } else if (arg == "--version") {
      std::printf("wirepool %s\n", WIREPOOL_VERSION);
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  auto settings = wirepool::config::LoadFile(config_path, wirepool::proxy::DefaultLoadOptions());
  if (!settings.ok()) {
    std::fprintf(stderr, "%s: invalid config:\n%s\n", config_path.c_str(),
                 std::string(settings.status().message()).c_str());
    return 1;
  }
  if (check) {
    std::printf("%s: config is valid (%zu users, %zu proxies)\n", config_path.c_str(),
                settings->users.size(), settings->proxies.size());
    return 0;
  }
  absl::Status st = wirepool::core::InitLogging(settings->log_level, format);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 1;
  }
  spdlog::info("wirepool {} starting with {}", WIREPOOL_VERSION, config_path);
  wirepool::proxy::Runtime runtime(config_path);
  st = runtime.Start(*settings);
  if (!st.ok()) {
    spdlog::critical("cannot start: {}", st.message());
    return 1;
  }
  return runtime.Run();
}
