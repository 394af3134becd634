#include "core/tls.h"

#include <arpa/inet.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/strings.h"

namespace wirepool::core {
namespace {

constexpr std::string_view kModeNames[] = {"disable", "allow",     "prefer",
                                           "require", "verify-ca", "verify-full"};

bool IsIpAddress(const std::string& name) {
  in6_addr v6{};
  in_addr v4{};
  return inet_pton(AF_INET, name.c_str(), &v4) == 1 || inet_pton(AF_INET6, name.c_str(), &v6) == 1;
}

// Everything both roles share: TLS 1.2 or newer only, no compression (CRIME), no renegotiation,
// and buffers given back while a connection is idle (thousands of idle TLS clients).
absl::StatusOr<SSL_CTX*> NewBaseContext(const SSL_METHOD* method, const TlsConfig& config) {
  int min_version = 0;
  if (config.min_version.empty() || config.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else if (config.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    return absl::InvalidArgumentError(
        Cat("min_version \"", config.min_version, "\": must be 1.2 or 1.3"));
  }
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) {
    return absl::InternalError(Cat("SSL_CTX_new: ", TakeOpenSslError()));
  }
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!config.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, config.ciphers.c_str()) != 1) {
    SSL_CTX_free(ctx);
    return absl::InvalidArgumentError(
        Cat("ciphers \"", config.ciphers, "\": ", TakeOpenSslError()));
  }
  return ctx;
}

absl::Status LoadCertificateAndKey(SSL_CTX* ctx, const TlsConfig& config) {
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        Cat("cert_file ", config.cert_file, ": ", TakeOpenSslError()));
  }
  absl::Status st = CheckKeyFilePermissions(config.key_file);
  if (!st.ok()) {
    return st;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    unsigned long code = ERR_peek_error();
    if (ERR_GET_REASON(code) != X509_R_KEY_VALUES_MISMATCH) {
      return absl::InvalidArgumentError(
          Cat("key_file ", config.key_file, ": ", TakeOpenSslError()));
    }
    ERR_clear_error();
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(Cat("key_file ", config.key_file,
                                          " does not match the certificate of cert_file ",
                                          config.cert_file));
  }
  return absl::OkStatus();
}

// RFC 5929 tls-server-end-point: the certificate hashed with its signature's digest, where MD5 and
// SHA-1 are replaced by SHA-256 (and so is a signature without a separate digest, like Ed25519).
std::string EndPointHash(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) {
    return {};
  }
  int md_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, nullptr) != 1 ||
      md_nid == NID_md5 || md_nid == NID_sha1 || md_nid == NID_undef) {
    md_nid = NID_sha256;
  }
  const EVP_MD* md = EVP_get_digestbynid(md_nid);
  if (md == nullptr) {
    md = EVP_sha256();
  }
  unsigned char hash[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, md, hash, &len) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(hash), len);
}

int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  const auto* ours = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, reinterpret_cast<const unsigned char*>(ours->data()),
                            static_cast<unsigned int>(ours->size()), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    // A client that names protocols and none of ours is talking to the wrong server.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

BIO* NewMemBio() {
  BIO* bio = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(bio, -1);
  return bio;
}
bool HoldsEmptyBuffer(BIO* bio, size_t above) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  return BIO_ctrl_pending(bio) == 0 && mem != nullptr && mem->max > above;
}

}  // namespace

std::optional<TlsMode> ParseTlsMode(std::string_view name) {
  for (size_t i = 0; i < std::size(kModeNames); ++i) {
    if (name == kModeNames[i]) {
      return static_cast<TlsMode>(i);
    }
  }
  return std::nullopt;
}

std::string_view TlsModeName(TlsMode mode) { return kModeNames[static_cast<size_t>(mode)]; }

std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) {
    return "unknown OpenSSL error";
  }
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

absl::Status CheckKeyFilePermissions(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(Cat("key_file ", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(Cat("key_file ", path, ": not a regular file"));
  }
  mode_t allowed = st.st_uid == 0 ? (S_IRUSR | S_IWUSR | S_IRGRP) : (S_IRUSR | S_IWUSR);
  if ((st.st_mode & 0777 & ~allowed) != 0) {
    return absl::PermissionDeniedError(
        Cat("key_file ", path, " has group or world access (mode 0",
            absl::StrFormat("%o", st.st_mode & 0777),
            "); it must be 0600 or less (0640 if owned by root): chmod 600 ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<TlsContextPtr> TlsContext::NewServer(const TlsConfig& config) {
  if (config.cert_file.empty() || config.key_file.empty()) {
    return absl::InvalidArgumentError("cert_file and key_file are required");
  }
  auto base = NewBaseContext(TLS_server_method(), config);
  if (!base.ok()) {
    return base.status();
  }
  std::shared_ptr<TlsContext> out(new TlsContext(*base, true, config));
  SSL_CTX* ctx = out->ctx_;
  absl::Status st = LoadCertificateAndKey(ctx, config);
  if (!st.ok()) {
    return st;
  }
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  // libpq and most drivers never resume a session: tickets would be work for nothing.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (config.mode == TlsMode::kVerifyCa || config.mode == TlsMode::kVerifyFull) {
    if (config.ca_file.empty()) {
      return absl::InvalidArgumentError(
          Cat("ca_file is required with mode ", TlsModeName(config.mode)));
    }
    if (SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(Cat("ca_file ", config.ca_file, ": ", TakeOpenSslError()));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.ca_file.c_str());
    if (names != nullptr) {
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (!out->config_.alpn.empty()) {
    SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, &out->config_.alpn);
  }
  out->end_point_ = EndPointHash(ctx);
  return TlsContextPtr(std::move(out));
}

absl::StatusOr<TlsContextPtr> TlsContext::NewClient(const TlsConfig& config) {
  auto base = NewBaseContext(TLS_client_method(), config);
  if (!base.ok()) {
    return base.status();
  }
  std::shared_ptr<TlsContext> out(new TlsContext(*base, false, config));
  SSL_CTX* ctx = out->ctx_;
  if (!config.cert_file.empty() || !config.key_file.empty()) {
    if (config.cert_file.empty() || config.key_file.empty()) {
      return absl::InvalidArgumentError("cert_file and key_file go together");
    }
    absl::Status st = LoadCertificateAndKey(ctx, config);
    if (!st.ok()) {
      return st;
    }
  }
  if (config.mode == TlsMode::kVerifyCa || config.mode == TlsMode::kVerifyFull) {
    int rc = config.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(ctx)
                 : SSL_CTX_load_verify_locations(ctx, config.ca_file.c_str(), nullptr);
    if (rc != 1) {
      return absl::InvalidArgumentError(Cat("ca_file ", config.ca_file, ": ", TakeOpenSslError()));
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    // allow / prefer / require: encryption without authentication of the server, as in libpq.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (config.mode == TlsMode::kVerifyFull && config.server_name.empty()) {
    return absl::InvalidArgumentError("verify-full needs the server's name (server_name)");
  }
  return TlsContextPtr(std::move(out));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(TlsContextPtr context) : context_(std::move(context)) {
  ssl_ = SSL_new(context_->get());
  // An empty input BIO means "wait for the socket", not end of stream.
  in_ = NewMemBio();
  out_ = NewMemBio();
  SSL_set_bio(ssl_, in_, out_);
  if (context_->server()) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  const TlsConfig& config = context_->config();
  if (config.server_name.empty()) {
    return;
  }
  bool ip = IsIpAddress(config.server_name);
  if (!ip) {
    SSL_set_tlsext_host_name(ssl_, config.server_name.c_str());
  }
  if (config.mode == TlsMode::kVerifyFull) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, config.server_name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, config.server_name.c_str(), 0);
    }
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::FeedCiphertext(const uint8_t* data, size_t len) {
  BIO_write(in_, data, static_cast<int>(len));
}

absl::Status TlsSession::Error(std::string_view what, int rc) {
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_ZERO_RETURN) {
    ERR_clear_error();
    return absl::CancelledError("peer closed the TLS session");
  }
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return absl::UnauthenticatedError(
        Cat(what, ": certificate verify failed: ", X509_verify_cert_error_string(verify)));
  }
  if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    return absl::UnavailableError(Cat(what, ": unexpected end of the TLS stream"));
  }
  return absl::UnavailableError(Cat(what, ": ", TakeOpenSslError()));
}

absl::Status TlsSession::Handshake() {
  if (done_) {
    return absl::OkStatus();
  }
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    return absl::OkStatus();
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return absl::OkStatus();
  }
  return Error("TLS handshake", rc);
}

absl::StatusOr<size_t> TlsSession::ReadPlaintext(uint8_t* out, size_t cap) {
  size_t n = 0;
  int rc = SSL_read_ex(ssl_, out, cap, &n);
  if (rc == 1) {
    return n;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    return 0;
  }
  return Error("TLS read", rc);
}

absl::Status TlsSession::WritePlaintext(const uint8_t* data, size_t len) {
  size_t n = 0;
  int rc = SSL_write_ex(ssl_, data, len, &n);
  if (rc == 1 && n == len) {
    return absl::OkStatus();
  }
  return Error("TLS write", rc);
}

void TlsSession::Shutdown() {
  if (done_) {
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
}

void TlsSession::TrimBuffers(size_t above) {
  if (HoldsEmptyBuffer(in_, above)) {
    in_ = NewMemBio();
    SSL_set0_rbio(ssl_, in_);
  }
  if (HoldsEmptyBuffer(out_, above)) {
    out_ = NewMemBio();
    SSL_set0_wbio(ssl_, out_);
  }
}

size_t TlsSession::pending_ciphertext() const { return BIO_ctrl_pending(out_); }

size_t TlsSession::TakeCiphertext(uint8_t* out, size_t cap) {
  int n = BIO_read(out_, out, static_cast<int>(cap));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::string TlsSession::Describe() const {
  return Cat(SSL_get_version(ssl_), " ", SSL_get_cipher_name(ssl_));
}

bool TlsSession::peer_verified() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return cert != nullptr && SSL_get_verify_result(ssl_) == X509_V_OK;
}

std::string TlsSession::PeerCommonName() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr) {
    return {};
  }
  X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) {
    return {};
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

std::string TlsSession::AlpnSelected() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return std::string(reinterpret_cast<const char*>(data), len);
}

}  // namespace wirepool::core
