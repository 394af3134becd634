#pragma once

// The one loop that moves bytes through a codec: ask the codec about the bytes at the front of
// the input, then forward, drop, wait for more, or stop, as it says. The same loop serves both
// sides of every protocol.

#include <cstddef>

#include "codecs/api/codec.h"
#include "core/buffer.h"

namespace wirepool::proxy {

enum class PumpExit {
  kNeedMore,  // the input is used up or holds only part of what the codec needs
  kPaused,    // the codec waits for the proxy
  kStopped,   // the codec reported a terminal event
  kTooLarge,  // the codec wants more contiguous bytes than the proxy buffers for one message
};

// `step(ByteView) -> Step` asks the codec; `forward(Slice)` passes bytes on (or drops them when
// nobody is there to receive them); `alive()` says whether to keep going after each step, since a
// sink callback may have closed the connection.
template <typename StepFn, typename ForwardFn, typename AliveFn>
PumpExit Pump(core::InputBuffer& in, size_t max_message, StepFn&& step, ForwardFn&& forward,
              AliveFn&& alive) {
  while (!in.empty()) {
    codec::Step s = step(in.view());
    switch (s.verdict) {
      case codec::Verdict::kNeedMore:
        if (s.bytes > max_message) {
          return PumpExit::kTooLarge;
        }
        in.Reserve(s.bytes);
        return PumpExit::kNeedMore;
      case codec::Verdict::kForward:
        forward(in.Front(s.bytes));
        in.Consume(s.bytes);
        break;
      case codec::Verdict::kConsume:
        in.Consume(s.bytes);
        break;
      case codec::Verdict::kPause:
        return PumpExit::kPaused;
      case codec::Verdict::kStop:
        return PumpExit::kStopped;
    }
    if (!alive()) {
      return PumpExit::kStopped;
    }
  }
  in.ReleaseIfEmpty();
  return PumpExit::kNeedMore;
}

}  // namespace wirepool::proxy
