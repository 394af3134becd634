#include "codecs/mysql/auth.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "core/crypto.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// ---- small helpers ---------------------------------------------------------------------------

std::string Xor(std::string_view a, std::string_view b) {
  std::string out(a);
  for (size_t i = 0; i < out.size() && i < b.size(); ++i) {
    out[i] = static_cast<char>(out[i] ^ b[i]);
  }
  return out;
}

// (password + NUL) XOR the scramble repeated, as both caching_sha2 full-auth sides compute it.
std::string XorWithScramble(std::string_view password, std::string_view scramble) {
  std::string out(password);
  out.push_back('\0');
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<char>(out[i] ^ scramble[i % scramble.size()]);
  }
  return out;
}

const unsigned char* Uc(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// The oldest OpenSSL error on this thread as text (and the queue emptied, so that nothing stale
// is blamed on a later call).
std::string OpenSslError(std::string_view what) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return std::string(what);
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return Cat(what, ": ", buf);
}

absl::Status SslStatus(std::string_view what) { return absl::InternalError(OpenSslError(what)); }

BioPtr MemBio(std::string_view s) {
  if (s.size() > static_cast<size_t>(INT_MAX)) {
    return nullptr;
  }
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) {
    return std::string();
  }
  return std::string(data, static_cast<size_t>(len));
}

// Runs an EVP_PKEY encrypt or decrypt with OAEP padding (SHA-1, as MySQL uses).
absl::StatusOr<std::string> RsaOaep(EVP_PKEY* key, bool encrypt, std::string_view in) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(key, nullptr));
  if (ctx == nullptr) {
    return SslStatus("EVP_PKEY_CTX_new");
  }
  int rc = encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get());
  if (rc <= 0 || EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) <= 0) {
    return SslStatus("RSA OAEP init");
  }
  size_t out_len = 0;
  rc = encrypt ? EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, Uc(in), in.size())
               : EVP_PKEY_decrypt(ctx.get(), nullptr, &out_len, Uc(in), in.size());
  if (rc <= 0) {
    return SslStatus(encrypt ? "RSA encrypt" : "RSA decrypt");
  }
  std::string out(out_len, '\0');
  rc = encrypt ? EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_len,
                                  Uc(in), in.size())
               : EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &out_len,
                                  Uc(in), in.size());
  if (rc <= 0) {
    return encrypt ? SslStatus("RSA encrypt")
                   : absl::InvalidArgumentError(OpenSslError("RSA decrypt"));
  }
  out.resize(out_len);
  return out;
}

// ---- ed25519 (libsodium primitives, MariaDB's derivation) ------------------------------------

bool SodiumReady() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

// SHA-512 of the concatenation of `parts`.
void Sha512(unsigned char out[crypto_hash_sha512_BYTES],
            std::initializer_list<std::string_view> parts) {
  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  for (std::string_view p : parts) {
    crypto_hash_sha512_update(&state, Uc(p), p.size());
  }
  crypto_hash_sha512_final(&state, out);
}

std::string_view View(const unsigned char* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

}  // namespace

// ---- mysql_native_password -------------------------------------------------------------------

std::string NativePasswordResponse(std::string_view password, std::string_view scramble) {
  if (password.empty()) {
    return std::string();
  }
  const std::string stage1 = crypto::Sha1(password);
  const std::string stage2 = crypto::Sha1(stage1);
  return Xor(stage1, crypto::Sha1(Cat(scramble, stage2)));
}

bool VerifyNativePassword(std::string_view password, std::string_view scramble,
                          std::string_view response) {
  return crypto::ConstantTimeEquals(NativePasswordResponse(password, scramble), response);
}

// ---- caching_sha2_password -------------------------------------------------------------------

std::string CachingSha2Response(std::string_view password, std::string_view scramble) {
  if (password.empty()) {
    return std::string();
  }
  const std::string digest1 = crypto::Sha256(password);
  const std::string digest2 = crypto::Sha256(digest1);
  return Xor(digest1, crypto::Sha256(Cat(digest2, scramble)));
}

bool VerifyCachingSha2(std::string_view password, std::string_view scramble,
                       std::string_view response) {
  if (password.empty()) {
    // Clients send nothing or a single NUL for an empty password.
    return response.empty() || response == std::string_view("\0", 1);
  }
  return crypto::ConstantTimeEquals(CachingSha2Response(password, scramble), response);
}

absl::StatusOr<std::string> CachingSha2RsaEncrypt(std::string_view password,
                                                  std::string_view scramble,
                                                  std::string_view public_key_pem) {
  if (scramble.empty()) {
    return absl::InvalidArgumentError("caching_sha2_password: empty scramble");
  }
  BioPtr bio = MemBio(public_key_pem);
  if (bio == nullptr) {
    return SslStatus("BIO_new_mem_buf");
  }
  PkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(OpenSslError("server RSA public key is not a PEM key"));
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("server public key is not an RSA key");
  }
  std::string plain = XorWithScramble(password, scramble);
  absl::StatusOr<std::string> out = RsaOaep(key.get(), /*encrypt=*/true, plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  return out;
}

absl::StatusOr<RsaKeyPair> RsaKeyPair::Generate(int bits) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) <= 0) {
    return SslStatus("RSA keygen init");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) <= 0) {
    return SslStatus("RSA keygen");
  }
  PkeyPtr key(raw);
  BioPtr pub(BIO_new(BIO_s_mem()));
  BioPtr priv(BIO_new(BIO_s_mem()));
  if (pub == nullptr || priv == nullptr) {
    return SslStatus("BIO_new");
  }
  if (PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1 ||
      PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return SslStatus("PEM export");
  }
  RsaKeyPair pair;
  pair.public_pem_ = BioContents(pub.get());
  pair.private_pem_ = BioContents(priv.get());
  if (pair.public_pem_.empty() || pair.private_pem_.empty()) {
    return absl::InternalError("PEM export produced nothing");
  }
  return pair;
}

absl::StatusOr<std::string> RsaKeyPair::Decrypt(std::string_view ciphertext) const {
  BioPtr bio = MemBio(private_pem_);
  if (bio == nullptr) {
    return SslStatus("BIO_new_mem_buf");
  }
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return SslStatus("private key");
  }
  return RsaOaep(key.get(), /*encrypt=*/false, ciphertext);
}

bool VerifyCachingSha2Full(const RsaKeyPair& keys, std::string_view password,
                           std::string_view scramble, std::string_view ciphertext) {
  if (scramble.empty()) {
    return false;
  }
  absl::StatusOr<std::string> plain = keys.Decrypt(ciphertext);
  if (!plain.ok()) {
    return false;
  }
  // XOR is its own inverse: undo the scramble, then compare with password + NUL.
  std::string expected(password);
  expected.push_back('\0');
  std::string got = std::move(*plain);
  for (size_t i = 0; i < got.size(); ++i) {
    got[i] = static_cast<char>(got[i] ^ scramble[i % scramble.size()]);
  }
  const bool ok = crypto::ConstantTimeEquals(got, expected);
  OPENSSL_cleanse(got.data(), got.size());
  OPENSSL_cleanse(expected.data(), expected.size());
  return ok;
}

// ---- client_ed25519 --------------------------------------------------------------------------

absl::StatusOr<std::string> Ed25519Response(std::string_view password, std::string_view scramble) {
  if (!SodiumReady()) {
    return absl::InternalError("libsodium failed to initialise");
  }
  // The secret scalar and the nonce prefix come from SHA-512(password), not from a random seed:
  // MariaDB stores A = a·B and the client re-derives a from the password on every login.
  unsigned char az[crypto_hash_sha512_BYTES];
  Sha512(az, {password});
  az[0] &= 248;
  az[31] &= 63;
  az[31] |= 64;

  unsigned char a[crypto_core_ed25519_SCALARBYTES];  // a mod L (same point, reduced scalar)
  unsigned char wide[crypto_core_ed25519_NONREDUCEDSCALARBYTES] = {};
  std::copy(az, az + 32, wide);
  crypto_core_ed25519_scalar_reduce(a, wide);

  unsigned char pk[crypto_core_ed25519_BYTES];  // A = a·B
  unsigned char nonce_hash[crypto_hash_sha512_BYTES];
  unsigned char r[crypto_core_ed25519_SCALARBYTES];
  unsigned char big_r[crypto_core_ed25519_BYTES];
  unsigned char hram_hash[crypto_hash_sha512_BYTES];
  unsigned char h[crypto_core_ed25519_SCALARBYTES];
  unsigned char ha[crypto_core_ed25519_SCALARBYTES];
  unsigned char s[crypto_core_ed25519_SCALARBYTES];

  bool ok = crypto_scalarmult_ed25519_base_noclamp(pk, a) == 0;
  if (ok) {
    // r = SHA-512(prefix || M) mod L; R = r·B.
    Sha512(nonce_hash, {View(az + 32, 32), scramble});
    crypto_core_ed25519_scalar_reduce(r, nonce_hash);
    ok = crypto_scalarmult_ed25519_base_noclamp(big_r, r) == 0;
  }
  std::string sig;
  if (ok) {
    // h = SHA-512(R || A || M) mod L; S = r + h·a mod L.
    Sha512(hram_hash, {View(big_r, sizeof(big_r)), View(pk, sizeof(pk)), scramble});
    crypto_core_ed25519_scalar_reduce(h, hram_hash);
    crypto_core_ed25519_scalar_mul(ha, h, a);
    crypto_core_ed25519_scalar_add(s, r, ha);
    sig.reserve(64);
    sig.append(View(big_r, sizeof(big_r)));
    sig.append(View(s, sizeof(s)));
  }
  sodium_memzero(az, sizeof(az));
  sodium_memzero(a, sizeof(a));
  sodium_memzero(wide, sizeof(wide));
  sodium_memzero(nonce_hash, sizeof(nonce_hash));
  sodium_memzero(r, sizeof(r));
  sodium_memzero(ha, sizeof(ha));
  if (!ok) {
    // Only a zero scalar gives the identity point, with probability 2^-252.
    return absl::InternalError("ed25519: degenerate scalar");
  }
  return sig;
}

}  // namespace wirepool::codec::mysql
