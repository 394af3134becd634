#include "proxy/runtime.h"
#include "core/strings.h"

#include <csignal>

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

Runtime::Runtime(std::string config_path)
    : config_path_(std::move(config_path)), loop_(std::make_unique<core::EventLoop>()) {}

Runtime::~Runtime() {
  proxies_.clear();
  signals_.clear();
  drain_timer_.reset();
  absl::Status st = loop_->Close();
  if (!st.ok()) {
    spdlog::error("event loop did not close cleanly: {}", st.message());
  }
}

absl::Status Runtime::Start(const config::Settings& settings) {
  settings_ = settings;
  auto users = std::make_shared<const UserTable>(settings.users);
  for (const auto& ps : settings.proxies) {
    auto protocol = BuiltinCodecs().Find(ps.protocol);
    if (!protocol.ok()) {
      return protocol.status();
    }
    auto proxy = std::make_unique<ProxyInstance>(*loop_, ps, *protocol, users);
    absl::Status st = proxy->Start();
    if (!st.ok()) {
      return absl::Status(st.code(), Cat("proxy ", ps.name, ": ", st.message()));
    }
    proxies_.push_back(std::move(proxy));
  }
  uv_loop_t* uv = loop_->get();
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
  return absl::OkStatus();
}

int Runtime::Run() {
  loop_->Run();
  spdlog::info("wirepool stopped");
  return 0;
}

void Runtime::Reload() {
  spdlog::info("SIGHUP: reloading {}", config_path_);
  auto loaded = config::LoadFile(config_path_, DefaultLoadOptions());
  if (!loaded.ok()) {
    spdlog::error("reload failed, keeping the running config:\n{}", loaded.status().message());
    return;
  }
  auto users = std::make_shared<const UserTable>(loaded->users);
  for (auto& proxy : proxies_) {
    const config::ProxySettings* next = nullptr;
    for (const auto& ps : loaded->proxies) {
      if (ps.name == proxy->settings().name) {
        next = &ps;
      }
    }
    if (next == nullptr) {
      spdlog::warn("reload: proxy {} was removed from the config; that needs a restart",
                   proxy->settings().name);
      continue;
    }
    auto restart = proxy->Reload(*next, users);
    if (!restart.empty()) {
      spdlog::warn("reload: proxy {} changes to {} need a restart and were not applied", next->name,
                   absl::StrJoin(restart, ", "));
    }
  }
  for (const auto& ps : loaded->proxies) {
    bool known = false;
    for (auto& proxy : proxies_) {
      known = known || proxy->settings().name == ps.name;
    }
    if (!known) {
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
  for (auto& proxy : proxies_) {
    proxy->BeginDrain();
  }
  drain_deadline_ms_ = uv_now(loop_->get()) +
                       static_cast<uint64_t>(absl::ToInt64Milliseconds(settings_.shutdown_timeout));
  drain_timer_ = std::make_unique<core::Timer>(loop_->get(), [this] { CheckDrained(); });
  drain_timer_->StartRepeating(absl::Milliseconds(50));
  CheckDrained();
}

void Runtime::CheckDrained() {
  bool all = true;
  for (auto& proxy : proxies_) {
    all = all && proxy->drained();
  }
  if (all) {
    spdlog::info("all clients are gone; exiting");
    StopNow();
    return;
  }
  if (uv_now(loop_->get()) >= drain_deadline_ms_) {
    spdlog::warn("shutdown_timeout reached; closing the remaining clients");
    StopNow();
  }
}

void Runtime::StopNow() {
  for (auto& proxy : proxies_) {
    proxy->CloseAll("terminating connection due to administrator command");
  }
  signals_.clear();
  drain_timer_.reset();
  for (auto& proxy : proxies_) {
    proxy.reset();
  }
  proxies_.clear();
  loop_->Stop();
}

}  // namespace wirepool::proxy
