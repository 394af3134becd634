# Runs under /usr/bin/python3 (Debian's pytest, python3-psycopg2 and python3-pymysql).
"""Stock drivers, unchanged, through transaction pooling with more client connections than
backends, so that clients really change servers between transactions: their protocol-level
prepared statements must be prepared again wherever they land, every answer must be right, and
nothing may pin (wirepool logs `pinned to its server` when it pins).

- node `pg` with named statements (tests/node/pg_named.js), 20 clients over 3 backends;
- node `mysql2` execute() (tests/node/mysql_execute.js), 20 connections over 3 backends;
- MariaDB Connector/J with useServerPrepStmts=true (tests/java/MariaDbJdbcCheck.java, Debian
  libmariadb-java), 12 threads over 3 backends;
- sysbench's pgsql driver, oltp_read_write with --db-ps-mode=auto, 16 threads over 4 backends.

The driver tests run with the default max_prepared_statements and with a cap of 2 per server
connection, under which statements are closed and prepared again all the time."""

import os
import re
import subprocess

import pytest

from mysqlhelpers import my_rows, parse_sysbench, run_node
from wphelpers import client_env, connect_direct

MARIADB_JAR = "/usr/share/java/mariadb-java-client.jar"  # Debian libmariadb-java
JAVA_DIR = os.path.join(os.path.dirname(__file__), "..", "java")
PIN_RE = re.compile(r"pinned to its server \([a-z_,]+\).*")


def _pins(wp):
    return PIN_RE.findall(wp.log_text())


def _node_ok(script, params, module, timeout=90):
    rc, obj, r = run_node(script, params, timeout=timeout, module=module)
    assert rc == 0 and obj and obj.get("ok"), (
        f"node {script} exit {rc}: {obj}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-2000:]}"
    )
    return obj


# ---- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [None, 2], ids=["default_cap", "cap_2"])
def test_node_pg_named_statements_20_clients_3_backends(env, wirepool, config, role, admin, cap):
    backends = 3
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=backends,
                         connection_borrow_timeout="30s", max_prepared_statements=cap))
    clients, loops = 20, 40
    obj = _node_ok("pg_named.js", {
        "host": "127.0.0.1", "port": wp.port("pg"), "user": role.name,
        "password": role.password, "database": env["WP_PG_DB"], "clients": clients,
        "loops": loops}, module="pg")
    print(f"\nnode pg: {obj}")
    # Clients moved between servers: the named statements were prepared again where they landed.
    assert obj["switches"] >= 2 * clients, obj
    assert 1 < obj["pids"] <= backends, obj
    assert not _pins(wp), _pins(wp)[:5]
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role.name,))
        assert cur.fetchone()[0] <= backends


def _sysbench_pg(env, port, role, command, *args, timeout=120):
    cmd = [
        "sysbench", "oltp_read_write", "--db-driver=pgsql",
        f"--pgsql-host={env['WP_PG_HOST']}", f"--pgsql-port={port}",
        f"--pgsql-user={role.name}", f"--pgsql-password={role.password}",
        f"--pgsql-db={env['WP_PG_DB']}", "--tables=1", "--table-size=2000",
        *args, command,
    ]
    return subprocess.run(cmd, env=client_env(role.password), capture_output=True, text=True,
                          timeout=timeout)


def test_sysbench_pgsql_prepared_transaction_mode(env, wirepool, config, role):
    """oltp_read_write with sysbench's pgsql driver, --db-ps-mode=auto (every statement, BEGIN and
    COMMIT included, is a named statement prepared once per thread), 16 threads over 4 backends.
    The tables land in the role's own schema (search_path "$user" first), dropped with the role."""
    wp = wirepool(config([role], pool_mode="transaction", max_backend_connections=4,
                         connection_borrow_timeout="30s"))
    port = wp.port("pg")
    r = _sysbench_pg(env, port, role, "prepare")
    assert r.returncode == 0, f"sysbench prepare:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    try:
        run = parse_sysbench(_sysbench_pg(env, port, role, "run", "--threads=16", "--time=8",
                                          "--db-ps-mode=auto", "--report-interval=0"))
        run.assert_clean()
        print(f"\nsysbench pgsql: transactions: {run.transactions}, errors: {run.errors}")
        assert not _pins(wp), _pins(wp)[:5]
    finally:
        _sysbench_pg(env, port, role, "cleanup", timeout=60)
    conn = connect_direct(env)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sbtest%%' "
                        "AND schemaname IN (%s, 'public')", (role.name,))
            assert cur.fetchone()[0] == 0, "sysbench cleanup left tables behind"
    finally:
        conn.close()


# ---- MySQL / MariaDB -------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [None, 2], ids=["default_cap", "cap_2"])
def test_node_mysql2_execute_20_connections_3_backends(my_env, my_proxy, my_table, my_admin, cap):
    env = my_env
    backends = 3
    target = my_proxy(pool_mode="transaction", max_backend_connections=backends,
                      connection_borrow_timeout="30s", max_prepared_statements=cap)
    t = my_table()
    clients, loops = 20, 40
    obj = _node_ok("mysql_execute.js", {
        "host": target.host, "port": target.port, "user": env["WP_MY_NATIVE_USER"],
        "password": env["WP_MY_NATIVE_PASSWORD"], "database": env["WP_MY_DB"], "table": t,
        "clients": clients, "loops": loops}, module="mysql2")
    print(f"\nnode mysql2 execute(): {obj}")
    # Every connection's committed updates, and none of the rolled-back ones.
    per_client = len(range(0, loops, 3))
    got = my_rows(my_admin, f"SELECT COUNT(*), SUM(n) FROM {t}")
    assert got == ((clients, clients * per_client),), got
    if target.proxied:
        assert obj["switches"] >= 2 * clients, obj
        assert 1 < obj["backends"] <= backends, obj
        assert not _pins(target.wp), _pins(target.wp)[:5]


@pytest.mark.parametrize("cap", [None, 2], ids=["default_cap", "cap_2"])
def test_mariadb_connector_j_server_prepared_statements(my_env, my_proxy, my_table, cap):
    """Connector/J 2.7 (Debian) with useServerPrepStmts=true: PreparedStatements are server-side
    statements, executeBatch() executes one per row (wirepool offers no MariaDB bulk capability),
    transactions commit and roll back; 12 threads over 3 backends."""
    assert os.path.isfile(MARIADB_JAR), f"{MARIADB_JAR} is missing: run tools/setup"
    env = my_env
    target = my_proxy(pool_mode="transaction", max_backend_connections=3,
                      connection_borrow_timeout="30s", max_prepared_statements=cap)
    counts, batch = my_table(), my_table()
    url = (f"jdbc:mariadb://{target.host}:{target.port}/{env['WP_MY_DB']}"
           f"?useServerPrepStmts=true")
    clients, loops = 12, 30
    source = os.path.join(JAVA_DIR, "MariaDbJdbcCheck.java")
    r = subprocess.run(["java", "-cp", MARIADB_JAR, source, url, env["WP_MY_NATIVE_USER"],
                        env["WP_MY_NATIVE_PASSWORD"], str(clients), str(loops), counts, batch],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.startswith("ok "), (r.stdout, r.stderr[-3000:])
    print(f"\nConnector/J: {r.stdout.strip()}")
    m = re.match(r"ok executions=(\d+) switches=(\d+) backends=(\d+)", r.stdout)
    assert m, r.stdout
    if target.proxied:
        assert int(m.group(2)) >= clients and int(m.group(3)) <= 3, r.stdout
        assert not _pins(target.wp), _pins(target.wp)[:5]
