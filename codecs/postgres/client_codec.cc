#include "codecs/postgres/client_codec.h"
#include "core/strings.h"

#include <algorithm>
#include <cctype>

#include "codecs/postgres/classify.h"
#include "codecs/postgres/wire.h"
#include "core/crypto.h"

namespace wirepool::codec::postgres {
namespace {

constexpr uint32_t kAuthOk = 0;
constexpr uint32_t kAuthMd5 = 5;
constexpr uint32_t kAuthSasl = 10;
constexpr uint32_t kAuthSaslContinue = 11;
constexpr uint32_t kAuthSaslFinal = 12;
constexpr std::string_view kScram = "SCRAM-SHA-256";
constexpr std::string_view kScramPlus = "SCRAM-SHA-256-PLUS";
// PostgreSQL itself refuses messages this large from a client outside COPY / bind values.
constexpr size_t kMaxAuthMessage = 8192;

std::string AuthRequest(uint32_t code, std::string_view extra = {}) {
  Writer w;
  return w.Begin('R').U32(code).Bytes(extra).Take();
}

// Turns `options` ("-c a=b --c=d") into parameters. Returns false on anything else.
bool ParseOptions(std::string_view options, ParamList& params) {
  std::vector<std::string_view> words;
  size_t pos = 0;
  while (pos < options.size()) {
    size_t end = options.find(' ', pos);
    if (end == std::string_view::npos) {
      end = options.size();
    }
    if (end > pos) {
      words.push_back(options.substr(pos, end - pos));
    }
    pos = end + 1;
  }
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view setting;
    if (words[i] == "-c" && i + 1 < words.size()) {
      setting = words[++i];
    } else if (words[i].starts_with("-c")) {
      setting = words[i].substr(2);
    } else if (words[i].starts_with("--")) {
      setting = words[i].substr(2);
    } else {
      return false;
    }
    size_t eq = setting.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return false;
    }
    std::string name(setting.substr(0, eq));
    std::replace(name.begin(), name.end(), '-', '_');
    params.emplace_back(std::move(name), std::string(setting.substr(eq + 1)));
  }
  return true;
}

}  // namespace

ClientCodec::ClientCodec(const ClientCodecOptions& options, ClientCodecSink& sink)
    : login_(std::make_unique<Login>()),
      sink_(sink),
      classify_(options.classify),
      refuse_pins_(options.refuse_pins) {
  login_->options = options;
}

std::string ClientCodec::CancelKey() const {
  if (!cancel_key_.has_value()) {
    return {};
  }
  return {reinterpret_cast<const char*>(cancel_key_->data()), cancel_key_->size()};
}

Step ClientCodec::OnBytes(ByteView in) {
  switch (state_) {
    case State::kStartup:
      return OnStartup(in);
    case State::kTlsPending:
      if (tls_direct_) {
        return {Verdict::kPause};  // the client's TLS hello, for the proxy to hand to TLS
      }
      // The proxy starts TLS once the go-ahead's call returns: anything before that is plaintext
      // injected ahead of the handshake (CVE-2021-23214), never to be read as the client's. The
      // client was promised TLS: it gets no plaintext answer either, only the close.
      state_ = State::kDone;
      sink_.OnProtocolError(
          absl::InvalidArgumentError("received unencrypted data after SSL request"));
      return {Verdict::kStop};
    case State::kAwaitAuth:
    case State::kAwaitLogin:
      return {Verdict::kPause};
    case State::kScramFirst:
    case State::kScramFinal:
    case State::kMd5:
      return OnAuthMessage(in);
    case State::kRunning:
      return OnRunning(in);
    case State::kDone:
      return {Verdict::kStop};
  }
  return {Verdict::kStop};
}

void ClientCodec::OnTlsStarted() {
  if (state_ == State::kTlsPending) {
    state_ = State::kStartup;
    tls_ = true;
  }
}

Step ClientCodec::OnStartup(ByteView in) {
  if (!in.empty() && in[0] == kTlsHandshakeRecord && !tls_ && login_->startup_bytes == 0 &&
      login_->options.tls_available) {
    // Direct TLS (PostgreSQL 17, sslnegotiation=direct): the client's hello with no SSLRequest
    // first. The proxy hands these bytes to TLS; no startup packet starts with this byte.
    state_ = State::kTlsPending;
    tls_direct_ = true;
    sink_.OnTlsRequest(TlsStart::kDirect);
    return {Verdict::kPause};
  }
  if (in.size() < 4) {
    return {Verdict::kNeedMore, 4};
  }
  uint32_t len = ReadU32(in.data());
  if (len < 8 || len > login_->options.max_startup_bytes) {
    return Violation(Cat("invalid length of startup packet: ", len));
  }
  login_->startup_bytes += len;
  if (login_->startup_bytes > login_->options.max_startup_bytes) {
    return Violation("too many startup packets");
  }
  if (in.size() < len) {
    login_->startup_bytes -= len;  // counted again when the packet is whole
    return {Verdict::kNeedMore, len};
  }
  Step step = OnStartupPacket(in.first(len));
  if (step.verdict == Verdict::kConsume) {
    step.bytes = len;
  }
  return step;
}

Step ClientCodec::OnStartupPacket(ByteView packet) {
  Reader r(packet.subspan(4));
  uint32_t code = *r.U32();
  if (code == kSslRequestCode || code == kGssEncRequestCode) {
    if (packet.size() != 8) {
      return Violation("invalid length of encryption request packet");
    }
    if (tls_) {
      return Violation("SSL request on a connection that is already encrypted");
    }
    if (code == kSslRequestCode && login_->options.tls_available) {
      sink_.SendToClient("S");
      state_ = State::kTlsPending;
      sink_.OnTlsRequest(TlsStart::kAfterGoAhead);
      return {Verdict::kConsume};
    }
    // No GSSAPI encryption, and TLS only where client_tls offers it: go on in plaintext.
    sink_.SendToClient("N");
    return {Verdict::kConsume};
  }
  if (code == kCancelRequestCode) {
    auto key = r.Bytes(8);
    if (!key || !r.done()) {
      return Violation("invalid length of cancel request packet");
    }
    state_ = State::kDone;
    sink_.OnCancelRequest(*key);
    return {Verdict::kStop};
  }
  if ((code >> 16) != 3) {
    state_ = State::kDone;
    SendError(ProxyError::kNotSupported, Cat("unsupported frontend protocol ", code >> 16, ".",
                                             code & 0xffff, ": server supports 3.0 to 3.0"));
    sink_.OnProtocolError(absl::InvalidArgumentError("unsupported protocol version"));
    return {Verdict::kStop};
  }
  StartupInfo info;
  std::vector<std::string> unrecognized;
  while (true) {
    auto name = r.CString();
    if (!name) {
      return Violation("invalid startup packet layout: expected terminator as last byte");
    }
    if (name->empty()) {
      break;
    }
    auto value = r.CString();
    if (!value) {
      return Violation("invalid startup packet layout: expected terminator as last byte");
    }
    if (*name == "user") {
      info.user = std::string(*value);
    } else if (*name == "database") {
      info.database = std::string(*value);
    } else if (*name == "replication") {
      state_ = State::kDone;
      SendError(ProxyError::kNotSupported, "replication connections are not supported by wirepool");
      sink_.OnProtocolError(absl::UnimplementedError("replication connection refused"));
      return {Verdict::kStop};
    } else if (*name == "options") {
      if (!ParseOptions(*value, info.params)) {
        state_ = State::kDone;
        SendError(ProxyError::kNotSupported,
                  "only \"-c name=value\" settings are supported in the options parameter");
        sink_.OnProtocolError(absl::UnimplementedError("unsupported startup options"));
        return {Verdict::kStop};
      }
    } else if (name->starts_with("_pq_.")) {
      unrecognized.emplace_back(*name);
    } else {
      info.params.emplace_back(std::string(*name), std::string(*value));
    }
  }
  if (!r.done()) {
    return Violation("invalid startup packet layout: expected terminator as last byte");
  }
  if (info.user.empty()) {
    state_ = State::kDone;
    SendError(ProxyError::kAuthFailed, "no PostgreSQL user name specified in startup packet");
    sink_.OnProtocolError(absl::InvalidArgumentError("no user name in startup packet"));
    return {Verdict::kStop};
  }
  if (info.database.empty()) {
    info.database = info.user;
  }
  info.pool_key = info.database;
  if ((code & 0xffff) != 0 || !unrecognized.empty()) {
    // We speak 3.0 with no protocol options: say so, as PostgreSQL does, and carry on.
    Writer w;
    w.Begin('v').U32(kProtocol30).U32(static_cast<uint32_t>(unrecognized.size()));
    for (const auto& opt : unrecognized) {
      w.CString(opt);
    }
    sink_.SendToClient(w.Take());
  }
  login_->user = info.user;
  state_ = State::kAwaitAuth;
  sink_.OnStartup(info);
  return {Verdict::kConsume};
}

void ClientCodec::BeginAuth(const UserSecret* secret) {
  if (state_ != State::kAwaitAuth) {
    return;
  }
  login_->secret = secret;
  if (login_->options.auth_method == "md5") {
    login_->md5_salt.resize(4);
    login_->options.random(reinterpret_cast<uint8_t*>(login_->md5_salt.data()), 4);
    sink_.SendToClient(AuthRequest(kAuthMd5, login_->md5_salt));
    state_ = State::kMd5;
    return;
  }
  const crypto::ScramKeys* keys =
      (secret != nullptr && secret->scram.valid()) ? &secret->scram : nullptr;
  login_->scram = std::make_unique<ScramServer>(keys, login_->options.random, login_->user);
  std::string mechanisms;
  if (tls_ && !login_->options.tls_server_end_point.empty()) {
    // Over TLS, channel binding first: drivers that can bind prefer it, and
    // channel_binding=require needs it.
    login_->scram->OfferChannelBinding(login_->options.tls_server_end_point);
    mechanisms.append(kScramPlus).push_back('\0');
  }
  mechanisms.append(kScram).push_back('\0');
  mechanisms.push_back('\0');
  sink_.SendToClient(AuthRequest(kAuthSasl, mechanisms));
  state_ = State::kScramFirst;
}

Step ClientCodec::OnAuthMessage(ByteView in) {
  if (in.size() < kHeaderLen) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  uint32_t len = ReadU32(in.data() + 1);
  if (in[0] != 'p') {
    return Violation(Cat("expected password response, got message type ", static_cast<int>(in[0])));
  }
  if (len < 4 || len > kMaxAuthMessage) {
    return Violation(Cat("invalid password packet size: ", len));
  }
  if (in.size() < len + 1) {
    return {Verdict::kNeedMore, len + 1};
  }
  ByteView body = in.subspan(kHeaderLen, len - 4);
  Step step;
  switch (state_) {
    case State::kScramFirst:
      step = OnScramFirst(body);
      break;
    case State::kScramFinal:
      step = OnScramFinal(body);
      break;
    default:
      step = OnMd5(body);
      break;
  }
  if (step.verdict == Verdict::kConsume) {
    step.bytes = len + 1;
  }
  return step;
}

Step ClientCodec::OnScramFirst(ByteView body) {
  Reader r(body);
  auto mechanism = r.CString();
  auto data_len = r.U32();
  if (!mechanism || !data_len) {
    return Violation("malformed SASLInitialResponse message");
  }
  const bool plus =
      *mechanism == kScramPlus && tls_ && !login_->options.tls_server_end_point.empty();
  if (*mechanism != kScram && !plus) {
    return FailAuth("client selected an invalid SASL authentication mechanism");
  }
  login_->scram->SelectPlus(plus);
  auto data = r.Bytes(*data_len);
  if (*data_len == 0xffffffff || !data || !r.done()) {
    return Violation("malformed SASLInitialResponse message");
  }
  auto reply = login_->scram->OnClientFirst(*data);
  if (!reply.ok()) {
    return Violation(Cat("malformed SCRAM message: ", reply.status().message()));
  }
  sink_.SendToClient(AuthRequest(kAuthSaslContinue, *reply));
  state_ = State::kScramFinal;
  return {Verdict::kConsume};
}

Step ClientCodec::OnScramFinal(ByteView body) {
  std::string_view data(reinterpret_cast<const char*>(body.data()), body.size());
  auto reply = login_->scram->OnClientFinal(data);
  if (!reply.ok()) {
    if (absl::IsPermissionDenied(reply.status()) || login_->secret == nullptr) {
      return FailAuth("SCRAM proof did not verify");
    }
    return Violation(Cat("malformed SCRAM message: ", reply.status().message()));
  }
  if (login_->secret == nullptr) {
    return FailAuth("unknown user");
  }
  sink_.SendToClient(AuthRequest(kAuthSaslFinal, *reply));
  AuthSucceeded();
  return {Verdict::kConsume};
}

Step ClientCodec::OnMd5(ByteView body) {
  Reader r(body);
  auto response = r.CString();
  if (!response || !r.done()) {
    return Violation("malformed password packet");
  }
  if (login_->secret == nullptr) {
    return FailAuth("unknown user");
  }
  std::string inner = crypto::Md5Hex(Cat(login_->secret->password, login_->user));
  std::string expected = Cat("md5", crypto::Md5Hex(Cat(inner, login_->md5_salt)));
  if (!crypto::ConstantTimeEquals(expected, *response)) {
    return FailAuth("md5 password did not match");
  }
  AuthSucceeded();
  return {Verdict::kConsume};
}

void ClientCodec::AuthSucceeded() {
  sink_.SendToClient(AuthRequest(kAuthOk));
  state_ = State::kAwaitLogin;
  sink_.OnAuthenticated();
}

Step ClientCodec::FailAuth(std::string_view reason) {
  state_ = State::kDone;
  // The same words PostgreSQL uses, whether or not the user exists.
  sink_.SendToClient(
      ErrorResponse("FATAL", SqlState(ProxyError::kAuthFailed),
                    Cat("password authentication failed for user \"", login_->user, "\"")));
  sink_.OnAuthFailed(reason);
  return {Verdict::kStop};
}

void ClientCodec::CompleteLogin(const ParamList& server_params) {
  if (state_ != State::kAwaitLogin) {
    return;
  }
  std::string out;
  for (const auto& [name, value] : server_params) {
    out += ParameterStatus(name, value);
  }
  std::array<uint8_t, 8> key{};
  login_->options.random(key.data(), key.size());
  key[0] &= 0x7f;  // a positive "process id", as clients print it
  cancel_key_ = key;
  Writer w;
  out += w.Begin('K').Bytes(CancelKey()).Take();
  out += ReadyForQuery('I');
  sink_.SendToClient(out);
  state_ = State::kRunning;
  login_.reset();  // nothing of the login is needed again; an idle client keeps less
}

Step ClientCodec::OnRunning(ByteView in) {
  if (discard_left_ > 0) {
    size_t n = std::min(discard_left_, in.size());
    discard_left_ -= n;
    return {Verdict::kConsume, n};
  }
  if (forward_left_ > 0) {
    size_t n = std::min(forward_left_, in.size());
    forward_left_ -= n;
    return {Verdict::kForward, n};
  }
  if (in.size() < kHeaderLen) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  uint8_t type = in[0];
  uint32_t len = ReadU32(in.data() + 1);
  if (len < 4 || len > 0x40000000) {
    return Violation(Cat("invalid message length ", len));
  }
  size_t total = size_t{len} + 1;
  if (classify_ && (type == 'Q' || type == 'P')) {
    if (total <= kMaxClassifiedMessage && in.size() < total) {
      return {Verdict::kNeedMore, total};
    }
    bool whole = total <= kMaxClassifiedMessage;
    if (auto refusal = Classify(type, in.first(std::min(total, in.size())), whole)) {
      return Refuse(type, in, total, *refusal);
    }
    if (type == 'Q') {
      if (auto step = MaybeIntercept(total)) {
        return *step;
      }
    }
  }
  if (classify_) {
    if (auto step = OnStatementMessage(type, in, total)) {
      return *step;
    }
  }
  switch (type) {
    case 'X':
      state_ = State::kDone;
      sink_.OnTerminate();
      return {Verdict::kStop};
    case 'Q':
    case 'S':
    case 'F':
      mid_request_ = false;
      sink_.OnRequestEnd(type);
      break;
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'H':
    case 'd':
      mid_request_ = true;
      break;
    case 'c':
    case 'f':
      // CopyDone / CopyFail end the COPY a Query (already counted) started.
      mid_request_ = false;
      break;
    default:
      return Violation(Cat("invalid frontend message type ", static_cast<int>(type)));
  }
  size_t n = std::min(total, in.size());
  forward_left_ = total - n;
  return {Verdict::kForward, n};
}

std::optional<std::string> ClientCodec::Classify(uint8_t type, ByteView message, bool whole) {
  RequestEffects effects;
  if (!whole) {
    effects.pins = PinBit(PinReason::kUnclassified);
    effects.statement =
        Cat("(a message of more than ", kMaxClassifiedMessage, " bytes, too large to classify)");
    if (auto refusal = RefuseEffects(effects)) {
      return refusal;
    }
    sink_.OnRequestEffects(effects);
    return std::nullopt;
  }
  Reader r(message.subspan(kHeaderLen));
  std::optional<std::string_view> name;
  if (type == 'P') {
    name = r.CString();
  }
  auto text = r.CString();
  if (!text) {
    return std::nullopt;  // malformed: the server will say so
  }
  query_ops_ = {};
  effects = ClassifySql(*text, type == 'Q' ? &query_ops_.ops : nullptr);
  bool named = false;
  for (const SqlOp& op : query_ops_.ops) {
    named = named || op.kind == SqlOp::kPrepare || op.kind == SqlOp::kDeallocate;
  }
  if (named && mid_request_) {
    // Behind extended-protocol messages with no Sync between: which CommandComplete is whose
    // cannot be told, so the statements are not followed.
    query_ops_ = {};
    effects.pins |= PinBit(PinReason::kUnclassified);
    if (effects.statement.empty()) {
      effects.statement = "(PREPARE or DEALLOCATE after extended-protocol messages with no Sync)";
    }
  }
  if (auto refusal = RefuseEffects(effects)) {
    query_ops_ = {};
    return refusal;
  }
  for (const SqlOp& op : query_ops_.ops) {
    if (op.kind == SqlOp::kDeallocateAll ||
        (op.kind == SqlOp::kDiscardAll && query_ops_.ops.size() == 1)) {
      statements_.reset();  // the client's protocol-level names are gone too
    }
  }
  if (!effects.empty()) {
    sink_.OnRequestEffects(effects);
  }
  return std::nullopt;
}

std::optional<std::string> ClientCodec::RefuseEffects(const RequestEffects& effects) {
  if ((effects.pins & refuse_pins_) == 0) {
    return std::nullopt;
  }
  sink_.OnRequestRefused(effects);
  return RefusalMessage(effects, refuse_pins_);
}

std::optional<Step> ClientCodec::MaybeIntercept(size_t total) {
  if (query_ops_.ops.size() != 1 || mid_request_) {
    return std::nullopt;
  }
  const SqlOp::Kind kind = query_ops_.ops[0].kind;
  if ((kind != SqlOp::kDiscardAll && kind != SqlOp::kDeallocateAll) || !sink_.ServerIsQuiet()) {
    return std::nullopt;
  }
  SqlOps ops = std::move(query_ops_);
  query_ops_ = {};
  ops.intercepted = true;
  sink_.OnStatementMessage({StatementNote::kSync, true, EncodeSqlOps(ops)});
  // Nothing is outstanding: this goes out in the Query's place, and the server's ReadyForQuery
  // follows.
  sink_.SendToClient(
      CommandComplete(kind == SqlOp::kDiscardAll ? "DISCARD ALL" : "DEALLOCATE ALL"));
  mid_request_ = false;
  sink_.OnRequestEnd('Q');
  return Step{Verdict::kConsume, total};
}

Step ClientCodec::Violation(std::string_view message) {
  state_ = State::kDone;
  SendError(ProxyError::kProtocolViolation, message);
  sink_.OnProtocolError(absl::InvalidArgumentError(Av(message)));
  return {Verdict::kStop};
}

void ClientCodec::SendError(ProxyError error, std::string_view message) {
  sink_.SendToClient(ErrorResponse("FATAL", SqlState(error), message));
}

void ClientCodec::SendServerError(const WireError& error) { sink_.SendToClient(error.raw); }

}  // namespace wirepool::codec::postgres
