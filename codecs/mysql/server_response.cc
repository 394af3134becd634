// The running half of mysql::ServerCodec: framing of the server's responses. Each response
// answers the request at the front of pending_; the phase says what its next packet may be. Only
// the first bytes of a packet decide its kind; packets the codec must read (OK, ERR, EOF, column
// counts, the COM_STMT_PREPARE OK) are asked for whole, all others pass in pieces as they arrive.

#include <algorithm>
#include <string>
#include <utility>

#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// The most the codec reads whole; it equals the proxy's limit for one inspected message.
constexpr size_t kMaxInspectedPacket = 1 << 20;

constexpr uint8_t kOkByte = 0x00;
constexpr uint8_t kLocalInfileByte = 0xfb;
constexpr uint8_t kEofByte = 0xfe;
constexpr uint8_t kErrByte = 0xff;

}  // namespace

Verdict ServerCodec::PassVerdict() const {
  return pending_.front().internal ? Verdict::kConsume : Verdict::kForward;
}

ServerCodec::Phase ServerCodec::FirstPhase(uint32_t command) {
  switch (command) {
    case kComQuery:
    case kComStmtExecute:
      return Phase::kFirst;
    case kComStmtPrepare:
      return Phase::kPrepareFirst;
    case kComStmtFetch:
      return Phase::kFetchRows;
    case kComFieldList:
      return Phase::kFieldList;
    case kComStatistics:
      return Phase::kStatistics;
    default:
      return Phase::kSimple;
  }
}

bool ServerCodec::NeedsWhole(uint8_t first, uint32_t length) const {
  switch (phase_) {
    case Phase::kColumnDefs:
    case Phase::kPrepareParams:
    case Phase::kPrepareColumns:
      return false;
    case Phase::kRows:
      if (!read_back_.empty() && pending_.front().internal) {
        return true;  // the values of a read-back
      }
      [[fallthrough]];
    case Phase::kFetchRows:
    case Phase::kFieldList:
      // A row or definition cannot start with 0xfe unless it is 16 MiB or more (a length-encoded
      // 8-byte integer), nor with 0xff at all.
      return first == kErrByte || (first == kEofByte && length < kMaxPayload);
    case Phase::kStatistics:
      return first == kErrByte;
    default:
      return true;
  }
}

Step ServerCodec::OnRunning(ByteView in) {
  if (packet_left_ > 0) {
    return ContinuePacket(in);
  }
  auto header = ReadHeader(in);
  if (!header) {
    return {Verdict::kNeedMore, kHeaderLen};
  }
  size_t total = kHeaderLen + header->length;
  if (pending_.empty()) {
    // Nothing was asked. Name the error if it is one (a server that kills idle sessions says so).
    if (header->length > 0 && total <= kMaxInspectedPacket) {
      if (in.size() < total) {
        return {Verdict::kNeedMore, total};
      }
      if (auto err = ParseErr(in.subspan(kHeaderLen, header->length))) {
        return ProtocolError(Cat("the server sent error ", err->code, " (", err->message,
                                 ") with no request outstanding"));
      }
    }
    return ProtocolError("the server sent a packet with no request outstanding");
  }
  // A client's command of 16 MiB or more spans several packets, so the server's answer to it
  // starts past sequence id 1.
  bool free_start = !response_started_ && pending_.front().multi_packet;
  if (seq_known_ && !free_start && header->seq != next_seq_) {
    return ProtocolError(Cat("the server sent sequence id ", header->seq, ", expected ",
                             static_cast<int>(next_seq_)));
  }
  if (continues_) {
    return PassOpaque(in, header->length);
  }
  if (!response_started_) {
    phase_ = FirstPhase(pending_.front().command);
  }
  if (header->length == 0) {
    // Only a definition (opaque to the codec) or a statistics string may be empty.
    if (phase_ == Phase::kColumnDefs || phase_ == Phase::kPrepareParams ||
        phase_ == Phase::kPrepareColumns || phase_ == Phase::kStatistics) {
      return StartOpaque(in, 0);
    }
    return ProtocolError("the server sent an empty packet in a response");
  }
  if (in.size() <= kHeaderLen) {
    return {Verdict::kNeedMore, kHeaderLen + 1};
  }
  if (phase_ == Phase::kRows || phase_ == Phase::kFetchRows) {
    if (size_t n = RowRun(in); n > 0) {
      rows_started_ = true;
      return {PassVerdict(), n};
    }
  }
  if (!NeedsWhole(in[kHeaderLen], header->length)) {
    // The packet that ends a response passes in one piece when it is small, so that the sink
    // hears of the end in the same step that passes the whole packet.
    if (OpaqueEndsResponse() && total <= kMaxInspectedPacket && in.size() < total) {
      return {Verdict::kNeedMore, total};
    }
    return StartOpaque(in, header->length);
  }
  if (total > kMaxInspectedPacket) {
    return ProtocolError(
        Cat("the server sent a ", header->length, "-byte packet where a short one belongs"));
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  response_started_ = true;
  next_seq_ = static_cast<uint8_t>(header->seq + 1);
  seq_known_ = true;
  Verdict verdict = PassVerdict();  // before OnWholePacket may end the response
  consume_packet_ = false;
  if (!OnWholePacket(in.first(total))) {
    return {Verdict::kStop};
  }
  return {consume_packet_ ? Verdict::kConsume : verdict, total};
}

bool ServerCodec::OpaqueEndsResponse() const {
  const bool deprecate_eof = (caps() & kDeprecateEof) != 0;
  switch (phase_) {
    case Phase::kStatistics:
      return true;
    case Phase::kPrepareParams:
      return left_ == 1 && deprecate_eof && prepare_columns_ == 0;
    case Phase::kPrepareColumns:
      return left_ == 1 && deprecate_eof;
    default:
      return false;
  }
}

Step ServerCodec::StartOpaque(ByteView in, uint32_t length) {
  response_started_ = true;
  switch (phase_) {
    case Phase::kColumnDefs:
      if (--left_ == 0) {
        phase_ = (caps() & kDeprecateEof) ? Phase::kRows : Phase::kColumnsEof;
        rows_started_ = false;
      }
      break;
    case Phase::kRows:
    case Phase::kFetchRows:
      rows_started_ = true;
      break;
    case Phase::kPrepareParams:
      if (--left_ == 0) {
        if ((caps() & kDeprecateEof) == 0) {
          phase_ = Phase::kPrepareParamsEof;
        } else if (prepare_columns_ > 0) {
          phase_ = Phase::kPrepareColumns;
          left_ = prepare_columns_;
        } else {
          end_after_packet_ = true;
        }
      }
      break;
    case Phase::kPrepareColumns:
      if (--left_ == 0) {
        if ((caps() & kDeprecateEof) == 0) {
          phase_ = Phase::kPrepareColumnsEof;
        } else {
          end_after_packet_ = true;
        }
      }
      break;
    case Phase::kStatistics:
      end_after_packet_ = true;
      break;
    default:
      break;
  }
  return PassOpaque(in, length);
}

Step ServerCodec::PassOpaque(ByteView in, uint32_t length) {
  size_t total = kHeaderLen + size_t{length};
  size_t n = std::min(total, in.size());
  next_seq_ = static_cast<uint8_t>(in[3] + 1);
  seq_known_ = true;
  continues_ = length == kMaxPayload;
  packet_left_ = total - n;
  Verdict verdict = PassVerdict();
  MaybeEndAfterPacket();
  return {verdict, n};
}

size_t ServerCodec::RowRun(ByteView in) {
  if (NeedsWhole(in[kHeaderLen], kMaxPayload - 1)) {
    return 0;  // a read-back's values, or the end of the rows
  }
  // From here each packet is a plain row unless it starts with 0xfe or 0xff (NeedsWhole for a
  // packet under 16 MiB in these phases). The header is read in place: this loop runs per row.
  const uint8_t* p = in.data();
  const size_t size = in.size();
  size_t at = 0;
  uint8_t seq = p[3];  // the first packet's, checked by the caller
  while (size - at > kHeaderLen) {
    const uint32_t length = p[at] | (uint32_t{p[at + 1]} << 8) | (uint32_t{p[at + 2]} << 16);
    const size_t total = kHeaderLen + size_t{length};
    const uint8_t first = p[at + kHeaderLen];
    // Anything else (a packet cut short, one of 16 MiB that continues, the end of the rows, an
    // error, an empty packet or a sequence id out of order) goes the one-packet way.
    if (p[at + 3] != seq || length == 0 || length >= kMaxPayload || size - at < total ||
        first == kEofByte || first == kErrByte) {
      break;
    }
    seq = static_cast<uint8_t>(seq + 1);
    at += total;
  }
  if (at > 0) {
    next_seq_ = seq;
    seq_known_ = true;
  }
  return at;
}

Step ServerCodec::ContinuePacket(ByteView in) {
  size_t n = std::min(packet_left_, in.size());
  packet_left_ -= n;
  Verdict verdict = PassVerdict();
  MaybeEndAfterPacket();
  return {verdict, n};
}

void ServerCodec::MaybeEndAfterPacket() {
  if (packet_left_ == 0 && !continues_ && end_after_packet_) {
    end_after_packet_ = false;
    EndResponse();
  }
}

bool ServerCodec::OnWholePacket(ByteView packet) {
  ByteView payload = packet.subspan(kHeaderLen);
  const uint8_t first = payload[0];
  const uint32_t command = pending_.front().command;
  if (payload.size() >= 3 && first == kErrByte && payload[1] == 0xff && payload[2] == 0xff) {
    // MariaDB's progress report (error number 0xffff), sent while a statement runs to clients
    // that asked for them: it changes nothing.
    return true;
  }
  switch (phase_) {
    case Phase::kFirst:
      if (first == kLocalInfileByte && command == kComQuery) {
        return OnLocalInfile(packet[3]);
      }
      if (first == kOkByte || first == kErrByte) {
        return OnResultOkOrErr(packet);
      }
      if (first == kEofByte) {
        return Fail("the server sent an EOF packet where a result belongs");
      }
      {
        Reader r(payload);
        auto columns = r.LenencInt();
        // MariaDB may follow the count with a "metadata follows" byte; it is not read here.
        if (!columns || *columns == 0) {
          return Fail("the server sent a malformed column count");
        }
        left_ = *columns;
        phase_ = Phase::kColumnDefs;
      }
      return true;
    case Phase::kInfileReply:
      if (first == kOkByte || first == kErrByte) {
        return OnResultOkOrErr(packet);
      }
      return Fail("the server sent an unexpected packet after LOCAL INFILE data");
    case Phase::kColumnsEof: {
      auto status = EofStatus(payload);
      if (!status) {
        return Fail("the server sent no EOF after the column definitions");
      }
      status_ = *status;
      if (command == kComStmtExecute && (*status & kStatusCursorExists)) {
        EndResponse();  // the rows come with COM_STMT_FETCH
        return true;
      }
      phase_ = Phase::kRows;
      rows_started_ = false;
      return true;
    }
    case Phase::kRows:
    case Phase::kFetchRows:
    case Phase::kFieldList: {
      if (first == kErrByte) {
        RecordError(packet);
        EndResponse();
        return true;
      }
      if (phase_ == Phase::kRows && !read_back_.empty() && pending_.front().internal &&
          !(first == kEofByte && payload.size() < 0xffffff)) {
        OnReadBackRow(payload);
        rows_started_ = true;
        return true;
      }
      auto status = TerminatorStatus(payload);
      if (!status) {
        return Fail("the server sent a malformed end of rows");
      }
      if (phase_ == Phase::kRows && (*status & kStatusMoreResultsExist) &&
          !(command == kComStmtExecute && !rows_started_ && (*status & kStatusCursorExists))) {
        phase_ = Phase::kFirst;
        return true;
      }
      EndResponse();
      return true;
    }
    case Phase::kPrepareFirst:
      if (first == kErrByte) {
        RecordError(packet);
        EndResponse();
        return true;
      }
      if (first == kOkByte) {
        Reader r(payload.subspan(1));
        auto statement = r.U32();
        auto columns = statement ? r.U16() : std::nullopt;
        auto params = columns ? r.U16() : std::nullopt;
        if (!params) {
          return Fail("the server sent a malformed COM_STMT_PREPARE OK");
        }
        prepare_columns_ = *columns;
        if (!pending_.front().statement_key.empty() && !OnPrepareOk(packet, *params)) {
          return false;
        }
        if (*params > 0) {
          phase_ = Phase::kPrepareParams;
          left_ = *params;
        } else {
          AfterPrepareParams();
        }
        return true;
      }
      return Fail("the server sent an unexpected answer to COM_STMT_PREPARE");
    case Phase::kPrepareParamsEof:
    case Phase::kPrepareColumnsEof: {
      auto status = EofStatus(payload);
      if (!status) {
        return Fail("the server sent no EOF after the statement's definitions");
      }
      status_ = *status;
      if (phase_ == Phase::kPrepareParamsEof) {
        AfterPrepareParams();
      } else {
        EndResponse();
      }
      return true;
    }
    case Phase::kStatistics:  // an ERR, by NeedsWhole
      RecordError(packet);
      EndResponse();
      return true;
    case Phase::kSimple:
      if (first == kOkByte || first == kErrByte) {
        return OnResultOkOrErr(packet);
      }
      if (command == kComChangeUser) {
        // The proxy re-authenticates clients itself and never forwards COM_CHANGE_USER.
        return Fail("the server continued a COM_CHANGE_USER authentication, which is not framed");
      }
      if (auto status = TerminatorStatus(payload)) {
        status_ = *status;
        EndResponse();
        return true;
      }
      return Fail("the server sent an unexpected answer to a command");
    case Phase::kColumnDefs:
    case Phase::kPrepareParams:
    case Phase::kPrepareColumns:
      break;  // never read whole
  }
  return Fail("internal framing error");
}

void ServerCodec::AfterPrepareParams() {
  if (prepare_columns_ > 0) {
    phase_ = Phase::kPrepareColumns;
    left_ = prepare_columns_;
  } else {
    EndResponse();
  }
}

bool ServerCodec::OnResultOkOrErr(ByteView packet) {
  ByteView payload = packet.subspan(kHeaderLen);
  const Pending& request = pending_.front();
  if (payload[0] == kErrByte) {
    // An ERR carries no status flags (EndResponse asks the server under transaction pooling).
    RecordError(packet);
    EndResponse();
    return true;
  }
  auto ok = ParseOk(payload, caps());
  if (!ok) {
    return Fail("the server sent a malformed OK packet");
  }
  if (request.command == kComResetConnection) {
    statements_.clear();  // a reset session has no prepared statements
    ForgetSqlStatements(/*report=*/!request.internal);
  }
  if (request.sql_op != 0) {
    ApplySqlOp(request, /*report=*/!request.internal);
  }
  bool schema_reported = ApplyOk(*ok, /*report=*/!request.internal);
  if (request.command == kComInitDb && !schema_reported) {
    // COM_INIT_DB always changes the schema: if tracking did not say so, it is off.
    tracking_schema_ = false;
    if (!request.internal) {
      schema_known_ = false;
    }
  }
  if ((ok->status & kStatusMoreResultsExist) &&
      (request.command == kComQuery || request.command == kComStmtExecute)) {
    phase_ = Phase::kFirst;
    return true;
  }
  EndResponse();
  return true;
}

bool ServerCodec::OnLocalInfile(uint8_t seq) {
  phase_ = Phase::kInfileReply;
  if (pending_.front().internal) {
    // The proxy has no file to give: an empty packet says so, and the server answers it.
    SendPacket("", static_cast<uint8_t>(seq + 1));
    next_seq_ = static_cast<uint8_t>(seq + 2);
    return true;
  }
  // The client now sends the file in as many packets as it likes, each one moving the sequence
  // id on; the server's answer continues from there.
  seq_known_ = false;
  return true;
}

std::optional<uint16_t> ServerCodec::TerminatorStatus(ByteView payload) {
  if (payload.empty() || payload[0] != kEofByte) {
    return std::nullopt;
  }
  if (caps() & kDeprecateEof) {
    if (auto ok = ParseOk(payload, caps())) {
      ApplyOk(*ok, /*report=*/!pending_.front().internal);
      return ok->status;
    }
  }
  // An EOF (also sent by some servers after the column definitions of a cursor).
  auto status = EofStatus(payload);
  if (status) {
    status_ = *status;
  }
  return status;
}

void ServerCodec::RecordError(ByteView packet) {
  if (pending_.front().internal) {
    if (pending_.front().tolerant) {
      return;
    }
    internal_error_ = std::make_unique<WireError>(ServerError(packet, /*fatal=*/false));
  } else {
    request_failed_ = true;
    sink_.OnRequestFailed();
  }
}

void ServerCodec::EndResponse() {
  Pending request = std::move(pending_.front());
  pending_.pop_front();
  response_started_ = false;
  phase_ = Phase::kFirst;
  next_seq_ = 1;
  seq_known_ = true;
  left_ = 0;
  prepare_columns_ = 0;
  rows_started_ = false;
  if (request.internal && !request.statement_key.empty()) {
    EndStatementPrepare(request);
    return;
  }
  if (!request.internal && !request.statement_key.empty() && request_failed_) {
    // The client's prepare failed: nothing of it is on the server.
    auto it = statements_.find(request.statement_key);
    if (it != statements_.end() && it->second.status == ServerStatement::kPreparing) {
      statements_.erase(it);
    }
  }
  if (request.internal && request.probe) {
    internal_error_.reset();  // a failed ping says nothing new: the last flags stand
    sink_.OnReadyForQuery((status_ & kStatusInTrans) ? TxState::kInTransaction : TxState::kIdle);
    return;
  }
  if (request.internal && !request.report_done) {
    // Not the last request of its group: any error waits for the group's end.
    if (internal_error_ == nullptr && request.command == kComInitDb) {
      schema_ = request.schema;
      schema_known_ = true;
    }
    return;
  }
  if (request.internal) {
    read_back_.clear();
    std::unique_ptr<WireError> error = std::move(internal_error_);
    if (error != nullptr) {
      // Some request of the group failed: what the session's schema is now is not known.
      schema_known_ = false;
    }
    if (error != nullptr && request.command == kComResetConnection &&
        login_.reset_method != kResetConnection) {
      // A server without COM_RESET_CONNECTION (older than MySQL 5.7.3 or MariaDB 10.2.4, or one
      // that only speaks the protocol): from now on this connection resets with COM_CHANGE_USER.
      reset_refused_ = true;
      SendChangeUser();
      return;
    }
    if (error == nullptr && request.command == kComInitDb) {
      schema_ = request.schema;
      schema_known_ = true;
    }
    sink_.OnInternalDone(error.get());
    return;
  }
  if (std::exchange(unexplained_change_, false) && request.sql_op == 0) {
    sink_.OnSessionStateChanged();  // a SQL-level PREPARE / DEALLOCATE accounts for its own
  }
  bool failed = std::exchange(request_failed_, false);
  if (failed && login_.transaction_pooling) {
    // An ERR carries no status flags, and a failed statement may have ended the transaction
    // (a deadlock rolls it back) or left one open: the OK to a COM_PING says which, before the
    // server can be given to another client.
    SendInternal(kComPing, "", "");
    pending_.back().probe = true;
    return;
  }
  sink_.OnReadyForQuery((status_ & kStatusInTrans) ? TxState::kInTransaction : TxState::kIdle);
}

bool ServerCodec::Fail(std::string_view message) {
  state_ = State::kDone;
  sink_.OnProtocolError(absl::DataLossError(Av(message)));
  return false;
}

Step ServerCodec::ProtocolError(std::string_view message) {
  Fail(message);
  return {Verdict::kStop};
}

}  // namespace wirepool::codec::mysql
