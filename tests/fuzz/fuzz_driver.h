// The parts every codec fuzz target shares: the trap on a broken invariant, the deterministic
// RandomFn, the common input header with its chunking, and the checked pump that feeds a codec the
// way proxy/pump.h does and traps when a Step breaks the contract of codecs/api/codec.h.
//
// Kept header-only (inline functions, small templates) because each target is one translation unit
// linked on its own; there is no fuzz support library to put a .cc in.
//
// The input formats the targets document are built from these pieces, so changing any of them
// (the header layout, the chunk-size LCG, the counter pattern of the RandomFn) changes what every
// seed in tests/fuzz/corpus/ means. Don't.

#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "codecs/api/codec.h"

namespace wirepool::fuzz {

// Traps rather than aborts or throws: libFuzzer reports a trap as a crash with the stack, and the
// message says which invariant it was.
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::fflush(stderr);
  __builtin_trap();
}

inline void Check(bool ok, const char* what) {
  if (!ok) {
    Fail(what);
  }
}

// A RandomFn that yields `prefix` first and then the counter 0x10, 0x11, ... (wrapping). The prefix
// comes from the input so the fuzzer controls salts, nonces and scrambles; the counter keeps the
// rest deterministic, so a crash reproduces and the seeds can hold logins computed for it.
inline codec::RandomFn PrefixThenCounterRandom(std::string prefix) {
  struct State {
    std::string prefix;
    size_t pos = 0;
    uint8_t counter = 0x10;
  };
  // Shared, not captured by value: RandomFn may be copied, and all copies must draw from one
  // sequence.
  auto state = std::make_shared<State>();
  state->prefix = std::move(prefix);
  return [state](uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; ++i) {
      out[i] = state->pos < state->prefix.size() ? static_cast<uint8_t>(state->prefix[state->pos++])
                                                 : state->counter++;
    }
  };
}

// The header every target's input starts with:
//   byte 0          flags (their meaning is the target's)
//   byte 1          chunking: 0 whole, 1 byte by byte, else seeded pseudo-random chunk sizes
//   random_len      what the injected RandomFn yields first
struct InputHeader {
  uint8_t flags = 0;
  uint8_t chunking = 0;
  std::string random_prefix;
};

// Takes the header off the front of data/size; false (and nothing taken) when the input is too
// short to hold it.
inline bool TakeHeader(const uint8_t*& data, size_t& size, size_t random_len, InputHeader& out) {
  if (size < 2 + random_len) {
    return false;
  }
  out.flags = data[0];
  out.chunking = data[1];
  out.random_prefix.assign(reinterpret_cast<const char*>(data + 2), random_len);
  data += 2 + random_len;
  size -= 2 + random_len;
  return true;
}

// Feeds data to `harness` (which has Feed(const uint8_t*, size_t) and stopped()) in chunks chosen
// by `chunking`, stopping as soon as the codec does. The sizes of the pseudo-random chunks come
// from an LCG seeded with the chunking byte, so one input byte picks both how big chunks get (up to
// chunking * 8) and a reproducible sequence of splits, which is how message boundaries inside a
// chunk get exercised.
template <typename Harness>
void FeedInChunks(Harness& harness, uint8_t chunking, const uint8_t* data, size_t size) {
  uint32_t lcg = chunking;
  size_t pos = 0;
  while (pos < size && !harness.stopped()) {
    size_t n = size - pos;
    if (chunking == 1) {
      n = 1;
    } else if (chunking > 1) {
      lcg = lcg * 1664525u + 1013904223u;
      n = std::min<size_t>(n, 1 + (lcg >> 8) % (size_t{chunking} * 8));
    }
    harness.Feed(data + pos, n);
    pos += n;
  }
}

// The buffer between the bytes that arrive and a codec's Steps, checking every Step against the
// contract all codecs share. What a target does between Steps (the proxy's answers, extra calls on
// the codec) and the invariants of its own sink stay in the target.
class CheckedPump {
 public:
  bool stopped() const { return stopped_; }

  // Bytes buffered and not yet forwarded or consumed.
  size_t available() const { return buf_.size() - pos_; }

  // The sink calls this for every terminal event (one that must come with kStop from the same
  // Step, e.g. OnProtocolError).
  void OnTerminal() { ++terminal_; }

  // Buffers `len` more bytes and calls `turn` until it returns false (the pump yields: the codec
  // waits for bytes or for the proxy) or the codec stops. The unconsumed rest stays for the next
  // Feed, as a partial message does in the proxy.
  template <typename TurnFn>
  void Feed(const uint8_t* data, size_t len, TurnFn&& turn) {
    Check(!stopped_, "fed after kStop");
    buf_.insert(buf_.end(), data, data + len);
    while (!stopped_ && turn()) {
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }

  // One Step of `codec` (anything with OnBytes(ByteView) -> Step, i.e. either codec side). It sees
  // a fresh heap allocation of exactly the unconsumed bytes, freed right after, so ASan catches
  // reads past the end and views kept past the call. Checks that a Step never forwards or consumes
  // more bytes than it was given, nor zero bytes; that kNeedMore asks for more than is available;
  // that a terminal sink event comes with kStop and kStop with one, and at most one ever. Advances
  // over what a kForward or kConsume took and marks the pump stopped on kStop. Call it only with
  // bytes available. Returns the verdict, for the target's own follow-up.
  template <typename Codec>
  codec::Verdict Step(Codec& codec) {
    using codec::Verdict;
    const size_t avail = available();
    Check(avail > 0, "Step with nothing buffered");
    std::unique_ptr<uint8_t[]> copy(new uint8_t[avail]);
    std::memcpy(copy.get(), buf_.data() + pos_, avail);
    const int terminal_before = terminal_;
    codec::Step s = codec.OnBytes(codec::ByteView(copy.get(), avail));
    copy.reset();
    const bool terminal = terminal_ != terminal_before;
    Check(!terminal || s.verdict == Verdict::kStop, "terminal sink event without kStop");
    Check(terminal_ <= 1, "more than one terminal event");
    switch (s.verdict) {
      case Verdict::kNeedMore:
        Check(s.bytes > avail, "kNeedMore asks for no more than is available");
        return s.verdict;
      case Verdict::kForward:
      case Verdict::kConsume:
        Check(s.bytes > 0, "Step took zero bytes");
        Check(s.bytes <= avail, "Step took more bytes than given");
        pos_ += s.bytes;
        return s.verdict;
      case Verdict::kPause:
        return s.verdict;
      case Verdict::kStop:
        Check(terminal, "kStop without a terminal sink event");
        stopped_ = true;
        return s.verdict;
    }
    Fail("unknown verdict");
  }

 private:
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool stopped_ = false;
  int terminal_ = 0;
};

// Whether a Step moved the pump on (kForward, kConsume) rather than yielding (kNeedMore, kPause)
// or stopping: the pump takes another Step at once only then.
inline bool Advanced(codec::Verdict v) {
  return v == codec::Verdict::kForward || v == codec::Verdict::kConsume;
}

// A base for a target's harness (CRTP): the pump, and the Feed/stopped() pair FeedInChunks drives.
// Derived supplies `bool Turn()` (one Step or one proxy answer; false when the pump yields) and
// befriends this class if Turn is private.
template <typename Derived>
class PumpedHarness {
 public:
  bool stopped() const { return pump_.stopped(); }

  void Feed(const uint8_t* data, size_t len) {
    pump_.Feed(data, len, [this] { return static_cast<Derived*>(this)->Turn(); });
  }

 protected:
  CheckedPump pump_;
};

// The whole of LLVMFuzzerTestOneInput for a target whose input is the common header and then the
// bytes to feed, and whose Harness is built from (flags, random prefix).
template <typename Harness>
int DriveInput(const uint8_t* data, size_t size, size_t random_len) {
  InputHeader header;
  if (!TakeHeader(data, size, random_len, header)) {
    return 0;
  }
  Harness harness(header.flags, std::move(header.random_prefix));
  FeedInChunks(harness, header.chunking, data, size);
  return 0;
}

}  // namespace wirepool::fuzz
