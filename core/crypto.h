#pragma once

// Thin, allocation-light wrappers over OpenSSL for the hashes, MACs and KDFs the auth methods of
// every protocol need. Byte strings are std::string holding raw bytes unless a name says
// Hex/Base64.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wirepool::crypto {

std::string Sha1(std::string_view data);
std::string Sha256(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);
std::string Md5Hex(std::string_view data);  // 32 lowercase hex digits
std::string Pbkdf2Sha256(std::string_view password, std::string_view salt, int iterations,
                         size_t length);
std::string Base64Encode(std::string_view data);
std::optional<std::string> Base64Decode(std::string_view text);  // nullopt on malformed input
// Compares without an early exit, so timing says nothing about where inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);
// Cryptographically strong random bytes (OpenSSL RAND_bytes).
void RandomBytes(uint8_t* out, size_t len);

// What a SCRAM-SHA-256 server needs to verify a client: never the password itself.
struct ScramKeys {
  std::string salt;  // raw bytes
  int iterations = 0;
  std::string stored_key;  // H(ClientKey), raw 32 bytes
  std::string server_key;  // HMAC(SaltedPassword, "Server Key"), raw 32 bytes
  bool valid() const { return iterations > 0; }
};

// Derives the keys from a password (runs PBKDF2 once; call at config load, not per login).
ScramKeys DeriveScramKeys(std::string_view password, std::string_view salt, int iterations);

// A SCRAM-SHA-256 verifier as PostgreSQL stores it in pg_authid
// ("SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", base64 parts); nullopt when
// `text` is not one.
std::optional<ScramKeys> ParseScramVerifier(std::string_view text);
inline constexpr std::string_view kScramVerifierPrefix = "SCRAM-SHA-256$";

}  // namespace wirepool::crypto
