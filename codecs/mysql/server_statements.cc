// The server codec's half of server-side prepared statements under transaction pooling (see
// client_statements.cc): which statements this server has prepared, under which of its ids, and
// the answers that carry them. A client's COM_STMT_PREPARE is answered with the client's own id in
// place of the server's; a prepare the codec sent itself (before a client's command that needs the
// statement here) is consumed. Statements over the cap are closed, least recently used first, so
// that a pool never runs its server into max_prepared_stmt_count.

#include <algorithm>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "codecs/mysql/server_codec.h"
#include "codecs/mysql/sql_statements.h"
#include "codecs/mysql/wire.h"
#include "core/strings.h"

namespace wirepool::codec::mysql {
namespace {

// The session variables that change how a server reads a statement's text.
constexpr std::string_view kParseVariables[] = {"sql_mode", "character_set_client",
                                                "collation_connection"};

}  // namespace

const std::string& ServerCodec::FullKey(std::string_view key) const {
  std::string& full = full_key_;
  full.assign(key);
  full += '\x1f';
  if (schema_known_) {
    full += schema_;
  } else {
    absl::StrAppend(&full, "\x1e", unknown_schema_epoch_);
  }
  for (std::string_view name : kParseVariables) {
    full += '\x1f';
    for (const auto& [changed, value] : changed_) {
      if (changed == name) {
        full += value;
      }
    }
  }
  return full;
}

ServerStatement ServerCodec::FindStatement(std::string_view key) const {
  ServerStatement out;
  auto it = statements_.find(FullKey(key));
  if (it == statements_.end()) {
    return out;
  }
  const Prepared& p = it->second;
  out.status = p.status;
  out.handle = Cat(p.id);
  out.params = p.params;
  out.bound = p.bound;
  out.error = p.error;
  return out;
}

void ServerCodec::NoteStatementMessage(const StatementNote& note) {
  if (SqlNameOfNoteKey(note.key)) {
    next_sql_op_ = note;  // a SQL-level PREPARE / DEALLOCATE, whose ExpectResponse follows
    return;
  }
  const std::string& full = FullKey(note.key);
  switch (note.kind) {
    case StatementNote::kPrepare:
      if (note.forward) {
        next_prepare_ = note;  // the client's own COM_STMT_PREPARE, whose ExpectResponse follows
        return;
      }
      {
        statements_[full] = Prepared{};
        Pending& request = pending_.emplace_back();
        request.command = kComStmtPrepare;
        request.internal = true;
        request.statement_key = full;
      }
      return;
    case StatementNote::kUse:
      if (auto it = statements_.find(full); it != statements_.end()) {
        it->second.used = ++statement_clock_;
        if (!note.data.empty()) {
          it->second.bound = note.data;
        }
      }
      return;
    case StatementNote::kClose:
      statements_.erase(full);
      return;
    case StatementNote::kSync:
      return;
  }
}

bool ServerCodec::OnPrepareOk(ByteView packet, uint16_t params) {
  const Pending& request = pending_.front();
  Reader r(packet.subspan(kHeaderLen + 1));
  uint32_t id = *r.U32();  // OnWholePacket read it already
  Prepared& p = statements_[request.statement_key];
  if (p.status == ServerStatement::kReady && p.id != id) {
    // The same text prepared again (by another client, or twice): the older id goes.
    Writer w;
    w.U8(kComStmtClose).U32(p.id);
    SendPacket(w.payload(), 0);
  }
  p = Prepared{ServerStatement::kReady, id, params, "", ++statement_clock_, ""};
  if (!request.internal) {
    std::string payload(reinterpret_cast<const char*>(packet.data()) + kHeaderLen,
                        packet.size() - kHeaderLen);
    for (int i = 0; i < 4; ++i) {
      payload[1 + i] = static_cast<char>((request.client_id >> (8 * i)) & 0xff);
    }
    sink_.SendToClient(FramePacket(payload, packet[3]));
    consume_packet_ = true;
  }
  EvictStatements(request.statement_key);
  return true;
}

void ServerCodec::EndStatementPrepare(const Pending& request) {
  std::unique_ptr<WireError> error = std::move(internal_error_);
  auto it = statements_.find(request.statement_key);
  if (it == statements_.end()) {
    return;  // a reset came between
  }
  if (error != nullptr) {
    it->second.status = ServerStatement::kFailed;
    it->second.error = std::move(error->raw);
  }
}

void ServerCodec::EvictStatements(const std::string& keep) {
  // A server's max_prepared_stmt_count (16382 by default) counts all its sessions: the cap per
  // connection (max_prepared_statements) keeps a pool under it.
  size_t cap = login_.max_prepared_statements;
  while (cap > 0 && statements_.size() > cap) {
    auto oldest = statements_.end();
    for (auto it = statements_.begin(); it != statements_.end(); ++it) {
      if (it->first != keep && it->second.status != ServerStatement::kPreparing &&
          (oldest == statements_.end() || it->second.used < oldest->second.used)) {
        oldest = it;
      }
    }
    if (oldest == statements_.end()) {
      return;
    }
    if (oldest->second.status == ServerStatement::kReady) {
      Writer w;
      w.U8(kComStmtClose).U32(oldest->second.id);
      SendPacket(w.payload(), 0);
    }
    statements_.erase(oldest);
  }
}

}  // namespace wirepool::codec::mysql
