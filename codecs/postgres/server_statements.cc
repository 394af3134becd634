// Transaction pooling, the server side of prepared statements beyond matching ParseComplete /
// CloseComplete to their notes (server_codec.cc): the SQL-level statements this server holds,
// followed through the SqlOps of clients' Queries and replayed for the next client by
// ApplyParameters; the stand-in for a client's lone DISCARD ALL / DEALLOCATE ALL; and the cap on
// the statements kept under "wp_<key>" (max_prepared_statements). See sql_statements.h.

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "codecs/postgres/server_codec.h"
#include "codecs/postgres/sql_statements.h"
#include "codecs/postgres/wire.h"
#include "core/strings.h"

namespace wirepool::codec::postgres {
namespace {

// DISCARD ALL less what other clients of the server would lose: DEALLOCATE ALL (the client's own
// SQL-level statements are deallocated by name after these; its protocol-level names were
// forgotten by the client codec) and DISCARD PLANS. RESET ALL's values are read back for the
// client afterwards (RequestEffects::reset_params), as for its own RESET ALL.
constexpr std::string_view kDiscardAllStandIn[] = {
    "CLOSE ALL",         "SET SESSION AUTHORIZATION DEFAULT",          "RESET ALL",
    "UNLISTEN *",        "SELECT pg_catalog.pg_advisory_unlock_all()", "DISCARD TEMP",
    "DISCARD SEQUENCES",
};

std::string CloseStatement(std::string_view name) {
  Writer w;
  return w.Begin('C').U8('S').CString(name).Take();
}

}  // namespace

void ServerCodec::NoteStatementMessage(const StatementNote& note) {
  if (note.kind == StatementNote::kSync) {
    ++tick_;
    if (!note.key.empty()) {
      std::optional<SqlOps> ops = DecodeSqlOps(note.key);
      if (!ops.has_value()) {
        notes_.push_back({StatementNote::kSync, note.forward, ""});
        return;
      }
      if (ops->intercepted) {
        ops = SendStandIn(*ops);
      }
      sql_requests_.push_back({std::move(*ops), 0});
    }
  } else if (note.kind == StatementNote::kClose && !note.forward && !note.key.empty() &&
             login_.max_prepared_statements > 0 && !PlaceholderOfKey(note.key)) {
    // The first half of a Close + Parse of the key: room is made before it.
    EvictFor(note.key);
  }
  notes_.push_back(note);
}

void ServerCodec::EvictFor(const std::string& key) {
  size_t held = prepared_.size() + (prepared_.contains(key) ? 0 : 1);
  while (held > login_.max_prepared_statements) {
    // The least recently used key, but none the request under way has used: it may still Bind it.
    auto victim = prepared_.end();
    for (auto it = prepared_.begin(); it != prepared_.end(); ++it) {
      if (it->first != key && it->second != tick_ &&
          (victim == prepared_.end() || it->second < victim->second ||
           (it->second == victim->second && it->first < victim->first))) {
        victim = it;
      }
    }
    if (victim == prepared_.end()) {
      return;
    }
    // Forgotten now, so that a later message of the request prepares it again (Close + Parse,
    // right whether or not this Close runs).
    std::string name = Cat("wp_", victim->first);
    notes_.push_back({StatementNote::kClose, false, victim->first});
    prepared_.erase(victim);
    --held;
    sink_.SendToServer(CloseStatement(name));
  }
}

ServerCodec::SqlRequest* ServerCodec::CurrentSqlRequest() {
  for (const StatementNote& note : notes_) {
    if (note.kind == StatementNote::kSync) {
      return note.key.empty() ? nullptr : &sql_requests_.front();
    }
  }
  return nullptr;
}

void ServerCodec::FinishSqlRequest() {
  if (sql_requests_.empty()) {
    return;
  }
  SqlRequest request = std::move(sql_requests_.front());
  sql_requests_.pop_front();
  // PREPARE and DEALLOCATE are not transactional: what ran stands even if it rolls back.
  size_t ran = std::min(request.completed, request.ops.ops.size());
  for (size_t i = 0; i < ran; ++i) {
    ApplySqlOp(request.ops.ops[i]);
  }
}

void ServerCodec::ApplySqlOp(const SqlOp& op) {
  switch (op.kind) {
    case SqlOp::kPrepare:
      sql_statements_[op.name] = op.text;
      ReportSqlStatement(op.name, op.text);
      break;
    case SqlOp::kDeallocate:
      if (sql_statements_.erase(op.name) > 0) {
        ReportSqlStatement(op.name, "");
      }
      break;
    case SqlOp::kDeallocateAll:
    case SqlOp::kDiscardAll:
      ForgetSqlStatements();
      break;
    case SqlOp::kOther:
      break;
  }
}

void ServerCodec::ForgetSqlStatements() {
  std::vector<std::string> names;
  for (const auto& [name, text] : sql_statements_) {
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  sql_statements_.clear();
  for (const std::string& name : names) {
    ReportSqlStatement(name, "");
  }
}

void ServerCodec::ReportSqlStatement(std::string_view name, std::string_view text) {
  if (text == kPlaceholderText) {
    return;  // not the client's
  }
  sink_.OnParameterStatus(SqlStatementParam(name), text);
}

SqlOps ServerCodec::SendStandIn(const SqlOps& ops) {
  SqlOps out;
  out.intercepted = true;
  std::string sql;
  if (!ops.ops.empty() && ops.ops[0].kind == SqlOp::kDiscardAll) {
    for (std::string_view statement : kDiscardAllStandIn) {
      sql += Cat(statement, "; ");
      out.ops.push_back({});
    }
  }
  std::vector<std::string> names;
  for (const auto& [name, text] : sql_statements_) {
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    sql += Cat("DEALLOCATE ", QuoteIdent(name), "; ");
    out.ops.push_back({SqlOp::kDeallocate, name, ""});
  }
  // Nothing to do at all (DEALLOCATE ALL with no SQL-level statement): an empty query.
  sink_.SendToServer(QueryMessage(sql));
  return out;
}

bool ServerCodec::ApplySqlStatements(const ParamList& wanted) {
  // Nothing to look at for a client that has no SQL-level statement on a server that has none.
  std::map<std::string, std::string> want;
  for (const auto& [param, text] : wanted) {
    if (auto name = SqlStatementOfParam(param); name.has_value() && !text.empty()) {
      want[std::string(*name)] = text;
    }
  }
  if (want.empty() && sql_statements_.empty()) {
    return false;
  }
  std::vector<std::string> drop;
  for (const auto& [name, text] : sql_statements_) {
    auto it = want.find(name);
    if (it == want.end() || it->second != text) {
      drop.push_back(name);
    }
  }
  std::vector<std::pair<std::string, std::string>> add;
  for (const auto& [name, text] : want) {
    auto it = sql_statements_.find(name);
    if (it == sql_statements_.end() || it->second != text) {
      add.emplace_back(std::string(name), std::string(text));
    }
  }
  std::sort(drop.begin(), drop.end());
  std::sort(add.begin(), add.end());
  // One request each, so that one that fails leaves the others be (FinishInternal).
  for (std::string& name : drop) {
    std::string sql = Cat("DEALLOCATE ", QuoteIdent(name));
    SendInternal(sql, Internal{Internal::kDeallocate, std::move(name), ""});
  }
  for (auto& [name, text] : add) {
    std::string sql = text;
    SendInternal(sql, Internal{Internal::kPrepare, std::move(name), std::move(text)});
  }
  return !drop.empty() || !add.empty();
}

}  // namespace wirepool::codec::postgres
