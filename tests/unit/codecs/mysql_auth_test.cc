#include "codecs/mysql/auth.h"

#include <sodium.h>

#include <string>

#include "core/crypto.h"
#include "gtest/gtest.h"

namespace wirepool::codec::mysql {
namespace {

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string Hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
  }
  return out;
}

// The scramble 0x01..0x14.
std::string Scramble20() {
  std::string s;
  for (int i = 1; i <= 20; ++i) {
    s.push_back(static_cast<char>(i));
  }
  return s;
}

// ---- mysql_native_password -------------------------------------------------------------------

TEST(MysqlAuthTest, NativeKnownVector) {
  // python3: s1=sha1(b"secret-pw"); xor(s1, sha1(bytes(range(1,21)) + sha1(s1)))
  EXPECT_EQ(Hex(NativePasswordResponse("secret-pw", Scramble20())),
            "1e58b73f68d9dafb7b3e186a5419a21c9e153b15");
  // What the server stores is "*" + HEX(SHA1(SHA1(password))); the response unmasks to SHA1(pw).
  const std::string response = NativePasswordResponse("secret-pw", Scramble20());
  const std::string stage2 = Unhex("b87675491d86b74664f2ea1d3a7060e82a810802");
  const std::string mask = crypto::Sha1(Scramble20() + stage2);
  std::string stage1(20, '\0');
  for (size_t i = 0; i < 20; ++i) {
    stage1[i] = static_cast<char>(response[i] ^ mask[i]);
  }
  EXPECT_EQ(crypto::Sha1(stage1), stage2);
}

TEST(MysqlAuthTest, NativeVerify) {
  const std::string scramble = Scramble20();
  const std::string response = NativePasswordResponse("pw", scramble);
  EXPECT_EQ(response.size(), 20u);
  EXPECT_TRUE(VerifyNativePassword("pw", scramble, response));
  EXPECT_FALSE(VerifyNativePassword("pw2", scramble, response));
  EXPECT_FALSE(VerifyNativePassword("pw", "another scramble 20b", response));
  EXPECT_FALSE(VerifyNativePassword("pw", scramble, response.substr(0, 19)));
  EXPECT_FALSE(VerifyNativePassword("pw", scramble, ""));
  // Empty password: empty response, and nothing else verifies.
  EXPECT_EQ(NativePasswordResponse("", scramble), "");
  EXPECT_TRUE(VerifyNativePassword("", scramble, ""));
  EXPECT_FALSE(VerifyNativePassword("", scramble, response));
}

// ---- caching_sha2_password -------------------------------------------------------------------

TEST(MysqlAuthTest, CachingSha2KnownVector) {
  // python3: d1=sha256(b"secret-pw"); xor(d1, sha256(sha256(d1) + bytes(range(1,21))))
  EXPECT_EQ(Hex(CachingSha2Response("secret-pw", Scramble20())),
            "702fa0e474391a0956d714f772bc509eee0b17df5d3148085e353830a638211c");
}

TEST(MysqlAuthTest, CachingSha2FastPathRoundTrip) {
  const std::string scramble = Scramble20();
  const std::string response = CachingSha2Response("hunter2", scramble);
  EXPECT_EQ(response.size(), 32u);
  EXPECT_TRUE(VerifyCachingSha2("hunter2", scramble, response));
  EXPECT_FALSE(VerifyCachingSha2("hunter3", scramble, response));
  EXPECT_FALSE(VerifyCachingSha2("hunter2", "XXXXXXXXXXXXXXXXXXXX", response));
  EXPECT_FALSE(VerifyCachingSha2("hunter2", scramble, ""));
  EXPECT_FALSE(VerifyCachingSha2("hunter2", scramble, std::string(1, '\0')));
  EXPECT_EQ(CachingSha2Response("", scramble), "");
  EXPECT_TRUE(VerifyCachingSha2("", scramble, ""));
  EXPECT_TRUE(VerifyCachingSha2("", scramble, std::string(1, '\0')));
  EXPECT_FALSE(VerifyCachingSha2("", scramble, response));
}

// Key generation takes a while; one pair serves every RSA test (null if generation failed).
const RsaKeyPair* TestKeys() {
  static const RsaKeyPair* keys = [] {
    absl::StatusOr<RsaKeyPair> k = RsaKeyPair::Generate(2048);
    return k.ok() ? new RsaKeyPair(*std::move(k)) : nullptr;
  }();
  return keys;
}

TEST(MysqlAuthTest, RsaKeyPairPem) {
  ASSERT_NE(TestKeys(), nullptr);
  const RsaKeyPair& keys = *TestKeys();
  EXPECT_EQ(keys.public_pem().rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  EXPECT_NE(keys.public_pem().find("-----END PUBLIC KEY-----"), std::string::npos);
  EXPECT_EQ(keys.public_pem().find("PRIVATE"), std::string::npos);
}

TEST(MysqlAuthTest, CachingSha2RsaRoundTrip) {
  ASSERT_NE(TestKeys(), nullptr);
  const RsaKeyPair& keys = *TestKeys();
  const std::string scramble = Scramble20();
  // Longer than the scramble, so the XOR wraps.
  const std::string password = "a password longer than twenty bytes";
  absl::StatusOr<std::string> cipher = CachingSha2RsaEncrypt(password, scramble, keys.public_pem());
  ASSERT_TRUE(cipher.ok()) << cipher.status();
  EXPECT_EQ(cipher->size(), 256u);

  absl::StatusOr<std::string> plain = keys.Decrypt(*cipher);
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_EQ(plain->size(), password.size() + 1);
  std::string unmasked = *plain;
  for (size_t i = 0; i < unmasked.size(); ++i) {
    unmasked[i] = static_cast<char>(unmasked[i] ^ scramble[i % scramble.size()]);
  }
  EXPECT_EQ(unmasked, password + std::string(1, '\0'));

  EXPECT_TRUE(VerifyCachingSha2Full(keys, password, scramble, *cipher));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, password + "x", scramble, *cipher));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, password, "YYYYYYYYYYYYYYYYYYYY", *cipher));
  // OAEP is randomised: two encryptions differ, both verify.
  absl::StatusOr<std::string> again = CachingSha2RsaEncrypt(password, scramble, keys.public_pem());
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *cipher);
  EXPECT_TRUE(VerifyCachingSha2Full(keys, password, scramble, *again));

  // Empty password still carries the NUL.
  cipher = CachingSha2RsaEncrypt("", scramble, keys.public_pem());
  ASSERT_TRUE(cipher.ok());
  EXPECT_TRUE(VerifyCachingSha2Full(keys, "", scramble, *cipher));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, "x", scramble, *cipher));
}

TEST(MysqlAuthTest, CachingSha2RsaMalformed) {
  ASSERT_NE(TestKeys(), nullptr);
  const RsaKeyPair& keys = *TestKeys();
  const std::string scramble = Scramble20();
  EXPECT_FALSE(CachingSha2RsaEncrypt("pw", scramble, "not a key").ok());
  EXPECT_FALSE(CachingSha2RsaEncrypt("pw", scramble, "").ok());
  EXPECT_FALSE(CachingSha2RsaEncrypt("pw", "", keys.public_pem()).ok());
  // Too long for one OAEP block of a 2048-bit key (256 - 42 bytes).
  EXPECT_FALSE(CachingSha2RsaEncrypt(std::string(300, 'p'), scramble, keys.public_pem()).ok());

  absl::StatusOr<std::string> cipher = CachingSha2RsaEncrypt("pw", scramble, keys.public_pem());
  ASSERT_TRUE(cipher.ok());
  EXPECT_FALSE(keys.Decrypt("").ok());
  EXPECT_FALSE(keys.Decrypt(cipher->substr(1)).ok());
  std::string flipped = *cipher;
  flipped[100] = static_cast<char>(flipped[100] ^ 1);
  EXPECT_FALSE(keys.Decrypt(flipped).ok());
  EXPECT_FALSE(VerifyCachingSha2Full(keys, "pw", scramble, flipped));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, "pw", scramble, std::string(256, '\xff')));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, "pw", scramble, "garbage"));
  EXPECT_FALSE(VerifyCachingSha2Full(keys, "pw", "", *cipher));

  // A key pair from another generation cannot decrypt it.
  absl::StatusOr<RsaKeyPair> other = RsaKeyPair::Generate(1024);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_FALSE(VerifyCachingSha2Full(*other, "pw", scramble, *cipher));
}

// ---- client_ed25519 --------------------------------------------------------------------------

// The public key MariaDB stores for `password`, derived with libsodium's clamping base multiply
// (a path independent of the one auth.cc takes).
std::string Ed25519PublicKey(std::string_view password) {
  unsigned char az[crypto_hash_sha512_BYTES];
  crypto_hash_sha512(az, reinterpret_cast<const unsigned char*>(password.data()), password.size());
  unsigned char pk[crypto_scalarmult_ed25519_BYTES];
  EXPECT_EQ(crypto_scalarmult_ed25519_base(pk, az), 0);
  return std::string(reinterpret_cast<const char*>(pk), sizeof(pk));
}

bool SodiumVerify(std::string_view sig, std::string_view msg, std::string_view pk) {
  return sig.size() == crypto_sign_BYTES && pk.size() == crypto_sign_PUBLICKEYBYTES &&
         crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig.data()),
                                     reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                     reinterpret_cast<const unsigned char*>(pk.data())) == 0;
}

std::string Scramble32() {
  std::string s;
  for (int i = 0; i < 32; ++i) {
    s.push_back(static_cast<char>(i));
  }
  return s;
}

TEST(MysqlAuthTest, Ed25519MatchesMariaDbStoredKey) {
  ASSERT_GE(sodium_init(), 0);
  // MariaDB 10.11: CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('wirepool-ed25519-test')
  // stored authentication_string "TW3cs7FSJQiSKpIetefM4mvoyKtuTgRwhEylpLb9kgg" (base64, unpadded).
  const std::string stored = *crypto::Base64Decode("TW3cs7FSJQiSKpIetefM4mvoyKtuTgRwhEylpLb9kgg=");
  EXPECT_EQ(Ed25519PublicKey("wirepool-ed25519-test"), stored);

  absl::StatusOr<std::string> sig = Ed25519Response("wirepool-ed25519-test", Scramble32());
  ASSERT_TRUE(sig.ok()) << sig.status();
  EXPECT_TRUE(SodiumVerify(*sig, Scramble32(), stored));
  // Recorded from this implementation after it logged in to MariaDB 10.11 as that user.
  EXPECT_EQ(Hex(*sig),
            "68560a7303a62ab251a218bedec8e35b27b2bc3b5b743152b16f6b340ff8f3ed"
            "3b692b62bcc4e7e3670555d4c1249cd44b43edf6fb8635bb0a5af76d2e5d090b");
}

TEST(MysqlAuthTest, Ed25519SignatureVerifies) {
  ASSERT_GE(sodium_init(), 0);
  for (std::string_view password : {"", "x", "hunter2", "a much longer password, with spaces"}) {
    SCOPED_TRACE(password);
    const std::string pk = Ed25519PublicKey(password);
    absl::StatusOr<std::string> sig = Ed25519Response(password, Scramble32());
    ASSERT_TRUE(sig.ok()) << sig.status();
    ASSERT_EQ(sig->size(), 64u);
    EXPECT_TRUE(SodiumVerify(*sig, Scramble32(), pk));
    // Deterministic.
    EXPECT_EQ(*Ed25519Response(password, Scramble32()), *sig);
    // Bound to the message and the key.
    std::string other = Scramble32();
    other[5] ^= 1;
    EXPECT_FALSE(SodiumVerify(*sig, other, pk));
    EXPECT_FALSE(SodiumVerify(*sig, Scramble32(), Ed25519PublicKey("wrong")));
  }
}

TEST(MysqlAuthTest, Ed25519EqualsStandardEd25519ForA32BytePassword) {
  // With a 32-byte password, MariaDB's derivation is RFC 8032 Ed25519 with the password as seed.
  ASSERT_GE(sodium_init(), 0);
  const std::string password = "0123456789abcdef0123456789abcdef";
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
  crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(password.data()));
  unsigned char sig[crypto_sign_BYTES];
  const std::string msg = Scramble32();
  crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       sk);
  absl::StatusOr<std::string> mine = Ed25519Response(password, msg);
  ASSERT_TRUE(mine.ok());
  EXPECT_EQ(*mine, std::string(reinterpret_cast<const char*>(sig), sizeof(sig)));
  EXPECT_EQ(Ed25519PublicKey(password), std::string(reinterpret_cast<const char*>(pk), sizeof(pk)));
}

}  // namespace
}  // namespace wirepool::codec::mysql
