#pragma once

// The client side of a MySQL / MariaDB connection: the proxy plays the server. The proxy speaks
// first (HandshakeV10), reads the client's HandshakeResponse41, verifies the password itself
// (mysql_native_password or caching_sha2_password, with AuthSwitchRequest between them and
// caching_sha2 full authentication over RSA), waits for the proxy to log the client in, and then
// frames commands: packets are forwarded unchanged and streamed, never buffered whole, except the
// few the codec must read (login packets, short COM_QUERY for KILL, COM_PROCESS_KILL,
// COM_CHANGE_USER, which re-runs the auth exchange and asks the proxy for a login again).
//
// Split by message family: client_codec.cc (handshake, login packet, dispatch, errors),
// client_auth.cc (the auth exchange), client_command.cc (commands while running).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "codecs/api/codec.h"
#include "codecs/mysql/wire.h"
#include "core/fifo.h"

namespace wirepool::codec::mysql {

// The capabilities the proxy offers a client (before server_params "capabilities" narrows them).
// kSsl is added where client_tls offers TLS; no kCompress (compression would hide the framing).
constexpr uint32_t kProxyCapabilities =
    kLongPassword | kFoundRows | kLongFlag | kConnectWithDb | kNoSchema | kLocalFiles |
    kIgnoreSpace | kProtocol41 | kInteractive | kIgnoreSigpipe | kTransactions | kSecureConnection |
    kMultiStatements | kMultiResults | kPsMultiResults | kPluginAuth | kConnectAttrs |
    kPluginAuthLenencClientData | kSessionTrack | kDeprecateEof;

// Client flags that change what a server sends back: clients that differ in them never share a
// server connection (they are part of StartupInfo::pool_key).
constexpr uint32_t kPoolKeyCapabilities = kFoundRows | kIgnoreSpace | kInteractive | kLocalFiles |
                                          kMultiStatements | kMultiResults | kPsMultiResults |
                                          kDeprecateEof | kSessionTrack | kNoSchema | kLongFlag;

constexpr std::string_view kNativePassword = "mysql_native_password";
constexpr std::string_view kCachingSha2Password = "caching_sha2_password";

class ClientCodec final : public codec::ClientCodec {
 public:
  ClientCodec(const ClientCodecOptions& options, ClientCodecSink& sink);

  void Start() override;
  Step OnBytes(ByteView in) override;
  void OnTlsStarted() override;
  void BeginAuth(const UserSecret* secret) override;
  void CompleteLogin(const ParamList& server_params) override;
  std::string CancelKey() const override;
  // SEND_LONG_DATA is the start of a request its COM_STMT_EXECUTE ends.
  bool MidRequest() const override {
    return mid_request_ || forward_left_ > 0 || awaiting_statement_ ||
           (prepared_ != nullptr && !prepared_->long_data.empty());
  }
  bool NeedsServer(ByteView in) const override;
  void SendError(ProxyError error, std::string_view message) override;
  void SendServerError(const WireError& error) override;
  void AnswerKill(bool found, std::string_view target_key) override;
  void FollowServer(std::string_view response_state) override;
  void OnRequestAnswered(uint32_t tag, bool failed) override;

 private:
  enum class State {
    kInit,         // Start() not called yet
    kHandshake,    // HandshakeV10 sent; waiting for HandshakeResponse41
    kTlsPending,   // the client's SSL request taken; what follows is its TLS hello
    kAwaitAuth,    // OnStartup reported; waiting for BeginAuth
    kAuthSwitch,   // AuthSwitchRequest sent; waiting for the client's auth data
    kFullAuth,     // caching_sha2 "perform full authentication" sent; waiting for a key request
    kRsaPassword,  // our RSA public key sent; waiting for the encrypted password
    kAwaitLogin,   // authenticated; waiting for CompleteLogin
    kRunning,
    kDone,
  };

  // What the packets of the current logical packet belong to while running.
  enum class Traffic { kCommand, kInfile };

  // Login (client_codec.cc).
  Step OnLoginBytes(ByteView in);
  Step OnHandshakeResponse(ByteView payload);
  // What OnStartup reports for the current user_, charset_ and flags.
  StartupInfo MakeStartup(std::string_view database) const;
  // Auth (client_auth.cc).
  Step OnAuthPacket(ByteView payload);
  Step VerifyResponse(std::string_view response);
  Step CheckNative(std::string_view response);
  Step CheckCachingSha2(std::string_view response);
  Step OnFullAuthPacket(ByteView payload);
  Step OnRsaPassword(ByteView payload);
  Step FailAuth(std::string_view reason, bool used_password);
  Step AuthSucceeded();
  // Running (client_command.cc).
  Step OnRunning(ByteView in);
  Step OnCommand(ByteView in, const PacketHeader& header);
  Step OnQueryPacket(ByteView in, const PacketHeader& header);
  Step OnProcessKill(ByteView in, const PacketHeader& header);
  // Whether the whole request at the front of `in` is a KILL (a query or COM_PROCESS_KILL), which
  // the codec answers itself.
  bool IsKillRequest(ByteView in) const;
  // The largest COM_QUERY read whole (to be classified, or at least checked for a KILL); bigger
  // ones are streamed unread.
  size_t MaxReadQuery() const;
  // COM_CHANGE_USER: the client logs in again over the same connection.
  Step OnChangeUser(ByteView in, const PacketHeader& header);
  Step ForwardPacket(ByteView in, const PacketHeader& header);
  // Drops a client packet whole (one the proxy answered itself), streaming like ForwardPacket.
  Step DiscardPacket(ByteView in, const PacketHeader& header);
  // Server-side prepared statements under transaction pooling (client_statements.cc): the
  // client's statement ids are the proxy's, mapped onto each server's own ids.
  Step OnStmtPrepare(ByteView in, const PacketHeader& header);
  Step OnStmtCommand(ByteView in, const PacketHeader& header, uint8_t command);
  Step OnStmtClose(ByteView in, const PacketHeader& header);
  // Sends the packet's first `head` bytes (rewritten) in place of the client's, and forwards the
  // rest of the packet unchanged.
  Step SendRewrittenHead(ByteView in, const PacketHeader& header, std::string head,
                         size_t head_len);
  void ForgetStatements();
  // Transaction pooling (options_.classify): what a statement does to the session, and the
  // report of it before each request ends.
  RequestEffects Classify(std::string_view text) const;
  static RequestEffects ClassifyAllModes(std::string_view text);
  static RequestEffects TooLargeToClassify(size_t length);
  void ReportEffects(RequestEffects effects);
  // `pin_as_error`: whether `effects` set a pin of options_.refuse_pins; if so the client has its
  // ER_NOT_SUPPORTED_YET error (the request then goes to no server) and the refusal is reported.
  bool Refused(const RequestEffects& effects);

  // Sends one packet of the current exchange (the next sequence id).
  void SendPacket(std::string_view payload);
  // The sequence id the client expects on the next packet it reads from us.
  uint8_t NextSeqForClient() const;
  Step Violation(std::string_view message);
  Step Refuse(ProxyError error, std::string_view message, absl::Status status);

  ClientCodecOptions options_;
  ClientCodecSink& sink_;
  State state_ = State::kInit;

  // Handshake and login.
  std::string scramble_;          // the 20 bytes of our HandshakeV10 (and AuthSwitchRequest)
  std::string_view auth_plugin_;  // kCachingSha2Password or kNativePassword (options_.auth_method)
  uint32_t server_caps_ = 0;      // what we offered
  uint32_t client_caps_ = 0;      // what the client said it can do
  uint8_t charset_ = 45;
  std::string user_;
  std::string client_plugin_;  // the plugin the client's first auth response is for
  std::string auth_response_;  // that response
  bool has_secret_ = false;
  std::string password_;
  size_t startup_bytes_ = 0;
  bool tls_ = false;  // TLS is on: caching_sha2 full auth may take the password in cleartext

  // Sequence ids: `seq_` is the id of the next packet of the current exchange, whoever sends it;
  // `awaiting_client_` is true while the client owes the next packet (so an error we send before
  // it arrives must carry the id the client will expect after answering).
  uint8_t seq_ = 0;
  bool awaiting_client_ = false;

  // Running.
  size_t forward_left_ = 0;  // payload bytes of the current packet still to forward
  bool continued_ = false;   // the last packet was 0xffffff long: the next one continues it
  Traffic traffic_ = Traffic::kCommand;
  bool mid_request_ = false;
  // The status flags of the client's server as last reported by FollowServer; what the proxy's
  // own OK packets say.
  uint16_t server_status_ = kStatusAutocommit;
  bool found_rows_pinned_ = false;  // the last request ran SQL_CALC_FOUND_ROWS
  bool discarding_ = false;         // the packet under way is dropped, not forwarded

  // Server-side prepared statements (transaction pooling).
  struct Statement {
    std::string key;         // derived from the text: the same text is one statement per server
    std::string text;        // to prepare it again on another server
    RequestEffects effects;  // what running it does to the session
    std::string types;       // the parameter types the client bound last (2 bytes each)
  };
  // Made by the client's first COM_STMT_PREPARE: most clients never prepare one, and these
  // empty tables were ~250 bytes of every idle client.
  struct Prepared {
    absl::flat_hash_map<uint32_t, Statement> statements;
    StatementNote use_note;  // the kUse note of every COM_STMT_EXECUTE, its strings reused
    // The ids of prepares not answered yet, oldest first (a failed one is forgotten), and the
    // last one prepared, which MariaDB's id -1 names.
    core::Fifo<uint32_t> preparing;
    uint32_t last_prepared = 0;
    absl::flat_hash_set<uint32_t> long_data;  // statements with SEND_LONG_DATA not executed yet
    absl::flat_hash_set<uint32_t> cursors;    // statements whose execution opened a cursor
  };
  std::unique_ptr<Prepared> prepared_;
  uint32_t next_statement_id_ = 1;   // kept across ForgetStatements, as before
  PinSet unpins_next_ = 0;           // pins the next request's report clears
  bool awaiting_statement_ = false;  // paused while the server prepares the command's statement
  bool reprepared_ = false;          // the proxy prepared the command's statement itself
};

}  // namespace wirepool::codec::mysql
