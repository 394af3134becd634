#include "proto/config_loader.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace wirepool::config {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kContract[] = R"(workers: 1
users:
  - name: app
    password: app            # or password_env / password_file
proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
    max_backend_connections: 20
    max_client_connections: 10000
    connection_borrow_timeout: 5s
)";

// A user and a proxy section that load; tests append or replace parts of them.
constexpr char kUsers[] = R"(users:
  - name: app
    password: app
)";
constexpr char kProxy[] = R"(proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
)";

// Stands in for the codec registry: knows postgres with scram-sha-256 (default) and md5.
LoadOptions Options() {
  LoadOptions options;
  options.check_protocol = [](std::string_view protocol,
                              std::string_view client_auth) -> absl::StatusOr<std::string> {
    if (protocol != "postgres") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown protocol '", std::string(protocol), "'"));
    }
    if (client_auth.empty()) {
      return std::string("scram-sha-256");
    }
    if (client_auth != "scram-sha-256" && client_auth != "md5") {
      return absl::InvalidArgumentError(absl::StrCat("client_auth '", std::string(client_auth),
                                                     "' is not supported by postgres"));
    }
    return std::string(client_auth);
  };
  options.check_server_reset = [](std::string_view protocol,
                                  std::string_view method) -> absl::StatusOr<std::string> {
    if (method.empty() || method == "discard_all") {
      return std::string("discard_all");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("server_reset '", std::string(method), "' is not supported by postgres"));
  };
  return options;
}

absl::StatusOr<Settings> Load(std::string_view yaml) { return LoadString(yaml, Options()); }

// The error lines of a load that must fail.
std::vector<std::string> Errors(std::string_view yaml) {
  absl::StatusOr<Settings> settings = Load(yaml);
  EXPECT_FALSE(settings.ok()) << "loaded:\n" << yaml;
  if (settings.ok()) {
    return {};
  }
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
  return absl::StrSplit(settings.status().message(), '\n');
}

std::string ErrorText(std::string_view yaml) {
  absl::StatusOr<Settings> settings = Load(yaml);
  EXPECT_FALSE(settings.ok()) << "loaded:\n" << yaml;
  return settings.ok() ? "" : std::string(settings.status().message());
}

// A file in the test's temp dir, removed when the object goes.
class TempFile {
 public:
  TempFile(absl::string_view name, absl::string_view contents)
      : path_(std::filesystem::path(::testing::TempDir()) /
              absl::StrCat("config_loader_test_", ::getpid(), "_", name)) {
    std::ofstream out(path_, std::ios::binary);
    out << contents;
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// Sets an environment variable for the scope of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(ConfigLoaderTest, ContractExampleLoadsWithDefaults) {
  absl::StatusOr<Settings> settings = Load(kContract);
  ASSERT_TRUE(settings.ok()) << settings.status();

  EXPECT_EQ(settings->workers, 1u);
  EXPECT_EQ(settings->shutdown_timeout, absl::Seconds(30));
  EXPECT_EQ(settings->log_level, "info");

  ASSERT_THAT(settings->users, SizeIs(1));
  const UserSettings& user = settings->users[0];
  EXPECT_EQ(user.name, "app");
  EXPECT_EQ(user.password, "app");
  EXPECT_EQ(user.backend_user, "app");
  EXPECT_EQ(user.backend_password, "app");

  ASSERT_THAT(settings->proxies, SizeIs(1));
  const ProxySettings& proxy = settings->proxies[0];
  EXPECT_EQ(proxy.name, "pg");
  EXPECT_EQ(proxy.protocol, "postgres");
  EXPECT_EQ(proxy.listen.host, "127.0.0.1");
  EXPECT_EQ(proxy.listen.port, 6432);
  EXPECT_EQ(proxy.pool_mode, "session");
  ASSERT_THAT(proxy.backends, SizeIs(1));
  EXPECT_EQ(proxy.backends[0].host, "127.0.0.1");
  EXPECT_EQ(proxy.backends[0].port, 5432);
  EXPECT_EQ(proxy.max_backend_connections, 20u);
  EXPECT_EQ(proxy.max_client_connections, 10000u);
  EXPECT_EQ(proxy.connection_borrow_timeout, absl::Seconds(5));
  EXPECT_EQ(proxy.server_connect_timeout, absl::Seconds(5));
  EXPECT_EQ(proxy.server_idle_timeout, absl::Minutes(10));
  EXPECT_EQ(proxy.server_lifetime, absl::Hours(1));
  EXPECT_EQ(proxy.client_login_timeout, absl::Seconds(15));
  EXPECT_EQ(proxy.client_auth, "scram-sha-256");
}

TEST(ConfigLoaderTest, ScramKeysAreDerivedWithAFreshSalt) {
  absl::StatusOr<Settings> first = Load(kContract);
  absl::StatusOr<Settings> second = Load(kContract);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  const crypto::ScramKeys& keys = first->users[0].scram;
  EXPECT_TRUE(keys.valid());
  EXPECT_EQ(keys.iterations, 4096);
  EXPECT_EQ(keys.salt.size(), 16u);
  EXPECT_EQ(keys.stored_key.size(), 32u);
  EXPECT_EQ(keys.server_key.size(), 32u);
  EXPECT_NE(keys.salt, second->users[0].scram.salt);
  EXPECT_EQ(keys.stored_key, crypto::DeriveScramKeys("app", keys.salt, keys.iterations).stored_key);
}

TEST(ConfigLoaderTest, EveryFieldIsRead) {
  TempFile backend_secret("every_field_backend", "backend-secret\n");
  absl::StatusOr<Settings> settings = Load(absl::StrCat(R"(
workers: 0
shutdown_timeout: 1m30s
log_level: debug
users:
  - name: app
    password: app-pw
    backend_user: app_owner
    backend_password_file: )",
                                                        backend_secret.path(), R"(
  - name: report
    password: report-pw
proxies:
  - name: pg
    protocol: postgres
    listen: "[::1]:0"
    pool_mode: session
    backends:
      - db1.internal:5433
      - "[fe80::1]:5432"
    max_backend_connections: 3
    max_client_connections: 7
    connection_borrow_timeout: 250ms
    server_connect_timeout: 2s
    server_idle_timeout: 0
    server_lifetime: 0s
    client_login_timeout: 15m
    client_auth: md5
)"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->workers, 0u);  // one per core, decided at start
  EXPECT_EQ(settings->shutdown_timeout, absl::Seconds(90));
  EXPECT_EQ(settings->log_level, "debug");
  ASSERT_THAT(settings->users, SizeIs(2));
  EXPECT_EQ(settings->users[0].password, "app-pw");
  EXPECT_EQ(settings->users[0].backend_user, "app_owner");
  EXPECT_EQ(settings->users[0].backend_password, "backend-secret");
  EXPECT_EQ(settings->users[1].name, "report");
  EXPECT_EQ(settings->users[1].backend_password, "report-pw");
  EXPECT_TRUE(settings->users[1].scram.valid());

  const ProxySettings& proxy = settings->proxies[0];
  EXPECT_EQ(proxy.listen.host, "::1");
  EXPECT_EQ(proxy.listen.port, 0);
  ASSERT_THAT(proxy.backends, SizeIs(2));
  EXPECT_EQ(proxy.backends[0].host, "db1.internal");
  EXPECT_EQ(proxy.backends[0].port, 5433);
  EXPECT_EQ(proxy.backends[1].host, "fe80::1");
  EXPECT_EQ(proxy.max_backend_connections, 3u);
  EXPECT_EQ(proxy.max_client_connections, 7u);
  EXPECT_EQ(proxy.connection_borrow_timeout, absl::Milliseconds(250));
  EXPECT_EQ(proxy.server_connect_timeout, absl::Seconds(2));
  EXPECT_EQ(proxy.server_idle_timeout, absl::ZeroDuration());
  EXPECT_EQ(proxy.server_lifetime, absl::ZeroDuration());
  EXPECT_EQ(proxy.client_login_timeout, absl::Minutes(15));
  EXPECT_EQ(proxy.client_auth, "md5");
}

TEST(ConfigLoaderTest, UnknownKeyHasPathAndLine) {
  const std::string yaml = absl::StrReplaceAll(kContract, {{"listen:", "listn:"}});
  EXPECT_THAT(Errors(yaml), ElementsAre("proxies[0].listn (line 8): unknown key (did you mean "
                                        "'listen'?)",
                                        "proxies[0].listen (line 6): required (host:port; port 0 "
                                        "picks a free one)"));
}

TEST(ConfigLoaderTest, UnknownKeysAtEveryLevelAreAllReported) {
  EXPECT_THAT(Errors(R"(workerz: 1
users:
  - name: app
    password: app
    colour: blue
proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
    zzz: 1
)"),
              ElementsAre("workerz (line 1): unknown key (did you mean 'workers'?)",
                          "users[0].colour (line 5): unknown key",
                          "proxies[0].zzz (line 12): unknown key"));
}

TEST(ConfigLoaderTest, ManyErrorsAreReportedTogether) {
  EXPECT_THAT(
      Errors(R"(workers: lots
log_level: loud
users:
  - name: app
  - name: app
    password: x
proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1
    pool_mode: statement
    backends: []
    max_backend_connections: 0
    server_lifetime: forever
)"),
      ElementsAre(
          "workers (line 1): expected a non-negative integer no larger than 4294967295, "
          "got 'lots'",
          "proxies[0].server_lifetime (line 14): invalid duration 'forever' (write it "
          "with a unit, such as 5s, 250ms or 1m30s)",
          "log_level (line 2): unknown level 'loud' (expected trace, debug, info, warn or "
          "error)",
          "users[0] (line 4): one of password, password_env, password_file is required",
          "users[1].name (line 5): duplicate user name 'app' (also users[0])",
          "proxies[0].listen (line 10): invalid address '127.0.0.1': expected host:port",
          "proxies[0].pool_mode (line 11): unknown pool_mode 'statement' (expected "
          "transaction or session)",
          "proxies[0].backends (line 12): at least one backend (host:port, or the path of a "
          "Unix socket) is required",
          "proxies[0].max_backend_connections (line 13): must be at least 1"));
}

TEST(ConfigLoaderTest, BadDurations) {
  auto error_for = [](absl::string_view value) {
    return ErrorText(absl::StrCat(kUsers, kProxy, "    server_connect_timeout: ", value, "\n"));
  };
  EXPECT_EQ(error_for("5"),
            "proxies[0].server_connect_timeout (line 10): invalid duration '5' (write it with a "
            "unit, such as 5s, 250ms or 1m30s)");
  EXPECT_THAT(error_for("-5s"), HasSubstr("duration '-5s' must not be negative"));
  EXPECT_THAT(error_for("abc"), HasSubstr("invalid duration 'abc'"));
  EXPECT_THAT(error_for("inf"), HasSubstr("duration 'inf' is too long"));
  EXPECT_THAT(error_for("[5s]"), HasSubstr("expected a duration such as 5s, 250ms or 1m30s, got "
                                           "a list"));
  EXPECT_THAT(error_for("0"),
              HasSubstr("server_connect_timeout (line 10): must be greater than 0"));
  EXPECT_THAT(ErrorText(absl::StrCat("shutdown_timeout: 5 s\n", kUsers, kProxy)),
              HasSubstr("shutdown_timeout (line 1): invalid duration '5 s'"));

  absl::StatusOr<Settings> zero = Load(absl::StrCat("shutdown_timeout: 0\n", kUsers, kProxy));
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->shutdown_timeout, absl::ZeroDuration());
}

TEST(ConfigLoaderTest, ClientLoginTimeoutBounds) {
  auto load_with = [](absl::string_view value) {
    return Load(absl::StrCat(kUsers, kProxy, "    client_login_timeout: ", value, "\n"));
  };
  EXPECT_THAT(load_with("0").status().message(), HasSubstr("must be greater than 0"));
  EXPECT_THAT(load_with("15m1s").status().message(),
              HasSubstr("proxies[0].client_login_timeout (line 10): must be at most 15m"));
  EXPECT_TRUE(load_with("1m").ok());
}

TEST(ConfigLoaderTest, ScalarsAreTypeChecked) {
  auto error_for = [](absl::string_view workers) {
    return ErrorText(absl::StrCat("workers: ", workers, "\n", kUsers, kProxy));
  };
  EXPECT_THAT(error_for("-1"), HasSubstr("workers (line 1): expected a non-negative integer"));
  EXPECT_THAT(error_for("4294967296"), HasSubstr("got '4294967296'"));
  EXPECT_THAT(error_for("1.5"), HasSubstr("got '1.5'"));
  EXPECT_THAT(error_for("\"1\""), HasSubstr("got the string '1'"));
  EXPECT_THAT(error_for("[1]"), HasSubstr("got a list"));
  EXPECT_THAT(error_for("{a: 1}"), HasSubstr("got a map"));
  EXPECT_THAT(error_for(""), HasSubstr("got nothing"));

  EXPECT_THAT(ErrorText(absl::StrCat(kUsers, kProxy, "    protocol: [postgres]\n")),
              HasSubstr("proxies[0].protocol (line 10): duplicate key"));
  EXPECT_THAT(ErrorText(absl::StrCat(kUsers, "proxies:\n  - name: [pg]\n")),
              HasSubstr("proxies[0].name (line 5): expected a string, got a list"));
  EXPECT_THAT(ErrorText(absl::StrCat(kUsers, "proxies:\n  name: pg\n")),
              HasSubstr("proxies (line 5): expected a list, got a map"));
  EXPECT_THAT(ErrorText(absl::StrCat(kUsers, "proxies:\n  - pg\n")),
              HasSubstr("proxies[0] (line 5): expected a map, got a value"));
  EXPECT_THAT(ErrorText(absl::StrCat(kUsers, kProxy, "    backends: 127.0.0.1:5432\n")),
              HasSubstr("duplicate key"));
  EXPECT_THAT(ErrorText(absl::StrReplaceAll(
                  kContract, {{"backends: [\"127.0.0.1:5432\"]", "backends: 127.0.0.1:5432"}})),
              HasSubstr("proxies[0].backends (line 10): expected a list, got a value"));
}

TEST(ConfigLoaderTest, ATypeErrorIsNotReportedAgainAsMissing) {
  EXPECT_THAT(Errors(absl::StrReplaceAll(kContract, {{"pool_mode: session", "pool_mode: [a]"}})),
              ElementsAre("proxies[0].pool_mode (line 9): expected a string, got a list"));
  EXPECT_THAT(Errors(absl::StrCat(kUsers, "proxies:\n  - 1\n")),
              ElementsAre("proxies[0] (line 5): expected a map, got a value"));
}

TEST(ConfigLoaderTest, PasswordFromEnvironment) {
  ScopedEnv env("WIREPOOL_CONFIG_TEST_PASSWORD", "from-env");
  absl::StatusOr<Settings> settings = Load(absl::StrReplaceAll(
      kContract, {{"password: app ", "password_env: WIREPOOL_CONFIG_TEST_PASSWORD "}}));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->users[0].password, "from-env");
  EXPECT_EQ(settings->users[0].backend_password, "from-env");
  EXPECT_TRUE(settings->users[0].scram.valid());
}

TEST(ConfigLoaderTest, MissingEnvironmentVariable) {
  ::unsetenv("WIREPOOL_CONFIG_TEST_UNSET");
  EXPECT_THAT(Errors(absl::StrReplaceAll(
                  kContract, {{"password: app ", "password_env: WIREPOOL_CONFIG_TEST_UNSET "}})),
              ElementsAre("users[0].password_env (line 4): environment variable "
                          "'WIREPOOL_CONFIG_TEST_UNSET' is not set"));
}

TEST(ConfigLoaderTest, PasswordFromFileWithoutTrailingNewline) {
  TempFile file("password_file", "from-file\n");
  absl::StatusOr<Settings> settings = Load(
      absl::StrReplaceAll(kContract, {{"password: app ", "password_file: " + file.path() + " "}}));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->users[0].password, "from-file");
}

TEST(ConfigLoaderTest, UnreadablePasswordFile) {
  const std::string missing =
      (std::filesystem::path(::testing::TempDir()) / "config_loader_test_no_such_file").string();
  EXPECT_THAT(
      Errors(
          absl::StrReplaceAll(kContract, {{"password: app ", "password_file: " + missing + " "}})),
      ElementsAre(AllOf(HasSubstr("users[0].password_file (line 4): cannot read '" + missing + "'"),
                        HasSubstr("No such file"))));
}

TEST(ConfigLoaderTest, EmptyPasswordIsRejected) {
  TempFile file("empty_password_file", "\n");
  EXPECT_THAT(Errors(absl::StrReplaceAll(
                  kContract, {{"password: app ", "password_file: " + file.path() + " "}})),
              ElementsAre("users[0].password_file (line 4): password is empty"));
  EXPECT_THAT(Errors(absl::StrReplaceAll(kContract, {{"password: app ", "password: '' "}})),
              ElementsAre("users[0].password (line 4): password is empty"));
}

TEST(ConfigLoaderTest, PasswordFormsAreExclusive) {
  EXPECT_THAT(Errors(absl::StrCat(R"(users:
  - name: app
    password: a
    password_env: HOME
  - name: other
    password: b
    backend_password: c
    backend_password_env: HOME
)",
                                  kProxy)),
              ElementsAre("users[0] (line 2): only one of password, password_env, password_file "
                          "may be set",
                          "users[1] (line 5): only one of backend_password, backend_password_env, "
                          "backend_password_file may be set"));
}

TEST(ConfigLoaderTest, BackendPasswordFromEnvironment) {
  ScopedEnv env("WIREPOOL_CONFIG_TEST_BACKEND", "backend-env");
  absl::StatusOr<Settings> settings = Load(
      absl::StrCat(kUsers, "    backend_password_env: WIREPOOL_CONFIG_TEST_BACKEND\n", kProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->users[0].password, "app");
  EXPECT_EQ(settings->users[0].backend_password, "backend-env");
}

TEST(ConfigLoaderTest, PoolMode) {
  absl::StatusOr<Settings> settings =
      Load(absl::StrReplaceAll(kContract, {{"    pool_mode: session\n", ""}}));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].pool_mode, "transaction") << "the default";
  EXPECT_EQ(settings->proxies[0].idle_transaction_timeout, absl::ZeroDuration());
  EXPECT_EQ(settings->proxies[0].max_waiting_clients, 10000u);
  settings =
      Load(absl::StrReplaceAll(kContract, {{"pool_mode: session",
                                            "pool_mode: transaction\n    idle_transaction_timeout: "
                                            "30s\n    max_waiting_clients: 50"}}));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].pool_mode, "transaction");
  EXPECT_EQ(settings->proxies[0].idle_transaction_timeout, absl::Seconds(30));
  EXPECT_EQ(settings->proxies[0].max_waiting_clients, 50u);
  EXPECT_THAT(
      Errors(absl::StrReplaceAll(kContract, {{"pool_mode: session", "pool_mode: statement"}})),
      ElementsAre("proxies[0].pool_mode (line 9): unknown pool_mode 'statement' (expected "
                  "transaction or session)"));
}

TEST(ConfigLoaderTest, DuplicateNames) {
  EXPECT_THAT(Errors(absl::StrCat(R"(users:
  - name: app
    password: a
  - name: app
    password: b
proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6433
    pool_mode: session
    backends: ["127.0.0.1:5432"]
  - protocol: postgres
    listen: 127.0.0.1:6434
    pool_mode: session
    backends: ["127.0.0.1:5432"]
)")),
              ElementsAre("users[1].name (line 4): duplicate user name 'app' (also users[0])",
                          "proxies[1].name (line 12): duplicate proxy name 'pg' (also proxies[0])",
                          "proxies[2].name (line 17): required"));
}

TEST(ConfigLoaderTest, ListenAddressesMustDifferUnlessPortZero) {
  const std::string proxies = R"(proxies:
  - name: a
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
  - name: b
    protocol: postgres
    listen: 127.0.0.1:6432
    pool_mode: session
    backends: ["127.0.0.1:5432"]
)";
  EXPECT_THAT(Errors(absl::StrCat(kUsers, proxies)),
              ElementsAre("proxies[1].listen (line 12): 127.0.0.1:6432 is already the listen "
                          "address of proxies[0]"));
  EXPECT_TRUE(Load(absl::StrCat(kUsers, absl::StrReplaceAll(proxies, {{":6432", ":0"}}))).ok());
}

TEST(ConfigLoaderTest, Addresses) {
  auto listen_error = [](absl::string_view listen) {
    return ErrorText(absl::StrReplaceAll(kContract, {{"127.0.0.1:6432", listen}}));
  };
  EXPECT_THAT(listen_error("127.0.0.1:65536"),
              HasSubstr("proxies[0].listen (line 8): invalid address '127.0.0.1:65536': the port "
                        "must be a number from 0 to 65535"));
  EXPECT_THAT(listen_error("127.0.0.1:x"), HasSubstr("the port must be a number"));
  EXPECT_THAT(listen_error("'127.0.0.1:'"), HasSubstr("the port must be a number"));
  EXPECT_THAT(listen_error(":6432"), HasSubstr("missing host"));
  EXPECT_THAT(listen_error("::1:6432"), HasSubstr("IPv6 address in brackets"));
  EXPECT_THAT(listen_error("'[::1:6432'"), HasSubstr("missing ']'"));
  EXPECT_THAT(listen_error("'[::1]6432'"), HasSubstr("expected ':' and a port after ']'"));

  EXPECT_THAT(ErrorText(absl::StrReplaceAll(kContract, {{"127.0.0.1:5432", "db:0"}})),
              HasSubstr("proxies[0].backends[0] (line 10): invalid address 'db:0': the port must "
                        "be a number from 1 to 65535"));
}

TEST(ConfigLoaderTest, Workers) {
  EXPECT_THAT(Errors(absl::StrReplaceAll(kContract, {{"workers: 1", "workers: 65"}})),
              ElementsAre("workers (line 1): 65 is more than the 64 event-loop threads wirepool "
                          "runs"));
  absl::StatusOr<Settings> four =
      Load(absl::StrReplaceAll(kContract, {{"workers: 1", "workers: 4"}}));
  ASSERT_TRUE(four.ok()) << four.status();
  EXPECT_EQ(four->workers, 4u);
  absl::StatusOr<Settings> settings = Load(absl::StrCat(kUsers, kProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->workers, 1u);
}

TEST(ConfigLoaderTest, LimitsMustBePositive) {
  EXPECT_THAT(Errors(absl::StrCat(kUsers, kProxy, "    max_client_connections: 0\n")),
              ElementsAre("proxies[0].max_client_connections (line 10): must be at least 1"));
}

TEST(ConfigLoaderTest, ProtocolAndClientAuthAreChecked) {
  EXPECT_THAT(Errors(absl::StrReplaceAll(kContract, {{"protocol: postgres", "protocol: mysql"}})),
              ElementsAre("proxies[0].protocol (line 7): unknown protocol 'mysql'"));
  EXPECT_THAT(Errors(absl::StrCat(kUsers, kProxy, "    client_auth: trust\n")),
              ElementsAre("proxies[0].client_auth (line 10): client_auth 'trust' is not supported "
                          "by postgres"));
  EXPECT_THAT(Errors(absl::StrReplaceAll(kContract, {{"    protocol: postgres\n", ""}})),
              ElementsAre("proxies[0].protocol (line 6): required"));
  EXPECT_THAT(Errors(absl::StrCat(kUsers, kProxy, "    server_reset: change_user\n")),
              ElementsAre("proxies[0].server_reset (line 10): server_reset 'change_user' is not "
                          "supported by postgres"));
  absl::StatusOr<Settings> settings = Load(absl::StrCat(kUsers, kProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].server_reset, "discard_all");
}

TEST(ConfigLoaderTest, WithoutProtocolCheckAnythingIsAccepted) {
  absl::StatusOr<Settings> settings =
      LoadString(absl::StrCat(kUsers, absl::StrReplaceAll(kProxy, {{"postgres", "anything"}}),
                              "    client_auth: whatever\n"),
                 LoadOptions());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].protocol, "anything");
  EXPECT_EQ(settings->proxies[0].client_auth, "whatever");
}

TEST(ConfigLoaderTest, WholeDocumentProblems) {
  EXPECT_THAT(Errors(""), ElementsAre("config: the config is empty"));
  EXPECT_THAT(Errors("# only a comment\n"), ElementsAre("config: the config is empty"));
  EXPECT_THAT(Errors("- a\n- b\n"), ElementsAre("config (line 1): expected a map, got a list"));
  EXPECT_THAT(Errors(kUsers), ElementsAre("proxies: at least one proxy is required"));
  EXPECT_THAT(Errors(absl::StrCat(kContract, "---\nworkers: 1\n")),
              ElementsAre("config (line 15): only one YAML document is allowed"));
}

TEST(ConfigLoaderTest, YamlSyntaxErrorHasItsLine) {
  EXPECT_THAT(Errors("users:\n  - name: app\n    password: [a\nproxies: []\n"),
              ElementsAre(AllOf(HasSubstr("config (line 4, column"), HasSubstr("invalid YAML"))));
  EXPECT_THAT(Errors("workers: 1\n  bad indent: 2\n"),
              ElementsAre(AllOf(HasSubstr("config (line 2, column"), HasSubstr("invalid YAML"))));
}

TEST(ConfigLoaderTest, ErrorsNeverContainThePassword) {
  constexpr char kSecret[] = "hunter2-s3cret";
  TempFile secret_file("secret_file", absl::StrCat(kSecret, "\n"));
  ScopedEnv env("WIREPOOL_CONFIG_TEST_SECRET", kSecret);
  const std::vector<std::string> cases = {
      // The secret in a wrong shape or a wrong place.
      absl::StrCat("users:\n  - name: app\n    password: [", kSecret, "]\n", kProxy),
      absl::StrCat("users:\n  - name: app\n    password: {", kSecret, ": 1}\n", kProxy),
      absl::StrCat("users:\n  - name: app\n    password: ", kSecret, "\n    password: ", kSecret,
                   "\n", kProxy),
      absl::StrCat("users:\n  - name: app\n    password: ", kSecret, "\n    password_env: X\n",
                   kProxy),
      absl::StrCat("users:\n  - name: app\n    password: ", kSecret,
                   "\n    backend_password: ", kSecret, "\n    backend_password_env: X\n", kProxy),
      absl::StrCat("users:\n  - name: app\n    password: ", kSecret, "\n", kProxy,
                   "    pool_mode: transaction\n"),
      absl::StrCat("users:\n  - name: app\n    password: \"", kSecret, "\n", kProxy),
      absl::StrCat("users:\n  - name: app\n    password: ", kSecret, "\n  - name: app\n",
                   "    password: ", kSecret, "\n"),
      absl::StrCat("users:\n  - name: app\n    password_file: ", secret_file.path(),
                   "\n    password_env: WIREPOOL_CONFIG_TEST_SECRET\n    listen: x\n"),
      absl::StrCat("users:\n  - name: app\n    backend_password_file: ", secret_file.path(),
                   "\n    password_env: WIREPOOL_CONFIG_TEST_SECRET\n    backend_user: ''\n"),
  };
  for (const std::string& yaml : cases) {
    absl::StatusOr<Settings> settings = Load(yaml);
    ASSERT_FALSE(settings.ok()) << yaml;
    EXPECT_THAT(settings.status().message(), Not(HasSubstr(kSecret))) << yaml;
    EXPECT_THAT(settings.status().message(), Not(IsEmpty()));
  }
}

TEST(ConfigLoaderTest, LoadFileTakesRelativePasswordFilesFromItsDirectory) {
  TempFile password("relative_password", "relative-secret\n");
  const std::string name = std::filesystem::path(password.path()).filename().string();
  TempFile config(
      "relative_config.yaml",
      absl::StrReplaceAll(kContract, {{"password: app ", "password_file: " + name + " "}}));
  absl::StatusOr<Settings> settings = LoadFile(config.path(), Options());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->users[0].password, "relative-secret");
}

TEST(ConfigLoaderTest, LoadFileReportsAMissingFile) {
  absl::StatusOr<Settings> settings = LoadFile("/nonexistent/wirepool/config.yaml", Options());
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(settings.status().message(), HasSubstr("/nonexistent/wirepool/config.yaml"));
}

TEST(ConfigLoaderTest, LoadFileReportsErrorsWithLines) {
  TempFile config("bad_config.yaml", absl::StrReplaceAll(kContract, {{"listen:", "listn:"}}));
  absl::StatusOr<Settings> settings = LoadFile(config.path(), Options());
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("proxies[0].listn (line 8): unknown key"));
}

// ---- init_sql, startup_parameters, pin_as_error ------------------------------------------------

LoadOptions OptionsWithPinReasons() {
  LoadOptions options = Options();
  options.pin_reasons = {"temp_table", "advisory_lock", "unclassified"};
  return options;
}

constexpr char kTxProxy[] = R"(proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:6432
    backends: ["127.0.0.1:5432"]
)";

TEST(ConfigLoaderTest, InitSqlTakesOneStatementOrAList) {
  absl::StatusOr<Settings> settings = Load(absl::StrCat(kUsers, kTxProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->proxies[0].init_sql, IsEmpty());

  settings = Load(absl::StrCat(kUsers, kTxProxy, "    init_sql: SET statement_timeout = '7s'\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->proxies[0].init_sql, ElementsAre("SET statement_timeout = '7s'"));

  settings = Load(absl::StrCat(kUsers, kTxProxy,
                               "    init_sql:\n      - SET lock_timeout = '1s'\n"
                               "      - SELECT set_config('app.x', 'y', false)\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->proxies[0].init_sql,
              ElementsAre("SET lock_timeout = '1s'", "SELECT set_config('app.x', 'y', false)"));

  EXPECT_THAT(Errors(absl::StrCat(kUsers, kTxProxy, "    init_sql: ['SELECT 1', '  ']\n")),
              ElementsAre("proxies[0].init_sql[1] (line 9): empty statement"));
  EXPECT_THAT(Errors(absl::StrCat(kUsers, kTxProxy, "    init_sql: {a: b}\n")),
              ElementsAre("proxies[0].init_sql (line 9): expected a list, got a map"));
  // Only fields that say so take a single value for a list.
  EXPECT_THAT(ErrorText(absl::StrCat(kUsers,
                                     "proxies:\n  - name: pg\n    protocol: postgres\n"
                                     "    listen: 127.0.0.1:6432\n"
                                     "    backends: 127.0.0.1:5432\n")),
              HasSubstr("proxies[0].backends (line 8): expected a list, got a value"));
}

TEST(ConfigLoaderTest, PinAsErrorNamesKnownReasons) {
  absl::StatusOr<Settings> settings = LoadString(
      absl::StrCat(kUsers, kTxProxy, "    pin_as_error: [temp_table, advisory_lock, temp_table]\n"),
      OptionsWithPinReasons());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->proxies[0].pin_as_error, ElementsAre("temp_table", "advisory_lock"));

  settings = LoadString(absl::StrCat(kUsers, kTxProxy, "    pin_as_error: unclassified\n"),
                        OptionsWithPinReasons());
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_THAT(settings->proxies[0].pin_as_error, ElementsAre("unclassified"));

  settings = LoadString(absl::StrCat(kUsers, kTxProxy, "    pin_as_error: [temp_tables]\n"),
                        OptionsWithPinReasons());
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(std::string(settings.status().message()),
            "proxies[0].pin_as_error[0] (line 9): unknown pin reason 'temp_tables' (expected one "
            "of: temp_table, advisory_lock, unclassified)");

  settings = LoadString(absl::StrCat(kUsers, kProxy, "    pin_as_error: [temp_table]\n"),
                        OptionsWithPinReasons());
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(std::string(settings.status().message()),
            "proxies[0].pin_as_error (line 10): applies only to pool_mode transaction (a session "
            "keeps its server anyway)");
}

TEST(ConfigLoaderTest, StartupParameters) {
  absl::StatusOr<Settings> settings = Load(absl::StrCat(
      kUsers, "    startup_parameters:\n      statement_timeout: 5s\n      app.tenant: acme\n",
      kTxProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  using Param = std::pair<std::string, std::string>;
  EXPECT_THAT(settings->users[0].startup_parameters,
              ElementsAre(Param{"app.tenant", "acme"}, Param{"statement_timeout", "5s"}));

  EXPECT_THAT(Errors(absl::StrCat(kUsers,
                                  "    startup_parameters:\n      database: other\n"
                                  "      'bad name': x\n      lock_timeout: [1]\n",
                                  kTxProxy)),
              ElementsAre("users[0].startup_parameters.lock_timeout (line 7): expected a string, "
                          "got a list",
                          "users[0].startup_parameters.bad name (line 6): not a parameter name "
                          "(letters, digits, '_' and '.', not starting with a digit)",
                          "users[0].startup_parameters.database (line 5): 'database' is part of "
                          "the login, not a session parameter (give each setting its own key)"))
      << "in the order of the names";

  // MySQL system variables have no dots.
  settings = LoadString(absl::StrCat(kUsers, "    startup_parameters: {app.tenant: acme}\n",
                                     absl::StrReplaceAll(kTxProxy, {{"postgres", "mysql"}})),
                        LoadOptions());
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(std::string(settings.status().message()),
            "users[0].startup_parameters.app.tenant (line 4): not a MySQL system variable name "
            "(proxies[0] is a mysql proxy)");
}

// ---- client_tls, backend_tls, auth_failure_* ---------------------------------------------------

using core::TlsMode;

// kUsers + kProxy with more lines in the proxy's map.
std::string WithProxyLines(absl::string_view lines) { return absl::StrCat(kUsers, kProxy, lines); }

TEST(ConfigLoaderTest, TlsDefaults) {
  absl::StatusOr<Settings> settings = Load(
      absl::StrCat(kUsers,
                   "proxies:\n  - name: pg\n    protocol: postgres\n    listen: 127.0.0.1:6432\n"
                   "    backends: [\"db1.internal:5433\", \"db2.internal:5432\"]\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  const ProxySettings& proxy = settings->proxies[0];
  // No certificate: nothing offered to clients; towards the backends TLS when the server has it.
  EXPECT_EQ(proxy.client_tls.mode, TlsMode::kDisable);
  EXPECT_EQ(proxy.client_tls.min_version, "1.2");
  EXPECT_EQ(proxy.client_tls.cert_file, "");
  EXPECT_EQ(proxy.backend_tls.mode, TlsMode::kPrefer);
  EXPECT_EQ(proxy.backend_tls.min_version, "1.2");
  // verify-full checks the first backend's host unless told another name.
  EXPECT_EQ(proxy.backend_tls.server_name, "db1.internal");

  settings = Load(WithProxyLines(
      "    client_tls: {cert_file: /etc/wp/server.crt, key_file: /etc/wp/server.key}\n"
      "    backend_tls: {server_name: pg.example.com}\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  // A certificate alone turns TLS on for clients that ask for it.
  EXPECT_EQ(settings->proxies[0].client_tls.mode, TlsMode::kPrefer);
  EXPECT_EQ(settings->proxies[0].client_tls.cert_file, "/etc/wp/server.crt");
  EXPECT_EQ(settings->proxies[0].client_tls.key_file, "/etc/wp/server.key");
  EXPECT_EQ(settings->proxies[0].backend_tls.mode, TlsMode::kPrefer);
  EXPECT_EQ(settings->proxies[0].backend_tls.server_name, "pg.example.com");
}

TEST(ConfigLoaderTest, TlsEveryFieldIsRead) {
  absl::StatusOr<Settings> settings = Load(WithProxyLines(R"(    client_tls:
      mode: verify-full
      cert_file: /etc/wp/server.crt
      key_file: /etc/wp/server.key
      ca_file: /etc/wp/clients-ca.crt
      min_version: "1.3"
      ciphers: ECDHE-RSA-AES256-GCM-SHA384
    backend_tls:
      mode: verify-ca
      ca_file: /etc/wp/db-ca.crt
      cert_file: /etc/wp/proxy.crt
      key_file: /etc/wp/proxy.key
      server_name: db.internal
      min_version: "1.3"
      ciphers: HIGH
)"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  const core::TlsConfig& client = settings->proxies[0].client_tls;
  EXPECT_EQ(client.mode, TlsMode::kVerifyFull);
  EXPECT_EQ(client.cert_file, "/etc/wp/server.crt");
  EXPECT_EQ(client.key_file, "/etc/wp/server.key");
  EXPECT_EQ(client.ca_file, "/etc/wp/clients-ca.crt");
  EXPECT_EQ(client.min_version, "1.3");
  EXPECT_EQ(client.ciphers, "ECDHE-RSA-AES256-GCM-SHA384");
  const core::TlsConfig& backend = settings->proxies[0].backend_tls;
  EXPECT_EQ(backend.mode, TlsMode::kVerifyCa);
  EXPECT_EQ(backend.ca_file, "/etc/wp/db-ca.crt");
  EXPECT_EQ(backend.cert_file, "/etc/wp/proxy.crt");
  EXPECT_EQ(backend.key_file, "/etc/wp/proxy.key");
  EXPECT_EQ(backend.server_name, "db.internal");
  EXPECT_EQ(backend.min_version, "1.3");
  EXPECT_EQ(backend.ciphers, "HIGH");
}

TEST(ConfigLoaderTest, TlsModesByName) {
  constexpr char kCert[] = "cert_file: /c.crt, key_file: /c.key, ca_file: /ca.crt";
  const std::pair<const char*, TlsMode> kModes[] = {
      {"disable", TlsMode::kDisable},    {"allow", TlsMode::kAllow},
      {"prefer", TlsMode::kPrefer},      {"require", TlsMode::kRequire},
      {"verify-ca", TlsMode::kVerifyCa}, {"verify-full", TlsMode::kVerifyFull},
  };
  for (const auto& [name, mode] : kModes) {
    absl::StatusOr<Settings> settings =
        Load(WithProxyLines(absl::StrCat("    client_tls: {mode: ", name, ", ", kCert, "}\n",
                                         "    backend_tls: {mode: ", name, "}\n")));
    ASSERT_TRUE(settings.ok()) << name << ": " << settings.status();
    EXPECT_EQ(settings->proxies[0].client_tls.mode, mode) << name;
    EXPECT_EQ(settings->proxies[0].backend_tls.mode, mode) << name;
  }
}

TEST(ConfigLoaderTest, ABackendCanBeAUnixSocket) {
  const std::string path = "/run/postgresql/.s.PGSQL.5432";
  absl::StatusOr<Settings> settings =
      Load(absl::StrReplaceAll(kContract, {{"127.0.0.1:5432", path}}));
  ASSERT_TRUE(settings.ok()) << settings.status();
  const Endpoint& backend = settings->proxies[0].backends[0];
  EXPECT_EQ(backend.unix_path, path);
  EXPECT_EQ(backend.host, "");
  EXPECT_EQ(backend.port, 0);
  EXPECT_EQ(settings->proxies[0].backend_tls.server_name, "");

  EXPECT_THAT(
      ErrorText(absl::StrReplaceAll(kContract, {{"127.0.0.1:5432", "/" + std::string(108, 's')}})),
      HasSubstr("a Unix socket path has at most 107 bytes"));
  EXPECT_THAT(ErrorText(absl::StrReplaceAll(kContract, {{"127.0.0.1:5432", "run/mysqld.sock"}})),
              HasSubstr("invalid address 'run/mysqld.sock': a Unix socket path must be absolute"));
  // Over a Unix socket nothing is encrypted: a mode that demands TLS is refused, prefer is not.
  EXPECT_THAT(Errors(absl::StrReplaceAll(WithProxyLines("    backend_tls: {mode: require}\n"),
                                         {{"127.0.0.1:5432", path}})),
              ElementsAre(HasSubstr("mode require needs TLS, which a Unix socket backend does "
                                    "not use")));
  EXPECT_TRUE(Load(absl::StrReplaceAll(WithProxyLines("    backend_tls: {mode: prefer}\n"),
                                       {{"127.0.0.1:5432", path}}))
                  .ok());
}

TEST(ConfigLoaderTest, UnknownTlsModeNamesTheAllowedOnes) {
  EXPECT_THAT(
      Errors(WithProxyLines("    client_tls: {mode: verify_full, cert_file: /c.crt, "
                            "key_file: /c.key}\n"
                            "    backend_tls: {mode: Require}\n")),
      ElementsAre("proxies[0].client_tls.mode (line 10): unknown mode 'verify_full' (expected "
                  "disable, allow, prefer, require, verify-ca or verify-full)",
                  "proxies[0].backend_tls.mode (line 11): unknown mode 'Require' (expected "
                  "disable, allow, prefer, require, verify-ca or verify-full)"));
  // PgBouncer's name for "off" is not one of libpq's.
  EXPECT_THAT(ErrorText(WithProxyLines("    backend_tls: {mode: \"off\"}\n")),
              HasSubstr("unknown mode 'off'"));
}

TEST(ConfigLoaderTest, TlsCertificateAndKeyGoTogether) {
  EXPECT_THAT(ErrorText(WithProxyLines("    client_tls: {cert_file: /c.crt}\n")),
              HasSubstr("proxies[0].client_tls (line 10): cert_file and key_file go together"));
  EXPECT_THAT(ErrorText(WithProxyLines("    client_tls: {mode: disable, key_file: /c.key}\n")),
              HasSubstr("proxies[0].client_tls (line 10): cert_file and key_file go together"));
  EXPECT_THAT(ErrorText(WithProxyLines("    backend_tls: {cert_file: /p.crt}\n")),
              HasSubstr("proxies[0].backend_tls (line 10): cert_file and key_file go together"));
  EXPECT_THAT(ErrorText(WithProxyLines("    backend_tls: {key_file: /p.key}\n")),
              HasSubstr("cert_file and key_file go together"));
}

TEST(ConfigLoaderTest, ClientTlsModesOtherThanDisableNeedACertificate) {
  for (const char* mode : {"allow", "prefer", "require"}) {
    EXPECT_THAT(Errors(WithProxyLines(absl::StrCat("    client_tls: {mode: ", mode, "}\n"))),
                ElementsAre(absl::StrCat("proxies[0].client_tls (line 10): mode ", mode,
                                         " needs cert_file and key_file")))
        << mode;
  }
  absl::StatusOr<Settings> settings = Load(WithProxyLines("    client_tls: {mode: disable}\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].client_tls.mode, TlsMode::kDisable);
  // The backend leg presents a certificate only when given one.
  settings = Load(WithProxyLines("    backend_tls: {mode: require}\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].backend_tls.mode, TlsMode::kRequire);
}

TEST(ConfigLoaderTest, ClientVerifyModesNeedACaFile) {
  for (const char* mode : {"verify-ca", "verify-full"}) {
    EXPECT_THAT(
        Errors(WithProxyLines(absl::StrCat("    client_tls: {mode: ", mode,
                                           ", cert_file: /c.crt, key_file: /c.key}\n"))),
        ElementsAre(absl::StrCat("proxies[0].client_tls (line 10): mode ", mode,
                                 " needs ca_file (the CA client certificates must chain to)")))
        << mode;
    // Without a certificate either, both problems are told.
    EXPECT_THAT(Errors(WithProxyLines(absl::StrCat("    client_tls: {mode: ", mode, "}\n"))),
                ElementsAre(HasSubstr("needs cert_file and key_file"), HasSubstr("needs ca_file")))
        << mode;
    // The backend leg checks against the system's CAs when it has no ca_file.
    absl::StatusOr<Settings> settings =
        Load(WithProxyLines(absl::StrCat("    backend_tls: {mode: ", mode, "}\n")));
    ASSERT_TRUE(settings.ok()) << mode << ": " << settings.status();
    EXPECT_EQ(settings->proxies[0].backend_tls.ca_file, "");
  }
}

TEST(ConfigLoaderTest, TlsMinVersionIsOneTwoOrOneThree) {
  for (const char* version : {"\"1.2\"", "\"1.3\"", "1.2", "1.3"}) {
    absl::StatusOr<Settings> settings = Load(WithProxyLines(
        absl::StrCat("    client_tls: {cert_file: /c.crt, key_file: /c.key, min_version: ", version,
                     "}\n    backend_tls: {min_version: ", version, "}\n")));
    ASSERT_TRUE(settings.ok()) << version << ": " << settings.status();
    EXPECT_EQ(settings->proxies[0].client_tls.min_version,
              std::string(absl::StripPrefix(absl::StripSuffix(version, "\""), "\"")));
  }
  for (const char* version : {"\"1.0\"", "\"1.1\"", "\"1.4\"", "TLSv1.3", "\"\"", "\"1.3 \""}) {
    EXPECT_THAT(Errors(WithProxyLines(absl::StrCat(
                    "    client_tls: {cert_file: /c.crt, key_file: /c.key, min_version: ", version,
                    "}\n    backend_tls: {min_version: ", version, "}\n"))),
                ElementsAre("proxies[0].client_tls.min_version (line 10): must be \"1.2\" or "
                            "\"1.3\"",
                            "proxies[0].backend_tls.min_version (line 11): must be \"1.2\" or "
                            "\"1.3\""))
        << version;
  }
}

TEST(ConfigLoaderTest, LoadFileTakesRelativeTlsFilesFromItsDirectory) {
  TempFile config("tls_relative.yaml", WithProxyLines(R"(    client_tls:
      mode: verify-ca
      cert_file: server.crt
      key_file: keys/server.key
      ca_file: /abs/clients-ca.crt
    backend_tls:
      mode: verify-full
      ca_file: ../db-ca.crt
      cert_file: proxy.crt
      key_file: proxy.key
)"));
  absl::StatusOr<Settings> settings = LoadFile(config.path(), Options());
  ASSERT_TRUE(settings.ok()) << settings.status();
  const std::filesystem::path dir = std::filesystem::path(config.path()).parent_path();
  const core::TlsConfig& client = settings->proxies[0].client_tls;
  EXPECT_EQ(client.cert_file, (dir / "server.crt").string());
  EXPECT_EQ(client.key_file, (dir / "keys/server.key").string());
  EXPECT_EQ(client.ca_file, "/abs/clients-ca.crt");
  const core::TlsConfig& backend = settings->proxies[0].backend_tls;
  EXPECT_EQ(backend.ca_file, (dir / "../db-ca.crt").string());
  EXPECT_EQ(backend.cert_file, (dir / "proxy.crt").string());
  EXPECT_EQ(backend.key_file, (dir / "proxy.key").string());
  // The files are read when the proxy starts, not by the loader: none of these exist.
  EXPECT_FALSE(std::filesystem::exists(client.cert_file));

  // From a string there is no directory: the names stay as written.
  settings =
      Load(WithProxyLines("    client_tls: {cert_file: server.crt, key_file: server.key}\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].client_tls.cert_file, "server.crt");
}

TEST(ConfigLoaderTest, AuthFailureDefaults) {
  absl::StatusOr<Settings> settings = Load(absl::StrCat(kUsers, kProxy));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_delay, absl::Milliseconds(500));
  EXPECT_EQ(settings->proxies[0].auth_failure_limit, 20u);
  EXPECT_EQ(settings->proxies[0].auth_failure_ban, absl::Minutes(1));

  settings = Load(WithProxyLines(
      "    auth_failure_delay: 2s\n    auth_failure_limit: 3\n    auth_failure_ban: 1h30m\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_delay, absl::Seconds(2));
  EXPECT_EQ(settings->proxies[0].auth_failure_limit, 3u);
  EXPECT_EQ(settings->proxies[0].auth_failure_ban, absl::Minutes(90));
}

TEST(ConfigLoaderTest, AuthFailureDelay) {
  // 0 turns the delay off.
  absl::StatusOr<Settings> settings = Load(WithProxyLines("    auth_failure_delay: 0\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_delay, absl::ZeroDuration());
  settings = Load(WithProxyLines("    auth_failure_delay: 0s\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_delay, absl::ZeroDuration());

  // The failed client must get its error before client_login_timeout closes it.
  EXPECT_THAT(Errors(WithProxyLines("    auth_failure_delay: 15s\n")),
              ElementsAre("proxies[0].auth_failure_delay (line 10): must be shorter than "
                          "client_login_timeout"));
  EXPECT_THAT(Errors(WithProxyLines("    client_login_timeout: 2s\n    auth_failure_delay: 3s\n")),
              ElementsAre("proxies[0].auth_failure_delay (line 11): must be shorter than "
                          "client_login_timeout"));
  EXPECT_THAT(Errors(WithProxyLines("    auth_failure_delay: 2s\n    client_login_timeout: 2s\n")),
              ElementsAre(HasSubstr("auth_failure_delay (line 10): must be shorter than")));
  settings = Load(WithProxyLines("    client_login_timeout: 2s\n    auth_failure_delay: 1999ms\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_delay, absl::Milliseconds(1999));
  // The default delay (500ms) against a short login timeout.
  EXPECT_THAT(ErrorText(WithProxyLines("    client_login_timeout: 500ms\n")),
              HasSubstr("auth_failure_delay"));

  EXPECT_THAT(ErrorText(WithProxyLines("    auth_failure_delay: -1s\n")),
              HasSubstr("duration '-1s' must not be negative"));
  EXPECT_THAT(ErrorText(WithProxyLines("    auth_failure_delay: 1\n")),
              HasSubstr("proxies[0].auth_failure_delay (line 10): invalid duration '1'"));
}

TEST(ConfigLoaderTest, AuthFailureLimitAndBan) {
  // A limit of 0 never bans.
  absl::StatusOr<Settings> settings = Load(WithProxyLines("    auth_failure_limit: 0\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_limit, 0u);

  EXPECT_THAT(ErrorText(WithProxyLines("    auth_failure_limit: -1\n")),
              HasSubstr("proxies[0].auth_failure_limit (line 10): expected a non-negative "
                        "integer"));
  EXPECT_THAT(ErrorText(WithProxyLines("    auth_failure_limit: lots\n")),
              HasSubstr("proxies[0].auth_failure_limit (line 10)"));

  // A ban must last.
  EXPECT_THAT(Errors(WithProxyLines("    auth_failure_ban: 0\n")),
              ElementsAre("proxies[0].auth_failure_ban (line 10): must be greater than 0"));
  EXPECT_THAT(Errors(WithProxyLines("    auth_failure_ban: 0s\n    auth_failure_limit: 0\n")),
              ElementsAre("proxies[0].auth_failure_ban (line 10): must be greater than 0"));
  EXPECT_THAT(ErrorText(WithProxyLines("    auth_failure_ban: -5m\n")),
              HasSubstr("must not be negative"));
  settings = Load(WithProxyLines("    auth_failure_ban: 250ms\n"));
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->proxies[0].auth_failure_ban, absl::Milliseconds(250));
}

}  // namespace
}  // namespace wirepool::config
