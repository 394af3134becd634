// libFuzzer target: mysql::ServerCodec (the proxy playing the client to a backend) after Start(),
// driven the way proxy/pump.h drives it, by a sink that answers like the proxy.
//
// Input layout:
//   byte 0     flags: bits 0-1 the login option "client_flags" (none, the flags of
//              server_codec_live_eof.txt, the defaults without CLIENT_DEPRECATE_EOF and
//              CLIENT_SESSION_TRACK, the defaults with CLIENT_LOCAL_FILES); bit 2 SendReset, bit 3
//              SendSetParameters({schema, x}) (when ParametersToApply says so), bit 4
//              SendInternalQuery, each when the server is idle after a response; bit 5 ask
//              ParametersToApply after each Step; bit 6 announce requests between any two Steps
//              (pipelining), not only when the server is idle; bit 7 ServerLogin::tls (after
//              OnTlsOffer, once the pump yields, the sink calls ContinueLogin with the server's
//              answer, as the proxy does, and what follows is read as if TLS had decrypted it)
//   byte 1     chunking: 0 whole, 1 byte by byte, else seeded pseudo-random chunk sizes
//   bytes 2-5  what the injected RandomFn yields first; a counter pattern (0x10, 0x11, ...) follows
//   byte 6     n, the number of request tags that follow
//   n bytes    request tags, used in turn (and again from the first when used up; COM_QUERY when
//              n is 0): the low 6 bits are the command byte (COM_QUERY 0x03, COM_FIELD_LIST 0x04,
//              COM_STATISTICS 0x09, COM_STMT_PREPARE 0x16, COM_STMT_EXECUTE 0x17, ...), bit 7 adds
//              kTagMultiPacket, bit 6 announces the next tag at once as well
//   the rest   the bytes the server sends
// The codec logs in as user "fixture", password "fixture-pw", database wp_db. The seed corpus
// (tests/fuzz/corpus/mysql_server_fuzz/) holds the S streams of the golden fixtures with the
// commands of their C streams as tags.
//
// Invariants (a violation traps): a Step never forwards or consumes more bytes than it was given,
// nor zero bytes; kNeedMore asks for more than is available; a terminal sink event (OnLoginFailed,
// OnProtocolError) comes with kStop from the same Step and kStop comes with one; login completes
// at most once and before any response; OnReadyForQuery only while a client request is
// outstanding and OnInternalDone only while a request of the codec's own is; nothing is forwarded
// before login; everything sent to the server is whole, well-framed packets; the codec never
// pauses; with tls, OnTlsOffer comes at most once, before login, after the 32-byte SSL request
// (sequence id 1, CLIENT_SSL) where the server offered TLS and with nothing sent where it did not,
// and the HandshakeResponse41 only after ContinueLogin; nothing is fed after kStop. Each Step sees
// a fresh heap copy of exactly the unconsumed bytes.
//
// Bytes 0-1, the RandomFn, the chunking and the Step checks shared by all codecs come from
// fuzz_driver.h; this file keeps what is particular to its codec and sink.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/codec.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/wire.h"
#include "tests/fuzz/fuzz_driver.h"

namespace wirepool::fuzz {
namespace {

using wirepool::codec::Verdict;
using wirepool::codec::WireError;
namespace mysql = wirepool::codec::mysql;

size_t ReadU24(const uint8_t* p) {
  return size_t{p[0]} | (size_t{p[1]} << 8) | (size_t{p[2]} << 16);
}

// Whole MySQL packets: a 3-byte little-endian length that covers exactly the payload after the
// sequence id. An empty packet (the refusal of a LOCAL INFILE) is allowed.
void CheckFraming(std::string_view bytes, const char* what) {
  Check(!bytes.empty(), what);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t pos = 0;
  while (pos < bytes.size()) {
    Check(bytes.size() - pos >= 4, what);
    size_t len = ReadU24(p + pos);
    Check(bytes.size() - pos - 4 >= len, what);
    pos += 4 + len;
  }
}

std::string ClientFlagsOption(uint8_t choice) {
  constexpr uint32_t kDefaults = mysql::ServerCodec::kDefaultClientFlags;
  switch (choice & 3) {
    case 1:
      return "11510405";  // server_codec_live_eof.txt
    case 2:
      return std::to_string(kDefaults & ~(mysql::kDeprecateEof | mysql::kSessionTrack));
    case 3:
      return std::to_string(kDefaults | mysql::kLocalFiles);
    default:
      return "";
  }
}

class Harness final : public codec::ServerCodecSink, public PumpedHarness<Harness> {
 public:
  Harness(uint8_t flags, std::string random_prefix, std::vector<uint8_t> tags)
      : flags_(flags), tls_((flags & 128) != 0), tags_(std::move(tags)) {
    codec::ServerLogin login;
    login.user = "fixture";
    login.password = "fixture-pw";
    login.database = "wp_db";
    std::string client_flags = ClientFlagsOption(flags);
    if (!client_flags.empty()) {
      login.options = {{"client_flags", client_flags}, {"charset", "45"}};
    }
    login.random = PrefixThenCounterRandom(std::move(random_prefix));
    login.tls = tls_;
    codec_ = std::make_unique<mysql::ServerCodec>(login, *this);
    codec_->Start();
    Check(sent_ == 0, "Start sent something before the server's handshake");
  }

  // The codec failed the login outside a Step (in ContinueLogin): the proxy closes.
  bool stopped() const { return pump_.stopped() || failed_outside_step_; }

  // Sink.
  void SendToServer(std::string_view bytes) override {
    CheckFraming(bytes, "SendToServer: bad framing");
    if (tls_ && !continued_) {
      // Only the SSL request goes before ContinueLogin.
      Check(sent_ == 0 && bytes.size() == 4 + 32 && bytes[3] == 1,
            "sent more than a 32-byte SSL request at sequence id 1 before ContinueLogin");
      Check((static_cast<uint8_t>(bytes[5]) & (mysql::kSsl >> 8)) != 0,
            "an SSL request without CLIENT_SSL");
    }
    ++sent_;
  }
  void OnTlsOffer(bool accepted) override {
    Check(tls_, "OnTlsOffer without ServerLogin::tls");
    Check(!offered_, "OnTlsOffer twice");
    Check(!logged_in_, "OnTlsOffer after login");
    Check(sent_ == (accepted ? 1 : 0),
          "OnTlsOffer: SSL request sent where not offered, or not sent");
    offered_ = true;
    offer_ = accepted;
  }
  void OnLoginComplete() override {
    Check(!logged_in_, "OnLoginComplete twice");
    logged_in_ = true;
    idle_ = true;
    (void)codec_->CancelKey();
    (void)codec_->Parameters();
  }
  void OnLoginFailed(const WireError& error) override {
    Check(!logged_in_, "OnLoginFailed after login");
    CheckFraming(error.raw, "OnLoginFailed: bad framing");
    Check(error.raw.size() > 4 && static_cast<uint8_t>(error.raw[4]) == 0xff,
          "OnLoginFailed without an ERR packet");
    if (in_continue_) {
      failed_outside_step_ = true;  // no Step to carry a kStop
      return;
    }
    pump_.OnTerminal();
  }
  void OnReadyForQuery(codec::TxState) override {
    Check(logged_in_, "OnReadyForQuery before login");
    Check(client_outstanding_ > 0, "OnReadyForQuery with no client request outstanding");
    --client_outstanding_;
    idle_ = true;
  }
  void OnParameterStatus(std::string_view, std::string_view) override {
    Check(logged_in_, "OnParameterStatus before login");
  }
  void OnInternalDone(const WireError* error) override {
    Check(internal_outstanding_ > 0, "OnInternalDone with nothing outstanding");
    --internal_outstanding_;
    if (error != nullptr) {
      Check(error->raw.size() > 4 && static_cast<uint8_t>(error->raw[4]) == 0xff,
            "internal error without an ERR packet");
    }
    idle_ = true;
  }
  void OnProtocolError(const absl::Status& status) override {
    Check(!status.ok(), "OnProtocolError with OK status");
    pump_.OnTerminal();
  }

 private:
  void ExpectNext() {
    uint8_t tag = tags_.empty() ? mysql::kComQuery : tags_[next_tag_++ % tags_.size()];
    uint32_t command = tag & 0x3f;
    if ((tag & 0x80) != 0) {
      command |= mysql::kTagMultiPacket;
    }
    ++issued_;
    uint32_t byte = command & 0xff;
    if (byte != mysql::kComQuit && byte != mysql::kComStmtClose &&
        byte != mysql::kComStmtSendLongData) {
      ++client_outstanding_;
    }
    codec_->ExpectResponse(command);
    if ((tag & 0x40) != 0 && issued_ < 4096) {
      ExpectNext();
    }
  }

  // The proxy's requests get a turn between Steps: the client's next request (when the server is
  // idle, or at any time with pipelining), and the codec's own requests when it is idle.
  void Answer() {
    if (!logged_in_ || issued_ >= 4096) {
      return;
    }
    bool idle = idle_ && client_outstanding_ == 0 && internal_outstanding_ == 0;
    if (idle) {
      idle_ = false;
      if ((flags_ & 4) != 0 && internals_ < 8) {
        ++internals_;
        ++internal_outstanding_;
        codec_->SendReset();
      }
      if ((flags_ & 8) != 0 && internals_ < 8) {
        ++internals_;
        codec::ParamList todo = codec_->ParametersToApply({{"schema", "x"}});
        if (!todo.empty()) {
          ++internal_outstanding_;
          codec_->SendSetParameters(todo);
        }
      }
      if ((flags_ & 16) != 0 && internals_ < 8) {
        ++internals_;
        ++internal_outstanding_;
        codec_->SendInternalQuery("SELECT 1");
      }
      ExpectNext();
    } else if ((flags_ & 64) != 0 && client_outstanding_ < 4) {
      ExpectNext();
    }
  }

  friend class PumpedHarness<Harness>;

  // After OnTlsOffer, once the pump yields: the proxy starts TLS (or not), then the login goes on.
  void Continue() {
    const bool encrypted = *offer_;
    offer_.reset();
    continued_ = true;
    in_continue_ = true;
    const int sent_before = sent_;
    codec_->ContinueLogin(encrypted);
    in_continue_ = false;
    Check(sent_ == sent_before + 1 || failed_outside_step_,
          "ContinueLogin sent no HandshakeResponse41");
  }

  // One Step; false when the pump yields.
  bool Turn() {
    if (failed_outside_step_) {
      return false;
    }
    if (offer_.has_value() && pump_.available() == 0) {
      Continue();
      return false;
    }
    Answer();
    if (pump_.available() == 0) {
      return false;
    }
    bool logged_in_before = logged_in_;
    Verdict v = pump_.Step(*codec_);
    if ((flags_ & 32) != 0) {
      (void)codec_->ParametersToApply({{"schema", "wp_db"}});
    }
    Check(v != Verdict::kPause, "the server codec never waits for the proxy");
    Check(v != Verdict::kForward || logged_in_before, "forwarded a login packet");
    // kNeedMore yields (the proxy's requests come at the start of the next Turn).
    return Advanced(v);
  }

  uint8_t flags_;
  bool tls_;
  bool offered_ = false;
  bool continued_ = false;
  bool in_continue_ = false;
  bool failed_outside_step_ = false;
  std::optional<bool> offer_;  // OnTlsOffer's answer, until the pump yields
  std::vector<uint8_t> tags_;
  size_t next_tag_ = 0;
  std::unique_ptr<mysql::ServerCodec> codec_;
  bool logged_in_ = false;
  bool idle_ = false;
  int sent_ = 0;
  int internals_ = 0;
  int issued_ = 0;
  int client_outstanding_ = 0;
  int internal_outstanding_ = 0;
};

}  // namespace
}  // namespace wirepool::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wirepool::fuzz::InputHeader header;
  // After the common header: byte n, then n request tags.
  if (!wirepool::fuzz::TakeHeader(data, size, 4, header) || size < 1 ||
      size < 1 + size_t{data[0]}) {
    return 0;
  }
  std::vector<uint8_t> tags(data + 1, data + 1 + data[0]);
  size_t skip = 1 + size_t{data[0]};
  data += skip;
  size -= skip;
  wirepool::fuzz::Harness h(header.flags, std::move(header.random_prefix), std::move(tags));
  wirepool::fuzz::FeedInChunks(h, header.chunking, data, size);
  return 0;
}
