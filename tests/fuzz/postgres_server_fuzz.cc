// libFuzzer target: postgres::ServerCodec (the proxy playing the client to a backend) after
// Start(), driven the way proxy/pump.h drives it, by a sink that answers like the proxy.
//
// Input layout:
//   byte 0     flags: bit 0 send a reset (DISCARD ALL) after each ReadyForQuery; bit 1 send
//              SendSetParameters after each ReadyForQuery; bit 2 ask ParametersToApply after each
//              Step; bit 3 ServerLogin::tls (Start sends an SSLRequest; after OnTlsOffer, once the
//              pump yields, the sink calls ContinueLogin with the server's answer, as the proxy
//              does, and what follows is read as if TLS had decrypted it)
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
// own is outstanding; everything sent to the server is whole, well-framed messages; with tls, Start
// sends only the 8-byte SSLRequest, OnTlsOffer comes at most once, before login, from a Step that
// took exactly the one-byte answer, and the startup packet only after ContinueLogin; nothing is fed
// after kStop. Each Step sees a fresh heap copy of exactly the unconsumed bytes.
//
// Bytes 0-1, the RandomFn, the chunking and the Step checks shared by all codecs come from
// fuzz_driver.h; this file keeps what is particular to its codec and sink.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "codecs/api/codec.h"
#include "codecs/postgres/server_codec.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using wirepool::codec::ParamList;
using wirepool::codec::Verdict;
using wirepool::codec::WireError;

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

class Harness final : public codec::ServerCodecSink, public PumpedHarness<Harness> {
 public:
  Harness(uint8_t flags, std::string random_prefix) : flags_(flags), tls_((flags & 8) != 0) {
    codec::ServerLogin login;
    login.user = "fixture";
    login.password = "fixture-pw";
    login.database = "wp_db";
    login.params = {{"application_name", "fuzz"}};
    login.random = PrefixThenCounterRandom(std::move(random_prefix));
    login.tls = tls_;
    codec_ = std::make_unique<codec::postgres::ServerCodec>(login, *this);
    codec_->Start();
    Check(sent_ == 1, "Start sent no startup packet (or SSLRequest)");
  }

  // Sink.
  void SendToServer(std::string_view bytes) override {
    // The startup packet (after the SSLRequest with tls) is untyped.
    const int untyped = tls_ ? 2 : 1;
    CheckFraming(bytes, sent_ < untyped, "SendToServer: bad framing");
    if (tls_ && sent_ == 0) {
      Check(bytes.size() == 8 &&
                ReadU32(reinterpret_cast<const uint8_t*>(bytes.data()) + 4) == 80877103,
            "Start with tls sent something else than an SSLRequest");
    }
    if (tls_ && sent_ == 1) {
      Check(continued_, "the startup packet went before ContinueLogin");
    }
    ++sent_;
  }
  void OnTlsOffer(bool accepted) override {
    Check(tls_, "OnTlsOffer without ServerLogin::tls");
    Check(!offered_, "OnTlsOffer twice");
    Check(!logged_in_, "OnTlsOffer after login");
    offered_ = true;
    offer_ = accepted;
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
    pump_.OnTerminal();
  }
  void OnReadyForQuery(codec::TxState) override {
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
    pump_.OnTerminal();
  }

 private:
  // The proxy's follow-ups get a turn whenever the pump yields.
  bool Answer() {
    if (offer_.has_value()) {
      // The proxy starts TLS (or not) once the codec's call returns, then the login goes on.
      const bool encrypted = *offer_;
      offer_.reset();
      continued_ = true;
      codec_->ContinueLogin(encrypted);
      Check(sent_ == 2, "ContinueLogin sent no startup packet");
      return false;  // nothing new to read: the pump waits for the server
    }
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

  friend class PumpedHarness<Harness>;

  // One Step; false when the pump yields.
  bool Turn() {
    if (pump_.available() == 0) {
      return Answer();
    }
    const bool offered_before = offered_;
    const size_t before = pump_.available();
    Verdict v = pump_.Step(*codec_);
    if (offered_ && !offered_before) {
      Check(v == Verdict::kConsume && before - pump_.available() == 1,
            "OnTlsOffer from a Step that did not take exactly the one-byte answer");
    }
    if ((flags_ & 4) != 0) {
      (void)codec_->ParametersToApply({{"application_name", "x"}, {"DateStyle", "ISO"}});
    }
    Check(v != Verdict::kPause, "the server codec never waits for the proxy");
    return Advanced(v) || (v == Verdict::kNeedMore && Answer());
  }

  uint8_t flags_;
  bool tls_;
  std::unique_ptr<codec::postgres::ServerCodec> codec_;
  bool offered_ = false;
  bool continued_ = false;
  std::optional<bool> offer_;  // OnTlsOffer's answer, until the pump yields
  bool logged_in_ = false;
  bool ready_pending_ = false;
  int sent_ = 0;
  int resets_ = 0;
  int internal_outstanding_ = 0;
};

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return wirepool::fuzz::DriveInput<wirepool::fuzz::Harness>(data, size, 4);
}
