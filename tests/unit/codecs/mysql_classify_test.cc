// mysql::ClassifySql: what the SQL text of a query does to its session (pins, unpins, variables to
// read back). Every text classified here is also checked against the prefilter: when the byte
// scan clears a text the lexer can read, the lexer's own classification must find nothing.

#include "codecs/mysql/classify.h"

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/session.h"
#include "codecs/mysql/sql_scan.h"
#include "gtest/gtest.h"

namespace wirepool::codec::mysql {
namespace {

using Strings = std::vector<std::string>;

constexpr PinSet kNone = 0;
constexpr PinSet kTemp = PinBit(PinReason::kTempTable);
constexpr PinSet kAdvisory = PinBit(PinReason::kAdvisoryLock);
constexpr PinSet kTableLock = PinBit(PinReason::kTableLock);
constexpr PinSet kUserVar = PinBit(PinReason::kUserVariable);
constexpr PinSet kFoundRows = PinBit(PinReason::kFoundRows);
constexpr PinSet kUnclassified = PinBit(PinReason::kUnclassified);

const Strings kNames = {"character_set_client", "character_set_connection", "character_set_results",
                        "collation_connection"};
const Strings kIsolation = {"tx_isolation", "transaction_isolation"};
const Strings kReadOnly = {"tx_read_only", "transaction_read_only"};

// The prefilter clears nothing the lexer's reading gives effects to.
void CheckPrefilter(std::string_view sql, sql::SqlMode mode = {}) {
  if (PrefilterClears(sql) && sql::Tokenize(sql, size_t{1} << 16, mode).has_value()) {
    RequestEffects lexed = ClassifySqlUnfiltered(sql, mode);
    EXPECT_TRUE(lexed.empty()) << "the prefilter cleared a text with effects: " << sql;
  }
}

RequestEffects Classify(std::string_view sql, sql::SqlMode mode = {}) {
  CheckPrefilter(sql, mode);
  return ClassifySql(sql, mode);
}

void ExpectEffects(std::string_view sql, PinSet pins, PinSet unpins = kNone,
                   const Strings& read_back = {}, sql::SqlMode mode = {}) {
  SCOPED_TRACE(sql);
  RequestEffects e = Classify(sql, mode);
  EXPECT_EQ(e.pins, pins);
  EXPECT_EQ(e.unpins, unpins);
  EXPECT_EQ(e.read_back, read_back);
  EXPECT_FALSE(e.reset_params);
  EXPECT_EQ(e.statement.empty(), pins == 0);
}

void ExpectNothing(std::string_view sql, sql::SqlMode mode = {}) {
  ExpectEffects(sql, kNone, kNone, {}, mode);
}
void ExpectPin(std::string_view sql, PinSet pins) { ExpectEffects(sql, pins); }
void ExpectReadBack(std::string_view sql, const Strings& read_back) {
  ExpectEffects(sql, kNone, kNone, read_back);
}

Strings Concat(const Strings& a, const Strings& b) {
  Strings out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// ---- prefilter ---------------------------------------------------------------------------------

TEST(MysqlClassify, SysbenchIsClearedByThePrefilter) {
  for (std::string_view sql : {
           "SELECT c FROM sbtest1 WHERE id=5021",
           "SELECT c FROM sbtest1 WHERE id BETWEEN 4960 AND 5059",
           "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN 4960 AND 5059",
           "SELECT c FROM sbtest1 WHERE id BETWEEN 4960 AND 5059 ORDER BY c",
           "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN 4960 AND 5059 ORDER BY c",
           "UPDATE sbtest1 SET k=k+1 WHERE id=5021",
           "UPDATE sbtest1 SET c='39186442963-50213578223-75279826425-89357183437' WHERE id=4999",
           "DELETE FROM sbtest1 WHERE id=5021",
           "INSERT INTO sbtest1 (id, k, c, pad) VALUES (5021, 4993, "
           "'68487932199-96439406143-93774651418-41631865787-96406072701-20604855487', "
           "'22195207048-70116052123-74140395089-76317954521-98694025897')",
           "BEGIN",
           "COMMIT",
           "SELECT c FROM sbtest1 WHERE id=?",
           "UPDATE sbtest1 SET k=k+1 WHERE id=?",
           "INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)",
       }) {
    EXPECT_TRUE(PrefilterClears(sql)) << sql;
    ExpectNothing(sql);
  }
}

TEST(MysqlClassify, PrefilterClearsOrdinaryStatements) {
  for (std::string_view sql : {
           "select 1",
           "Select 1;",
           "SELECT 1 ;  \n",
           "SELECT(1)",
           "SELECT`a`FROM t",
           "  \t\nINSERT INTO t VALUES (1)",
           "REPLACE INTO t VALUES (1)",
           "START TRANSACTION READ ONLY",
           "BEGIN WORK",
           "begin;",
           "BEGIN WORK ;",
           "ROLLBACK TO SAVEPOINT a",
           "SAVEPOINT a",
           "RELEASE SAVEPOINT a",
           "WITH x AS (SELECT 1) SELECT * FROM x",
           "VALUES ROW(1)",
           "TABLE t",
           "SHOW TABLES",
           "DESCRIBE t",
           "DESC t",
           "EXPLAIN SELECT 1",
           "CALL p(1, 'x')",
           "DO SLEEP(1)",
           "TRUNCATE t",
           "CREATE TABLE t (a INT)",
           "ALTER TABLE t ADD b INT",
           "DROP TABLE t",
           "DROP TEMPORARY TABLE t",
           "USE db",
           "GRANT SELECT ON db.* TO bob",
           "KILL 5",
           "/* c */ SELECT 1",
           "/*+ hint */ SELECT 1",
           "-- c\nSELECT 1",
           "--\tc\nSELECT 1",
           "# c\nSELECT 1",
           "#\n/* a */ -- b\nSELECT 1",
           "/**/SELECT 1",
           "SELECT 'x' -- get lock",
           "SELECT \" \" FROM t",
       }) {
    EXPECT_TRUE(PrefilterClears(sql)) << sql;
    ExpectNothing(sql);
  }
}

TEST(MysqlClassify, PrefilterSendsOthersToTheLexer) {
  for (std::string_view sql : {
           "",
           "   ",
           "/* only a comment */",
           "-- only\n",
           ";",
           "(SELECT 1)",
           "SET a = 1",
           "set autocommit=0",
           "SELECT 1; SELECT 2",
           "SELECT 1;;",
           "SELECT ';' x",
           "SELECT @a",
           "SELECT 'a@b.c'",
           "SELECT GET_LOCK('a', 1)",
           "select Get_Lock('a', 1)",
           "SELECT release_all_locks()",
           "SELECT SQL_CALC_FOUND_ROWS * FROM t",
           "/*!40101 SET NAMES utf8 */",
           "/*! SELECT 1 */",
           "SELECT /*!40001 SQL_NO_CACHE */ 1",
           "SELECT /*M! 1 */ 2",
           "SELECT /*m! 1 */ 2",
           "CREATE TEMPORARY TABLE t (a INT)",
           "CREATE TABLE temporary_things (a INT)",
           "BEGIN NOT ATOMIC END",
           "BEGIN WORKS",
           "SELECTX 1",
           "SELECT_1",
           "1SELECT",
           "LOCK TABLES t READ",
           "UNLOCK TABLES",
           "FLUSH TABLES",
           "PREPARE s FROM 'SELECT 1'",
           "EXECUTE s",
           "XA START 'x'",
           "HANDLER t OPEN",
           "LOAD DATA INFILE 'f' INTO TABLE t",
           "/* unterminated SELECT 1",
           "--x\nSELECT 1",
           "-SELECT 1",
           "RELEASE_ALL_LOCKS()",
           "GET_LOCK",
           "DO get_lock('a', 1)",
       }) {
    EXPECT_FALSE(PrefilterClears(sql)) << sql;
    CheckPrefilter(sql);
  }
  // A NUL byte in the text (the lexer reads it as punctuation).
  EXPECT_FALSE(PrefilterClears(std::string_view("\0SELECT 1", 9)));
  EXPECT_FALSE(PrefilterClears(std::string_view("-- c\0SELECT 1", 13)));
  CheckPrefilter(std::string_view("-- c\0SELECT 1", 13));
  EXPECT_TRUE(PrefilterClears(std::string_view("SELECT 1\0", 9)));
  CheckPrefilter(std::string_view("SELECT 1\0", 9));
}

// Seeded random texts from fragments that touch every rule: whatever the prefilter clears, the
// lexer (in every sql_mode) gives no effects.
TEST(MysqlClassify, PrefilterAgreesWithTheLexerOnRandomTexts) {
  const std::vector<std::string_view> fragments = {"SELECT",
                                                   "select",
                                                   "INSERT",
                                                   "BEGIN",
                                                   "WORK",
                                                   "NOT",
                                                   "ATOMIC",
                                                   "CREATE",
                                                   "TEMPORARY",
                                                   "TABLE",
                                                   "CALL",
                                                   "GET",
                                                   "DIAGNOSTICS",
                                                   "SET",
                                                   "LOCK",
                                                   "UNLOCK",
                                                   "TABLES",
                                                   "INTO",
                                                   "@x",
                                                   "@@session.sql_mode",
                                                   ":=",
                                                   "=",
                                                   ",",
                                                   ";",
                                                   "(",
                                                   ")",
                                                   "'",
                                                   "\"",
                                                   "`",
                                                   "\\",
                                                   "GET_LOCK",
                                                   "RELEASE_ALL_LOCKS",
                                                   "SQL_CALC_FOUND_ROWS",
                                                   "/*",
                                                   "*/",
                                                   "/*!",
                                                   "/*!50700",
                                                   "/*M!",
                                                   "--",
                                                   "-- ",
                                                   "#",
                                                   "\n",
                                                   " ",
                                                   "\t",
                                                   "1",
                                                   "t",
                                                   "x",
                                                   "OR",
                                                   "REPLACE",
                                                   "PREPARE",
                                                   "FOR",
                                                   "DO",
                                                   "'a@b'",
                                                   "`get_lock`",
                                                   "NAMES"};
  std::mt19937 rng(20240607);
  const sql::SqlMode modes[] = {{}, {.no_backslash_escapes = true}, {.ansi_quotes = true}};
  int cleared = 0;
  for (int n = 0; n < 20000; ++n) {
    std::string sql;
    const size_t parts = 1 + rng() % 8;
    for (size_t p = 0; p < parts; ++p) {
      sql += fragments[rng() % fragments.size()];
      if (rng() % 2 == 0) {
        sql += ' ';
      }
    }
    cleared += PrefilterClears(sql) ? 1 : 0;
    for (const sql::SqlMode& mode : modes) {
      CheckPrefilter(sql, mode);
      RequestEffects e = ClassifySql(sql, mode);
      EXPECT_EQ(e.pins & ~((PinSet{1} << kPinReasonCount) - 1), 0u) << sql;
    }
  }
  EXPECT_GT(cleared, 500);  // the property was exercised
}

// ---- SET ---------------------------------------------------------------------------------------

TEST(MysqlClassify, SetSessionVariables) {
  ExpectReadBack("SET sql_mode = 'ANSI'", {"sql_mode"});
  ExpectReadBack("set SQL_MODE='ANSI'", {"sql_mode"});
  ExpectReadBack("SET SESSION sql_mode = ''", {"sql_mode"});
  ExpectReadBack("SET Local time_zone = '+00:00'", {"time_zone"});
  ExpectReadBack("SET @@session.sql_mode = ''", {"sql_mode"});
  ExpectReadBack("SET @@SESSION.SQL_MODE = ''", {"sql_mode"});
  ExpectReadBack("SET @@local.sql_mode = ''", {"sql_mode"});
  ExpectReadBack("SET @@sql_mode = ''", {"sql_mode"});
  ExpectReadBack("SET @@`sql_mode` = ''", {"sql_mode"});
  ExpectReadBack("SET @@session.`sql_mode` = ''", {"sql_mode"});
  ExpectReadBack("SET `sql_mode` = ''", {"sql_mode"});
  ExpectReadBack("SET autocommit := 0", {"autocommit"});
  ExpectReadBack("SET sql_mode = DEFAULT", {"sql_mode"});
  ExpectReadBack("SET validate_password.length = 4", {"validate_password.length"});
  ExpectReadBack("SET a = 1, b = 2, a = 3", {"a", "b"});
  ExpectReadBack("SET sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES'), time_zone = 'UTC'",
                 {"sql_mode", "time_zone"});
  ExpectReadBack("SET sql_mode = (SELECT 'a', 'b'), x = 1", {"sql_mode", "x"});
  ExpectReadBack("SET sql_mode = @old_mode", {"sql_mode"});  // a read of @old_mode
  ExpectReadBack("SET max_execution_time = 10;", {"max_execution_time"});
}

TEST(MysqlClassify, SetGlobalVariables) {
  ExpectNothing("SET GLOBAL max_connections = 100");
  ExpectNothing("set global max_connections = 100");
  ExpectNothing("SET @@global.max_connections = 100");
  ExpectNothing("SET PERSIST max_connections = 100");
  ExpectNothing("SET PERSIST_ONLY max_connections = 100");
  ExpectNothing("SET @@persist.max_connections = 100");
  ExpectNothing("SET @@persist_only.max_connections = 100");
  ExpectNothing("SET GLOBAL TRANSACTION ISOLATION LEVEL READ COMMITTED");
  // The last GLOBAL or SESSION holds for the assignments after it without one of their own.
  ExpectNothing("SET GLOBAL a = 1, b = 2");
  ExpectReadBack("SET GLOBAL a = 1, SESSION b = 2, c = 3", {"b", "c"});
  ExpectReadBack("SET a = 1, GLOBAL b = 2, @@session.c = 3, @@d = 4", {"a", "c", "d"});
  ExpectReadBack("SET @@global.a = 1, b = 2", {"b"});
}

TEST(MysqlClassify, SetNamesAndCharacterSet) {
  ExpectReadBack("SET NAMES utf8mb4", kNames);
  ExpectReadBack("set names 'utf8mb4' COLLATE 'utf8mb4_bin'", kNames);
  ExpectReadBack("SET NAMES DEFAULT", kNames);
  ExpectReadBack("SET CHARACTER SET latin1", kNames);
  ExpectReadBack("SET CHARSET latin1", kNames);
  ExpectReadBack("SET CHAR SET latin1", kNames);
  ExpectReadBack("SET NAMES utf8mb4, sql_mode = ''", Concat(kNames, {"sql_mode"}));
  ExpectReadBack("SET sql_mode = '', NAMES latin1", Concat({"sql_mode"}, kNames));
}

TEST(MysqlClassify, SetTransaction) {
  ExpectReadBack("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", kIsolation);
  ExpectReadBack("set session transaction isolation level serializable", kIsolation);
  ExpectReadBack("SET LOCAL TRANSACTION ISOLATION LEVEL REPEATABLE READ", kIsolation);
  ExpectReadBack("SET SESSION TRANSACTION READ ONLY", kReadOnly);
  ExpectReadBack("SET SESSION TRANSACTION READ WRITE", kReadOnly);
  ExpectReadBack("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED, READ ONLY",
                 Concat(kIsolation, kReadOnly));
  ExpectReadBack("SET @@session.transaction_isolation = 'READ-COMMITTED'",
                 {"transaction_isolation"});
  ExpectReadBack("SET tx_isolation = 'READ-COMMITTED'", {"tx_isolation"});
  // The next transaction only: nothing to read back and replay.
  ExpectPin("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", kUnclassified);
  ExpectPin("SET TRANSACTION READ ONLY", kUnclassified);
  ExpectPin("SET SESSION TRANSACTION", kUnclassified);
  ExpectPin("SET SESSION TRANSACTION WITH CONSISTENT SNAPSHOT", kUnclassified);
}

TEST(MysqlClassify, SetPasswordRoleAndStatement) {
  ExpectNothing("SET PASSWORD = 'secret'");
  ExpectNothing("SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('x')");
  ExpectNothing("SET PASSWORD FOR bob@localhost = 'x'");
  ExpectNothing("SET DEFAULT ROLE admin FOR bob");
  ExpectNothing("SET DEFAULT ROLE ALL TO 'bob'@'%'");
  ExpectPin("SET ROLE admin", kUnclassified);
  ExpectPin("SET ROLE NONE", kUnclassified);
  // MariaDB's SET STATEMENT: the variables hold for the one statement; what it does counts.
  ExpectNothing("SET STATEMENT max_statement_time = 1 FOR SELECT * FROM t");
  ExpectNothing("SET STATEMENT a = (1), b = 'x' FOR UPDATE t SET c = 1");
  ExpectPin("SET STATEMENT sort_buffer_size = 100000 FOR SELECT GET_LOCK('a', 1)", kAdvisory);
  ExpectPin("SET STATEMENT a = 1 FOR LOCK TABLES t READ", kTableLock);
  ExpectReadBack("SET STATEMENT a = 1 FOR SET b = 2", {"b"});
  ExpectReadBack("SET STATEMENT a = 1 FOR SET STATEMENT b = 2 FOR SET c = 3", {"c"});
  ExpectPin("SET STATEMENT a = 1 FOR SET @x = 1", kUserVar);
  ExpectPin("SET STATEMENT a = 1", kUnclassified);
  ExpectPin("SET STATEMENT a = 1 FOR", kUnclassified);
  ExpectPin("SET STATEMENT a = 1 FOR PREPARE s FROM 'x'", kUnclassified);
}

TEST(MysqlClassify, MalformedSetIsUnclassified) {
  for (std::string_view sql :
       {"SET", "SET ;", "SET a", "SET a 1", "SET = 1", "SET SESSION", "SET 'a' = 1", "SET a. = 1",
        "SET `` = 1", "SET @@session. = 1", "SET a.b.", "SET (a) = 1"}) {
    ExpectPin(sql, kUnclassified);
  }
  // What came before the error may still be read back; the pin is what matters.
  ExpectEffects("SET a = 1, b", kUnclassified, kNone, {"a"});
}

// ---- user variables ----------------------------------------------------------------------------

TEST(MysqlClassify, UserVariableAssignments) {
  ExpectPin("SET @x = 1", kUserVar);
  ExpectPin("set @X:=1", kUserVar);
  ExpectPin("SET @'quoted name' = 1", kUserVar);
  ExpectPin("SET @`q` = 1", kUserVar);
  ExpectPin("SET @\"q\" = 1", kUserVar);
  ExpectPin("SET @a.b = 1", kUserVar);
  ExpectEffects("SET @x = 1, sql_mode = ''", kUserVar, kNone, {"sql_mode"});
  ExpectEffects("SET sql_mode = '', @x = @@sql_mode", kUserVar, kNone, {"sql_mode"});
  ExpectPin("SELECT @x := 1", kUserVar);
  ExpectPin("SELECT @x:=id FROM t", kUserVar);
  ExpectPin("SELECT a, @rownum := @rownum + 1 FROM t", kUserVar);
  ExpectPin("SELECT id INTO @x FROM t", kUserVar);
  ExpectPin("SELECT a, b INTO @x, @y FROM t LIMIT 1", kUserVar);
  ExpectPin("SELECT a FROM t LIMIT 1 INTO @x", kUserVar);
  ExpectPin("SELECT a INTO@x FROM t", kUserVar);
  ExpectPin("DO @x := 5", kUserVar);
  ExpectPin("UPDATE t SET a = (@x := a + 1)", kUserVar);
  ExpectPin("SELECT 1 FROM t WHERE (@x := 2) > 1", kUserVar);
  ExpectPin("INSERT INTO t SELECT @n := @n + 1", kUserVar);
}

TEST(MysqlClassify, UserVariableReadsAndLookalikes) {
  ExpectNothing("SELECT @x");
  ExpectNothing("SELECT @x = 1");  // a comparison
  ExpectNothing("SELECT * FROM t WHERE a = @x");
  ExpectNothing("INSERT INTO t VALUES (@x)");
  ExpectNothing("SELECT @@sql_mode, @@session.time_zone");
  ExpectNothing("EXECUTE s USING @a, @b");
  ExpectNothing("SELECT '@x := 1'");
  ExpectNothing("SELECT 'SET @x = 1' INTO OUTFILE '/tmp/x'");
  ExpectNothing("SELECT \"@x := 1\"");
  ExpectNothing("SELECT `@x := 1` FROM t");
  ExpectNothing("SELECT 1 -- @x := 1");
  ExpectNothing("SELECT 1 /* @x := 1 */");
  ExpectNothing("SELECT 'a@b.com'");
  ExpectNothing("INSERT INTO t (email) VALUES ('bob@example.com')");
  ExpectNothing("INSERT INTO t SELECT * FROM u INTO OUTFILE 'x'");
  // Accounts: 'user'@'host' is no variable.
  ExpectNothing("GRANT SELECT ON *.* TO 'bob'@'localhost'");
  ExpectNothing("CREATE USER `bob`@`%` IDENTIFIED BY 'x'");
  ExpectNothing("DROP USER bob@localhost");
  ExpectNothing("SHOW GRANTS FOR 'bob'@'%'");
}

TEST(MysqlClassify, OutputUserVariables) {
  ExpectPin("CALL p(@out)", kUserVar);
  ExpectPin("CALL db.p(1, @x)", kUserVar);
  ExpectNothing("CALL p(1)");
  ExpectNothing("CALL p('@x')");
  ExpectPin("LOAD DATA INFILE 'f' INTO TABLE t (a, @b) SET c = @b * 2", kUserVar);
  ExpectPin("LOAD XML LOCAL INFILE 'f' INTO TABLE t (@a)", kUserVar);
  ExpectNothing("LOAD DATA LOCAL INFILE 'f' INTO TABLE t");
  ExpectNothing("LOAD DATA INFILE '@f' INTO TABLE t FIELDS TERMINATED BY '@'");
  ExpectPin("GET DIAGNOSTICS @n = NUMBER", kUserVar);
  ExpectPin("GET DIAGNOSTICS CONDITION 1 @msg = MESSAGE_TEXT", kUserVar);
  ExpectNothing("GET DIAGNOSTICS CONDITION 1 x = MESSAGE_TEXT");
}

// ---- the other rules ---------------------------------------------------------------------------

TEST(MysqlClassify, UseChangesNothing) {
  ExpectNothing("USE db");
  ExpectNothing("use `my db`;");
  ExpectNothing("/* c */ USE db");
  ExpectNothing("USE db; SELECT 1");
}

TEST(MysqlClassify, TemporaryTables) {
  ExpectPin("CREATE TEMPORARY TABLE t (a INT)", kTemp);
  ExpectPin("create temporary table t select 1", kTemp);
  ExpectPin("CREATE TEMPORARY TABLE IF NOT EXISTS t LIKE u", kTemp);
  ExpectPin("CREATE OR REPLACE TEMPORARY TABLE t (a INT)", kTemp);
  ExpectPin("CREATE TEMPORARY SEQUENCE s", kTemp);
  ExpectPin("CREATE /*!32311 TEMPORARY */ TABLE t (a INT)", kTemp);
  ExpectNothing("CREATE TABLE t (temporary INT)");
  ExpectNothing("CREATE TABLE temporary (a INT)");
  ExpectNothing("CREATE TABLE t (a INT) COMMENT 'temporary'");
  ExpectNothing("CREATE VIEW v AS SELECT 1");
  // Dropping one temporary table says nothing of the others: the pin stays.
  ExpectNothing("DROP TEMPORARY TABLE t");
  ExpectNothing("DROP TEMPORARY TABLE IF EXISTS t");
}

TEST(MysqlClassify, AdvisoryLocks) {
  ExpectPin("SELECT GET_LOCK('a', 10)", kAdvisory);
  ExpectPin("select get_lock('a', 10)", kAdvisory);
  ExpectPin("SELECT Get_Lock ('a', 10)", kAdvisory);
  ExpectPin("SELECT `get_lock`('a', 10)", kAdvisory);
  ExpectPin("DO GET_LOCK('a', 10)", kAdvisory);
  ExpectPin("SELECT IF(GET_LOCK('a', 0), 1, 0) FROM t", kAdvisory);
  ExpectPin("SELECT 1 FROM t WHERE GET_LOCK(CONCAT('job', id), 0)", kAdvisory);
  ExpectNothing("SELECT RELEASE_LOCK('a')");
  ExpectNothing("SELECT IS_FREE_LOCK('a'), IS_USED_LOCK('a')");
  ExpectNothing("SELECT get_lock FROM t");  // a column
  ExpectNothing("SELECT 'GET_LOCK(1, 2)'");
  ExpectNothing("SELECT * FROM t WHERE note = 'get_lock('");
  ExpectEffects("SELECT RELEASE_ALL_LOCKS()", kNone, kAdvisory);
  ExpectEffects("DO release_all_locks()", kNone, kAdvisory);
  ExpectNothing("SELECT 'RELEASE_ALL_LOCKS()'");
  // Within one statement the pin wins: it may be taken after the release.
  ExpectPin("SELECT RELEASE_ALL_LOCKS(), GET_LOCK('a', 1)", kAdvisory);
}

TEST(MysqlClassify, TableLocks) {
  ExpectPin("LOCK TABLES t READ", kTableLock);
  ExpectPin("lock table t write, u read local", kTableLock);
  ExpectPin("LOCK TABLES t AS a READ WAIT 5", kTableLock);
  ExpectPin("LOCK INSTANCE FOR BACKUP", kTableLock);
  ExpectPin("FLUSH TABLES WITH READ LOCK", kTableLock);
  ExpectPin("FLUSH TABLES t, u WITH READ LOCK", kTableLock);
  ExpectPin("flush no_write_to_binlog tables with read lock", kTableLock);
  ExpectPin("FLUSH TABLES t FOR EXPORT", kTableLock);
  ExpectPin("BACKUP STAGE START", kTableLock);
  ExpectPin("BACKUP STAGE BLOCK_COMMIT", kTableLock);
  ExpectPin("BACKUP LOCK t", kTableLock);
  ExpectEffects("UNLOCK TABLES", kNone, kTableLock);
  ExpectEffects("unlock table", kNone, kTableLock);
  ExpectEffects("UNLOCK INSTANCE", kNone, kTableLock);
  ExpectEffects("BACKUP STAGE END", kNone, kTableLock);
  ExpectEffects("BACKUP UNLOCK", kNone, kTableLock);
  ExpectNothing("FLUSH TABLES");
  ExpectNothing("FLUSH PRIVILEGES");
  ExpectNothing("FLUSH LOGS");
  ExpectNothing("SELECT * FROM t FOR UPDATE");
  ExpectNothing("SELECT * FROM t LOCK IN SHARE MODE");
  ExpectPin("LOCK", kUnclassified);
  ExpectPin("LOCK t", kUnclassified);
  ExpectPin("UNLOCK", kUnclassified);
  ExpectPin("BACKUP", kUnclassified);
}

TEST(MysqlClassify, FoundRows) {
  ExpectPin("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", kFoundRows);
  ExpectPin("select sql_calc_found_rows a from t", kFoundRows);
  ExpectPin("SELECT a FROM t UNION SELECT SQL_CALC_FOUND_ROWS b FROM u", kFoundRows);
  ExpectNothing("SELECT FOUND_ROWS()");
  ExpectNothing("SELECT 'SQL_CALC_FOUND_ROWS'");
}

TEST(MysqlClassify, PreparedStatements) {
  ExpectPin("PREPARE s FROM 'SELECT 1'", kUnclassified);
  ExpectPin("prepare s from @sql", kUnclassified);
  ExpectNothing("EXECUTE s");
  ExpectNothing("EXECUTE s USING @a");
  ExpectNothing("DEALLOCATE PREPARE s");
  ExpectNothing("DROP PREPARE s");
  ExpectPin("EXECUTE IMMEDIATE 'SELECT 1'", kUnclassified);
}

TEST(MysqlClassify, HandlerXaLoadInstall) {
  ExpectPin("HANDLER t OPEN", kUnclassified);
  ExpectPin("HANDLER db.t OPEN AS h", kUnclassified);
  ExpectNothing("HANDLER h READ FIRST");
  ExpectNothing("HANDLER h CLOSE");
  ExpectPin("XA START 'x'", kUnclassified);
  ExpectPin("xa commit 'x'", kUnclassified);
  ExpectPin("LOAD INDEX INTO CACHE t", kUnclassified);
  ExpectNothing("LOAD DATA INFILE 'f' INTO TABLE t");
  ExpectPin("INSTALL PLUGIN x SONAME 'x.so'", kUnclassified);
  ExpectPin("INSTALL SONAME 'x'", kUnclassified);
}

TEST(MysqlClassify, NeutralAndUnknownStatements) {
  for (std::string_view sql : {"(SELECT 1) UNION (SELECT 2)",
                               "ANALYZE TABLE t",
                               "OPTIMIZE TABLE t",
                               "CHECK TABLE t",
                               "REPAIR TABLE t",
                               "CHECKSUM TABLE t",
                               "RENAME TABLE a TO b",
                               "REVOKE ALL ON *.* FROM b",
                               "HELP 'x'",
                               "PURGE BINARY LOGS TO 'x'",
                               "RESET QUERY CACHE",
                               "CHANGE MASTER TO x = 1",
                               "STOP SLAVE",
                               "SHUTDOWN",
                               "SIGNAL SQLSTATE '45000'",
                               "UNINSTALL PLUGIN x",
                               "CACHE INDEX t IN c",
                               "BEGIN",
                               "COMMIT AND CHAIN",
                               "KILL QUERY 5"}) {
    ExpectNothing(sql);
  }
  for (std::string_view sql :
       {"FOO", "BINLOG 'abc'", "CLONE LOCAL DATA DIRECTORY 'x'", "IF 1 THEN SELECT 1; END IF",
        "lbl: BEGIN NOT ATOMIC END", "BEGIN NOT ATOMIC SELECT 1; END", "END", "DECLARE x INT",
        "'SELECT 1'", "`SELECT` 1", "@x", "1"}) {
    SCOPED_TRACE(sql);
    EXPECT_NE(Classify(sql).pins & kUnclassified, 0u);
  }
}

TEST(MysqlClassify, UnreadableText) {
  for (std::string_view sql :
       {"SELECT '@unterminated", "SET a = \"x", "SELECT `@x", "SET /* x", "/*!50000 SET a = 1",
        "SELECT /*! /* */ 1 */", "SELECT $a$ @x $a$", "SET @'x"}) {
    SCOPED_TRACE(sql);
    RequestEffects e = Classify(sql);
    EXPECT_EQ(e.pins, kUnclassified);
    EXPECT_FALSE(e.statement.empty());
  }
  // Unreadable, but cleared first: the server refuses it as well.
  EXPECT_TRUE(ClassifySql("SELECT 'unterminated").empty());
  // More tokens than the lexer takes.
  std::string many = "SET @x = 1";
  for (int i = 0; i < 70000; ++i) {
    many += "+1";
  }
  RequestEffects e = Classify(many);
  EXPECT_EQ(e.pins, kUnclassified);
  EXPECT_LE(e.statement.size(), 200u);
}

TEST(MysqlClassify, ExecutableComments) {
  // Unversioned /*! ... */ is read by every server.
  ExpectReadBack("/*! SET NAMES utf8 */", kNames);
  ExpectEffects("/*! UNLOCK TABLES */", kNone, kTableLock);
  // Versioned ones (and MariaDB's /*M!) some servers skip: what either reading does counts.
  ExpectReadBack("/*!40101 SET NAMES utf8mb4 */", kNames);
  ExpectReadBack("/*!40101 SET character_set_client = utf8 */;", {"character_set_client"});
  ExpectPin("/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */", kUserVar);
  ExpectPin("/*M!100100 SET @x = 1 */", kUserVar);
  ExpectPin("SELECT /*!40001 SQL_CALC_FOUND_ROWS */ * FROM t", kFoundRows);
  ExpectPin("SELECT /*!50700 GET_LOCK('a', 1), */ 1", kAdvisory);
  ExpectPin("/*!50700 LOCK TABLES t READ */", kTableLock);
  ExpectPin("/*!99999 CREATE TEMPORARY TABLE t (a INT) */", kTemp);
  ExpectNothing("SELECT /*!40001 SQL_NO_CACHE */ * FROM t");
  ExpectReadBack("/*!40103 SET TIME_ZONE='+00:00' */ ; SELECT 1", {"time_zone"});
  // A GLOBAL that a server may skip: read sql_mode back, in case it was the session's.
  ExpectReadBack("SET /*!50700 GLOBAL */ sql_mode = ''", {"sql_mode"});
  // MariaDB expands both and reads SESSION GLOBAL, an error; a MySQL 8 reads GLOBAL alone.
  ExpectEffects("SET /*M!100000 SESSION */ /*!80000 GLOBAL */ sql_mode = ''", kUnclassified, kNone,
                {"sql_mode"});
  // A statement start that a server may skip: the first word differs between readings.
  ExpectPin("/*!50700 LOCK TABLES t READ; */ SELECT 1", kTableLock);
  ExpectPin("/*!99999 SELECT 1, */ GET_LOCK('a', 1)", kAdvisory | kUnclassified);
  // A pin is cleared only if both readings clear it.
  ExpectNothing("/*!50700 UNLOCK TABLES */");
  ExpectNothing("/*M! UNLOCK TABLES */");
  ExpectNothing("SELECT /*!50700 RELEASE_ALL_LOCKS(), */ 1");
  ExpectEffects("/*!50700 UNLOCK TABLES; */ UNLOCK TABLES", kNone, kTableLock);
  // mysqldump's prologue.
  ExpectEffects(
      "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
      "/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n"
      "/*!40103 SET TIME_ZONE='+00:00' */;\n"
      "/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n",
      kUserVar, kNone, Concat(kNames, {"time_zone", "unique_checks"}));
}

TEST(MysqlClassify, MultiStatements) {
  ExpectEffects("SET sql_mode = ''; SELECT GET_LOCK('a', 1); SET NAMES latin1", kAdvisory, kNone,
                Concat({"sql_mode"}, kNames));
  ExpectPin("SELECT 1; LOCK TABLES t READ", kTableLock);
  ExpectPin("SELECT 1; CREATE TEMPORARY TABLE t (a INT); SELECT SQL_CALC_FOUND_ROWS 1",
            kTemp | kFoundRows);
  // Later statements clear what earlier ones set once the query succeeds; not the other way round.
  ExpectEffects("LOCK TABLES t READ; UNLOCK TABLES", kTableLock, kTableLock);
  ExpectPin("UNLOCK TABLES; LOCK TABLES t READ", kTableLock);
  ExpectEffects("SELECT GET_LOCK('a', 1); SELECT RELEASE_ALL_LOCKS()", kAdvisory, kAdvisory);
  ExpectEffects("UNLOCK TABLES; SELECT 1", kNone, kTableLock);
  ExpectReadBack("SET a = 1;; SET b = 2;", {"a", "b"});
  ExpectPin("SELECT 1; PREPARE s FROM 'x'; SELECT 2", kUnclassified);
  ExpectNothing("SELECT 1; SELECT 2; INSERT INTO t VALUES (';')");
  // A ';' inside a string or comment does not split.
  ExpectNothing("SELECT 'a; SET @x = 1'");
  ExpectNothing("SELECT 1 /* ; LOCK TABLES t READ */");
  ExpectNothing("SELECT 1 -- ; LOCK TABLES t READ");
}

TEST(MysqlClassify, StatementText) {
  RequestEffects e = Classify("SELECT 1;  \n LOCK   TABLES\n\tt  READ ; SET @x = 1");
  EXPECT_EQ(e.statement, "LOCK TABLES t READ");
  e = Classify("/* why */ SELECT GET_LOCK( 'a' ,\n 1 ) -- note");
  EXPECT_EQ(e.statement, "SELECT GET_LOCK( 'a' , 1 )");
  e = Classify("/*!40101 SET @a = 1 */");
  EXPECT_EQ(e.statement, "SET @a = 1");
  e = Classify("SELECT 'unterminated   @x");
  EXPECT_EQ(e.statement, "SELECT 'unterminated @x");
  // At most 200 bytes, cut at a UTF-8 character boundary.
  std::string long_sql = "SELECT GET_LOCK('" + std::string(300, 'a') + "', 1)";
  e = Classify(long_sql);
  EXPECT_EQ(e.statement, long_sql.substr(0, 200));
  std::string utf8 = "SELECT GET_LOCK('" + std::string(182, 'a');  // 199 bytes
  utf8 += "\xc3\xa9\xc3\xa9', 1)";                                 // é straddles byte 200
  e = Classify(utf8);
  EXPECT_EQ(e.statement, utf8.substr(0, 199));
  // Not UTF-8: a character is at most 4 bytes, so at most 3 are dropped.
  e = Classify("\xa1" + std::string(300, '\x90'));
  EXPECT_EQ(e.pins, kUnclassified);
  EXPECT_EQ(e.statement, "\xa1" + std::string(196, '\x90'));
  e = Classify("SELECT GET_LOCK('" + std::string(181, 'a') + "   b', 1)");
  EXPECT_EQ(e.statement.size(), 200u);
  EXPECT_EQ(e.statement.back(), 'b');
}

TEST(MysqlClassify, StringsHideStatementsPerSqlMode) {
  // With backslash escapes the GET_LOCK is inside one string; without, it is a call.
  const std::string_view sql = "SELECT 'x\\', GET_LOCK('b', 1), \\''";
  ExpectNothing(sql);
  ExpectEffects(sql, kAdvisory, kNone, {}, {.no_backslash_escapes = true});
  // Under ANSI_QUOTES "..." names an identifier, read without escapes.
  const std::string_view quoted = "SELECT \"a\\\", @x := 1, \\\"\"";
  ExpectNothing(quoted);
  ExpectEffects(quoted, kUserVar, kNone, {}, {.ansi_quotes = true});
  ExpectNothing("SELECT \"get_lock\"(1, 2)");
  ExpectEffects("SELECT \"get_lock\"(1, 2)", kAdvisory, kNone, {}, {.ansi_quotes = true});
  ExpectNothing("SELECT 'LOCK TABLES t READ', 'SET @x = 1', 'CREATE TEMPORARY TABLE t'");
  ExpectNothing("SELECT x'40', _utf8mb4'@x := 1', N'GET_LOCK(1)'");
}

TEST(MysqlClassify, CaseAndCommentsAnywhere) {
  ExpectPin("lOcK tAbLeS t ReAd", kTableLock);
  ExpectPin("/* a */ LOCK /* b */ TABLES # c\n t -- d\n READ", kTableLock);
  ExpectReadBack("SET/**/sql_mode/**/=/**/''", {"sql_mode"});
  ExpectReadBack("  SET\n\tSESSION\r\nsql_mode\f=\v''", {"sql_mode"});
  ExpectPin("SELECT/**/GET_LOCK/**/('a', 1)", kAdvisory);
  ExpectPin("SELECT @x /* c */ := 1", kUserVar);
  ExpectPin("Create Temporary Table t (a int)", kTemp);
}

}  // namespace
}  // namespace wirepool::codec::mysql
