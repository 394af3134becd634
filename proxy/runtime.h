#pragma once

// The running process: `workers` event-loop threads, each with its own instance of every proxy
// of the config (worker 0 is the main thread: it listens and hands accepted sockets out, and
// hears the signals: SIGHUP reloads, SIGTERM drains, SIGINT exits at once).

#include <memory>
#include <string>
#include <thread>
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
  core::EventLoop& loop() { return *workers_.front()->loop; }

 private:
  struct Worker {
    std::unique_ptr<core::EventLoop> loop = std::make_unique<core::EventLoop>();
    // One per configured proxy, in config order; created, used and destroyed on this worker's
    // thread once the threads run.
    std::vector<std::unique_ptr<ProxyInstance>> proxies;
    std::thread thread;  // none for worker 0
  };
  void CheckDrained();
  // Runs `task` with each worker's instance of proxy `index`, on that worker's thread.
  void ForEachInstance(size_t index, std::function<void(ProxyInstance&)> task);
  static void StopWorker(Worker& worker);

  std::string config_path_;
  std::vector<std::unique_ptr<Worker>> workers_;
  config::Settings settings_;
  std::vector<std::shared_ptr<ProxyShared>> shared_;  // per configured proxy
  std::vector<std::string> proxy_names_;
  std::vector<codec::ProtocolPtr> protocols_;
  std::vector<std::unique_ptr<core::SignalWatcher>> signals_;
  std::unique_ptr<core::Timer> drain_timer_;
  uint64_t drain_deadline_ms_ = 0;
  bool draining_ = false;
};

}  // namespace wirepool::proxy
