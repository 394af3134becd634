# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""Exact limits: backend connections are bounded and reused; clients beyond
the limit queue for connection_borrow_timeout, then get SQLSTATE 53300."""

import threading
import time

import pytest

from wphelpers import (ActivitySampler, backend_pid_of_new_session, connect_direct, connect_proxy,
                       count_backend_connections, scalar)
from wpwire import PgError, try_login


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_1000_sequential_connections_reuse_5_backends(env, wirepool, config, role, pool_mode):
    wp = wirepool(config([(role.name, role.password)], max_backend_connections=5,
                         pool_mode=pool_mode))
    pids = set()
    start = time.monotonic()
    with ActivitySampler(env, role.name, interval=0.05) as sampler:
        for i in range(1000):
            pids.add(backend_pid_of_new_session(env, wp.port("pg"), role.name, role.password))
            assert time.monotonic() - start < 150, f"only {i} connections in 150 s"
    elapsed = time.monotonic() - start
    assert len(sampler.samples) > 10, "sampler barely ran"
    assert sampler.max <= 5, f"pg_stat_activity showed {sampler.max} backend connections"
    assert 1 <= len(pids) <= 5, f"{len(pids)} distinct backend pids: {sorted(pids)[:20]}"
    # Every backend pid ever seen by the sampler is one the clients were given,
    # or at most 5 in all: nothing was opened and thrown away behind our back.
    assert len(sampler.pids_seen | pids) <= 5, sorted(sampler.pids_seen | pids)
    print(f"1000 connections in {elapsed:.1f}s over {len(pids)} backend(s)")


def _hold(env, port, user, password, results, idx):
    """Log in and run one query on a raw connection; keep it open on success."""
    start = time.monotonic()
    try:
        conn, err = try_login(env["WP_PG_HOST"], port, user, password, env["WP_PG_DB"], timeout=15)
        if err is None:
            try:
                rows = conn.query("SELECT pg_backend_pid()")
                results[idx] = ("ok", conn, int(rows[0][0]), time.monotonic() - start)
                return
            except PgError as e:
                conn.close()
                err = e
        results[idx] = ("error", err, None, time.monotonic() - start)
    except Exception as e:  # noqa: BLE001 - reported by the test
        results[idx] = ("exception", e, None, time.monotonic() - start)


def _run_holders(env, port, users, n_per_user):
    jobs = []
    for user, password in users:
        jobs += [(user, password)] * n_per_user
    results = [None] * len(jobs)
    threads = [
        threading.Thread(target=_hold, args=(env, port, u, p, results, i), daemon=True)
        for i, (u, p) in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    assert hung == 0, f"{hung} clients neither got a server nor an error within 20 s"
    return jobs, results


def _check_overflow(ok, errors, others, expected_ok):
    assert not others, f"unexpected failures: {[(r[0], repr(r[1])) for r in others]}"
    assert len(ok) == expected_ok, (
        f"{len(ok)} clients got a server, expected {expected_ok}; errors: "
        f"{[(r[1].sqlstate, r[1].message) for r in errors][:5]}"
    )
    for r in errors:
        err, elapsed = r[1], r[3]
        assert err.sqlstate == "53300", err.fields
        assert err.message, err.fields
        assert 0.8 <= elapsed <= 5.0, f"53300 after {elapsed:.2f}s (borrow timeout 1s)"


def test_30_holding_clients_5_backends_borrow_timeout(env, wirepool, config, role):
    wp = wirepool(config([(role.name, role.password)], max_backend_connections=5,
                         connection_borrow_timeout="1s"))
    port = wp.port()
    with ActivitySampler(env, role.name) as sampler:
        jobs, results = _run_holders(env, port, [(role.name, role.password)], 30)
        ok = [r for r in results if r[0] == "ok"]
        errors = [r for r in results if r[0] == "error"]
        others = [r for r in results if r[0] not in ("ok", "error")]
        try:
            _check_overflow(ok, errors, others, 5)
            assert len({r[2] for r in ok}) == 5
            print("53300 message:", errors[0][1].message)

            # The five keep working, on the same backends.
            for r in ok:
                assert r[1].query("SELECT pg_backend_pid()") == [(str(r[2]),)]
                assert r[1].query("SELECT count(*) FROM generate_series(1, 1000)") == [("1000",)]

            # While all five are held, a newcomer waits and gets 53300 too ...
            t0 = time.monotonic()
            conn, err = try_login(env["WP_PG_HOST"], port, role.name, role.password,
                                  env["WP_PG_DB"], timeout=15)
            if err is None:
                try:
                    conn.query("SELECT 1")
                except PgError as e:
                    err = e
                finally:
                    conn.close()
            assert err is not None and err.sqlstate == "53300", err
            assert 0.8 <= time.monotonic() - t0 <= 5.0

            # ... and once one holder leaves, the next client gets its server.
            ok[0][1].terminate()
            ok = ok[1:]
            t0 = time.monotonic()
            conn = connect_proxy(env, wp, role.name, role.password)
            try:
                assert scalar(conn, "SELECT 1") == 1
            finally:
                conn.close()
            assert time.monotonic() - t0 < 3.0
        finally:
            for r in ok:
                r[1].close()
    assert sampler.max <= 5, f"pg_stat_activity showed {sampler.max} backend connections"


def test_backend_limit_is_per_proxy_across_pools(env, wirepool, config, make_role):
    a, b = make_role(), make_role()
    wp = wirepool(config([(a.name, a.password), (b.name, b.password)],
                         max_backend_connections=5, connection_borrow_timeout="1s"))
    jobs, results = _run_holders(env, wp.port(), [(a.name, a.password), (b.name, b.password)], 4)
    ok = [r for r in results if r[0] == "ok"]
    errors = [r for r in results if r[0] == "error"]
    others = [r for r in results if r[0] not in ("ok", "error")]
    try:
        _check_overflow(ok, errors, others, 5)
        admin = connect_direct(env)
        try:
            total = count_backend_connections(admin, a.name, env["WP_PG_DB"]) + \
                count_backend_connections(admin, b.name, env["WP_PG_DB"])
        finally:
            admin.close()
        assert total <= 5, f"{total} backend connections for a 5-connection proxy"
    finally:
        for r in ok:
            r[1].close()


def test_max_client_connections(env, wirepool, config, role):
    wp = wirepool(config([(role.name, role.password)], max_client_connections=3))
    held = [connect_proxy(env, wp, role.name, role.password) for _ in range(3)]
    try:
        for c in held:
            assert scalar(c, "SELECT 1") == 1
        t0 = time.monotonic()
        conn, err = None, None
        try:
            conn, err = try_login(env["WP_PG_HOST"], wp.port(), role.name, role.password,
                                  env["WP_PG_DB"], timeout=10)
        except (ConnectionError, OSError) as e:  # closed without an ErrorResponse
            err = e
        if conn is not None:
            conn.close()
        assert conn is None, "a 4th client got in with max_client_connections: 3"
        assert time.monotonic() - t0 < 5, "the 4th client was left hanging"
        if isinstance(err, PgError):
            print("over max_client_connections:", err.fields)
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the slot frees once the proxy has seen the close
            try:
                c = connect_proxy(env, wp, role.name, role.password)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        held.append(c)
        assert scalar(c, "SELECT 1") == 1
    finally:
        for c in held:
            c.close()
