#include "core/tcp.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "core/loop.h"
#include "core/timer.h"
#include "gtest/gtest.h"

namespace wirepool::core {
namespace {

class NullHandler : public TcpStreamHandler {
 public:
  void OnReadable(TcpStream&) override {}
  void OnStreamClosed(TcpStream&, const absl::Status&) override {}
};

// A connection closed with bytes queued for a peer that never reads must not stay open forever:
// the linger limit cuts it off, and the loop then has nothing left to run.
TEST(TcpStreamTest, CloseAfterFlushGivesUpOnAPeerThatNeverReads) {
  EventLoop loop;
  NullHandler handler;
  std::unique_ptr<TcpStream> accepted;
  TcpListener listener(loop.get(), [&](int fd) {
    accepted = std::make_unique<TcpStream>(loop.get(), handler);
    ASSERT_TRUE(accepted->Adopt(fd).ok());
    // Far more than the kernel buffers of both ends hold.
    accepted->Write(std::string(64 << 20, 'x'));
    accepted->CloseAfterFlush(absl::Milliseconds(200));
    accepted.reset();
  });
  auto addr = ResolveAddress("127.0.0.1", 0);
  ASSERT_TRUE(addr.ok());
  ASSERT_TRUE(listener.Listen(*addr).ok());

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(listener.BoundPort());
  inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof(peer)), 0);

  bool guard_fired = false;
  Timer guard(loop.get(), [&] { guard_fired = true; });
  guard.Start(absl::Seconds(5));
  // Close the listener once the connection is in, so only the lingering stream is left.
  Timer close_listener(loop.get(), [&] { listener.Close(); });
  close_listener.Start(absl::Milliseconds(50));

  auto open_tcp_handles = [&] {
    int open = 0;
    uv_walk(
        loop.get(),
        [](uv_handle_t* h, void* arg) {
          if (h->type == UV_TCP && !uv_is_closing(h)) {
            ++*static_cast<int*>(arg);
          }
        },
        &open);
    return open;
  };
  auto start = std::chrono::steady_clock::now();
  do {
    uv_run(loop.get(), UV_RUN_ONCE);
  } while (!guard_fired && (!close_listener.armed() ? open_tcp_handles() > 0 : true));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(fd);
  EXPECT_FALSE(guard_fired) << "the lingering connection was never cut off";
  EXPECT_GE(seconds, 0.15);
  EXPECT_LT(seconds, 3.0);
}

}  // namespace
}  // namespace wirepool::core
