#pragma once

// Transaction pooling: what passes between the two PostgreSQL codecs about prepared statements
// beyond the protocol-level renaming of client_statements.cc, all of it carried in the existing
// StatementNote / HasStatement / ParamList channels (codecs/api/codec.h), in words only these two
// codecs read.
//
// SQL-level statements (PREPARE / EXECUTE / DEALLOCATE) keep their names on the server, where
// the names of every client that used a server live in one namespace. So a server holds exactly
// the SQL-level statements of the client it serves: the client's are part of its replayed session
// state. The client codec classifies each simple Query and tells the server codec, in the Query's
// kSync note, what each of its statements does to them (SqlOps). The server codec counts the
// CommandCompletes of that Query to know which statements ran (PREPARE and DEALLOCATE are not
// transactional: what ran stands, even if the transaction rolls back) and reports each change as
// a session parameter (SqlStatementParam) whose value is the PREPARE statement's text, empty once
// it is gone. The proxy records it with the client's other parameters, and hands it back to
// ServerCodec::ApplyParameters on the client's next server, which then deallocates what that
// server holds of other clients and prepares what the client is missing.
//
// A client's DISCARD ALL / DEALLOCATE ALL, sent alone while its server has nothing outstanding
// outside a transaction block (ServerCodec::Quiet), is not sent as such: the server codec
// sends what touches only this client's part of the session (SqlOps::intercepted), and the client
// codec answers with the command's own CommandComplete.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wirepool::codec::postgres {

// What one top-level statement of a simple Query does to the session's SQL-level statements.
struct SqlOp {
  enum Kind : char {
    kOther = '-',          // nothing
    kPrepare = 'P',        // PREPARE name ...; `text` is the statement's own text
    kDeallocate = 'D',     // DEALLOCATE [PREPARE] name
    kDeallocateAll = 'A',  // DEALLOCATE [PREPARE] ALL
    kDiscardAll = 'X',     // DISCARD ALL
  };
  Kind kind = kOther;
  std::string name;
  std::string text;

  bool operator==(const SqlOp&) const = default;
};

// The ops of one Query, one per top-level statement in order (trailing kOther ones left out).
// `intercepted`: the client codec kept the Query (a lone DISCARD ALL / DEALLOCATE ALL) and the
// server codec sends what stands for it.
struct SqlOps {
  bool intercepted = false;
  std::vector<SqlOp> ops;

  bool operator==(const SqlOps&) const = default;
};

// SqlOps in the key of a kSync StatementNote, and back. Names and texts hold no NUL byte (the
// server reads a Query's text only up to its first one).
std::string EncodeSqlOps(const SqlOps& ops);
std::optional<SqlOps> DecodeSqlOps(std::string_view key);

// The name under which a client's SQL-level statement `name` is kept among its session parameters;
// its value is the PREPARE statement's text, or empty when the statement is gone. No server
// parameter is named like this.
std::string SqlStatementParam(std::string_view name);
// The statement name in such a parameter name, or nullopt for a real parameter.
std::optional<std::string_view> SqlStatementOfParam(std::string_view param);

// A client's Parse that reuses one of its statement names gets PostgreSQL's own 42P05 from the
// server: a placeholder statement of that name is prepared first (its ParseComplete dropped), so
// that the client's Parse fails as it would have. The placeholder's note carries this key; the
// server codec then counts the placeholder among its SQL-level names, which go on the next attach.
std::string PlaceholderKey(std::string_view name);
std::optional<std::string_view> PlaceholderOfKey(std::string_view key);
// What the placeholder is prepared as (the Parse after its name), and the text it is filed under.
std::string PlaceholderParseBody();
inline constexpr std::string_view kPlaceholderText = "\x01placeholder";

}  // namespace wirepool::codec::postgres
