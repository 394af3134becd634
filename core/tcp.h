#pragma once

// TCP listener and stream over libuv. A stream's uv handle and its in-flight writes live in a heap
// cell that outlives the TcpStream object until libuv's close callback, so the owner may be
// destroyed at any moment without a dangling callback. Bytes are written by reference (Slice) and
// gathered into one writev per flush.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/buffer.h"
#include "core/tls.h"
#include "uv.h"

namespace wirepool::core {

// Resolves "host" (literal address or name, looked up once, synchronously) and a port.
absl::StatusOr<sockaddr_storage> ResolveAddress(const std::string& host, uint16_t port);
// A Unix-domain socket's path as an address (Connect takes it like a TCP one).
absl::StatusOr<sockaddr_storage> UnixAddress(const std::string& path);
std::string FormatAddress(const sockaddr_storage& addr);

class TcpStream;

class TcpStreamHandler {
 public:
  virtual ~TcpStreamHandler() = default;
  virtual void OnConnected(TcpStream& stream, const absl::Status& status) {}
  // The TLS handshake StartTls began is done. Plaintext that came with it is in stream.input()
  // already: read it as for OnReadable.
  virtual void OnTlsReady(TcpStream& stream) {}
  // New bytes are in stream.input().
  virtual void OnReadable(TcpStream& stream) = 0;
  // The write queue fell below the low-water mark after having been above the high one.
  virtual void OnWritesDrained(TcpStream& stream) {}
  // The peer closed or the socket failed. Called at most once; the stream is closed already.
  virtual void OnStreamClosed(TcpStream& stream, const absl::Status& why) = 0;
};

class TcpStream {
 public:
  static constexpr size_t kHighWater = 1 << 20;  // stop reading the other side above this
  static constexpr size_t kLowWater = 256 << 10;

  TcpStream(uv_loop_t* loop, TcpStreamHandler& handler);
  TcpStream(const TcpStream&) = delete;
  TcpStream& operator=(const TcpStream&) = delete;
  ~TcpStream();

  // Takes an accepted socket (TcpListener hands them out); closes it on failure.
  absl::Status Adopt(int fd);
  // Moving a connection to another worker's loop, in two steps, each on its own loop's thread:
  // ReleaseFd gives up the socket here (a duplicate of it is returned; the uv handle closes)
  // while keeping TLS and everything else of the stream, and Reopen takes it up on `loop`.
  // Only a quiet stream can move: nothing queued, in flight or unread, not closed (else -1).
  int ReleaseFd();
  absl::Status Reopen(uv_loop_t* loop, int fd);
  // Starts an outgoing connection, over TCP or to a Unix-domain socket (AF_UNIX, from
  // UnixAddress); the handler hears OnConnected.
  absl::Status Connect(const sockaddr_storage& addr);

  void StartReading();
  void StopReading();
  bool reading() const { return reading_; }

  InputBuffer& input() { return input_; }

  // Slices queued for the socket: most writes are one slice (a forwarded read, or the proxy's
  // messages appended into one block), which an idle connection keeps without a heap array.
  using SliceQueue = absl::InlinedVector<Slice, 1>;

  // From here on the stream is TLS: what is queued goes out first in plaintext (the protocol's
  // "go ahead"), then everything read is decrypted and everything written encrypted. Bytes
  // already read are refused (plaintext injected ahead of the handshake) unless `input_is_tls`
  // says they are the peer's first TLS bytes (a direct TLS connection). The handler hears
  // OnTlsReady, or OnStreamClosed if the handshake fails; an error here means nothing started.
  absl::Status StartTls(TlsContextPtr context, bool input_is_tls = false);
  bool tls() const { return tls_ != nullptr; }
  // After OnTlsReady; null on a plaintext stream.
  const TlsSession* tls_session() const { return tls_ != nullptr ? &tls_->session : nullptr; }

  // Queues bytes; nothing goes out until Flush().
  void Write(Slice slice);
  void Write(std::string_view bytes);
  void Flush();
  // Bytes queued or in flight.
  size_t queued_bytes() const;
  bool over_high_water() const { return queued_bytes() > kHighWater; }

  // Closes now; pending writes are dropped and no handler method is called again.
  void Close();
  // Sends what is queued, then closes; no handler method is called again. A peer that does not
  // read what is queued within `limit` is cut off, so a closed connection never lingers forever.
  static constexpr absl::Duration kLingerLimit = absl::Seconds(10);
  void CloseAfterFlush(absl::Duration limit = kLingerLimit);
  bool open() const { return cell_ != nullptr; }

  const std::string& peer() const { return peer_; }

 private:
  struct Cell;
  struct TcpCell;
  struct PipeCell;
  struct WriteReq;
  // The TLS session and the plaintext waiting for it: apart, so a plaintext stream (most of
  // them) does not carry the queue.
  struct TlsLeg {
    explicit TlsLeg(TlsContextPtr context) : session(std::move(context)) {}
    TlsSession session;
    SliceQueue plain;  // waiting to be encrypted
    size_t plain_bytes = 0;
  };
  friend struct Cell;

  void HandleRead(ssize_t nread);
  // Decrypts what the socket gave and advances the handshake.
  void HandleTlsRead(const uint8_t* data, size_t len);
  // Moves TLS output into the socket's write queue and writes it.
  void FlushCiphertext();
  // Moves TLS output into the socket's write queue (as blocks), without writing.
  void MoveCiphertext();
  void FlushRaw();
  void HandleWriteDone(size_t bytes, int status);
  void HandleConnect(int status);
  void FailAndClose(const absl::Status& why);
  void DetachCell(bool linger, absl::Duration limit);

  TcpStreamHandler& handler_;
  Cell* cell_;
  InputBuffer input_;
  SliceQueue pending_;  // bytes for the socket (ciphertext under TLS)
  size_t pending_bytes_ = 0;
  std::unique_ptr<TlsLeg> tls_;
  bool reading_ = false;
  bool unix_socket_ = false;  // of a stream between ReleaseFd and Reopen
  bool was_over_high_water_ = false;
  std::string peer_;
};

// The listening socket is the proxy's own (not a uv stream), so that an accepted socket can be
// handed to any worker's loop: each becomes a TcpStream there through Adopt.
class TcpListener {
 public:
  // Called for each accepted socket (non-blocking); the callee owns it.
  using AcceptFn = std::function<void(int fd)>;

  TcpListener(uv_loop_t* loop, AcceptFn on_accept);
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  ~TcpListener();

  absl::Status Listen(const sockaddr_storage& addr, int backlog = 1024);
  // The address actually bound (with the kernel's port when 0 was asked for).
  std::string BoundAddress() const;
  uint16_t BoundPort() const;
  void Close();

 private:
  struct Cell;
  uv_loop_t* loop_;
  Cell* cell_;
};

}  // namespace wirepool::core
