# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Exact limits for the mysql proxy: backend connections are bounded and
reused (MariaDB's processlist, sampled directly, never shows more than
max_backend_connections); clients beyond the limit wait for
connection_borrow_timeout, then get error 1040."""

import threading
import time

import pymysql
import pytest

from mysqlhelpers import (
    ER_CON_COUNT_ERROR,
    ProcesslistSampler,
    connect_my_direct,
    connect_target,
    my_errmsg,
    my_errno,
    my_scalar,
    processlist_ids,
)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_1000_sequential_connections_reuse_5_backends(my_env, my_proxy, proxy_only, pool_mode):
    # In transaction pooling a client that says goodbye between transactions must not need (and
    # so never lose) a server for it.
    env = my_env
    user = env["WP_MY_NATIVE_USER"]
    target = my_proxy(max_backend_connections=5, pool_mode=pool_mode)
    proxy_only(target, "backend reuse")
    seen = set()  # CONNECTION_ID() through the proxy: backend thread ids
    client_ids = set()  # wirepool's own ids from the handshakes
    start = time.monotonic()
    with ProcesslistSampler(env, user, interval=0.05) as sampler:
        for i in range(1000):
            conn = connect_target(env, target)
            try:
                client_ids.add(conn.thread_id())
                seen.add(my_scalar(conn, "SELECT CONNECTION_ID()"))
            finally:
                conn.close()
            assert time.monotonic() - start < 150, f"only {i} connections in 150 s"
    elapsed = time.monotonic() - start
    assert len(sampler.samples) >= 5, "the processlist sampler barely ran"
    assert sampler.max <= 5, f"MariaDB's processlist showed {sampler.max} connections of {user}"
    assert 1 <= len(seen) <= 5, f"{len(seen)} distinct backend ids: {sorted(seen)[:20]}"
    # Every backend thread the sampler ever saw is one the clients were given,
    # or at most 5 in all: nothing was opened and thrown away behind our back.
    assert len(sampler.ids_seen | seen) <= 5, sorted(sampler.ids_seen | seen)
    # The proxy hands out its own connection id per client.
    assert len(client_ids) == 1000, f"only {len(client_ids)} distinct handshake ids"
    print(f"1000 connections in {elapsed:.1f}s over {len(seen)} backend(s)")


def _hold(env, target, user, password, results, idx):
    """Log in and run one query; keep the connection open on success."""
    start = time.monotonic()
    try:
        conn = connect_target(env, target, user, password, connect_timeout=15, read_timeout=15)
    except pymysql.err.MySQLError as e:
        results[idx] = ("error", e, None, time.monotonic() - start)
        return
    except Exception as e:  # noqa: BLE001 - reported by the test
        results[idx] = ("exception", e, None, time.monotonic() - start)
        return
    try:
        backend = my_scalar(conn, "SELECT CONNECTION_ID()")
        results[idx] = ("ok", conn, backend, time.monotonic() - start)
    except pymysql.err.MySQLError as e:  # the borrow may happen at the first query
        conn.close()
        results[idx] = ("error", e, None, time.monotonic() - start)
    except Exception as e:  # noqa: BLE001
        conn.close()
        results[idx] = ("exception", e, None, time.monotonic() - start)


def _run_holders(env, target, users, n_per_user):
    jobs = []
    for user, password in users:
        jobs += [(user, password)] * n_per_user
    results = [None] * len(jobs)
    threads = [
        threading.Thread(target=_hold, args=(env, target, u, p, results, i), daemon=True)
        for i, (u, p) in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 25
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    assert hung == 0, f"{hung} clients neither got a server nor an error within 25 s"
    ok = [r for r in results if r[0] == "ok"]
    errors = [r for r in results if r[0] == "error"]
    others = [r for r in results if r[0] not in ("ok", "error")]
    return ok, errors, others


def _check_overflow(ok, errors, others, expected_ok):
    assert not others, f"unexpected failures: {[(r[0], repr(r[1])) for r in others]}"
    assert len(ok) == expected_ok, (
        f"{len(ok)} clients got a server, expected {expected_ok}; errors: "
        f"{[repr(r[1]) for r in errors][:5]}"
    )
    for r in errors:
        err, elapsed = r[1], r[3]
        assert my_errno(err) == ER_CON_COUNT_ERROR, repr(err)
        assert my_errmsg(err), repr(err)
        assert 0.8 <= elapsed <= 5.0, f"1040 after {elapsed:.2f}s (borrow timeout 1s)"


def test_30_holding_clients_5_backends_borrow_timeout(my_env, my_proxy, proxy_only):
    env = my_env
    user, password = env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"]
    target = my_proxy(max_backend_connections=5, connection_borrow_timeout="1s")
    proxy_only(target, "the borrow timeout")
    ok = []
    with ProcesslistSampler(env, user) as sampler:
        try:
            ok, errors, others = _run_holders(env, target, [(user, password)], 30)
            _check_overflow(ok, errors, others, 5)
            assert len({r[2] for r in ok}) == 5, [r[2] for r in ok]
            print("1040 message:", my_errmsg(errors[0][1]))

            # The five keep working, on the same backends.
            for r in ok:
                assert my_scalar(r[1], "SELECT CONNECTION_ID()") == r[2]
                assert my_scalar(r[1], "SELECT COUNT(*) FROM seq_1_to_1000") == 1000

            # While all five are held, a newcomer waits and gets 1040 too ...
            res = [None]
            _hold(env, target, user, password, res, 0)
            assert res[0][0] == "error" and my_errno(res[0][1]) == ER_CON_COUNT_ERROR, res
            assert 0.8 <= res[0][3] <= 5.0, f"1040 after {res[0][3]:.2f}s"

            # ... and once one holder leaves, the next client gets its server.
            ok.pop(0)[1].close()
            t0 = time.monotonic()
            conn = connect_target(env, target)
            try:
                assert my_scalar(conn, "SELECT 1") == 1
            finally:
                conn.close()
            assert time.monotonic() - t0 < 3.0
        finally:
            for r in ok:
                r[1].close()
    assert sampler.max <= 5, f"MariaDB's processlist showed {sampler.max} connections"


def test_backend_limit_is_per_proxy_across_pools(my_env, my_proxy, my_users, proxy_only):
    env = my_env
    target = my_proxy(max_backend_connections=5, connection_borrow_timeout="1s")
    proxy_only(target, "the per-proxy backend limit")
    ok = []
    try:
        ok, errors, others = _run_holders(env, target, my_users, 4)
        _check_overflow(ok, errors, others, 5)
        admin = connect_my_direct(env, database=None)
        try:
            total = sum(len(processlist_ids(admin, u)) for u, _ in my_users)
        finally:
            admin.close()
        assert total <= 5, f"{total} backend connections for a 5-connection proxy"
    finally:
        for r in ok:
            r[1].close()
