# Runs under /usr/bin/python3 (Debian's pytest and python3-psycopg2).
"""Transaction pooling on the postgres proxy: 200 clients over 5 backend
connections run seeded random interleavings of session-state changes
(SET/RESET/set_config, SET inside committed and rolled-back transactions,
SET LOCAL, savepoints), temp tables, advisory locks, SQL-level prepared
statements and cancels. After every step each client checks that it sees
exactly its own state. The run reports how many times clients changed
servers and how many pins were set by reason, and fails on any leak (a
client seeing another's state, a backend left in a transaction, a lock or
temp table that outlived its client's cleanup)."""

import os
import random
import re
import subprocess
import threading
import time

import psycopg2
import psycopg2.errors
import pytest

from wphelpers import connect, parse_pgbench, pgbench, scalar

CLIENTS = 200
BACKENDS = 5
THREADS = 20
STEPS_PER_THREAD = 120
SEED = 20261129
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian libpostgresql-jdbc-java
# The few clients that also hold pins the classifier cannot clear yet (SQL-level PREPARE).
PREPARING_CLIENTS = 2

STATE_SQL = ("SELECT current_setting('work_mem'), current_setting('statement_timeout'), "
             "current_setting('application_name'), current_setting('wp.tag', true), "
             "pg_backend_pid()")


class Client:
    def __init__(self, env, port, role, index):
        self.index = index
        self.conn = connect(env, port, role.name, role.password,
                            application_name=f"txc{index}")
        self.expected = {"work_mem": "4MB", "statement_timeout": "0",
                         "application_name": f"txc{index}", "wp.tag": None}
        self.last_pid = None
        self.switches = 0
        self.prepared = False

    def check(self, where):
        with self.conn.cursor() as cur:
            cur.execute(STATE_SQL)
            work_mem, timeout, app, tag, pid = cur.fetchone()
        seen = {"work_mem": work_mem, "statement_timeout": timeout, "application_name": app,
                "wp.tag": tag or None}
        assert seen == self.expected, f"client {self.index} after {where}: {seen} != {self.expected}"
        if self.last_pid is not None and pid != self.last_pid:
            self.switches += 1
        self.last_pid = pid

    def run(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None


def _step(client, rng):
    op = rng.choice(["set", "set", "set_config", "reset", "commit", "rollback", "local",
                     "savepoint", "temp", "advisory", "cancel", "show", "show"])
    if op == "set":
        mb = rng.randint(1, 64)
        client.run(f"SET work_mem = '{mb}MB'")
        client.expected["work_mem"] = f"{mb}MB"
    elif op == "set_config":
        tag = f"t{client.index}_{rng.randint(0, 999)}"
        client.run("SELECT set_config('wp.tag', %s, false)", (tag,))
        client.expected["wp.tag"] = tag
    elif op == "reset":
        client.run("RESET work_mem")
        client.expected["work_mem"] = "4MB"
    elif op == "commit":
        secs = rng.randint(1, 50)
        client.run("BEGIN")
        client.run(f"SET statement_timeout = '{secs}s'")
        client.run("SELECT 1")
        client.run("COMMIT")
        client.expected["statement_timeout"] = f"{secs}s"
    elif op == "rollback":
        client.run("BEGIN")
        client.run("SET statement_timeout = '77s'")
        client.run("SET work_mem = '77MB'")
        client.run("ROLLBACK")
    elif op == "local":
        client.run("BEGIN")
        client.run("SET LOCAL work_mem = '1MB'")
        assert client.run("SELECT current_setting('work_mem')")[0][0] == "1MB"
        client.run("COMMIT")
    elif op == "savepoint":
        client.run("BEGIN")
        client.run("SAVEPOINT a")
        client.run("SET work_mem = '3MB'")
        client.run("ROLLBACK TO SAVEPOINT a")
        client.run("RELEASE SAVEPOINT a")
        client.run("COMMIT")
    elif op == "temp":
        name = f"tt_{client.index}"
        client.run(f"CREATE TEMP TABLE {name} (x int)")
        client.run(f"INSERT INTO {name} VALUES (1), (2)")
        # Pinned: the table is still there on the next statement.
        assert client.run(f"SELECT count(*) FROM {name}")[0][0] == 2
        client.run("DISCARD TEMP")
        assert client.run(f"SELECT to_regclass('pg_temp.{name}')")[0][0] is None
    elif op == "advisory":
        key = 900000 + client.index
        client.run("SELECT pg_advisory_lock(%s)", (key,))
        assert client.run("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                          "AND pid = pg_backend_pid() AND objid = %s", (key,))[0][0] == 1
        client.run("SELECT pg_advisory_unlock_all()")
    elif op == "cancel":
        def cancel_soon():
            time.sleep(0.3)
            client.conn.cancel()
        t = threading.Thread(target=cancel_soon)
        t.start()
        try:
            client.run("SELECT pg_sleep(2)")
            # The statement was still waiting for a server when the cancel came: nothing of
            # this client's ran, so there was nothing to cancel (never another client's).
            op = "cancel_noop"
        except psycopg2.errors.QueryCanceled:
            pass
        t.join()
    client.check(op)
    return op


def test_200_clients_over_5_backends_each_see_only_their_own_state(env, wirepool, config, role,
                                                                    admin):
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=BACKENDS,
                         connection_borrow_timeout="30s"))
    port = wp.port("pg")
    clients = [Client(env, port, role, i) for i in range(CLIENTS)]
    for c in clients[:PREPARING_CLIENTS]:
        c.run("PREPARE wp_p(int) AS SELECT $1 + 1")
        c.prepared = True
    for c in clients:
        c.check("login")

    failures = []
    ops = {}
    lock = threading.Lock()

    def worker(t):
        rng = random.Random(SEED + t)
        mine = clients[t::THREADS]
        try:
            for _ in range(STEPS_PER_THREAD):
                c = rng.choice(mine)
                op = _step(c, rng)
                if c.prepared:
                    assert c.run("EXECUTE wp_p(41)")[0][0] == 42
                with lock:
                    ops[op] = ops.get(op, 0) + 1
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(f"thread {t}: {e!r}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=540)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    assert not failures, "\n".join(failures[:10])

    switches = sum(c.switches for c in clients)
    log = wp.log_text()
    pins = {}
    for m in re.finditer(r"pinned to its server \(([a-z_,]+)\)", log):
        for reason in m.group(1).split(","):
            pins[reason] = pins.get(reason, 0) + 1
    print(f"\nsteps by kind: {ops}\nserver switches: {switches}\nclients pinned, by reason: {pins}")
    assert switches >= 10 * BACKENDS, f"only {switches} server switches: nothing was multiplexed"
    assert pins.get("temp_table", 0) > 0 and pins.get("advisory_lock", 0) > 0, pins
    assert pins.get("unclassified", 0) == PREPARING_CLIENTS, pins
    assert ops.get("cancel", 0) > 0, f"no cancel took effect: {ops}"

    # No leak: wirepool never held more than BACKENDS connections, none is left inside a
    # transaction, and no advisory lock or temp table survived its client's cleanup.
    with admin.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%%') "
                    "FROM pg_stat_activity WHERE usename = %s", (role.name,))
        total, in_tx = cur.fetchone()
        assert total <= BACKENDS and in_tx == 0, (total, in_tx)
        cur.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND a.usename = %s", (role.name,))
        assert cur.fetchone()[0] == 0
    for c in clients:
        c.conn.close()


def test_idle_in_transaction_timeout_rolls_back(env, wirepool, config, role, admin):
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1,
                         idle_transaction_timeout="1s"))
    table = f'"{role.name}".idle_tx'
    c = connect(env, wp.port("pg"), role.name, role.password)
    c.cursor().execute(f"CREATE TABLE {table} (x int)")
    c.cursor().execute("BEGIN")
    c.cursor().execute(f"INSERT INTO {table} VALUES (1)")
    time.sleep(2.5)
    # libpq reports the FATAL error wirepool sent, or only the closed connection, depending on
    # when it reads it; wirepool's log says which timeout it was.
    with pytest.raises(psycopg2.OperationalError):
        c.cursor().execute("SELECT 1")
    # The backend was rolled back and serves the next client.
    d = connect(env, wp.port("pg"), role.name, role.password)
    assert scalar(d, f"SELECT count(*) FROM {table}") == 0
    d.close()
    assert "idle_transaction_timeout" in wp.log_text()


def test_waiting_clients_are_capped(env, wirepool, config, role):
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1,
                         max_waiting_clients=1, connection_borrow_timeout="10s"))
    holder = connect(env, wp.port("pg"), role.name, role.password)
    holder.cursor().execute("BEGIN")  # holds the only server
    waiter_done = {}

    def wait():
        try:
            w = connect(env, wp.port("pg"), role.name, role.password)
            waiter_done["ok"] = scalar(w, "SELECT 1")
            w.close()
        except psycopg2.Error as e:
            waiter_done["error"] = e

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.5)
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, wp.port("pg"), role.name, role.password)
    assert "max_waiting_clients" in str(ei.value), ei.value
    holder.cursor().execute("COMMIT")
    t.join(timeout=10)
    assert waiter_done.get("ok") == 1, waiter_done
    holder.close()


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_transaction_mode_64_clients_10_backends(env, wirepool, config, role, mode):
    # One pgbench thread per client: pgbench 15 prepares with a blocking PQprepare, so a thread
    # whose one client waits for a server while another of its clients holds one inside a
    # transaction would wait for itself, through any transaction pooler.
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=10,
                         connection_borrow_timeout="30s"))
    port = wp.port("pg")
    r = pgbench(env, port, role.name, role.password, "-i", "-s", "2", "-q")
    assert r.returncode == 0, r.stderr
    r = pgbench(env, port, role.name, role.password, "-M", mode, "-c", "64", "-j", "64", "-T",
                "10", "-n", timeout=120)
    parse_pgbench(r).assert_clean()


def test_pgjdbc_prepare_threshold_1(env, wirepool, config, role, tmp_path):
    """pgJDBC (Debian libpostgresql-jdbc-java) with prepareThreshold=1: every statement is a
    named protocol-level prepared statement from its first run, re-prepared on whichever server
    the client gets; 12 clients over 3 backends, each checking its answers and its own work_mem."""
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=3,
                         connection_borrow_timeout="30s"))
    source = os.path.join(os.path.dirname(__file__), "..", "java", "PgJdbcCheck.java")
    url = f"jdbc:postgresql://127.0.0.1:{wp.port('pg')}/{env['WP_PG_DB']}"
    r = subprocess.run(["java", "-cp", JDBC_JAR, source, url, role.name, role.password, "12", "40"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.startswith("ok executions=1440"), (r.stdout, r.stderr)
