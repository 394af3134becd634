# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""A user's password given as a SCRAM-SHA-256 verifier (pg_authid's form): clients prove the
password against it, and the backend login either uses backend_password or passes the client's
proof through (the ClientKey it revealed), which works when the backend holds the same verifier."""

import subprocess

import psycopg2
import pytest

from wphelpers import config_text, connect_proxy, scalar


def _verifier(admin, role_name):
    return scalar(admin, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role_name,))


def test_passthrough_logs_in_to_a_backend_with_the_same_verifier(env, wirepool, config, admin,
                                                                role):
    verifier = _verifier(admin, role.name)
    assert verifier.startswith("SCRAM-SHA-256$")
    wp = wirepool(config([{"name": role.name, "password": verifier}], pool_mode="transaction",
                         max_backend_connections=2))
    # Several clients, more than the pool: the later server connections log in with the key the
    # first client's proof revealed.
    conns = [connect_proxy(env, wp, role.name, role.password) for _ in range(3)]
    for c in conns:
        assert scalar(c, "SELECT current_user") == role.name
        c.close()
    assert verifier not in wp.log_text()
    assert role.password not in wp.log_text()


def test_wrong_password_is_refused_against_a_verifier(env, wirepool, config, admin, role):
    verifier = _verifier(admin, role.name)
    wp = wirepool(config([{"name": role.name, "password": verifier}], auth_failure_delay="0s"))
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_proxy(env, wp, role.name, role.password + "x")


def test_passthrough_fails_clearly_when_the_backend_holds_another_verifier(
        env, wirepool, config, admin, make_role):
    role = make_role()
    verifier = _verifier(admin, role.name)
    # Same password, new salt on the server: the proxy's copy of the verifier is stale.
    with admin.cursor() as cur:
        cur.execute(f'ALTER ROLE "{role.name}" PASSWORD %s', (role.password,))
    assert _verifier(admin, role.name) != verifier
    wp = wirepool(config([{"name": role.name, "password": verifier}]))
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect_proxy(env, wp, role.name, role.password)


def test_verifier_with_backend_password(env, wirepool, config, admin, make_role):
    client_role = make_role()
    backend = make_role()
    verifier = _verifier(admin, client_role.name)
    wp = wirepool(config([{"name": client_role.name, "password": verifier,
                           "backend_user": backend.name,
                           "backend_password": backend.password}]))
    conn = connect_proxy(env, wp, client_role.name, client_role.password)
    assert scalar(conn, "SELECT current_user") == backend.name
    conn.close()


def test_passthrough_to_an_md5_backend_says_why_it_cannot(env, wirepool, config, admin,
                                                        make_role):
    scram_role = make_role()
    md5_role = make_role(password=scram_role.password, md5=True)
    verifier = _verifier(admin, scram_role.name)
    wp = wirepool(config([{"name": scram_role.name, "password": verifier,
                           "backend_user": md5_role.name}]))
    with pytest.raises(psycopg2.OperationalError, match="set backend_password"):
        connect_proxy(env, wp, scram_role.name, scram_role.password)


def test_a_malformed_verifier_is_a_config_error_that_does_not_echo_it(env, config, tmp_path):
    bad = "SCRAM-SHA-256$4096:c2FsdA==$notbase64!:alsobad"
    path = tmp_path / "bad.yaml"
    path.write_text(config_text(config([{"name": "u", "password": bad}])))
    result = subprocess.run([env["WIREPOOL_BIN"], "-c", str(path), "--check"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert "not a valid one" in result.stderr, result.stderr
    assert "notbase64" not in result.stdout + result.stderr


def test_a_verifier_cannot_serve_md5_client_auth(env, config, tmp_path):
    verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHQ=$" + "A" * 43 + "=:" + "A" * 43 + "="
    path = tmp_path / "md5.yaml"
    path.write_text(config_text(config([{"name": "u", "password": verifier}], client_auth="md5")))
    result = subprocess.run([env["WIREPOOL_BIN"], "-c", str(path), "--check"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert "only serves scram-sha-256 client auth" in result.stderr, result.stderr
