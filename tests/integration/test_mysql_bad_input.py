# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Bad input on the mysql proxy while sysbench runs through it: every bad
client gets an ERR packet (0xff) and/or is closed, at the latest by the 1 s
client_login_timeout, and sysbench sees no error. The proxy speaks first
(Handshake v10); the probes read past it."""

import random
import socket
import struct
import subprocess
import time

import pytest

from mysqlhelpers import (
    CLIENT_LONG_PASSWORD,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    UTF8MB4_GENERAL_CI,
    RawMy,
    connect_my_direct,
    connect_target,
    handshake_response,
    my_client_env,
    my_scalar,
    packet,
    parse_sysbench,
    sysbench,
    sysbench_cmd,
    wait_err_or_close,
)
from wphelpers import run_in_thread
from wpwire import SSL_REQUEST_CODE, startup_packet

LOGIN_TIMEOUT = 1.0
# How long a probe waits for the close: the login timeout plus slack for a
# loaded 2-core machine (sysbench runs meanwhile).
CLOSE_WITHIN = 3.5
SB_TABLES = 1
SB_TABLE_SIZE = 1000


@pytest.fixture
def bench(my_env, my_proxy):
    """A mysql proxy with a 1 s login timeout, and sysbench's sbtest1
    prepared directly (so this file tests only the bad input)."""
    env = my_env
    user, password = env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"]
    target = my_proxy(client_login_timeout="1s", max_backend_connections=10)
    restore = None
    if not target.proxied:
        # Development mode against MariaDB itself: its handshake timeout
        # (connect_timeout, at least 2 s) stands in for the login timeout.
        admin = connect_my_direct(env, database=None)
        try:
            restore = my_scalar(admin, "SELECT @@GLOBAL.connect_timeout")
            with admin.cursor() as cur:
                cur.execute("SET GLOBAL connect_timeout = 2")
        finally:
            admin.close()
    host, port = env["WP_MY_HOST"], env["WP_MY_PORT"]
    sysbench(env, host, port, user, password, "cleanup", tables=SB_TABLES, timeout=60)
    r = sysbench(env, host, port, user, password, "prepare", tables=SB_TABLES,
                 table_size=SB_TABLE_SIZE, timeout=120)
    assert r.returncode == 0, f"sysbench prepare failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    yield target
    sysbench(env, host, port, user, password, "cleanup", tables=SB_TABLES, timeout=60)
    if restore is not None:
        admin = connect_my_direct(env, database=None)
        try:
            with admin.cursor() as cur:
                cur.execute(f"SET GLOBAL connect_timeout = {int(restore)}")
        finally:
            admin.close()


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _verdict(name, outcome, elapsed, info, min_elapsed=0.0):
    """None if the peer closed (after zero or more ERR packets) no sooner than
    min_elapsed, else a failure description."""
    if outcome == "closed" and elapsed >= min_elapsed:
        return None
    return f"{name}: {outcome} after {elapsed:.2f}s ({info!r})"


def _raw_probe(port, name, build, read_handshake=True, min_elapsed=0.0):
    """Connect, (read the handshake,) send build(handshake) and expect ERR
    and/or a close within CLOSE_WITHIN seconds."""
    c = RawMy("127.0.0.1", port, timeout=5)
    try:
        hs = c.read_handshake() if read_handshake else None
        data = build(hs)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            return None
        outcome, elapsed, info = wait_err_or_close(c.sock, CLOSE_WITHIN)
    finally:
        c.close()
    return _verdict(name, outcome, elapsed, info, min_elapsed)


def _probes(port, user, password, db):
    rng = random.Random(20240611)
    random_bytes = bytes(rng.randrange(256) for _ in range(256))

    def response(hs):
        return handshake_response(user, password, hs["scramble"], db)

    ssl_request = struct.pack("<IIB", CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41
                              | CLIENT_SECURE_CONNECTION | CLIENT_SSL,
                              16 * 1024 * 1024, UTF8MB4_GENERAL_CI) + b"\x00" * 23
    garbage = {
        "random bytes": lambda hs: random_bytes,
        "http request": lambda hs: b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "zero bytes": lambda hs: b"\x00" * 64,
        "empty handshake response": lambda hs: packet(1, b""),
        "ssl request (not offered)": lambda hs: packet(1, ssl_request),
        "lying length, too short": lambda hs: (
            struct.pack("<I", 10)[:3] + b"\x01" + response(hs)),
        "truncated handshake response": lambda hs: packet(1, response(hs)[:20]),
        "unterminated user name": lambda hs: packet(1, response(hs)[:36] + b"\xff" * 80),
    }
    probes = [(f"garbage: {n}", _raw_probe, (port, n, b)) for n, b in garbage.items()]
    # Lies that leave the proxy waiting for bytes that never come: the login
    # timeout closes them (not at once).
    waiting = {
        "lying length, too long": lambda hs: (
            struct.pack("<I", len(response(hs)) + 100)[:3] + b"\x01" + response(hs)),
        "half a handshake response": lambda hs: packet(1, response(hs))[:30],
        "silent": lambda hs: b"",
    }
    probes += [(f"login timeout: {n}", _raw_probe, (port, n, b, True, 0.5))
               for n, b in waiting.items()]
    # A length over the pre-login cap is refused at once (ERR 1156 and a close).
    probes.append(("lying length, 16 MiB", _raw_probe,
                   (port, "lying length, 16 MiB",
                    lambda hs: b"\xff\xff\xff\x01" + response(hs), True)))
    # A PostgreSQL client knocking on the MySQL port: it speaks first and
    # ignores the handshake.
    pg = {
        "postgres startup packet": lambda hs: startup_packet(user, db),
        "postgres SSLRequest": lambda hs: struct.pack("!II", 8, SSL_REQUEST_CODE),
    }
    probes += [(n, _raw_probe, (port, n, b, False)) for n, b in pg.items()]
    probes += [
        ("silent from connect", _probe_silent, (port,)),
        ("after login: unknown command", _probe_after_login,
         (port, user, password, db, "unknown command", b"\xee\x00\x01")),
        ("after login: sequence out of order", _probe_after_login,
         (port, user, password, db, "sequence out of order", None)),
    ]
    return probes


def _probe_silent(port):
    """Connect and never read nor send: closed by the login timeout."""
    s = _connect(port)
    try:
        time.sleep(0.1)
        outcome, elapsed, info = wait_err_or_close(s, CLOSE_WITHIN)
    finally:
        s.close()
    return _verdict("silent from connect", outcome, elapsed, info, 0.4)


def _probe_after_login(port, user, password, db, name, payload):
    """After a good login: an unknown command gets ERR (the session may go
    on) or a close; a command with a wrong sequence id gets ERR 1156 and/or
    a close."""
    c = RawMy("127.0.0.1", port, timeout=5)
    try:
        c.login(user, password, db)
        if payload is None:
            c.send(packet(5, b"\x03SELECT 1"))
        else:
            c.send(packet(0, payload))
        outcome, elapsed, info = wait_err_or_close(c.sock, 2.0, skip_handshake=False)
    finally:
        c.close()
    if outcome == "closed" or (outcome == "timeout" and info):
        return None
    return f"after login, {name}: {outcome} after {elapsed:.2f}s ({info!r})"


def test_bad_clients_during_sysbench(my_env, bench):
    env = my_env
    target = bench
    user, password, db = env["WP_MY_NATIVE_USER"], env["WP_MY_NATIVE_PASSWORD"], env["WP_MY_DB"]
    probes = _probes(target.port, user, password, db)

    cmd = sysbench_cmd(env, target.host, target.port, user, password, "run",
                       "--threads=4", "--time=8", "--db-ps-mode=auto", "--report-interval=0",
                       tables=SB_TABLES, table_size=SB_TABLE_SIZE)
    p = subprocess.Popen(cmd, env=my_client_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        time.sleep(1.5)  # let sysbench connect and get going
        assert p.poll() is None, "sysbench ended early: " + p.communicate(timeout=10)[0][-2000:]
        running = [(name, *run_in_thread(fn, *args)) for name, fn, args in probes]
        for name, t, box in running:
            t.join(timeout=10)
            if t.is_alive():
                failures.append(f"{name}: probe still blocked after 10 s")
            elif "error" in box:
                failures.append(f"{name}: {box['error']!r}")
            elif box.get("result"):
                failures.append(box["result"])
        sysbench_overlapped = p.poll() is None
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)
    assert not failures, "\n".join(failures)
    assert sysbench_overlapped, "sysbench finished before the bad clients were done"
    parse_sysbench(subprocess.CompletedProcess(cmd, p.returncode, out, err)).assert_clean()

    # The proxy still serves new clients.
    conn = connect_target(env, target)
    try:
        assert my_scalar(conn, "SELECT COUNT(*) FROM sbtest1") == SB_TABLE_SIZE
    finally:
        conn.close()


def test_many_silent_clients_all_closed(my_env, bench):
    """50 clients that never speak are all closed by the login timeout."""
    port = bench.port
    socks = [_connect(port) for _ in range(50)]
    try:
        start = time.monotonic()
        open_ = set(range(len(socks)))
        while open_ and time.monotonic() - start < 4.0:
            for i in list(open_):
                socks[i].settimeout(0.01)
                try:
                    if socks[i].recv(65536) == b"":
                        open_.discard(i)
                except socket.timeout:
                    pass
                except OSError:
                    open_.discard(i)
        assert not open_, f"{len(open_)} of 50 silent clients still open after 4 s"
    finally:
        for s in socks:
            s.close()
