#include "codecs/postgres/protocol.h"

#include <memory>

#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/server_codec.h"
#include "codecs/postgres/wire.h"

namespace wirepool::codec::postgres {
namespace {

class PostgresProtocol final : public Protocol {
 public:
  std::string_view Name() const override { return "postgres"; }

  bool SupportsClientAuth(std::string_view method) const override {
    return method == "scram-sha-256" || method == "md5";
  }
  std::string_view DefaultClientAuth() const override { return "scram-sha-256"; }
  // ROLLBACK (when a transaction is open), then DISCARD ALL.
  std::vector<std::string_view> ServerResetMethods() const override { return {"discard_all"}; }

  std::unique_ptr<codec::ClientCodec> NewClientCodec(const ClientCodecOptions& options,
                                                     ClientCodecSink& sink) const override {
    return std::make_unique<ClientCodec>(options, sink);
  }

  std::unique_ptr<codec::ServerCodec> NewServerCodec(const ServerLogin& login,
                                                     ServerCodecSink& sink) const override {
    return std::make_unique<ServerCodec>(login, sink);
  }

  CancelPlan PlanCancel(std::string_view server_cancel_key) const override {
    Writer w;
    return {false, w.BeginUntyped().U32(kCancelRequestCode).Bytes(server_cancel_key).Take()};
  }

  std::string TlsRequest() const override {
    Writer w;
    return w.BeginUntyped().U32(kSslRequestCode).Take();
  }
  std::optional<bool> TlsAnswer(ByteView in) const override {
    if (in.empty()) {
      return std::nullopt;
    }
    return in[0] == 'S';
  }
  // PostgreSQL 17's direct TLS (sslnegotiation=direct) must name the protocol.
  std::string_view TlsAlpn() const override { return "postgresql"; }
  // Not the user's namesake (libpq's default), which often does not exist: initdb makes
  // "postgres", and every role may connect to it unless an administrator revoked that.
  std::string ProbeDatabase(std::string_view) const override { return "postgres"; }
};

}  // namespace

absl::Status Register(Registry& registry) {
  return registry.Register(std::make_shared<PostgresProtocol>());
}

}  // namespace wirepool::codec::postgres
