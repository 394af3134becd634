# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""psql and psycopg2 through wirepool: queries, \\copy of 100k rows both ways,
errors identical to direct PostgreSQL, and cancel."""

import os
import signal
import subprocess
import time

import psycopg2
import pytest

from wphelpers import (
    client_env,
    connect_direct,
    connect_proxy,
    psql,
    run_in_thread,
    scalar,
    wait_until_running,
)


@pytest.fixture
def wp(wirepool, config, role, proxy_users):
    return wirepool(config([(role.name, role.password)] + proxy_users))


def test_psql_queries(env, wp, role):
    port = wp.port()
    r = psql(env, port, role.name, role.password, "SELECT 1 + 1")
    assert r.stdout.strip() == "2"

    r = psql(env, port, role.name, role.password, "SELECT current_user, current_database()")
    assert r.stdout.strip() == f"{role.name}|{env['WP_PG_DB']}"

    # Several statements in one script, a table in the role's own schema.
    script = (
        "CREATE TABLE t (id int PRIMARY KEY, v text);\n"
        "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g;\n"
        "BEGIN;\nUPDATE t SET v = 'x' WHERE id <= 10;\nCOMMIT;\n"
        "SELECT count(*), sum(id), count(*) FILTER (WHERE v = 'x') FROM t;\n"
    )
    r = psql(env, port, role.name, role.password, args=["-f", "-"], input=script)
    assert r.stdout.strip().splitlines()[-1] == "1000|500500|10"

    # psql's \dt and friends use catalog queries with many columns.
    r = psql(env, port, role.name, role.password, r"\dt")
    assert "|t|table|" in r.stdout


def test_psycopg2_queries_and_big_rows(env, wp, role):
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        assert scalar(conn, "SELECT %s::int + %s::int", (40, 2)) == 42
        with conn.cursor() as cur:
            cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
            rows = cur.fetchall()
        assert len(rows) == 50000 and rows[-1][0] == 50000
        # A single DataRow far larger than any sane proxy buffer.
        big = scalar(conn, "SELECT repeat('abcdefgh', 2 * 1024 * 1024)")
        assert len(big) == 16 * 1024 * 1024 and big[:16] == "abcdefghabcdefgh"
        # And a big value the other way.
        payload = "z" * (8 * 1024 * 1024)
        assert scalar(conn, "SELECT length(%s)", (payload,)) == len(payload)
        # A transaction that rolls back.
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE tx (a int)")
            cur.execute("INSERT INTO tx VALUES (1)")
        conn.rollback()
        conn.autocommit = True
        assert scalar(conn, "SELECT to_regclass('tx') IS NULL") is True
    finally:
        conn.close()


def test_copy_100k_rows_in_and_out(env, wp, role, tmp_path):
    port = wp.port()
    src = tmp_path / "in.tsv"
    with open(src, "w") as f:
        for i in range(1, 100_001):
            f.write(f"{i}\tname {i}\t{'q' * (i % 50)}\\t{i * 7}\n")
    psql(env, port, role.name, role.password,
         "CREATE TABLE copied (id int, name text, pad text)")

    r = psql(env, port, role.name, role.password, rf"\copy copied FROM '{src}'", timeout=120)
    assert "COPY 100000" in r.stdout

    r = psql(env, port, role.name, role.password,
             "SELECT count(*), sum(id), count(DISTINCT name) FROM copied")
    assert r.stdout.strip() == f"100000|{100_000 * 100_001 // 2}|100000"

    out = tmp_path / "out.tsv"
    r = psql(env, port, role.name, role.password,
             rf"\copy (SELECT * FROM copied ORDER BY id) TO '{out}'", timeout=120)
    assert "COPY 100000" in r.stdout
    assert out.read_bytes() == src.read_bytes()

    # COPY TO STDOUT straight into psql's output, compared with direct.
    r_proxy = psql(env, port, role.name, role.password,
                   "COPY (SELECT * FROM copied ORDER BY id) TO STDOUT", timeout=120)
    r_direct = psql(env, env["WP_PG_PORT"], role.name, role.password,
                    "COPY (SELECT * FROM copied ORDER BY id) TO STDOUT", timeout=120)
    assert r_proxy.stdout == r_direct.stdout == src.read_text()


def test_copy_error_mid_stream_leaves_connection_usable(env, wp, role, tmp_path):
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE c (id int)")
            bad = tmp_path / "bad.txt"
            bad.write_text("".join(f"{i}\n" for i in range(50_000)) + "not-a-number\n")
            with open(bad) as f, pytest.raises(psycopg2.Error) as ei:
                cur.copy_expert("COPY c FROM STDIN", f)
            assert ei.value.pgcode == "22P02"
            cur.execute("SELECT count(*) FROM c")
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()


def _error_of(conn, sql):
    with conn.cursor() as cur:
        try:
            cur.execute(sql)
        except psycopg2.Error as e:
            return e
    raise AssertionError(f"{sql!r} did not fail")


@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT * FROM no_such_table_wp", "SELECT 1/0"])
def test_errors_same_as_direct(env, wp, role, sql):
    via = connect_proxy(env, wp, role.name, role.password)
    direct = connect_direct(env, role.name, role.password)
    try:
        e_via, e_direct = _error_of(via, sql), _error_of(direct, sql)
        assert e_via.pgcode == e_direct.pgcode
        assert e_via.pgerror == e_direct.pgerror
        for field in ("severity", "message_primary", "message_detail", "statement_position",
                      "source_function"):
            assert getattr(e_via.diag, field) == getattr(e_direct.diag, field), field
        if sql == "SELEC 1":
            assert e_via.pgcode == "42601"
        # The connection is fine after an error.
        assert scalar(via, "SELECT 7") == 7
    finally:
        via.close()
        direct.close()


def test_syntax_error_psql_output_same_as_direct(env, wp, role):
    outs = []
    for port in (wp.port(), env["WP_PG_PORT"]):
        r = psql(env, port, role.name, role.password, "SELEC 1", check=False, verbose=True)
        assert r.returncode != 0
        outs.append(r.stderr)
    assert "42601" in outs[0], outs[0]
    assert 'syntax error at or near "SELEC"' in outs[0], outs[0]
    assert outs[0] == outs[1]


def test_cancel_pg_sleep(env, wp, role, admin):
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        backend_pid = scalar(conn, "SELECT pg_backend_pid()")

        def sleep():
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30)")

        t, box = run_in_thread(sleep)
        wait_until_running(admin, "pg_sleep", pid=backend_pid)

        cancelled_at = time.monotonic()
        conn.cancel()
        t.join(timeout=35)
        assert not t.is_alive(), "query still running 35 s after cancel"
        took = time.monotonic() - cancelled_at
        err = box.get("error")
        assert isinstance(err, psycopg2.Error), f"expected an error, got {box}"
        assert err.pgcode == "57014", (err.pgcode, err.pgerror)
        assert "canceling statement due to user request" in err.pgerror
        assert took < 2.0, f"cancel took {took:.2f}s"
        # The session still works, on the same backend.
        assert scalar(conn, "SELECT 5") == 5
        assert scalar(conn, "SELECT pg_backend_pid()") == backend_pid
    finally:
        conn.close()


def test_psql_ctrl_c_cancels(env, wp, role, admin):
    """psql's Ctrl-C handler sends a CancelRequest to the address it connected to."""
    cmd = [os.path.join(env["WP_PG_BIN"], "psql"), "-X", "-At", "-v", "VERBOSITY=verbose",
           "-h", env["WP_PG_HOST"],
           "-p", str(wp.port()), "-U", role.name, "-d", env["WP_PG_DB"],
           "-c", "SELECT pg_sleep(30)"]
    p = subprocess.Popen(cmd, env=client_env(role.password), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            n = scalar(admin, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s "
                              "AND state = 'active' AND query LIKE 'SELECT pg_sleep%%'", (role.name,))
            if n:
                break
            time.sleep(0.05)
        else:
            pytest.fail("psql's pg_sleep(30) never became active")
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=35)
        took = time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert "57014: canceling statement due to user request" in err, err
    assert took < 2.0, f"psql took {took:.2f}s to come back after Ctrl-C"
