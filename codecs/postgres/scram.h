#pragma once

// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, in both roles. These are pure state
// machines over the SASL payloads: no framing, no I/O, no clocks. Randomness is injected.
//
// PostgreSQL specifics: the user name travels in the startup packet, so clients send an empty
// "n=" and servers ignore it; channel binding (SCRAM-SHA-256-PLUS) is tls-server-end-point only,
// and only the server role offers it; authzid is not supported.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "codecs/api/codec.h"
#include "core/crypto.h"

namespace wirepool::codec::postgres {

// Upper bound on any SCRAM message either side accepts. Real messages are well under 200 bytes.
inline constexpr size_t kMaxScramMessageLength = 4096;

// The proxy verifying a client that logs in to it.
class ScramServer {
 public:
  // `keys` is copied. nullptr (or invalid keys) means an unknown user: the exchange runs the same
  // way with a mock salt that is stable for `user` within this process, and always fails at the
  // proof step, so a client cannot tell unknown users from wrong passwords.
  ScramServer(const crypto::ScramKeys* keys, RandomFn random, std::string_view user = {});

  // The connection is TLS and SCRAM-SHA-256-PLUS is offered: `end_point` is the
  // tls-server-end-point data of the proxy's certificate. Without it, a client that demands
  // channel binding is refused.
  void OfferChannelBinding(std::string end_point) { end_point_ = std::move(end_point); }
  // The client chose SCRAM-SHA-256-PLUS (true) or SCRAM-SHA-256: its gs2 header must agree.
  void SelectPlus(bool plus) { plus_ = plus; }

  ScramServer(const ScramServer&) = delete;
  ScramServer& operator=(const ScramServer&) = delete;

  // client-first-message -> server-first-message ("r=...,s=...,i=...").
  // InvalidArgument on a malformed message, a channel-binding demand ("p=") or an authzid.
  absl::StatusOr<std::string> OnClientFirst(std::string_view message);

  // client-final-message -> server-final-message ("v=<ServerSignature>").
  // PermissionDenied on a wrong proof (or unknown user); InvalidArgument on a malformed message.
  absl::StatusOr<std::string> OnClientFinal(std::string_view message);

  // True once OnClientFinal has succeeded.
  bool authenticated() const { return state_ == State::kDone; }
  // Once authenticated: the ClientKey the proof revealed (proof XOR ClientSignature).
  const std::string& client_key() const { return client_key_; }
  ~ScramServer();

  // Test hook: use this text as the server's part of the nonce instead of random bytes.
  void SetNonceForTest(std::string nonce) { fixed_nonce_ = std::move(nonce); }

 private:
  enum class State { kInitial, kSentFirst, kDone, kFailed };

  absl::Status Fail(absl::Status status);

  State state_ = State::kInitial;
  bool known_user_ = false;
  crypto::ScramKeys keys_;  // the user's keys, or mock keys for an unknown user
  RandomFn random_;
  std::string fixed_nonce_;

  std::string end_point_;          // tls-server-end-point data; empty: channel binding not offered
  bool plus_ = false;              // SCRAM-SHA-256-PLUS chosen
  std::string gs2_header_;         // e.g. "n,," or "p=tls-server-end-point,,"
  std::string client_first_bare_;  // client-first-message without the gs2 header
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  std::string client_key_;
};

// The proxy logging in to a backend with a password.
class ScramClient {
 public:
  // `user` is normally empty (PostgreSQL takes it from the startup packet); it is escaped and sent
  // as n=. The password is used as raw bytes: no SASLprep (see scram.cc).
  ScramClient(std::string password, RandomFn random, std::string user = {});
  // Pass-through: logs in with a ClientKey and ServerKey instead of a password (no PBKDF2); the
  // server must hold the verifier they come from.
  static std::unique_ptr<ScramClient> WithKeys(std::string client_key, std::string server_key,
                                               RandomFn random);
  ~ScramClient();

  ScramClient(const ScramClient&) = delete;
  ScramClient& operator=(const ScramClient&) = delete;

  // "n,,n=,r=<nonce>". Calling it again returns the same message.
  std::string ClientFirst();

  // server-first-message -> client-final-message ("c=biws,r=...,p=...").
  absl::StatusOr<std::string> OnServerFirst(std::string_view message);

  // Verifies the server signature. "e=..." from the server -> PermissionDenied with its text;
  // a wrong signature -> PermissionDenied; malformed -> InvalidArgument.
  absl::Status OnServerFinal(std::string_view message);

  // Test hook: use this text as the client nonce instead of random bytes.
  void SetNonceForTest(std::string nonce) { fixed_nonce_ = std::move(nonce); }

 private:
  enum class State { kInitial, kSentFirst, kSentFinal, kDone, kFailed };

  absl::Status Fail(absl::Status status);

  State state_ = State::kInitial;
  std::string password_;
  std::string client_key_;  // WithKeys: used in place of the password
  std::string server_key_;
  RandomFn random_;
  std::string user_;
  std::string fixed_nonce_;

  std::string client_first_;       // whole client-first-message
  std::string client_first_bare_;  // without the gs2 header
  std::string client_nonce_;
  std::string server_signature_;  // expected, raw bytes
};

}  // namespace wirepool::codec::postgres
