#include "core/tcp.h"
#include "core/strings.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/log.h"

namespace wirepool::core {
namespace {

absl::Status UvError(std::string_view what, int code) {
  return absl::UnavailableError(Cat(what, ": ", uv_strerror(code)));
}

constexpr int kKeepaliveDelaySeconds = 60;
constexpr size_t kMaxIov = 64;
// Under TLS, ciphertext is moved into blocks for the socket once this much has built up, and a
// TLS buffer grown past it is given back once empty: a big result costs memory only while it
// passes.
constexpr size_t kTlsBufferKeep = 64 << 10;

// Ciphertext lands here before it is decrypted into the stream's input, so a TLS connection holds
// no read buffer of its own between reads.
uint8_t* TlsScratch(size_t* size) {
  constexpr size_t kSize = 64 << 10;
  thread_local std::unique_ptr<uint8_t[]> scratch(new uint8_t[kSize]);
  *size = kSize;
  return scratch.get();
}

}  // namespace

absl::StatusOr<sockaddr_storage> ResolveAddress(const std::string& host, uint16_t port) {
  sockaddr_storage addr{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (uv_ip4_addr(host.c_str(), port, v4) == 0) {
    return addr;
  }
  if (uv_ip6_addr(host.c_str(), port, v6) == 0) {
    return addr;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::NotFoundError(Cat("cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  std::memcpy(&addr, result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  if (addr.ss_family == AF_INET) {
    v4->sin_port = htons(port);
  } else {
    v6->sin6_port = htons(port);
  }
  return addr;
}

absl::StatusOr<sockaddr_storage> UnixAddress(const std::string& path) {
  sockaddr_storage addr{};
  auto* un = reinterpret_cast<sockaddr_un*>(&addr);
  if (path.empty() || path.size() >= sizeof(un->sun_path)) {
    return absl::InvalidArgumentError(
        Cat("a Unix socket path must have 1 to ", sizeof(un->sun_path) - 1, " bytes"));
  }
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  return addr;
}

std::string FormatAddress(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_UNIX) {
    return reinterpret_cast<const sockaddr_un*>(&addr)->sun_path;
  }
  char host[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    uv_ip4_name(v4, host, sizeof(host));
    return Cat(host, ":", ntohs(v4->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    uv_ip6_name(v6, host, sizeof(host));
    return Cat("[", host, "]:", ntohs(v6->sin6_port));
  }
  return "unknown";
}

namespace {

// clear() of an InlinedVector frees its heap storage: a queue that once held more than its
// inline slice would allocate again on every write. Popping keeps it, and is cheapest for the
// usual single slice (erase(begin, end) costs ~100 instructions more per write).
void ClearKeepingCapacity(TcpStream::SliceQueue& queue) {
  while (!queue.empty()) {
    queue.pop_back();
  }
}

}  // namespace

// A stream is TCP unless it connects to a Unix-domain socket; both are uv streams, and only
// making, connecting and tuning them differ. The handle follows the cell's fields in a cell of
// its own type (TcpCell, PipeCell), sized for it: a TCP cell is 280 bytes, a 288-byte heap
// chunk (a union of both handles made every cell 296, a 304-byte chunk).
struct TcpStream::Cell {
  static Cell* New(uv_loop_t* loop, TcpStream* stream, bool unix_socket);
  // The handle's close callback: frees the cell as the type it was made.
  static void Delete(Cell* cell);

  // Pointers first, the small fields packed at the end.
  TcpStream* owner = nullptr;
  size_t in_flight_bytes = 0;
  // Bounds how long queued bytes may wait for a peer that never reads.
  uv_timer_t* linger = nullptr;
  int in_flight_writes = 0;
  bool is_pipe = false;
  bool close_when_drained = false;
  bool closing = false;

  uv_tcp_t* tcp();
  uv_pipe_t* pipe();
  uv_handle_t* handle() {
    return is_pipe ? reinterpret_cast<uv_handle_t*>(pipe()) : reinterpret_cast<uv_handle_t*>(tcp());
  }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(handle()); }
  // Adopts a connected socket; closes nothing on failure.
  int Open(int fd) { return is_pipe ? uv_pipe_open(pipe(), fd) : uv_tcp_open(tcp(), fd); }
  void Tune() {
    if (!is_pipe) {
      uv_tcp_nodelay(tcp(), 1);
      uv_tcp_keepalive(tcp(), 1, kKeepaliveDelaySeconds);
    }
  }

  void StartLinger(uint64_t limit_ms) {
    linger = new uv_timer_t;
    uv_timer_init(handle()->loop, linger);
    linger->data = this;
    uv_timer_start(
        linger, [](uv_timer_t* t) { static_cast<Cell*>(t->data)->CloseHandle(); }, limit_ms, 0);
  }

  void CloseHandle() {
    if (closing) {
      return;
    }
    closing = true;
    if (linger != nullptr) {
      // Closed before the stream, so its callback can never see a freed cell.
      uv_close(reinterpret_cast<uv_handle_t*>(linger),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
      linger = nullptr;
    }
    uv_close(handle(), [](uv_handle_t* h) { Delete(static_cast<Cell*>(h->data)); });
  }

 protected:
  Cell(TcpStream* stream, bool unix_socket) : owner(stream), is_pipe(unix_socket) {}
  ~Cell() = default;
};

struct TcpStream::TcpCell final : Cell {
  TcpCell(uv_loop_t* loop, TcpStream* stream) : Cell(stream, false) {
    uv_tcp_init(loop, &tcp);
    tcp.data = static_cast<Cell*>(this);  // read back as a Cell*
  }
  ~TcpCell() = default;
  uv_tcp_t tcp;
};

struct TcpStream::PipeCell final : Cell {
  PipeCell(uv_loop_t* loop, TcpStream* stream) : Cell(stream, true) {
    uv_pipe_init(loop, &pipe, 0);
    pipe.data = static_cast<Cell*>(this);
  }
  ~PipeCell() = default;
  uv_pipe_t pipe;
};

TcpStream::Cell* TcpStream::Cell::New(uv_loop_t* loop, TcpStream* stream, bool unix_socket) {
  if (unix_socket) {
    return new PipeCell(loop, stream);
  }
  return new TcpCell(loop, stream);
}

void TcpStream::Cell::Delete(Cell* cell) {
  if (cell->is_pipe) {
    delete static_cast<PipeCell*>(cell);
  } else {
    delete static_cast<TcpCell*>(cell);
  }
}

uv_tcp_t* TcpStream::Cell::tcp() { return &static_cast<TcpCell*>(this)->tcp; }
uv_pipe_t* TcpStream::Cell::pipe() { return &static_cast<PipeCell*>(this)->pipe; }

struct TcpStream::WriteReq {
  uv_write_t req;
  Cell* cell;
  std::vector<Slice> slices;
  size_t bytes = 0;
};

TcpStream::TcpStream(uv_loop_t* loop, TcpStreamHandler& handler)
    : handler_(handler), cell_(Cell::New(loop, this, false)) {}

TcpStream::~TcpStream() { Close(); }

absl::Status TcpStream::Adopt(int fd) {
  int rc = cell_->Open(fd);
  if (rc != 0) {
    ::close(fd);
    return UvError("adopt an accepted socket", rc);
  }
  cell_->Tune();
  sockaddr_storage addr{};
  int len = sizeof(addr);
  if (uv_tcp_getpeername(cell_->tcp(), reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    peer_ = FormatAddress(addr);
  }
  return absl::OkStatus();
}

absl::Status TcpStream::Connect(const sockaddr_storage& addr) {
  peer_ = FormatAddress(addr);
  // Only outgoing streams need a connect request, so it is not part of every cell. libuv calls
  // it back (with UV_ECANCELED if the stream closed first) before the cell's close callback.
  auto* connect = new uv_connect_t;
  auto on_connect = [](uv_connect_t* req, int status) {
    auto* cell = static_cast<Cell*>(req->data);
    delete req;
    if (cell->owner != nullptr) {
      cell->owner->HandleConnect(status);
    }
  };
  if (addr.ss_family == AF_UNIX) {
    // The stream was made for TCP: a pipe handle takes the place of that unused one.
    Cell* tcp = cell_;
    cell_ = Cell::New(tcp->handle()->loop, this, true);
    tcp->owner = nullptr;
    tcp->CloseHandle();
    connect->data = cell_;
    uv_pipe_connect(connect, cell_->pipe(), reinterpret_cast<const sockaddr_un*>(&addr)->sun_path,
                    on_connect);  // failures come to on_connect
    return absl::OkStatus();
  }
  connect->data = cell_;
  int rc =
      uv_tcp_connect(connect, cell_->tcp(), reinterpret_cast<const sockaddr*>(&addr), on_connect);
  if (rc != 0) {
    delete connect;
    return UvError("connect", rc);
  }
  return absl::OkStatus();
}

int TcpStream::ReleaseFd() {
  if (cell_ == nullptr || queued_bytes() > 0 || !input_.empty() ||
      (tls_ != nullptr && !tls_->session.handshake_done())) {
    return -1;
  }
  uv_os_fd_t fd = -1;
  if (uv_fileno(cell_->handle(), &fd) != 0) {
    return -1;
  }
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return -1;
  }
  bool was_reading = reading_;
  unix_socket_ = cell_->is_pipe;            // for Reopen
  DetachCell(false, absl::ZeroDuration());  // closes the handle and the original descriptor
  reading_ = was_reading;                   // restarted by Reopen
  return copy;
}

absl::Status TcpStream::Reopen(uv_loop_t* loop, int fd) {
  bool read = reading_;
  reading_ = false;
  cell_ = Cell::New(loop, this, unix_socket_);
  int rc = cell_->Open(fd);
  if (rc != 0) {
    ::close(fd);
    return UvError("reopen a moved socket", rc);
  }
  if (read) {
    StartReading();
  }
  return absl::OkStatus();
}

void TcpStream::HandleConnect(int status) {
  if (status != 0) {
    FailAndClose(UvError(Cat("connect to ", peer_), status));
    return;
  }
  cell_->Tune();
  handler_.OnConnected(*this, absl::OkStatus());
}

void TcpStream::StartReading() {
  if (reading_ || cell_ == nullptr) {
    return;
  }
  reading_ = true;
  uv_read_start(
      cell_->stream(),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* cell = static_cast<Cell*>(h->data);
        if (cell->owner == nullptr) {
          *buf = uv_buf_init(nullptr, 0);
          return;
        }
        if (cell->owner->tls_ != nullptr) {
          size_t size = 0;
          uint8_t* scratch = TlsScratch(&size);
          *buf = uv_buf_init(reinterpret_cast<char*>(scratch), size);
          return;
        }
        auto tail = cell->owner->input_.WritableTail();
        *buf = uv_buf_init(reinterpret_cast<char*>(tail.data()), tail.size());
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* cell = static_cast<Cell*>(s->data);
        if (cell->owner == nullptr) {
          return;
        }
        if (nread > 0 && cell->owner->tls_ != nullptr) {
          cell->owner->HandleTlsRead(reinterpret_cast<const uint8_t*>(buf->base),
                                     static_cast<size_t>(nread));
          return;
        }
        cell->owner->HandleRead(nread);
      });
}

void TcpStream::StopReading() {
  if (!reading_ || cell_ == nullptr) {
    return;
  }
  reading_ = false;
  uv_read_stop(cell_->stream());
}

void TcpStream::HandleRead(ssize_t nread) {
  if (nread > 0) {
    input_.Commit(static_cast<size_t>(nread));
    handler_.OnReadable(*this);  // may destroy this stream: nothing after this line
    return;
  }
  if (nread == 0) {
    return;
  }
  if (nread == UV_EOF) {
    FailAndClose(absl::CancelledError("peer closed the connection"));
  } else {
    FailAndClose(UvError("read", static_cast<int>(nread)));
  }
}

absl::Status TcpStream::StartTls(TlsContextPtr context, bool input_is_tls) {
  if (cell_ == nullptr) {
    return absl::FailedPreconditionError("the connection is closed");
  }
  if (tls_ != nullptr) {
    return absl::FailedPreconditionError("TLS is already on");
  }
  if (!input_is_tls && !input_.empty()) {
    return absl::InvalidArgumentError(
        "unencrypted bytes arrived after the TLS request, before the TLS handshake");
  }
  Flush();
  tls_ = std::make_unique<TlsLeg>(std::move(context));
  if (!input_.empty()) {
    tls_->session.FeedCiphertext(input_.view().data(), input_.size());
    input_.Consume(input_.size());
  }
  input_.ReleaseIfEmpty();
  // The client's hello, or the server's answer to a hello already read. Nothing can finish the
  // handshake before the peer speaks again, so the handler is never called from here.
  absl::Status st = tls_->session.Handshake();
  FlushCiphertext();
  return st;
}

void TcpStream::HandleTlsRead(const uint8_t* data, size_t len) {
  tls_->session.FeedCiphertext(data, len);
  const bool was_done = tls_->session.handshake_done();
  absl::Status st = tls_->session.Handshake();
  bool got = false;
  while (st.ok() && tls_->session.handshake_done()) {
    auto tail = input_.WritableTail();
    absl::StatusOr<size_t> n = tls_->session.ReadPlaintext(tail.data(), tail.size());
    if (!n.ok()) {
      st = absl::IsCancelled(n.status()) ? absl::CancelledError("peer closed the connection")
                                         : n.status();
      break;
    }
    if (*n == 0) {
      break;
    }
    input_.Commit(*n);
    got = true;
  }
  const bool ready = !was_done && tls_->session.handshake_done();
  if (ready) {
    Flush();  // plaintext queued while the handshake ran
  } else {
    FlushCiphertext();  // handshake messages, alerts, key updates
  }
  tls_->session.TrimBuffers(kTlsBufferKeep);
  // What came before a close (a server's last error, then its close_notify) is read first.
  Cell* cell = cell_;
  if (ready) {
    handler_.OnTlsReady(*this);  // may destroy this stream
  } else if (got) {
    handler_.OnReadable(*this);  // may destroy this stream
  }
  // The cell outlives this call stack: its owner is null once the stream is closed or gone.
  if (!st.ok() && cell->owner != nullptr) {
    FailAndClose(st);
  }
}

void TcpStream::Write(Slice slice) {
  if (cell_ == nullptr || slice.size() == 0) {
    return;
  }
  SliceQueue& queue = tls_ != nullptr ? tls_->plain : pending_;
  (tls_ != nullptr ? tls_->plain_bytes : pending_bytes_) += slice.size();
  if (!queue.empty() && queue.back().TryExtend(slice.block(), slice.data(), slice.size())) {
    return;
  }
  queue.push_back(std::move(slice));
}

void TcpStream::Write(std::string_view bytes) {
  if (cell_ == nullptr || bytes.empty()) {
    return;
  }
  SliceQueue& queue = tls_ != nullptr ? tls_->plain : pending_;
  if (!queue.empty() && queue.back().TryAppend(bytes)) {
    (tls_ != nullptr ? tls_->plain_bytes : pending_bytes_) += bytes.size();
    return;
  }
  Write(Slice::Copy(bytes));
}

void TcpStream::Flush() {
  if (cell_ == nullptr) {
    return;
  }
  if (tls_ == nullptr) {
    FlushRaw();
    return;
  }
  if (!tls_->session.handshake_done()) {
    FlushCiphertext();
    return;
  }
  for (const Slice& s : tls_->plain) {
    // A memory BIO takes everything; a failure means the session broke, which the next read
    // reports (a callback from here would re-enter the caller in the middle of its work).
    if (!tls_->session.WritePlaintext(s.data(), s.size()).ok()) {
      break;
    }
    if (tls_->session.pending_ciphertext() > kTlsBufferKeep) {
      MoveCiphertext();
    }
  }
  ClearKeepingCapacity(tls_->plain);
  tls_->plain_bytes = 0;
  FlushCiphertext();
}

void TcpStream::FlushCiphertext() {
  MoveCiphertext();
  tls_->session.TrimBuffers(kTlsBufferKeep);
  FlushRaw();
}

void TcpStream::MoveCiphertext() {
  while (tls_->session.pending_ciphertext() > 0) {
    Block* block = Block::New();
    size_t n = tls_->session.TakeCiphertext(block->data(), block->capacity());
    if (n > 0) {
      pending_.emplace_back(block, block->data(), n);
      pending_bytes_ += n;
    }
    block->Unref();
    if (n == 0) {
      break;
    }
  }
}

void TcpStream::FlushRaw() {
  if (cell_ == nullptr || pending_.empty()) {
    return;
  }
  size_t start = 0;
  if (cell_->in_flight_writes == 0) {
    // Fast path: most writes go straight into the socket buffer with no request to allocate.
    uv_buf_t bufs[kMaxIov];
    size_t n = std::min(pending_.size(), kMaxIov);
    for (size_t i = 0; i < n; ++i) {
      bufs[i] = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(pending_[i].data())),
                            pending_[i].size());
    }
    int written = uv_try_write(cell_->stream(), bufs, static_cast<unsigned>(n));
    if (written > 0) {
      size_t left = static_cast<size_t>(written);
      pending_bytes_ -= left;
      while (start < pending_.size() && left >= pending_[start].size()) {
        left -= pending_[start].size();
        ++start;
      }
      if (left > 0) {
        Slice& s = pending_[start];
        s = Slice(s.block(), s.data() + left, s.size() - left);
      }
    }
    if (start == pending_.size()) {
      ClearKeepingCapacity(pending_);
      return;
    }
  }
  auto* req = new WriteReq;
  req->cell = cell_;
  req->req.data = req;
  std::vector<uv_buf_t> bufs;
  bufs.reserve(pending_.size() - start);
  for (size_t i = start; i < pending_.size(); ++i) {
    bufs.push_back(uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(pending_[i].data())),
                               pending_[i].size()));
    req->bytes += pending_[i].size();
    req->slices.push_back(std::move(pending_[i]));
  }
  ClearKeepingCapacity(pending_);
  pending_bytes_ = 0;
  cell_->in_flight_bytes += req->bytes;
  ++cell_->in_flight_writes;
  int rc = uv_write(&req->req, cell_->stream(), bufs.data(), static_cast<unsigned>(bufs.size()),
                    [](uv_write_t* w, int status) {
                      auto* r = static_cast<WriteReq*>(w->data);
                      Cell* cell = r->cell;
                      size_t bytes = r->bytes;
                      delete r;
                      cell->in_flight_bytes -= bytes;
                      --cell->in_flight_writes;
                      if (cell->owner != nullptr) {
                        cell->owner->HandleWriteDone(bytes, status);
                      } else if (cell->close_when_drained && cell->in_flight_writes == 0) {
                        cell->CloseHandle();
                      }
                    });
  if (rc != 0) {
    cell_->in_flight_bytes -= req->bytes;
    --cell_->in_flight_writes;
    delete req;
    // Reported from the read side or the next write; a synchronous callback here would re-enter
    // the caller in the middle of its work.
    return;
  }
  if (over_high_water()) {
    was_over_high_water_ = true;
  }
}

void TcpStream::HandleWriteDone(size_t, int status) {
  if (status != 0) {
    if (status != UV_ECANCELED) {
      FailAndClose(UvError("write", status));
    }
    return;
  }
  if (was_over_high_water_ && queued_bytes() < kLowWater) {
    was_over_high_water_ = false;
    handler_.OnWritesDrained(*this);
  }
}

size_t TcpStream::queued_bytes() const {
  return pending_bytes_ + (tls_ != nullptr ? tls_->plain_bytes : 0) +
         (cell_ != nullptr ? cell_->in_flight_bytes : 0);
}

void TcpStream::FailAndClose(const absl::Status& why) {
  if (cell_ == nullptr) {
    return;
  }
  DetachCell(false, absl::ZeroDuration());
  handler_.OnStreamClosed(*this, why);  // may destroy this stream
}

void TcpStream::DetachCell(bool linger, absl::Duration limit) {
  Cell* cell = cell_;
  cell_ = nullptr;
  reading_ = false;
  pending_.clear();
  pending_bytes_ = 0;
  if (tls_ != nullptr) {
    tls_->plain.clear();
    tls_->plain_bytes = 0;
  }
  cell->owner = nullptr;
  uv_read_stop(cell->stream());
  if (linger && cell->in_flight_writes > 0) {
    cell->close_when_drained = true;
    cell->StartLinger(
        static_cast<uint64_t>(std::max<int64_t>(1, absl::ToInt64Milliseconds(limit))));
    return;
  }
  cell->CloseHandle();
}

void TcpStream::Close() {
  if (cell_ != nullptr) {
    DetachCell(false, absl::ZeroDuration());
  }
}

void TcpStream::CloseAfterFlush(absl::Duration limit) {
  if (cell_ == nullptr) {
    return;
  }
  Flush();
  if (tls_ != nullptr && tls_->session.handshake_done()) {
    tls_->session.Shutdown();  // close_notify, so the peer knows the stream was not cut
    FlushCiphertext();
  }
  DetachCell(true, limit);
}

struct TcpListener::Cell {
  uv_poll_t poll;
  int fd = -1;
  // Held open so that, out of descriptors, a pending connection can still be taken and closed
  // rather than left to wake the loop forever.
  int reserve = -1;
  TcpListener* owner = nullptr;
  AcceptFn on_accept;

  void AcceptPending() {
    // A bounded batch per wake-up, so a connection storm cannot starve established clients.
    for (int i = 0; i < 64 && owner != nullptr; ++i) {
      int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (conn >= 0) {
        on_accept(conn);
        continue;
      }
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if ((errno == EMFILE || errno == ENFILE) && reserve >= 0) {
        ::close(reserve);
        int shed = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (shed >= 0) {
          ::close(shed);
        }
        reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        spdlog::warn("out of file descriptors: a new connection was closed at once");
        continue;
      }
      return;  // EAGAIN, or an error the next wake-up will see again
    }
  }
};

TcpListener::TcpListener(uv_loop_t* loop, AcceptFn on_accept) : loop_(loop), cell_(new Cell) {
  cell_->owner = this;
  cell_->on_accept = std::move(on_accept);
}

TcpListener::~TcpListener() { Close(); }

absl::Status TcpListener::Listen(const sockaddr_storage& addr, int backlog) {
  std::string where = Cat("listen on ", FormatAddress(addr));
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return UvError(where, -errno);
  }
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  socklen_t len = addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 ||
      ::listen(fd, backlog) != 0) {
    int err = errno;
    ::close(fd);
    return UvError(where, -err);
  }
  int rc = uv_poll_init_socket(loop_, &cell_->poll, fd);
  if (rc != 0) {
    ::close(fd);
    return UvError(where, rc);
  }
  cell_->fd = fd;
  cell_->reserve = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  cell_->poll.data = cell_;
  uv_poll_start(&cell_->poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
    auto* cell = static_cast<Cell*>(p->data);
    if (status == 0 && cell->owner != nullptr) {
      cell->AcceptPending();
    }
  });
  return absl::OkStatus();
}

std::string TcpListener::BoundAddress() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (cell_ == nullptr || cell_->fd < 0 ||
      ::getsockname(cell_->fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return "unbound";
  }
  return FormatAddress(addr);
}

uint16_t TcpListener::BoundPort() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (cell_ == nullptr || cell_->fd < 0 ||
      ::getsockname(cell_->fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return 0;
  }
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void TcpListener::Close() {
  if (cell_ == nullptr) {
    return;
  }
  Cell* cell = cell_;
  cell_ = nullptr;
  cell->owner = nullptr;
  if (cell->fd < 0) {
    if (cell->reserve >= 0) {
      ::close(cell->reserve);
    }
    delete cell;
    return;
  }
  uv_poll_stop(&cell->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&cell->poll), [](uv_handle_t* h) {
    auto* c = static_cast<Cell*>(h->data);
    ::close(c->fd);
    if (c->reserve >= 0) {
      ::close(c->reserve);
    }
    delete c;
  });
}

}  // namespace wirepool::core
