#pragma once

#include <netinet/in.h>

#include <string>

#include "absl/time/time.h"
#include "codecs/api/codec.h"
#include "core/loop.h"

namespace wirepool::proxy {

struct CancelTarget {
  sockaddr_storage backend{};
  absl::Duration timeout;
  codec::ProtocolPtr protocol;  // only for plans that log in first
  codec::ServerLogin login;
};

// Opens a side connection to a backend and carries out a protocol's cancel plan: sends raw bytes,
// or logs in and runs a statement. Fire and forget: the object owns itself and is gone after
// `timeout` at the latest.
void SendCancel(core::EventLoop& loop, const CancelTarget& target, codec::CancelPlan plan);

}  // namespace wirepool::proxy
