#include "codecs/mysql/sql_scan.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace wirepool::codec::mysql::sql {
namespace {

constexpr size_t kMany = 1000;

// The token texts, or {"<nullopt>"} when the text could not be read.
std::vector<std::string> Texts(std::string_view sql, SqlMode mode = {}) {
  std::optional<std::vector<Token>> tokens = Tokenize(sql, kMany, mode);
  if (!tokens.has_value()) {
    return {"<nullopt>"};
  }
  std::vector<std::string> out;
  for (const Token& t : *tokens) {
    out.emplace_back(t.text);
  }
  return out;
}

std::vector<TokenKind> Kinds(std::string_view sql) {
  std::vector<TokenKind> out;
  const std::vector<Token> tokens = Tokenize(sql, kMany).value();
  for (const Token& t : tokens) {
    out.push_back(t.kind);
  }
  return out;
}

// The KILL the statements of `sql` hold: the first statement IsKill accepts, parsed.
struct KillScan {
  bool readable = false;
  size_t statements = 0;
  bool is_kill = false;
  KillStatement kill;
};
KillScan ScanKill(std::string_view sql, SqlMode mode = {}) {
  KillScan scan;
  std::optional<std::vector<Token>> tokens = Tokenize(sql, kMany, mode);
  if (!tokens.has_value()) {
    return scan;
  }
  scan.readable = true;
  std::vector<std::span<const Token>> statements = SplitStatements(*tokens);
  scan.statements = statements.size();
  for (std::span<const Token> statement : statements) {
    if (IsKill(statement)) {
      scan.is_kill = true;
      scan.kill = ParseKill(statement);
      break;
    }
  }
  return scan;
}

void ExpectKill(std::string_view sql, std::string_view target, bool whole_connection) {
  SCOPED_TRACE(sql);
  KillScan scan = ScanKill(sql);
  ASSERT_TRUE(scan.readable);
  EXPECT_TRUE(scan.is_kill);
  EXPECT_TRUE(scan.kill.parsed);
  EXPECT_EQ(scan.kill.target, target);
  EXPECT_EQ(scan.kill.whole_connection, whole_connection);
}

void ExpectUnparsedKill(std::string_view sql) {
  SCOPED_TRACE(sql);
  KillScan scan = ScanKill(sql);
  ASSERT_TRUE(scan.readable);
  EXPECT_TRUE(scan.is_kill);
  EXPECT_FALSE(scan.kill.parsed);
}

void ExpectNoKill(std::string_view sql) {
  SCOPED_TRACE(sql);
  KillScan scan = ScanKill(sql);
  ASSERT_TRUE(scan.readable);
  EXPECT_FALSE(scan.is_kill);
}

void ExpectUnreadable(std::string_view sql, SqlMode mode = {}) {
  SCOPED_TRACE(sql);
  EXPECT_FALSE(Tokenize(sql, kMany, mode).has_value());
}

using Strings = std::vector<std::string>;

// ---- KILL --------------------------------------------------------------------------------------

TEST(MysqlSqlScan, PlainKillForms) {
  ExpectKill("KILL 5", "5", true);
  ExpectKill("kill 5", "5", true);
  ExpectKill("  KILL\t42  ", "42", true);
  ExpectKill("KILL CONNECTION 5", "5", true);
  ExpectKill("Kill Connection 5", "5", true);
  ExpectKill("KILL QUERY 7", "7", false);
  ExpectKill("KILL HARD 5", "5", true);
  ExpectKill("KILL SOFT QUERY 9", "9", false);
  ExpectKill("kill hard connection 12", "12", true);
  ExpectKill("KILL 005", "5", true);
  ExpectKill("KILL 0", "0", true);
  ExpectKill("KILL 000", "0", true);
  ExpectKill("KILL 5;", "5", true);
  ExpectKill("KILL 5 ; ", "5", true);
  ExpectKill("KILL/**/5", "5", true);
  ExpectKill("KILL#x\n5", "5", true);
  ExpectKill("KILL 5 -- trailing", "5", true);
  ExpectKill("KILL\n5\n", "5", true);
  ExpectKill("KILL 18446744073709551616", "18446744073709551616", true);
}

TEST(MysqlSqlScan, OtherKillFormsAreNotParsed) {
  ExpectUnparsedKill("KILL");
  ExpectUnparsedKill("KILL USER bob");
  ExpectUnparsedKill("KILL QUERY ID 5");
  ExpectUnparsedKill("KILL 5+1");
  ExpectUnparsedKill("KILL (5)");
  ExpectUnparsedKill("KILL -5");
  ExpectUnparsedKill("KILL 0x5");
  ExpectUnparsedKill("KILL 5.0");
  ExpectUnparsedKill("KILL 1e3");
  ExpectUnparsedKill("KILL '5'");
  ExpectUnparsedKill("KILL @id");
  ExpectUnparsedKill("KILL 5 6");
  ExpectUnparsedKill("KILL QUERY QUERY 5");
  ExpectUnparsedKill("KILL HARD SOFT 5");
  ExpectUnparsedKill("KILL CONNECTION QUERY 5");
  ExpectUnparsedKill("KILL QUERY");
  ExpectUnparsedKill("KILL 5abc");
}

TEST(MysqlSqlScan, NotKill) {
  ExpectNoKill("");
  ExpectNoKill("SELECT 1");
  ExpectNoKill("KILLER 5");
  ExpectNoKill("`KILL` 5");
  ExpectNoKill("'KILL 5'");
  ExpectNoKill("\"KILL 5\"");
  ExpectNoKill("@KILL 5");
  ExpectNoKill("SELECT kill FROM t");
  ExpectNoKill("SELECT 'a;KILL 5'");
  ExpectNoKill("SELECT \"a;KILL 5\"");
  ExpectNoKill("SELECT `a;KILL 5`");
  ExpectNoKill("/* KILL 5 */ SELECT 1");
  ExpectNoKill("-- KILL 5\nSELECT 1");
  ExpectNoKill("# KILL 5\nSELECT 1");
  ExpectNoKill("# KILL 5");
  ExpectNoKill("/*+ KILL 5 */ SELECT 1");
  EXPECT_FALSE(IsKill({}));
  EXPECT_FALSE(ParseKill({}).parsed);
}

TEST(MysqlSqlScan, LeadingComments) {
  ExpectKill("/* c */ KILL 5", "5", true);
  ExpectKill("/* multi\nline */KILL 5", "5", true);
  ExpectKill("/**/KILL 5", "5", true);
  ExpectKill("/***/KILL 5", "5", true);
  ExpectKill("-- c\nKILL 5", "5", true);
  ExpectKill("--\tc\nKILL 5", "5", true);
  ExpectKill("--\nKILL 5", "5", true);
  ExpectKill("--\r\nKILL 5", "5", true);
  ExpectKill("# c\nKILL 5", "5", true);
  ExpectKill("#\nKILL 5", "5", true);
  ExpectKill("/* a */ -- b\n # c\n /* d */ KILL QUERY 5", "5", false);
  ExpectKill("/* KILL 6 */ KILL 5", "5", true);
}

TEST(MysqlSqlScan, ExecutableComments) {
  ExpectKill("/*!50000 KILL 5 */", "5", true);
  ExpectKill("/*!50000KILL 5*/", "5", true);
  ExpectKill("/*! KILL 5 */", "5", true);
  ExpectKill("/*!KILL 5*/", "5", true);
  ExpectKill("/*M! KILL 5 */", "5", true);
  ExpectKill("/*M!100101 KILL QUERY 5 */", "5", false);
  ExpectKill("/*!100101 KILL 5 */", "5", true);
  ExpectKill("/* plain */ /*!50700 KILL 5 */ -- x", "5", true);
  EXPECT_EQ(Texts("/*!50000 KILL 5 */"), (Strings{"KILL", "5"}));
  EXPECT_EQ(Texts("SELECT /*!40001 SQL_NO_CACHE */ * FROM t"),
            (Strings{"SELECT", "SQL_NO_CACHE", "*", "FROM", "t"}));
  EXPECT_EQ(Texts("/*!40101 SET NAMES utf8 */;"), (Strings{"SET", "NAMES", "utf8", ";"}));
  // Fewer than five digits are no version; a seventh is a token of its own.
  EXPECT_EQ(Texts("/*!5000 KILL 5 */"), (Strings{"5000", "KILL", "5"}));
  EXPECT_EQ(Texts("/*!1234567 x */"), (Strings{"7", "x"}));
  // Only the first */ closes; outside an executable comment */ is two bytes of punctuation.
  EXPECT_EQ(Texts("/*! 1 */ */"), (Strings{"1", "*", "/"}));
  EXPECT_EQ(Texts("*/"), (Strings{"*", "/"}));
  EXPECT_EQ(Texts("/*!*/"), Strings{});
  EXPECT_EQ(Texts("/*M!*/ 1"), Strings{"1"});
  // A statement boundary inside one.
  KillScan scan = ScanKill("SELECT 1 /*!50000 ; KILL 5 */");
  ASSERT_TRUE(scan.readable);
  EXPECT_EQ(scan.statements, 2u);
  EXPECT_TRUE(scan.kill.parsed);
  EXPECT_EQ(scan.kill.target, "5");
}

TEST(MysqlSqlScan, ConditionalTokens) {
  const std::vector<Token> tokens = Tokenize("a /*!50000 b */ /*! c */ /*M! d */ e", kMany).value();
  ASSERT_EQ(tokens.size(), 5u);
  EXPECT_FALSE(tokens[0].conditional);
  EXPECT_TRUE(tokens[1].conditional);
  EXPECT_FALSE(tokens[2].conditional);  // /*! without a version is expanded by every server
  EXPECT_TRUE(tokens[3].conditional);   // MySQL skips /*M!
  EXPECT_FALSE(tokens[4].conditional);
}

TEST(MysqlSqlScan, KillBehindSkippableCommentIsStillAKill) {
  // A server that skips the comment runs "KILL 5"; one that expands it reads something else.
  ExpectUnparsedKill("/*!99999 SELECT 1 */ KILL 5");
  ExpectUnparsedKill("/*M!999999 SELECT 1 */ KILL 5");
  ExpectUnparsedKill("/*M! SELECT */ KILL 5");
  ExpectUnparsedKill("/*!99999 SELECT 1 */ /*!99999 x */ KILL 5");
  ExpectUnparsedKill("/*!99999 SELECT 1; x */ KILL 5");
  ExpectUnparsedKill("KILL /*!99999 QUERY */ 5");
  ExpectUnparsedKill("/*!99999 KILL */ 5");
  // Expanded by every server: an ordinary prefix.
  ExpectNoKill("/*! SELECT 1 */ KILL 5");
  ExpectNoKill("SELECT 1 /*!99999 x */ KILL 5");
}

TEST(MysqlSqlScan, ExecutableCommentsThatReadDifferentlyAreUnreadable) {
  // A skipping server ends the comment at the first */ and runs KILL 5; an expanding one reads
  // a string.
  ExpectUnreadable("/*!99999 ' */ KILL 5; -- ' */");
  ExpectUnreadable("/*!50000 SELECT \" */ KILL 5; -- \" */");
  ExpectUnreadable("/*! SELECT 1 -- */\n KILL 5 */");
  ExpectUnreadable("/*! SELECT 1 # */\n KILL 5 */");
  // A nested comment: the skip allows one level, the expansion none.
  ExpectUnreadable("/*!50000 a /* b */ c */");
  ExpectUnreadable("/*!50000 SELECT '/*' */ KILL 5");
  ExpectUnreadable("/*!99999 '/*' */ ' */ KILL 5; -- '");
  ExpectUnreadable("/*!50000 a /*!50000 b */ c */");
  ExpectUnreadable("/*!/*/ */");
  // Unterminated.
  ExpectUnreadable("/*!50000 KILL 5");
  ExpectUnreadable("/*!");
  ExpectUnreadable("/*M!100101 KILL 5 *");
}

// ---- statements ---------------------------------------------------------------------------------

TEST(MysqlSqlScan, SplitStatements) {
  KillScan scan = ScanKill("SELECT 1; KILL QUERY 7");
  ASSERT_TRUE(scan.readable);
  EXPECT_EQ(scan.statements, 2u);
  EXPECT_TRUE(scan.kill.parsed);
  EXPECT_EQ(scan.kill.target, "7");
  EXPECT_FALSE(scan.kill.whole_connection);

  const std::vector<Token> tokens = Tokenize(";; SELECT 1 ;; SET @a = 2 ;", kMany).value();
  std::vector<std::span<const Token>> statements = SplitStatements(tokens);
  ASSERT_EQ(statements.size(), 2u);
  ASSERT_EQ(statements[0].size(), 2u);
  EXPECT_EQ(statements[0][0].text, "SELECT");
  EXPECT_EQ(statements[0].data(), &tokens[2]);
  ASSERT_EQ(statements[1].size(), 4u);
  EXPECT_TRUE(IsKeyword(statements[1][0], "SET"));
  EXPECT_EQ(statements[1][1].text, "@a");

  EXPECT_TRUE(SplitStatements({}).empty());
  EXPECT_TRUE(SplitStatements(Tokenize(" ; ;; ", kMany).value()).empty());
  EXPECT_EQ(ScanKill("SELECT 'a;KILL 5'").statements, 1u);
  EXPECT_EQ(ScanKill("SELECT 1 -- ; KILL 5").statements, 1u);
  EXPECT_EQ(ScanKill("SELECT 1 /* ; KILL 5 */").statements, 1u);
  ExpectKill("SELECT 1;KILL 5;SELECT 2", "5", true);
  ExpectKill("SELECT 'a;b'; /* x */ KILL 5", "5", true);
}

TEST(MysqlSqlScan, IsKeyword) {
  const std::vector<Token> tokens =
      Tokenize("select SeLeCt `select` 'select' selects", kMany).value();
  EXPECT_TRUE(IsKeyword(tokens[0], "SELECT"));
  EXPECT_TRUE(IsKeyword(tokens[1], "SELECT"));
  EXPECT_FALSE(IsKeyword(tokens[2], "SELECT"));
  EXPECT_FALSE(IsKeyword(tokens[3], "SELECT"));
  EXPECT_FALSE(IsKeyword(tokens[4], "SELECT"));
  EXPECT_FALSE(IsKeyword(tokens[0], "SELEC"));
  EXPECT_FALSE(IsKeyword(Token{TokenKind::kWord, "K\xc4\xb0LL"}, "KILL"));
}

// ---- strings and identifiers --------------------------------------------------------------------

TEST(MysqlSqlScan, Strings) {
  EXPECT_EQ(Texts("SELECT 'a;KILL 5'"), (Strings{"SELECT", "'a;KILL 5'"}));
  EXPECT_EQ(Kinds("'a' \"b\" `c`"), (std::vector<TokenKind>{TokenKind::kString, TokenKind::kString,
                                                            TokenKind::kQuotedIdent}));
  EXPECT_EQ(Texts(R"('it''s' "say ""hi""" `a``b`)"),
            (Strings{"'it''s'", R"("say ""hi""")", "`a``b`"}));
  EXPECT_EQ(Texts(R"('it\'s' "a\"b" 'c\\' 'd')"),
            (Strings{R"('it\'s')", R"("a\"b")", R"('c\\')", "'d'"}));
  EXPECT_EQ(Texts(R"(`a\` b)"), (Strings{R"(`a\`)", "b"}));  // no escapes in identifiers
  EXPECT_EQ(Texts("'' \"\" ''''"), (Strings{"''", "\"\"", "''''"}));
  EXPECT_EQ(Texts("'a''"), Strings{"<nullopt>"});
  EXPECT_EQ(Texts("_utf8mb4'x' N'y' X'ff' B'01'"),
            (Strings{"_utf8mb4", "'x'", "N", "'y'", "X", "'ff'", "B", "'01'"}));
  EXPECT_EQ(Texts("'a' 'b'"), (Strings{"'a'", "'b'"}));
  EXPECT_EQ(Texts("'/* -- # ;'"), Strings{"'/* -- # ;'"});
  EXPECT_EQ(Texts("/* ' */ 'x'"), Strings{"'x'"});
  EXPECT_EQ(Texts("-- '\n'x'"), Strings{"'x'"});
  // An escaped quote keeps the string open over what would be a second statement.
  ExpectNoKill(R"(SELECT 'a\'; KILL 5; -- ')");
  ExpectNoKill(R"(SELECT "a\"; KILL 5; -- ")");
}

TEST(MysqlSqlScan, SqlModes) {
  const SqlMode no_escapes{.no_backslash_escapes = true};
  const SqlMode ansi{.ansi_quotes = true};
  EXPECT_EQ(Texts(R"('a\' b)", no_escapes), (Strings{R"('a\')", "b"}));
  EXPECT_EQ(Texts(R"("a\" b)", no_escapes), (Strings{R"("a\")", "b"}));
  EXPECT_EQ(Texts(R"("a\" b)", ansi), (Strings{R"("a\")", "b"}));
  EXPECT_EQ(Texts(R"('a\'' b)", ansi), (Strings{R"('a\'')", "b"}));
  EXPECT_EQ(Texts("\"a\"\"b\"", ansi), Strings{"\"a\"\"b\""});
  std::vector<Token> tokens = Tokenize("\"x\" @\"y\"", kMany, ansi).value();
  EXPECT_EQ(tokens[0].kind, TokenKind::kQuotedIdent);
  EXPECT_EQ(tokens[1].kind, TokenKind::kVariable);
  // The same bytes hold a KILL only under NO_BACKSLASH_ESCAPES.
  KillScan scan = ScanKill(R"(SELECT 'a\'; KILL 5; -- ')", no_escapes);
  ASSERT_TRUE(scan.readable);
  EXPECT_EQ(scan.statements, 2u);
  EXPECT_TRUE(scan.kill.parsed);
  scan = ScanKill(R"(SELECT "a\"; KILL 5; -- ")", ansi);
  ASSERT_TRUE(scan.readable);
  EXPECT_TRUE(scan.kill.parsed);
}

TEST(MysqlSqlScan, UnterminatedIsUnreadable) {
  ExpectUnreadable("SELECT 'abc");
  ExpectUnreadable("SELECT \"abc");
  ExpectUnreadable("SELECT `abc");
  ExpectUnreadable("SELECT 'abc\\'");
  ExpectUnreadable("SELECT 'abc\\");
  ExpectUnreadable("'");
  ExpectUnreadable("`a``");
  ExpectUnreadable("KILL 5; SELECT 'x");
  ExpectUnreadable("/* abc");
  ExpectUnreadable("SELECT 1 /* x *");
  ExpectUnreadable("/*/");
  ExpectUnreadable("/*");
  ExpectUnreadable("/*M");
  ExpectUnreadable("@'x");
  ExpectUnreadable("@`x");
  ExpectUnreadable("@@`x");
  ExpectUnreadable("SELECT 'a' /*!50000 'b */");
  // Fine: the lone slash and star, and a line comment to the end.
  EXPECT_EQ(Texts("1 / 2 * 3"), (Strings{"1", "/", "2", "*", "3"}));
  EXPECT_EQ(Texts("SELECT 1 -- no newline"), (Strings{"SELECT", "1"}));
}

TEST(MysqlSqlScan, MaxTokens) {
  EXPECT_TRUE(Tokenize("SELECT 1, 2", 4).has_value());
  EXPECT_FALSE(Tokenize("SELECT 1, 2", 3).has_value());
  EXPECT_TRUE(Tokenize("", 0).has_value());
  EXPECT_TRUE(Tokenize(" /* x */ -- y", 0).has_value());
  EXPECT_FALSE(Tokenize("x", 0).has_value());
  EXPECT_TRUE(Tokenize("'a;b;c' /* d e f */ `g h`", 2).has_value());
  const std::string many(100000, ';');
  EXPECT_EQ(Tokenize(many, many.size())->size(), many.size());
  EXPECT_FALSE(Tokenize(many, many.size() - 1).has_value());
}

// ---- variables, numbers, words -----------------------------------------------------------------

TEST(MysqlSqlScan, Variables) {
  EXPECT_EQ(Texts("@a @@session.sql_mode @`x y` @'q' @\"r\" @@GLOBAL.max_connections"),
            (Strings{"@a", "@@session.sql_mode", "@`x y`", "@'q'", "@\"r\"",
                     "@@GLOBAL.max_connections"}));
  EXPECT_EQ(
      Kinds("@a @@b @`c`"),
      (std::vector<TokenKind>{TokenKind::kVariable, TokenKind::kVariable, TokenKind::kVariable}));
  EXPECT_EQ(Texts("SET @a:=1"), (Strings{"SET", "@a", ":", "=", "1"}));
  EXPECT_EQ(Texts("@a.b$c_1"), Strings{"@a.b$c_1"});
  EXPECT_EQ(Texts("@`a``b`"), Strings{"@`a``b`"});
  EXPECT_EQ(Texts("@'a\\'b'"), Strings{"@'a\\'b'"});
  EXPECT_EQ(Texts("@@`x`"), Strings{"@@`x`"});
  EXPECT_EQ(Texts("'u'@'h'"), (Strings{"'u'", "@'h'"}));
  EXPECT_EQ(Texts("u@h"), (Strings{"u", "@h"}));
  EXPECT_EQ(Texts("@"), Strings{"@"});
  EXPECT_EQ(Texts("@ a"), (Strings{"@", "a"}));
  EXPECT_EQ(Texts("@@ a"), (Strings{"@", "@", "a"}));
  EXPECT_EQ(Texts("@@@x"), (Strings{"@", "@@x"}));
  EXPECT_EQ(Kinds("@"), std::vector<TokenKind>{TokenKind::kPunct});
}

TEST(MysqlSqlScan, Numbers) {
  EXPECT_EQ(Texts("1 42 1.5 .5 1. 1e10 1E+3 1.5e-3 0x1F 0XaB 0b101 007"),
            (Strings{"1", "42", "1.5", ".5", "1.", "1e10", "1E+3", "1.5e-3", "0x1F", "0XaB",
                     "0b101", "007"}));
  for (TokenKind kind : Kinds("1 1.5 .5 1e10 0x1F 0b1")) {
    EXPECT_EQ(kind, TokenKind::kNumber);
  }
  // Digits followed by letters form a word, as MySQL reads them.
  EXPECT_EQ(Texts("123abc 1e 1e+ 0x 0xZZ 0x1g 0b2 1_2 9$"),
            (Strings{"123abc", "1e", "1e", "+", "0x", "0xZZ", "0x1g", "0b2", "1_2", "9$"}));
  EXPECT_EQ(Kinds("123abc"), std::vector<TokenKind>{TokenKind::kWord});
  EXPECT_EQ(Texts("1.5abc 1e5x"), (Strings{"1.5", "abc", "1e5", "x"}));
  EXPECT_EQ(Texts("a.b t.5"), (Strings{"a", ".", "b", "t", ".5"}));
  EXPECT_EQ(Texts("1-2+3"), (Strings{"1", "-", "2", "+", "3"}));
}

TEST(MysqlSqlScan, WordsAndPunct) {
  EXPECT_EQ(
      Texts("SELECT a_b, $x, c$d FROM t1 WHERE x>=1"),
      (Strings{"SELECT", "a_b", ",", "$x", ",", "c$d", "FROM", "t1", "WHERE", "x", ">", "=", "1"}));
  EXPECT_EQ(Texts("(){}[];:?!~^|&%\\"), (Strings{"(", ")", "{", "}", "[", "]", ";", ":", "?", "!",
                                                 "~", "^", "|", "&", "%", "\\"}));
  // MySQL 9 reads $$...$$ and $tag$...$tag$ as text, others as identifiers.
  ExpectUnreadable("SELECT $$'$$; KILL 5; -- '");
  ExpectUnreadable("SELECT $a$ x $a$");
  ExpectUnreadable("$$");
}

TEST(MysqlSqlScan, DashDash) {
  EXPECT_EQ(Texts("--x"), (Strings{"-", "-", "x"}));
  EXPECT_EQ(Kinds("--x"),
            (std::vector<TokenKind>{TokenKind::kPunct, TokenKind::kPunct, TokenKind::kWord}));
  EXPECT_EQ(Texts("-- x"), Strings{});
  EXPECT_EQ(Texts("--"), Strings{});
  EXPECT_EQ(Texts("1--1"), (Strings{"1", "-", "-", "1"}));
  EXPECT_EQ(Texts("1 -- x\n2"), (Strings{"1", "2"}));
  EXPECT_EQ(Texts("1 --\x01x\n2"), (Strings{"1", "2"}));
  EXPECT_EQ(Texts("1 --\x7fx\n2"), (Strings{"1", "2"}));
  EXPECT_EQ(Texts("---x"), (Strings{"-", "-", "-", "x"}));
  EXPECT_EQ(Texts("--- x"), Strings{"-"});  // the second and third dashes start the comment
  EXPECT_EQ(Texts("- - x"), (Strings{"-", "-", "x"}));
  ExpectNoKill("--x\nKILL 5");  // not a comment: "- - x KILL 5" is one statement
  ExpectKill("SELECT 1 --x ; KILL 5 -- x", "5", true);
}

TEST(MysqlSqlScan, HashComment) {
  EXPECT_EQ(Texts("SELECT 1 # comment\n, 2"), (Strings{"SELECT", "1", ",", "2"}));
  EXPECT_EQ(Texts("#"), Strings{});
  EXPECT_EQ(Texts("a#b\nc"), (Strings{"a", "c"}));
  EXPECT_EQ(Texts("#a\r\nb"), Strings{"b"});
}

TEST(MysqlSqlScan, NulEndsLineCommentsAsInTheServer) {
  const std::string hash("# x\0KILL 5", 10);
  EXPECT_EQ(Texts(hash), (Strings{std::string(1, '\0'), "KILL", "5"}));
  const std::string dashes("SELECT 1 -- x\0; KILL 5", 22);
  ExpectKill(dashes, "5", true);
  const std::string dashes_nul("--\0KILL 5", 9);
  EXPECT_EQ(Texts(dashes_nul), (Strings{std::string(1, '\0'), "KILL", "5"}));
  // In a block comment or a string a NUL is just a byte.
  const std::string block("/* \0 */ KILL 5", 14);
  ExpectKill(block, "5", true);
  const std::string quoted("'a\0b'", 5);
  EXPECT_EQ(Texts(quoted), Strings{quoted});
}

TEST(MysqlSqlScan, HighBytesAndNul) {
  EXPECT_EQ(Texts("SELECT \xc3\xa9t\xc3\xa9, `\xe6\x97\xa5`"),
            (Strings{"SELECT", "\xc3\xa9t\xc3\xa9", ",", "`\xe6\x97\xa5`"}));
  EXPECT_EQ(Texts("KILL\x80 5"), (Strings{"KILL\x80", "5"}));
  ExpectNoKill("KILL\xa0 5");
  const std::string nul("KILL\0 5", 7);
  EXPECT_EQ(Texts(nul), (Strings{"KILL", std::string(1, '\0'), "5"}));
  ExpectUnparsedKill(nul);
  // Every single byte, and every byte after each opener.
  for (int b = 0; b < 256; ++b) {
    const std::string byte(1, static_cast<char>(b));
    for (std::string_view prefix :
         {"", "'", "\"", "`", "@", "@@", "/*", "/*!", "--", "#", "0x", "1e", "$", "\\", "'\\"}) {
      std::string sql = std::string(prefix) + byte;
      Tokenize(sql, kMany);
      Tokenize(sql + "'", kMany, SqlMode{.no_backslash_escapes = true});
    }
  }
}

// Random bytes from an alphabet rich in the bytes the lexer cares about: never a crash, and the
// tokens are in-order, non-overlapping views into the input.
TEST(MysqlSqlScan, RandomBytes) {
  static constexpr std::string_view kAlphabet =
      "'\"`\\/*!M-#@$.;:= \n\t0159xXbBeE+aKILL\x80\xa0\xff";
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> length(0, 48);
  std::uniform_int_distribution<size_t> pick(0, kAlphabet.size());  // size() stands for NUL
  size_t readable = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string sql;
    for (size_t n = length(rng); n > 0; --n) {
      size_t k = pick(rng);
      sql.push_back(k == kAlphabet.size() ? '\0' : kAlphabet[k]);
    }
    for (SqlMode mode : {SqlMode{}, SqlMode{.no_backslash_escapes = true, .ansi_quotes = true}}) {
      std::optional<std::vector<Token>> tokens = Tokenize(sql, 16, mode);
      if (!tokens.has_value()) {
        continue;
      }
      ++readable;
      ASSERT_LE(tokens->size(), 16u);
      const char* last = sql.data();
      for (const Token& t : *tokens) {
        ASSERT_FALSE(t.text.empty()) << sql;
        ASSERT_GE(t.text.data(), last) << sql;
        ASSERT_LE(t.text.data() + t.text.size(), sql.data() + sql.size()) << sql;
        if (t.kind == TokenKind::kPunct) {
          ASSERT_EQ(t.text.size(), 1u) << sql;
        }
        last = t.text.data() + t.text.size();
      }
      for (std::span<const Token> statement : SplitStatements(*tokens)) {
        ASSERT_FALSE(statement.empty());
        if (ParseKill(statement).parsed) {
          ASSERT_TRUE(IsKill(statement)) << sql;
        }
      }
    }
  }
  EXPECT_GT(readable, 1000u);  // the alphabet does not make everything unreadable
}

TEST(MysqlSqlScan, LongInputsStayLinear) {
  // Inputs that would be quadratic for a lexer that searched ahead from every position.
  for (std::string_view unit : {"/*", "'", "$a ", "/*!1 */", "-- \n", "@", "0x", "`"}) {
    std::string sql;
    while (sql.size() < 1 << 20) {
      sql.append(unit);
    }
    Tokenize(sql, sql.size());
  }
}

}  // namespace
}  // namespace wirepool::codec::mysql::sql
