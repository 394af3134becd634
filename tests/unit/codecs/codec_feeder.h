#pragma once

// The feeder of the codec tests that script a codec step by step (transaction pooling, statement
// renaming): bytes are cut whole, byte by byte or at seeded random points, and what the codec
// forwards or consumes is logged between the sink's own events.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec_test_driver.h"
#include "codecs/api/codec.h"
#include "core/strings.h"
#include "gtest/gtest.h"

namespace wirepool::codec::testing {

enum class Cut { kWhole, kBytewise, kRandom };

// Feeds bytes to `step` cut as asked, coalescing what was forwarded and consumed into log lines
// between the other events, and appending what was forwarded to `out` if given (where a sink's
// own SendToServer bytes may go too, so that `out` holds what the peer gets, in order). Stops at
// kStop or kPause.
class Feeder {
 public:
  Feeder(Cut cut, uint32_t seed, std::string* out = nullptr) : cut_(cut), rng_(seed), out_(out) {}

  void Feed(std::string_view bytes, const std::function<Step(ByteView)>& step) {
    while (!bytes.empty() && !stopped_) {
      size_t n = bytes.size();
      if (cut_ == Cut::kBytewise) {
        n = 1;
      } else if (cut_ == Cut::kRandom) {
        n = std::min<size_t>(bytes.size(), rng_() % 2 == 0 ? 1 + rng_() % 7 : 1 + rng_() % 64);
      }
      buf_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      Pump(step);
    }
  }
  void Add(std::string event) {
    Flush();
    events_.push_back(std::move(event));
  }
  // Everything forwarded so far.
  const std::string& forwarded() const { return all_forwarded_; }
  std::vector<std::string> Take() {
    Add(Cat("end buffered=", buf_.size()));
    return std::move(events_);
  }

 private:
  void Pump(const std::function<Step(ByteView)>& step) {
    while (!buf_.empty() && !stopped_) {
      Step s = step(AsBytes(buf_));
      if (s.verdict == Verdict::kNeedMore) {
        EXPECT_GT(s.bytes, buf_.size()) << "kNeedMore must ask for more than is there";
        return;
      }
      if (s.verdict == Verdict::kStop || s.verdict == Verdict::kPause) {
        Add(s.verdict == Verdict::kStop ? "stop" : "pause");
        stopped_ = true;
        return;
      }
      if (s.bytes == 0 || s.bytes > buf_.size()) {
        ADD_FAILURE() << "a Step took " << s.bytes << " of " << buf_.size() << " bytes";
        stopped_ = true;
        return;
      }
      if (s.verdict == Verdict::kForward) {
        if (consumed_ > 0) {
          Flush();
        }
        forward_.append(buf_, 0, s.bytes);
        all_forwarded_.append(buf_, 0, s.bytes);
        if (out_ != nullptr) {
          out_->append(buf_, 0, s.bytes);
        }
      } else {
        if (!forward_.empty()) {
          Flush();
        }
        consumed_ += s.bytes;
      }
      buf_.erase(0, s.bytes);
    }
  }
  void Flush() {
    if (!forward_.empty()) {
      events_.push_back(Cat("forward ", Hex(forward_)));
      forward_.clear();
    }
    if (consumed_ > 0) {
      events_.push_back(Cat("consume ", consumed_));
      consumed_ = 0;
    }
  }

  Cut cut_;
  std::mt19937 rng_;
  std::string* out_;
  std::string buf_;
  std::string forward_;
  std::string all_forwarded_;
  size_t consumed_ = 0;
  bool stopped_ = false;
  std::vector<std::string> events_;
};

inline std::string PinNames(PinSet pins) {
  if (pins == ~PinSet{0}) {
    return "all";
  }
  std::string out;
  for (size_t i = 0; i < kPinReasonCount; ++i) {
    if (pins & PinBit(static_cast<PinReason>(i))) {
      out += Cat(out.empty() ? "" : ",", PinReasonName(static_cast<PinReason>(i)));
    }
  }
  return out;
}

// "effects pins=... unpins=... read_back=a,b reset=1", naming only what is set.
inline std::string DescribeEffects(const RequestEffects& e) {
  std::string out = "effects";
  if (e.pins != 0) {
    out += Cat(" pins=", PinNames(e.pins));
  }
  if (e.unpins != 0) {
    out += Cat(" unpins=", PinNames(e.unpins));
  }
  if (!e.read_back.empty()) {
    std::string names;
    for (const std::string& n : e.read_back) {
      names += Cat(names.empty() ? "" : ",", n);
    }
    out += Cat(" read_back=", names);
  }
  if (e.reset_params) {
    out += " reset=1";
  }
  return out;
}

// How many seeded random cuts a script runs in, besides whole and byte by byte.
inline constexpr int kRandomCuts = 12;

// A script for a server codec: server bytes to feed, or a call from the proxy. A call is logged by
// its label before it runs (so what it sends follows) and by its result after.
template <typename Codec>
struct ScriptAction {
  std::string bytes;
  std::string label;
  std::function<std::string(Codec&)> call;
};

// Runs a script on a fresh `Run` (a sink that logs in its codec and logs events: codec(), Log,
// Feed, Take), cut as asked.
template <typename Run, typename Codec, typename Login>
std::vector<std::string> ExecuteScript(const Login& login,
                                       const std::vector<ScriptAction<Codec>>& script, Cut cut,
                                       uint32_t seed) {
  Run run(login, cut, seed);
  for (const ScriptAction<Codec>& a : script) {
    if (a.call) {
      run.Log(a.label);
      if (std::string result = a.call(run.codec()); !result.empty()) {
        run.Log(std::move(result));
      }
    } else {
      run.Feed(a.bytes);
    }
  }
  return run.Take();
}

// Runs `script` whole, byte by byte and in seeded random cuts; all must agree.
template <typename Run, typename Codec, typename Login>
std::vector<std::string> RunScriptAllWays(const std::vector<ScriptAction<Codec>>& script,
                                          const Login& login) {
  std::vector<std::string> whole = ExecuteScript<Run>(login, script, Cut::kWhole, 0);
  EXPECT_EQ(Join(ExecuteScript<Run>(login, script, Cut::kBytewise, 0)), Join(whole))
      << "byte by byte";
  for (int i = 0; i < kRandomCuts; ++i) {
    EXPECT_EQ(Join(ExecuteScript<Run>(login, script, Cut::kRandom, kSplitSeed + i)), Join(whole))
        << "random cut " << i;
  }
  return whole;
}

inline std::string Consume(std::string_view bytes) { return Cat("consume ", bytes.size()); }

}  // namespace wirepool::codec::testing
