#pragma once

// A proxy's TLS contexts, one per leg, built from its settings when it starts and again on every
// reload. Connections keep the context they started with, so a reload swaps certificates for new
// connections only and drops none.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "core/tls.h"
#include "proto/config_loader.h"

namespace wirepool::proxy {

struct TlsContexts {
  core::TlsContextPtr client;   // null: client_tls disabled
  core::TlsContextPtr backend;  // null: backend_tls disabled
};

// `alpn` is the protocol's ALPN name ("postgresql"), empty when it has none. Errors name the
// setting and the file at fault.
absl::StatusOr<TlsContexts> LoadTlsContexts(const config::ProxySettings& settings,
                                            std::string_view alpn);

}  // namespace wirepool::proxy
