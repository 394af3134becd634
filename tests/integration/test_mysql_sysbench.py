# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""sysbench oltp_read_write through wirepool's mysql proxy: tables prepared
directly, then 16 threads for 10 s with server-side prepared statements
(--db-ps-mode=auto: COM_STMT_PREPARE/EXECUTE) and without (disable: text
COM_QUERY). sysbench exits 0 with no error but the retried InnoDB deadlocks
(which happen directly too, see mysqlhelpers.SYSBENCH_RETRIED_ERRORS), and
the row counts match direct MariaDB afterwards."""

import pytest

from mysqlhelpers import connect_my_direct, connect_target, my_scalar, parse_sysbench, sysbench

TABLES = 2
TABLE_SIZE = 1000


def _native(env):
    return env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"]


@pytest.fixture
def sbtables(my_env):
    """sysbench's sbtest1..2 in WP_MY_DB, prepared directly; cleaned up after."""
    env = my_env
    user, password = _native(env)
    host, port = env["WP_MY_HOST"], env["WP_MY_PORT"]
    sysbench(env, host, port, user, password, "cleanup", tables=TABLES, timeout=60)
    r = sysbench(env, host, port, user, password, "prepare", tables=TABLES,
                 table_size=TABLE_SIZE, timeout=120)
    assert r.returncode == 0, f"sysbench prepare failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    yield
    sysbench(env, host, port, user, password, "cleanup", tables=TABLES, timeout=60)


def table_counts(conn):
    return [my_scalar(conn, f"SELECT COUNT(*) FROM sbtest{i}") for i in range(1, TABLES + 1)]


@pytest.mark.parametrize("ps_mode", ["auto", "disable"])
def test_sysbench_oltp_read_write(my_env, my_proxy, sbtables, ps_mode):
    env = my_env
    user, password = _native(env)
    target = my_proxy(max_backend_connections=20)
    run = parse_sysbench(sysbench(
        env, target.host, target.port, user, password, "run",
        "--threads=16", "--time=10", f"--db-ps-mode={ps_mode}", "--report-interval=0",
        tables=TABLES, table_size=TABLE_SIZE, timeout=60,
    ))
    run.assert_clean()
    print(f"ps-mode={ps_mode}: {run.transactions} transactions, {run.errors}")

    direct = connect_my_direct(env)
    via = connect_target(env, target)
    try:
        # oltp_read_write deletes and re-inserts the same ids: the counts stay put.
        expected = [TABLE_SIZE] * TABLES
        assert table_counts(direct) == expected
        assert table_counts(via) == expected
        assert my_scalar(via, "SELECT SUM(k) FROM sbtest1") == my_scalar(direct, "SELECT SUM(k) FROM sbtest1")
    finally:
        direct.close()
        via.close()
