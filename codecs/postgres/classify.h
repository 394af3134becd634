#pragma once

// Transaction pooling: what the SQL text of a PostgreSQL simple Query or Parse message does to the
// session (codecs/api/session.h). Runs on every query of every client, so ordinary statements are
// cleared by a cheap byte scan (the prefilter); only text the prefilter cannot clear goes through
// PostgreSQL's own grammar (libpg_query) and a walk of the parse tree.
//
// The text is untrusted client bytes: nothing here reads outside it, and anything the parser
// rejects pins the client (kUnclassified), since a server of another version may accept it.
// Effects are those of the statements' own text: what a function, a rule, a trigger or a prepared
// statement does when it runs later is not seen: a PREPARE whose query does anything to the session
// pins kUnclassified for that reason.

#include <string_view>
#include <vector>

#include "codecs/api/session.h"
#include "codecs/postgres/sql_statements.h"

namespace wirepool::codec::postgres {

// What the statements of `sql` do to the session. Empty effects, without calling the parser, when
// the prefilter clears the text. Several statements merge in order (RequestEffects::Merge). As the
// server reads a message's text only up to its first NUL byte, so does the parser here.
//
// SQL-level prepared statements: with `ops` (a simple Query in transaction pooling), what each
// statement does to them is appended there, one SqlOp per top-level statement up to the last one
// that does anything (sql_statements.h). Without it (a Parse, which can run the text any number
// of times), PREPARE and DEALLOCATE of a name pin kUnclassified. DISCARD ALL / DEALLOCATE ALL need
// neither: the server codec sees their CommandComplete.
RequestEffects ClassifySql(std::string_view sql, std::vector<SqlOp>* ops = nullptr);

// For tests and the log: whether the prefilter alone cleared `sql`. It clears text whose first
// keyword (after whitespace and comments) is one of SELECT, INSERT, UPDATE, DELETE, MERGE, WITH,
// VALUES, TABLE, BEGIN, START, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE, FETCH, MOVE, COPY,
// EXPLAIN, TRUNCATE, CALL, SHOW, and text holding no keyword at all; and then only when the text
// holds no ';' but as its last non-space byte, no `&"` (a U&"..." identifier may spell any name),
// and none of "advisory", "set_config", "temp", "pg_settings" (any case), nor "into" after SELECT,
// WITH or EXPLAIN (SELECT ... INTO creates a table).
bool PrefilterClears(std::string_view sql);

// For tests and the fuzz target: ClassifySql without the prefilter, i.e. what the parse tree says.
// Text the prefilter clears must classify empty here too (or fail to parse).
RequestEffects ClassifySqlWithParser(std::string_view sql, std::vector<SqlOp>* ops = nullptr);

}  // namespace wirepool::codec::postgres
