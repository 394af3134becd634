#include "core/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdlib>

namespace wirepool::crypto {
namespace {

// OpenSSL treats a null pointer with length 0 differently from an empty buffer in a few one-shot
// APIs; an empty string_view may carry a null data(). Always hand over a real address.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (EVP_Digest(Bytes(data), data.size(), out, &out_len, md, nullptr) != 1) {
    // Only fails on allocation failure or a missing provider; both are fatal misconfigurations.
    abort();
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

// Value of a Base64 alphabet character, or -1.
int Base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '+') {
    return 62;
  }
  if (c == '/') {
    return 63;
  }
  return -1;
}

}  // namespace

std::string Sha1(std::string_view data) { return Digest(EVP_sha1(), data); }

std::string Sha256(std::string_view data) { return Digest(EVP_sha256(), data); }

std::string HmacSha256(std::string_view key, std::string_view data) {
  if (key.size() > INT_MAX) {
    abort();  // our own invariant: keys are hashes or passwords, never gigabytes
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(EVP_sha256(), Bytes(key), static_cast<int>(key.size()), Bytes(data), data.size(), out,
           &out_len) == nullptr) {
    abort();
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string Md5Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  const std::string raw = Digest(EVP_md5(), data);
  std::string hex;
  hex.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 0x0f]);
  }
  return hex;
}

std::string Pbkdf2Sha256(std::string_view password, std::string_view salt, int iterations,
                         size_t length) {
  if (password.size() > INT_MAX || salt.size() > INT_MAX || length > INT_MAX || iterations < 1) {
    abort();  // callers validate iterations; the rest cannot come from a peer
  }
  std::string out(length, '\0');
  if (length == 0) {
    return out;
  }
  if (PKCS5_PBKDF2_HMAC(
          reinterpret_cast<const char*>(Bytes(password)), static_cast<int>(password.size()),
          Bytes(salt), static_cast<int>(salt.size()), iterations, EVP_sha256(),
          static_cast<int>(length), reinterpret_cast<unsigned char*>(out.data())) != 1) {
    abort();
  }
  return out;
}

std::string Base64Encode(std::string_view data) {
  if (data.empty()) {
    return std::string();
  }
  if (data.size() > static_cast<size_t>(INT_MAX) / 4 * 3 - 3) {
    abort();
  }
  // 4 output characters per 3 input bytes, rounded up, plus the NUL EVP_EncodeBlock writes.
  std::string out(((data.size() + 2) / 3) * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(data),
                                static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  // Strict RFC 4648: whole quanta of four characters, alphabet only, '=' only as one or two final
  // characters. EVP_DecodeBlock itself trims whitespace and does not report padding, so we check
  // everything here and use it only for the conversion.
  if (text.size() % 4 != 0 || text.size() > static_cast<size_t>(INT_MAX)) {
    return std::nullopt;
  }
  if (text.empty()) {
    return std::string();
  }
  size_t padding = 0;
  if (text[text.size() - 1] == '=') {
    padding = (text[text.size() - 2] == '=') ? 2 : 1;
  }
  for (size_t i = 0; i < text.size() - padding; ++i) {
    if (Base64Value(static_cast<unsigned char>(text[i])) < 0) {
      return std::nullopt;
    }
  }
  // Canonical form only: the bits that the padding leaves unused in the last character must be
  // zero, so that every byte string has exactly one accepted encoding.
  if (padding > 0) {
    const int last = Base64Value(static_cast<unsigned char>(text[text.size() - padding - 1]));
    if ((last & (padding == 1 ? 0x03 : 0x0f)) != 0) {
      return std::nullopt;
    }
  }
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), Bytes(text),
                                static_cast<int>(text.size()));
  if (n < 0 || static_cast<size_t>(n) != out.size()) {
    return std::nullopt;
  }
  // EVP_DecodeBlock decodes the padding as zero bits and counts them; drop those bytes.
  out.resize(out.size() - padding);
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void RandomBytes(uint8_t* out, size_t len) {
  while (len > 0) {
    const int chunk = len > static_cast<size_t>(INT_MAX) ? INT_MAX : static_cast<int>(len);
    if (RAND_bytes(out, chunk) != 1) {
      // No entropy source: carrying on would hand out predictable nonces and salts.
      abort();
    }
    out += chunk;
    len -= static_cast<size_t>(chunk);
  }
}

std::optional<ScramKeys> ParseScramVerifier(std::string_view text) {
  if (!text.starts_with(kScramVerifierPrefix)) {
    return std::nullopt;
  }
  text.remove_prefix(kScramVerifierPrefix.size());
  const size_t colon1 = text.find(':');
  const size_t dollar = text.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return std::nullopt;
  }
  const size_t colon2 = text.find(':', dollar);
  if (colon2 == std::string_view::npos) {
    return std::nullopt;
  }
  std::string_view iterations = text.substr(0, colon1);
  int count = 0;
  if (iterations.empty() || iterations.size() > 9) {
    return std::nullopt;
  }
  for (char c : iterations) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    count = count * 10 + (c - '0');
  }
  auto salt = Base64Decode(text.substr(colon1 + 1, dollar - colon1 - 1));
  auto stored = Base64Decode(text.substr(dollar + 1, colon2 - dollar - 1));
  auto server = Base64Decode(text.substr(colon2 + 1));
  if (count < 1 || !salt || salt->empty() || !stored || stored->size() != 32 || !server ||
      server->size() != 32) {
    return std::nullopt;
  }
  ScramKeys keys;
  keys.salt = std::move(*salt);
  keys.iterations = count;
  keys.stored_key = std::move(*stored);
  keys.server_key = std::move(*server);
  return keys;
}

ScramKeys DeriveScramKeys(std::string_view password, std::string_view salt, int iterations) {
  ScramKeys keys;
  if (iterations < 1) {
    return keys;  // !valid()
  }
  std::string salted = Pbkdf2Sha256(password, salt, iterations, 32);
  std::string client_key = HmacSha256(salted, "Client Key");
  keys.salt = std::string(salt);
  keys.iterations = iterations;
  keys.stored_key = Sha256(client_key);
  keys.server_key = HmacSha256(salted, "Server Key");
  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());
  return keys;
}

}  // namespace wirepool::crypto
