#pragma once

// What the SQL text of a MySQL/MariaDB COM_QUERY (or COM_STMT_PREPARE) does to its session, for
// transaction pooling: the pins it sets or clears and the session variables it may change
// (codecs/api/session.h). Reads untrusted client bytes; never reads outside them.
//
// Every query pays for this, so ordinary statements are cleared by a byte scan (the prefilter)
// without tokenizing: the first word is one of a fixed list of statements that touch no session
// state (SELECT, INSERT, UPDATE, DELETE, BEGIN [WORK], COMMIT, SHOW, CREATE without "temporary",
// ...) and the text holds no '@', "get_lock", "release_all_locks", "sql_calc_found_rows",
// executable comment ("/*!", "/*M!") nor a ';' before its last non-space byte. Anything else is
// lexed (codecs/mysql/sql_scan.h) and its statements classified one by one and merged in order:
//
//   SET [SESSION | LOCAL] name = v, @@[session. | local.]name = v  read_back name (lower case)
//   SET GLOBAL | PERSIST | PERSIST_ONLY ..., @@global.name = v     nothing
//   SET NAMES ..., SET CHARACTER SET | CHARSET ...                 read_back the character_set_*
//                                                                  and collation_connection
//   SET SESSION TRANSACTION ISOLATION LEVEL ... | READ ...         read_back tx_isolation and
//                                                                  transaction_isolation |
//                                                                  tx_read_only and
//                                                                  transaction_read_only
//   SET TRANSACTION ... (next transaction only), SET ROLE          kUnclassified
//   SET PASSWORD, SET DEFAULT ROLE                                 nothing
//   SET STATEMENT ... FOR stmt                                     what stmt does
//   @u := ..., INTO @u, SET @u = ..., CALL p(@u), LOAD DATA (@u),  kUserVariable
//   GET DIAGNOSTICS @u = ...
//   CREATE [OR REPLACE] TEMPORARY ...                              kTempTable
//   GET_LOCK(                                                      kAdvisoryLock
//   RELEASE_ALL_LOCKS(                                             unpins kAdvisoryLock
//   LOCK TABLE(S) | INSTANCE, FLUSH ... READ LOCK | FOR EXPORT,    kTableLock
//   BACKUP STAGE | LOCK (MariaDB)
//   UNLOCK TABLE(S) | INSTANCE, BACKUP STAGE END, BACKUP UNLOCK    unpins kTableLock
//   SQL_CALC_FOUND_ROWS                                            kFoundRows
//   PREPARE (the client codec replays some: sql_statements.h),      kUnclassified
//   EXECUTE IMMEDIATE, HANDLER ... OPEN, XA, INSTALL,
//   LOAD (but LOAD DATA | XML), BEGIN NOT ATOMIC (compound)
//   USE, DROP [TEMPORARY], EXECUTE, DEALLOCATE | DROP PREPARE,     nothing
//   other neutral statements (the prefilter's list, GRANT, ...)
//   any other statement, text the lexer cannot read (or of more    kUnclassified
//   than 65536 tokens), a malformed SET
//
// Text inside executable comments that a server of another version or flavour skips counts both
// ways: pins and read_back of either reading, unpins only if both readings clear them. Procedure
// bodies (CALL) and stored functions are not looked into. `statement` is the first pinning
// statement, whitespace collapsed, at most 200 bytes.

#include <string_view>

#include "codecs/api/session.h"
#include "codecs/mysql/sql_scan.h"

namespace wirepool::codec::mysql {

// What the statements of `sql` do to the session, read with the session's sql_mode (the caller
// knows NO_BACKSLASH_ESCAPES from the server status flags, ANSI_QUOTES from the sql_mode read
// back).
RequestEffects ClassifySql(std::string_view sql, sql::SqlMode mode = {});

// Whether the prefilter alone clears `sql` (ClassifySql then returns no effects). For tests.
bool PrefilterClears(std::string_view sql);

// ClassifySql without the prefilter: the lexer's reading of every text. For tests, which check
// that the prefilter clears nothing this would not.
RequestEffects ClassifySqlUnfiltered(std::string_view sql, sql::SqlMode mode = {});

}  // namespace wirepool::codec::mysql
