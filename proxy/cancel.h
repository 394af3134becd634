#pragma once

#include <netinet/in.h>

#include <string>

#include "absl/time/time.h"
#include "core/loop.h"

namespace wirepool::proxy {

// Opens a side connection to a backend, sends `bytes` (a protocol's cancel request) and closes.
// Fire and forget: the object owns itself and is gone after `timeout` at the latest.
void SendCancel(core::EventLoop& loop, const sockaddr_storage& backend, std::string bytes,
                absl::Duration timeout);

}  // namespace wirepool::proxy
