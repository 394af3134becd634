#include "core/strings.h"
#include "proxy/cancel.h"

#include <memory>

#include "core/strings.h"
#include "core/tcp.h"
#include "core/timer.h"
#include "core/log.h"

namespace wirepool::proxy {
namespace {

class CancelSender final : public core::TcpStreamHandler {
 public:
  CancelSender(core::EventLoop& loop, std::string bytes)
      : loop_(loop), bytes_(std::move(bytes)), stream_(loop.get(), *this),
        timer_(loop.get(), [this] { Finish("timed out"); }) {}

  void Start(const sockaddr_storage& backend, absl::Duration timeout) {
    timer_.Start(timeout);
    absl::Status st = stream_.Connect(backend);
    if (!st.ok()) {
      Finish(Sv(st.message()));
    }
  }

  void OnConnected(core::TcpStream&, const absl::Status&) override {
    stream_.Write(bytes_);
    // The server answers a cancel request by closing; we need not wait for that.
    stream_.CloseAfterFlush();
    Finish("");
  }
  void OnReadable(core::TcpStream&) override {}
  void OnStreamClosed(core::TcpStream&, const absl::Status& why) override {
    Finish(Sv(why.message()));
  }

 private:
  void Finish(std::string_view error) {
    if (done_) {
      return;
    }
    done_ = true;
    timer_.Stop();
    if (!error.empty()) {
      spdlog::warn("cancel request to {} failed: {}", stream_.peer(), error);
    }
    stream_.Close();
    loop_.DeleteLater(std::unique_ptr<CancelSender>(this));
  }

  core::EventLoop& loop_;
  std::string bytes_;
  core::TcpStream stream_;
  core::Timer timer_;
  bool done_ = false;
};

}  // namespace

void SendCancel(core::EventLoop& loop, const sockaddr_storage& backend, std::string bytes,
                absl::Duration timeout) {
  auto* sender = new CancelSender(loop, std::move(bytes));
  sender->Start(backend, timeout);
}

}  // namespace wirepool::proxy
