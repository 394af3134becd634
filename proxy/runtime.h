#pragma once

// The running process: one worker loop (more arrive with the Performance issue), the proxies of
// the config, and the signals: SIGHUP reloads, SIGTERM drains, SIGINT exits at once.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "codecs/api/registry.h"
#include "core/loop.h"
#include "core/timer.h"
#include "proto/config_loader.h"
#include "proxy/proxy.h"

namespace wirepool::proxy {

// The codecs built into the binary.
const codec::Registry& BuiltinCodecs();
// Config load options that check protocols and auth methods against BuiltinCodecs().
config::LoadOptions DefaultLoadOptions();

class Runtime {
 public:
  explicit Runtime(std::string config_path);
  ~Runtime();

  absl::Status Start(const config::Settings& settings);
  // Runs until the process is told to stop; returns the exit code.
  int Run();

  // Exposed for tests.
  void Reload();
  void Drain();
  void StopNow();
  core::EventLoop& loop() { return *loop_; }

 private:
  void CheckDrained();

  std::string config_path_;
  std::unique_ptr<core::EventLoop> loop_;
  config::Settings settings_;
  std::vector<std::unique_ptr<ProxyInstance>> proxies_;
  std::vector<std::unique_ptr<core::SignalWatcher>> signals_;
  std::unique_ptr<core::Timer> drain_timer_;
  uint64_t drain_deadline_ms_ = 0;
  bool draining_ = false;
};

}  // namespace wirepool::proxy
