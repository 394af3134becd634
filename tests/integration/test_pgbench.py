# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""pgbench -i, then 16 clients for 10 s in each query mode, through wirepool
(session pooling, max_backend_connections 20): no failed transaction."""

import pytest

from wphelpers import parse_pgbench, pgbench


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_modes(env, wirepool, config, role, mode):
    wp = wirepool(config([(role.name, role.password)], max_backend_connections=20))
    port = wp.port()

    init = pgbench(env, port, role.name, role.password, "-i", "-s", "1", "-q", timeout=120)
    assert init.returncode == 0, f"pgbench -i failed:\n{init.stdout}\n{init.stderr}"
    assert "done" in init.stderr + init.stdout

    run = parse_pgbench(
        pgbench(env, port, role.name, role.password,
                "-c", "16", "-j", "2", "-T", "10", "-M", mode, timeout=60)
    )
    run.assert_clean()
