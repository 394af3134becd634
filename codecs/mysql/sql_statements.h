#pragma once

// Transaction pooling: SQL-level prepared statements (PREPARE name FROM '...', EXECUTE name,
// DEALLOCATE | DROP PREPARE name). Their names live in the server session, shared by every client
// that used the server, so a server holds exactly the SQL-level statements of the client it
// serves: they are part of the client's replayed session state. The client codec reads each
// query; a PREPARE or DEALLOCATE alone in its query (read alike in every sql_mode, its text a plain
// string literal whose own statement touches no session state) goes to the server codec in a
// StatementNote keyed SqlNoteKey(name). When the server says OK, the server codec reports the
// change as a session parameter SqlStatementParam(name) whose value is the PREPARE query itself,
// empty once the statement is gone; the proxy records it with the client's other parameters and
// hands it back to ServerCodec::ApplyParameters on the client's next server, which deallocates
// what that server holds of other clients and runs the client's PREPAREs again. Any other PREPARE
// pins the client (unclassified), as before.

#include <optional>
#include <string>
#include <string_view>

namespace wirepool::codec::mysql {

struct SqlStatementOp {
  enum Kind { kNone, kPrepare, kDeallocate };
  Kind kind = kNone;
  std::string name;   // lower case, unquoted (statement names are case-insensitive)
  std::string inner;  // kPrepare: the prepared statement's text

  bool operator==(const SqlStatementOp&) const = default;
};

// The SQL-level statement command `sql` is, when it is one alone and every sql_mode reading
// agrees; kNone otherwise.
SqlStatementOp ReadSqlStatementOp(std::string_view sql);

// The key of the StatementNote that announces one (kPrepare with the query as its data, kClose for
// a DEALLOCATE), and back.
std::string SqlNoteKey(std::string_view name);
std::optional<std::string_view> SqlNameOfNoteKey(std::string_view key);

// The session parameter under which a client's statement `name` is kept, and back. No server
// variable is named like this.
std::string SqlStatementParam(std::string_view name);
std::optional<std::string_view> SqlStatementOfParam(std::string_view param);

// `name` as a backtick-quoted identifier.
std::string QuoteIdentifier(std::string_view name);

}  // namespace wirepool::codec::mysql
