#include "proxy/cancel.h"

#include <memory>

#include "core/log.h"
#include "core/strings.h"
#include "core/tcp.h"
#include "core/timer.h"

namespace wirepool::proxy {
namespace {

// One side connection that carries out a cancel plan, then deletes itself. It honours
// backend_tls as the proxy's own server connections do: a login plan through the codec
// (ServerLogin::tls), a raw plan by asking for TLS first where the protocol has such a request.
class CancelSender final : public core::TcpStreamHandler, public codec::ServerCodecSink {
 public:
  CancelSender(core::EventLoop& loop, const CancelTarget& target, codec::CancelPlan plan)
      : loop_(loop),
        plan_(std::move(plan)),
        stream_(loop.get(), *this),
        timer_(loop.get(), [this] { Finish("timed out"); }),
        protocol_(target.protocol),
        tls_(target.tls) {
    if (plan_.login_first) {
      codec::ServerLogin login = target.login;
      login.tls = WantTls();
      codec_ = target.protocol->NewServerCodec(login, *this);
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
    stream_.StartReading();
    if (codec_ != nullptr) {
      codec_->Start();
      stream_.Flush();
      return;
    }
    std::string request = WantTls() && protocol_ != nullptr ? protocol_->TlsRequest() : "";
    if (!request.empty()) {
      awaiting_tls_answer_ = true;
      stream_.Write(request);
      stream_.Flush();
      return;
    }
    SendRaw();
  }

  void OnTlsReady(core::TcpStream& stream) override {
    Continue(true);
    OnReadable(stream);
  }

  void OnReadable(core::TcpStream&) override {
    auto& in = stream_.input();
    if (done_) {
      in.Consume(in.size());
      return;
    }
    if (codec_ == nullptr) {
      if (awaiting_tls_answer_) {
        std::optional<bool> answer = protocol_->TlsAnswer(in.view());
        if (!answer.has_value()) {
          return;
        }
        if (*answer && in.size() > 1) {
          Finish("the server sent unencrypted data after its TLS answer");
          return;
        }
        awaiting_tls_answer_ = false;
        in.Consume(in.size());
        OnTlsOffer(*answer);
        AfterTlsOffer();
        return;
      }
      in.Consume(in.size());
      return;
    }
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
    if (done_) {
      return;
    }
    if (tls_next_ != TlsNext::kNone) {
      AfterTlsOffer();
      return;
    }
    stream_.Flush();
  }

  void OnStreamClosed(core::TcpStream&, const absl::Status& why) override {
    // The server answers a raw cancel by closing: that is success.
    bool raw_sent =
        codec_ == nullptr && !awaiting_tls_answer_ && tls_next_ == TlsNext::kNone && raw_sent_;
    Finish(raw_sent ? "" : Sv(why.message()));
  }

  // codec::ServerCodecSink
  void SendToServer(std::string_view bytes) override { stream_.Write(bytes); }
  void OnTlsOffer(bool accepted) override {
    tls_next_ = accepted                                  ? TlsNext::kStart
                : tls_->mode() >= core::TlsMode::kRequire ? TlsNext::kRefused
                                                          : TlsNext::kPlain;
  }
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
  enum class TlsNext { kNone, kStart, kPlain, kRefused };

  // `allow` tries plaintext only, like the proxy's server connections.
  bool WantTls() const { return tls_ != nullptr && tls_->mode() != core::TlsMode::kAllow; }

  // Once the answer to the TLS request is consumed: start TLS, go on in plaintext, or give up.
  void AfterTlsOffer() {
    TlsNext next = tls_next_;
    tls_next_ = TlsNext::kNone;
    if (next == TlsNext::kStart) {
      absl::Status st = stream_.StartTls(tls_);
      if (!st.ok()) {
        Finish(Cat("TLS: ", st.message()));
      }
    } else if (next == TlsNext::kRefused) {
      Finish(Cat("the server does not offer TLS, which backend_tls mode ",
                 core::TlsModeName(tls_->mode()), " requires"));
    } else if (next == TlsNext::kPlain) {
      Continue(false);
    }
  }

  void Continue(bool encrypted) {
    if (codec_ != nullptr) {
      codec_->ContinueLogin(encrypted);
      stream_.Flush();
      return;
    }
    SendRaw();
  }

  // The server answers a raw cancel request by closing once it has signalled the backend:
  // waiting for that keeps the session on its server until the cancel can no longer reach a
  // statement of the server's next client.
  void SendRaw() {
    raw_sent_ = true;
    stream_.Write(plan_.payload);
    stream_.Flush();
  }

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
  codec::ProtocolPtr protocol_;
  core::TlsContextPtr tls_;
  std::unique_ptr<codec::ServerCodec> codec_;
  std::function<void(const codec::ParamList&)> on_params_;
  std::function<void()> on_done_;
  bool awaiting_tls_answer_ = false;
  bool raw_sent_ = false;
  TlsNext tls_next_ = TlsNext::kNone;
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
