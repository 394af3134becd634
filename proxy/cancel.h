#pragma once

#include <netinet/in.h>

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "codecs/api/codec.h"
#include "core/loop.h"
#include "core/tls.h"

namespace wirepool::proxy {

struct CancelTarget {
  sockaddr_storage backend{};
  absl::Duration timeout;
  codec::ProtocolPtr protocol;
  codec::ServerLogin login;  // only for plans that log in first
  // backend_tls, as the proxy's server connections use it (null: plaintext).
  core::TlsContextPtr tls;
  // Called with what the server reported once the login ends, well or not (probes use this).
  std::function<void(const codec::ParamList&)> on_params;
  // Called once the cancel is through, well or not (the session waits for it before it gives
  // its server back).
  std::function<void()> on_done;
};

// Opens a side connection to a backend and carries out a protocol's cancel plan: sends raw bytes,
// or logs in and runs a statement. Fire and forget: the object owns itself and is gone after
// `timeout` at the latest.
void SendCancel(core::EventLoop& loop, const CancelTarget& target, codec::CancelPlan plan);

// Logs in on a side connection only to learn what the server reports (its version, parameters),
// so that the first clients see the backend's values before any pooled connection exists.
void ProbeServer(core::EventLoop& loop, const CancelTarget& target);

}  // namespace wirepool::proxy
