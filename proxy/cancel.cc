#include "proxy/cancel.h"

#include <memory>

#include "core/log.h"
#include "core/strings.h"
#include "core/tcp.h"
#include "core/timer.h"

namespace wirepool::proxy {
namespace {

// One side connection that carries out a cancel plan, then deletes itself.
class CancelSender final : public core::TcpStreamHandler, public codec::ServerCodecSink {
 public:
  CancelSender(core::EventLoop& loop, const CancelTarget& target, codec::CancelPlan plan)
      : loop_(loop),
        plan_(std::move(plan)),
        stream_(loop.get(), *this),
        timer_(loop.get(), [this] { Finish("timed out"); }) {
    if (plan_.login_first) {
      codec_ = target.protocol->NewServerCodec(target.login, *this);
    }
    on_params_ = target.on_params;
    on_done_ = target.on_done;
  }

  void Start(const CancelTarget& target) {
    timer_.Start(target.timeout);
    absl::Status st = stream_.Connect(target.backend);
    if (!st.ok()) {
      Finish(Sv(st.message()));
    }
  }

  void OnConnected(core::TcpStream&, const absl::Status&) override {
    if (codec_ == nullptr) {
      // The server answers a raw cancel request by closing once it has signalled the backend:
      // waiting for that keeps the session on its server until the cancel can no longer reach
      // a statement of the server's next client.
      stream_.Write(plan_.payload);
      stream_.Flush();
      stream_.StartReading();
      return;
    }
    stream_.StartReading();
    codec_->Start();
    stream_.Flush();
  }

  void OnReadable(core::TcpStream&) override {
    if (codec_ == nullptr || done_) {
      stream_.input().Consume(stream_.input().view().size());
      return;
    }
    auto& in = stream_.input();
    while (!in.empty() && !done_) {
      codec::Step s = codec_->OnBytes(in.view());
      if (s.verdict == codec::Verdict::kNeedMore) {
        in.Reserve(s.bytes);
        break;
      }
      if (s.verdict == codec::Verdict::kStop || s.verdict == codec::Verdict::kPause) {
        Finish("side connection stopped");
        return;
      }
      in.Consume(s.bytes);
    }
    if (!done_) {
      stream_.Flush();
    }
  }

  void OnStreamClosed(core::TcpStream&, const absl::Status& why) override {
    Finish(codec_ == nullptr ? "" : Sv(why.message()));
  }

  // codec::ServerCodecSink
  void SendToServer(std::string_view bytes) override { stream_.Write(bytes); }
  void OnLoginComplete() override {
    if (on_params_) {
      on_params_(codec_->Parameters());
    }
    if (plan_.payload.empty()) {
      Finish("");
      return;
    }
    codec_->SendInternalQuery(plan_.payload);
    stream_.Flush();
  }
  void OnLoginFailed(const codec::WireError& error) override {
    if (on_params_) {
      on_params_(codec_->Parameters());
      Finish("");  // a probe learns what it can from a refused login too
      return;
    }
    Finish(Cat("login refused: ", error.message));
  }
  void OnReadyForQuery(codec::TxState) override {}
  void OnParameterStatus(std::string_view, std::string_view) override {}
  void OnInternalDone(const codec::WireError* error) override {
    Finish(error != nullptr ? std::string_view(error->message) : std::string_view());
  }
  void OnProtocolError(const absl::Status& status) override { Finish(Sv(status.message())); }

 private:
  void Finish(std::string_view error) {
    if (done_) {
      return;
    }
    done_ = true;
    timer_.Stop();
    if (!error.empty()) {
      spdlog::warn("cancel on a side connection to {} failed: {}", stream_.peer(), error);
    }
    stream_.Close();
    if (on_done_) {
      on_done_();
    }
    loop_.DeleteLater(std::unique_ptr<CancelSender>(this));
  }

  core::EventLoop& loop_;
  codec::CancelPlan plan_;
  core::TcpStream stream_;
  core::Timer timer_;
  std::unique_ptr<codec::ServerCodec> codec_;
  std::function<void(const codec::ParamList&)> on_params_;
  std::function<void()> on_done_;
  bool done_ = false;
};

}  // namespace

void ProbeServer(core::EventLoop& loop, const CancelTarget& target) {
  auto* sender = new CancelSender(loop, target, codec::CancelPlan{true, ""});
  sender->Start(target);
}

void SendCancel(core::EventLoop& loop, const CancelTarget& target, codec::CancelPlan plan) {
  auto* sender = new CancelSender(loop, target, std::move(plan));
  sender->Start(target);
}

}  // namespace wirepool::proxy
