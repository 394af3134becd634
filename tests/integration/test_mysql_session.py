# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Session pooling on the mysql proxy: a server connection is reset
(COM_RESET_CONNECTION, or COM_CHANGE_USER) before the next client gets it,
the schema is per client (session state, not part of the pool key), and
clients whose flags change what the server returns (CLIENT_FOUND_ROWS, the
character set) never share a backend set up differently."""

import pymysql
import pytest

from mysqlhelpers import (
    CLIENT_FOUND_ROWS,
    ER_NO_SUCH_TABLE,
    RawMy,
    connect_my_direct,
    connect_target,
    my_errno,
    my_rows,
    my_scalar,
)

UNKNOWN_STMT_HANDLER = 1243
PYMYSQL_CAPS = pymysql.constants.CLIENT.CAPABILITIES
CLIENT_CONNECT_ATTRS = pymysql.constants.CLIENT.CONNECT_ATTRS


def _default_sql_mode(env):
    conn = connect_my_direct(env, env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"])
    try:
        return my_scalar(conn, "SELECT @@SESSION.sql_mode")
    finally:
        conn.close()


def _assert_clean_session(env, target, table, backend=None):
    conn = connect_target(env, target)
    try:
        if backend is not None and target.proxied:
            assert my_scalar(conn, "SELECT CONNECTION_ID()") == backend, "backend not reused"
        assert my_rows(conn, "SELECT @x, @@autocommit, @@in_transaction") == ((None, 1, 0),)
        assert my_scalar(conn, "SELECT @@SESSION.sql_mode") == _default_sql_mode(env)
        with pytest.raises(pymysql.err.MySQLError) as ei:
            my_rows(conn, "SELECT * FROM wp_tmp")
        assert my_errno(ei.value) == ER_NO_SUCH_TABLE, repr(ei.value)
        with pytest.raises(pymysql.err.MySQLError) as ei:
            my_rows(conn, "EXECUTE wp_stmt")
        assert my_errno(ei.value) == UNKNOWN_STMT_HANDLER, repr(ei.value)
        assert my_scalar(conn, "SELECT IS_FREE_LOCK('wp_test_lock')") == 1
        assert my_scalar(conn, f"SELECT COUNT(*) FROM {table}") == 0, "uncommitted rows survived"
    finally:
        conn.close()


def _dirty(cur, table):
    cur.execute("SET @x = 5")
    cur.execute("CREATE TEMPORARY TABLE wp_tmp (a INT)")
    cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES'")
    cur.execute("PREPARE wp_stmt FROM 'SELECT 1'")
    cur.execute("SELECT GET_LOCK('wp_test_lock', 0)")
    cur.execute("SET autocommit = 0")
    cur.execute(f"INSERT INTO {table} VALUES (1)")  # never committed


@pytest.mark.parametrize("server_reset", ["auto", "change_user"])
def test_session_state_is_reset_between_clients(my_env, my_proxy, my_table, server_reset):
    """With server_reset auto MariaDB gets COM_RESET_CONNECTION; change_user resets by logging
    the backend user in again (what a server without COM_RESET_CONNECTION gets)."""
    env = my_env
    target = my_proxy(max_backend_connections=1, server_reset=server_reset)
    t = my_table()
    conn = connect_target(env, target)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY)")
        backend = my_scalar(conn, "SELECT CONNECTION_ID()")
    finally:
        conn.close()

    # A client leaves a dirty session with COM_QUIT ...
    conn = connect_target(env, target)
    try:
        with conn.cursor() as cur:
            _dirty(cur, t)
        assert my_scalar(conn, "SELECT @x") == 5
    finally:
        conn.close()
    _assert_clean_session(env, target, t, backend)

    # ... and another just drops the TCP connection in the middle of it. It logs in with
    # PyMySQL's client flags (less connection attributes, which it does not send), so that it
    # lands in the same pool: clients with other flags never share a backend.
    c = RawMy(target.host, target.port, timeout=10)
    try:
        c.login(env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"], env["WP_MY_DB"],
                caps=PYMYSQL_CAPS & ~CLIENT_CONNECT_ATTRS)
        for sql in ("SET @x = 5", "CREATE TEMPORARY TABLE wp_tmp (a INT)",
                    "SET SESSION sql_mode = 'ANSI_QUOTES'", "PREPARE wp_stmt FROM 'SELECT 1'",
                    "BEGIN", f"INSERT INTO {t} VALUES (2)"):
            resp = c.command(b"\x03" + sql.encode())
            assert resp[:1] == b"\x00", (sql, resp[:60])
    finally:
        c.close()
    _assert_clean_session(env, target, t, backend)


def test_schema_is_per_client(my_env, my_proxy):
    env = my_env
    target = my_proxy(max_backend_connections=1)
    backends = set()
    for db in (env["WP_MY_DB"], "information_schema", env["WP_MY_DB"], "information_schema"):
        conn = connect_target(env, target, database=db)
        try:
            assert my_scalar(conn, "SELECT DATABASE()") == db
            backends.add(my_scalar(conn, "SELECT CONNECTION_ID()"))
            # Leave with another schema selected (COM_INIT_DB).
            conn.select_db("information_schema" if db == env["WP_MY_DB"] else env["WP_MY_DB"])
        finally:
            conn.close()
    if target.proxied:
        assert len(backends) == 1, f"the schema split the pool: backends {backends}"


def test_found_rows_and_charset_never_share_a_backend(my_env, my_proxy, my_table, my_admin):
    env = my_env
    target = my_proxy(max_backend_connections=4)
    t = my_table()
    with my_admin.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, v INT)")
        cur.execute(f"INSERT INTO {t} VALUES (1, 1), (2, 1), (3, 1)")

    backends = {}  # (found_rows, charset) -> backend ids used
    for _ in range(3):
        for found_rows in (False, True):
            for charset in ("utf8mb4", "latin1"):
                conn = connect_target(env, target, charset=charset,
                                      client_flag=CLIENT_FOUND_ROWS if found_rows else 0)
                try:
                    got = my_rows(conn, "SELECT @@character_set_client, "
                                        "@@character_set_results, @@character_set_connection")
                    assert got == ((charset, charset, charset),), (found_rows, charset, got)
                    with conn.cursor() as cur:
                        # Sets nothing new: 3 rows matched, 0 changed.
                        n = cur.execute(f"UPDATE {t} SET v = 1")
                    assert n == (3 if found_rows else 0), (found_rows, charset, n)
                    assert my_scalar(conn, "SELECT %s", ("Grüße",)) == "Grüße"
                    backends.setdefault((found_rows, charset), set()).add(
                        my_scalar(conn, "SELECT CONNECTION_ID()"))
                finally:
                    conn.close()
    if target.proxied:
        with_rows = set().union(*(v for k, v in backends.items() if k[0]))
        without = set().union(*(v for k, v in backends.items() if not k[0]))
        assert not (with_rows & without), f"FOUND_ROWS and not shared backends: {backends}"
