# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""The mariadb CLI through wirepool's mysql proxy (session pooling): queries,
USE, multi-statements, errors identical to direct MariaDB, a 100k-row LOAD
DATA LOCAL INFILE, and KILL QUERY / KILL from a second session.

Connection ids: clients see wirepool's own ids (the one in the handshake,
which PyMySQL's conn.thread_id() and mysql2's threadId report), and KILL
takes those. CONNECTION_ID() and SHOW PROCESSLIST are answered by MariaDB and
so still show the *backend* thread id of the server connection the client
holds right now; the tests below check both facts."""

import time

import pymysql
import pytest

from mysqlhelpers import (
    ER_KILL_DENIED_ERROR,
    ER_NO_SUCH_THREAD,
    ER_NO_SUCH_TABLE,
    ER_NOT_SUPPORTED_YET,
    ER_PARSE_ERROR,
    ER_QUERY_INTERRUPTED,
    connect_my_direct,
    connect_target,
    mariadb_admin,
    mariadb_cli,
    my_errmsg,
    my_errno,
    my_rows,
    my_scalar,
    wait_for_query,
)
from wphelpers import run_in_thread


@pytest.fixture
def target(my_proxy):
    return my_proxy()


def _cli(env, target, sql=None, **kw):
    kw.setdefault("db", env["WP_MY_DB"])
    return mariadb_cli(target.host, target.port, env["WP_MY_NATIVE_USER"],
                       env["WP_MY_NATIVE_PASSWORD"], sql, **kw)


def _cli_direct(env, sql=None, **kw):
    kw.setdefault("db", env["WP_MY_DB"])
    return mariadb_cli(env["WP_MY_HOST"], env["WP_MY_PORT"], env["WP_MY_NATIVE_USER"],
                       env["WP_MY_NATIVE_PASSWORD"], sql, **kw)


def test_cli_queries_use_and_multi_statements(my_env, target, my_table):
    env = my_env
    user = env["WP_MY_NATIVE_USER"]
    assert _cli(env, target, "SELECT 1 + 1").stdout == "2\n"
    r = _cli(env, target, "SELECT CURRENT_USER(), DATABASE()")
    assert r.stdout == f"{user}@127.0.0.1\t{env['WP_MY_DB']}\n"
    # The CLI's character set (from the handshake) is set up as directly.
    sql = "SELECT @@character_set_client, @@character_set_results, @@collation_connection"
    assert _cli(env, target, sql).stdout == _cli_direct(env, sql).stdout

    # A table, rows, a transaction.
    t = my_table()
    r = _cli(env, target,
             f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20)); "
             f"INSERT INTO {t} SELECT seq, CONCAT('v', seq) FROM seq_1_to_1000; "
             f"BEGIN; UPDATE {t} SET v = 'x' WHERE id <= 10; COMMIT; "
             f"SELECT COUNT(*), SUM(id), SUM(v = 'x') FROM {t}")
    assert r.stdout == "1000\t500500\t10\n"

    # USE (the CLI sends COM_INIT_DB), starting without a schema.
    r = _cli(env, target,
             f"SELECT DATABASE(); USE {env['WP_MY_DB']}; SELECT DATABASE(); "
             f"SELECT COUNT(*) FROM {t}; USE information_schema; SELECT DATABASE(); "
             f"SELECT COUNT(*) FROM TABLES WHERE TABLE_SCHEMA = '{env['WP_MY_DB']}' "
             f"AND TABLE_NAME = '{t}'",
             db=None)
    assert r.stdout == f"NULL\n{env['WP_MY_DB']}\n1000\ninformation_schema\n1\n"

    # -e "a; b": the CLI splits it and sends two COM_QUERYs.
    assert _cli(env, target, "select 1; select 2").stdout == "1\n2\n"

    # One COM_QUERY holding several statements (CLIENT_MULTI_STATEMENTS): with
    # another delimiter the CLI sends it whole and reads the multi-results.
    r = _cli(env, target, f"select 1; select 2; select count(*) from {t}$$",
             args=["--delimiter=$$"])
    assert r.stdout == "1\n2\n1000\n"

    # A procedure returning two result sets and a final OK (CLIENT_MULTI_RESULTS).
    proc = f"p_{t}"
    try:
        _cli(env, target,
             f"CREATE PROCEDURE {proc}() BEGIN SELECT 'a'; SELECT COUNT(*) FROM {t}; END$$",
             args=["--delimiter=$$"])
        assert _cli(env, target, f"CALL {proc}(); SELECT 'after'").stdout == "a\n1000\nafter\n"
    finally:
        _cli(env, target, f"DROP PROCEDURE IF EXISTS {proc}", check=False)

    # mariadb-admin: COM_PING and COM_STATISTICS.
    for cmd, expect in (("ping", "mysqld is alive"), ("status", "Uptime:")):
        r = mariadb_admin(target.host, target.port, user, env["WP_MY_NATIVE_PASSWORD"], cmd)
        assert r.returncode == 0 and expect in r.stdout, (cmd, r.stdout, r.stderr)


def test_cli_errors_same_as_direct(my_env, target, my_table):
    env = my_env
    t = my_table()
    _cli(env, target, f"CREATE TABLE {t} (id INT PRIMARY KEY)")
    cases = [
        ("selec 1", ER_PARSE_ERROR),
        ("SELECT * FROM wp_no_such_table", ER_NO_SUCH_TABLE),
        (f"INSERT INTO {t} VALUES (1); INSERT INTO {t} VALUES (1)", 1062),
        # A multi-statement COM_QUERY that fails in the middle.
        ("SELECT 1; SELECT * FROM wp_no_such_table; SELECT 3$$", ER_NO_SUCH_TABLE),
    ]
    for sql, errno in cases:
        args = ["--delimiter=$$"] if sql.endswith("$$") else []
        _cli(env, target, f"DELETE FROM {t}")
        via = _cli(env, target, sql, args=args, check=False)
        _cli(env, target, f"DELETE FROM {t}")
        direct = _cli_direct(env, sql, args=args, check=False)
        assert via.returncode == 1, (sql, via.stdout, via.stderr)
        assert f"ERROR {errno} (" in via.stderr, (sql, via.stderr)
        assert (via.stdout, via.stderr) == (direct.stdout, direct.stderr), sql

    # Warnings come through too (--show-warnings asks with SHOW WARNINGS).
    sql = "SELECT 1/0, CAST('12abc' AS UNSIGNED)"
    via = _cli(env, target, sql, args=["--show-warnings"])
    direct = _cli_direct(env, sql, args=["--show-warnings"])
    assert "Division by 0" in via.stdout + via.stderr
    assert (via.stdout, via.stderr) == (direct.stdout, direct.stderr)


def test_cli_load_data_local_infile_100k(my_env, target, my_table, tmp_path):
    env = my_env
    t = my_table()
    src = tmp_path / "rows.tsv"
    with open(src, "w") as f:
        for i in range(1, 100_001):
            f.write(f"{i}\tname {i}\t{'q' * (i % 50)}\n")
    _cli(env, target, f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(40), pad TEXT)")
    r = _cli(env, target,
             f"LOAD DATA LOCAL INFILE '{src}' INTO TABLE {t}; SHOW WARNINGS; "
             f"SELECT COUNT(*), SUM(id), COUNT(DISTINCT name), SUM(LENGTH(pad)) FROM {t}",
             args=["--local-infile=1"], timeout=120)
    pad_total = sum(i % 50 for i in range(1, 100_001))
    assert r.stdout == f"100000\t{100_000 * 100_001 // 2}\t100000\t{pad_total}\n"

    # A client that did not allow LOCAL INFILE gets an error (directly: 4166)
    # and nothing is loaded; its session goes on (--force keeps reading).
    r = _cli(env, target, args=["--local-infile=0", "--force"], check=False, timeout=60,
             input=f"LOAD DATA LOCAL INFILE '{src}' INTO TABLE {t};\nSELECT COUNT(*) FROM {t};\n")
    assert "ERROR" in r.stderr, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "100000\n", (r.returncode, r.stdout, r.stderr)
    print("LOCAL INFILE refused:", r.stderr.strip())


def _sleep_in_thread(conn, seconds=30):
    def go():
        with conn.cursor() as cur:
            cur.execute(f"SELECT SLEEP({seconds})")
            return cur.fetchall()

    return run_in_thread(go)


def test_kill_query_from_second_session(my_env, target, my_admin):
    env = my_env
    a = connect_target(env, target, read_timeout=60)
    b = connect_target(env, target)
    try:
        a_id = a.thread_id()  # wirepool's id for this client, from the handshake
        b_id = b.thread_id()
        assert a_id and b_id and a_id != b_id
        # CONNECTION_ID() is answered by MariaDB: the backend thread, not a_id
        # (unless by coincidence). It stays the same for the whole session.
        a_backend = my_scalar(a, "SELECT CONNECTION_ID()")

        t, box = _sleep_in_thread(a)
        backend_tid = wait_for_query(my_admin, "SELECT SLEEP(30)", timeout=5)
        assert backend_tid is not None, "SELECT SLEEP(30) never showed in the processlist"
        # SHOW PROCESSLIST / information_schema show backend ids too.
        assert backend_tid == a_backend

        t0 = time.monotonic()
        with b.cursor() as cur:
            cur.execute(f"KILL QUERY {a_id}")
        t.join(timeout=10)
        assert not t.is_alive(), "SELECT SLEEP(30) still running 10 s after KILL QUERY"
        assert "error" in box, f"the sleep was not interrupted: {box}"
        assert my_errno(box["error"]) == ER_QUERY_INTERRUPTED, repr(box["error"])
        assert time.monotonic() - t0 < 2.0, f"interrupted only after {time.monotonic() - t0:.2f}s"
        assert box["elapsed"] < 10

        # Both sessions go on, 'a' on the same backend.
        assert my_scalar(a, "SELECT 42") == 42
        assert my_scalar(a, "SELECT CONNECTION_ID()") == a_backend
        assert my_scalar(b, "SELECT 43") == 43
    finally:
        a.close()
        b.close()


def test_kill_behind_a_comment_and_among_other_statements(my_env, target, my_admin, proxy_only):
    """A KILL behind a comment is still mapped; one among other statements of a query is
    refused (1235) rather than passed to MariaDB, which would read the proxy's id as its own."""
    proxy_only(target, "refusing a KILL among other statements")
    env = my_env
    a = connect_target(env, target, read_timeout=60)
    b = connect_target(env, target, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    try:
        a_id = a.thread_id()
        t, box = _sleep_in_thread(a)
        assert wait_for_query(my_admin, "SELECT SLEEP(30)", timeout=5) is not None
        # Among other statements; and half in an executable comment (a server that skips it
        # would read KILL <id>, the whole connection).
        for sql in (f"SELECT 1; KILL QUERY {a_id}", f"KILL /*!50000 QUERY */ {a_id}"):
            with pytest.raises(pymysql.err.MySQLError) as ei:
                with b.cursor() as cur:
                    cur.execute(sql)
            assert my_errno(ei.value) == ER_NOT_SUPPORTED_YET, (sql, repr(ei.value))
            assert "alone in its query" in my_errmsg(ei.value), repr(ei.value)
        time.sleep(0.3)
        assert t.is_alive(), f"a refused KILL stopped the sleep: {box}"
        with b.cursor() as cur:
            cur.execute(f"/* stop it */ -- really\n /*!50000 KILL QUERY {a_id} */")
        t.join(timeout=10)
        assert not t.is_alive(), "SELECT SLEEP(30) still running 10 s after KILL QUERY"
        assert my_errno(box["error"]) == ER_QUERY_INTERRUPTED, repr(box["error"])
        assert my_scalar(b, "SELECT 2") == 2
    finally:
        a.close()
        b.close()


def test_kill_of_an_id_not_the_users_gives_1094(my_env, target):
    env = my_env
    b = connect_target(env, target)
    if target.proxied:
        # Another user's client of the same proxy.
        other = connect_target(env, target, env["WP_MY_ED25519_USER"],
                               env["WP_MY_ED25519_PASSWORD"])
        allowed = {ER_NO_SUCH_THREAD}
    else:  # MariaDB says 1095 (not owner) for another user's thread
        other = connect_my_direct(env)
        allowed = {ER_NO_SUCH_THREAD, ER_KILL_DENIED_ERROR}
    try:
        ids = {b.thread_id(), other.thread_id()}
        unknown = 987_654_321
        while unknown in ids:
            unknown += 1
        for victim, kinds in ((other.thread_id(), allowed), (unknown, {ER_NO_SUCH_THREAD})):
            for stmt in (f"KILL QUERY {victim}", f"KILL {victim}", f"KILL CONNECTION {victim}"):
                with pytest.raises(pymysql.err.MySQLError) as ei:
                    with b.cursor() as cur:
                        cur.execute(stmt)
                assert my_errno(ei.value) in kinds, (stmt, repr(ei.value))
                if my_errno(ei.value) == ER_NO_SUCH_THREAD:
                    assert str(victim) in my_errmsg(ei.value), repr(ei.value)
        # Nobody got hurt.
        assert my_scalar(other, "SELECT 1") == 1
        assert my_scalar(b, "SELECT 2") == 2
    finally:
        b.close()
        other.close()


def test_kill_connection_closes_that_client(my_env, target):
    env = my_env
    b = connect_target(env, target)
    c = connect_target(env, target, read_timeout=15)
    try:
        t, box = _sleep_in_thread(c)
        time.sleep(0.3)
        t0 = time.monotonic()
        with b.cursor() as cur:
            cur.execute(f"KILL {c.thread_id()}")
        t.join(timeout=10)
        assert not t.is_alive(), "the killed client's SELECT SLEEP(30) still runs"
        assert "error" in box, box
        print("killed client saw:", repr(box["error"]), f"after {time.monotonic() - t0:.2f}s")
        assert time.monotonic() - t0 < 3.0
        # That client is gone ...
        with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                my_rows(c, "SELECT 1")
                time.sleep(0.1)
        # ... the killer and newcomers are fine.
        assert my_scalar(b, "SELECT 1") == 1
        d = connect_target(env, target)
        try:
            assert my_scalar(d, "SELECT 2") == 2
        finally:
            d.close()
    finally:
        b.close()
        c.close()
