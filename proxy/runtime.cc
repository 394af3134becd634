#include "proxy/runtime.h"
#include "core/strings.h"

#include <algorithm>
#include <csignal>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "codecs/mysql/protocol.h"
#include "codecs/postgres/protocol.h"
#include "core/log.h"
#include "spdlog/spdlog.h"

namespace wirepool::proxy {

const codec::Registry& BuiltinCodecs() {
  static const codec::Registry* registry = [] {
    auto* r = new codec::Registry;
    for (auto registrar : {codec::postgres::Register, codec::mysql::Register}) {
      absl::Status st = registrar(*r);
      if (!st.ok()) {
        spdlog::critical("cannot register a built-in codec: {}", st.message());
      }
    }
    return r;
  }();
  return *registry;
}

config::LoadOptions DefaultLoadOptions() {
  config::LoadOptions options;
  options.check_protocol = [](std::string_view protocol,
                              std::string_view client_auth) -> absl::StatusOr<std::string> {
    auto found = BuiltinCodecs().Find(protocol);
    if (!found.ok()) {
      return found.status();
    }
    const codec::Protocol& p = **found;
    if (client_auth.empty()) {
      return std::string(p.DefaultClientAuth());
    }
    if (!p.SupportsClientAuth(client_auth)) {
      return absl::InvalidArgumentError(
          Cat("client_auth '", client_auth, "' is not supported by protocol '", protocol, "'"));
    }
    return std::string(client_auth);
  };
  options.check_server_reset = [](std::string_view protocol,
                                  std::string_view method) -> absl::StatusOr<std::string> {
    auto found = BuiltinCodecs().Find(protocol);
    if (!found.ok()) {
      return found.status();
    }
    std::vector<std::string_view> methods = (*found)->ServerResetMethods();
    if (method.empty() && !methods.empty()) {
      return std::string(methods.front());
    }
    for (std::string_view m : methods) {
      if (m == method) {
        return std::string(method);
      }
    }
    std::string known;
    for (std::string_view m : methods) {
      known += Cat(known.empty() ? "" : ", ", m);
    }
    return absl::InvalidArgumentError(
        Av(Cat("server_reset '", method, "' is not supported by protocol '", protocol,
               "' (supported: ", known, ")")));
  };
  for (size_t i = 0; i < codec::kPinReasonCount; ++i) {
    options.pin_reasons.emplace_back(codec::PinReasonName(static_cast<codec::PinReason>(i)));
  }
  return options;
}

Runtime::Runtime(std::string config_path) : config_path_(std::move(config_path)) {
  workers_.push_back(std::make_unique<Worker>());
}

Runtime::~Runtime() {
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) {
      // Run() was never reached or returned early: stop the thread before its loop goes.
      worker->loop->Post([w = worker.get()] { StopWorker(*w); });
      worker->thread.join();
    }
  }
  signals_.clear();
  drain_timer_.reset();
  for (auto& worker : workers_) {
    worker->proxies.clear();
    absl::Status st = worker->loop->Close();
    if (!st.ok()) {
      spdlog::error("event loop did not close cleanly: {}", st.message());
    }
  }
}

absl::Status Runtime::Start(const config::Settings& settings) {
  settings_ = settings;
  uint32_t n = settings.workers;
  if (n == 0) {
    n = std::clamp<uint32_t>(std::thread::hardware_concurrency(), 1, config::kMaxWorkers);
  }
  while (workers_.size() < n) {
    workers_.push_back(std::make_unique<Worker>());
  }
  auto users = std::make_shared<const UserTable>(settings.users);
  for (const auto& ps : settings.proxies) {
    auto protocol = BuiltinCodecs().Find(ps.protocol);
    if (!protocol.ok()) {
      return protocol.status();
    }
    auto tls = LoadTlsContexts(ps, (*protocol)->TlsAlpn());
    if (!tls.ok()) {
      return absl::Status(tls.status().code(),
                          Cat("proxy ", ps.name, ": ", tls.status().message()));
    }
    auto shared = std::make_shared<ProxyShared>(static_cast<int>(n));
    for (uint32_t w = 0; w < n; ++w) {
      workers_[w]->proxies.push_back(std::make_unique<ProxyInstance>(
          *workers_[w]->loop, ps, *protocol, users, shared, static_cast<int>(w)));
    }
    for (uint32_t w = 0; w < n; ++w) {
      absl::Status st = workers_[w]->proxies.back()->Start(*tls);
      if (!st.ok()) {
        return absl::Status(st.code(), Cat("proxy ", ps.name, ": ", st.message()));
      }
    }
    shared_.push_back(std::move(shared));
    proxy_names_.push_back(ps.name);
    protocols_.push_back(*protocol);
  }
  uv_loop_t* uv = workers_.front()->loop->get();
  signals_.push_back(std::make_unique<core::SignalWatcher>(uv, SIGHUP, [this] { Reload(); }));
  signals_.push_back(std::make_unique<core::SignalWatcher>(uv, SIGTERM, [this] {
    if (draining_) {
      StopNow();
    } else {
      Drain();
    }
  }));
  signals_.push_back(std::make_unique<core::SignalWatcher>(uv, SIGINT, [this] { StopNow(); }));
  signal(SIGPIPE, SIG_IGN);
  for (size_t w = 1; w < workers_.size(); ++w) {
    Worker* worker = workers_[w].get();
    worker->thread = std::thread([worker] {
      worker->loop->Run();
      absl::Status st = worker->loop->Close();
      if (!st.ok()) {
        spdlog::error("worker event loop did not close cleanly: {}", st.message());
      }
    });
  }
  if (n > 1) {
    spdlog::info("{} workers (event-loop threads)", n);
  }
  return absl::OkStatus();
}

int Runtime::Run() {
  workers_.front()->loop->Run();
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) {
      worker->thread.join();
    }
  }
  spdlog::info("wirepool stopped");
  return 0;
}

void Runtime::ForEachInstance(size_t index, std::function<void(ProxyInstance&)> task) {
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    auto run = [w, index, task] {
      if (index < w->proxies.size() && w->proxies[index] != nullptr) {
        task(*w->proxies[index]);
      }
    };
    if (w == workers_.front().get()) {
      run();
    } else {
      w->loop->Post(std::move(run));
    }
  }
}

void Runtime::Reload() {
  spdlog::info("SIGHUP: reloading {}", config_path_);
  auto loaded = config::LoadFile(config_path_, DefaultLoadOptions());
  if (!loaded.ok()) {
    spdlog::error("reload failed, keeping the running config:\n{}", loaded.status().message());
    return;
  }
  auto users = std::make_shared<const UserTable>(loaded->users);
  for (size_t i = 0; i < proxy_names_.size(); ++i) {
    const config::ProxySettings* next = nullptr;
    for (const auto& ps : loaded->proxies) {
      if (ps.name == proxy_names_[i]) {
        next = &ps;
      }
    }
    if (next == nullptr) {
      spdlog::warn("reload: proxy {} was removed from the config; that needs a restart",
                   proxy_names_[i]);
      continue;
    }
    // Certificates are read once; every worker takes the same contexts.
    auto tls = std::make_shared<const absl::StatusOr<TlsContexts>>(
        LoadTlsContexts(*next, protocols_[i]->TlsAlpn()));
    auto settings = std::make_shared<const config::ProxySettings>(*next);
    ForEachInstance(i, [settings, users, tls](ProxyInstance& proxy) {
      auto restart = proxy.Reload(*settings, users, *tls);
      if (!restart.empty() && proxy.worker() == 0) {
        spdlog::warn("reload: proxy {} changes to {} need a restart and were not applied",
                     settings->name, absl::StrJoin(restart, ", "));
      }
    });
  }
  for (const auto& ps : loaded->proxies) {
    if (std::find(proxy_names_.begin(), proxy_names_.end(), ps.name) == proxy_names_.end()) {
      spdlog::warn("reload: new proxy {} needs a restart and was not started", ps.name);
    }
  }
  if (loaded->workers != settings_.workers) {
    spdlog::warn("reload: workers change needs a restart and was not applied");
  }
  if (loaded->log_level != settings_.log_level) {
    absl::Status st = core::SetLogLevel(loaded->log_level);
    if (!st.ok()) {
      spdlog::error("reload: {}", st.message());
    }
  }
  settings_.users = loaded->users;
  settings_.log_level = loaded->log_level;
  settings_.shutdown_timeout = loaded->shutdown_timeout;
  spdlog::info("reload done: {} users", loaded->users.size());
}

void Runtime::Drain() {
  draining_ = true;
  spdlog::info("SIGTERM: draining (finishing transactions, at most {})",
               absl::FormatDuration(settings_.shutdown_timeout));
  for (size_t i = 0; i < proxy_names_.size(); ++i) {
    ForEachInstance(i, [](ProxyInstance& proxy) { proxy.BeginDrain(); });
  }
  uv_loop_t* uv = workers_.front()->loop->get();
  drain_deadline_ms_ =
      uv_now(uv) + static_cast<uint64_t>(absl::ToInt64Milliseconds(settings_.shutdown_timeout));
  drain_timer_ = std::make_unique<core::Timer>(uv, [this] { CheckDrained(); });
  drain_timer_->StartRepeating(absl::Milliseconds(50));
  CheckDrained();
}

void Runtime::CheckDrained() {
  bool all = true;
  for (auto& shared : shared_) {
    all = all && shared->clients() == 0;
  }
  if (all) {
    spdlog::info("all clients are gone; exiting");
    StopNow();
    return;
  }
  if (uv_now(workers_.front()->loop->get()) >= drain_deadline_ms_) {
    spdlog::warn("shutdown_timeout reached; closing the remaining clients");
    StopNow();
  }
}

void Runtime::StopWorker(Worker& worker) {
  for (auto& proxy : worker.proxies) {
    proxy->CloseAll("terminating connection due to administrator command");
  }
  worker.proxies.clear();
  worker.loop->Stop();
}

void Runtime::StopNow() {
  signals_.clear();
  drain_timer_.reset();
  for (size_t w = 1; w < workers_.size(); ++w) {
    Worker* worker = workers_[w].get();
    worker->loop->Post([worker] { StopWorker(*worker); });
  }
  StopWorker(*workers_.front());
}

}  // namespace wirepool::proxy
