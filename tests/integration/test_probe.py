# Runs under /usr/bin/python3 (Debian's pytest and python3-psycopg2).
"""The startup probe (one login at start, to learn what the backend reports)
logs in where it always can: it learns the backend's parameters and leaves no
error in PostgreSQL's log, for a user whose namesake database does not exist."""

import os
import secrets
import time

from wphelpers import connect_direct


def _server_log_through_marker(env, start):
    """PostgreSQL's log from byte `start` up to a marker logged now: what any
    backend wrote before this call is in it (the logger writes in order)."""
    marker = "wp-probe-marker-" + secrets.token_hex(6)
    conn = connect_direct(env)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DO $$BEGIN RAISE LOG '{marker}'; END$$")
    finally:
        conn.close()
    deadline = time.monotonic() + 10
    while True:
        with open(env["WP_PG_LOG"], errors="replace") as f:
            f.seek(start)
            text = f.read()
        if marker in text:
            return text
        assert time.monotonic() < deadline, "the marker never reached PostgreSQL's log"
        time.sleep(0.05)


def test_startup_probe_learns_parameters_without_an_error_in_the_server_log(
    env, wirepool, config, role
):
    start = os.path.getsize(env["WP_PG_LOG"])
    cfg = config([(role.name, role.password)])
    cfg["log_level"] = "debug"
    wp = wirepool(cfg)
    # The role's own name is no database: libpq's default would be refused (FATAL 3D000).
    assert wp.wait_log(r"proxy=pg startup probe done: [1-9][0-9]* parameters", timeout=10), (
        wp.log_tail(20)
    )
    text = _server_log_through_marker(env, start)
    assert f'database "{role.name}" does not exist' not in text
    assert not [line for line in text.splitlines() if "FATAL" in line and role.name in line]
