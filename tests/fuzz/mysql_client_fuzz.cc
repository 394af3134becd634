// libFuzzer target: mysql::ClientCodec (the proxy playing the server to a client), started (it
// sends the handshake) and driven the way proxy/pump.h drives it, by a sink that answers like the
// proxy.
//
// Input layout:
//   byte 0      flags: bit 0 auth method (0 mysql_native_password, 1 caching_sha2_password); bit 1
//               known user (answer OnStartup with a secret whose password is "fixture-pw", else
//               nullptr); bit 2 server_params narrow the capabilities (no CLIENT_DEPRECATE_EOF)
//               and set a server version; bit 3 AnswerKill says the connection was found; bit 4
//               transaction pooling (classify, and statement ids mapped onto a server whose
//               statements the sink plays: absent until the codec prepares one, which the proxy's
//               turn then makes ready, or failed with bit 5); bit 6 tls_available (the handshake
//               offers CLIENT_SSL; when the pump yields after OnTlsRequest the sink calls
//               OnTlsStarted, as the proxy does once the codec's call returns, and what follows is
//               read as if TLS had decrypted it: the full HandshakeResponse41 at sequence id 2)
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
// Start() and nothing before it, and offers CLIENT_SSL exactly where TLS is on offer; OnTlsRequest
// only then, at most once, before OnStartup and from a Step that took the SSL request; until TLS
// starts the codec takes nothing more (the client's TLS hello is not its to read); nothing is fed
// after kStop. Each Step sees a fresh heap copy of exactly the unconsumed bytes, so ASan catches
// reads past the end and views kept past the call.
//
// Bytes 0-1, the RandomFn, the chunking and the Step checks shared by all codecs come from
// fuzz_driver.h; this file keeps what is particular to its codec and sink.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "codecs/api/codec.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/wire.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using wirepool::codec::TlsStart;
using wirepool::codec::UserSecret;
using wirepool::codec::Verdict;

// The 20-byte scramble of the handshake.
constexpr size_t kRandomPrefix = 20;

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

class Harness final : public codec::ClientCodecSink, public PumpedHarness<Harness> {
 public:
  Harness(uint8_t flags, std::string random_prefix)
      : flags_(flags), tls_available_((flags & 64) != 0) {
    codec::ClientCodecOptions options;
    options.auth_method = (flags & 1) != 0 ? "caching_sha2_password" : "mysql_native_password";
    options.random = PrefixThenCounterRandom(std::move(random_prefix));
    options.connection_id = 7;
    options.peer_host = "127.0.0.1";
    if ((flags & 4) != 0) {
      options.server_params = std::make_shared<const codec::ParamList>(codec::ParamList{
          {"server_version", "8.0.34"},
          {"capabilities",
           std::to_string(codec::mysql::kProxyCapabilities & ~codec::mysql::kDeprecateEof)},
          {"charset", "33"}});
    }
    options.classify = (flags & 16) != 0;
    options.tls_available = tls_available_;
    codec_ = std::make_unique<codec::mysql::ClientCodec>(options, *this);
    codec_->Start();
    Check(sent_ == 1, "Start sent no handshake");
  }

  // Sink.
  void SendToClient(std::string_view bytes) override {
    CheckFraming(bytes, "SendToClient: bad framing");
    if (sent_ == 0) {
      CheckHandshake(bytes);
    }
    ++sent_;
  }
  void OnTlsRequest(TlsStart how) override {
    Check(tls_available_, "OnTlsRequest where TLS is not on offer");
    Check(how == TlsStart::kHelloFollows, "OnTlsRequest: MySQL's TLS hello follows its request");
    Check(!tls_requested_, "OnTlsRequest twice");
    Check(!started_, "OnTlsRequest after OnStartup");
    tls_requested_ = true;
    tls_pending_ = true;
  }
  void OnStartup(const codec::StartupInfo& info) override {
    // Again only from a logged-in session: COM_CHANGE_USER logs the client in anew.
    Check(!started_ || logged_in_, "OnStartup twice during a login");
    started_ = true;
    authenticated_ = false;
    logged_in_ = false;
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
    pump_.OnTerminal();
  }
  void OnRequestEnd(uint32_t) override { Check(logged_in_, "OnRequestEnd before login"); }
  void OnKill(std::string_view target_key, bool) override {
    Check(logged_in_, "OnKill before login");
    Check(!target_key.empty(), "OnKill without a target");
    codec_->AnswerKill((flags_ & 8) != 0, target_key);
  }
  void OnTerminate() override { pump_.OnTerminal(); }
  void SendToServer(std::string_view bytes) override {
    Check(logged_in_ && (flags_ & 16) != 0, "SendToServer without transaction pooling");
    (void)bytes;  // a rewritten head may be part of a packet: its framing is the server's to check
  }
  codec::ServerStatement FindServerStatement(std::string_view key) override {
    Check(!key.empty(), "FindServerStatement without a key");
    codec::ServerStatement st;
    auto it = statements_.find(std::string(key));
    if (it == statements_.end()) {
      return st;
    }
    st.status = it->second;
    st.handle = "9";
    st.params = static_cast<uint32_t>(key.size() % 3);
    st.error = std::string("\x05\x00\x00\x01\xff\x7a\x04\x30\x30", 9);  // a well-framed ERR
    return st;
  }
  void OnStatementMessage(const codec::StatementNote& note) override {
    Check(!note.key.empty(), "a statement note without a key");
    if (note.kind == codec::StatementNote::kPrepare && !note.forward) {
      statements_[note.key] = codec::ServerStatement::kPreparing;
    }
  }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    pump_.OnTerminal();
  }

 private:
  // HandshakeV10: protocol, NUL-terminated version, connection id (4), scramble part 1 (8), filler,
  // then the low 16 bits of the capabilities.
  void CheckHandshake(std::string_view packet) {
    size_t nul = packet.find('\0', 5);
    Check(nul != std::string_view::npos && packet.size() >= nul + 16, "handshake too short");
    const auto* p = reinterpret_cast<const uint8_t*>(packet.data()) + nul + 14;
    const uint32_t caps_low = uint32_t{p[0]} | (uint32_t{p[1]} << 8);
    Check(((caps_low & codec::mysql::kSsl) != 0) == tls_available_,
          "the handshake offers CLIENT_SSL where TLS is not on offer, or not where it is");
  }

  // The proxy's deferred answer (a server for the client) gets a turn whenever the pump yields.
  bool Answer() {
    if (tls_pending_) {
      // The proxy starts TLS once the codec's call returns and the pump yields.
      tls_pending_ = false;
      codec_->OnTlsStarted();
      return true;
    }
    bool answered = false;
    for (auto& [key, status] : statements_) {
      if (status == codec::ServerStatement::kPreparing) {
        status =
            (flags_ & 32) != 0 ? codec::ServerStatement::kFailed : codec::ServerStatement::kReady;
        answered = true;
      }
    }
    if (answered) {
      return true;  // the server's answer is in: the paused codec is fed again
    }
    if (!login_pending_) {
      return false;
    }
    login_pending_ = false;
    codec_->CompleteLogin(codec::ParamList{{"server_version", "10.11.0-MariaDB"}});
    Check(codec_->CancelKey() == "7", "cancel key is not the connection id");
    logged_in_ = true;
    return true;
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
      Check(v == Verdict::kPause && pump_.available() == before,
            "the codec read the bytes behind the SSL request");
    } else if (tls_pending_) {
      Check(v == Verdict::kConsume, "OnTlsRequest from a Step that did not take the request");
    }
    Check(v != Verdict::kForward || logged_in_, "forwarded before login");
    Check(v != Verdict::kPause || !logged_in_ || (flags_ & 16) != 0,
          "kPause after login without transaction pooling");
    if (Advanced(v)) {
      return true;
    }
    // kNeedMore and kPause yield, and the proxy gets its turn.
    return v != Verdict::kStop && Answer();
  }

  uint8_t flags_;
  bool tls_available_;
  std::unique_ptr<codec::mysql::ClientCodec> codec_;
  bool tls_requested_ = false;
  bool tls_pending_ = false;  // OnTlsRequest heard, OnTlsStarted not called yet
  bool started_ = false;
  bool authenticated_ = false;
  bool login_pending_ = false;
  bool logged_in_ = false;
  int sent_ = 0;
  std::map<std::string, codec::ServerStatement::Status> statements_;
};

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return wirepool::fuzz::DriveInput<wirepool::fuzz::Harness>(data, size,
                                                             wirepool::fuzz::kRandomPrefix);
}
