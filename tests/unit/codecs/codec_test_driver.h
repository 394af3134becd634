// The harness pieces the codec unit tests share (golden_test.cc, mysql_client_codec_test.cc,
// mysql_server_codec_test.cc): hex helpers, the deterministic RandomFn, the event log that
// coalesces forwarded bytes, and the split driver that cuts a stream whole / byte by byte / in
// seeded random chunks and checks that every cut gives the same events. tests/fuzz/fuzz_driver.h
// is the same fold for the fuzz targets.
//
// Header-only, like fuzz_driver.h: each test file is its own translation unit and the pieces are
// small. What differs per test (how many bytes an event spells out, how the sink answers, how a
// run is built) stays a parameter or stays in the test.
//
// The recorded .events files under tests/golden/ and the expected strings in the tests depend on
// exactly what these produce: the hex spelling, the digest form of long payloads, the counter
// pattern of the RandomFn and the sequence of random cuts (an mt19937 seeded with kSplitSeed).
// Changing any of them means regenerating the golden files; don't do it by accident.

#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codecs/api/codec.h"
#include "core/crypto.h"
#include "core/strings.h"
#include "gtest/gtest.h"

namespace wirepool::codec::testing {

// The seed of the random splits; the golden files were recorded against the cuts it gives.
inline constexpr uint32_t kSplitSeed = 20240611;

// ---------------------------------------------------------------------------------------------
// Bytes

inline std::string Hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
  }
  return out;
}

// Strict: nullopt on an odd length or a non-hex digit, so a corrupt fixture line fails loudly.
inline std::optional<std::string> Unhex(std::string_view hex) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) {
    return std::nullopt;
  }
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = digit(hex[i]);
    int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

// Hex, or `<n> bytes sha256:<first 16 hex digits>` when longer than `max_inline`. The limit is
// the test's (its expected strings were written against it), hence a parameter.
inline std::string HexOrDigest(std::string_view raw, size_t max_inline) {
  if (raw.size() <= max_inline) {
    return Hex(raw);
  }
  return Cat(raw.size(), " bytes sha256:", Hex(crypto::Sha256(raw)).substr(0, 16));
}

inline ByteView AsBytes(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// A RandomFn that yields `prefix` first and then the counter 0x10, 0x11, ... (wrapping), so
// salts, nonces and scrambles are what a fixture recorded or what an expected string spells out.
// With no prefix a 20-byte scramble is 0x10 0x11 ... 0x23.
inline RandomFn CounterRandom(std::string prefix) {
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

// ---------------------------------------------------------------------------------------------
// Events

// One event a line. Forwarded bytes are coalesced into one `forward <bytes>` event between other
// events, so a message forwarded in pieces (as a split input makes the codec do) reads the same
// as one forwarded whole; that is what lets every split give the same list.
class EventLog {
 public:
  // `max_inline_bytes`: forwarded payloads longer than this are logged as a length and digest.
  explicit EventLog(size_t max_inline_bytes) : max_inline_bytes_(max_inline_bytes) {}

  void Add(std::string event) {
    FlushForward();
    events_.push_back(std::move(event));
  }
  void Forward(std::string_view bytes) { forward_.append(bytes); }
  std::vector<std::string> Take() {
    FlushForward();
    return std::move(events_);
  }

 private:
  void FlushForward() {
    if (!forward_.empty()) {
      events_.push_back(Cat("forward ", HexOrDigest(forward_, max_inline_bytes_)));
      forward_.clear();
    }
  }
  size_t max_inline_bytes_;
  std::vector<std::string> events_;
  std::string forward_;
};

// The events one a line, for comparing whole lists and for failure messages.
inline std::string Join(const std::vector<std::string>& events) {
  std::string out;
  for (const std::string& e : events) {
    out += e;
    out += '\n';
  }
  return out;
}

// Reports the first line where two event lists differ.
inline ::testing::AssertionResult SameEvents(const std::vector<std::string>& expected,
                                             const std::vector<std::string>& actual) {
  size_t n = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (expected[i] != actual[i]) {
      return ::testing::AssertionFailure()
             << "events differ at line " << i + 1 << ":\n  expected: " << expected[i]
             << "\n  actual:   " << actual[i];
    }
  }
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "expected " << expected.size() << " events, got " << actual.size()
           << "; first extra: " << (expected.size() > n ? expected[n] : actual[n]);
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// Splits

// One way of cutting a stream into chunks. The chunks view the stream (or the recorded chunks),
// which must outlive the Split.
struct Split {
  std::string name;
  std::vector<std::string_view> chunks;
};

struct SplitPlan {
  int random_splits = 20;
  std::vector<size_t> scales = {2, 7, 64, 600, 5000};
  // When non-zero, the byte-by-byte split feeds only the first and last `byte_edges` bytes one
  // at a time and the middle in one chunk (for a 16 MiB stream whose middle is one payload).
  size_t byte_edges = 0;
};

// Whole, byte by byte, and plan.random_splits seeded random cuts, each with chunk sizes up to a
// scale drawn from plan.scales, so both header and payload boundaries land inside chunks.
inline std::vector<Split> Splits(std::string_view whole, const SplitPlan& plan = {}) {
  std::vector<Split> out;
  out.push_back({"whole", {whole}});
  Split bytes{"byte by byte", {}};
  size_t edges = plan.byte_edges;
  for (size_t i = 0; i < whole.size(); ++i) {
    if (edges > 0 && i == edges && whole.size() > 2 * edges) {
      bytes.name = Cat("byte by byte but for the middle ", whole.size() - 2 * edges, " bytes");
      bytes.chunks.push_back(whole.substr(i, whole.size() - 2 * edges));
      i = whole.size() - edges - 1;
      continue;
    }
    bytes.chunks.push_back(whole.substr(i, 1));
  }
  out.push_back(std::move(bytes));
  std::mt19937 rng(kSplitSeed);
  for (int i = 0; i < plan.random_splits; ++i) {
    size_t scale = plan.scales[rng() % plan.scales.size()];
    Split s{Cat("random split ", i, " (chunks up to ", scale, " bytes)"), {}};
    for (size_t pos = 0; pos < whole.size();) {
      size_t n = std::min<size_t>(1 + rng() % scale, whole.size() - pos);
      s.chunks.push_back(whole.substr(pos, n));
      pos += n;
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Feeds `split` to `run` (anything with Feed(string_view), stopped() and Finish() returning the
// events), stopping early when the codec stops as the proxy would, and returns its events.
template <typename Run>
std::vector<std::string> FeedSplit(Run& run, const Split& split) {
  for (std::string_view chunk : split.chunks) {
    if (run.stopped()) {
      break;
    }
    run.Feed(chunk);
  }
  return run.Finish();
}

// Collects the events of every run of one case and expects each to equal the first's.
class AgreeingRuns {
 public:
  // `describe`: add the differing run's events to the failure message.
  explicit AgreeingRuns(bool describe = false) : describe_(describe) {}

  void Add(std::string name, std::vector<std::string> events) {
    if (first_name_.empty()) {
      first_ = std::move(events);
      first_name_ = std::move(name);
      return;
    }
    if (describe_) {
      EXPECT_TRUE(SameEvents(first_, events))
          << "split \"" << name << "\" differs from \"" << first_name_ << "\"\n"
          << Describe(events);
    } else {
      EXPECT_TRUE(SameEvents(first_, events))
          << "split \"" << name << "\" differs from \"" << first_name_ << "\"";
    }
  }

  // The events all runs agreed on (those of the first).
  std::vector<std::string> Take() { return std::move(first_); }

  // Indented, one a line.
  static std::string Describe(const std::vector<std::string>& events) {
    std::string out;
    for (const auto& e : events) {
      out += "  " + e + "\n";
    }
    return out;
  }

 private:
  bool describe_;
  std::vector<std::string> first_;
  std::string first_name_;
};

}  // namespace wirepool::codec::testing
