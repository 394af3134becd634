// libFuzzer target: postgres::ClientCodec (the proxy playing the server to a client), driven the
// way proxy/pump.h drives it, by a sink that answers like the proxy.
//
// Input layout:
//   byte 0     flags: bit 0 auth method (0 md5, 1 scram-sha-256); bit 1 known user (answer
//              OnStartup with the secret of user "fixture", password "fixture-pw", else nullptr);
//              bit 2 answer OnStartup later (when the pump yields) instead of from the callback;
//              bit 3 tls_available (TLS on offer: an SSLRequest gets 'S', a leading 0x16 is direct
//              TLS; when the pump yields after OnTlsRequest the sink calls OnTlsStarted, as the
//              proxy does once the codec's call returns, and what follows is read as if TLS had
//              decrypted it)
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
// one-byte answer to an encryption request, 'S' only where TLS is on offer); OnTlsRequest only with
// tls_available and at most once, from a Step that took the SSLRequest (after 'S') or, for direct
// TLS, paused having taken nothing; until TLS starts, the codec takes nothing more (after an
// SSLRequest it stops: CVE-2021-23214); nothing is fed after kStop. Each Step sees a fresh heap
// copy of exactly the unconsumed bytes, so ASan catches reads past the end and views kept past the
// call.
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

using wirepool::codec::TlsStart;
using wirepool::codec::UserSecret;
using wirepool::codec::Verdict;

uint32_t ReadU32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Everything a codec sends a client is 'N' or 'S' (the answers to SSLRequest / GSSENCRequest) or
// whole messages: a type byte and a length that covers exactly the rest.
void CheckFraming(std::string_view bytes) {
  if (bytes == "N" || bytes == "S") {
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
  Harness(uint8_t flags, std::string random_prefix)
      : flags_(flags), tls_available_((flags & 8) != 0) {
    codec::ClientCodecOptions options;
    options.auth_method = (flags & 1) != 0 ? "scram-sha-256" : "md5";
    options.random = PrefixThenCounterRandom(std::move(random_prefix));
    options.tls_available = tls_available_;
    codec_ = std::make_unique<codec::postgres::ClientCodec>(options, *this);
  }

  // Sink.
  void SendToClient(std::string_view bytes) override {
    CheckFraming(bytes);
    if (bytes == "S") {
      Check(tls_available_, "'S' where TLS is not on offer");
      ++go_aheads_;
    }
  }
  void OnTlsRequest(TlsStart how) override {
    Check(tls_available_, "OnTlsRequest where TLS is not on offer");
    Check(!tls_requested_, "OnTlsRequest twice");
    Check(how == TlsStart::kAfterGoAhead || how == TlsStart::kDirect,
          "OnTlsRequest: PostgreSQL has no TLS hello behind its request");
    Check(how != TlsStart::kAfterGoAhead || go_aheads_ == 1, "OnTlsRequest without one 'S'");
    Check(how == TlsStart::kAfterGoAhead || go_aheads_ == 0, "direct TLS after an 'S'");
    tls_requested_ = true;
    tls_pending_ = true;
    tls_how_ = how;
  }
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
    if (tls_pending_) {
      // The proxy starts TLS once the codec's call returns and the pump yields.
      tls_pending_ = false;
      codec_->OnTlsStarted();
      return true;
    }
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
    const bool tls_was_pending = tls_pending_;
    const size_t before = pump_.available();
    Verdict v = pump_.Step(*codec_);
    (void)codec_->MidRequest();
    if (tls_was_pending) {
      // Nothing between the request and the TLS handshake is read as the client's.
      Check(tls_how_ == TlsStart::kDirect ? v == Verdict::kPause : v == Verdict::kStop,
            "the codec read bytes that arrived before TLS started");
      Check(pump_.available() == before || v == Verdict::kStop, "took bytes before TLS started");
    } else if (tls_pending_) {
      // This Step made the request.
      Check(tls_how_ == TlsStart::kDirect ? v == Verdict::kPause : v == Verdict::kConsume,
            "OnTlsRequest from a Step with the wrong verdict");
      Check(tls_how_ != TlsStart::kDirect || pump_.available() == before,
            "direct TLS: the codec took part of the hello");
    }
    if (Advanced(v)) {
      return true;
    }
    // kNeedMore and kPause yield, and the proxy gets its turn.
    return v != Verdict::kStop && Answer();
  }

  uint8_t flags_;
  bool tls_available_;
  std::unique_ptr<codec::postgres::ClientCodec> codec_;
  bool begin_pending_ = false;
  bool login_pending_ = false;
  bool tls_requested_ = false;
  bool tls_pending_ = false;  // OnTlsRequest heard, OnTlsStarted not called yet
  TlsStart tls_how_ = TlsStart::kAfterGoAhead;
  int go_aheads_ = 0;
};

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return wirepool::fuzz::DriveInput<wirepool::fuzz::Harness>(data, size, 4);
}
