#pragma once

// The client side of a PostgreSQL connection: the proxy plays the server. One handler per state:
// startup (SSL/GSS/cancel/startup packets), auth (SCRAM-SHA-256 or md5, verified by the proxy
// itself), waiting for the proxy to log the client in, and running (framing only, forwarding
// bytes unchanged).

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "codecs/api/codec.h"
#include "codecs/postgres/scram.h"
#include "codecs/postgres/sql_statements.h"

namespace wirepool::codec::postgres {

class ClientCodec final : public codec::ClientCodec {
 public:
  ClientCodec(const ClientCodecOptions& options, ClientCodecSink& sink);

  Step OnBytes(ByteView in) override;
  void OnTlsStarted() override;
  void BeginAuth(const UserSecret* secret) override;
  void CompleteLogin(const ParamList& server_params) override;
  std::string CancelKey() const override;
  std::string AuthClientKey() const override {
    return login_ != nullptr && login_->scram != nullptr && login_->scram->authenticated()
               ? login_->scram->client_key()
               : std::string();
  }
  bool MidRequest() const override {
    return mid_request_ || forward_left_ > 0 || discard_left_ > 0;
  }
  bool NeedsServer(ByteView in) const override {
    return state_ != State::kRunning || forward_left_ > 0 || discard_left_ > 0 || in.empty() ||
           in[0] != 'X';
  }
  void SendError(ProxyError error, std::string_view message) override;
  void SendServerError(const WireError& error) override;

 private:
  enum class State {
    kStartup,
    kTlsPending,  // TLS go-ahead sent; nothing may arrive before the handshake
    kAwaitAuth,
    kScramFirst,
    kScramFinal,
    kMd5,
    kAwaitLogin,
    kRunning,
    kDone
  };

  Step OnStartup(ByteView in);
  Step OnStartupPacket(ByteView packet);
  Step OnAuthMessage(ByteView in);
  Step OnScramFirst(ByteView body);
  Step OnScramFinal(ByteView body);
  Step OnMd5(ByteView body);
  Step OnRunning(ByteView in);

  Step Violation(std::string_view message);
  Step FailAuth(std::string_view reason);
  void AuthSucceeded();

  // Transaction pooling (client_statements.cc): the client's named prepared statements live on
  // servers under names derived from their text, prepared again wherever the client goes.
  // Each handler returns nullopt when the message passes unchanged.
  std::optional<Step> OnStatementMessage(uint8_t type, ByteView in, size_t total);
  Step OnParse(ByteView message);
  Step OnBind(ByteView in, size_t total);
  Step OnDescribeOrClose(uint8_t type, ByteView message);
  // Makes sure the current server has statement `key` (injecting its Parse if not).
  void EnsurePrepared(const std::string& key);

  struct Statement {
    std::string key;   // what the server knows it by: "wp_" + key
    std::string body;  // the Parse after its name: query, NUL, parameter types
  };
  using Statements = absl::flat_hash_map<std::string, Statement>;
  // Made by the first Parse of a named statement: most clients never make one, and an empty
  // map is 40 bytes of every idle client.
  std::unique_ptr<Statements> statements_;
  Statements& statements();
  // The client's statement `name`, or null.
  const Statement* FindStatement(absl::string_view name) const;

  // Reports what a Query's or Parse's SQL does to the session (classify_). The refusal's
  // message when the request is refused instead (refuse_pins_; reported with
  // OnRequestRefused): the caller then calls Refuse.
  std::optional<std::string> Classify(uint8_t type, ByteView message, bool whole);
  // Refuses the Query or Parse at the front of `in` (client_refuse.cc): in its place the server
  // gets a statement that raises the refusal (SQLSTATE 0A000), so that the error comes in order
  // with the answers to what the client sent before it and a transaction fails as it would had
  // the server refused the statement itself; the client's message is dropped.
  Step Refuse(uint8_t type, ByteView in, size_t total, std::string_view message);
  // Whether `effects` set a pin of refuse_pins_: then the refusal is reported and its message
  // returned.
  std::optional<std::string> RefuseEffects(const RequestEffects& effects);
  // A lone DISCARD ALL / DEALLOCATE ALL while the server is quiet: the server codec sends what
  // touches only this client's session, and the client gets the command's CommandComplete here
  // (sql_statements.h). Nullopt when the Query goes as it is.
  std::optional<Step> MaybeIntercept(size_t total);
  // What the Query being read does to SQL-level prepared statements (Classify), for its kSync
  // note.
  SqlOps query_ops_;
  // Queries and Parse messages up to this size are read whole to be classified; bigger ones pin.
  static constexpr size_t kMaxClassifiedMessage = 1 << 20;

  // What only the login reads: dropped when the login completes, so that an idle client keeps
  // none of it (the options alone are some 180 bytes).
  struct Login {
    ClientCodecOptions options;
    std::string user;
    const UserSecret* secret = nullptr;
    std::unique_ptr<ScramServer> scram;
    std::string md5_salt;
    size_t startup_bytes = 0;
  };
  std::unique_ptr<Login> login_;  // null once logged in
  ClientCodecSink& sink_;
  const bool classify_;       // options.classify
  const PinSet refuse_pins_;  // options.refuse_pins
  State state_ = State::kStartup;
  std::optional<std::array<uint8_t, 8>> cancel_key_;  // made at CompleteLogin
  size_t forward_left_ = 0;  // bytes of the current message still to forward
  size_t discard_left_ = 0;  // bytes of a refused message still to drop
  bool mid_request_ = false;
  bool tls_ = false;         // TLS is on: a second SSLRequest is a violation
  bool tls_direct_ = false;  // the client opened with TLS (no SSLRequest)
};

}  // namespace wirepool::codec::postgres
