#include "codecs/postgres/scram.h"

#include <openssl/crypto.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"

namespace wirepool::codec::postgres {
namespace {

constexpr size_t kNonceBytes = 24;  // raw random bytes behind a nonce we generate
constexpr size_t kMaxNonceLength = 1024;
constexpr size_t kKeyLength = 32;  // SHA-256 output
constexpr int kMaxIterations = 10'000'000;
constexpr int kMockIterations = 4096;   // PostgreSQL's default, so mock users look ordinary
constexpr size_t kMockSaltLength = 16;  // PostgreSQL's default salt length

// Debian's Abseil has its own string_view type; StrCat and Status take that one.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// One `x=value` attribute of a SCRAM message. `offset` is where `x` sits in the parsed text.
struct Attribute {
  char name;
  std::string_view value;
  size_t offset;
};

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Splits "a=1,b=2" into attributes. nullopt if any part is not a letter, '=' and a value free of
// NUL bytes. Values never contain ',' in SCRAM (names escape it as =2C), so splitting is exact.
std::optional<std::vector<Attribute>> ParseAttributes(std::string_view text) {
  std::vector<Attribute> attributes;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view part = text.substr(pos, end - pos);
    if (part.size() < 2 || !IsAsciiAlpha(part[0]) || part[1] != '=' ||
        part.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    attributes.push_back(Attribute{part[0], part.substr(2), pos});
    if (end == text.size()) {
      return attributes;
    }
    pos = end + 1;
  }
}

// printable = %x21-2B / %x2D-7E (RFC 5802): a nonce is visible ASCII without ','.
bool IsValidNonce(std::string_view nonce) {
  if (nonce.empty() || nonce.size() > kMaxNonceLength) {
    return false;
  }
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') {
      return false;
    }
  }
  return true;
}

// saslname: '=' only as "=2C" or "=3D".
bool IsValidSaslName(std::string_view name) {
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '=') {
      const std::string_view escape = name.substr(i + 1, 2);
      if (escape != "2C" && escape != "3D") {
        return false;
      }
      i += 2;
    }
  }
  return true;
}

std::string EscapeSaslName(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '=') {
      out += "=3D";
    } else if (c == ',') {
      out += "=2C";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Strict decimal, no sign, in [1, kMaxIterations].
std::optional<int> ParseIterations(std::string_view text) {
  if (text.empty() || text.size() > 9) {
    return std::nullopt;
  }
  int value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > kMaxIterations) {
    return std::nullopt;
  }
  return value;
}

std::string Xor(std::string_view a, std::string_view b) {
  std::string out(a.size(), '\0');
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    out[i] = static_cast<char>(a[i] ^ b[i]);
  }
  return out;
}

std::string MakeNonce(const RandomFn& random) {
  uint8_t raw[kNonceBytes];
  if (random) {
    random(raw, sizeof(raw));
  } else {
    crypto::RandomBytes(raw, sizeof(raw));
  }
  return crypto::Base64Encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof(raw)));
}

// A per-process secret behind mock credentials, so that nobody outside can compute a mock salt
// and compare it with what the proxy sends.
const std::string& MockSecret() {
  static const std::string* const secret = [] {
    auto* s = new std::string(32, '\0');
    crypto::RandomBytes(reinterpret_cast<uint8_t*>(s->data()), s->size());
    return s;
  }();
  return *secret;
}

crypto::ScramKeys MockKeys(std::string_view user) {
  crypto::ScramKeys keys;
  keys.salt =
      crypto::HmacSha256(MockSecret(), absl::StrCat("salt:", Av(user))).substr(0, kMockSaltLength);
  keys.iterations = kMockIterations;
  keys.stored_key = crypto::HmacSha256(MockSecret(), absl::StrCat("stored:", Av(user)));
  keys.server_key = crypto::HmacSha256(MockSecret(), absl::StrCat("server:", Av(user)));
  return keys;
}

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed SCRAM message: ", Av(what)));
}

absl::Status CheckLength(std::string_view message) {
  if (message.empty()) {
    return Malformed("empty");
  }
  if (message.size() > kMaxScramMessageLength) {
    return Malformed("too long");
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ScramServer

ScramServer::ScramServer(const crypto::ScramKeys* keys, RandomFn random, std::string_view user)
    : random_(std::move(random)) {
  known_user_ = keys != nullptr && keys->valid() && keys->stored_key.size() == kKeyLength &&
                keys->server_key.size() == kKeyLength;
  keys_ = known_user_ ? *keys : MockKeys(user);
}

absl::Status ScramServer::Fail(absl::Status status) {
  state_ = State::kFailed;
  return status;
}

absl::StatusOr<std::string> ScramServer::OnClientFirst(std::string_view message) {
  if (state_ != State::kInitial) {
    return Fail(absl::FailedPreconditionError("unexpected SCRAM client-first-message"));
  }
  if (absl::Status s = CheckLength(message); !s.ok()) {
    return Fail(s);
  }
  // gs2-header = gs2-cbind-flag "," [authzid] ","
  const size_t flag_end = message.find(',');
  if (flag_end == std::string_view::npos) {
    return Fail(Malformed("bad GS2 header"));
  }
  const std::string_view flag = message.substr(0, flag_end);
  if (flag.starts_with("p=")) {
    if (end_point_.empty() || !plus_) {
      return Fail(absl::InvalidArgumentError(
          "client requires SCRAM channel binding, but SCRAM-SHA-256-PLUS was not selected"));
    }
    if (flag != "p=tls-server-end-point") {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("unsupported SCRAM channel binding type \"", Av(flag.substr(2)), "\"")));
    }
  } else if (flag == "y") {
    // The client can bind but believes we cannot: over TLS, where we offer PLUS, someone in
    // between took PLUS out of our list (RFC 5802, section 6).
    if (!end_point_.empty()) {
      return Fail(absl::InvalidArgumentError(
          "SCRAM channel binding was downgraded: the client was told it is not offered"));
    }
  } else if (flag != "n") {
    return Fail(Malformed("bad GS2 header"));
  }
  if (plus_ && !flag.starts_with("p=")) {
    return Fail(
        absl::InvalidArgumentError("SCRAM-SHA-256-PLUS was selected without channel binding data"));
  }
  if (message.size() < flag_end + 2 || message[flag_end + 1] != ',') {
    if (message.size() >= flag_end + 2) {
      return Fail(absl::InvalidArgumentError("SCRAM authorization identity is not supported"));
    }
    return Fail(Malformed("bad GS2 header"));
  }
  const size_t header_len = flag_end + 2;
  const std::string_view bare = message.substr(header_len);
  std::optional<std::vector<Attribute>> attrs = ParseAttributes(bare);
  if (!attrs || attrs->size() < 2) {
    return Fail(Malformed("bad client-first-message"));
  }
  if ((*attrs)[0].name == 'm') {
    return Fail(absl::InvalidArgumentError("SCRAM mandatory extensions are not supported"));
  }
  // The user name comes from the startup packet; PostgreSQL clients send n= empty. Ignore it.
  if ((*attrs)[0].name != 'n' || !IsValidSaslName((*attrs)[0].value)) {
    return Fail(Malformed("bad user name"));
  }
  if ((*attrs)[1].name != 'r' || !IsValidNonce((*attrs)[1].value)) {
    return Fail(Malformed("bad client nonce"));
  }
  // Any further attributes are optional extensions; we know none, so we ignore them.

  gs2_header_ = std::string(message.substr(0, header_len));
  client_first_bare_ = std::string(bare);
  nonce_ =
      absl::StrCat(Av((*attrs)[1].value), fixed_nonce_.empty() ? MakeNonce(random_) : fixed_nonce_);
  server_first_ =
      absl::StrCat("r=", nonce_, ",s=", crypto::Base64Encode(keys_.salt), ",i=", keys_.iterations);
  state_ = State::kSentFirst;
  return server_first_;
}

absl::StatusOr<std::string> ScramServer::OnClientFinal(std::string_view message) {
  if (state_ != State::kSentFirst) {
    return Fail(absl::FailedPreconditionError("unexpected SCRAM client-final-message"));
  }
  if (absl::Status s = CheckLength(message); !s.ok()) {
    return Fail(s);
  }
  // client-final-message = channel-binding "," nonce ["," extensions] "," proof
  std::optional<std::vector<Attribute>> attrs = ParseAttributes(message);
  if (!attrs || attrs->size() < 3) {
    return Fail(Malformed("bad client-final-message"));
  }
  const Attribute& cbind = attrs->front();
  const Attribute& nonce = (*attrs)[1];
  const Attribute& proof = attrs->back();
  if (cbind.name != 'c' || nonce.name != 'r' || proof.name != 'p') {
    return Fail(Malformed("bad client-final-message"));
  }
  for (size_t i = 2; i + 1 < attrs->size(); ++i) {
    if ((*attrs)[i].name == 'p') {
      return Fail(Malformed("proof is not the last attribute"));
    }
  }
  // c= is the base64 of the gs2 header the client sent first, followed with channel binding by
  // the binding data: the hash of the certificate this TLS connection was made with, so a man
  // in the middle with a certificate of his own fails here.
  std::optional<std::string> cbind_data = crypto::Base64Decode(cbind.value);
  if (!cbind_data) {
    return Fail(Malformed("bad channel binding base64"));
  }
  const std::string expected_cbind = plus_ ? absl::StrCat(gs2_header_, end_point_) : gs2_header_;
  if (!crypto::ConstantTimeEquals(*cbind_data, expected_cbind)) {
    return Fail(absl::InvalidArgumentError("SCRAM channel binding does not match"));
  }
  if (nonce.value != nonce_) {
    return Fail(absl::InvalidArgumentError("SCRAM nonce does not match"));
  }
  std::optional<std::string> client_proof = crypto::Base64Decode(proof.value);
  if (!client_proof) {
    return Fail(Malformed("bad proof base64"));
  }
  if (client_proof->size() != kKeyLength) {
    return Fail(Malformed("bad proof length"));
  }

  const std::string_view without_proof = message.substr(0, proof.offset - 1);
  const std::string auth_message =
      absl::StrCat(client_first_bare_, ",", server_first_, ",", Av(without_proof));
  const std::string client_signature = crypto::HmacSha256(keys_.stored_key, auth_message);
  std::string client_key = Xor(*client_proof, client_signature);
  // Same work for known and unknown users; an unknown user fails here whatever it sent.
  const bool proof_ok =
      crypto::ConstantTimeEquals(crypto::Sha256(client_key), keys_.stored_key) && known_user_;
  if (!proof_ok) {
    OPENSSL_cleanse(client_key.data(), client_key.size());
    return Fail(absl::PermissionDeniedError("SCRAM authentication failed"));
  }
  client_key_ = std::move(client_key);
  state_ = State::kDone;
  return absl::StrCat("v=",
                      crypto::Base64Encode(crypto::HmacSha256(keys_.server_key, auth_message)));
}

ScramServer::~ScramServer() { OPENSSL_cleanse(client_key_.data(), client_key_.size()); }

// ---------------------------------------------------------------------------------------------
// ScramClient

// The password is used as raw bytes, without SASLprep normalization. PostgreSQL does the same
// whenever SASLprep does not apply, so this matches it for ASCII and for most other passwords.
ScramClient::ScramClient(std::string password, RandomFn random, std::string user)
    : password_(std::move(password)), random_(std::move(random)), user_(std::move(user)) {}

std::unique_ptr<ScramClient> ScramClient::WithKeys(std::string client_key, std::string server_key,
                                                   RandomFn random) {
  auto client = std::make_unique<ScramClient>(std::string(), std::move(random));
  client->client_key_ = std::move(client_key);
  client->server_key_ = std::move(server_key);
  return client;
}

ScramClient::~ScramClient() {
  OPENSSL_cleanse(password_.data(), password_.size());
  OPENSSL_cleanse(client_key_.data(), client_key_.size());
}

absl::Status ScramClient::Fail(absl::Status status) {
  state_ = State::kFailed;
  return status;
}

std::string ScramClient::ClientFirst() {
  if (client_first_.empty()) {
    client_nonce_ = fixed_nonce_.empty() ? MakeNonce(random_) : fixed_nonce_;
    client_first_bare_ = absl::StrCat("n=", EscapeSaslName(user_), ",r=", client_nonce_);
    client_first_ = absl::StrCat("n,,", client_first_bare_);
    state_ = State::kSentFirst;
  }
  return client_first_;
}

absl::StatusOr<std::string> ScramClient::OnServerFirst(std::string_view message) {
  if (state_ != State::kSentFirst) {
    return Fail(absl::FailedPreconditionError("unexpected SCRAM server-first-message"));
  }
  if (absl::Status s = CheckLength(message); !s.ok()) {
    return Fail(s);
  }
  // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
  std::optional<std::vector<Attribute>> attrs = ParseAttributes(message);
  if (!attrs || attrs->size() < 3) {
    return Fail(Malformed("bad server-first-message"));
  }
  if ((*attrs)[0].name == 'm') {
    return Fail(absl::InvalidArgumentError("SCRAM mandatory extensions are not supported"));
  }
  const Attribute& nonce = (*attrs)[0];
  const Attribute& salt_attr = (*attrs)[1];
  const Attribute& iter_attr = (*attrs)[2];
  if (nonce.name != 'r' || salt_attr.name != 's' || iter_attr.name != 'i') {
    return Fail(Malformed("bad server-first-message"));
  }
  if (!IsValidNonce(nonce.value) || nonce.value.size() <= client_nonce_.size() ||
      nonce.value.substr(0, client_nonce_.size()) != client_nonce_) {
    return Fail(absl::InvalidArgumentError("SCRAM server nonce does not extend the client's"));
  }
  std::optional<std::string> salt = crypto::Base64Decode(salt_attr.value);
  if (!salt || salt->empty()) {
    return Fail(Malformed("bad salt"));
  }
  std::optional<int> iterations = ParseIterations(iter_attr.value);
  if (!iterations) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("SCRAM iteration count out of range (1..", kMaxIterations, ")")));
  }

  // With pass-through keys the salt and count are the server's business: the keys only work if
  // its verifier is the one they were taken from.
  std::string salted = client_key_.empty()
                           ? crypto::Pbkdf2Sha256(password_, *salt, *iterations, kKeyLength)
                           : std::string();
  std::string client_key =
      client_key_.empty() ? crypto::HmacSha256(salted, "Client Key") : client_key_;
  const std::string stored_key = crypto::Sha256(client_key);
  const std::string server_key =
      server_key_.empty() ? crypto::HmacSha256(salted, "Server Key") : server_key_;

  // c=biws is base64("n,,"): no channel binding.
  const std::string without_proof = absl::StrCat("c=biws,r=", Av(nonce.value));
  const std::string auth_message =
      absl::StrCat(client_first_bare_, ",", Av(message), ",", without_proof);
  const std::string client_proof = Xor(client_key, crypto::HmacSha256(stored_key, auth_message));
  server_signature_ = crypto::HmacSha256(server_key, auth_message);
  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());

  state_ = State::kSentFinal;
  return absl::StrCat(without_proof, ",p=", crypto::Base64Encode(client_proof));
}

absl::Status ScramClient::OnServerFinal(std::string_view message) {
  if (state_ != State::kSentFinal) {
    return Fail(absl::FailedPreconditionError("unexpected SCRAM server-final-message"));
  }
  if (absl::Status s = CheckLength(message); !s.ok()) {
    return Fail(s);
  }
  // server-final-message = (server-error / verifier) ["," extensions]
  std::optional<std::vector<Attribute>> attrs = ParseAttributes(message);
  if (!attrs) {
    return Fail(Malformed("bad server-final-message"));
  }
  const Attribute& first = attrs->front();
  if (first.name == 'e') {
    return Fail(absl::PermissionDeniedError(absl::StrCat("SCRAM server error: ", Av(first.value))));
  }
  if (first.name != 'v') {
    return Fail(Malformed("bad server-final-message"));
  }
  std::optional<std::string> signature = crypto::Base64Decode(first.value);
  if (!signature || signature->size() != kKeyLength) {
    return Fail(Malformed("bad server signature"));
  }
  if (!crypto::ConstantTimeEquals(*signature, server_signature_)) {
    return Fail(absl::PermissionDeniedError("SCRAM server signature does not match"));
  }
  state_ = State::kDone;
  return absl::OkStatus();
}

}  // namespace wirepool::codec::postgres
