// Server-side prepared statements under transaction pooling. A client's statement ids are the
// proxy's own (counted per client connection, as a server counts them per session); each server
// connection has its own ids for the statements it prepared. The client codec keeps every
// statement's text, keyed by a digest of it, and the server codec keeps which keys its server
// has under which id (ServerStatement). A command that names a statement (EXECUTE, SEND_LONG_DATA,
// RESET, FETCH) goes out with the server's id in place of the client's; when the server lacks the
// statement, the codec prepares it there first and pauses until the answer is in. COM_STMT_CLOSE
// never reaches a server: the statement stays there, for any client of the pool that prepares the
// same text, until the server's cap evicts it.

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>

#include "codecs/mysql/client_codec.h"
#include "codecs/mysql/wire.h"
#include "core/crypto.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// Statement text up to this size is kept to prepare again elsewhere (as for classification).
constexpr size_t kMaxStatementText = 1 << 20;
// How many statements one client may hold, as a server's max_prepared_stmt_count would cap them.
constexpr size_t kMaxClientStatements = 16382;

constexpr uint16_t kErUnknownStmtHandler = 1243;
constexpr uint16_t kErMaxPreparedStmtCountReached = 1461;

// MariaDB's id for "the statement prepared last" (a prepare and its execution sent together).
constexpr uint32_t kLastPrepared = 0xffffffff;

// COM_STMT_EXECUTE flags: any cursor type keeps rows on the server for COM_STMT_FETCH.
constexpr uint8_t kCursorTypes = 0x07;
// command, statement id, flags, iteration count
constexpr size_t kExecuteFixed = 1 + 4 + 1 + 4;

std::string_view AsText(ByteView v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

std::string StatementKey(std::string_view text) {
  // 128 bits of SHA-256, in hex: the same text on any server is the same statement.
  std::string digest = crypto::Sha256(text);
  std::string hex;
  for (size_t i = 0; i < 16; ++i) {
    hex += fmt::format("{:02x}", static_cast<unsigned char>(digest[i]));
  }
  return hex;
}

uint32_t ReadU32(ByteView v, size_t at) {
  return static_cast<uint32_t>(v[at]) | static_cast<uint32_t>(v[at + 1]) << 8 |
         static_cast<uint32_t>(v[at + 2]) << 16 | static_cast<uint32_t>(v[at + 3]) << 24;
}

void WriteU32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}

void WriteU24(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 3; ++i) {
    s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
}

std::optional<uint32_t> ParseHandle(std::string_view handle) {
  uint32_t id = 0;
  auto [end, ec] = std::from_chars(handle.data(), handle.data() + handle.size(), id);
  if (ec != std::errc() || end != handle.data() + handle.size()) {
    return std::nullopt;
  }
  return id;
}

}  // namespace

bool ClientCodec::NeedsServer(ByteView in) const {
  if (state_ != State::kRunning || forward_left_ > 0 || continued_ || in.size() <= kHeaderLen ||
      in[3] != 0) {
    return true;
  }
  uint8_t command = in[kHeaderLen];
  if (command == kComQuit) {
    return false;
  }
  if (IsKillRequest(in)) {
    // Answered here: waiting for a server could leave a client unable to stop the query that
    // holds the last one.
    return false;
  }
  if (command == kComStmtClose && options_.classify) {
    // Closed here, unless the statement has a cursor open on the client's server.
    if (in.size() < kHeaderLen + 5) {
      return true;
    }
    return prepared_ != nullptr && prepared_->cursors.contains(ReadU32(in, kHeaderLen + 1));
  }
  return true;
}

void ClientCodec::OnRequestAnswered(uint32_t tag, bool failed) {
  if ((tag & 0xff) != kComStmtPrepare || prepared_ == nullptr || prepared_->preparing.empty()) {
    return;
  }
  Prepared& p = *prepared_;
  uint32_t id = p.preparing.front();
  p.preparing.pop_front();
  if (failed) {
    p.statements.erase(id);  // the client never learnt the id
    if (p.last_prepared == id) {
      p.last_prepared = 0;
    }
  }
}

void ClientCodec::ForgetStatements() {
  prepared_.reset();
  awaiting_statement_ = false;
  reprepared_ = false;
}

Step ClientCodec::OnStmtPrepare(ByteView in, const PacketHeader& header) {
  size_t total = kHeaderLen + header.length;
  if (header.length > kMaxStatementText) {
    SendError(
        ProxyError::kNotSupported,
        Cat("wirepool: a prepared statement of ", header.length, " bytes is over the ",
            kMaxStatementText, " bytes transaction pooling can prepare again on another server"));
    return DiscardPacket(in, header);
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  if (prepared_ != nullptr && prepared_->statements.size() >= kMaxClientStatements) {
    SendPacket(ErrPayload(kErMaxPreparedStmtCountReached, "42000",
                          Cat("Can't create more than max_prepared_stmt_count statements "
                              "(current value: ",
                              kMaxClientStatements, ")")));
    return DiscardPacket(in, header);
  }
  std::string_view text = AsText(in.subspan(kHeaderLen + 1, header.length - 1));
  RequestEffects effects = Classify(text);
  if (Refused(effects)) {  // pin_as_error: refused before it is ever prepared
    return DiscardPacket(in, header);
  }
  if (prepared_ == nullptr) {
    prepared_ = std::make_unique<Prepared>();
  }
  Prepared& p = *prepared_;
  uint32_t id = next_statement_id_++;
  while (next_statement_id_ == 0 || next_statement_id_ == kLastPrepared ||
         p.statements.contains(next_statement_id_)) {
    ++next_statement_id_;
  }
  Statement& statement = p.statements[id];
  statement.key = StatementKey(text);
  statement.text = std::string(text);
  statement.effects = std::move(effects);
  p.preparing.push_back(id);
  p.last_prepared = id;
  // Preparing runs nothing; what the statement does happens at each execution.
  ReportEffects({});
  sink_.OnStatementMessage({StatementNote::kPrepare, true, statement.key, Cat(id)});
  sink_.OnRequestEnd(kComStmtPrepare);
  if (state_ == State::kDone) {
    return {Verdict::kStop};
  }
  return ForwardPacket(in, header);
}

Step ClientCodec::OnStmtClose(ByteView in, const PacketHeader& header) {
  size_t total = kHeaderLen + header.length;
  if (header.length != 5) {
    return Violation(Cat("malformed COM_STMT_CLOSE packet of ", header.length, " bytes"));
  }
  if (in.size() < total) {
    return {Verdict::kNeedMore, total};
  }
  uint32_t id = ReadU32(in, kHeaderLen + 1);
  if (prepared_ == nullptr) {
    return {Verdict::kConsume, total};  // nothing prepared; a server answers nothing either
  }
  Prepared& p = *prepared_;
  auto it = p.statements.find(id);
  if (it != p.statements.end()) {
    if (p.cursors.erase(id) > 0) {
      // The cursor is open on this server under the server's statement: closing the statement
      // there closes it (other clients prepare the statement again if they need it).
      ServerStatement on_server = sink_.FindServerStatement(it->second.key);
      auto server_id = ParseHandle(on_server.handle);
      if (on_server.status == ServerStatement::kReady && server_id) {
        Writer w;
        w.U8(kComStmtClose).U32(*server_id);
        sink_.OnStatementMessage({StatementNote::kClose, false, it->second.key, ""});
        sink_.SendToServer(FramePacket(w.payload(), 0));
      }
      if (p.cursors.empty()) {
        unpins_next_ |= PinBit(PinReason::kHoldCursor);
      }
    }
    p.long_data.erase(id);
    p.statements.erase(it);
  }
  // A server answers COM_STMT_CLOSE with nothing, whatever the id.
  return {Verdict::kConsume, total};
}

Step ClientCodec::OnStmtCommand(ByteView in, const PacketHeader& header, uint8_t command) {
  const size_t id_end = kHeaderLen + 5;
  if (header.length < 5) {
    return Violation(Cat("malformed statement command of ", header.length, " bytes"));
  }
  if (in.size() < id_end) {
    return {Verdict::kNeedMore, id_end};
  }
  uint32_t id = ReadU32(in, kHeaderLen + 1);
  Statement* found = nullptr;
  if (prepared_ != nullptr) {
    if (id == kLastPrepared && prepared_->last_prepared != 0) {
      id = prepared_->last_prepared;
    }
    auto it = prepared_->statements.find(id);
    if (it != prepared_->statements.end()) {
      found = &it->second;
    }
  }
  if (found == nullptr) {
    // Never passed on: the server would read the id as one of its own statements, perhaps
    // another client's.
    awaiting_statement_ = false;
    reprepared_ = false;
    if (command != kComStmtSendLongData) {  // which has no answer: the EXECUTE fails later
      SendPacket(ErrPayload(kErUnknownStmtHandler, "HY000",
                            Cat("Unknown prepared statement handler (", id, ") given to ",
                                command == kComStmtExecute ? "mysqld_stmt_execute"
                                : command == kComStmtFetch ? "mysqld_stmt_fetch"
                                                           : "mysqld_stmt_reset")));
    }
    return DiscardPacket(in, header);
  }
  Statement& statement = *found;
  Prepared& p = *prepared_;

  // The statement must be on the client's server first.
  ServerStatement on_server = sink_.FindServerStatement(statement.key);
  if (on_server.status == ServerStatement::kPreparing) {
    awaiting_statement_ = true;
    return {Verdict::kPause};
  }
  if (on_server.status != ServerStatement::kReady) {
    if (reprepared_) {
      // The proxy's own prepare failed there (a table gone, for instance): the client hears
      // the server's error as the answer to its command.
      awaiting_statement_ = false;
      reprepared_ = false;
      if (command != kComStmtSendLongData) {
        WireError error;
        error.raw = on_server.error;
        if (error.raw.empty()) {
          SendError(ProxyError::kInternal,
                    "wirepool could not prepare the statement on its server connection again");
        } else {
          SendServerError(error);
        }
      }
      return DiscardPacket(in, header);
    }
    Writer w;
    w.U8(kComStmtPrepare).Bytes(statement.text);
    sink_.OnStatementMessage({StatementNote::kPrepare, false, statement.key, ""});
    sink_.SendToServer(FramePacket(w.payload(), 0));
    reprepared_ = true;
    awaiting_statement_ = true;
    return {Verdict::kPause};
  }
  auto server_id = ParseHandle(on_server.handle);
  if (!server_id) {
    return Violation("internal: a server statement without an id");
  }

  std::string head;
  size_t head_len = id_end;
  std::string bound;  // what this command binds (COM_STMT_EXECUTE)
  RequestEffects effects;
  if (command == kComStmtExecute) {
    // The parameter types follow the NULL bitmap when the bound flag is set. A server keeps the
    // types of the statement's last execution: where it last ran with other types (another
    // client's, or none since it was prepared here), the client's are sent again.
    uint32_t params = on_server.params;
    size_t fixed_end = kHeaderLen + kExecuteFixed;
    size_t flag_at = fixed_end + (params + 7) / 8;
    if (params > 0 && header.length >= flag_at + 1 - kHeaderLen) {
      if (in.size() < flag_at + 1) {
        return {Verdict::kNeedMore, flag_at + 1};
      }
      size_t types_end = flag_at + 1 + 2 * static_cast<size_t>(params);
      if (in[flag_at] == 1 && header.length >= types_end - kHeaderLen) {
        if (in.size() < types_end) {
          return {Verdict::kNeedMore, types_end};
        }
        statement.types = std::string(AsText(in.subspan(flag_at + 1, 2 * params)));
        bound = statement.types;
      } else if (in[flag_at] == 0 && !statement.types.empty() &&
                 on_server.bound != statement.types) {
        if (header.length + statement.types.size() >= kMaxPayload) {
          SendError(ProxyError::kNotSupported,
                    "wirepool: this COM_STMT_EXECUTE is too large to send its parameter types "
                    "again on another server connection");
          return DiscardPacket(in, header);
        }
        head.assign(AsText(in.first(flag_at + 1)));
        head.back() = 1;
        head += statement.types;
        WriteU24(head, 0, static_cast<uint32_t>(header.length + statement.types.size()));
        head_len = flag_at + 1;
        bound = statement.types;
      }
    }
    effects = statement.effects;
    if (header.length >= kExecuteFixed && in.size() > kHeaderLen + 5 &&
        (in[kHeaderLen + 5] & kCursorTypes) != 0) {
      p.cursors.insert(id);
      effects.pins |= PinBit(PinReason::kHoldCursor);
      if (effects.statement.empty()) {
        effects.statement = Cat("(COM_STMT_EXECUTE with a cursor) ", statement.text);
      }
    }
    p.long_data.erase(id);
  } else if (command == kComStmtReset) {
    p.long_data.erase(id);
    if (p.cursors.erase(id) > 0 && p.cursors.empty()) {
      effects.unpins |= PinBit(PinReason::kHoldCursor);
    }
  } else if (command == kComStmtSendLongData) {
    p.long_data.insert(id);
  }
  if (head.empty()) {
    head.assign(AsText(in.first(id_end)));
  }
  WriteU32(head, kHeaderLen + 1, *server_id);
  awaiting_statement_ = false;
  reprepared_ = false;

  if (command == kComStmtExecute) {
    // One note kept for this, its strings reused: an execute allocates nothing for it.
    p.use_note.kind = StatementNote::kUse;
    p.use_note.forward = true;
    p.use_note.key.assign(statement.key);
    p.use_note.data.assign(bound);
    sink_.OnStatementMessage(p.use_note);
  }
  if (command != kComStmtSendLongData) {
    ReportEffects(std::move(effects));
    sink_.OnRequestEnd(header.length == kMaxPayload ? command | kTagMultiPacket : command);
    if (state_ == State::kDone) {
      return {Verdict::kStop};
    }
  }
  return SendRewrittenHead(in, header, std::move(head), head_len);
}

Step ClientCodec::SendRewrittenHead(ByteView in, const PacketHeader& header, std::string head,
                                    size_t head_len) {
  sink_.SendToServer(head);
  // The rest of the packet streams as ForwardPacket would pass it.
  continued_ = header.length == kMaxPayload;
  mid_request_ = continued_;
  forward_left_ = kHeaderLen + header.length - head_len;
  return {Verdict::kConsume, head_len};
}

}  // namespace wirepool::codec::mysql
