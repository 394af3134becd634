// libFuzzer target: mysql::ClientCodec (the proxy playing the server to a client), started (it
// sends the handshake) and driven the way proxy/pump.h drives it, by a sink that answers like the
// proxy.
//
// Input layout:
//   byte 0      flags: bit 0 auth method (0 mysql_native_password, 1 caching_sha2_password); bit 1
//               known user (answer OnStartup with a secret whose password is "fixture-pw", else
//               nullptr); bit 2 server_params narrow the capabilities (no CLIENT_DEPRECATE_EOF)
//               and set a server version; bit 3 AnswerKill says the connection was found
//   byte 1      chunking: 0 whole, 1 byte by byte, else seeded pseudo-random chunk sizes
//   bytes 2-21  what the injected RandomFn yields first (the 20-byte scramble of the handshake); a
//               counter pattern (0x10, 0x11, ...) follows
//   the rest    the bytes the client sends
// The seed corpus (tests/fuzz/corpus/mysql_client_fuzz/) holds the C streams of the golden
// fixtures with their recorded scrambles, so fuzzing starts from logged-in sessions, and logins
// built for this RandomFn.
//
// Invariants (a violation traps): a Step never forwards or consumes more bytes than it was given,
// nor zero bytes; kNeedMore asks for more than is available; a terminal sink event
// (OnProtocolError, OnAuthFailed, OnTerminate) comes with kStop from the same Step and kStop comes
// with one; everything sent to the client is whole, well-framed packets; the handshake is sent by
// Start() and nothing before it; nothing is fed after kStop. Each Step sees a fresh heap copy of
// exactly the unconsumed bytes, so ASan catches reads past the end and views kept past the call.

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
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/wire.h"

namespace {

using wirepool::codec::ByteView;
using wirepool::codec::ClientCodecOptions;
using wirepool::codec::ParamList;
using wirepool::codec::RandomFn;
using wirepool::codec::StartupInfo;
using wirepool::codec::Step;
using wirepool::codec::UserSecret;
using wirepool::codec::Verdict;

constexpr size_t kRandomPrefix = 20;
constexpr size_t kPrefix = 2 + kRandomPrefix;

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

// Whole MySQL packets: a 3-byte little-endian length that covers exactly the payload after the
// sequence id.
void CheckFraming(std::string_view bytes, const char* what) {
  Check(!bytes.empty(), what);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t pos = 0;
  while (pos < bytes.size()) {
    Check(bytes.size() - pos >= 4, what);
    size_t len = size_t{p[pos]} | (size_t{p[pos + 1]} << 8) | (size_t{p[pos + 2]} << 16);
    Check(bytes.size() - pos - 4 >= len, what);
    pos += 4 + len;
  }
}

const UserSecret& Secret() {
  static const UserSecret* secret = [] {
    auto* s = new UserSecret;
    s->name = "fixture";
    s->password = "fixture-pw";
    return s;
  }();
  return *secret;
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

class Harness final : public wirepool::codec::ClientCodecSink {
 public:
  Harness(uint8_t flags, std::string random_prefix) : flags_(flags) {
    ClientCodecOptions options;
    options.auth_method = (flags & 1) != 0 ? "caching_sha2_password" : "mysql_native_password";
    options.random = FuzzRandom(std::move(random_prefix));
    options.connection_id = 7;
    options.peer_host = "127.0.0.1";
    if ((flags & 4) != 0) {
      options.server_params = {
          {"server_version", "8.0.34"},
          {"capabilities", std::to_string(wirepool::codec::mysql::kProxyCapabilities &
                                          ~wirepool::codec::mysql::kDeprecateEof)},
          {"charset", "33"}};
    }
    codec_ = std::make_unique<wirepool::codec::mysql::ClientCodec>(options, *this);
    codec_->Start();
    Check(sent_ == 1, "Start sent no handshake");
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
  void SendToClient(std::string_view bytes) override {
    CheckFraming(bytes, "SendToClient: bad framing");
    ++sent_;
  }
  void OnStartup(const StartupInfo& info) override {
    Check(!started_, "OnStartup twice");
    started_ = true;
    Check(!info.pool_key.empty(), "OnStartup without a pool key");
    // As the proxy does: answered from the callback.
    codec_->BeginAuth((flags_ & 2) != 0 ? &Secret() : nullptr);
  }
  void OnCancelRequest(std::string_view) override { Fail("MySQL has no cancel request"); }
  void OnAuthenticated() override {
    Check(started_ && !authenticated_, "OnAuthenticated out of order");
    Check((flags_ & 2) != 0, "an unknown user authenticated");
    authenticated_ = true;
    login_pending_ = true;
  }
  void OnAuthFailed(std::string_view) override {
    Check(!authenticated_, "OnAuthFailed after OnAuthenticated");
    ++terminal_;
  }
  void OnRequestEnd(uint32_t) override { Check(logged_in_, "OnRequestEnd before login"); }
  void OnKill(std::string_view target_key, bool) override {
    Check(logged_in_, "OnKill before login");
    Check(!target_key.empty(), "OnKill without a target");
    codec_->AnswerKill((flags_ & 8) != 0, target_key);
  }
  void OnTerminate() override { ++terminal_; }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    ++terminal_;
  }

 private:
  // The proxy's deferred answer (a server for the client) gets a turn whenever the pump yields.
  bool Answer() {
    if (!login_pending_) {
      return false;
    }
    login_pending_ = false;
    codec_->CompleteLogin(ParamList{{"server_version", "10.11.0-MariaDB"}});
    Check(codec_->CancelKey() == "7", "cancel key is not the connection id");
    logged_in_ = true;
    return true;
  }

  // One Step; false when the pump yields.
  bool Turn() {
    size_t avail = buf_.size() - pos_;
    if (avail == 0) {
      return Answer();
    }
    // A fresh allocation of exactly the unconsumed bytes for every call.
    std::unique_ptr<uint8_t[]> copy(new uint8_t[avail]);
    std::memcpy(copy.get(), buf_.data() + pos_, avail);
    int terminal_before = terminal_;
    Step s = codec_->OnBytes(ByteView(copy.get(), avail));
    copy.reset();
    bool terminal = terminal_ != terminal_before;
    Check(!terminal || s.verdict == Verdict::kStop, "terminal sink event without kStop");
    Check(terminal_ <= 1, "more than one terminal event");
    (void)codec_->MidRequest();
    switch (s.verdict) {
      case Verdict::kNeedMore:
        Check(s.bytes > avail, "kNeedMore asks for no more than is available");
        return Answer();
      case Verdict::kForward:
        Check(logged_in_, "forwarded before login");
        [[fallthrough]];
      case Verdict::kConsume:
        Check(s.bytes > 0, "Step took zero bytes");
        Check(s.bytes <= avail, "Step took more bytes than given");
        pos_ += s.bytes;
        return true;
      case Verdict::kPause:
        Check(!logged_in_, "kPause after login");
        return Answer();
      case Verdict::kStop:
        Check(terminal, "kStop without a terminal sink event");
        stopped_ = true;
        return false;
    }
    Fail("unknown verdict");
  }

  uint8_t flags_;
  std::unique_ptr<wirepool::codec::mysql::ClientCodec> codec_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool stopped_ = false;
  bool started_ = false;
  bool authenticated_ = false;
  bool login_pending_ = false;
  bool logged_in_ = false;
  int sent_ = 0;
  int terminal_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefix) {
    return 0;
  }
  const uint8_t flags = data[0];
  const uint8_t chunking = data[1];
  Harness h(flags, std::string(reinterpret_cast<const char*>(data + 2), kRandomPrefix));
  data += kPrefix;
  size -= kPrefix;
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
