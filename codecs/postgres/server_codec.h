#pragma once

// The server side of a PostgreSQL connection: the proxy plays the client. Login (SCRAM-SHA-256,
// md5 or cleartext with the proxy's stored credentials), then framing of the server's messages:
// ReadyForQuery gives the transaction state; ParameterStatus keeps the parameter cache current;
// everything is forwarded unchanged except the answers to requests the codec sent itself.

#include <deque>
#include <memory>
#include <string>

#include "absl/container/flat_hash_set.h"

#include "codecs/api/codec.h"
#include "codecs/postgres/scram.h"
#include "core/strings.h"

namespace wirepool::codec::postgres {

class ServerCodec final : public codec::ServerCodec {
 public:
  ServerCodec(const ServerLogin& login, ServerCodecSink& sink);

  void Start() override;
  Step OnBytes(ByteView in) override;
  const ParamList& Parameters() const override { return params_; }
  std::string CancelKey() const override { return cancel_key_; }
  void SendInternalQuery(std::string_view sql) override { SendInternal(sql); }
  void SendReset() override;
  void SendSetParameters(const ParamList& params) override;
  ParamList ParametersToApply(const ParamList& wanted) const override;
  // With set_config (which reads a value as the config file would, lists included) for what
  // differs, and RESET for what an earlier client changed that `wanted` does not name.
  bool ApplyParameters(const ParamList& wanted) override;
  // SELECT current_setting(name, true), ...: each non-NULL value is reported.
  bool SendReadBack(const std::vector<std::string>& names) override;
  bool HasStatement(std::string_view key) const override;
  void NoteStatementMessage(const StatementNote& note) override { notes_.push_back(note); }

 private:
  enum class State { kIdle, kLogin, kRunning, kDone };

  Step OnLogin(ByteView message);
  Step OnAuthRequest(ByteView body);
  Step OnRunning(ByteView in);
  Step LoginFailed(std::string_view message);
  void SetParameter(std::string_view name, std::string_view value);
  void SendInternal(std::string_view sql);
  // The DataRow answering SendReadBack.
  void OnReadBackRow(ByteView body);
  // ParseComplete / CloseComplete for the oldest note of their kind before the next Sync: whether
  // the client sees it.
  bool OnStatementAnswer(StatementNote::Kind kind);
  // Records a value this session now has that a client gave it (so the next client's
  // ApplyParameters resets it if that client does not want it).
  void NoteChanged(std::string_view name, std::string_view value);

  ServerLogin login_;
  ServerCodecSink& sink_;
  State state_ = State::kIdle;
  std::unique_ptr<ScramClient> scram_;
  ParamList params_;  // as the server reported them
  // Set by the startup packet, by SendSetParameters / ApplyParameters, or changed by a client
  // (reported or read back) since the last reset, with the value the session has now.
  ParamList applied_;
  std::vector<std::string> read_back_;  // the names of the SendReadBack under way
  // Transaction pooling (see StatementNote): the Parse / Close / Sync messages whose answers are
  // still to come, and the statements this server holds.
  std::deque<StatementNote> notes_;
  absl::flat_hash_set<std::string> prepared_;
  bool request_failed_ = false;  // OnRequestFailed was given for the current request
  std::string cancel_key_;
  size_t forward_left_ = 0;
  TxState tx_ = TxState::kIdle;  // as the last ReadyForQuery said
  int internal_pending_ = 0;     // ReadyForQuery still owed to requests the codec sent itself
  std::unique_ptr<WireError> internal_error_;
};

}  // namespace wirepool::codec::postgres
