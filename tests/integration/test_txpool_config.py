# Runs under /usr/bin/python3 (Debian's pytest, python3-psycopg2 and python3-pymysql).
"""The proxy's own session setup and pin_as_error, against the sandbox servers:

- init_sql runs on every new backend connection and again after every reset;
  what it sets is the baseline each client starts from, a client's own SET
  wins for that client only, and the next client on the same backend sees the
  baseline again. A failing statement fails the connection with a clear error
  that does not repeat the statement.
- a user's startup_parameters likewise, with a client's own startup
  parameters winning for that client.
- pin_as_error refuses a statement that would pin (PostgreSQL 0A000 on the
  simple and the extended protocol, MySQL 1235), the statement never reaches
  a server, the connection stays usable, and a reason not listed still pins.

One backend connection per proxy (max_backend_connections: 1) makes clients
take turns on the same server."""

import json
import struct
import subprocess

import psycopg2
import psycopg2.errors
import pymysql
import pytest

from mysqlhelpers import connect_target, my_errmsg, my_errno, my_scalar
from wphelpers import connect, scalar
from wpwire import PgError, RawPg, message, parse_error_fields

ER_NOT_SUPPORTED_YET = 1235


# ---------------------------------------------------------------- config


def test_check_names_the_valid_pin_reasons(env, config, role, tmp_path):
    cfg = config([(role.name, role.password)], pool_mode="transaction",
                 pin_as_error=["temp_table", "temp_tables"], init_sql="SET lock_timeout = '1s'")
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([env["WIREPOOL_BIN"], "-c", str(path), "--check"], capture_output=True,
                       text=True, timeout=10)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert ("proxies[0].pin_as_error[1]" in out and "unknown pin reason 'temp_tables'" in out
            and "temp_table, advisory_lock, listen, hold_cursor, table_lock, user_variable, "
                "load_library, found_rows, session_state, unclassified" in out), out


# ---------------------------------------------------------------- PostgreSQL


def pg_start(wirepool, config, role, startup_parameters=None, **proxy):
    user = {"name": role.name, "password": role.password}
    if startup_parameters:
        user["startup_parameters"] = startup_parameters
    proxy.setdefault("pool_mode", "transaction")
    proxy.setdefault("max_backend_connections", 1)
    return wirepool(config([user], **proxy))


def pg_client(env, wp, role, **kw):
    return connect(env, wp.port("pg"), role.name, role.password, **kw)


def show(conn, name):
    return scalar(conn, f"SELECT current_setting('{name}')")


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_pg_init_sql_is_every_clients_baseline(env, wirepool, config, role, pool_mode):
    wp = pg_start(wirepool, config, role, pool_mode=pool_mode,
                  init_sql=["SET statement_timeout = '7s'", "SET lock_timeout TO '3s'"])
    first = pg_client(env, wp, role)
    assert show(first, "statement_timeout") == "7s"
    assert show(first, "lock_timeout") == "3s"
    first.cursor().execute("SET statement_timeout = '1s'")
    assert show(first, "statement_timeout") == "1s"
    pid = scalar(first, "SELECT pg_backend_pid()")
    if pool_mode == "session":
        # The client leaves: its server is reset (DISCARD ALL), init_sql runs again.
        first.close()
    second = pg_client(env, wp, role)
    assert scalar(second, "SELECT pg_backend_pid()") == pid, "one backend, taken in turns"
    assert show(second, "statement_timeout") == "7s"
    assert show(second, "lock_timeout") == "3s"
    if pool_mode == "transaction":
        # Back and forth on the one server: each keeps what it set, or the baseline.
        assert show(first, "statement_timeout") == "1s"
        assert show(second, "statement_timeout") == "7s"
        first.cursor().execute("RESET statement_timeout")  # the server's default, not init_sql's
        assert show(first, "statement_timeout") == "0"
        assert show(second, "statement_timeout") == "7s"
        first.close()
    second.close()


def test_pg_init_sql_runs_again_after_a_reset(env, wirepool, config, role):
    """Transaction pooling resets a server whose client leaves inside a transaction."""
    wp = pg_start(wirepool, config, role, init_sql="SET statement_timeout = '7s'")
    leaver = pg_client(env, wp, role, autocommit=False)
    pid = scalar(leaver, "SELECT pg_backend_pid()")
    leaver.cursor().execute("SET statement_timeout = '2s'")
    leaver.close()  # inside a transaction: ROLLBACK, DISCARD ALL, init_sql
    after = pg_client(env, wp, role)
    assert scalar(after, "SELECT pg_backend_pid()") == pid
    assert show(after, "statement_timeout") == "7s"
    after.close()


def test_pg_init_sql_failure_fails_the_connection_clearly(env, wirepool, config, role):
    wp = pg_start(wirepool, config, role,
                  init_sql=["SET lock_timeout = '1s'",
                            "SELECT 'sekrit_token_1234' FROM wp_no_such_table"])
    with pytest.raises(psycopg2.OperationalError) as ei:
        pg_client(env, wp, role)
    text = str(ei.value)
    assert "init_sql[1] failed" in text, text
    assert "wp_no_such_table" in text, text  # the server's own words
    assert wp.wait_log(r"init_sql\[1\] failed: 42P01"), wp.log_tail()
    assert "sekrit_token_1234" not in wp.log_text()


def test_pg_startup_parameters_are_the_users_baseline(env, wirepool, config, role):
    wp = pg_start(wirepool, config, role,
                  startup_parameters={"lock_timeout": "4s", "wp.tenant": "acme"})
    first = pg_client(env, wp, role)
    assert show(first, "lock_timeout") == "4s"
    assert show(first, "wp.tenant") == "acme"
    first.cursor().execute("SET lock_timeout = '1s'")
    second = pg_client(env, wp, role)
    assert show(second, "lock_timeout") == "4s"
    assert show(first, "lock_timeout") == "1s"
    # A client's own startup parameter wins for that client only.
    own = pg_client(env, wp, role, options="-c lock_timeout=9s")
    assert show(own, "lock_timeout") == "9s"
    assert show(second, "lock_timeout") == "4s"
    assert show(own, "wp.tenant") == "acme"
    for conn in (first, second, own):
        conn.close()


def test_pg_startup_parameters_and_init_sql_after_session_reset(env, wirepool, config, role):
    wp = pg_start(wirepool, config, role, pool_mode="session",
                  startup_parameters={"lock_timeout": "4s"},
                  init_sql="SELECT set_config('wp.tag', 'from_init', false)")
    first = pg_client(env, wp, role)
    first.cursor().execute("SET lock_timeout = '1s'; SET wp.tag = 'mine'")
    first.close()
    second = pg_client(env, wp, role)
    assert show(second, "lock_timeout") == "4s"
    assert show(second, "wp.tag") == "from_init"
    second.close()


def temp_exists(conn, name):
    return scalar(conn, f"SELECT to_regclass('pg_temp.{name}') IS NOT NULL")


def test_pg_pin_as_error_refuses_a_temp_table(env, wirepool, config, role):
    wp = pg_start(wirepool, config, role, pin_as_error=["temp_table"])
    conn = pg_client(env, wp, role)
    with pytest.raises(psycopg2.errors.FeatureNotSupported) as ei:
        conn.cursor().execute("CREATE TEMP TABLE wp_refused (a int)")
    assert ei.value.pgcode == "0A000"
    message_text = ei.value.diag.message_primary
    assert "pin_as_error lists temp_table" in message_text, message_text
    assert "CREATE TEMP TABLE wp_refused" in message_text, message_text
    assert scalar(conn, "SELECT 1") == 1
    assert not temp_exists(conn, "wp_refused")
    assert wp.wait_log(r"statement refused \(temp_table listed in pin_as_error\)")
    # Quotes, backslashes and dollar quotes in the statement reach the message intact.
    tricky = "CREATE TEMP TABLE \"wp$q\" AS SELECT 'it''s \\ $x$ ü' AS a"
    with pytest.raises(psycopg2.errors.FeatureNotSupported) as ei:
        conn.cursor().execute(tricky)
    assert ei.value.diag.message_primary.endswith(tricky), ei.value.diag.message_primary

    # Inside a transaction the refusal fails the transaction, as a server error would.
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute("SELECT 1")
    with pytest.raises(psycopg2.errors.FeatureNotSupported):
        cur.execute("CREATE TEMP TABLE wp_refused2 (a int)")
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        cur.execute("SELECT 1")
    conn.rollback()
    conn.autocommit = True
    assert scalar(conn, "SELECT 2") == 2

    # A reason not listed still pins: the lock stays with the client's server.
    other = pg_client(env, wp, role)
    conn.cursor().execute("SELECT pg_advisory_lock(4242)")
    assert wp.wait_log(r"pinned to its server \(advisory_lock\)")
    assert scalar(conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND pid = pg_backend_pid() AND objid = 4242") == 1
    conn.cursor().execute("SELECT pg_advisory_unlock_all()")
    assert scalar(other, "SELECT 3") == 3  # the one server is free again
    conn.close()
    other.close()


def extended(raw, statement, sql, params=(), name=b""):
    """Parse (parameter types unspecified, unless sql is None) / Bind (text
    values) / Execute / Sync; returns the message types answered and the error
    fields, if any."""
    types = struct.pack("!h", len(params)) + b"\x00\x00\x00\x00" * len(params)
    values = b"".join(struct.pack("!i", len(v)) + v for v in params)
    parse = b"" if sql is None else message(b"P", statement + b"\x00" + sql.encode() + b"\x00"
                                             + types)
    raw.send(
        parse
        + message(b"B", name + b"\x00" + statement + b"\x00" + b"\x00\x00"
                  + struct.pack("!h", len(params)) + values + b"\x00\x00")
        + message(b"E", name + b"\x00" + b"\x00\x00\x00\x00")
        + message(b"S")
    )
    kinds, error = [], None
    while True:
        kind, payload = raw.read_message()
        kinds.append(kind)
        if kind == b"E":
            error = parse_error_fields(payload)
        if kind == b"Z":
            raw.tx_status = payload[:1]
            return kinds, error


def test_pg_pin_as_error_extended_protocol(env, wirepool, config, role):
    wp = pg_start(wirepool, config, role, pin_as_error=["temp_table", "advisory_lock"])
    with RawPg("127.0.0.1", wp.port("pg")) as raw:
        raw.login(role.name, role.password, env["WP_PG_DB"])
        kinds, error = extended(raw, b"", "CREATE TEMP TABLE wp_ext (a int)")
        assert error is not None and error.get("C") == "0A000", (kinds, error)
        assert "pin_as_error lists temp_table" in error.get("M", ""), error
        assert raw.tx_status == b"I"
        assert raw.query("SELECT to_regclass('pg_temp.wp_ext') IS NULL") == [("t",)]

        # A named statement with a parameter: its Bind still fits, and every execution of it is
        # refused.
        for sql in ("SELECT pg_advisory_lock($1::bigint)", None):
            kinds, error = extended(raw, b"wp_lock", sql, params=(b"4343",))
            assert error is not None and error.get("C") == "0A000", (kinds, error)
            assert "advisory_lock" in error.get("M", ""), error
        assert raw.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                         "AND objid = 4343") == [("0",)]

        # Inside a transaction block the transaction fails, as it would on the server.
        raw.query("BEGIN")
        kinds, error = extended(raw, b"", "CREATE TEMP TABLE wp_ext2 (a int)")
        assert error is not None and error.get("C") == "0A000"
        assert raw.tx_status == b"E"
        with pytest.raises(PgError):
            raw.query("SELECT 1")
        raw.query("ROLLBACK")
        assert raw.query("SELECT 5") == [("5",)]
        assert raw.tx_status == b"I"

        # An ordinary statement still runs on the extended protocol.
        kinds, error = extended(raw, b"", "SELECT $1::int + 1", params=(b"41",))
        assert error is None and b"D" in kinds, (kinds, error)
        raw.terminate()


# ---------------------------------------------------------------- MySQL / MariaDB


def my_start(my_proxy, my_users, startup_parameters=None, **proxy):
    name, password = my_users[0]
    user = {"name": name, "password": password}
    if startup_parameters:
        user["startup_parameters"] = startup_parameters
    proxy.setdefault("pool_mode", "transaction")
    proxy.setdefault("max_backend_connections", 1)
    return my_proxy([user] + list(my_users[1:]), **proxy)


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_my_init_sql_is_every_clients_baseline(my_env, my_proxy, my_users, proxy_only,
                                               pool_mode):
    target = my_start(my_proxy, my_users, pool_mode=pool_mode,
                      init_sql="SET SESSION sql_mode = 'ANSI_QUOTES'")
    proxy_only(target, "init_sql")
    first = connect_target(my_env, target)
    assert my_scalar(first, "SELECT @@SESSION.sql_mode") == "ANSI_QUOTES"
    first.cursor().execute("SET SESSION sql_mode = 'NO_ZERO_DATE'")
    assert my_scalar(first, "SELECT @@SESSION.sql_mode") == "NO_ZERO_DATE"
    if pool_mode == "session":
        first.close()  # COM_RESET_CONNECTION, then init_sql again
    second = connect_target(my_env, target)
    assert my_scalar(second, "SELECT @@SESSION.sql_mode") == "ANSI_QUOTES"
    if pool_mode == "transaction":
        assert my_scalar(first, "SELECT @@SESSION.sql_mode") == "NO_ZERO_DATE"
        assert my_scalar(second, "SELECT @@SESSION.sql_mode") == "ANSI_QUOTES"
        first.close()
    second.close()


def test_my_init_sql_failure_fails_the_connection_clearly(my_env, my_proxy, my_users, proxy_only):
    target = my_start(my_proxy, my_users,
                      init_sql=["SELECT 'sekrit_token_5678' FROM wp_no_such_table_x"])
    proxy_only(target, "init_sql")
    with pytest.raises(pymysql.err.MySQLError) as ei:
        connect_target(my_env, target)
    assert "init_sql[0] failed" in my_errmsg(ei.value), ei.value
    assert target.wp.wait_log(r"init_sql\[0\] failed: 1146"), target.wp.log_tail()
    assert "sekrit_token_5678" not in target.wp.log_text()


def test_my_startup_parameters_are_the_users_baseline(my_env, my_proxy, my_users, proxy_only):
    target = my_start(my_proxy, my_users, startup_parameters={"lock_wait_timeout": "1234"},
                      init_sql="SET SESSION max_join_size = 1000000")
    proxy_only(target, "startup_parameters")
    first = connect_target(my_env, target)
    assert my_scalar(first, "SELECT @@SESSION.lock_wait_timeout") == 1234
    assert my_scalar(first, "SELECT @@SESSION.max_join_size") == 1000000
    first.cursor().execute("SET SESSION lock_wait_timeout = 77, max_join_size = 5")
    second = connect_target(my_env, target)
    assert my_scalar(second, "SELECT @@SESSION.lock_wait_timeout") == 1234
    assert my_scalar(second, "SELECT @@SESSION.max_join_size") == 1000000
    assert my_scalar(first, "SELECT @@SESSION.lock_wait_timeout") == 77
    assert my_scalar(first, "SELECT @@SESSION.max_join_size") == 5
    # A client that resets its own session loses the baseline, as on a server of its own; the
    # next client still gets it.
    first.cursor().execute("SET SESSION lock_wait_timeout = DEFAULT")
    assert my_scalar(first, "SELECT @@SESSION.lock_wait_timeout") != 1234
    assert my_scalar(second, "SELECT @@SESSION.lock_wait_timeout") == 1234
    first.close()
    second.close()


def test_my_pin_as_error_refuses_a_temp_table(my_env, my_proxy, my_users, my_table, proxy_only):
    target = my_start(my_proxy, my_users, pin_as_error=["temp_table"])
    proxy_only(target, "pin_as_error")
    name = my_table()
    conn = connect_target(my_env, target)
    with pytest.raises(pymysql.err.MySQLError) as ei:
        conn.cursor().execute(f"CREATE TEMPORARY TABLE {name} (a int)")
    assert my_errno(ei.value) == ER_NOT_SUPPORTED_YET, ei.value
    assert "pin_as_error lists temp_table" in my_errmsg(ei.value), ei.value
    assert my_scalar(conn, "SELECT 1") == 1
    with pytest.raises(pymysql.err.MySQLError):
        my_scalar(conn, f"SELECT COUNT(*) FROM {name}")  # never created
    # Inside a transaction the client keeps its transaction, as after any MySQL error.
    conn.begin()
    conn.cursor().execute("SELECT 1")
    with pytest.raises(pymysql.err.MySQLError) as ei:
        conn.cursor().execute(f"CREATE TEMPORARY TABLE {name} (a int)")
    assert my_errno(ei.value) == ER_NOT_SUPPORTED_YET
    conn.commit()

    # A reason not listed still pins.
    other = connect_target(my_env, target)
    assert my_scalar(conn, "SELECT GET_LOCK('wp_cfg_lock', 5)") == 1
    assert target.wp.wait_log(r"pinned to its server \(advisory_lock\)")
    assert my_scalar(conn, "SELECT IS_USED_LOCK('wp_cfg_lock') = CONNECTION_ID()") == 1
    conn.cursor().execute("SELECT RELEASE_ALL_LOCKS()")
    assert my_scalar(other, "SELECT 3") == 3
    conn.close()
    other.close()
