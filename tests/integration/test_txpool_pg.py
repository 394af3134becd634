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
import socket
import struct
import subprocess
import threading
import time
import traceback

import psycopg2
import psycopg2.errors
import pytest

from wphelpers import connect, parse_pgbench, pgbench, scalar
from wpwire import RawPg, message, parse_data_row, parse_error_fields

CLIENTS = 200
BACKENDS = 5
THREADS = 20
STEPS_PER_THREAD = 120
SEED = 20261129
JDBC_JAR = "/usr/share/java/postgresql.jar"  # Debian libpostgresql-jdbc-java

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
        # SQL-level statement wp_p, the same name for every client with a text of its own: what
        # EXECUTE wp_p(1) must give this client (None: "does not exist", as on a fresh session).
        self.prepared = None

    def check(self, where):
        with self.conn.cursor() as cur:
            cur.execute(STATE_SQL)
            work_mem, timeout, app, tag, pid = cur.fetchone()
        seen = {"work_mem": work_mem, "statement_timeout": timeout, "application_name": app,
                "wp.tag": tag or None}
        assert seen == self.expected, f"client {self.index} after {where}: {seen} != {self.expected}"
        try:
            got = self.run("EXECUTE wp_p(1)")[0][0]
        except psycopg2.errors.InvalidSqlStatementName:
            got = None
        assert got == self.prepared, f"client {self.index} after {where}: EXECUTE gave {got}"
        if self.last_pid is not None and pid != self.last_pid:
            self.switches += 1
        self.last_pid = pid

    def run(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall() if cur.description else None


def _step(client, rng):
    op = rng.choice(["set", "set", "set_config", "reset", "commit", "rollback", "local",
                     "savepoint", "temp", "advisory", "cancel", "show", "show", "prepare",
                     "prepare"])
    try:
        return _run_step(op, client, rng)
    except Exception as e:
        # Which step and whose: a failure here is a mix-up to trace in the proxy's log.
        where = [f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)
                 if f.filename == __file__]
        raise AssertionError(f"client {client.index} in step {op!r} ({' > '.join(where)}) "
                             f"at {time.time():.3f}: {e!r}") from e


def _run_step(op, client, rng):
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
        # Longer than the cancel step's pg_sleep(2): a statement timeout must not end that
        # statement in the cancel's place (a cancel delayed that long meets the next statement).
        secs = rng.randint(3, 50)
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
    elif op == "prepare":
        # SQL-level PREPARE / DEALLOCATE, alone, with others, or in a transaction that rolls
        # back (they are not transactional: what ran stands).
        if client.prepared is not None:
            how = rng.choice(["alone", "multi"])
            client.run("DEALLOCATE wp_p" if how == "alone" else "SELECT 1; DEALLOCATE wp_p")
            client.prepared = None
            op = f"deallocate_{how}"
        else:
            add = client.index * 1000 + rng.randint(0, 999)
            how = rng.choice(["alone", "multi", "rollback"])
            sql = f"PREPARE wp_p(int) AS SELECT $1 + {add}"
            if how == "alone":
                client.run(sql)
            elif how == "multi":
                client.run(f"SELECT 1; {sql}; SELECT 2")
            else:
                client.run("BEGIN")
                client.run(sql)
                client.run("ROLLBACK")
            client.prepared = 1 + add
            op = f"prepare_{how}"
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
    for c in clients[:CLIENTS // 4]:
        c.run("PREPARE wp_p(int) AS SELECT $1 + %s", (c.index * 1000,))
        c.prepared = 1 + c.index * 1000
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
    # SQL-level prepared statements follow their clients: nothing is pinned for them.
    assert pins.get("unclassified", 0) == 0, pins
    assert ops.get("prepare_alone", 0) > 0 and ops.get("deallocate_multi", 0) > 0, ops
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


# ---- Prepared statements under transaction pooling -------------------------------------------


def _raw(env, port, role):
    return RawPg(env["WP_PG_HOST"], port).login(role.name, role.password, env["WP_PG_DB"])


def _parse(name, sql):
    return message(b"P", name.encode() + b"\x00" + sql.encode() + b"\x00" + struct.pack("!h", 0))


def _bind(statement):
    return message(b"B", b"\x00" + statement.encode() + b"\x00" + struct.pack("!hhh", 0, 0, 0))


def _execute():
    return message(b"E", b"\x00" + struct.pack("!i", 0))


def _extended(raw, *messages):
    """Sends the messages and a Sync; returns (rows, error fields or None) once ReadyForQuery."""
    raw.send(b"".join(messages) + message(b"S"))
    rows, error = [], None
    while True:
        kind, payload = raw.read_message()
        if kind == b"D":
            rows.append(parse_data_row(payload))
        elif kind == b"E":
            error = parse_error_fields(payload)
        elif kind == b"Z":
            return rows, error


def _sqlstate(fn):
    try:
        fn()
    except psycopg2.Error as e:
        return e.pgcode
    return None


def test_sql_prepared_statements_follow_their_clients(env, wirepool, config, role):
    # One backend: every client's statements meet on it, under the same name.
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1))
    port = wp.port("pg")
    one = connect(env, port, role.name, role.password)
    two = connect(env, port, role.name, role.password)
    fresh = connect(env, port, role.name, role.password)
    one.cursor().execute("PREPARE s(int) AS SELECT 'one' || $1")
    two.cursor().execute("SELECT 1; PREPARE s(int) AS SELECT 'two' || $1")
    assert scalar(one, "SELECT pg_backend_pid()") == scalar(two, "SELECT pg_backend_pid()")
    for i in range(5):
        assert scalar(one, "EXECUTE s(%s)", (i,)) == f"one{i}"
        assert scalar(two, "EXECUTE s(%s)", (i,)) == f"two{i}"
        # A client that prepared nothing sees nothing, as on a fresh session.
        assert _sqlstate(lambda: scalar(fresh, "EXECUTE s(1)")) == "26000"
        assert scalar(fresh, "SELECT count(*) FROM pg_prepared_statements WHERE from_sql") == 0
    # A PREPARE in a transaction that rolls back stands (PostgreSQL's PREPARE is not
    # transactional), and so does its DEALLOCATE.
    fresh.autocommit = False
    fresh.cursor().execute("PREPARE t AS SELECT 'fresh'")
    fresh.rollback()
    fresh.autocommit = True
    assert scalar(fresh, "EXECUTE t") == "fresh"
    assert _sqlstate(lambda: scalar(one, "EXECUTE t")) == "26000"
    # Taken on this client's own session only: PREPARE of a name it has fails as it would.
    assert _sqlstate(lambda: one.cursor().execute("PREPARE s AS SELECT 1")) == "42P05"
    one.cursor().execute("DEALLOCATE s")
    assert _sqlstate(lambda: scalar(one, "EXECUTE s(1)")) == "26000"
    assert scalar(two, "EXECUTE s(7)") == "two7"
    for c in (one, two, fresh):
        c.close()
    assert "unclassified" not in wp.log_text()


def test_new_server_logs_in_with_the_waiters_startup_parameters(env, wirepool, config, role):
    # The client changed a parameter and prepared a statement, then waits while a new server is
    # opened for it: that server's login carries what the client logged in with (PostgreSQL
    # refuses the proxy's own bookkeeping as a startup parameter), and the change and the
    # statement follow the client there. One worker: which server the blocker pins is this
    # test's premise (with two, its worker opens a server of its own while there is room).
    wp = wirepool(config([role], workers=1, pool_mode="transaction", max_backend_connections=2))
    port = wp.port("pg")
    one = connect(env, port, role.name, role.password, application_name="one-start")
    one.cursor().execute("SET application_name = 'one-set'")
    one.cursor().execute("PREPARE s AS SELECT 'one'")
    first_pid = scalar(one, "SELECT pg_backend_pid()")
    blocker = connect(env, port, role.name, role.password)
    blocker.cursor().execute("SELECT pg_advisory_lock(424242)")  # pins the idle server
    assert scalar(blocker, "SELECT pg_backend_pid()") == first_pid
    assert scalar(one, "SELECT pg_backend_pid()") != first_pid  # a server opened for it
    assert scalar(one, "SELECT current_setting('application_name')") == "one-set"
    assert scalar(one, "EXECUTE s") == "one"
    # RESET goes back to what the new server logged in with: the client's own startup value.
    one.cursor().execute("RESET application_name")
    assert scalar(one, "SELECT current_setting('application_name')") == "one-start"
    blocker.cursor().execute("SELECT pg_advisory_unlock(424242)")
    for c in (one, blocker):
        c.close()
    assert "login refused" not in wp.log_text()


def test_clients_with_the_same_startup_packet_keep_their_own_parameters(env, wirepool, config,
                                                                          role):
    # Clients that log in alike share one copy of their startup packet on their worker: a change
    # one of them makes, and its RESET, must stay its own, and the shared startup value must
    # still be what every other one gets on whichever server it lands. One worker and one server:
    # every client shares both.
    wp = wirepool(config([role], workers=1, pool_mode="transaction", max_backend_connections=1))
    port = wp.port("pg")
    clients = [connect(env, port, role.name, role.password, application_name="same-start",
                       options="-c work_mem=5MB") for _ in range(4)]
    changer, others = clients[0], clients[1:]
    changer.cursor().execute("SET application_name = 'changed'")
    changer.cursor().execute("SET work_mem = '9MB'")
    for other in others:
        assert scalar(other, "SELECT current_setting('application_name')") == "same-start"
        assert scalar(other, "SHOW work_mem") == "5MB"
    assert scalar(changer, "SELECT current_setting('application_name')") == "changed"
    assert scalar(changer, "SHOW work_mem") == "9MB"
    # A new client after the change starts from the startup packet, not from the change.
    late = connect(env, port, role.name, role.password, application_name="same-start",
                   options="-c work_mem=5MB")
    assert scalar(late, "SELECT current_setting('application_name')") == "same-start"
    assert scalar(late, "SHOW work_mem") == "5MB"
    changer.cursor().execute("RESET ALL")
    assert scalar(changer, "SELECT current_setting('application_name')") == "same-start"
    assert scalar(changer, "SHOW work_mem") == "5MB"
    others[0].cursor().execute("SET work_mem = '6MB'")
    assert scalar(changer, "SHOW work_mem") == "5MB"
    assert scalar(late, "SHOW work_mem") == "5MB"
    assert scalar(others[0], "SHOW work_mem") == "6MB"
    for c in clients + [late]:
        c.close()


def test_discard_all_resets_only_its_own_client(env, wirepool, config, role):
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1))
    port = wp.port("pg")
    with _raw(env, port, role) as raw:
        rows, error = _extended(raw, _parse("S1", "SELECT 'kept'"), _bind("S1"), _execute())
        assert error is None and rows == [("kept",)]
        other = connect(env, port, role.name, role.password)
        default = scalar(other, "SHOW work_mem")
        other.cursor().execute("SET work_mem = '7MB'")
        other.cursor().execute("PREPARE mine AS SELECT 1")
        assert scalar(other, "SHOW work_mem") == "7MB"
        with other.cursor() as cur:
            cur.execute("DISCARD ALL")
            assert cur.statusmessage == "DISCARD ALL"
        assert scalar(other, "SHOW work_mem") == default
        assert _sqlstate(lambda: scalar(other, "EXECUTE mine")) == "26000"
        # The shared server kept the other client's statement: nothing to prepare again.
        assert scalar(other, "SELECT count(*) FROM pg_prepared_statements "
                             "WHERE name LIKE 'wp\\_%%'") == 1
        rows, error = _extended(raw, _bind("S1"), _execute())
        assert error is None and rows == [("kept",)]
        # Inside a transaction block it fails as PostgreSQL makes it fail.
        other.autocommit = False
        assert _sqlstate(lambda: other.cursor().execute("DISCARD ALL")) == "25001"
        other.rollback()
        other.autocommit = True
        with other.cursor() as cur:
            cur.execute("DEALLOCATE ALL")
            assert cur.statusmessage == "DEALLOCATE ALL"
        rows, error = _extended(raw, _bind("S1"), _execute())
        assert error is None and rows == [("kept",)]
        other.close()


def test_statements_past_max_prepared_statements_still_work(env, wirepool, config, role):
    cap = 3
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1,
                         max_prepared_statements=cap))
    port = wp.port("pg")
    watcher = connect(env, port, role.name, role.password)
    with _raw(env, port, role) as raw:
        for i in range(10):
            _, error = _extended(raw, _parse(f"S{i}", f"SELECT {i}"))
            assert error is None, error
        for round_ in range(2):
            for i in range(10):
                rows, error = _extended(raw, _bind(f"S{i}"), _execute())
                assert error is None and rows == [(str(i),)], (round_, i, rows, error)
            held = scalar(watcher, "SELECT count(*) FROM pg_prepared_statements "
                                   "WHERE name LIKE 'wp\\_%%'")
            assert held <= cap, held
    watcher.close()


def test_parse_of_a_taken_name_fails_with_42p05(env, wirepool, config, role):
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=2))
    port = wp.port("pg")
    with _raw(env, port, role) as raw:
        _, error = _extended(raw, _parse("S1", "SELECT 1"))
        assert error is None
        _, error = _extended(raw, _parse("S1", "SELECT 2"))
        assert error is not None and error["C"] == "42P05", error
        assert error["M"] == 'prepared statement "S1" already exists'
        rows, error = _extended(raw, _bind("S1"), _execute())
        assert error is None and rows == [("1",)]
        # A Parse that failed leaves the name free, as in PostgreSQL.
        _, error = _extended(raw, _parse("S2", "SELEC 2"))
        assert error is not None and error["C"] == "42601"
        _, error = _extended(raw, _parse("S2", "SELECT 2"))
        assert error is None, error
        rows, error = _extended(raw, _bind("S2"), _execute())
        assert error is None and rows == [("2",)]
        # Closed, the name is free again.
        _, error = _extended(raw, message(b"C", b"SS1\x00"), _parse("S1", "SELECT 3"))
        assert error is None, error
        rows, error = _extended(raw, _bind("S1"), _execute())
        assert error is None and rows == [("3",)]


class _SlowNewConnections:
    """A TCP relay in front of the sandbox PostgreSQL that holds every connection after the first
    `fast` for `delay` seconds before passing it on: once the pool's server is open, a cancel's
    side connection is late by that much, a delay that otherwise only load produces."""

    def __init__(self, env, fast, delay):
        self._upstream = (env["WP_PG_HOST"], int(env["WP_PG_PORT"]))
        self._fast, self._delay = fast, delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            late = self.accepted > self._fast

            def serve(conn=conn, late=late):
                if late:
                    time.sleep(self._delay)
                up = socket.create_connection(self._upstream)
                for a, b in ((conn, up), (up, conn)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

            threading.Thread(target=serve, daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._stop = True
        self._listener.close()


def test_a_late_cancel_does_not_stop_the_next_statement(env, wirepool, config, role):
    """A cancel that reaches the server only after its statement ended (its side connection is
    held up for 1 s here) must not stop the statement the client sent next: that one waits until
    the cancel is through, and then runs whole."""
    relay = _SlowNewConnections(env, fast=1, delay=1.0)
    try:
        wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=1,
                             backends=[f"127.0.0.1:{relay.port}"], server_connect_timeout="5s"))
        c = connect(env, wp.port("pg"), role.name, role.password)
        assert scalar(c, "SELECT 1") == 1  # the pool's one server is open, through the relay

        def cancel_soon():
            time.sleep(0.1)
            c.cancel()

        t = threading.Thread(target=cancel_soon)
        t.start()
        started = time.monotonic()
        c.cursor().execute("SELECT pg_sleep(0.4)")  # ends before the cancel reaches the server
        first = time.monotonic() - started
        # Sent at once; without the wait it would run when the late cancel lands and be stopped.
        c.cursor().execute("SELECT pg_sleep(1.5)")
        t.join()
        assert first < 0.9, f"the first statement took {first:.2f}s"
        assert relay.accepted >= 2, "the cancel never opened its side connection"
        assert scalar(c, "SELECT 2") == 2
        c.close()
    finally:
        relay.close()
