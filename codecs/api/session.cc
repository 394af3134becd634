#include "codecs/api/session.h"

#include <algorithm>
#include <utility>

namespace wirepool::codec {

std::string_view PinReasonName(PinReason reason) {
  switch (reason) {
    case PinReason::kTempTable:
      return "temp_table";
    case PinReason::kAdvisoryLock:
      return "advisory_lock";
    case PinReason::kListen:
      return "listen";
    case PinReason::kHoldCursor:
      return "hold_cursor";
    case PinReason::kTableLock:
      return "table_lock";
    case PinReason::kUserVariable:
      return "user_variable";
    case PinReason::kLoadLibrary:
      return "load_library";
    case PinReason::kFoundRows:
      return "found_rows";
    case PinReason::kSessionState:
      return "session_state";
    case PinReason::kUnclassified:
      return "unclassified";
  }
  return "unclassified";
}

void RequestEffects::Merge(RequestEffects other) {
  if (statement.empty() && other.pins != 0) {
    statement = std::move(other.statement);
  }
  // A later statement's pin stands even if an earlier one of the same request would clear it.
  unpins = (unpins | other.unpins) & ~other.pins;
  pins |= other.pins;
  for (std::string& name : other.read_back) {
    if (std::find(read_back.begin(), read_back.end(), name) == read_back.end()) {
      read_back.push_back(std::move(name));
    }
  }
  reset_params = reset_params || other.reset_params;
}

namespace {

std::string PinNames(PinSet pins) {
  std::string out;
  for (size_t i = 0; i < kPinReasonCount; ++i) {
    auto reason = static_cast<PinReason>(i);
    if (pins & PinBit(reason)) {
      out += out.empty() ? "" : ",";
      out += PinReasonName(reason);
    }
  }
  return out;
}

}  // namespace

std::string RefusalMessage(const RequestEffects& effects, PinSet refuse_pins) {
  std::string message = "wirepool: statement refused: it would pin this connection (";
  message += PinNames(effects.pins);
  message += ") and pin_as_error lists ";
  message += PinNames(effects.pins & refuse_pins);
  if (!effects.statement.empty()) {
    message += ": ";
    message += effects.statement;
  }
  return message;
}

}  // namespace wirepool::codec
