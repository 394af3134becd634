#pragma once

// The MySQL / MariaDB authentication methods, both roles, as pure functions over the scramble
// (the 20 random bytes of the server's handshake) and the password. No I/O.

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace wirepool::codec::mysql {

constexpr size_t kScrambleLen = 20;

// mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
// Empty password -> empty response.
std::string NativePasswordResponse(std::string_view password, std::string_view scramble);
// The proxy verifying a client (constant-time).
bool VerifyNativePassword(std::string_view password, std::string_view scramble,
                          std::string_view response);

// caching_sha2_password fast path:
// XOR(SHA256(password), SHA256(SHA256(SHA256(password)) + scramble)).
std::string CachingSha2Response(std::string_view password, std::string_view scramble);
bool VerifyCachingSha2(std::string_view password, std::string_view scramble,
                       std::string_view response);
// caching_sha2_password full authentication without TLS: the password (with a trailing NUL)
// XORed with the scramble (repeated), encrypted with the server's RSA public key (PEM) using
// RSA_PKCS1_OAEP_PADDING.
absl::StatusOr<std::string> CachingSha2RsaEncrypt(std::string_view password,
                                                  std::string_view scramble,
                                                  std::string_view public_key_pem);

// An RSA key pair of the proxy's own, for clients that ask for caching_sha2 full authentication.
class RsaKeyPair {
 public:
  static absl::StatusOr<RsaKeyPair> Generate(int bits = 2048);
  const std::string& public_pem() const { return public_pem_; }
  // Decrypts an OAEP-padded message; error on anything malformed.
  absl::StatusOr<std::string> Decrypt(std::string_view ciphertext) const;

 private:
  std::string public_pem_;
  std::string private_pem_;
};
// The proxy verifying a full-auth answer: decrypt, XOR with the scramble, compare (constant time)
// with password + NUL.
bool VerifyCachingSha2Full(const RsaKeyPair& keys, std::string_view password,
                           std::string_view scramble, std::string_view ciphertext);

// MariaDB client_ed25519: the 64-byte signature of the scramble (MariaDB sends a 32-byte one)
// under a key derived from SHA-512(password), exactly as MariaDB's ref10 implementation does.
absl::StatusOr<std::string> Ed25519Response(std::string_view password, std::string_view scramble);

}  // namespace wirepool::codec::mysql
