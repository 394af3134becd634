# Runs under /usr/bin/python3 (Debian's psycopg2, python3-pymysql and pytest).
"""Failed logins at wirepool (issue 5): auth_failure_delay, auth_failure_limit, auth_failure_ban.

A wrong password is answered only after auth_failure_delay, by a timer (other clients go on
meanwhile); an address that fails auth_failure_limit times is refused, whatever the password,
for auth_failure_ban; a limit of 0 never bans. Both protocols: PostgreSQL through the raw client
of wpwire.py (so that the wait is measured from the moment the password proof leaves) and
psycopg2, MySQL through the raw client of mysqlhelpers.py and PyMySQL.

Every test connects from 127.0.0.1 (one address), so each starts its own wirepool with the
settings it needs; one test also connects from 127.0.0.2 to show the ban is per address."""

import struct
import time

import psycopg2
import pymysql
import pytest

from mysqlhelpers import (
    ACCESS_DENIED_RE,
    ER_ACCESS_DENIED_ERROR,
    MyErr,
    MyProtocolError,
    RawMy,
    handshake_response,
    my_connect,
    my_errmsg,
    my_errno,
    my_scalar,
    parse_err,
)
from wphelpers import connect, scalar
from wpwire import PgError, RawPg, ScramClient, message, parse_error_fields, startup_packet

DELAY = 1.0          # auth_failure_delay in the delay tests
DELAY_FLOOR = 0.9    # a delayed error arrives no sooner than this after the password
FAST = 0.5           # what a login (or a query) that is not delayed stays under
BAN = 2.0            # auth_failure_ban in the ban tests
BANNED = "too many failed logins"
BAN_LOG_RE = r"(?m)^.*\[(warn|warning)\] .*refused for.*$"


# ---------------------------------------------------------------- PostgreSQL helpers


class TimedPg(RawPg):
    """A RawPg that remembers when it last sent something (the password proof, in a login),
    and can connect from another loopback address."""

    def __init__(self, host, port, timeout=10.0, source=None):
        super().__init__(host, port, timeout=timeout, source=source)
        self.last_send = None

    def send(self, data):
        super().send(data)
        self.last_send = time.monotonic()


def pg_login(env, port, user, password, source=None):
    """Log in with the raw client. Returns (conn or None, PgError or None, seconds from the last
    thing the client sent, its password proof, to the error or to ReadyForQuery)."""
    c = TimedPg(env["WP_PG_HOST"], port, timeout=10, source=source)
    try:
        c.login(user, password, env["WP_PG_DB"])
        return c, None, time.monotonic() - c.last_send
    except PgError as e:
        took = time.monotonic() - c.last_send
        c.close()
        return None, e, took
    except BaseException:
        c.close()
        raise


def pg_send_scram_proof(env, port, user, password):
    """Run a SCRAM login up to and including the client's proof and return (conn, when the
    proof was sent), without reading the answer."""
    c = TimedPg(env["WP_PG_HOST"], port, timeout=10)
    try:
        c.send(startup_packet(user, env["WP_PG_DB"]))
        kind, payload = c.read_message()
        assert kind == b"R" and struct.unpack("!I", payload[:4])[0] == 10, (kind, payload)
        scram = ScramClient(password)
        first = scram.client_first()
        c.send(message(b"p", b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first))
        kind, payload = c.read_message()
        assert kind == b"R" and struct.unpack("!I", payload[:4])[0] == 11, (kind, payload)
        c.send(message(b"p", scram.client_final(payload[4:])))
        return c, c.last_send
    except BaseException:
        c.close()
        raise


def pg_read_error(c):
    """The ErrorResponse that ends a login (PgError), and when it arrived."""
    kind, payload = c.read_message()
    got = time.monotonic()
    assert kind == b"E", f"expected an ErrorResponse, got {kind!r} {payload[:60]!r}"
    return PgError(parse_error_fields(payload), "auth"), got


def pg_assert_wrong_password(err, user):
    assert err is not None, "a wrong password logged in"
    assert err.sqlstate == "28P01", err.fields
    assert err.message == f'password authentication failed for user "{user}"', err.fields


def pg_assert_banned(err):
    assert err is not None, "logged in while the address is banned"
    assert err.sqlstate == "28P01", err.fields
    assert BANNED in err.message, err.fields


def pg_assert_logs_in(env, port, user, password, source=None):
    c, err, took = pg_login(env, port, user, password, source=source)
    assert err is None, f"the right password was refused: {err}"
    try:
        assert c.query("SELECT current_user") == [(user,)]
    finally:
        c.terminate()
    return took


def guard(delay="0s", limit=0, ban="1m"):
    return {"auth_failure_delay": delay, "auth_failure_limit": limit, "auth_failure_ban": ban}


# ---------------------------------------------------------------- PostgreSQL: the delay


def test_pg_wrong_password_answered_after_the_delay(env, wirepool, config, role):
    wp = wirepool(config([role], **guard(delay="1s", limit=0)))
    port = wp.port()
    # Warm the pool's first backend connection, so the timings below are the proxy's own.
    pg_assert_logs_in(env, port, role.name, role.password)

    for _ in range(2):
        conn, err, took = pg_login(env, port, role.name, role.password + "-wrong")
        assert conn is None
        pg_assert_wrong_password(err, role.name)
        assert took >= DELAY_FLOOR, f"the error came {took:.3f}s after the password"
        assert took < DELAY + 2, f"the error came {took:.3f}s after the password"

    # An unknown user waits just as long (the delay tells nothing about who exists).
    unknown = "wp_nosuchuser_" + role.name[4:]
    conn, err, took = pg_login(env, port, unknown, "whatever")
    pg_assert_wrong_password(err, unknown)
    assert took >= DELAY_FLOOR, f"the unknown user's error came {took:.3f}s after the password"

    # The right password is not delayed.
    for _ in range(3):
        took = pg_assert_logs_in(env, port, role.name, role.password)
        assert took < FAST, f"a right password took {took:.3f}s"

    # libpq sees the same: the whole failed connect lasts at least the delay.
    t0 = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, port, role.name, role.password + "-wrong", sslmode="disable").close()
    took = time.monotonic() - t0
    assert f'password authentication failed for user "{role.name}"' in str(ei.value)
    assert took >= DELAY_FLOOR, f"psycopg2's failed connect took {took:.3f}s"
    t0 = time.monotonic()
    conn = connect(env, port, role.name, role.password, sslmode="disable")
    try:
        assert scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()
    assert time.monotonic() - t0 < FAST


def test_pg_no_delay_when_zero(env, wirepool, config, role):
    """auth_failure_delay: 0 answers at once (so the delay above is the setting's doing)."""
    wp = wirepool(config([role], **guard(delay="0s", limit=0)))
    pg_assert_logs_in(env, wp.port(), role.name, role.password)
    conn, err, took = pg_login(env, wp.port(), role.name, "wrong")
    pg_assert_wrong_password(err, role.name)
    assert took < FAST, f"the error came {took:.3f}s after the password with no delay set"


def test_pg_delay_is_a_timer_not_a_sleep(env, wirepool, config, role):
    """While one client's error is held back, another logs in and runs queries at once."""
    wp = wirepool(config([role], **guard(delay="1s", limit=0)))
    port = wp.port()
    pg_assert_logs_in(env, port, role.name, role.password)  # a warm backend connection

    failing, proof_sent = pg_send_scram_proof(env, port, role.name, "wrong")
    try:
        # Let the proxy read the proof and start the delay.
        time.sleep(0.1)
        t0 = time.monotonic()
        c, err, _ = pg_login(env, port, role.name, role.password)
        assert err is None, err
        try:
            assert c.query("SELECT 6 * 7") == [("42",)]
            assert c.query("SELECT current_user") == [(role.name,)]
        finally:
            c.terminate()
        other = time.monotonic() - t0
        assert other < FAST, f"another client's login and queries took {other:.3f}s meanwhile"
        # The failing client was still waiting for its answer meanwhile.
        assert time.monotonic() - proof_sent < DELAY_FLOOR, "the check above took too long"
        err, got = pg_read_error(failing)
    finally:
        failing.close()
    pg_assert_wrong_password(err, role.name)
    assert got - proof_sent >= DELAY_FLOOR, f"the error came {got - proof_sent:.3f}s after"


def test_pg_delays_run_side_by_side(env, wirepool, config, role):
    """Five wrong passwords at once: each error comes a delay after its own password, all within
    about one delay (one after the other would take five)."""
    wp = wirepool(config([role], **guard(delay="1s", limit=0)))
    port = wp.port()
    failing = []
    try:
        for _ in range(5):
            failing.append(pg_send_scram_proof(env, port, role.name, "wrong"))
        for c, sent in failing:
            err, got = pg_read_error(c)
            pg_assert_wrong_password(err, role.name)
            assert got - sent >= DELAY_FLOOR, f"an error came {got - sent:.3f}s after"
        total = time.monotonic() - failing[0][1]
        assert total < DELAY + 0.8, f"five delayed failures took {total:.3f}s in all"
    finally:
        for c, _ in failing:
            c.close()


def test_pg_client_gone_during_the_delay(env, wirepool, config, role):
    """A client that hangs up while its error is held back: the proxy closes it when the delay
    is over and goes on (the fixture fails the test if wirepool died)."""
    wp = wirepool(config([role], **guard(delay="1s", limit=0)))
    port = wp.port()
    for _ in range(3):
        c, _ = pg_send_scram_proof(env, port, role.name, "wrong")
        time.sleep(0.05)
        c.close()
    time.sleep(DELAY + 0.3)
    assert wp.poll() is None
    took = pg_assert_logs_in(env, port, role.name, role.password)
    assert took < FAST


# ---------------------------------------------------------------- PostgreSQL: the ban


def test_pg_ban_after_limit(env, wirepool, config, role):
    wp = wirepool(config([role], **guard(delay="0s", limit=3, ban="2s")))
    port = wp.port()
    pg_assert_logs_in(env, port, role.name, role.password)
    assert not wp.wait_log(BAN_LOG_RE, timeout=0.1)

    for i in range(3):
        conn, err, _ = pg_login(env, port, role.name, f"wrong-{i}")
        pg_assert_wrong_password(err, role.name)
        if i < 2:
            assert not wp.wait_log(BAN_LOG_RE, timeout=0.1), f"banned after {i + 1} failures"
    banned_at = time.monotonic()
    line = wp.wait_log(BAN_LOG_RE)
    assert line, wp.log_tail(20)
    assert "127.0.0.1" in line.group(0), line.group(0)

    # Now even the right password is refused, before any password is asked for.
    conn, err, _ = pg_login(env, port, role.name, role.password)
    pg_assert_banned(err)
    assert err.fields.get("S") == "FATAL", err.fields
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, port, role.name, role.password, sslmode="disable").close()
    assert BANNED in str(ei.value)
    # An unknown user too: the ban is the address's, not the user's.
    conn, err, _ = pg_login(env, port, "wp_nosuchuser_x", "whatever")
    pg_assert_banned(err)
    assert time.monotonic() - banned_at < BAN, "the refusals above took longer than the ban"

    # After the ban the right password works again (refusals during the ban did not extend it).
    time.sleep(max(0.0, banned_at + BAN + 0.3 - time.monotonic()))
    pg_assert_logs_in(env, port, role.name, role.password)
    # And the count started afresh: one more failure is a plain failure, not a ban.
    conn, err, _ = pg_login(env, port, role.name, "wrong-again")
    pg_assert_wrong_password(err, role.name)
    pg_assert_logs_in(env, port, role.name, role.password)


def test_pg_ban_is_per_address(env, wirepool, config, role):
    wp = wirepool(config([role], **guard(delay="0s", limit=3, ban="1m")))
    port = wp.port()
    for i in range(3):
        _, err, _ = pg_login(env, port, role.name, f"wrong-{i}")
        pg_assert_wrong_password(err, role.name)
    assert wp.wait_log(BAN_LOG_RE), wp.log_tail(20)
    _, err, _ = pg_login(env, port, role.name, role.password)
    pg_assert_banned(err)
    assert "127.0.0.1" in err.message, err.fields
    # Another address (a client bound to 127.0.0.2, talking to the same 127.0.0.1 listener) is
    # not banned.
    pg_assert_logs_in(env, port, role.name, role.password, source="127.0.0.2")


def test_pg_limit_zero_never_bans(env, wirepool, config, role):
    wp = wirepool(config([role], **guard(delay="0s", limit=0, ban="1m")))
    port = wp.port()
    # More failures than the default limit (20), all in a row.
    for i in range(25):
        _, err, _ = pg_login(env, port, role.name, f"wrong-{i}")
        pg_assert_wrong_password(err, role.name)
    pg_assert_logs_in(env, port, role.name, role.password)
    assert "refused for" not in wp.log_text(), wp.log_tail(20)
    assert BANNED not in wp.log_text(), wp.log_tail(20)


# ---------------------------------------------------------------- MySQL helpers


class TimedMy(RawMy):
    """A RawMy that remembers when it last sent something."""

    def __init__(self, host, port, timeout=10.0):
        super().__init__(host, port, timeout=timeout)
        self.last_send = None

    def send(self, data):
        super().send(data)
        self.last_send = time.monotonic()


def my_login(host, port, user, password, database):
    """A native-password login with the raw client. Returns (conn or None, MyErr or None,
    seconds from the client's last packet, its password, to the OK or the ERR)."""
    c = TimedMy(host, port, timeout=10)
    try:
        c.login(user, password, database)
        return c, None, time.monotonic() - c.last_send
    except MyErr as e:
        took = time.monotonic() - c.last_send
        c.close()
        return None, e, took
    except BaseException:
        c.close()
        raise


def my_send_password(host, port, user, password, database):
    """Send the handshake response (the password's token in it) and return (conn, when sent),
    without reading the answer."""
    c = TimedMy(host, port, timeout=10)
    try:
        hs = c.read_handshake()
        c.send_packet(handshake_response(user, password, hs["scramble"], database), seq=1)
        return c, c.last_send
    except BaseException:
        c.close()
        raise


def my_read_err(c):
    """The ERR that ends a login and when it arrived (an auth switch is answered wrongly on
    purpose: the password is wrong anyway)."""
    while True:
        _, payload = c.read_packet()
        if payload[:1] == b"\xfe":
            raise MyProtocolError(f"auth switch during a wrong-password login: {payload[:40]!r}")
        got = time.monotonic()
        if payload[:1] != b"\xff":
            raise MyProtocolError(f"expected ERR, got {payload[:40]!r}")
        return parse_err(payload), got


def my_assert_wrong_password(err, user):
    assert err is not None, "a wrong password logged in"
    assert err.errno == ER_ACCESS_DENIED_ERROR, err
    m = ACCESS_DENIED_RE.match(err.message)
    assert m and m.group("user") == user, err.message


def my_assert_banned(err):
    assert err is not None, "logged in while the address is banned"
    assert err.errno == ER_ACCESS_DENIED_ERROR, err
    assert BANNED in err.message, err


def my_assert_logs_in(my_env, port, user, password):
    c, err, took = my_login("127.0.0.1", port, user, password, my_env["WP_MY_DB"])
    assert err is None, f"the right password was refused: {err}"
    try:
        resp = c.command(b"\x0e")  # COM_PING
        assert resp[:1] == b"\x00", resp
    finally:
        c.close()
    return took


@pytest.fixture
def my_native(my_env):
    return my_env["WP_MY_NATIVE_USER"], my_env["WP_MY_NATIVE_PASSWORD"]


# ---------------------------------------------------------------- MySQL: the delay


def test_my_wrong_password_answered_after_the_delay(my_env, my_wirepool, my_config, my_native):
    user, password = my_native
    wp = my_wirepool(my_config(**guard(delay="1s", limit=0)))
    port = wp.port("my")
    my_assert_logs_in(my_env, port, user, password)  # a warm backend connection

    for _ in range(2):
        conn, err, took = my_login("127.0.0.1", port, user, "wrong-" + password,
                                   my_env["WP_MY_DB"])
        assert conn is None
        my_assert_wrong_password(err, user)
        assert took >= DELAY_FLOOR, f"the ERR came {took:.3f}s after the password"
        assert took < DELAY + 2, f"the ERR came {took:.3f}s after the password"
    for _ in range(3):
        took = my_assert_logs_in(my_env, port, user, password)
        assert took < FAST, f"a right password took {took:.3f}s"

    # PyMySQL sees the same.
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect("127.0.0.1", port, user, "wrong", database=my_env["WP_MY_DB"]).close()
    took = time.monotonic() - t0
    assert my_errno(ei.value) == ER_ACCESS_DENIED_ERROR, repr(ei.value)
    assert took >= DELAY_FLOOR, f"PyMySQL's failed connect took {took:.3f}s"


def test_my_delay_is_a_timer_not_a_sleep(my_env, my_wirepool, my_config, my_native):
    user, password = my_native
    wp = my_wirepool(my_config(**guard(delay="1s", limit=0)))
    port = wp.port("my")
    my_assert_logs_in(my_env, port, user, password)

    failing, sent = my_send_password("127.0.0.1", port, user, "wrong", my_env["WP_MY_DB"])
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        conn = my_connect("127.0.0.1", port, user, password, database=my_env["WP_MY_DB"])
        try:
            assert my_scalar(conn, "SELECT 6 * 7") == 42
        finally:
            conn.close()
        other = time.monotonic() - t0
        assert other < FAST, f"another client's login and query took {other:.3f}s during the delay"
        assert time.monotonic() - sent < DELAY_FLOOR, "the check above took too long"
        err, got = my_read_err(failing)
    finally:
        failing.close()
    my_assert_wrong_password(err, user)
    assert got - sent >= DELAY_FLOOR, f"the ERR came {got - sent:.3f}s after the password"


# ---------------------------------------------------------------- MySQL: the ban


def test_my_ban_after_limit(my_env, my_wirepool, my_config, my_native):
    user, password = my_native
    db = my_env["WP_MY_DB"]
    wp = my_wirepool(my_config(**guard(delay="0s", limit=3, ban="2s")))
    port = wp.port("my")
    my_assert_logs_in(my_env, port, user, password)

    for i in range(3):
        _, err, _ = my_login("127.0.0.1", port, user, f"wrong-{i}", db)
        my_assert_wrong_password(err, user)
    banned_at = time.monotonic()
    line = wp.wait_log(BAN_LOG_RE)
    assert line, wp.log_tail(20)

    _, err, _ = my_login("127.0.0.1", port, user, password, db)
    my_assert_banned(err)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect("127.0.0.1", port, user, password, database=db).close()
    assert my_errno(ei.value) == ER_ACCESS_DENIED_ERROR, repr(ei.value)
    assert BANNED in my_errmsg(ei.value), repr(ei.value)
    assert time.monotonic() - banned_at < BAN, "the refusals above took longer than the ban"

    time.sleep(max(0.0, banned_at + BAN + 0.3 - time.monotonic()))
    my_assert_logs_in(my_env, port, user, password)
    conn = my_connect("127.0.0.1", port, user, password, database=db)
    try:
        assert my_scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()


def test_my_limit_zero_never_bans(my_env, my_wirepool, my_config, my_native):
    user, password = my_native
    wp = my_wirepool(my_config(**guard(delay="0s", limit=0)))
    port = wp.port("my")
    for i in range(25):
        _, err, _ = my_login("127.0.0.1", port, user, f"wrong-{i}", my_env["WP_MY_DB"])
        my_assert_wrong_password(err, user)
    my_assert_logs_in(my_env, port, user, password)
    assert "refused for" not in wp.log_text(), wp.log_tail(20)
