#pragma once

// What a client's request does to its session beyond the request itself, as the client codec
// classifies it (transaction pooling): state that ties the client to its server connection
// until that state is provably gone (a pin), and session parameters whose values must be read
// back from the server and replayed on whichever server the client gets next.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wirepool::codec {

// Why a client keeps its server between transactions. A fixed list: the names become metric
// labels and the words of docs/pooling.md.
enum class PinReason : uint8_t {
  kTempTable,     // temporary tables exist (until DISCARD TEMP / ALL)
  kAdvisoryLock,  // session-level advisory locks / GET_LOCK are held
  kListen,        // LISTEN (until UNLISTEN *)
  kHoldCursor,    // a WITH HOLD cursor is open (until CLOSE ALL)
  kTableLock,     // LOCK TABLES (until UNLOCK TABLES)
  kUserVariable,  // user variables whose value the proxy cannot know
  kLoadLibrary,   // PostgreSQL LOAD 'library' (for good)
  kFoundRows,     // SQL_CALC_FOUND_ROWS: FOUND_ROWS() belongs to the next statement
  kSessionState,  // the server reported a session change it did not detail
  kUnclassified,  // the classifier does not understand the statement (unknown means pin)
};
constexpr size_t kPinReasonCount = 10;

// "temp_table", "advisory_lock", ...
std::string_view PinReasonName(PinReason reason);

using PinSet = uint32_t;
constexpr PinSet PinBit(PinReason reason) { return PinSet{1} << static_cast<unsigned>(reason); }

struct RequestEffects {
  // Pins that hold from the moment the request is sent, whether or not it succeeds.
  PinSet pins = 0;
  // Pins the request clears once it has succeeded.
  PinSet unpins = 0;
  // Session parameters the request may change (SET, RESET, set_config(..., false), SET ROLE,
  // ...), lower case: read back from the server once the client's transaction has ended, and
  // replayed wherever the client goes next.
  std::vector<std::string> read_back;
  // RESET ALL / DISCARD ALL and the like: every parameter the client changed goes back to what it
  // was at the client's login.
  bool reset_params = false;
  // The statement that set the first pin (shortened), for the log line that explains it.
  std::string statement;

  bool empty() const { return pins == 0 && unpins == 0 && read_back.empty() && !reset_params; }
  // Adds another statement's effects (a query of several statements).
  void Merge(RequestEffects other);
};

// The error a request gets when its effects would set a pin that `pin_as_error` lists
// (ClientCodecOptions::refuse_pins): "wirepool: statement refused: it would pin this connection
// (temp_table) and pin_as_error lists temp_table: CREATE TEMP TABLE t (a int)".
std::string RefusalMessage(const RequestEffects& effects, PinSet refuse_pins);

}  // namespace wirepool::codec
