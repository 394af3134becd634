// libFuzzer target: postgres::ClientCodec (the proxy playing the server to a client), driven the
// way proxy/pump.h drives it, by a sink that answers like the proxy.
//
// Input layout:
//   byte 0     flags: bit 0 auth method (0 md5, 1 scram-sha-256); bit 1 known user (answer
//              OnStartup with the secret of user "fixture", password "fixture-pw", else nullptr);
//              bit 2 answer OnStartup later (when the pump yields) instead of from the callback
//   byte 1     chunking: 0 whole, 1 byte by byte, else seeded pseudo-random chunk sizes
//   bytes 2-5  what the injected RandomFn yields first (the md5 salt, or the first bytes of the
//              SCRAM server nonce); a counter pattern (0x10, 0x11, ...) follows
//   the rest   the bytes the client sends
// The seed corpus (tests/fuzz/corpus/postgres_client_fuzz/) holds the C streams of the golden
// fixtures with their md5 salts, so fuzzing starts from logged-in sessions.
//
// Invariants (a violation traps): a Step never forwards or consumes more bytes than it was given,
// nor zero bytes; kNeedMore asks for more than is available; a terminal sink event
// (OnProtocolError, OnAuthFailed, OnTerminate, OnCancelRequest) comes with kStop from the same Step
// and kStop comes with one; everything sent to the client is whole, well-framed messages (or the
// one-byte answer to an encryption request); nothing is fed after kStop. Each Step sees a fresh
// heap copy of exactly the unconsumed bytes, so ASan catches reads past the end and views kept past
// the call.

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
#include "codecs/postgres/client_codec.h"
#include "core/crypto.h"

namespace {

using wirepool::codec::ByteView;
using wirepool::codec::ClientCodecOptions;
using wirepool::codec::ParamList;
using wirepool::codec::RandomFn;
using wirepool::codec::StartupInfo;
using wirepool::codec::Step;
using wirepool::codec::UserSecret;
using wirepool::codec::Verdict;

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

// Everything a codec sends a client is 'N' (the answer to SSLRequest / GSSENCRequest) or whole
// messages: a type byte and a length that covers exactly the rest.
void CheckFraming(std::string_view bytes) {
  if (bytes == "N") {
    return;
  }
  Check(!bytes.empty(), "empty SendToClient");
  size_t pos = 0;
  while (pos < bytes.size()) {
    Check(bytes.size() - pos >= 5, "SendToClient: truncated header");
    uint32_t len = ReadU32(reinterpret_cast<const uint8_t*>(bytes.data()) + pos + 1);
    Check(len >= 4 && bytes.size() - pos - 1 >= len, "SendToClient: bad message length");
    pos += 1 + size_t{len};
  }
}

const UserSecret& Secret() {
  static const UserSecret* secret = [] {
    auto* s = new UserSecret;
    s->name = "fixture";
    s->password = "fixture-pw";
    s->scram = wirepool::crypto::DeriveScramKeys(s->password, "fuzz-salt-16byte", 4096);
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
    options.auth_method = (flags & 1) != 0 ? "scram-sha-256" : "md5";
    options.random = FuzzRandom(std::move(random_prefix));
    codec_ = std::make_unique<wirepool::codec::postgres::ClientCodec>(options, *this);
  }

  bool stopped() const { return stopped_; }

  void Feed(const uint8_t* data, size_t len) {
    Check(!stopped_, "fed after kStop");
    buf_.insert(buf_.end(), data, data + len);
    Run();
  }

  // Sink.
  void SendToClient(std::string_view bytes) override { CheckFraming(bytes); }
  void OnStartup(const StartupInfo& info) override {
    Check(!info.user.empty(), "OnStartup without a user");
    if ((flags_ & 4) != 0) {
      begin_pending_ = true;
    } else {
      BeginAuth();
    }
  }
  void OnCancelRequest(std::string_view cancel_key) override {
    Check(cancel_key.size() == 8, "cancel key is not 8 bytes");
    ++terminal_;
  }
  void OnAuthenticated() override { login_pending_ = true; }
  void OnAuthFailed(std::string_view) override { ++terminal_; }
  void OnRequestEnd(uint32_t) override {}
  void OnTerminate() override { ++terminal_; }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    ++terminal_;
  }

 private:
  void BeginAuth() { codec_->BeginAuth((flags_ & 2) != 0 ? &Secret() : nullptr); }

  // The proxy's deferred answers get a turn whenever the pump yields.
  bool Answer() {
    if (begin_pending_) {
      begin_pending_ = false;
      BeginAuth();
      return true;
    }
    if (login_pending_) {
      login_pending_ = false;
      codec_->CompleteLogin(ParamList{{"server_version", "15.0"}, {"client_encoding", "UTF8"}});
      Check(codec_->CancelKey().size() == 8, "cancel key is not 8 bytes after login");
      return true;
    }
    return false;
  }

  // One pump turn over everything buffered; returns when the codec waits (for bytes or for the
  // proxy) or stops.
  void Run() {
    while (!stopped_ && Turn()) {
    }
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
    pos_ = 0;
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
      case Verdict::kConsume:
        Check(s.bytes > 0, "Step took zero bytes");
        Check(s.bytes <= avail, "Step took more bytes than given");
        pos_ += s.bytes;
        return true;
      case Verdict::kPause:
        return Answer();
      case Verdict::kStop:
        Check(terminal, "kStop without a terminal sink event");
        stopped_ = true;
        return false;
    }
    Fail("unknown verdict");
  }

  uint8_t flags_;
  std::unique_ptr<wirepool::codec::postgres::ClientCodec> codec_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool stopped_ = false;
  bool begin_pending_ = false;
  bool login_pending_ = false;
  int terminal_ = 0;
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
