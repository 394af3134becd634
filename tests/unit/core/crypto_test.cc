#include "core/crypto.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::crypto {
namespace {

std::string Hex(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
  }
  return out;
}

TEST(CryptoTest, Sha256Abc) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoTest, Sha256Empty) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256(std::string_view())), Hex(Sha256("")));
}

TEST(CryptoTest, Sha1Abc) {
  EXPECT_EQ(Hex(Sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(CryptoTest, HmacSha256Rfc4231Case2) {
  EXPECT_EQ(Hex(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HmacSha256EmptyKeyAndData) {
  // HMAC-SHA256("", "") is a well-known constant.
  EXPECT_EQ(Hex(HmacSha256(std::string_view(), std::string_view())),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CryptoTest, Md5Hex) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(CryptoTest, Pbkdf2Sha256Vectors) {
  EXPECT_EQ(Hex(Pbkdf2Sha256("password", "salt", 1, 32)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b");
  EXPECT_EQ(Hex(Pbkdf2Sha256("password", "salt", 2, 32)),
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43");
  EXPECT_EQ(Hex(Pbkdf2Sha256("password", "salt", 4096, 32)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  EXPECT_EQ(Hex(Pbkdf2Sha256("passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt",
                             4096, 40)),
            "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9");
}

TEST(CryptoTest, Pbkdf2Sha256Rfc7914) {
  EXPECT_EQ(Hex(Pbkdf2Sha256("passwd", "salt", 1, 64)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
}

TEST(CryptoTest, Base64Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    std::optional<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(CryptoTest, Base64RoundTripsAllByteValuesAndLengths) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string data = all.substr(all.size() - len);  // includes trailing NULs and 0xff
    const std::string encoded = Base64Encode(data);
    EXPECT_EQ(encoded.size(), (len + 2) / 3 * 4);
    std::optional<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.has_value()) << len;
    EXPECT_EQ(*decoded, data) << len;
  }
  // Data that itself ends in zero bytes must keep them (padding is not confused with data).
  const std::string zeros("\0\0", 2);
  EXPECT_EQ(Base64Encode(zeros), "AAA=");
  EXPECT_EQ(Base64Decode("AAA="), zeros);
  EXPECT_EQ(Base64Decode("AAAA"), std::string("\0\0\0", 3));
}

TEST(CryptoTest, Base64RejectsMalformed) {
  const std::vector<std::string> bad = {
      "Z",    "Zg",       "Zg=",          "Zm9vY",    "Zg=a",     "=Zg=",  "Z===",
      "====", "Zm9v====", "Zm=v",         "Zm9v\n",   " Zm9v",    "Zm9v ", "Zm9\0",
      "Zm-v", "Zm_v",     "Zm9vYg==Zm9v", "Zg==Zg==", "Zm9v\r\n", "@@@@",
  };
  for (const std::string& text : bad) {
    EXPECT_FALSE(Base64Decode(text).has_value()) << "'" << text << "'";
  }
  EXPECT_FALSE(Base64Decode(std::string("Zm9\0", 4)).has_value());
  // Non-canonical: unused bits before the padding are not zero.
  EXPECT_TRUE(Base64Decode("Zg==").has_value());
  EXPECT_FALSE(Base64Decode("Zh==").has_value());
  EXPECT_TRUE(Base64Decode("Zm8=").has_value());
  EXPECT_FALSE(Base64Decode("Zm9=").has_value());
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals(std::string_view(), ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("Secret", "secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret "));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_TRUE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(CryptoTest, RandomBytesFillsBuffer) {
  std::vector<uint8_t> a(64, 0);
  std::vector<uint8_t> b(64, 0);
  RandomBytes(a.data(), a.size());
  RandomBytes(b.data(), b.size());
  EXPECT_NE(a, b);  // 2^-512 chance of a false failure
  RandomBytes(nullptr, 0);
}

TEST(CryptoTest, DeriveScramKeysRfc7677) {
  std::optional<std::string> salt = Base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  ASSERT_TRUE(salt.has_value());
  const ScramKeys keys = DeriveScramKeys("pencil", *salt, 4096);
  EXPECT_TRUE(keys.valid());
  EXPECT_EQ(keys.salt, *salt);
  EXPECT_EQ(keys.iterations, 4096);
  const std::string salted = Pbkdf2Sha256("pencil", *salt, 4096, 32);
  EXPECT_EQ(keys.stored_key, Sha256(HmacSha256(salted, "Client Key")));
  EXPECT_EQ(keys.server_key, HmacSha256(salted, "Server Key"));
  EXPECT_EQ(keys.stored_key.size(), 32u);
  EXPECT_EQ(keys.server_key.size(), 32u);
}

TEST(CryptoTest, DeriveScramKeysRejectsZeroIterations) {
  EXPECT_FALSE(DeriveScramKeys("pencil", "salt", 0).valid());
}

}  // namespace
}  // namespace wirepool::crypto

namespace wirepool::crypto {
namespace {

TEST(ScramVerifierTest, ParsesPgAuthidFormAndMatchesDerivedKeys) {
  ScramKeys derived = DeriveScramKeys("pencil", "0123456789abcdef", 4096);
  std::string text = "SCRAM-SHA-256$4096:" + Base64Encode(derived.salt) + "$" +
                     Base64Encode(derived.stored_key) + ":" + Base64Encode(derived.server_key);
  std::optional<ScramKeys> parsed = ParseScramVerifier(text);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->iterations, 4096);
  EXPECT_EQ(parsed->salt, derived.salt);
  EXPECT_EQ(parsed->stored_key, derived.stored_key);
  EXPECT_EQ(parsed->server_key, derived.server_key);
}

TEST(ScramVerifierTest, RefusesWhatIsNotOne) {
  const std::string key = Base64Encode(std::string(32, 'k'));
  EXPECT_FALSE(ParseScramVerifier("pencil").has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$").has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key).has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$x:c2FsdA==$" + key + ":" + key).has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$4096:$" + key + ":" + key).has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$4096:c2FsdA==$" + key).has_value());
  EXPECT_FALSE(ParseScramVerifier("SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:" + key).has_value());
  EXPECT_TRUE(ParseScramVerifier("SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key).has_value());
}

}  // namespace
}  // namespace wirepool::crypto
