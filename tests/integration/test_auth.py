# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""Client authentication at wirepool: SCRAM-SHA-256 and md5 to the client,
whatever the backend role uses; failures look exactly like PostgreSQL's."""

import secrets
import socket
import struct

import psycopg2
import pytest

from wphelpers import connect, connect_proxy, scalar
from wpwire import (
    GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
    RawPg,
    startup_packet,
    try_login,
)

CLIENT_AUTHS = ["scram-sha-256", "md5"]
ROLE_KINDS = ["scram", "md5"]


def _role(env, kind):
    if kind == "scram":
        return env["WP_PG_SCRAM_USER"], env["WP_PG_SCRAM_PASSWORD"]
    return env["WP_PG_MD5_USER"], env["WP_PG_MD5_PASSWORD"]


@pytest.fixture(params=CLIENT_AUTHS)
def wp(request, wirepool, config, proxy_users):
    w = wirepool(config(proxy_users, client_auth=request.param))
    w.client_auth = request.param
    return w


def _direct_error(env, user, password, database=None):
    conn, err = try_login(env["WP_PG_HOST"], env["WP_PG_PORT"], user, password,
                          database or env["WP_PG_DB"])
    if conn:
        conn.close()
    assert err is not None, "direct login unexpectedly succeeded"
    return err


def _proxy_error(env, wp, user, password, database=None):
    conn, err = try_login(env["WP_PG_HOST"], wp.port(), user, password,
                          database or env["WP_PG_DB"])
    if conn:
        conn.close()
    assert err is not None, "login through wirepool unexpectedly succeeded"
    return err


def _assert_same_error(via, direct):
    assert via.sqlstate == direct.sqlstate, (via.fields, direct.fields)
    assert via.message == direct.message, (via.fields, direct.fields)
    assert via.fields.get("S") == direct.fields.get("S"), (via.fields, direct.fields)
    assert via.fields.get("V", via.fields.get("S")) == direct.fields.get("V", direct.fields.get("S"))


@pytest.mark.parametrize("kind", ROLE_KINDS)
def test_psycopg2_login(env, wp, kind):
    user, password = _role(env, kind)
    for sslmode in ("prefer", "disable"):
        conn = connect_proxy(env, wp, user, password, sslmode=sslmode)
        try:
            assert scalar(conn, "SELECT current_user") == user
            assert scalar(conn, "SELECT current_database()") == env["WP_PG_DB"]
            # ParameterStatus reached libpq.
            assert conn.server_version >= 150000
            assert conn.get_parameter_status("server_encoding") == "UTF8"
            assert conn.get_parameter_status("client_encoding") == "UTF8"
            assert conn.get_parameter_status("integer_datetimes") == "on"
        finally:
            conn.close()


@pytest.mark.parametrize("kind", ROLE_KINDS)
def test_raw_login_with_proxy_auth_method(env, wp, kind):
    """The proxy itself asks for the configured method (10 = SASL, 5 = md5)."""
    user, password = _role(env, kind)
    with RawPg(env["WP_PG_HOST"], wp.port(), timeout=10) as c:
        c.send(startup_packet(user, env["WP_PG_DB"]))
        kind_byte, payload = c.read_message()
        assert kind_byte == b"R", (kind_byte, payload)
        (code,) = struct.unpack("!I", payload[:4])
        assert code == (10 if wp.client_auth == "scram-sha-256" else 5)
    conn, err = try_login(env["WP_PG_HOST"], wp.port(), user, password, env["WP_PG_DB"])
    assert err is None, err
    try:
        assert conn.query("SELECT current_user") == [(user,)]
        assert conn.backend_key is not None
    finally:
        conn.terminate()


@pytest.mark.parametrize("kind", ROLE_KINDS)
def test_wrong_password_same_as_postgres(env, wp, kind):
    user, password = _role(env, kind)
    bad = password + "-wrong"
    via = _proxy_error(env, wp, user, bad)
    direct = _direct_error(env, user, bad)
    assert via.sqlstate == "28P01"
    assert via.message == f'password authentication failed for user "{user}"'
    _assert_same_error(via, direct)

    with pytest.raises(psycopg2.OperationalError) as ei:
        connect_proxy(env, wp, user, bad)
    assert f'password authentication failed for user "{user}"' in str(ei.value)


def test_unknown_user_same_shape_as_wrong_password(env, wp):
    user = "wp_nosuchuser_" + secrets.token_hex(3)
    via = _proxy_error(env, wp, user, "whatever")
    direct = _direct_error(env, user, "whatever")
    assert via.sqlstate == "28P01"
    assert via.message == f'password authentication failed for user "{user}"'
    _assert_same_error(via, direct)

    with pytest.raises(psycopg2.OperationalError) as ei:
        connect_proxy(env, wp, user, "whatever")
    assert f'password authentication failed for user "{user}"' in str(ei.value)


def test_unknown_user_asks_for_password_like_known_user(env, wp):
    """No enumeration: an unknown user gets the same auth request as a known one."""
    codes = []
    for user in (env["WP_PG_SCRAM_USER"], "wp_nosuchuser_" + secrets.token_hex(3)):
        with RawPg(env["WP_PG_HOST"], wp.port(), timeout=10) as c:
            c.send(startup_packet(user, env["WP_PG_DB"]))
            k, payload = c.read_message()
            codes.append((k, payload[:4]))
    assert codes[0] == codes[1]


@pytest.mark.parametrize("kind", ROLE_KINDS)
def test_unknown_database_gives_backend_3D000(env, wp, kind):
    user, password = _role(env, kind)
    db = "wp_nosuchdb_" + secrets.token_hex(3)
    via = _proxy_error(env, wp, user, password, database=db)
    direct = _direct_error(env, user, password, database=db)
    assert via.sqlstate == "3D000", via.fields
    assert via.message == f'database "{db}" does not exist'
    _assert_same_error(via, direct)

    with pytest.raises(psycopg2.OperationalError) as ei:
        connect_proxy(env, wp, user, password, dbname=db)
    assert f'database "{db}" does not exist' in str(ei.value)


def test_ssl_and_gssenc_requests_answered_n(env, wp):
    """No TLS yet: SSLRequest and GSSENCRequest get 'N' and the login continues."""
    user, password = _role(env, "scram")
    for code in (SSL_REQUEST_CODE, GSSENC_REQUEST_CODE):
        c = RawPg(env["WP_PG_HOST"], wp.port(), timeout=5)
        try:
            c.send(struct.pack("!II", 8, code))
            assert c.read_byte() == b"N"
            c.login(user, password, env["WP_PG_DB"])
            assert c.query("SELECT 1") == [("1",)]
        finally:
            c.terminate()
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect_proxy(env, wp, user, password, sslmode="require")
    assert "SSL" in str(ei.value)


def test_bogus_cancel_request_is_harmless(env, wp):
    user, password = _role(env, "scram")
    conn = connect_proxy(env, wp, user, password)
    try:
        s = socket.create_connection((env["WP_PG_HOST"], wp.port()), timeout=5)
        try:
            s.sendall(struct.pack("!IIii", 16, 80877102, 12345, 67890))
            s.settimeout(5)
            assert s.recv(100) == b""  # closed without an answer
        finally:
            s.close()
        assert scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()


def test_sandbox_roles_are_what_the_tests_assume(env, admin):
    """The env contract: the SCRAM role is stored as SCRAM, the md5 role as md5,
    and both log in directly."""
    stored = {}
    with admin.cursor() as cur:
        for kind in ROLE_KINDS:
            cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (_role(env, kind)[0],))
            row = cur.fetchone()
            stored[kind] = row[0] if row else None
    assert (stored["scram"] or "").startswith("SCRAM-SHA-256$"), "WP_PG_SCRAM_USER is not stored as SCRAM"
    assert (stored["md5"] or "").startswith("md5"), "WP_PG_MD5_USER is not stored as md5"
    for kind in ROLE_KINDS:
        user, password = _role(env, kind)
        conn = connect(env, env["WP_PG_PORT"], user, password)
        conn.close()
