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
//
// Bytes 0-1, the RandomFn, the chunking and the Step checks shared by all codecs come from
// fuzz_driver.h; this file keeps what is particular to its codec and sink.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "codecs/api/codec.h"
#include "codecs/postgres/client_codec.h"
#include "core/crypto.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using wirepool::codec::UserSecret;
using wirepool::codec::Verdict;

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

class Harness final : public codec::ClientCodecSink, public PumpedHarness<Harness> {
 public:
  Harness(uint8_t flags, std::string random_prefix) : flags_(flags) {
    codec::ClientCodecOptions options;
    options.auth_method = (flags & 1) != 0 ? "scram-sha-256" : "md5";
    options.random = PrefixThenCounterRandom(std::move(random_prefix));
    codec_ = std::make_unique<codec::postgres::ClientCodec>(options, *this);
  }

  // Sink.
  void SendToClient(std::string_view bytes) override { CheckFraming(bytes); }
  void OnStartup(const codec::StartupInfo& info) override {
    Check(!info.user.empty(), "OnStartup without a user");
    if ((flags_ & 4) != 0) {
      begin_pending_ = true;
    } else {
      BeginAuth();
    }
  }
  void OnCancelRequest(std::string_view cancel_key) override {
    Check(cancel_key.size() == 8, "cancel key is not 8 bytes");
    pump_.OnTerminal();
  }
  void OnAuthenticated() override { login_pending_ = true; }
  void OnAuthFailed(std::string_view) override { pump_.OnTerminal(); }
  void OnRequestEnd(uint32_t) override {}
  void OnTerminate() override { pump_.OnTerminal(); }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    pump_.OnTerminal();
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
      codec_->CompleteLogin(
          codec::ParamList{{"server_version", "15.0"}, {"client_encoding", "UTF8"}});
      Check(codec_->CancelKey().size() == 8, "cancel key is not 8 bytes after login");
      return true;
    }
    return false;
  }

  friend class PumpedHarness<Harness>;

  // One Step; false when the pump yields.
  bool Turn() {
    if (pump_.available() == 0) {
      return Answer();
    }
    Verdict v = pump_.Step(*codec_);
    (void)codec_->MidRequest();
    if (Advanced(v)) {
      return true;
    }
    // kNeedMore and kPause yield, and the proxy gets its turn.
    return v != Verdict::kStop && Answer();
  }

  uint8_t flags_;
  std::unique_ptr<codec::postgres::ClientCodec> codec_;
  bool begin_pending_ = false;
  bool login_pending_ = false;
};

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return wirepool::fuzz::DriveInput<wirepool::fuzz::Harness>(data, size, 4);
}
