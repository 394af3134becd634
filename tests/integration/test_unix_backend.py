# Runs under /usr/bin/python3 (Debian's pytest, python3-psycopg2 and python3-pymysql).
"""Backends given as the path of a Unix-domain socket: PostgreSQL and MariaDB
through their sockets under transaction pooling, the cancel and the KILL on
side connections through the same socket, and a clear error for a socket that
is not there."""

import json
import os
import subprocess
import time

import psycopg2
import psycopg2.errors
import pytest

from mysqlhelpers import ER_QUERY_INTERRUPTED, connect_target, my_errno, my_scalar, wait_for_query
from wphelpers import connect, run_in_thread, scalar


def _pg_socket(env):
    return os.path.join(env["WP_PG_SOCKET_DIR"], f".s.PGSQL.{env['WP_PG_PORT']}")


def test_postgres_through_its_unix_socket(env, wirepool, config, role, admin):
    path = _pg_socket(env)
    wp = wirepool(config([role], pool_mode="transaction", backends=[path],
                         max_backend_connections=2))
    assert f"backend={path}" in wp.log_text()
    clients = [connect(env, wp.port("pg"), role.name, role.password) for _ in range(6)]
    try:
        for i, c in enumerate(clients):
            c.cursor().execute(f"SET work_mem = '{i + 1}MB'")
        for i, c in enumerate(clients):
            assert scalar(c, "SHOW work_mem") == f"{i + 1}MB"
        # The servers are local connections (no client address), and only those.
        with admin.cursor() as cur:
            cur.execute("SELECT count(*), count(client_addr) FROM pg_stat_activity "
                        "WHERE usename = %s", (role.name,))
            total, over_tcp = cur.fetchone()
        assert 1 <= total <= 2 and over_tcp == 0, (total, over_tcp)

        # A cancel goes to the backend on a side connection through the socket too.
        a = clients[0]
        t, box = run_in_thread(lambda: a.cursor().execute("SELECT pg_sleep(30)"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and scalar(
                admin, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
                "AND state = 'active'") == 0:
            time.sleep(0.05)
        a.cancel()
        t.join(timeout=10)
        assert not t.is_alive(), "pg_sleep(30) still runs after the cancel"
        assert isinstance(box.get("error"), psycopg2.errors.QueryCanceled), box
        assert scalar(a, "SELECT 7") == 7
    finally:
        for c in clients:
            c.close()


def test_mariadb_through_its_unix_socket(my_env, my_proxy, my_admin):
    env = my_env
    target = my_proxy(pool_mode="transaction", backends=[env["WP_MY_SOCKET"]],
                      max_backend_connections=2)
    assert f"backend={env['WP_MY_SOCKET']}" in target.wp.log_text()
    a = connect_target(env, target, read_timeout=60)
    b = connect_target(env, target)
    try:
        # MariaDB sees a local (socket) login: the localhost account.
        assert my_scalar(a, "SELECT USER()") == f"{env['WP_MY_NATIVE_USER']}@localhost"
        t, box = run_in_thread(lambda: a.cursor().execute("SELECT SLEEP(30)"))
        assert wait_for_query(my_admin, "SELECT SLEEP(30)", timeout=5) is not None
        with b.cursor() as cur:
            cur.execute(f"KILL QUERY {a.thread_id()}")
        t.join(timeout=10)
        assert not t.is_alive(), "SELECT SLEEP(30) still runs after the KILL"
        assert my_errno(box["error"]) == ER_QUERY_INTERRUPTED, repr(box.get("error"))
        assert my_scalar(a, "SELECT 42") == 42
    finally:
        a.close()
        b.close()


def test_a_missing_socket_is_a_clear_error(env, wirepool, config, role, tmp_path):
    path = str(tmp_path / "no-such.sock")
    wp = wirepool(config([role], backends=[path], server_connect_timeout="2s"))
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, wp.port("pg"), role.name, role.password)
    assert path in str(ei.value) or "no such file" in str(ei.value).lower(), str(ei.value)
    assert path in wp.log_text()


def test_tls_cannot_be_required_over_a_unix_socket(my_env, my_config, tmp_path):
    """A mode that demands TLS is refused at load (a socket carries none), naming the field."""
    cfg = my_config(backends=[my_env["WP_MY_SOCKET"]], backend_tls={"mode": "require"})
    path = tmp_path / "unix-require.yaml"
    path.write_text(json.dumps(cfg))
    r = subprocess.run([os.environ["WIREPOOL_BIN"], "-c", str(path), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout
    assert "backend_tls.mode" in r.stderr and "Unix socket" in r.stderr, r.stderr


def test_a_socket_server_moves_between_workers(env, wirepool, config, role):
    """One server, two workers, clients on both: the socket connection is handed from worker to
    worker (the same backend process serves all), as a TCP one is."""
    wp = wirepool(config([role], pool_mode="transaction", backends=[_pg_socket(env)],
                         max_backend_connections=1, workers=2))
    clients = [connect(env, wp.port("pg"), role.name, role.password) for _ in range(4)]
    try:
        pids = {scalar(c, "SELECT pg_backend_pid()") for _ in range(3) for c in clients}
        assert len(pids) == 1, pids
    finally:
        for c in clients:
            c.close()
