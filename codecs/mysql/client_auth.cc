// The client side of a MySQL connection: the auth exchange. The proxy verifies the password
// itself, with the method of the proxy's `client_auth` (mysql_native_password or
// caching_sha2_password); a client that answered the handshake for another method is switched
// with an AuthSwitchRequest. An unknown user goes through the same exchange and fails the same
// way as a wrong password, so users cannot be enumerated.

#include <string>
#include <utility>

#include <openssl/crypto.h>

#include "codecs/mysql/auth.h"
#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/wire.h"
#include "core/crypto.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

constexpr uint8_t kAuthSwitchHeader = 0xfe;
constexpr uint8_t kAuthMoreDataHeader = 0x01;
// caching_sha2_password: what follows AuthMoreData, and what the client asks for.
constexpr char kFastAuthSuccess[] = "\x01\x03";
constexpr char kPerformFullAuth[] = "\x01\x04";
constexpr uint8_t kRequestPublicKey = 0x02;
// What an unknown user's answers are checked against, so that they cost what a known user's do
// (has_secret_ decides the outcome).
constexpr std::string_view kNoSuchUserPassword = "wirepool: no such user";

// The proxy's RSA key pair for caching_sha2 full authentication without TLS. Generating one takes
// a noticeable fraction of a second, so it is made once per process, on first use (a function-
// local static is initialised once even when several workers get here together).
const absl::StatusOr<RsaKeyPair>& SharedRsaKeys() {
  static const auto* keys = new absl::StatusOr<RsaKeyPair>(RsaKeyPair::Generate());
  return *keys;
}

std::string_view AsChars(ByteView v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

}  // namespace

void ClientCodec::BeginAuth(const UserSecret* secret) {
  if (state_ != State::kAwaitAuth) {
    return;
  }
  has_secret_ = secret != nullptr;
  password_ = secret != nullptr ? secret->password : std::string(kNoSuchUserPassword);
  if (client_plugin_ != auth_plugin_) {
    if ((client_caps_ & kPluginAuth) == 0) {
      // Only a client that knows CLIENT_PLUGIN_AUTH can be switched to another method.
      state_ = State::kDone;
      SendError(ProxyError::kNotSupported,
                Cat("Client does not support authentication protocol requested by server (",
                    auth_plugin_, "); consider upgrading the client"));
      sink_.OnAuthFailed(Cat("client cannot switch to ", auth_plugin_));
      return;
    }
    Writer w;
    w.U8(kAuthSwitchHeader).NulString(auth_plugin_).Bytes(scramble_).U8(0);
    SendPacket(w.payload());
    awaiting_client_ = true;
    state_ = State::kAuthSwitch;
    return;
  }
  std::string response = std::move(auth_response_);
  auth_response_.clear();
  VerifyResponse(response);
}

// The answer to our AuthSwitchRequest: the auth data for our method, and nothing else.
Step ClientCodec::OnAuthPacket(ByteView payload) { return VerifyResponse(AsChars(payload)); }

Step ClientCodec::VerifyResponse(std::string_view response) {
  if (auth_plugin_ == kCachingSha2Password) {
    return CheckCachingSha2(response);
  }
  return CheckNative(response);
}

Step ClientCodec::CheckNative(std::string_view response) {
  bool verified = VerifyNativePassword(password_, scramble_, response);
  if (!has_secret_) {
    return FailAuth("unknown user", !response.empty());
  }
  if (!verified) {
    return FailAuth("mysql_native_password response did not match", !response.empty());
  }
  return AuthSucceeded();
}

Step ClientCodec::CheckCachingSha2(std::string_view response) {
  // No password given (MySQL's client library sends a lone NUL for it, others send nothing): as
  // MySQL does, that logs in a user without a password and nobody else.
  if (response.empty() || response == std::string_view("\0", 1)) {
    if (has_secret_ && password_.empty()) {
      return AuthSucceeded();
    }
    return FailAuth(has_secret_ ? "no password given" : "unknown user", false);
  }
  if (mysql::VerifyCachingSha2(password_, scramble_, response) && has_secret_) {
    SendPacket(std::string_view(kFastAuthSuccess, 2));
    return AuthSucceeded();
  }
  // A scramble that does not verify (or an unknown user) goes on to full authentication, as on
  // a MySQL server whose cache lacks the user: the client sends the password itself (in
  // cleartext inside TLS, encrypted with our RSA key otherwise), and that decides.
  SendPacket(std::string_view(kPerformFullAuth, 2));
  awaiting_client_ = true;
  state_ = State::kFullAuth;
  return {Verdict::kConsume};
}

Step ClientCodec::OnFullAuthPacket(ByteView payload) {
  if (payload.size() != 1 || payload[0] != kRequestPublicKey) {
    // A cleartext password (NUL-terminated): clients send one only over a connection they
    // believe is secure, TLS or a local socket. Only TLS counts here.
    if (!tls_) {
      return FailAuth("cleartext password refused on a connection without TLS", !payload.empty());
    }
    std::string expected = password_;
    expected.push_back('\0');
    const bool match = crypto::ConstantTimeEquals(AsChars(payload), expected);
    OPENSSL_cleanse(expected.data(), expected.size());
    if (!has_secret_) {
      return FailAuth("unknown user", !payload.empty());
    }
    if (!match) {
      return FailAuth("caching_sha2_password full authentication did not match", true);
    }
    return AuthSucceeded();
  }
  const auto& keys = SharedRsaKeys();
  if (!keys.ok()) {
    state_ = State::kDone;
    SendError(ProxyError::kInternal, "wirepool has no RSA key for caching_sha2_password");
    sink_.OnAuthFailed(Cat("no RSA key: ", Sv(keys.status().message())));
    return {Verdict::kStop};
  }
  Writer w;
  w.U8(kAuthMoreDataHeader).Bytes(keys->public_pem());
  SendPacket(w.payload());
  awaiting_client_ = true;
  state_ = State::kRsaPassword;
  return {Verdict::kConsume};
}

Step ClientCodec::OnRsaPassword(ByteView payload) {
  const auto& keys = SharedRsaKeys();
  bool verified = keys.ok() && VerifyCachingSha2Full(*keys, password_, scramble_, AsChars(payload));
  if (!has_secret_) {
    return FailAuth("unknown user", !payload.empty());
  }
  if (!verified) {
    return FailAuth("caching_sha2_password full authentication did not match", !payload.empty());
  }
  return AuthSucceeded();
}

Step ClientCodec::FailAuth(std::string_view reason, bool used_password) {
  state_ = State::kDone;
  password_.clear();
  // The same words MySQL uses, whether or not the user exists.
  SendError(ProxyError::kAuthFailed,
            Cat("Access denied for user '", user_, "'@'", options_.peer_host,
                "' (using password: ", used_password ? "YES" : "NO", ")"));
  sink_.OnAuthFailed(reason);
  return {Verdict::kStop};
}

Step ClientCodec::AuthSucceeded() {
  state_ = State::kAwaitLogin;
  // What only the login read goes, its heap buffers too (an idle client keeps none of it).
  std::string().swap(password_);
  std::string().swap(client_plugin_);
  sink_.OnAuthenticated();
  return {Verdict::kConsume};
}

}  // namespace wirepool::codec::mysql
