#include "proxy/tls_contexts.h"

#include "core/strings.h"

namespace wirepool::proxy {

absl::StatusOr<TlsContexts> LoadTlsContexts(const config::ProxySettings& settings,
                                            std::string_view alpn) {
  TlsContexts out;
  if (settings.client_tls.mode != core::TlsMode::kDisable) {
    core::TlsConfig config = settings.client_tls;
    if (!alpn.empty()) {
      // Wire format: one length-prefixed name.
      config.alpn = Cat(std::string(1, static_cast<char>(alpn.size())), alpn);
    }
    auto ctx = core::TlsContext::NewServer(config);
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(
          Cat("proxy ", settings.name, " client_tls: ", ctx.status().message()));
    }
    out.client = *std::move(ctx);
  }
  // Nothing to a Unix socket crosses a network (libpq never uses TLS over one either); the
  // config refuses the modes that would demand it.
  const bool unix_socket =
      !settings.backends.empty() && !settings.backends.front().unix_path.empty();
  if (settings.backend_tls.mode != core::TlsMode::kDisable && !unix_socket) {
    auto ctx = core::TlsContext::NewClient(settings.backend_tls);
    if (!ctx.ok()) {
      return absl::InvalidArgumentError(
          Cat("proxy ", settings.name, " backend_tls: ", ctx.status().message()));
    }
    out.backend = *std::move(ctx);
  }
  return out;
}

}  // namespace wirepool::proxy
