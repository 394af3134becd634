// postgres::ClassifySql: what the SQL text of a Query or Parse message does to the session, for
// transaction pooling. Every case goes through Classify(), which also checks the prefilter against
// the parser: text the prefilter clears must classify empty from the parse tree too (or not
// parse), since a prefilter that clears too much is a bug and one that clears too little only
// costs time.

#include "codecs/postgres/classify.h"

#include <string>
#include <string_view>
#include <vector>

#include "codecs/api/session.h"
#include "codecs/postgres/parse_tree.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wirepool::codec::postgres {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr PinSet kTemp = PinBit(PinReason::kTempTable);
constexpr PinSet kAdvisory = PinBit(PinReason::kAdvisoryLock);
constexpr PinSet kListen = PinBit(PinReason::kListen);
constexpr PinSet kHold = PinBit(PinReason::kHoldCursor);
constexpr PinSet kLoad = PinBit(PinReason::kLoadLibrary);
constexpr PinSet kUnclassified = PinBit(PinReason::kUnclassified);

RequestEffects Classify(std::string_view sql) {
  RequestEffects effects = ClassifySql(sql);
  if (PrefilterClears(sql)) {
    EXPECT_TRUE(effects.empty()) << sql;
    ParseTree tree;
    if (tree.ParseSql(sql)) {
      EXPECT_TRUE(ClassifySqlWithParser(sql).empty()) << "prefilter cleared: " << sql;
    }
  }
  EXPECT_EQ(effects.pins == 0, effects.statement.empty()) << sql;
  EXPECT_LE(effects.statement.size(), 200u) << sql;
  return effects;
}
PinSet Pins(std::string_view sql) { return Classify(sql).pins; }
PinSet Unpins(std::string_view sql) { return Classify(sql).unpins; }
std::vector<std::string> ReadBack(std::string_view sql) { return Classify(sql).read_back; }
bool Empty(std::string_view sql) { return Classify(sql).empty(); }

TEST(PostgresClassify, SetReadsBackTheParameter) {
  EXPECT_THAT(ReadBack("SET search_path = a, b"), ElementsAre("search_path"));
  EXPECT_THAT(ReadBack("set SESSION Search_Path TO DEFAULT"), ElementsAre("search_path"));
  EXPECT_THAT(ReadBack("SET work_mem FROM CURRENT"), ElementsAre("work_mem"));
  EXPECT_THAT(ReadBack("RESET work_mem"), ElementsAre("work_mem"));
  EXPECT_THAT(ReadBack("SET \"Work_Mem\" = '1MB'"), ElementsAre("work_mem"));
  EXPECT_THAT(ReadBack("SET myapp.user_id = 42"), ElementsAre("myapp.user_id"));
  EXPECT_THAT(ReadBack("SET extra_float_digits = 3"), ElementsAre("extra_float_digits"));
  EXPECT_THAT(ReadBack("SET application_name = 'PostgreSQL JDBC Driver'"),
              ElementsAre("application_name"));
  RequestEffects e = Classify("SET statement_timeout = 0");
  EXPECT_EQ(e.pins, 0u);
  EXPECT_EQ(e.unpins, 0u);
  EXPECT_FALSE(e.reset_params);
}

TEST(PostgresClassify, SetSpecialForms) {
  EXPECT_THAT(ReadBack("SET TIME ZONE 'UTC'"), ElementsAre("timezone"));
  EXPECT_THAT(ReadBack("set time zone local"), ElementsAre("timezone"));
  EXPECT_THAT(ReadBack("RESET TIME ZONE"), ElementsAre("timezone"));
  EXPECT_THAT(ReadBack("SET NAMES 'UTF8'"), ElementsAre("client_encoding"));
  EXPECT_THAT(ReadBack("SET SCHEMA 'app'"), ElementsAre("search_path"));
  EXPECT_THAT(ReadBack("SET XML OPTION DOCUMENT"), ElementsAre("xmloption"));
  EXPECT_THAT(ReadBack("SET ROLE bob"), ElementsAre("role"));
  EXPECT_THAT(ReadBack("RESET ROLE"), ElementsAre("role"));
  // SET SESSION AUTHORIZATION also resets the role.
  EXPECT_THAT(ReadBack("SET SESSION AUTHORIZATION bob"),
              ElementsAre("session_authorization", "role"));
  EXPECT_THAT(ReadBack("RESET SESSION AUTHORIZATION"),
              ElementsAre("session_authorization", "role"));
  EXPECT_THAT(ReadBack("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, "
                       "READ ONLY, DEFERRABLE"),
              ElementsAre("default_transaction_isolation", "default_transaction_read_only",
                          "default_transaction_deferrable"));
  EXPECT_THAT(ReadBack("set session characteristics as transaction read write"),
              ElementsAre("default_transaction_read_only"));
}

TEST(PostgresClassify, TransactionScopedSetsDoNothing) {
  EXPECT_TRUE(Empty("SET LOCAL work_mem = '1MB'"));
  EXPECT_TRUE(Empty("set local time zone 'UTC'"));
  EXPECT_TRUE(Empty("SET LOCAL ROLE bob"));
  EXPECT_TRUE(Empty("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"));
  EXPECT_TRUE(Empty("SET TRANSACTION SNAPSHOT '00000003-0000001B-1'"));
  EXPECT_TRUE(Empty("SET CONSTRAINTS ALL DEFERRED"));
}

TEST(PostgresClassify, ResetAllAndDiscard) {
  RequestEffects reset = Classify("RESET ALL");
  EXPECT_TRUE(reset.reset_params);
  EXPECT_EQ(reset.pins, 0u);
  EXPECT_EQ(reset.unpins, 0u);

  RequestEffects all = Classify("DISCARD ALL");
  EXPECT_TRUE(all.reset_params);
  EXPECT_EQ(all.pins, 0u);
  EXPECT_EQ(all.unpins, kTemp | kAdvisory | kListen | kHold);

  RequestEffects temp = Classify("discard temp");
  EXPECT_FALSE(temp.reset_params);
  EXPECT_EQ(temp.unpins, kTemp);
  EXPECT_EQ(Unpins("DISCARD TEMPORARY"), kTemp);
  EXPECT_TRUE(Empty("DISCARD PLANS"));
  EXPECT_TRUE(Empty("DISCARD SEQUENCES"));
}

TEST(PostgresClassify, SetConfig) {
  EXPECT_THAT(ReadBack("SELECT set_config('search_path', 'a', false)"), ElementsAre("search_path"));
  // pg_dump's first statement.
  EXPECT_THAT(ReadBack("SELECT pg_catalog.set_config('search_path', '', false);"),
              ElementsAre("search_path"));
  EXPECT_THAT(ReadBack("select SET_CONFIG('App.Tenant', $1, 'off')"), ElementsAre("app.tenant"));
  EXPECT_THAT(ReadBack("SELECT set_config('a'::text, 'b', NULL)"), ElementsAre("a"));
  // Any third argument that is not the constant true may be false when it runs.
  EXPECT_THAT(ReadBack("SELECT set_config('a', 'b', $1)"), ElementsAre("a"));
  EXPECT_THAT(ReadBack("SELECT set_config('a', 'b', local) FROM t"), ElementsAre("a"));
  // Wherever the call is.
  EXPECT_THAT(ReadBack("SELECT 1 FROM t WHERE set_config('a', x, false) IS NOT NULL"),
              ElementsAre("a"));
  EXPECT_THAT(ReadBack("WITH s AS (SELECT set_config('a', '1', false)) SELECT * FROM s"),
              ElementsAre("a"));
  EXPECT_THAT(ReadBack("UPDATE t SET v = set_config('b', 'x', false), w = set_config('a', 'y', "
                       "false) WHERE id = (SELECT set_config('b', 'z', false))"),
              ElementsAre("b", "a"));
  EXPECT_THAT(ReadBack("SELECT * FROM set_config('a', 'b', false)"), ElementsAre("a"));
  // A name the proxy cannot know.
  RequestEffects dynamic = Classify("SELECT set_config(name, 'x', false) FROM settings");
  EXPECT_EQ(dynamic.pins, kUnclassified);
  EXPECT_THAT(dynamic.read_back, IsEmpty());
  EXPECT_EQ(Pins("SELECT set_config($1, $2, false)"), kUnclassified);
  EXPECT_EQ(Pins("SELECT set_config('a' || 'b', 'x', false)"), kUnclassified);
  // Arguments not in the one shape set_config has.
  EXPECT_EQ(Pins("SELECT set_config(setting_name => 'a', new_value => 'b', is_local => false)"),
            kUnclassified);
  EXPECT_EQ(Pins("SELECT set_config('a', 'b')"), kUnclassified);
}

TEST(PostgresClassify, SetConfigLocalDoesNothing) {
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', true)"));
  EXPECT_TRUE(Empty("SELECT set_config($1, $2, TRUE)"));  // the name does not matter then
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', 't')"));
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', ' Yes ')"));
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', 'on')"));
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', '1')"));
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', true::boolean)"));
  EXPECT_TRUE(Empty("SELECT set_config('a', 'b', 'true'::bool)"));
  EXPECT_THAT(ReadBack("SELECT set_config('a', 'b', 'o')"), ElementsAre("a"));  // ambiguous
}

TEST(PostgresClassify, TempTables) {
  EXPECT_EQ(Pins("CREATE TEMP TABLE t (a int)"), kTemp);
  EXPECT_EQ(Pins("create temporary table t (a int)"), kTemp);
  EXPECT_EQ(Pins("CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS t (a int)"), kTemp);
  EXPECT_EQ(Pins("CREATE TEMP TABLE t (LIKE u INCLUDING ALL) ON COMMIT DELETE ROWS"), kTemp);
  EXPECT_EQ(Pins("CREATE TEMP SEQUENCE s"), kTemp);
  EXPECT_EQ(Pins("CREATE TEMP VIEW v AS SELECT 1"), kTemp);
  EXPECT_EQ(Pins("CREATE OR REPLACE TEMPORARY VIEW v AS SELECT 1"), kTemp);
  EXPECT_EQ(Pins("CREATE TABLE pg_temp.t (a int)"), kTemp);
  EXPECT_EQ(Pins("CREATE VIEW pg_temp.v AS SELECT 1"), kTemp);
  EXPECT_EQ(Pins("SELECT * INTO TEMP t FROM u"), kTemp);
  EXPECT_EQ(Pins("select 1 as a into temporary table t"), kTemp);
  EXPECT_EQ(Pins("SELECT 1 INTO pg_temp.t"), kTemp);
  EXPECT_EQ(Pins("WITH x AS (SELECT 1) SELECT * INTO TEMP t FROM x"), kTemp);
  EXPECT_EQ(Pins("CREATE TEMP TABLE t AS SELECT 1"), kTemp);
  EXPECT_EQ(Pins("CREATE TEMP TABLE t AS EXECUTE p(1)"), kTemp);
  EXPECT_EQ(Pins("EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1"), kTemp);
  // A temporary function lives as long as the session too.
  EXPECT_EQ(Pins("CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'"), kTemp);
  EXPECT_EQ(Classify("CREATE TEMP TABLE t (a int)").statement, "CREATE TEMP TABLE t (a int)");
}

TEST(PostgresClassify, TempTablesDroppedAtCommitDoNotPin) {
  EXPECT_TRUE(Empty("CREATE TEMP TABLE t (a int) ON COMMIT DROP"));
  EXPECT_TRUE(Empty("CREATE TEMP TABLE t ON COMMIT DROP AS SELECT 1"));
  EXPECT_TRUE(Empty("BEGIN; CREATE TEMP TABLE t (a int) ON COMMIT DROP; COMMIT;"));
  // And permanent tables are nothing to the session.
  EXPECT_TRUE(Empty("CREATE TABLE t (a int)"));
  EXPECT_TRUE(Empty("CREATE UNLOGGED TABLE t (a int)"));
  EXPECT_TRUE(Empty("SELECT 1 INTO t"));
  EXPECT_TRUE(Empty("CREATE TABLE t AS SELECT 1"));
  EXPECT_TRUE(Empty("SELECT * FROM pg_temp.t"));
  EXPECT_TRUE(Empty("SELECT temperature FROM readings"));
}

TEST(PostgresClassify, AdvisoryLocks) {
  EXPECT_EQ(Pins("select pg_advisory_lock(1)"), kAdvisory);
  EXPECT_EQ(Pins("SELECT pg_advisory_lock_shared(1, 2)"), kAdvisory);
  EXPECT_EQ(Pins("SELECT PG_TRY_ADVISORY_LOCK(42)"), kAdvisory);
  EXPECT_EQ(Pins("SELECT pg_catalog.pg_try_advisory_lock_shared(42)"), kAdvisory);
  EXPECT_EQ(Pins("SELECT id FROM jobs WHERE pg_try_advisory_lock(id) LIMIT 1"), kAdvisory);
  EXPECT_EQ(Pins("SELECT * FROM pg_advisory_lock(1)"), kAdvisory);
  EXPECT_EQ(Pins("SELECT CASE WHEN x THEN pg_advisory_lock(1) END FROM (SELECT true AS x) s"),
            kAdvisory);
  EXPECT_EQ(Pins("DECLARE c CURSOR FOR SELECT pg_advisory_lock(1)"), kAdvisory);
  EXPECT_EQ(Pins("COPY (SELECT pg_advisory_lock(1)) TO STDOUT"), kAdvisory);
  EXPECT_EQ(Classify("SELECT pg_advisory_lock(1)").statement, "SELECT pg_advisory_lock(1)");

  EXPECT_TRUE(Empty("SELECT pg_advisory_xact_lock(1)"));
  EXPECT_TRUE(Empty("SELECT pg_try_advisory_xact_lock_shared(1)"));
  EXPECT_TRUE(Empty("SELECT pg_advisory_unlock(1)"));  // others may still be held
  EXPECT_TRUE(Empty("SELECT pg_advisory_unlock_shared(1)"));
  RequestEffects all = Classify("SELECT pg_advisory_unlock_all()");
  EXPECT_EQ(all.pins, 0u);
  EXPECT_EQ(all.unpins, kAdvisory);
  // Within one statement a lock stands.
  RequestEffects both = Classify("SELECT pg_advisory_unlock_all(), pg_advisory_lock(1)");
  EXPECT_EQ(both.pins, kAdvisory);
  EXPECT_EQ(both.unpins, 0u);
}

TEST(PostgresClassify, ListenAndCursorsAndLoad) {
  EXPECT_EQ(Pins("LISTEN jobs"), kListen);
  EXPECT_EQ(Unpins("UNLISTEN *"), kListen);
  EXPECT_TRUE(Empty("UNLISTEN jobs"));
  EXPECT_TRUE(Empty("NOTIFY jobs, 'x'"));

  EXPECT_EQ(Pins("DECLARE c CURSOR WITH HOLD FOR SELECT 1"), kHold);
  EXPECT_EQ(Pins("declare c binary no scroll cursor with hold for select * from t"), kHold);
  EXPECT_TRUE(Empty("DECLARE c CURSOR FOR SELECT 1"));
  EXPECT_TRUE(Empty("DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT 1"));
  EXPECT_EQ(Unpins("CLOSE ALL"), kHold);
  EXPECT_TRUE(Empty("CLOSE c"));
  EXPECT_TRUE(Empty("FETCH 10 FROM c"));

  EXPECT_EQ(Pins("LOAD 'auto_explain'"), kLoad);
  EXPECT_EQ(Classify("LOAD 'auto_explain'").statement, "LOAD 'auto_explain'");
}

// Without ops (a Parse, which may run its text any number of times), PREPARE and DEALLOCATE of a
// name pin; DEALLOCATE ALL and DISCARD ALL need not (the server codec sees their CommandComplete).
TEST(PostgresClassify, SqlPreparedStatementsPinWithoutOps) {
  EXPECT_EQ(Pins("PREPARE p(int) AS SELECT $1"), kUnclassified);
  EXPECT_EQ(Pins("prepare q as update t set a = 1"), kUnclassified);
  EXPECT_TRUE(Empty("EXECUTE p(1)"));
  EXPECT_EQ(Pins("DEALLOCATE p"), kUnclassified);
  EXPECT_TRUE(Empty("DEALLOCATE PREPARE ALL"));
}

// With ops (a simple Query): one SqlOp per statement, up to the last that does anything.
std::vector<SqlOp> Ops(std::string_view sql, RequestEffects* effects = nullptr) {
  std::vector<SqlOp> ops;
  RequestEffects e = ClassifySql(sql, &ops);
  if (effects != nullptr) {
    *effects = e;
  }
  return ops;
}

TEST(PostgresClassify, SqlPreparedStatementOps) {
  RequestEffects e;
  EXPECT_THAT(Ops("PREPARE Foo (int) AS SELECT $1", &e),
              ElementsAre(SqlOp{SqlOp::kPrepare, "foo", "PREPARE Foo (int) AS SELECT $1"}));
  EXPECT_TRUE(e.empty());
  // Each statement's own text (from just after the ';' before it, as PostgreSQL cuts it);
  // statements that do nothing keep their place before the last op.
  EXPECT_THAT(
      Ops("SELECT 1; prepare \"A b\" as select 2 ; EXECUTE x; DEALLOCATE PREPARE y; SELECT 3"),
      ElementsAre(SqlOp{}, SqlOp{SqlOp::kPrepare, "A b", " prepare \"A b\" as select 2 "}, SqlOp{},
                  SqlOp{SqlOp::kDeallocate, "y", ""}));
  EXPECT_THAT(Ops("DEALLOCATE ALL"), ElementsAre(SqlOp{SqlOp::kDeallocateAll, "", ""}));
  EXPECT_THAT(Ops("discard all"), ElementsAre(SqlOp{SqlOp::kDiscardAll, "", ""}));
  EXPECT_THAT(Ops("EXECUTE foo(1)"), IsEmpty());
  EXPECT_THAT(Ops("SELECT 1; DISCARD TEMP"), IsEmpty());
  // The prefilter keeps ordinary text off the parser: no ops.
  EXPECT_THAT(Ops("SELECT 'PREPARE x AS SELECT 1'"), IsEmpty());
  // A prepared query that does anything to the session would do it at each EXECUTE, unseen.
  EXPECT_THAT(Ops("PREPARE l AS SELECT pg_advisory_lock(1)", &e), IsEmpty());
  EXPECT_EQ(e.pins, kUnclassified | kAdvisory);
  EXPECT_THAT(Ops("PREPARE u AS SELECT pg_advisory_unlock_all()", &e), IsEmpty());
  EXPECT_EQ(e.pins, kUnclassified);
  EXPECT_EQ(e.unpins, 0u);
}

TEST(PostgresClassify, SqlOpsRoundTrip) {
  SqlOps ops{true,
             {SqlOp{}, SqlOp{SqlOp::kPrepare, "a", "PREPARE a AS SELECT 1"},
              SqlOp{SqlOp::kDeallocate, "b", ""}}};
  EXPECT_EQ(DecodeSqlOps(EncodeSqlOps(ops)), ops);
  EXPECT_EQ(DecodeSqlOps(EncodeSqlOps(SqlOps{})), SqlOps{});
  EXPECT_FALSE(DecodeSqlOps("").has_value());
  EXPECT_FALSE(DecodeSqlOps("FPa").has_value());
  EXPECT_FALSE(DecodeSqlOps("F?a\0b\0").has_value());
  EXPECT_EQ(SqlStatementOfParam(SqlStatementParam("x y")), "x y");
  EXPECT_FALSE(SqlStatementOfParam("search_path").has_value());
}

TEST(PostgresClassify, DoBlocksAndFunctions) {
  RequestEffects doblock = Classify("DO $$BEGIN PERFORM 1; END$$");
  EXPECT_EQ(doblock.pins, kUnclassified);
  EXPECT_EQ(doblock.statement, "DO $$BEGIN PERFORM 1; END$$");
  EXPECT_EQ(Pins("do language plpgsql 'begin null; end'"), kUnclassified);
  // Definitions: the body runs later, when it is called.
  EXPECT_TRUE(
      Empty("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ SET work_mem = '1MB'; "
            "SELECT pg_advisory_lock(1); $$"));
  EXPECT_TRUE(
      Empty("CREATE OR REPLACE FUNCTION f() RETURNS text LANGUAGE sql BEGIN ATOMIC "
            "SELECT set_config('a', 'b', false); END"));
  EXPECT_TRUE(
      Empty("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN CREATE TEMP TABLE t (a "
            "int); END $$"));
  EXPECT_TRUE(Empty("CALL p(1, 2)"));
}

TEST(PostgresClassify, OtherStatementsDoNothing) {
  for (std::string_view sql : {
           "CREATE TABLE t (a int PRIMARY KEY, b text)",
           "ALTER TABLE t ADD COLUMN c int",
           "ALTER ROLE bob SET work_mem = '1MB'",  // for bob's later sessions, not this one
           "ALTER DATABASE app SET search_path = a",
           "ALTER SYSTEM SET work_mem = '1MB'",
           "GRANT SELECT ON t TO bob",
           "VACUUM ANALYZE t",
           "ANALYZE",
           "COPY t FROM STDIN",
           "CREATE INDEX CONCURRENTLY i ON t (a)",
           "DROP TABLE IF EXISTS t",
           "SHOW search_path",
           "CHECKPOINT",
           "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
           "CREATE EXTENSION IF NOT EXISTS pgcrypto",
           "COMMENT ON TABLE t IS 'SET x = 1'",
       }) {
    EXPECT_TRUE(Empty(sql)) << sql;
  }
}

TEST(PostgresClassify, UpdatingPgSettingsIsUnclassified) {
  // UPDATE pg_settings calls set_config(name, setting, false) through a rule.
  EXPECT_EQ(Pins("UPDATE pg_settings SET setting = '1MB' WHERE name = 'work_mem'"), kUnclassified);
  EXPECT_EQ(Pins("with u as (update pg_catalog.pg_settings set setting = 'x' where name = 'y' "
                 "returning 1) select * from u"),
            kUnclassified);
  EXPECT_TRUE(Empty("SELECT name, setting FROM pg_settings WHERE name = 'work_mem'"));
}

TEST(PostgresClassify, ParseErrorsAreUnclassified) {
  for (std::string_view sql : {
           "SELEC 1", "SET", "select 1; set", "/* unterminated",
           "UPDATE t SET a = 'unterminated; SET x = 1",
           "CREATE TEMP MATERIALIZED VIEW v AS SELECT 1", "SET x = 1; SELEC 2",
           "\v SET x = 1",  // not whitespace to PostgreSQL 15
       }) {
    RequestEffects e = Classify(sql);
    EXPECT_EQ(e.pins, kUnclassified) << sql;
    EXPECT_FALSE(e.statement.empty()) << sql;
    EXPECT_THAT(e.read_back, IsEmpty()) << sql;
  }
  EXPECT_EQ(Classify("  SELEC\n\n   1  ").statement, "SELEC 1");
  // The prefilter may clear text the server rejects: it does nothing then either.
  EXPECT_TRUE(Empty("SELECT 'unterminated"));
}

TEST(PostgresClassify, SeveralStatementsMergeInOrder) {
  EXPECT_THAT(ReadBack("SET a = 1; SET b = 2; SET a = 3"), ElementsAre("a", "b"));
  EXPECT_THAT(ReadBack("select 1; set x=1"), ElementsAre("x"));
  RequestEffects e = Classify(
      "BEGIN; SET LOCAL a = 1; SET b = 2; SELECT 1;   LISTEN\n  jobs ; "
      "CREATE TEMP TABLE t (a int); COMMIT;");
  EXPECT_THAT(e.read_back, ElementsAre("b"));
  EXPECT_EQ(e.pins, kListen | kTemp);
  EXPECT_EQ(e.statement, "LISTEN jobs");  // the first statement that pinned
  // A later pin stands; a later unpin clears what an earlier statement pinned, once it succeeds.
  RequestEffects relisten = Classify("UNLISTEN *; LISTEN a");
  EXPECT_EQ(relisten.pins, kListen);
  EXPECT_EQ(relisten.unpins, 0u);
  RequestEffects unlisten = Classify("LISTEN a; UNLISTEN *");
  EXPECT_EQ(unlisten.pins, kListen);
  EXPECT_EQ(unlisten.unpins, kListen);
  RequestEffects reset = Classify("DISCARD ALL; SET application_name = 'x'");
  EXPECT_TRUE(reset.reset_params);
  EXPECT_THAT(reset.read_back, ElementsAre("application_name"));
}

TEST(PostgresClassify, CommentsAndCase) {
  EXPECT_TRUE(PrefilterClears("/* hi */ -- there\n  sElEcT 1"));
  EXPECT_TRUE(PrefilterClears("/* /* nested */ SET x = 1 */ select 1"));
  EXPECT_TRUE(PrefilterClears("--\r\nUPDATE t SET a = 1"));
  EXPECT_FALSE(PrefilterClears("/* /* nested */ select 1"));  // still inside the first comment
  // The first word is matched whole: the longest keyword fits, a longer word or a keyword's
  // prefix is none of them.
  EXPECT_TRUE(PrefilterClears("SaVePoInT a"));
  EXPECT_FALSE(PrefilterClears("SAVEPOINTS a"));
  EXPECT_FALSE(PrefilterClears("CHECKPOINT"));
  EXPECT_FALSE(PrefilterClears("sel 1"));
  EXPECT_FALSE(PrefilterClears("selects 1"));
  EXPECT_THAT(ReadBack("-- set the path\nSet Search_Path = a"), ElementsAre("search_path"));
  EXPECT_THAT(ReadBack("/* a */ /* b /* c */ */ SET x = 1"), ElementsAre("x"));
  EXPECT_EQ(Pins("/* lock */ LiStEn a"), kListen);
  EXPECT_EQ(Pins("SELECT 1 -- harmless ; \n; LISTEN a"), kListen);
}

TEST(PostgresClassify, DollarQuotedStrings) {
  EXPECT_TRUE(Empty("SELECT $$SET x = 1$$"));
  EXPECT_TRUE(Empty("SELECT $tag$; SET x = 1; LISTEN a;$tag$"));
  EXPECT_FALSE(PrefilterClears("SELECT $tag$; SET x = 1;$tag$"));  // parsed, but nothing
  EXPECT_TRUE(Empty("SELECT $q$ pg_advisory_lock(1) $q$"));
  EXPECT_TRUE(Empty("SELECT 'set_config(''a'', ''b'', false)'"));
  EXPECT_EQ(Pins("DO $body$ BEGIN SET x = 1; END $body$"), kUnclassified);
  EXPECT_THAT(ReadBack("SELECT $$;$$; SET x = 1"), ElementsAre("x"));
}

TEST(PostgresClassify, PrefilterClearsPgbench) {
  // pgbench's TPC-B script, with parameters (extended / prepared protocol) and as simple Query
  // text, and the select-only script.
  for (std::string_view sql : {
           "BEGIN;",
           "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
           "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
           "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
           "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
           "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
           "CURRENT_TIMESTAMP);",
           "END;",
           "UPDATE pgbench_accounts SET abalance = abalance + -2413 WHERE aid = 52097;",
           "SELECT abalance FROM pgbench_accounts WHERE aid = 52097;",
           "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 52097, -2413, "
           "CURRENT_TIMESTAMP);",
           "select count(*) from pgbench_branches",
       }) {
    EXPECT_TRUE(PrefilterClears(sql)) << sql;
    EXPECT_TRUE(Empty(sql)) << sql;
  }
}

TEST(PostgresClassify, PrefilterClearsPsqlCatalogQueries) {
  for (std::string_view sql : {
           // \dt
           "SELECT n.nspname as \"Schema\",\n  c.relname as \"Name\",\n  CASE c.relkind WHEN "
           "'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' "
           "THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN "
           "'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' "
           "END as \"Type\",\n  pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\"\nFROM "
           "pg_catalog.pg_class c\n     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = "
           "c.relnamespace\n     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam\nWHERE "
           "c.relkind IN ('r','p','')\n      AND n.nspname <> 'pg_catalog'\n      AND n.nspname "
           "!~ '^pg_toast'\n      AND n.nspname <> 'information_schema'\n  AND "
           "pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 1,2;",
           // \l
           "SELECT\n  d.datname as \"Name\",\n  pg_catalog.pg_get_userbyid(d.datdba) as "
           "\"Owner\",\n  pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\",\n  "
           "d.datcollate as \"Collate\",\n  d.datctype as \"Ctype\",\n  d.daticulocale as \"ICU "
           "Locale\",\n  CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "
           "\"Locale Provider\",\n  pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access "
           "privileges\"\nFROM pg_catalog.pg_database d\nORDER BY 1;",
           // \d t, first step
           "SELECT c.oid,\n  n.nspname,\n  c.relname\nFROM pg_catalog.pg_class c\n     LEFT JOIN "
           "pg_catalog.pg_namespace n ON n.oid = c.relnamespace\nWHERE c.relname "
           "OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default\n  AND "
           "pg_catalog.pg_table_is_visible(c.oid)\nORDER BY 2, 3;",
           // \dn
           "SELECT n.nspname AS \"Name\",\n  pg_catalog.pg_get_userbyid(n.nspowner) AS "
           "\"Owner\"\nFROM pg_catalog.pg_namespace n\nWHERE n.nspname !~ '^pg_' AND n.nspname "
           "<> 'information_schema'\nORDER BY 1;",
           // psycopg2 / JDBC / libpq housekeeping
           "SELECT version()",
           "SHOW TRANSACTION ISOLATION LEVEL",
           "select current_schema()",
           "COMMIT",
           "ROLLBACK",
           "SAVEPOINT s1",
           "RELEASE SAVEPOINT s1",
           "ROLLBACK TO SAVEPOINT s1",
           "START TRANSACTION ISOLATION LEVEL REPEATABLE READ",
           "",
           "   \n ",
           "-- nothing",
       }) {
    EXPECT_TRUE(PrefilterClears(sql)) << sql;
    EXPECT_TRUE(Empty(sql)) << sql;
  }
}

TEST(PostgresClassify, PrefilterDoesNotClear) {
  for (std::string_view sql : {
           "select pg_advisory_lock(1)",
           "SELECT set_config('a','b',false)",
           "select 1; set x=1",
           "SELECT 1;;",
           "SELECT 1; -- trailing comment",
           "SELECT * INTO t FROM u",
           "WITH a AS (SELECT 1) SELECT * INTO t FROM a",
           "EXPLAIN ANALYZE SELECT 1 INTO t",
           "SELECT * FROM pg_temp.t",
           "SELECT U&\"set\\005fconfig\"('a', 'b', false)",
           "UPDATE pg_settings SET setting = 'x' WHERE name = 'y'",
           "SET x = 1",
           "LISTEN a",
           "CLOSE ALL",
           "DISCARD ALL",
           "selectx 1",
           "(SELECT 1)",
           "/* unterminated",
           "\v SELECT 1",
       }) {
    EXPECT_FALSE(PrefilterClears(sql)) << sql;
  }
  // A Unicode-escaped identifier spells set_config without the word.
  EXPECT_THAT(ReadBack("SELECT U&\"set\\005fconfig\"('a', 'b', false)"), ElementsAre("a"));
  EXPECT_EQ(Pins("SELECT U&\"pg_adv\\0069sory_lock\"(1)"), kAdvisory);
  // "into" only matters where SELECT INTO can be.
  EXPECT_TRUE(PrefilterClears("INSERT INTO t VALUES (1)"));
  EXPECT_TRUE(PrefilterClears("SELECT 1;  \n"));
}

TEST(PostgresClassify, StatementIsShortened) {
  std::string long_listen = "LISTEN   \n\t" + std::string(300, 'a');
  RequestEffects e = Classify(long_listen);
  EXPECT_EQ(e.pins, kListen);
  EXPECT_EQ(e.statement, "LISTEN " + std::string(193, 'a'));
  // Never cut inside a UTF-8 sequence: 9 + 2 * 95 = 199 bytes, and the next é would need 201.
  std::string utf8 = "LISTEN \"x";
  for (int i = 0; i < 150; ++i) {
    utf8 += "\xC3\xA9";
  }
  utf8 += "\"";
  RequestEffects u = Classify(utf8);
  EXPECT_EQ(u.pins, kListen);
  EXPECT_EQ(u.statement.size(), 199u);
  EXPECT_EQ(u.statement.back(), '\xA9');
  // Nor end with the space before a character it had to drop; bytes that are not UTF-8 stay.
  RequestEffects space = Classify("LISTEN \"" + std::string(190, 'x') + " \xE2\x82\xAC\"");
  EXPECT_EQ(space.statement, "LISTEN \"" + std::string(190, 'x'));
  RequestEffects junk = Classify(std::string(300, '\x80'));
  EXPECT_EQ(junk.pins, kUnclassified);
  EXPECT_EQ(junk.statement, std::string(200, '\x80'));
}

TEST(PostgresClassify, TextEndsAtNul) {
  using std::string_view_literals::operator""sv;
  EXPECT_FALSE(PrefilterClears("SELECT 1\0; SET x = 1"sv));
  EXPECT_TRUE(Empty("SELECT 1\0; SET x = 1"sv));  // the server reads "SELECT 1"
  EXPECT_EQ(Pins("LISTEN a\0 garbage"sv), kListen);
}

TEST(PostgresClassify, DeepTreesDoNotOverflowTheStack) {
  std::string sql = "SELECT set_config('a', 'b', false), ";
  for (int i = 0; i < 20000; ++i) {
    sql += "1+";
  }
  sql += "1";
  EXPECT_THAT(ReadBack(sql), ElementsAre("a"));
}

TEST(PostgresClassify, DeepCastsDoNotOverflowTheStack) {
  std::string sql = "SELECT set_config('a', 'b', 'true'";
  for (int i = 0; i < 20000; ++i) {
    sql += "::bool";
  }
  sql += ")";
  EXPECT_TRUE(Empty(sql));
}

TEST(PostgresClassify, ReadBackIsBounded) {
  // 100 names at most over the whole text; past that the client is pinned.
  std::string sql;
  for (int i = 0; i < 100; ++i) {
    sql += "SET p" + std::to_string(i) + " = 1; SET p0 = 2; ";
  }
  RequestEffects full = Classify(sql);
  EXPECT_EQ(full.read_back.size(), 100u);
  EXPECT_EQ(full.pins, 0u);
  RequestEffects over = Classify(sql +
                                 "SELECT set_config('p0', 'x', false), set_config('q', 'y', "
                                 "false); SET p99 = 3");
  EXPECT_EQ(over.read_back.size(), 100u);
  EXPECT_EQ(over.pins, kUnclassified);
  EXPECT_EQ(over.statement, "SELECT set_config('p0', 'x', false), set_config('q', 'y', false)");
}

TEST(PostgresClassifyParseTree, Json) {
  ParseTree tree;
  ASSERT_TRUE(tree.ParseJson(R"({"a":[1,{"b":"x\"y\\z\n\u00e9"},[],{}],"c":true,"d":-2})"));
  ASSERT_EQ(tree.size(), 9u);
  const size_t a = tree.Member(0, "a");
  ASSERT_NE(a, ParseTree::kNone);
  EXPECT_EQ(tree[a].end, 7u);
  const size_t one = tree.First(a);
  EXPECT_EQ(tree.Int(one), 1);
  const size_t obj = tree.Next(a, one);
  EXPECT_EQ(tree.Str(tree.Member(obj, "b")), "x\"y\\z\n\xC3\xA9");
  size_t fields = ParseTree::kNone;
  EXPECT_EQ(tree.Type(obj, &fields), "");  // a string member, not a node
  EXPECT_TRUE(tree.IsTrue(tree.Member(0, "c")));
  EXPECT_EQ(tree.Int(tree.Member(0, "d")), -2);
  EXPECT_EQ(tree.Member(0, "missing"), ParseTree::kNone);
  EXPECT_EQ(tree.Int(ParseTree::kNone), 0);

  for (const char* bad : {"", "{", "[1,]x", "{\"a\" 1}", "{\"a\":1}}", "[\"x]", "{1:2}"}) {
    EXPECT_FALSE(tree.ParseJson(bad)) << bad;
    EXPECT_EQ(tree.size(), 0u) << bad;
  }
  ASSERT_TRUE(tree.ParseSql("LISTEN a"));
  const size_t stmt = tree.Member(tree.First(tree.Member(0, "stmts")), "stmt");
  EXPECT_EQ(tree.Type(stmt, &fields), "ListenStmt");
  EXPECT_EQ(tree.Str(tree.Member(fields, "conditionname")), "a");
  EXPECT_FALSE(tree.ParseSql("LISTEN"));
}

}  // namespace
}  // namespace wirepool::codec::postgres
