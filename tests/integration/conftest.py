# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""Fixtures for the wirepool integration tests.

The environment contract (set by tools/test from the sandbox env file):
WP_PG_BIN, WP_PG_HOST, WP_PG_PORT, WP_PG_DB, WP_PG_SCRAM_USER/_PASSWORD,
WP_PG_MD5_USER/_PASSWORD, WP_PG_ADMIN_USER/_PASSWORD, and optionally
WIREPOOL_BIN (default <repo>/build/bin/wirepool). Without WP_PG_PORT every
test fails with a message saying how to run them; nothing is skipped.
"""

import os
import re
import secrets
from collections import namedtuple

import psycopg2
import pytest

from wphelpers import (
    HOW_TO_RUN,
    Wirepool,
    config_text,
    connect_direct,
    make_config,
    read_env,
)

Role = namedtuple("Role", "name password")

SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:"
)


# Every wirepool log of this run, and every secret the run handed out (sandbox passwords, roles'
# passwords): at the end of the session no log may hold any of them (secrets never reach a log
# line, whatever test exercised them).
_RUN_LOGS = []
_RUN_SECRETS = set()


def remember_secret(secret):
    if secret and len(secret) >= 8:
        _RUN_SECRETS.add(secret)


def pytest_sessionfinish(session, exitstatus):
    secrets_ = set(_RUN_SECRETS)
    secrets_.update(v for k, v in os.environ.items()
                    if k.startswith("WP_") and k.endswith("_PASSWORD") and len(v) >= 8)
    leaks = []
    for path in _RUN_LOGS:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        leaks.extend(f"{path}: holds a secret ({s[:2]}...)" for s in secrets_ if s in text)
    if leaks:
        print("\nSECRET IN A WIREPOOL LOG:\n" + "\n".join(leaks))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif _RUN_LOGS:
        print(f"\nsecrets audit: {len(_RUN_LOGS)} wirepool logs, {len(secrets_)} secrets, none found")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every wirepool log the test started."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, wp in enumerate(getattr(item, "_wirepools", [])):
            rep.sections.append(
                (f"wirepool #{i} log tail ({wp.log_path})", wp.log_tail(80))
            )


@pytest.fixture(scope="session")
def env():
    values, missing = read_env()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {HOW_TO_RUN}", pytrace=False)
    return values


@pytest.fixture
def admin(env):
    """A direct superuser connection to WP_PG_DB (autocommit)."""
    conn = connect_direct(env)
    yield conn
    conn.close()


@pytest.fixture
def make_role(env):
    """Factory: a fresh LOGIN role (password stored as SCRAM unless md5=True)
    owning a schema of its own name in WP_PG_DB, so pgbench and test tables
    land there. Dropped, with all it owns, at teardown."""
    created = []

    def factory(password=None, md5=False, connection_limit=None):
        name = "wpt_" + secrets.token_hex(4)
        password = password or "pw_" + secrets.token_hex(8)
        conn = connect_direct(env)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SET password_encryption = %s", ("md5" if md5 else "scram-sha-256",)
                )
                limit = "" if connection_limit is None else f" CONNECTION LIMIT {int(connection_limit)}"
                cur.execute(f'CREATE ROLE "{name}" LOGIN{limit} PASSWORD %s', (password,))
                created.append(name)
                remember_secret(password)
                cur.execute(f'CREATE SCHEMA AUTHORIZATION "{name}"')
        finally:
            conn.close()
        return Role(name, password)

    yield factory

    if not created:
        return
    conn = connect_direct(env)
    try:
        with conn.cursor() as cur:
            for name in created:
                for _ in range(5):
                    cur.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = %s AND pid <> pg_backend_pid()",
                        (name,),
                    )
                    try:
                        cur.execute(f'DROP OWNED BY "{name}" CASCADE')
                        cur.execute(f'DROP ROLE IF EXISTS "{name}"')
                        break
                    except psycopg2.Error:
                        pass
    finally:
        conn.close()


@pytest.fixture
def role(make_role):
    return make_role()


@pytest.fixture
def config(env):
    """config(users, **proxy_overrides) -> dict; see wphelpers.make_config."""

    def build(users, **kw):
        return make_config(env, users, **kw)

    return build


def _wirepool_factory(request, binary, tmp_path, prefix, default_proxy):
    """The body of the `wirepool` and `my_wirepool` fixtures: a generator that
    yields start(cfg, extra_env=None, wait_for=None) and, at teardown, stops
    every wirepool it started and fails the test if one died by itself or
    logged a sanitizer error."""
    started = []
    request.node._wirepools = started

    def start(cfg, extra_env=None, wait_for=None):
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            pytest.fail(
                f"wirepool binary {binary} is missing or not executable: build it "
                f"first (tools/test builds it), or set WIREPOOL_BIN",
                pytrace=False,
            )
        n = len(started)
        cfg_path = tmp_path / f"{prefix}-{n}.yaml"
        cfg_path.write_text(config_text(cfg))
        wp = Wirepool(binary, cfg_path, tmp_path / f"{prefix}-{n}.log", extra_env)
        started.append(wp)
        _RUN_LOGS.append(wp.log_path)
        if wait_for is None:
            if isinstance(cfg, dict):
                wait_for = [p["name"] for p in cfg.get("proxies", [])]
            else:
                wait_for = [default_proxy]
        try:
            wp.wait_listening(wait_for, timeout=10)
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        return wp

    yield start

    problems = []
    for wp in started:
        before = wp.stop()
        if before is not None and not wp.stopped_on_purpose:
            problems.append(f"wirepool pid {wp.pid} exited by itself with code {before}")
        m = SANITIZER_RE.search(wp.log_text())
        if m:
            problems.append(f"wirepool pid {wp.pid} logged a sanitizer error: {m.group(0)}")
    if problems:
        tails = "\n\n".join(f"--- {wp.log_path}\n{wp.log_tail(80)}" for wp in started)
        pytest.fail("; ".join(problems) + "\n" + tails, pytrace=False)


@pytest.fixture
def wirepool(request, env, tmp_path, make_role):
    """Factory: wirepool(config_dict_or_text, extra_env=None, wait_for=None).

    Writes the config into tmp_path, starts WIREPOOL_BIN -c FILE with stderr
    to a log file, waits up to 10 s for `proxy=<name> listening on ...:<port>`
    for every proxy (or the names in wait_for), and returns a Wirepool with
    .port(name='pg'), .log_text(), .pid, .send_signal(). Stopped at teardown
    (SIGINT, wait, SIGKILL); a wirepool that died by itself, or logged a
    sanitizer error, fails the test. (make_role is requested so that roles are
    dropped only after wirepool has stopped.)"""
    yield from _wirepool_factory(request, env["WIREPOOL_BIN"], tmp_path, "wirepool", "pg")


@pytest.fixture
def proxy_users(env):
    """The sandbox's SCRAM and md5 roles as wirepool users."""
    return [
        (env["WP_PG_SCRAM_USER"], env["WP_PG_SCRAM_PASSWORD"]),
        (env["WP_PG_MD5_USER"], env["WP_PG_MD5_PASSWORD"]),
    ]


# ---------------------------------------------------------------- MySQL / MariaDB
# The MySQL tests need only the WP_MY_* variables (see mysqlhelpers.py), not
# the PostgreSQL ones; their fixtures are prefixed my_.

from mysqlhelpers import (  # noqa: E402
    DIRECT_MODE_VAR,
    HOW_TO_RUN_MY,
    Target,
    connect_my_direct,
    direct_mode,
    make_my_config,
    read_my_env,
)


@pytest.fixture(scope="session")
def my_env():
    values, missing = read_my_env()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {HOW_TO_RUN_MY}", pytrace=False)
    return values


@pytest.fixture
def my_users(my_env):
    """The sandbox's mysql_native_password and ed25519 users as wirepool users."""
    return [
        (my_env["WP_MY_NATIVE_USER"], my_env["WP_MY_NATIVE_PASSWORD"]),
        (my_env["WP_MY_ED25519_USER"], my_env["WP_MY_ED25519_PASSWORD"]),
    ]


@pytest.fixture
def my_config(my_env, my_users):
    """my_config(users=None, **proxy_overrides) -> dict with one mysql proxy 'my'
    (users default to my_users); see mysqlhelpers.make_my_config."""

    def build(users=None, **kw):
        return make_my_config(my_env, my_users if users is None else users, **kw)

    return build


@pytest.fixture
def my_wirepool(request, my_env, tmp_path):
    """Like `wirepool`, for MySQL configs: my_wirepool(config, extra_env=None,
    wait_for=None) starts WIREPOOL_BIN, waits for `proxy=my listening on ...`
    and returns a Wirepool (.port('my')). Stopped at teardown; a wirepool that
    died by itself or logged a sanitizer error fails the test."""
    yield from _wirepool_factory(request, my_env["WIREPOOL_BIN"], tmp_path, "my-wirepool", "my")


@pytest.fixture
def my_proxy(my_env, my_wirepool, my_config):
    """Factory: my_proxy(users=None, **proxy_overrides) -> Target, a started
    wirepool with one mysql proxy in front of the sandbox MariaDB. With
    WP_MY_TEST_DIRECT=1 (a development aid) no wirepool is started and the
    Target is MariaDB itself (target.proxied is False)."""

    def start(users=None, **kw):
        if direct_mode():
            return Target(my_env["WP_MY_HOST"], my_env["WP_MY_PORT"], proxied=False)
        wp = my_wirepool(my_config(users, **kw))
        return Target("127.0.0.1", wp.port("my"), proxied=True, wp=wp)

    return start


@pytest.fixture
def proxy_only():
    """Call proxy_only(target, why) in tests of behaviour only wirepool has;
    it skips only in the WP_MY_TEST_DIRECT development mode."""

    def check(target, why):
        if not target.proxied:
            pytest.skip(f"{DIRECT_MODE_VAR}=1: {why} is wirepool behaviour")

    return check


@pytest.fixture
def my_admin(my_env):
    """A direct admin connection to MariaDB (autocommit, WP_MY_DB)."""
    conn = connect_my_direct(my_env)
    yield conn
    conn.close()


@pytest.fixture
def my_table(my_env):
    """Factory: my_table() -> a fresh table name (not created) in WP_MY_DB;
    every name handed out is dropped at teardown."""
    names = []

    def factory(prefix="wpt"):
        name = f"{prefix}_{secrets.token_hex(4)}"
        names.append(name)
        return name

    yield factory

    if names:
        conn = connect_my_direct(my_env)
        try:
            with conn.cursor() as cur:
                for name in names:
                    cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        finally:
            conn.close()


# ---------------------------------------------------------------- TLS

from tlscerts import key_files, make_tls_certs  # noqa: E402
from wphelpers import key_material  # noqa: E402


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """Test certificates made once per session (see tlscerts.py): a CA, a
    server certificate for 127.0.0.1 and localhost, a client certificate with
    CN wp_client (tlscerts.client_cert(tls_certs, cn) makes more), and a
    wrong CA with its own server and client certificates. A TlsCerts of
    paths; keys are mode 0600. Their private keys join the run's secrets audit."""
    certs = make_tls_certs(tmp_path_factory.mktemp("tls"))
    for path in key_files(certs):
        for secret in key_material(path):
            remember_secret(secret)
    return certs
