# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""Bad input while pgbench runs through the same proxy: every bad client is
answered with an ErrorResponse or closed (at the latest by the login
timeout), and pgbench sees no error."""

import random
import socket
import struct
import subprocess
import time

import pytest

from wphelpers import (
    client_env,
    connect_proxy,
    parse_pgbench,
    pgbench,
    pgbench_cmd,
    run_in_thread,
    scalar,
)
from wpwire import PROTOCOL_3_0, RawPg, message, parse_error_fields, startup_packet, wait_closed_or_error

LOGIN_TIMEOUT = 1.0


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _send_and_expect_error_or_close(port, data, within):
    s = _connect(port)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return "closed", 0.0, None
        outcome, elapsed, first = wait_closed_or_error(s, within)
    finally:
        s.close()
    return outcome, elapsed, first


def _garbage_inputs():
    rng = random.Random(20240611)
    return {
        "random bytes": bytes(rng.randrange(256) for _ in range(256)),
        "http request": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "length 2 GiB": struct.pack("!II", 0x80000000, PROTOCOL_3_0) + b"user\x00x\x00\x00",
        "length 0x7fffffff": struct.pack("!II", 0x7FFFFFFF, PROTOCOL_3_0),
        "length 4": struct.pack("!I", 4) + b"\x00" * 12,
        "protocol 9.9": struct.pack("!II", 9, (9 << 16) | 9) + b"\x00",
        "no user": struct.pack("!II", 21, PROTOCOL_3_0) + b"database\x00wp\x00\x00",
        "zero bytes": b"\x00" * 64,
    }


@pytest.fixture
def bench(env, wirepool, config, role):
    """wirepool with a 1 s login timeout and pgbench tables in the role's schema
    (initialised directly, so this file tests only the bad input)."""
    wp = wirepool(config([(role.name, role.password)], client_login_timeout="1s",
                         max_backend_connections=10))
    init = pgbench(env, env["WP_PG_PORT"], role.name, role.password, "-i", "-s", "1", "-q",
                   timeout=120)
    assert init.returncode == 0, init.stderr
    return wp


def _closed_ok(outcome, first):
    return outcome == "closed" and first in (None, b"E")


def _probe_garbage(port, name, data):
    outcome, elapsed, first = _send_and_expect_error_or_close(port, data, 2.0)
    if not _closed_ok(outcome, first):
        return f"{name}: {outcome} after {elapsed:.2f}s, first byte {first!r}"


def _probe_silent(port):
    """Connect and send nothing: closed by the 1 s login timeout."""
    s = _connect(port)
    try:
        outcome, elapsed, first = wait_closed_or_error(s, 3.5)
    finally:
        s.close()
    if not _closed_ok(outcome, first) or elapsed < 0.5:
        return f"silent client: {outcome} after {elapsed:.2f}s, first {first!r}"


def _probe_half_startup(port, pkt):
    """Half a startup packet, then silence: closed by the login timeout."""
    s = _connect(port)
    try:
        s.sendall(pkt[: len(pkt) // 2])
        outcome, elapsed, first = wait_closed_or_error(s, 3.5)
    finally:
        s.close()
    if not _closed_ok(outcome, first) or elapsed < 0.5:
        return f"half startup: {outcome} after {elapsed:.2f}s, first {first!r}"


def _probe_mid_auth(port, pkt):
    """A full startup, then silence in the middle of authentication."""
    c = RawPg("127.0.0.1", port, timeout=5)
    try:
        c.send(pkt)
        kind, _ = c.read_message()
        if kind != b"R":
            return f"mid-auth: expected an auth request, got {kind!r}"
        outcome, elapsed, first = wait_closed_or_error(c.sock, 3.5)
    finally:
        c.close()
    if not _closed_ok(outcome, first):
        return f"mid-auth silence: {outcome} after {elapsed:.2f}s, first {first!r}"


def _probe_unknown_message(port, user, password, db):
    """After login, a message type that does not exist: 08P01 and close."""
    c = RawPg("127.0.0.1", port, timeout=5)
    try:
        c.login(user, password, db)
        c.send(message(b"\x01", b"junk"))
        kind, payload = c.read_message()
        fields = parse_error_fields(payload) if kind == b"E" else {}
        if kind != b"E" or fields.get("C") != "08P01":
            return f"unknown message type: got {kind!r} {fields}"
        outcome, _, _ = wait_closed_or_error(c.sock, 2.0)
        if outcome != "closed":
            return "unknown message type: connection not closed after 08P01"
    finally:
        c.close()


def _probe_short_length(port, user, password, db):
    """After login, a message whose length field is below 4."""
    c = RawPg("127.0.0.1", port, timeout=5)
    try:
        c.login(user, password, db)
        c.send(b"Q" + struct.pack("!I", 2))
        outcome, elapsed, first = wait_closed_or_error(c.sock, 2.0)
    finally:
        c.close()
    if not _closed_ok(outcome, first):
        return f"short length: {outcome} after {elapsed:.2f}s, first {first!r}"


def test_bad_clients_during_pgbench(env, bench, role):
    wp = bench
    port = wp.port()
    db = env["WP_PG_DB"]
    pkt = startup_packet(role.name, db)
    probes = [(f"garbage {name}", _probe_garbage, (port, name, data))
              for name, data in _garbage_inputs().items()]
    probes += [
        ("silent", _probe_silent, (port,)),
        ("half startup", _probe_half_startup, (port, pkt)),
        ("mid-auth", _probe_mid_auth, (port, pkt)),
        ("unknown message", _probe_unknown_message, (port, role.name, role.password, db)),
        ("short length", _probe_short_length, (port, role.name, role.password, db)),
    ]

    cmd = pgbench_cmd(env, port, role.name, "-c", "4", "-j", "2", "-T", "8", "-M", "extended")
    p = subprocess.Popen(cmd, env=client_env(role.password), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        time.sleep(1.0)  # let pgbench connect and get going
        assert p.poll() is None, "pgbench ended early: " + p.communicate()[1]
        running = [(name, *run_in_thread(fn, *args)) for name, fn, args in probes]
        for name, t, box in running:
            t.join(timeout=10)
            if t.is_alive():
                failures.append(f"{name}: probe still blocked after 10 s")
            elif "error" in box:
                failures.append(f"{name}: {box['error']!r}")
            elif box.get("result"):
                failures.append(box["result"])
        pgbench_overlapped = p.poll() is None
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert not failures, "\n".join(failures)
    assert pgbench_overlapped, "pgbench finished before the bad clients were done"
    parse_pgbench(subprocess.CompletedProcess(cmd, p.returncode, out, err)).assert_clean()

    # The proxy still serves new clients.
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        assert scalar(conn, "SELECT count(*) FROM pgbench_branches") == 1
    finally:
        conn.close()


def test_many_silent_clients_all_closed(env, bench):
    """50 clients that never speak are all closed by the login timeout."""
    port = bench.port()
    socks = [_connect(port) for _ in range(50)]
    try:
        start = time.monotonic()
        open_ = set(range(len(socks)))
        while open_ and time.monotonic() - start < 4.0:
            for i in list(open_):
                socks[i].settimeout(0.01)
                try:
                    if socks[i].recv(4096) == b"":
                        open_.discard(i)
                except socket.timeout:
                    pass
                except OSError:
                    open_.discard(i)
        assert not open_, f"{len(open_)} of 50 silent clients still open after 4 s"
    finally:
        for s in socks:
            s.close()
