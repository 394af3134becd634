// The login half of mysql::ServerCodec: Handshake v10 in, HandshakeResponse41 out, then the auth
// plugins' exchange (AuthSwitchRequest, AuthMoreData) until OK or ERR.

#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <string>

#include "codecs/mysql/auth.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// Nothing the server says before login is complete is bigger than this (a PEM key is ~500 bytes).
constexpr size_t kMaxLoginPacket = 1 << 20;

constexpr uint8_t kProtocolVersion = 10;
constexpr uint8_t kOkByte = 0x00;
constexpr uint8_t kMoreDataByte = 0x01;
constexpr uint8_t kSwitchByte = 0xfe;
constexpr uint8_t kErrByte = 0xff;

// caching_sha2_password's AuthMoreData verdicts and the request for the server's public key.
constexpr uint8_t kSha2FastAuthOk = 0x03;
constexpr uint8_t kSha2FullAuthNeeded = 0x04;
constexpr char kSha2RequestPublicKey[] = "\x02";

constexpr uint32_t kMaxPacketSize = 0x01000000;
constexpr uint8_t kDefaultCharset = 45;  // utf8mb4_general_ci
constexpr size_t kFillerLen = 23;

constexpr char kNativePassword[] = "mysql_native_password";
constexpr char kCachingSha2[] = "caching_sha2_password";
constexpr char kEd25519[] = "client_ed25519";
constexpr char kClearPassword[] = "mysql_clear_password";

// Always asked for: the protocol this codec speaks.
constexpr uint32_t kRequiredFlags = kProtocol41 | kSecureConnection | kPluginAuth |
                                    kPluginAuthLenencClientData | kTransactions | kLongPassword |
                                    kLongFlag;
// Never asked for: TLS only through ServerLogin::tls (the stream does it, the codec only says
// so); compression would hide the
// framing; query attributes and optional metadata change packets this codec frames; connection
// attributes would be the proxy's own, and the last two flags only ever mean something to a client
// library.
constexpr uint32_t kRefusedFlags = kSsl | kCompress | kConnectAttrs | kQueryAttributes |
                                   kOptionalResultsetMetadata | kSslVerifyServerCert |
                                   kRememberOptions;

std::optional<uint64_t> ParseDecimal(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    return std::nullopt;
  }
  return v;
}

const std::string* FindOption(const ParamList& options, std::string_view name) {
  for (const auto& [key, value] : options) {
    if (key == name) {
      return &value;
    }
  }
  return nullptr;
}

bool Supported(std::string_view plugin) {
  return plugin == kNativePassword || plugin == kCachingSha2 || plugin == kEd25519 ||
         plugin == kClearPassword;
}

}  // namespace

Step ServerCodec::OnLoginBytes(ByteView in) {
  auto header = ReadHeader(in);
  if (!header) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  size_t total = kHeaderLen + header->length;
  if (header->length >= kMaxPayload || total > kMaxLoginPacket) {
    return LoginFailed(ErrorFor(ProxyError::kProtocolViolation),
                       Cat("the server sent a login packet of ", header->length, " bytes"));
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  if (header->seq != login_seq_) {
    return LoginFailed(
        ErrorFor(ProxyError::kProtocolViolation),
        Cat("the server sent sequence id ", header->seq, " during login, expected ", login_seq_));
  }
  if (header->length == 0) {
    return LoginFailed(ErrorFor(ProxyError::kProtocolViolation),
                       "the server sent an empty packet during login");
  }
  login_seq_ = static_cast<uint8_t>(header->seq + 1);
  ByteView packet = in.first(total);
  Step step = state_ == State::kAuth ? OnAuthReply(packet) : OnHandshake(packet);
  if (step.verdict == Verdict::kConsume) {
    step.bytes = total;
  }
  return step;
}

Step ServerCodec::OnHandshake(ByteView packet) {
  ByteView payload = packet.subspan(kHeaderLen);
  if (payload[0] == kErrByte) {
    // Refused before any handshake (MySQL's "too many connections", a blocked host...).
    state_ = State::kDone;
    sink_.OnLoginFailed(ServerError(packet, /*fatal=*/true));
    return {Verdict::kStop};
  }
  const MysqlError malformed = ErrorFor(ProxyError::kProtocolViolation);
  Reader r(payload);
  auto protocol = r.U8();
  if (*protocol != kProtocolVersion) {
    return LoginFailed(malformed, Cat("the server speaks protocol version ", *protocol,
                                      "; wirepool speaks version 10"));
  }
  auto version = r.NulString();
  auto thread_id = version ? r.U32() : std::nullopt;
  auto part1 = thread_id ? r.Bytes(8) : std::nullopt;
  auto filler = part1 ? r.U8() : std::nullopt;
  auto caps_low = filler ? r.U16() : std::nullopt;
  // Servers older than 4.1 end here; wirepool needs what follows.
  auto charset = caps_low ? r.U8() : std::nullopt;
  auto status = charset ? r.U16() : std::nullopt;
  auto caps_high = status ? r.U16() : std::nullopt;
  auto auth_len = caps_high ? r.U8() : std::nullopt;
  auto reserved = auth_len ? r.Bytes(6) : std::nullopt;
  auto extended = reserved ? r.U32() : std::nullopt;  // MariaDB's capabilities, or reserved
  if (!extended) {
    return LoginFailed(malformed, "the server sent a truncated handshake");
  }
  server_caps_ = *caps_low | (uint32_t{*caps_high} << 16);
  if ((server_caps_ & kProtocol41) == 0 || (server_caps_ & kSecureConnection) == 0) {
    return LoginFailed(malformed, "the server does not speak the 4.1 protocol");
  }
  // The second part of the scramble: at least 13 bytes, the last of which is a NUL.
  size_t part2_len = std::max<size_t>(13, *auth_len > 8 ? *auth_len - 8 : 0);
  auto part2 = r.Bytes(part2_len);
  if (!part2) {
    return LoginFailed(malformed, "the server sent a truncated scramble");
  }
  if (!part2->empty() && part2->back() == '\0') {
    part2->remove_suffix(1);
  }
  std::string plugin = kNativePassword;
  if (server_caps_ & kPluginAuth) {
    auto name = r.NulString();
    plugin = std::string(name ? *name : r.Rest());  // some servers leave out the NUL
  }

  cancel_key_ = Cat(*thread_id);
  status_ = *status;
  SetParameter("server_version", *version);
  SetParameter("capabilities", Cat(server_caps_));
  if ((server_caps_ & kLongPassword) == 0) {
    SetParameter("mariadb_capabilities", Cat(*extended));
  }
  SetParameter("charset", Cat(*charset));
  SetParameter("connection_id", cancel_key_);

  uint32_t wanted = kDefaultClientFlags;
  if (const std::string* flags = FindOption(login_.options, "client_flags")) {
    auto v = ParseDecimal(*flags);
    if (v && *v <= UINT32_MAX) {
      wanted = static_cast<uint32_t>(*v);
    }
  }
  client_flags_ = ((wanted & server_caps_) | kRequiredFlags) & ~(kRefusedFlags | kConnectWithDb);
  if (!login_.database.empty()) {
    client_flags_ |= kConnectWithDb;
  }
  uint8_t client_charset = kDefaultCharset;
  if (const std::string* cs = FindOption(login_.options, "charset")) {
    auto v = ParseDecimal(*cs);
    if (v && *v > 0 && *v <= 0xff) {
      client_charset = static_cast<uint8_t>(*v);
    }
  }

  // A handshake names the server's default plugin, not necessarily the user's: when it is one
  // wirepool lacks, answer as mysql_native_password (as libmariadb does) and let the server switch
  // to the user's plugin. Only a switch to an unsupported plugin fails the login.
  plugin_ = Supported(plugin) ? plugin : kNativePassword;
  scramble_ = Cat(*part1, *part2);
  handshake_plugin_ = plugin_;
  handshake_scramble_ = scramble_;
  charset_ = client_charset;
  sha2_ = plugin_ == kCachingSha2 ? Sha2::kScrambleSent : Sha2::kNone;
  if (!login_.tls) {
    SendHandshakeResponse();
    return state_ == State::kDone ? Step{Verdict::kStop} : Step{Verdict::kConsume};
  }
  const bool offered = (server_caps_ & kSsl) != 0;
  if (offered) {
    // The SSL request: the response's fixed head alone, with CLIENT_SSL; TLS starts after it.
    client_flags_ |= kSsl;
    Writer w;
    w.U32(client_flags_).U32(kMaxPacketSize).U8(charset_).Bytes(std::string(kFillerLen, '\0'));
    SendPacket(w.payload(), login_seq_);
    login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
  }
  state_ = State::kTlsPending;
  sink_.OnTlsOffer(offered);
  return {Verdict::kConsume};
}

void ServerCodec::ContinueLogin(bool encrypted) {
  if (state_ != State::kTlsPending) {
    return;
  }
  // Only a connection that asked for TLS can be under it: never send a password in cleartext on
  // the word of a caller alone.
  tls_ = encrypted && (client_flags_ & kSsl) != 0;
  SendHandshakeResponse();
}

void ServerCodec::SendHandshakeResponse() {
  auto auth = AuthResponse();
  if (!auth.ok()) {
    LoginFailed(auth.status());
    return;
  }
  Writer w;
  w.U32(client_flags_).U32(kMaxPacketSize).U8(charset_).Bytes(std::string(kFillerLen, '\0'));
  w.NulString(login_.user).LenencString(*auth);
  if (client_flags_ & kConnectWithDb) {
    w.NulString(login_.database);
  }
  w.NulString(plugin_);
  SendPacket(w.payload(), login_seq_);
  login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
  state_ = State::kAuth;
}

Step ServerCodec::OnAuthReply(ByteView packet) {
  ByteView payload = packet.subspan(kHeaderLen);
  switch (payload[0]) {
    case kOkByte:
      return OnLoginOk(payload);
    case kErrByte: {
      // Wrong password, unknown database, and MariaDB's "too many connections" all come here.
      WireError error = ServerError(packet, /*fatal=*/true);
      if (relogin_) {
        return ReloginDone(&error);
      }
      state_ = State::kDone;
      sink_.OnLoginFailed(error);
      return {Verdict::kStop};
    }
    case kSwitchByte:
      return OnAuthSwitch(payload);
    case kMoreDataByte:
      return OnAuthMoreData(payload);
    default:
      return LoginFailed(ErrorFor(ProxyError::kProtocolViolation),
                         Cat("the server sent packet type ", static_cast<int>(payload[0]),
                             " during authentication"));
  }
}

Step ServerCodec::OnAuthSwitch(ByteView payload) {
  Reader r(payload.subspan(1));
  auto name = r.NulString();
  if (!name) {
    // A bare 0xfe asks for the pre-4.1 password hash.
    return LoginFailed(absl::UnimplementedError(
        "the server asks for the old (pre-4.1) password authentication, which wirepool does not "
        "support"));
  }
  std::string_view data = r.Rest();
  // mysql_native_password and caching_sha2 send their 20-byte scramble NUL-terminated;
  // client_ed25519 sends its 32-byte nonce bare, and one nonce in 256 ends in a zero byte that is
  // part of it (stripping it failed those logins with 1045).
  if (*name != kEd25519 && !data.empty() && data.back() == '\0') {
    data.remove_suffix(1);
  }
  plugin_ = std::string(*name);
  scramble_ = std::string(data);
  sha2_ = plugin_ == kCachingSha2 ? Sha2::kScrambleSent : Sha2::kNone;
  auto auth = AuthResponse();
  if (!auth.ok()) {
    return LoginFailed(auth.status());
  }
  SendPacket(*auth, login_seq_);
  login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
  return {Verdict::kConsume};
}

Step ServerCodec::OnAuthMoreData(ByteView payload) {
  const MysqlError malformed = ErrorFor(ProxyError::kProtocolViolation);
  ByteView data = payload.subspan(1);
  if (plugin_ != kCachingSha2) {
    return LoginFailed(malformed, Cat("the server sent more authentication data for ", plugin_));
  }
  switch (sha2_) {
    case Sha2::kScrambleSent:
      if (data.size() == 1 && data[0] == kSha2FastAuthOk) {
        sha2_ = Sha2::kNone;  // the OK follows
        return {Verdict::kConsume};
      }
      if (data.size() == 1 && data[0] == kSha2FullAuthNeeded && tls_) {
        // Inside TLS the password goes as it is (NUL-terminated), as MySQL's own client does.
        std::string password = login_.password;
        password.push_back('\0');
        SendPacket(password, login_seq_);
        OPENSSL_cleanse(password.data(), password.size());
        login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
        sha2_ = Sha2::kNone;
        return {Verdict::kConsume};
      }
      if (data.size() == 1 && data[0] == kSha2FullAuthNeeded) {
        // Without TLS the password travels encrypted with the server's public key: ask for it.
        SendPacket(kSha2RequestPublicKey, login_seq_);
        login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
        sha2_ = Sha2::kKeyRequested;
        return {Verdict::kConsume};
      }
      break;
    case Sha2::kKeyRequested: {
      std::string_view pem(reinterpret_cast<const char*>(data.data()), data.size());
      auto encrypted = CachingSha2RsaEncrypt(login_.password, scramble_, pem);
      if (!encrypted.ok()) {
        return LoginFailed(malformed, Cat("caching_sha2_password full authentication: ",
                                          Sv(encrypted.status().message())));
      }
      SendPacket(*encrypted, login_seq_);
      login_seq_ = static_cast<uint8_t>(login_seq_ + 1);
      sha2_ = Sha2::kNone;
      return {Verdict::kConsume};
    }
    case Sha2::kNone:
      break;
  }
  return LoginFailed(malformed, "the server sent unexpected caching_sha2_password data");
}

Step ServerCodec::OnLoginOk(ByteView payload) {
  auto ok = ParseOk(payload, caps());
  if (!ok) {
    return LoginFailed(ErrorFor(ProxyError::kProtocolViolation),
                       "the server sent a malformed OK packet");
  }
  schema_ = login_.database;
  schema_known_ = true;
  ApplyOk(*ok, /*report=*/false);
  state_ = State::kRunning;
  phase_ = Phase::kFirst;
  next_seq_ = 1;
  seq_known_ = true;
  if (relogin_) {
    return ReloginDone(nullptr);
  }
  sink_.OnLoginComplete();
  return {Verdict::kConsume};
}

void ServerCodec::SendChangeUser() {
  if (state_ != State::kRunning || !pending_.empty()) {
    // A reset is only ever asked for on an idle connection; anything else would mix answers.
    Fail("COM_CHANGE_USER reset asked for while a request is outstanding");
    return;
  }
  // Answered against the handshake's scramble, as at login; the server switches plugins (with a
  // fresh scramble) when the backend user has another one.
  plugin_ = handshake_plugin_;
  scramble_ = handshake_scramble_;
  sha2_ = plugin_ == kCachingSha2 ? Sha2::kScrambleSent : Sha2::kNone;
  auto auth = AuthResponse();
  if (!auth.ok() || auth->size() > 0xff) {
    Fail("the backend password does not fit a COM_CHANGE_USER packet");
    return;
  }
  Writer w;
  w.U8(kComChangeUser).NulString(login_.user).U8(static_cast<uint8_t>(auth->size())).Bytes(*auth);
  w.NulString(login_.database).U16(charset_).NulString(plugin_);
  SendPacket(w.payload(), 0);
  login_seq_ = 1;
  relogin_ = true;
  state_ = State::kAuth;
}

Step ServerCodec::ReloginDone(const WireError* error) {
  relogin_ = false;
  if (error != nullptr) {
    state_ = State::kDone;
    sink_.OnInternalDone(error);
    return {Verdict::kStop};
  }
  statements_.clear();  // a new login's session has no prepared statements
  sql_prepared_.clear();
  sink_.OnInternalDone(nullptr);
  return {Verdict::kConsume};
}

absl::StatusOr<std::string> ServerCodec::AuthResponse() const {
  const std::string& password = login_.password;
  if (plugin_ == kNativePassword) {
    return NativePasswordResponse(password, scramble_);
  }
  if (plugin_ == kCachingSha2) {
    // An empty password is sent as an empty answer (the server accepts that as "no password").
    return password.empty() ? std::string() : CachingSha2Response(password, scramble_);
  }
  if (plugin_ == kEd25519) {
    return Ed25519Response(password, scramble_);
  }
  if (plugin_ == kClearPassword) {
    return Cat(password, '\0');
  }
  return absl::UnimplementedError(Av(Cat("the server asks for authentication plugin ", plugin_,
                                         ", which wirepool does not support")));
}

Step ServerCodec::LoginFailed(const absl::Status& status) {
  if (absl::IsUnimplemented(status)) {
    return LoginFailed(MysqlError{1251, "08004"},
                       Sv(status.message()));  // ER_NOT_SUPPORTED_AUTH_MODE
  }
  return LoginFailed(ErrorFor(ProxyError::kServerUnavailable), Sv(status.message()));
}

Step ServerCodec::LoginFailed(MysqlError error, std::string_view message) {
  state_ = State::kDone;
  WireError e;
  e.code = Cat(error.code);
  e.message = Cat("wirepool could not log in to the server: ", message);
  e.raw = FramePacket(ErrPayload(error.code, error.sql_state, e.message), login_seq_);
  e.fatal = true;
  if (relogin_) {
    ReloginDone(&e);
    return {Verdict::kStop};
  }
  sink_.OnLoginFailed(e);
  return {Verdict::kStop};
}

}  // namespace wirepool::codec::mysql
