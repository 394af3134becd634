#include "core/tcp.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
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

// Records what a stream hears.
class RecordingHandler : public TcpStreamHandler {
 public:
  void OnConnected(TcpStream&, const absl::Status& status) override { connected = status.ok(); }
  void OnReadable(TcpStream& s) override {
    read.append(s.input().view().begin(), s.input().view().end());
    s.input().Consume(s.input().size());
  }
  void OnStreamClosed(TcpStream&, const absl::Status& why) override {
    closed = true;
    close_reason = std::string(why.message());
  }
  bool connected = false;
  bool closed = false;
  std::string read;
  std::string close_reason;
};

// Runs the loop until `done` or a 5 s guard.
bool RunUntil(EventLoop& loop, const std::function<bool()>& done) {
  bool guard_fired = false;
  Timer guard(loop.get(), [&] { guard_fired = true; });
  guard.Start(absl::Seconds(5));
  while (!done() && !guard_fired) {
    uv_run(loop.get(), UV_RUN_ONCE);
  }
  return !guard_fired;
}

// A backend given as a Unix socket path: the stream connects with a pipe handle, carries bytes
// both ways, and can give up its socket and take it up again as a worker move does.
TEST(TcpStreamTest, ConnectsToAUnixSocketAndMovesLikeATcpStream) {
  char tmpl[] = "/tmp/wp-tcp-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/server.sock";
  int server = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(server, 0);
  auto addr = UnixAddress(path);
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_EQ(FormatAddress(*addr), path);
  ASSERT_EQ(bind(server, reinterpret_cast<const sockaddr*>(&*addr), sizeof(sockaddr_un)), 0);
  ASSERT_EQ(listen(server, 4), 0);

  EventLoop loop;
  RecordingHandler handler;
  TcpStream stream(loop.get(), handler);
  ASSERT_TRUE(stream.Connect(*addr).ok());
  ASSERT_TRUE(RunUntil(loop, [&] { return handler.connected || handler.closed; }));
  ASSERT_TRUE(handler.connected) << handler.close_reason;
  EXPECT_EQ(stream.peer(), path);
  int peer = accept(server, nullptr, nullptr);
  ASSERT_GE(peer, 0);
  stream.StartReading();

  auto exchange = [&](const std::string& out, const std::string& back) {
    stream.Write(out);
    stream.Flush();
    std::string got(out.size(), '\0');
    ASSERT_EQ(recv(peer, got.data(), got.size(), MSG_WAITALL), static_cast<ssize_t>(out.size()));
    EXPECT_EQ(got, out);
    handler.read.clear();
    ASSERT_EQ(send(peer, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
    ASSERT_TRUE(RunUntil(loop, [&] { return handler.read.size() >= back.size(); }));
    EXPECT_EQ(handler.read, back);
  };
  exchange("ping", "pong");
  int fd = stream.ReleaseFd();
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(stream.Reopen(loop.get(), fd).ok());
  exchange("again", "still here");

  // No one listening there: the stream closes with the path in its reason.
  RecordingHandler missing_handler;
  TcpStream missing(loop.get(), missing_handler);
  auto nowhere = UnixAddress(dir + "/nobody.sock");
  ASSERT_TRUE(nowhere.ok());
  ASSERT_TRUE(missing.Connect(*nowhere).ok());
  ASSERT_TRUE(RunUntil(loop, [&] { return missing_handler.closed || missing_handler.connected; }));
  EXPECT_TRUE(missing_handler.closed);
  EXPECT_NE(missing_handler.close_reason.find("nobody.sock"), std::string::npos)
      << missing_handler.close_reason;

  EXPECT_FALSE(UnixAddress(std::string(200, 'x')).ok());
  close(peer);
  close(server);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wirepool::core
