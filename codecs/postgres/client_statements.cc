// Transaction pooling: a client's protocol-level named prepared statements. A client's Parse of
// statement S is sent as Close + Parse of "wp_<key>", where the key is derived from the query
// text and parameter types, so that any server can hold it under that name and clients of a pool
// share it. A Bind or a Describe of S goes to "wp_<key>", preceded by the Parse (its
// ParseComplete dropped) when the current server lacks it. A Close of S forgets S and closes a
// name no server has, so that the client still gets its CloseComplete in order. The server codec
// is told of every Parse, Close and Sync (StatementNote) so that it knows which answers the
// client must see and which statements its server holds.

#include <algorithm>
#include <optional>
#include <string>

#include "codecs/postgres/client_codec.h"
#include "codecs/postgres/sql_statements.h"
#include "codecs/postgres/wire.h"
#include "core/crypto.h"
#include "core/strings.h"

namespace wirepool::codec::postgres {
namespace {

constexpr size_t kKeyHexDigits = 32;
// Closed in place of a statement the client forgets: it exists on no server, and closing it is
// answered with CloseComplete all the same.
constexpr std::string_view kNoStatement = "wp_none";

std::string_view AsChars(ByteView v) {
  return std::string_view(reinterpret_cast<const char*>(v.data()), v.size());
}

std::string KeyOf(std::string_view body) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string digest = crypto::Sha256(body);
  std::string key;
  for (size_t i = 0; key.size() < kKeyHexDigits; ++i) {
    key.push_back(kHex[static_cast<unsigned char>(digest[i]) >> 4]);
    key.push_back(kHex[static_cast<unsigned char>(digest[i]) & 0xf]);
  }
  return key;
}

std::string ServerName(std::string_view key) { return Cat("wp_", key); }

std::string ParseMessage(std::string_view name, std::string_view body) {
  Writer w;
  return w.Begin('P').CString(name).Bytes(body).Take();
}

std::string CloseMessage(std::string_view name) {
  Writer w;
  return w.Begin('C').U8('S').CString(name).Take();
}

// The note of a Sync (or a Query) that does nothing to SQL-level statements, which is nearly
// every one: built once instead of two strings per request.
const StatementNote& PlainSync() {
  static const StatementNote note{StatementNote::kSync, true, ""};
  return note;
}

}  // namespace

std::optional<Step> ClientCodec::OnStatementMessage(uint8_t type, ByteView in, size_t total) {
  switch (type) {
    case 'Q':
      // What the Query does to SQL-level statements rides with its Sync (sql_statements.h).
      if (query_ops_.ops.empty()) {
        sink_.OnStatementMessage(PlainSync());
      } else {
        sink_.OnStatementMessage({StatementNote::kSync, true, EncodeSqlOps(query_ops_)});
      }
      query_ops_ = {};
      return std::nullopt;
    case 'S':
    case 'F':
      sink_.OnStatementMessage(PlainSync());
      return std::nullopt;
    case 'P':
    case 'D':
    case 'C':
      if (total > kMaxClassifiedMessage) {
        // Too large to read (Classify pinned the client): it passes as the client wrote it.
        if (type != 'D') {
          sink_.OnStatementMessage(
              {type == 'P' ? StatementNote::kPrepare : StatementNote::kClose, true, ""});
        }
        return std::nullopt;
      }
      if (in.size() < total) {
        return Step{Verdict::kNeedMore, total};
      }
      return type == 'P' ? OnParse(in.first(total)) : OnDescribeOrClose(type, in.first(total));
    case 'B':
      return OnBind(in, total);
    default:
      return std::nullopt;
  }
}

Step ClientCodec::OnParse(ByteView message) {
  mid_request_ = true;
  Reader r(message.subspan(kHeaderLen));
  auto name = r.CString();
  if (!name || name->empty()) {
    sink_.OnStatementMessage({StatementNote::kPrepare, true, ""});
    return {Verdict::kForward, message.size()};
  }
  std::string body(r.Rest());
  const Statement* existing = FindStatement(Av(*name));
  if (existing != nullptr && sink_.ServerHasStatement(existing->key)) {
    // The name is taken: PostgreSQL says 42P05 and skips to the Sync, and so does the server once
    // a placeholder holds the name (the client's statement stays as it was). Where the server
    // lacks the statement, the client's Parse of it may have failed, which would leave the name
    // free: the new one replaces it then.
    sink_.OnStatementMessage({StatementNote::kPrepare, false, PlaceholderKey(*name)});
    sink_.OnStatementMessage({StatementNote::kPrepare, true, ""});
    sink_.SendToServer(ParseMessage(*name, PlaceholderParseBody()) + ParseMessage(*name, body));
    return {Verdict::kConsume, message.size()};
  }
  std::string key = KeyOf(body);
  std::string server_name = ServerName(key);
  // The server may have it from another client: closing first makes the Parse succeed either way
  // (closing a statement that does not exist is not an error) and the client gets its own
  // ParseComplete, or its own error if the text does not parse.
  sink_.OnStatementMessage({StatementNote::kClose, false, key});
  sink_.OnStatementMessage({StatementNote::kPrepare, true, key});
  sink_.SendToServer(CloseMessage(server_name) + ParseMessage(server_name, body));
  statements()[std::string(*name)] = Statement{std::move(key), std::move(body)};
  return {Verdict::kConsume, message.size()};
}

ClientCodec::Statements& ClientCodec::statements() {
  if (statements_ == nullptr) {
    statements_ = std::make_unique<Statements>();
  }
  return *statements_;
}

const ClientCodec::Statement* ClientCodec::FindStatement(absl::string_view name) const {
  if (statements_ == nullptr) {
    return nullptr;
  }
  auto it = statements_->find(name);
  return it != statements_->end() ? &it->second : nullptr;
}

void ClientCodec::EnsurePrepared(const std::string& key) {
  if (sink_.ServerHasStatement(key)) {
    return;
  }
  if (statements_ == nullptr) {
    return;
  }
  for (const auto& [name, statement] : *statements_) {
    if (statement.key == key) {
      // Closing first makes the Parse right whether or not an earlier, unanswered Parse of it
      // went through.
      sink_.OnStatementMessage({StatementNote::kClose, false, key});
      sink_.OnStatementMessage({StatementNote::kPrepare, false, key});
      sink_.SendToServer(CloseMessage(ServerName(key)) +
                         ParseMessage(ServerName(key), statement.body));
      return;
    }
  }
}

Step ClientCodec::OnBind(ByteView in, size_t total) {
  // Only the portal and statement names are read; parameter values (which may be large) pass on
  // as they arrive.
  size_t limit = std::min(total, in.size());
  size_t portal_end = kHeaderLen;
  while (portal_end < limit && in[portal_end] != 0) {
    ++portal_end;
  }
  size_t name_end = portal_end + 1;
  while (name_end < limit && in[name_end] != 0) {
    ++name_end;
  }
  if (name_end >= limit) {
    if (limit == total || in.size() >= kMaxClassifiedMessage) {
      return Violation("malformed Bind message");
    }
    return {Verdict::kNeedMore, std::min({total, in.size() + 4096, kMaxClassifiedMessage})};
  }
  mid_request_ = true;
  std::string_view name = AsChars(in.subspan(portal_end + 1, name_end - portal_end - 1));
  const Statement* statement = name.empty() ? nullptr : FindStatement(Av(name));
  if (statement == nullptr) {
    forward_left_ = total - limit;
    return {Verdict::kForward, limit};
  }
  const std::string key = statement->key;
  EnsurePrepared(key);
  std::string server_name = ServerName(key);
  std::string_view portal = AsChars(in.subspan(kHeaderLen, portal_end - kHeaderLen));
  size_t rest = total - (name_end + 1);
  uint32_t length = static_cast<uint32_t>(4 + portal.size() + 1 + server_name.size() + 1 + rest);
  Writer header;
  std::string head = header.Begin('B').CString(portal).CString(server_name).Take();
  // Take() measured only the names; the length covers the parameter part that follows too.
  head[1] = static_cast<char>(length >> 24);
  head[2] = static_cast<char>(length >> 16);
  head[3] = static_cast<char>(length >> 8);
  head[4] = static_cast<char>(length);
  sink_.SendToServer(head);
  forward_left_ = rest;
  return {Verdict::kConsume, name_end + 1};
}

Step ClientCodec::OnDescribeOrClose(uint8_t type, ByteView message) {
  mid_request_ = true;
  Reader r(message.subspan(kHeaderLen));
  auto kind = r.U8();
  auto name = kind ? r.CString() : std::nullopt;
  bool named_statement =
      kind && name && *kind == 'S' && !name->empty() && FindStatement(Av(*name)) != nullptr;
  if (type == 'C') {
    if (!named_statement) {
      sink_.OnStatementMessage({StatementNote::kClose, true, ""});
      return {Verdict::kForward, message.size()};
    }
    // Other clients may still use the server's copy: only this client forgets it.
    statements_->erase(std::string(*name));
    sink_.OnStatementMessage({StatementNote::kClose, true, ""});
    sink_.SendToServer(CloseMessage(kNoStatement));
    return {Verdict::kConsume, message.size()};
  }
  if (!named_statement) {
    return {Verdict::kForward, message.size()};
  }
  const std::string key = FindStatement(Av(*name))->key;
  EnsurePrepared(key);
  Writer w;
  sink_.SendToServer(w.Begin('D').U8('S').CString(ServerName(key)).Take());
  return {Verdict::kConsume, message.size()};
}

}  // namespace wirepool::codec::postgres
