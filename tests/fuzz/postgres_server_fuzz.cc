// libFuzzer target: postgres::ServerCodec (the proxy playing the client to a backend) after
// Start(), driven the way proxy/pump.h drives it, by a sink that answers like the proxy.
//
// Input layout:
//   byte 0     flags: bit 0 send a reset (DISCARD ALL) after each ReadyForQuery; bit 1 send
//              SendSetParameters after each ReadyForQuery; bit 2 ask ParametersToApply after each
//              Step
//   byte 1     chunking: 0 whole, 1 byte by byte, else seeded pseudo-random chunk sizes
//   bytes 2-5  what the injected RandomFn yields first (the first bytes of the SCRAM client
//              nonce); a counter pattern (0x10, 0x11, ...) follows
//   the rest   the bytes the server sends
// The codec logs in as user "fixture", password "fixture-pw", database wp_db. The seed corpus
// (tests/fuzz/corpus/postgres_server_fuzz/) holds the S streams of the golden fixtures (md5) and a
// SCRAM login computed for this RandomFn.
//
// Invariants (a violation traps): a Step never forwards or consumes more bytes than it was given,
// nor zero bytes; kNeedMore asks for more than is available; a terminal sink event (OnLoginFailed,
// OnProtocolError) comes with kStop from the same Step and kStop comes with one; login completes
// at most once and before any ReadyForQuery; OnInternalDone only while a request of the codec's
// own is outstanding; everything sent to the server is whole, well-framed messages; nothing is fed
// after kStop. Each Step sees a fresh heap copy of exactly the unconsumed bytes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/codec.h"
#include "codecs/postgres/server_codec.h"

namespace {

using wirepool::codec::ByteView;
using wirepool::codec::ParamList;
using wirepool::codec::RandomFn;
using wirepool::codec::ServerLogin;
using wirepool::codec::Step;
using wirepool::codec::TxState;
using wirepool::codec::Verdict;
using wirepool::codec::WireError;

[[noreturn]] void Fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::fflush(stderr);
  __builtin_trap();
}

void Check(bool ok, const char* what) {
  if (!ok) {
    Fail(what);
  }
}

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Whole messages: a type byte and a length that covers exactly the rest (untyped for the startup
// packet).
void CheckFraming(std::string_view bytes, bool untyped, const char* what) {
  Check(!bytes.empty(), what);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (untyped) {
    Check(bytes.size() >= 8 && ReadU32(p) == bytes.size(), what);
    return;
  }
  size_t pos = 0;
  while (pos < bytes.size()) {
    Check(bytes.size() - pos >= 5, what);
    uint32_t len = ReadU32(p + pos + 1);
    Check(len >= 4 && bytes.size() - pos - 1 >= len, what);
    pos += 1 + size_t{len};
  }
}

RandomFn FuzzRandom(std::string prefix) {
  struct State {
    std::string prefix;
    size_t pos = 0;
    uint8_t counter = 0x10;
  };
  auto state = std::make_shared<State>();
  state->prefix = std::move(prefix);
  return [state](uint8_t* out, size_t len) {
    for (size_t i = 0; i < len; ++i) {
      out[i] = state->pos < state->prefix.size() ? static_cast<uint8_t>(state->prefix[state->pos++])
                                                 : state->counter++;
    }
  };
}

class Harness final : public wirepool::codec::ServerCodecSink {
 public:
  Harness(uint8_t flags, std::string random_prefix) : flags_(flags) {
    ServerLogin login;
    login.user = "fixture";
    login.password = "fixture-pw";
    login.database = "wp_db";
    login.params = {{"application_name", "fuzz"}};
    login.random = FuzzRandom(std::move(random_prefix));
    codec_ = std::make_unique<wirepool::codec::postgres::ServerCodec>(login, *this);
    codec_->Start();
    Check(sent_ == 1, "Start sent no startup packet");
  }

  bool stopped() const { return stopped_; }

  void Feed(const uint8_t* data, size_t len) {
    Check(!stopped_, "fed after kStop");
    buf_.insert(buf_.end(), data, data + len);
    while (!stopped_ && Turn()) {
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
  }

  // Sink.
  void SendToServer(std::string_view bytes) override {
    CheckFraming(bytes, sent_ == 0, "SendToServer: bad framing");
    ++sent_;
  }
  void OnLoginComplete() override {
    Check(!logged_in_, "OnLoginComplete twice");
    logged_in_ = true;
    (void)codec_->CancelKey();
    (void)codec_->Parameters();
  }
  void OnLoginFailed(const WireError& error) override {
    Check(!logged_in_, "OnLoginFailed after login");
    Check(!error.raw.empty() && error.raw[0] == 'E', "OnLoginFailed without an ErrorResponse");
    CheckFraming(error.raw, false, "OnLoginFailed: bad framing");
    ++terminal_;
  }
  void OnReadyForQuery(TxState) override {
    Check(logged_in_, "OnReadyForQuery before login");
    ready_pending_ = true;
  }
  void OnParameterStatus(std::string_view, std::string_view) override {
    Check(logged_in_, "OnParameterStatus before login");
  }
  void OnInternalDone(const WireError* error) override {
    Check(internal_outstanding_ > 0, "OnInternalDone with nothing outstanding");
    internal_outstanding_ = 0;
    if (error != nullptr) {
      Check(!error->raw.empty() && error->raw[0] == 'E', "internal error without ErrorResponse");
    }
  }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    ++terminal_;
  }

 private:
  // The proxy's follow-ups get a turn whenever the pump yields.
  bool Answer() {
    if (!ready_pending_) {
      return false;
    }
    ready_pending_ = false;
    if ((flags_ & 1) != 0 && resets_ < 4) {
      ++resets_;
      ++internal_outstanding_;
      codec_->SendReset();
    }
    if ((flags_ & 2) != 0 && resets_ < 8) {
      ++resets_;
      ParamList wanted{{"application_name", "fuzz2"}, {"TimeZone", "UTC"}};
      ParamList todo = codec_->ParametersToApply(wanted);
      if (!todo.empty()) {
        ++internal_outstanding_;
        codec_->SendSetParameters(todo);
      }
    }
    return false;  // nothing new to read: the pump still waits for bytes
  }

  // One Step; false when the pump yields.
  bool Turn() {
    size_t avail = buf_.size() - pos_;
    if (avail == 0) {
      return Answer();
    }
    std::unique_ptr<uint8_t[]> copy(new uint8_t[avail]);
    std::memcpy(copy.get(), buf_.data() + pos_, avail);
    int terminal_before = terminal_;
    Step s = codec_->OnBytes(ByteView(copy.get(), avail));
    copy.reset();
    bool terminal = terminal_ != terminal_before;
    Check(!terminal || s.verdict == Verdict::kStop, "terminal sink event without kStop");
    Check(terminal_ <= 1, "more than one terminal event");
    if ((flags_ & 4) != 0) {
      (void)codec_->ParametersToApply({{"application_name", "x"}, {"DateStyle", "ISO"}});
    }
    switch (s.verdict) {
      case Verdict::kNeedMore:
        Check(s.bytes > avail, "kNeedMore asks for no more than is available");
        return Answer();
      case Verdict::kForward:
      case Verdict::kConsume:
        Check(s.bytes > 0, "Step took zero bytes");
        Check(s.bytes <= avail, "Step took more bytes than given");
        pos_ += s.bytes;
        return true;
      case Verdict::kPause:
        Fail("the server codec never waits for the proxy");
      case Verdict::kStop:
        Check(terminal, "kStop without a terminal sink event");
        stopped_ = true;
        return false;
    }
    Fail("unknown verdict");
  }

  uint8_t flags_;
  std::unique_ptr<wirepool::codec::postgres::ServerCodec> codec_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool stopped_ = false;
  bool logged_in_ = false;
  bool ready_pending_ = false;
  int sent_ = 0;
  int terminal_ = 0;
  int resets_ = 0;
  int internal_outstanding_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 6) {
    return 0;
  }
  const uint8_t flags = data[0];
  const uint8_t chunking = data[1];
  Harness h(flags, std::string(reinterpret_cast<const char*>(data + 2), 4));
  data += 6;
  size -= 6;
  uint32_t lcg = chunking;
  size_t pos = 0;
  while (pos < size && !h.stopped()) {
    size_t n = size - pos;
    if (chunking == 1) {
      n = 1;
    } else if (chunking > 1) {
      lcg = lcg * 1664525u + 1013904223u;
      n = std::min<size_t>(n, 1 + (lcg >> 8) % (size_t{chunking} * 8));
    }
    h.Feed(data + pos, n);
    pos += n;
  }
  return 0;
}
