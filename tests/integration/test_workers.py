# Run with /usr/bin/python3 (Debian's psycopg2): see tests/integration/conftest.py.
"""workers: N — several event-loop threads behind one listener.

Worker 0 accepts and hands the sockets out in turn (the first client to worker 0, the second to
worker 1, ...), so consecutive connections of a test land on different workers. What must hold:
the server limit is global, an idle server on one worker serves a client waiting on another
(the same backend process: the connection moves, it is not reopened), a full proxy makes room
for another pool across workers, and cancel requests find their client on any worker.
"""

import time

import psycopg2

from wphelpers import (ActivitySampler, backend_pid_of_new_session, connect, parse_pgbench, pgbench,
                       run_in_thread, scalar, wait_until_running)


def test_idle_server_moves_to_the_worker_whose_client_waits(env, wirepool, config, role):
    wp = wirepool(config([role], workers=2, pool_mode="transaction", max_backend_connections=1))
    port = wp.port("pg")
    first = connect(env, port, role.name, role.password)  # worker 0
    second = connect(env, port, role.name, role.password)  # worker 1
    try:
        pid = scalar(first, "SELECT pg_backend_pid()")
        # One server for the whole proxy: each worker gets it in turn, the same backend each time.
        for _ in range(3):
            assert scalar(second, "SELECT pg_backend_pid()") == pid
            assert scalar(first, "SELECT pg_backend_pid()") == pid
    finally:
        first.close()
        second.close()


def test_session_mode_server_moves_after_its_client_leaves(env, wirepool, config, role):
    wp = wirepool(config([role], workers=2, max_backend_connections=1))
    port = wp.port("pg")
    first = connect(env, port, role.name, role.password)  # worker 0, holds the server
    pid = scalar(first, "SELECT pg_backend_pid()")
    box = {}

    def wait_for_server():  # on worker 1: waits for the server
        box["pid"] = backend_pid_of_new_session(env, port, role.name, role.password)

    t, result = run_in_thread(wait_for_server)
    time.sleep(0.5)
    assert t.is_alive(), "the second client got a server while the only one was held"
    first.close()  # the server is reset and goes to worker 1
    t.join(timeout=10)
    assert not t.is_alive(), "the waiting client was never served"
    assert result.get("error") is None, result
    assert box["pid"] == pid


def test_one_server_serves_back_to_back_clients_on_alternating_workers(env, wirepool, config,
                                                                        role):
    """Each client connects the moment the one before it has left, so its worker starts to wait
    while the other worker is still resetting the pool's only server (the timing in which a
    waiter of the same pool once counted as another pool's and the server was closed for it)."""
    wp = wirepool(config([role], workers=2, max_backend_connections=1,
                         connection_borrow_timeout="10s"))
    port = wp.port("pg")
    pids = [backend_pid_of_new_session(env, port, role.name, role.password) for _ in range(20)]
    assert len(set(pids)) == 1, f"the pool's only server was replaced: backends {pids}"


def test_server_limit_is_global_across_workers(env, wirepool, config, role):
    wp = wirepool(config([role], workers=2, pool_mode="transaction", max_backend_connections=4,
                         connection_borrow_timeout="30s"))
    port = wp.port("pg")
    r = pgbench(env, port, role.name, role.password, "-i", "-s", "1", "-q")
    assert r.returncode == 0, r.stderr
    with ActivitySampler(env, role.name) as sampler:
        r = pgbench(env, port, role.name, role.password, "-c", "16", "-j", "16", "-T", "5", "-n",
                    timeout=60)
    parse_pgbench(r).assert_clean()
    assert 0 < sampler.max <= 4, sampler.samples


def test_full_proxy_makes_room_for_another_pool_across_workers(env, wirepool, config, make_role):
    a, b = make_role(), make_role()
    wp = wirepool(config([a, b], workers=2, pool_mode="transaction", max_backend_connections=1,
                         connection_borrow_timeout="5s"))
    port = wp.port("pg")
    first = connect(env, port, a.name, a.password)  # worker 0: its pool's server stays idle
    assert scalar(first, "SELECT current_user") == a.name
    started = time.monotonic()
    second = connect(env, port, b.name, b.password)  # worker 1: another pool, at the limit
    try:
        assert scalar(second, "SELECT current_user") == b.name
        assert time.monotonic() - started < 3, "the idle server of the other pool was not closed"
        assert scalar(first, "SELECT current_user") == a.name
    finally:
        first.close()
        second.close()


def test_cancel_finds_its_client_on_another_worker(env, wirepool, config, role, admin):
    wp = wirepool(config([role], workers=2, pool_mode="transaction"))
    port = wp.port("pg")
    spacer = connect(env, port, role.name, role.password)  # worker 0
    conn = connect(env, port, role.name, role.password)  # worker 1; its cancel comes to worker 0
    try:
        def sleep():
            with conn.cursor() as cur:
                cur.execute("SELECT pg_sleep(30)")

        t, box = run_in_thread(sleep)
        wait_until_running(admin, "pg_sleep(30)", user=role.name)
        conn.cancel()
        t.join(timeout=10)
        assert not t.is_alive(), "the cancel did not reach the client's server"
        assert isinstance(box.get("error"), psycopg2.errors.QueryCanceled), box
    finally:
        spacer.close()
        conn.close()
