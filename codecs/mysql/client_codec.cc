// The client side of a MySQL connection: handshake, the login packet, dispatch and errors. The
// auth exchange is in client_auth.cc, commands while running in client_command.cc.

#include "codecs/mysql/client_codec.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

#include "codecs/mysql/auth.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"
#include "fmt/format.h"

namespace wirepool::codec::mysql {
namespace {

constexpr uint8_t kProtocolVersion = 10;
constexpr uint8_t kDefaultCharset = 45;  // utf8mb4_general_ci
constexpr std::string_view kDefaultServerVersion = "5.5.5-10.11.0-MariaDB-wirepool";
constexpr size_t kScramblePart1 = 8;
constexpr size_t kHandshakeReserved = 10;
constexpr size_t kFillerLen = 23;  // after capabilities, max packet size and charset
constexpr size_t kSslRequestLen = 32;
constexpr uint8_t kErrHeader = 0xff;

std::string_view Find(const std::shared_ptr<const ParamList>& list, std::string_view name) {
  if (list == nullptr) {
    return {};
  }
  const ParamList& params = *list;
  for (const auto& [key, value] : params) {
    if (key == name) {
      return value;
    }
  }
  return {};
}

// A decimal number in [0, max], or nullopt.
std::optional<uint64_t> ParseDecimal(std::string_view text, uint64_t max) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v > max) {
    return std::nullopt;
  }
  return v;
}

std::string_view AsChars(ByteView v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

}  // namespace

ClientCodec::ClientCodec(const ClientCodecOptions& options, ClientCodecSink& sink)
    : options_(options), sink_(sink) {
  auth_plugin_ =
      options_.auth_method == kCachingSha2Password ? kCachingSha2Password : kNativePassword;
  server_caps_ = kProxyCapabilities;
  if (auto caps = ParseDecimal(Find(options_.server_params, "capabilities"), UINT32_MAX)) {
    // What the backends cannot do is not offered either; the protocol itself stays.
    server_caps_ &= static_cast<uint32_t>(*caps) | kProtocol41 | kSecureConnection | kPluginAuth;
  }
  if (options_.tls_available) {
    server_caps_ |= kSsl;  // the client leg's TLS is the proxy's own, whatever the backends do
  }
  charset_ = kDefaultCharset;
  if (auto cs = ParseDecimal(Find(options_.server_params, "charset"), 255); cs && *cs != 0) {
    charset_ = static_cast<uint8_t>(*cs);
  }
}

void ClientCodec::Start() {
  if (state_ != State::kInit) {
    return;
  }
  // 20 random bytes in 1..127: never NUL, since the second part travels NUL-terminated.
  scramble_.resize(kScrambleLen);
  options_.random(reinterpret_cast<uint8_t*>(scramble_.data()), scramble_.size());
  for (char& c : scramble_) {
    c = static_cast<char>(c & 0x7f);
    if (c == 0) {
      c = 1;
    }
  }
  std::string_view version = Find(options_.server_params, "server_version");
  if (version.empty()) {
    version = kDefaultServerVersion;
  }
  version = version.substr(0, version.find('\0'));
  Writer w;
  w.U8(kProtocolVersion)
      .NulString(version)
      .U32(options_.connection_id)
      .Bytes(std::string_view(scramble_).substr(0, kScramblePart1))
      .U8(0)
      .U16(static_cast<uint16_t>(server_caps_ & 0xffff))
      .U8(charset_)
      .U16(kStatusAutocommit)
      .U16(static_cast<uint16_t>(server_caps_ >> 16))
      .U8(static_cast<uint8_t>(kScrambleLen + 1))
      .Bytes(std::string(kHandshakeReserved, '\0'))  // MariaDB's extended capabilities: none
      .Bytes(std::string_view(scramble_).substr(kScramblePart1))
      .U8(0)
      .NulString(auth_plugin_);
  state_ = State::kHandshake;
  SendPacket(w.payload());
  awaiting_client_ = true;
}

Step ClientCodec::OnBytes(ByteView in) {
  switch (state_) {
    case State::kInit:
      return Violation("the client spoke before the server handshake");
    case State::kHandshake:
    case State::kAuthSwitch:
    case State::kFullAuth:
    case State::kRsaPassword:
      return OnLoginBytes(in);
    case State::kTlsPending:
      // The client's TLS hello, sent right behind the SSL request: the proxy hands it to TLS,
      // so nothing between the request and the handshake is ever read as the client's.
      return {Verdict::kPause};
    case State::kAwaitAuth:
    case State::kAwaitLogin:
      return {Verdict::kPause};
    case State::kRunning:
      return OnRunning(in);
    case State::kDone:
      return {Verdict::kStop};
  }
  return {Verdict::kStop};
}

void ClientCodec::OnTlsStarted() {
  if (state_ != State::kTlsPending) {
    return;
  }
  // The full HandshakeResponse41 follows through TLS, with the next sequence id.
  state_ = State::kHandshake;
  tls_ = true;
  awaiting_client_ = true;
}

// Login packets are read whole (they are small and capped by max_startup_bytes) and must carry
// the next sequence id of the exchange.
Step ClientCodec::OnLoginBytes(ByteView in) {
  auto header = ReadHeader(in);
  if (!header) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  if (header->seq != seq_) {
    uint8_t expected = seq_;
    seq_ = static_cast<uint8_t>(header->seq + 1);
    awaiting_client_ = false;
    return Violation(Cat("Got packets out of order: expected sequence id ",
                         static_cast<int>(expected), ", got ", static_cast<int>(header->seq)));
  }
  size_t total = kHeaderLen + header->length;
  if (header->length >= kMaxPayload || startup_bytes_ + total > options_.max_startup_bytes) {
    seq_ = static_cast<uint8_t>(header->seq + 1);
    awaiting_client_ = false;
    return Violation(Cat("login packet of ", header->length, " bytes is over the limit of ",
                         options_.max_startup_bytes, " bytes before login"));
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  startup_bytes_ += total;
  seq_ = static_cast<uint8_t>(header->seq + 1);
  awaiting_client_ = false;
  ByteView payload = in.subspan(kHeaderLen, header->length);
  Step step;
  switch (state_) {
    case State::kHandshake:
      step = OnHandshakeResponse(payload);
      break;
    case State::kAuthSwitch:
      step = OnAuthPacket(payload);
      break;
    case State::kFullAuth:
      step = OnFullAuthPacket(payload);
      break;
    default:
      step = OnRsaPassword(payload);
      break;
  }
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  if (step.verdict == Verdict::kConsume) {
    step.bytes = total;
  }
  return step;
}

Step ClientCodec::OnHandshakeResponse(ByteView payload) {
  constexpr const char* kTruncated = "malformed handshake response packet";
  // A client older than 4.1 sends two bytes of capabilities and a different layout.
  if (payload.size() < 2) {
    return Violation(kTruncated);
  }
  if (((payload[0] | (payload[1] << 8)) & kProtocol41) == 0) {
    return Violation("wirepool requires a client that speaks protocol 4.1 (CLIENT_PROTOCOL_41)");
  }
  Reader r(payload);
  auto caps = r.U32();
  auto max_packet = r.U32();
  auto charset = r.U8();
  auto filler = r.Bytes(kFillerLen);
  if (!caps || !max_packet || !charset || !filler) {
    return Violation(kTruncated);
  }
  if (payload.size() == kSslRequestLen && (*caps & kSsl)) {
    if (tls_) {
      return Violation("SSL request on a connection that is already encrypted");
    }
    if ((server_caps_ & kSsl) == 0) {
      return Refuse(ProxyError::kNotSupported,
                    "TLS is not enabled on this wirepool proxy (client_tls)",
                    absl::UnimplementedError("client asked for TLS, which is not offered"));
    }
    state_ = State::kTlsPending;
    sink_.OnTlsRequest(TlsStart::kHelloFollows);
    return {Verdict::kConsume};
  }
  client_caps_ = *caps;
  auto user = r.NulString();
  if (!user) {
    return Violation(kTruncated);
  }
  std::optional<std::string_view> response;
  if (client_caps_ & kPluginAuthLenencClientData) {
    response = r.LenencString();
  } else if (client_caps_ & kSecureConnection) {
    if (auto len = r.U8()) {
      response = r.Bytes(*len);
    }
  } else {
    response = r.NulString();
  }
  if (!response) {
    return Violation(kTruncated);
  }
  std::string_view database;
  if ((client_caps_ & kConnectWithDb) && !r.done()) {
    auto db = r.NulString();
    if (!db) {
      return Violation(kTruncated);
    }
    database = *db;
  }
  // Without CLIENT_PLUGIN_AUTH (or without a name) the response is a native password one.
  std::string_view plugin = kNativePassword;
  if ((client_caps_ & kPluginAuth) && !r.done()) {
    auto name = r.NulString();
    if (!name && (client_caps_ & kConnectAttrs)) {
      return Violation(kTruncated);
    }
    plugin = name ? *name : r.Rest();  // some old clients leave off the NUL at the very end
  }
  if ((client_caps_ & kConnectAttrs) && !r.done()) {
    // Connection attributes (program name, client version, ...): not used, but must be whole.
    if (!r.LenencString()) {
      return Violation(kTruncated);
    }
  }
  // Anything after that is ignored, as MySQL does.

  user_ = std::string(*user);
  client_plugin_ = std::string(plugin);
  auth_response_ = std::string(*response);
  charset_ = *charset;
  state_ = State::kAwaitAuth;
  sink_.OnStartup(MakeStartup(database));
  return {Verdict::kConsume};
}

StartupInfo ClientCodec::MakeStartup(std::string_view database) const {
  uint32_t negotiated = client_caps_ & server_caps_;
  StartupInfo info;
  info.user = user_;
  info.database = std::string(database);
  info.pool_key = fmt::format("flags=0x{:x},cs={}{}", negotiated & kPoolKeyCapabilities,
                              static_cast<int>(charset_), database.empty() ? "" : ",db");
  info.login_options = {{"client_flags", std::to_string(negotiated)},
                        {"charset", std::to_string(charset_)}};
  if (!database.empty()) {
    info.params = {{"schema", std::string(database)}};
  }
  return info;
}

void ClientCodec::CompleteLogin(const ParamList& server_params) {
  if (state_ != State::kAwaitLogin) {
    return;
  }
  // A fresh session (after COM_CHANGE_USER too): autocommit, no transaction.
  server_status_ = kStatusAutocommit;
  OkPacket ok;
  ok.status = server_status_;
  SendPacket(OkPayload(ok, client_caps_ & server_caps_));
  // Every command from now on starts an exchange of its own at sequence id 0.
  state_ = State::kRunning;
  seq_ = 0;
  awaiting_client_ = false;
}

std::string ClientCodec::CancelKey() const { return std::to_string(options_.connection_id); }

void ClientCodec::SendPacket(std::string_view payload) {
  uint8_t seq = NextSeqForClient();
  sink_.SendToClient(FramePacket(payload, seq));
  seq_ = static_cast<uint8_t>(seq + 1);
  awaiting_client_ = false;
}

uint8_t ClientCodec::NextSeqForClient() const {
  // While the client owes us a packet with id seq_, it expects our next one at seq_ + 1.
  return awaiting_client_ ? static_cast<uint8_t>(seq_ + 1) : seq_;
}

void ClientCodec::SendError(ProxyError error, std::string_view message) {
  MysqlError e = ErrorFor(error);
  SendPacket(ErrPayload(e.code, e.sql_state, message));
}

void ClientCodec::SendServerError(const WireError& error) {
  // `raw` is a whole ERR packet as the server framed it: keep the payload, use our sequence id.
  auto raw = ByteView(reinterpret_cast<const uint8_t*>(error.raw.data()), error.raw.size());
  auto header = ReadHeader(raw);
  if (header && header->length == raw.size() - kHeaderLen && header->length > 0 &&
      raw[kHeaderLen] == kErrHeader) {
    SendPacket(AsChars(raw.subspan(kHeaderLen)));
    return;
  }
  MysqlError fallback = ErrorFor(ProxyError::kServerUnavailable);
  uint16_t code = static_cast<uint16_t>(ParseDecimal(error.code, 65535).value_or(fallback.code));
  SendPacket(ErrPayload(code, "HY000", error.message));
}

Step ClientCodec::Violation(std::string_view message) {
  return Refuse(ProxyError::kProtocolViolation, message, absl::InvalidArgumentError(Av(message)));
}

Step ClientCodec::Refuse(ProxyError error, std::string_view message, absl::Status status) {
  state_ = State::kDone;
  SendError(error, message);
  sink_.OnProtocolError(status);
  return {Verdict::kStop};
}

}  // namespace wirepool::codec::mysql
