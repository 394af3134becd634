#pragma once

// TLS as a layer of the stream: OpenSSL runs over memory BIOs, so the socket code stays the same
// and the codecs only ever see plaintext. A TlsContext is what a certificate, a key and a CA file
// make (immutable once loaded, shared by every connection that started under it, so a reload
// swaps the pointer and leaves live connections alone); a TlsSession is one connection's engine.

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace wirepool::core {

// The modes operators know from libpq's sslmode and PgBouncer's *_tls_sslmode.
enum class TlsMode : uint8_t { kDisable, kAllow, kPrefer, kRequire, kVerifyCa, kVerifyFull };

std::optional<TlsMode> ParseTlsMode(std::string_view name);
std::string_view TlsModeName(TlsMode mode);

struct TlsConfig {
  TlsMode mode = TlsMode::kDisable;
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  std::string min_version = "1.2";  // "1.2" or "1.3"
  std::string ciphers;              // OpenSSL cipher list for TLS 1.2 (empty: OpenSSL's default)
  // Client contexts: the name the server's certificate must carry under verify-full (an IP
  // address or a DNS name), also sent as SNI when it is a name.
  std::string server_name;
  // Server contexts: ALPN protocol names to accept, in wire format (length-prefixed); empty:
  // ALPN is ignored.
  std::string alpn;
};

// Refuses a private key file that others may read (or, unless root owns it, its group): a key
// anyone on the machine can copy is not a secret.
absl::Status CheckKeyFilePermissions(const std::string& path);

class TlsContext {
 public:
  // The proxy's side towards clients: needs cert_file and key_file; verify-ca / verify-full ask
  // every client for a certificate signed by ca_file.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> NewServer(const TlsConfig& config);
  // The proxy's side towards a backend: verify-ca / verify-full check the server's certificate
  // against ca_file (the system's store when empty); cert_file / key_file, when set, are the
  // client certificate offered.
  static absl::StatusOr<std::shared_ptr<const TlsContext>> NewClient(const TlsConfig& config);

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext();

  SSL_CTX* get() const { return ctx_; }
  bool server() const { return server_; }
  TlsMode mode() const { return config_.mode; }
  const TlsConfig& config() const { return config_; }
  // Server contexts: the tls-server-end-point channel binding data of the certificate (RFC 5929:
  // its hash under the certificate's signature digest, SHA-256 in place of MD5 or SHA-1).
  const std::string& server_end_point() const { return end_point_; }

 private:
  TlsContext(SSL_CTX* ctx, bool server, TlsConfig config)
      : ctx_(ctx), server_(server), config_(std::move(config)) {}

  SSL_CTX* ctx_;
  bool server_;
  TlsConfig config_;
  std::string end_point_;
};

using TlsContextPtr = std::shared_ptr<const TlsContext>;

// One connection's TLS engine over memory BIOs: ciphertext from the socket goes in with
// FeedCiphertext, plaintext comes out of ReadPlaintext; plaintext goes in with WritePlaintext and
// ciphertext for the socket comes out of TakeCiphertext.
class TlsSession {
 public:
  explicit TlsSession(TlsContextPtr context);
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession();

  void FeedCiphertext(const uint8_t* data, size_t len);
  // Advances the handshake; OK with handshake_done() false while it waits for the peer.
  absl::Status Handshake();
  bool handshake_done() const { return done_; }
  // Up to `cap` bytes of plaintext; 0 when nothing is buffered. An error for a broken stream or
  // the peer's close_notify (CancelledError).
  absl::StatusOr<size_t> ReadPlaintext(uint8_t* out, size_t cap);
  absl::Status WritePlaintext(const uint8_t* data, size_t len);
  // Queues the close_notify alert.
  void Shutdown();
  size_t pending_ciphertext() const;
  size_t TakeCiphertext(uint8_t* out, size_t cap);
  // Gives back a memory BIO's buffer that holds nothing and has grown past `above` bytes (after
  // a big result, say), so a connection does not keep its largest burst's memory forever.
  void TrimBuffers(size_t above);

  // After the handshake.
  std::string Describe() const;  // "TLSv1.3 TLS_AES_256_GCM_SHA384"
  bool peer_verified() const;    // a peer certificate was presented and verified
  std::string PeerCommonName() const;
  std::string AlpnSelected() const;

 private:
  absl::Status Error(std::string_view what, int rc);

  TlsContextPtr context_;
  SSL* ssl_;
  BIO* in_;   // ciphertext from the socket (owned by ssl_)
  BIO* out_;  // ciphertext for the socket (owned by ssl_)
  bool done_ = false;
};

// The oldest OpenSSL error on this thread as text, with the queue emptied.
std::string TakeOpenSslError();

}  // namespace wirepool::core
