# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Transaction pooling on the mysql proxy: 200 PyMySQL clients over 5 backend
connections run seeded random interleavings of SET SESSION, SET inside
committed and rolled-back transactions, USE, GET_LOCK / RELEASE_ALL_LOCKS,
server-side prepared statements (COM_STMT_PREPARE / EXECUTE / CLOSE, one text
shared by every client and one of each client's own, parameter types sent
with the first execution only), SQL-level PREPARE / EXECUTE / DEALLOCATE
PREPARE under one name every client uses for its own text, and KILL QUERY
from another session; a few clients also hold temporary
tables and user variables (pins nothing clears yet). After every step each
client checks that it sees exactly its own state. The run reports server
switches and pins by reason, and fails on any leak."""

import os
import random
import re
import threading
import time
import traceback

import pymysql
import pytest

from mysqlhelpers import connect_target as connect_target_with
from mysqlhelpers import (
    CLIENT_SESSION_TRACK,
    ER_QUERY_INTERRUPTED,
    ER_UNKNOWN_STMT_HANDLER,
    connect_target,
    my_errno,
    my_scalar,
    parse_sysbench,
    processlist_ids,
    stmt_close,
    stmt_execute,
    stmt_prepare,
    sysbench,
    wait_for_query,
)
from wphelpers import run_in_thread

CLIENTS = 200
BACKENDS = 5
THREADS = 20
STEPS_PER_THREAD = 80
SEED = 20261129
PINNED_CLIENTS = 2  # hold a temporary table and a user variable for the whole run
MODES = ["ANSI_QUOTES", "NO_ZERO_DATE", "ONLY_FULL_GROUP_BY", "PIPES_AS_CONCAT", ""]

STATE_SQL = ("SELECT @@SESSION.sql_mode, @@SESSION.wait_timeout, @@SESSION.autocommit, "
             "DATABASE(), CONNECTION_ID()")


class Client:
    def __init__(self, env, target, index):
        self.index = index
        self.env = env
        self.conn = connect_target(env, target)
        self.expected = None
        self.last_backend = None
        self.switches = 0
        self.pinned = False
        self.statements = {}  # text -> statement id, for the ones open now
        self.sql_prepared = False  # whether wp_sql is prepared, as SELECT CONCAT(?, '-<index>')

    def baseline(self):
        mode, timeout, autocommit, db, _ = self.query(STATE_SQL)[0]
        self.expected = {"sql_mode": mode, "wait_timeout": timeout, "autocommit": autocommit,
                         "db": db}

    def query(self, sql, args=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def check(self, where):
        mode, timeout, autocommit, db, backend = self.query(STATE_SQL)[0]
        seen = {"sql_mode": mode, "wait_timeout": timeout, "autocommit": autocommit, "db": db}
        assert seen == self.expected, f"client {self.index} after {where}: {seen} != {self.expected}"
        if self.last_backend is not None and backend != self.last_backend:
            self.switches += 1
        self.last_backend = backend
        if self.pinned:
            assert self.query("SELECT @wp_mine")[0][0] == self.index
            assert self.query(f"SELECT COUNT(*) FROM wp_tmp_{self.index}")[0][0] == 1


SHARED_STATEMENT = "SELECT CAST(? * 2 AS CHAR)"


def _prepared_step(client, rng):
    own = f"SELECT CONCAT(CAST(? AS CHAR), '-{client.index}')"
    text = rng.choice([SHARED_STATEMENT, own])
    first = text not in client.statements
    if first:
        stmt_id, params = stmt_prepare(client.conn, text)
        assert params == 1
        client.statements[text] = stmt_id
    v = rng.randint(-1000, 1000)
    rows = stmt_execute(client.conn, client.statements[text], [v], send_types=first)
    want = str(v * 2) if text == SHARED_STATEMENT else f"{v}-{client.index}"
    assert rows == [(want,)], f"client {client.index}: {text} with {v} gave {rows}"
    if rng.random() < 0.2:
        stmt_close(client.conn, client.statements.pop(text))


def _sql_prepared_step(client, rng):
    # Every client uses the name wp_sql for a text of its own: through a shared server, each must
    # run exactly its own (or none).
    if not client.sql_prepared or rng.random() < 0.2:
        client.query(f"PREPARE wp_sql FROM 'SELECT CONCAT(?, ''-{client.index}'')'")
        client.sql_prepared = True
    v = rng.randint(0, 1000)
    assert client.query(f"EXECUTE wp_sql USING {v}") == ((f"{v}-{client.index}",),)
    if rng.random() < 0.2:
        client.query("DEALLOCATE PREPARE wp_sql")
        client.sql_prepared = False
        try:
            client.query("EXECUTE wp_sql USING 1")
        except pymysql.err.MySQLError as e:
            assert my_errno(e) == ER_UNKNOWN_STMT_HANDLER, repr(e)
        else:
            raise AssertionError(f"client {client.index} ran a statement it deallocated")


def _step(client, rng, killer):
    op = rng.choice(["mode", "mode", "timeout", "commit", "rollback", "use", "lock", "kill",
                     "show", "show", "prepared", "prepared", "sql_prepared"])
    try:
        return _run_step(op, client, rng, killer)
    except Exception as e:
        # Which step and whose: a failure here is a mix-up to trace in the proxy's log.
        where = [f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)
                 if f.filename == __file__]
        raise AssertionError(f"client {client.index} (connection id {client.conn.thread_id()}) "
                             f"in step {op!r} ({' > '.join(where)}) at {time.time():.3f}: "
                             f"{e!r}") from e


def _run_step(op, client, rng, killer):
    if op == "mode":
        mode = rng.choice(MODES)
        client.query("SET SESSION sql_mode = %s", (mode,))
        client.expected["sql_mode"] = mode
    elif op == "timeout":
        t = rng.randint(100, 10000)
        client.query(f"SET @@SESSION.wait_timeout = {t}")
        client.expected["wait_timeout"] = t
    elif op == "commit":
        t = rng.randint(100, 10000)
        client.query("BEGIN")
        client.query(f"SET SESSION wait_timeout = {t}")
        client.query("SELECT 1")
        client.query("COMMIT")
        client.expected["wait_timeout"] = t
    elif op == "rollback":
        # MySQL's SET is not transactional: it stands after ROLLBACK, unlike PostgreSQL's.
        client.query("BEGIN")
        client.query("SET SESSION sql_mode = 'ANSI_QUOTES'")
        client.query("ROLLBACK")
        client.expected["sql_mode"] = "ANSI_QUOTES"
    elif op == "use":
        db = rng.choice(["information_schema", client.env["WP_MY_DB"]])
        client.conn.select_db(db)
        client.expected["db"] = db
    elif op == "prepared":
        _prepared_step(client, rng)
    elif op == "sql_prepared":
        _sql_prepared_step(client, rng)
    elif op == "lock":
        name = f"wp_lock_{client.index}"
        assert client.query("SELECT GET_LOCK(%s, 5)", (name,))[0][0] == 1
        assert client.query("SELECT IS_USED_LOCK(%s) = CONNECTION_ID()", (name,))[0][0] == 1
        client.query("SELECT RELEASE_ALL_LOCKS()")
    elif op == "kill":
        box = {}

        def sleep():
            try:
                box["rows"] = client.query("SELECT SLEEP(1.5)")
            except pymysql.err.MySQLError as e:
                box["error"] = e

        t = threading.Thread(target=sleep)
        t.start()
        time.sleep(0.3)
        with killer.cursor() as cur:
            cur.execute(f"KILL QUERY {client.conn.thread_id()}")
        t.join()
        if "error" in box:
            assert my_errno(box["error"]) == ER_QUERY_INTERRUPTED, repr(box["error"])
        else:
            # Still waiting for a server when the KILL came: nothing of its ran yet.
            assert box["rows"][0][0] in (0, 1), box
            op = "kill_noop"
    client.check(op)
    return op


def test_200_clients_over_5_backends_each_see_only_their_own_state(my_env, my_proxy, my_admin):
    env = my_env
    target = my_proxy(pool_mode="transaction", max_backend_connections=BACKENDS,
                      connection_borrow_timeout="30s")
    clients = [Client(env, target, i) for i in range(CLIENTS)]
    for c in clients[:PINNED_CLIENTS]:
        c.query(f"CREATE TEMPORARY TABLE wp_tmp_{c.index} (x INT)")
        c.query(f"INSERT INTO wp_tmp_{c.index} VALUES (1)")
        c.query(f"SET @wp_mine = {c.index}")
        c.pinned = True
    for c in clients:
        c.baseline()
        c.check("login")

    failures = []
    ops = {}
    lock = threading.Lock()

    def worker(t):
        rng = random.Random(SEED + t)
        mine = clients[t::THREADS]
        killer = connect_target(env, target)
        try:
            for _ in range(STEPS_PER_THREAD):
                op = _step(rng.choice(mine), rng, killer)
                with lock:
                    ops[op] = ops.get(op, 0) + 1
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(f"thread {t}: {e!r}")
        finally:
            killer.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=540)
    assert not any(t.is_alive() for t in threads), "workers did not finish"
    assert not failures, "\n".join(failures[:10])

    switches = sum(c.switches for c in clients)
    log = target.wp.log_text()
    pins = {}
    for m in re.finditer(r"pinned to its server \(([a-z_,]+)\)", log):
        for reason in m.group(1).split(","):
            pins[reason] = pins.get(reason, 0) + 1
    print(f"\nsteps by kind: {ops}\nserver switches: {switches}\nclients pinned, by reason: {pins}")
    assert switches >= 10 * BACKENDS, f"only {switches} server switches: nothing was multiplexed"
    assert pins.get("advisory_lock", 0) > 0, pins
    assert pins.get("temp_table", 0) == PINNED_CLIENTS, pins
    assert pins.get("user_variable", 0) == PINNED_CLIENTS, pins
    assert "unclassified" not in pins, f"prepared statements pinned: {pins}"
    assert ops.get("sql_prepared", 0) > 0 and ops.get("prepared", 0) > 0, ops
    assert ops.get("kill", 0) > 0, f"no KILL QUERY took effect: {ops}"
    # Never more than BACKENDS connections, none left inside a transaction, no lock left held.
    assert len(processlist_ids(my_admin, env["WP_MY_NATIVE_USER"])) <= BACKENDS
    assert my_scalar(my_admin, "SELECT COUNT(*) FROM information_schema.innodb_trx") == 0
    for c in clients:
        assert my_scalar(my_admin, "SELECT IS_USED_LOCK(%s)", (f"wp_lock_{c.index}",)) is None
        c.conn.close()


def test_kill_needs_no_free_server(my_env, my_proxy, my_admin):
    """The only server runs a client's long query: a KILL QUERY and a COM_PROCESS_KILL from
    clients that hold no server are answered at once (the proxy answers them), not after a
    server frees up, which would be never for a query that only the KILL can stop."""
    env = my_env
    target = my_proxy(pool_mode="transaction", max_backend_connections=1,
                      connection_borrow_timeout="20s")
    a = connect_target(env, target, read_timeout=60)
    b = connect_target(env, target, read_timeout=10)
    try:
        for kill in ("KILL QUERY", "COM_PROCESS_KILL"):
            t, box = run_in_thread(lambda: a.cursor().execute("SELECT SLEEP(30)"))
            assert wait_for_query(my_admin, "SELECT SLEEP(30)", timeout=5) is not None
            t0 = time.monotonic()
            if kill == "KILL QUERY":
                with b.cursor() as cur:
                    cur.execute(f"KILL QUERY {a.thread_id()}")
            else:
                b.kill(a.thread_id())  # COM_PROCESS_KILL: the whole connection
            took = time.monotonic() - t0
            t.join(timeout=10)
            assert not t.is_alive(), f"{kill}: SELECT SLEEP(30) still runs"
            assert took < 2.0, f"{kill} answered only after {took:.2f}s"
            assert "error" in box, box
            if kill == "KILL QUERY":
                assert my_errno(box["error"]) == ER_QUERY_INTERRUPTED, repr(box["error"])
                assert my_scalar(a, "SELECT 1") == 1
        assert my_scalar(b, "SELECT 2") == 2
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("ps_mode", ["disable", "auto"])
def test_sysbench_transaction_mode(my_env, my_proxy, ps_mode):
    """oltp_read_write, 16 threads over 4 backends, with text queries and with server-side
    prepared statements (--db-ps-mode=auto: every thread's statements are prepared again on
    whichever backend it lands on, and nothing pins)."""
    env = my_env
    target = my_proxy(pool_mode="transaction", max_backend_connections=4,
                      connection_borrow_timeout="30s")
    user, password = env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"]
    kw = {"tables": 1, "table_size": 2000}
    sysbench(env, target.host, target.port, user, password, "cleanup", timeout=60, **kw)
    r = sysbench(env, target.host, target.port, user, password, "prepare", **kw)
    assert r.returncode == 0, r.stderr
    try:
        run = parse_sysbench(sysbench(env, target.host, target.port, user, password, "run",
                                      "--threads=16", "--time=8", f"--db-ps-mode={ps_mode}",
                                      **kw))
        run.assert_clean()
        print(f"\nps-mode={ps_mode}: transactions: {run.transactions}, errors: {run.errors}")
        assert "pinned to its server" not in target.wp.log_text(), "a sysbench thread was pinned"
    finally:
        sysbench(env, target.host, target.port, user, password, "cleanup", timeout=60, **kw)


def test_a_change_the_classifier_cannot_see_pins_session_state(my_env, my_proxy):
    """A stored procedure that sets a user variable looks like any CALL to the classifier; the
    server's state-change tracker (switched on for backends of clients with
    CLIENT_SESSION_TRACK under transaction pooling) says the session changed, so the client keeps
    its server (pin session_state) and keeps seeing its variable while other clients take turns
    on the other backend."""
    env = my_env
    target = my_proxy(pool_mode="transaction", max_backend_connections=2,
                      connection_borrow_timeout="10s")
    proc = f"wp_hidden_set_{os.getpid()}"

    def connect_target(env, target):  # every client of the test asks for session tracking
        return connect_target_with(env, target, client_flag=CLIENT_SESSION_TRACK)

    owner = connect_target(env, target)
    try:
        with owner.cursor() as cur:
            cur.execute(f"CREATE PROCEDURE {proc}() SET @wp_hidden = 42")
        others = [connect_target(env, target) for _ in range(3)]
        setter = connect_target(env, target)
        with setter.cursor() as cur:
            cur.execute(f"CALL {proc}()")
        for _ in range(20):
            for o in others:
                assert my_scalar(o, "SELECT @wp_hidden") is None, "another client saw it"
            assert my_scalar(setter, "SELECT @wp_hidden") == 42
        log = target.wp.log_text()
        assert re.search(r"pinned to its server \(session_state\)", log), log[-2000:]
        for c in others + [setter]:
            c.close()
        with owner.cursor() as cur:
            cur.execute(f"DROP PROCEDURE {proc}")
    finally:
        owner.close()
