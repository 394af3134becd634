#include "codecs/mysql/protocol.h"

#include <memory>
#include <string>

#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/server_codec.h"

namespace wirepool::codec::mysql {
namespace {

class MysqlProtocol final : public Protocol {
 public:
  std::string_view Name() const override { return "mysql"; }

  bool SupportsClientAuth(std::string_view method) const override {
    return method == kNativePassword || method == kCachingSha2Password;
  }
  std::string_view DefaultClientAuth() const override { return kNativePassword; }
  std::vector<std::string_view> ServerResetMethods() const override {
    return {kResetAuto, kResetConnection, kResetChangeUser};
  }

  std::unique_ptr<codec::ClientCodec> NewClientCodec(const ClientCodecOptions& options,
                                                     ClientCodecSink& sink) const override {
    return std::make_unique<ClientCodec>(options, sink);
  }

  std::unique_ptr<codec::ServerCodec> NewServerCodec(const ServerLogin& login,
                                                     ServerCodecSink& sink) const override {
    return std::make_unique<ServerCodec>(login, sink);
  }

  // No default schema: any account may log in without one.
  std::string ProbeDatabase(std::string_view) const override { return {}; }

  // MySQL has no out-of-band cancel: a side connection logs in and kills the running query by
  // the server's thread id (ServerCodec::CancelKey).
  CancelPlan PlanCancel(std::string_view server_cancel_key) const override {
    return {true, "KILL QUERY " + std::string(server_cancel_key)};
  }
};

}  // namespace

absl::Status Register(Registry& registry) {
  return registry.Register(std::make_shared<MysqlProtocol>());
}

}  // namespace wirepool::codec::mysql
