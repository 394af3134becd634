# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""TLS through wirepool's postgres proxy (issue 5), on both legs.

Client leg: certificates made at test time (tlscerts.py, the tls_certs fixture). Backend leg: the
sandbox PostgreSQL runs with TLS (WP_SANDBOX_CA) and has a role, WP_PG_TLSONLY_USER, that pg_hba
lets in over TLS only, so a login as that role through wirepool proves the backend leg is TLS.

psql and psycopg2 with sslmode=verify-full and channel_binding=require; plaintext refused under
client_tls require (28000); plaintext bytes behind an SSLRequest never interpreted; backend_tls
modes against the real server and a wrong CA; client certificates (verify-ca / verify-full);
key file permissions; certificate rotation by SIGHUP; cancel and pgbench over TLS; no secret in
wirepool's log."""

import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections import namedtuple

import psycopg2
import pytest

from tlscerts import backend_tls, client_cert, client_tls, key_files, sandbox_tls_env
from wphelpers import (
    Relay,
    Wirepool,
    assert_logs_hold_none,
    client_env,
    config_text,
    connect,
    key_material,
    leaked_secrets,
    parse_pgbench,
    pgbench_cmd,
    psql,
    read_until_closed,
    run_in_thread,
    scalar,
    wait_until_running,
)
from wpwire import (
    SSL_REQUEST_CODE,
    PgError,
    RawPg,
    startup_packet,
    try_login,
)

Role = namedtuple("Role", "name password")

TLS_REFUSED = "connections without TLS are refused by this proxy (client_tls mode require)"


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def sandbox_tls(env):
    """WP_SANDBOX_CA and the TLS-only role from the sandbox env (tools/sandbox)."""
    ca, user, password = sandbox_tls_env("WP_PG_TLSONLY_USER", "WP_PG_TLSONLY_PASSWORD")
    return {"ca": ca, "tlsonly": Role(user, password)}


@pytest.fixture
def tlsonly(sandbox_tls):
    return sandbox_tls["tlsonly"]


@pytest.fixture
def certs(tls_certs):
    return tls_certs


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request, env, tls_certs):
    """After every test: no password of the sandbox roles and no private key of the test
    certificates appears in any wirepool log the test wrote (tests that use other secrets
    check those themselves)."""
    yield
    assert_logs_hold_none(getattr(request.node, "_wirepools", []),
                          [env["WP_PG_SCRAM_PASSWORD"], env["WP_PG_MD5_PASSWORD"],
                           env["WP_PG_ADMIN_PASSWORD"],
                           os.environ.get("WP_PG_TLSONLY_PASSWORD", "")],
                          key_files(tls_certs))


def tls_connect(env, port, user, password, certs, sslmode="verify-full", root=None, **kw):
    """psycopg2 over TLS, checking the proxy's certificate against the test CA (or root)."""
    return connect(env, port, user, password, sslmode=sslmode,
                   sslrootcert=root or certs.ca_cert, **kw)


def backend_ssl(conn):
    """(ssl, version) of this session's backend connection, as PostgreSQL sees it."""
    with conn.cursor() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()


def stop(wp):
    """Stop a wirepool before the test ends (the fixture then finds it stopped on purpose)."""
    wp.stopped_on_purpose = True
    wp.stop()


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def client_context(root, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=root)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def raw_tls(env, port, ctx, timeout=10):
    """A RawPg speaking TLS after SSLRequest (the proxy's certificate checked by ctx)."""
    c = RawPg(env["WP_PG_HOST"], port, timeout=timeout)
    try:
        c.send(ssl_request())
        answer = c.read_byte()
        assert answer == b"S", f"SSLRequest answered {answer!r}"
        assert not c._buf, f"bytes behind 'S': {c._buf!r}"
        c.sock = ctx.wrap_socket(c.sock, server_hostname=env["WP_PG_HOST"])
        return c
    except BaseException:
        c.close()
        raise


def raw_tls_login(env, port, ctx, user, password):
    """Log in over TLS; (RawPg, None) or (None, PgError)."""
    c = raw_tls(env, port, ctx)
    try:
        c.login(user, password, env["WP_PG_DB"])
        return c, None
    except PgError as e:
        c.close()
        return None, e
    except BaseException:
        c.close()
        raise


def sasl_mechanisms(conn, user, database):
    """Send a startup packet on a RawPg and return the SASL mechanisms offered."""
    conn.send(startup_packet(user, database))
    kind, payload = conn.read_message()
    assert kind == b"R", (kind, payload)
    (code,) = struct.unpack("!I", payload[:4])
    assert code == 10, f"auth request {code}, not SASL"
    return [m.decode() for m in payload[4:].split(b"\x00") if m]




class NoTlsServer:
    """A 'PostgreSQL server' that answers every SSLRequest with 'N' and records what follows."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.after_n = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        self.lsock.settimeout(0.1)  # a closed listening socket does not wake accept()
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with s:
                s.settimeout(5)
                try:
                    first = s.recv(8)
                    if first == ssl_request():
                        s.sendall(b"N")
                    _, rest = read_until_closed(s, 5)
                    self.after_n.append(rest)
                except OSError:
                    pass

    def close(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.lsock.close()


# ---------------------------------------------------------------- 1. psql verify-full, both legs


def test_psql_verify_full_both_legs_tls(env, wirepool, config, certs, sandbox_tls, tlsonly):
    wp = wirepool(config([tlsonly], client_tls=client_tls(certs, "require"),
                         backend_tls=backend_tls(sandbox_tls, "verify-full")))
    conninfo = f"dbname={env['WP_PG_DB']} sslmode=verify-full sslrootcert={certs.ca_cert}"
    r = psql(env, wp.port(), tlsonly.name, tlsonly.password, db=conninfo,
             args=["-c", r"\conninfo",
                   "-c", "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
    lines = r.stdout.strip().splitlines()
    # Client leg: psql verified the proxy's certificate and says it speaks TLS.
    assert "SSL connection (protocol: TLSv1." in r.stdout, r.stdout
    # Backend leg: PostgreSQL sees this session's connection (wirepool's) as TLS.
    assert lines[-1] == f"{tlsonly.name}|t", r.stdout

    # The same proxy checked against another CA: psql refuses it (so the check above is real).
    bad = f"dbname={env['WP_PG_DB']} sslmode=verify-full sslrootcert={certs.wrong_ca_cert}"
    r = psql(env, wp.port(), tlsonly.name, tlsonly.password, "SELECT 1", db=bad, check=False)
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr


# ---------------------------------------------------------------- 2. channel binding


def test_channel_binding_require(env, wirepool, config, certs, role):
    """SCRAM-SHA-256-PLUS with tls-server-end-point on the client leg."""
    wp = wirepool(config([role], client_auth="scram-sha-256",
                         client_tls=client_tls(certs, "prefer")))
    # Over TLS the proxy offers SCRAM-SHA-256-PLUS; in plaintext it must not.
    c = raw_tls(env, wp.port(), client_context(certs.ca_cert))
    try:
        over_tls = sasl_mechanisms(c, role.name, env["WP_PG_DB"])
    finally:
        c.close()
    with RawPg(env["WP_PG_HOST"], wp.port()) as c:
        plain = sasl_mechanisms(c, role.name, env["WP_PG_DB"])
    assert "SCRAM-SHA-256-PLUS" in over_tls and "SCRAM-SHA-256" in over_tls, over_tls
    assert plain == ["SCRAM-SHA-256"], plain

    conninfo = (f"dbname={env['WP_PG_DB']} sslmode=verify-full sslrootcert={certs.ca_cert} "
                f"channel_binding=require")
    r = psql(env, wp.port(), role.name, role.password, "SELECT current_user", db=conninfo)
    assert r.stdout.strip() == role.name

    conn = tls_connect(env, wp.port(), role.name, role.password, certs,
                       channel_binding="require")
    try:
        assert scalar(conn, "SELECT current_user") == role.name
        assert conn.info.ssl_in_use
    finally:
        conn.close()

    # A wrong password with channel binding is still a plain 28P01.
    with pytest.raises(psycopg2.OperationalError) as ei:
        tls_connect(env, wp.port(), role.name, role.password + "-wrong", certs,
                    channel_binding="require").close()
    assert f'password authentication failed for user "{role.name}"' in str(ei.value)


# ---------------------------------------------------------------- 3. plaintext refused


def test_plaintext_refused_under_require(env, wirepool, config, certs, role):
    wp = wirepool(config([role], client_tls=client_tls(certs, "require")))
    port = wp.port()

    r = psql(env, port, role.name, role.password, "SELECT 1",
             db=f"dbname={env['WP_PG_DB']} sslmode=disable", check=False)
    assert r.returncode != 0, r.stdout
    assert TLS_REFUSED in r.stderr, r.stderr

    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, port, role.name, role.password, sslmode="disable").close()
    assert TLS_REFUSED in str(ei.value)

    # The exact error, before any password is asked for.
    conn, err = try_login(env["WP_PG_HOST"], port, role.name, role.password, env["WP_PG_DB"])
    if conn:
        conn.close()
    assert err is not None, "a plaintext login got through under client_tls require"
    assert err.sqlstate == "28000", err.fields
    assert err.fields.get("S") == "FATAL", err.fields
    assert "TLS" in err.message, err.fields
    assert err.phase == "auth"

    # TLS gets in.
    conn = tls_connect(env, port, role.name, role.password, certs, sslmode="require")
    try:
        assert conn.info.ssl_in_use and scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()
    assert wp.wait_log(r"error tls_required: connections without TLS are refused")


# ---------------------------------------------------------------- 4. plaintext after SSLRequest


def test_tls_handshake_counts_against_client_login_timeout(env, wirepool, config, certs, role):
    """A client that gets its 'S' and never starts the handshake is closed at
    client_login_timeout, like any client that does not finish logging in."""
    wp = wirepool(config([role], client_tls=client_tls(certs, "require"),
                         client_login_timeout="1s"))
    s = socket.create_connection((env["WP_PG_HOST"], wp.port()), timeout=10)
    try:
        s.sendall(ssl_request())
        assert s.recv(1) == b"S"
        started = time.monotonic()
        outcome, _ = read_until_closed(s, 8)
        took = time.monotonic() - started
    finally:
        s.close()
    assert outcome == "closed", "a stalled TLS handshake was never cut off"
    assert 0.5 < took < 4, took


@pytest.mark.parametrize("mode", ["prefer", "require"])
def test_plaintext_behind_ssl_request_never_interpreted(env, wirepool, config, certs, role, admin,
                                                        mode):
    wp = wirepool(config([role], client_tls=client_tls(certs, mode)))
    port = wp.port()
    other = tls_connect(env, port, role.name, role.password, certs)
    try:
        before = len(wp.log_text())
        # SSLRequest and a whole StartupMessage in one segment: what follows the request is
        # plaintext the proxy must never read as the client's.
        s = socket.create_connection((env["WP_PG_HOST"], port), timeout=5)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(ssl_request() + startup_packet(role.name, env["WP_PG_DB"]))
            outcome, data = read_until_closed(s, 5)
        finally:
            s.close()
        assert outcome == "closed", f"still open after 5 s, got {data!r}"
        assert data == b"S", f"expected exactly b'S' then a close, got {data!r}"
        assert wp.wait_log(r"protocol violation from 127\.0\.0\.1:\d+: "
                           r"received unencrypted data after SSL request", start=before), \
            wp.log_tail(20)

        # 'S', then a plaintext startup packet where the TLS hello belongs: no handshake, no
        # login; the reply (if any) is a TLS alert, never an authentication request.
        s = socket.create_connection((env["WP_PG_HOST"], port), timeout=5)
        try:
            s.sendall(ssl_request())
            assert s.recv(1) == b"S"
            s.sendall(startup_packet(role.name, env["WP_PG_DB"]))
            outcome, data = read_until_closed(s, 5)
        finally:
            s.close()
        assert outcome == "closed", f"still open after 5 s, got {data!r}"
        assert not data.startswith(b"R") and not data.startswith(b"E"), data
        assert data == b"" or data[:1] == b"\x15", f"not a TLS alert: {data!r}"

        # Nobody logged in as the role meanwhile but `other`, which keeps working.
        assert scalar(other, "SELECT 41 + 1") == 42
        n = scalar(admin, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                   (role.name,))
        assert n == 1, f"{n} backend connections for {role.name}, expected only other's"
    finally:
        other.close()
    conn = tls_connect(env, port, role.name, role.password, certs)
    try:
        assert scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()


# ---------------------------------------------------------------- 5. backend leg modes


def _login_error(env, port, user, password):
    conn, err = try_login(env["WP_PG_HOST"], port, user, password, env["WP_PG_DB"])
    if conn:
        conn.terminate()
    return err


def test_backend_verify_full_and_require_for_tls_only_role(env, wirepool, config, sandbox_tls,
                                                           tlsonly):
    # verify-full against the sandbox CA (server_name defaults to the backend host 127.0.0.1),
    # with server_name localhost (the certificate's DNS name) too, and require.
    for bt in (backend_tls(sandbox_tls, "verify-full"),
               backend_tls(sandbox_tls, "verify-full", server_name="localhost"),
               backend_tls(sandbox_tls, "verify-ca"),
               backend_tls(sandbox_tls, "require")):
        wp = wirepool(config([tlsonly], backend_tls=bt))
        conn = connect(env, wp.port(), tlsonly.name, tlsonly.password, sslmode="disable")
        try:
            assert scalar(conn, "SELECT current_user") == tlsonly.name, bt
            ssl_on, version = backend_ssl(conn)
            assert ssl_on is True and version in ("TLSv1.2", "TLSv1.3"), (bt, version)
        finally:
            conn.close()
        stop(wp)


@pytest.mark.parametrize("mode", ["disable", "verify-full"])
def test_backend_login_error_reaches_client(env, wirepool, config, sandbox_tls, role, mode):
    """A server that refuses a login (an unknown database) sends its FATAL error and closes:
    the client gets that very error, over TLS as in plaintext, not a lost connection."""
    wp = wirepool(config([role], backend_tls=backend_tls(sandbox_tls, mode)))
    db = "wp_nosuchdb_" + os.urandom(3).hex()
    for _ in range(3):
        conn, err = try_login(env["WP_PG_HOST"], wp.port(), role.name, role.password, db)
        if conn:
            conn.close()
        assert err is not None, "logged in to a database that does not exist"
        assert err.sqlstate == "3D000", err.fields
        assert err.message == f'database "{db}" does not exist', err.fields


def test_backend_wrong_ca_refused(env, wirepool, config, certs, tlsonly, admin):
    wp = wirepool(config([tlsonly], server_connect_timeout="5s",
                         backend_tls={"mode": "verify-full", "ca_file": certs.wrong_ca_cert}))
    t0 = time.monotonic()
    err = _login_error(env, wp.port(), tlsonly.name, tlsonly.password)
    took = time.monotonic() - t0
    assert err is not None, "logged in although the server's certificate is not the CA's"
    assert took < 5, f"the refusal took {took:.1f}s"
    assert err.sqlstate == "08006", err.fields
    msg = err.message.lower()
    assert "server" in msg and "certificate verify failed" in msg, err.fields
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, wp.port(), tlsonly.name, tlsonly.password, sslmode="disable").close()
    assert "certificate verify failed" in str(ei.value), str(ei.value)
    line = wp.wait_log(r"(?m)^.*\b(warn|warning)\b.*certificate verify failed.*$")
    assert line, wp.log_tail(30)
    # No session of the role was ever opened on the server.
    assert scalar(admin, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                  (tlsonly.name,)) == 0


def test_backend_server_name_mismatch_refused(env, wirepool, config, sandbox_tls, tlsonly):
    wp = wirepool(config([tlsonly], backend_tls=backend_tls(
        sandbox_tls, "verify-full", server_name="not-the-server.example")))
    err = _login_error(env, wp.port(), tlsonly.name, tlsonly.password)
    assert err is not None and err.sqlstate == "08006", err and err.fields
    assert wp.wait_log(r"(warn|warning).*certificate verify failed"), wp.log_tail(30)


def test_backend_disable_fails_for_tls_only_role(env, wirepool, config, tlsonly, role):
    """The server really insists on TLS for that role: without it the login fails, with
    the server's own pg_hba error."""
    wp = wirepool(config([tlsonly, role], backend_tls={"mode": "disable"}))
    err = _login_error(env, wp.port(), tlsonly.name, tlsonly.password)
    assert err is not None, "the TLS-only role logged in without TLS"
    assert err.sqlstate == "28000", err.fields
    assert "no encryption" in err.message, err.fields
    # An ordinary role still gets in, in plaintext.
    conn = connect(env, wp.port(), role.name, role.password, sslmode="disable")
    try:
        assert backend_ssl(conn)[0] is False
    finally:
        conn.close()


def test_backend_allow_tries_plaintext_then_tls(env, wirepool, config, tlsonly, role):
    """allow, as libpq's: plaintext first; the TLS-only role's refused plaintext login is tried
    again through TLS, while an ordinary role stays in plaintext."""
    cfg = config([tlsonly, role], backend_tls={"mode": "allow"})
    cfg["log_level"] = "debug"
    wp = wirepool(cfg)
    conn = connect(env, wp.port(), tlsonly.name, tlsonly.password, sslmode="disable")
    try:
        assert backend_ssl(conn)[0] is True
    finally:
        conn.close()
    assert wp.wait_log(r"plaintext login refused \(28000 .*\): trying TLS"), wp.log_tail(30)
    conn = connect(env, wp.port(), role.name, role.password, sslmode="disable")
    try:
        assert backend_ssl(conn)[0] is False
    finally:
        conn.close()


def test_backend_require_against_server_without_tls(env, wirepool, config, tlsonly):
    fake = NoTlsServer()
    try:
        cfg = config([tlsonly], backends=[f"127.0.0.1:{fake.port}"],
                     backend_tls={"mode": "require"})
        wp = wirepool(cfg)
        err = _login_error(env, wp.port(), tlsonly.name, tlsonly.password)
        assert err is not None and err.sqlstate == "08006", err and err.fields
        assert "does not offer TLS" in err.message, err.fields
        assert wp.wait_log(r"does not offer TLS"), wp.log_tail(30)
        stop(wp)
    finally:
        fake.close()
    # After 'N' the proxy sent nothing (it never fell back to plaintext).
    assert fake.after_n and all(rest == b"" for rest in fake.after_n), fake.after_n


# ---------------------------------------------------------------- 6. client certificates


def test_client_verify_ca(env, wirepool, config, certs, role, tmp_path):
    wp = wirepool(config([role], client_tls=client_tls(certs, "verify-ca", ca_file=certs.ca_cert)))
    port = wp.port()
    # A certificate of the CA, whatever its CN (here wp_client, not the user): in.
    conn = tls_connect(env, port, role.name, role.password, certs,
                       sslcert=certs.client_cert, sslkey=certs.client_key)
    try:
        assert scalar(conn, "SELECT current_user") == role.name
    finally:
        conn.close()
    # No certificate: refused by the TLS handshake (libpq: "SSL error: ... certificate
    # required"), before any password.
    with pytest.raises(psycopg2.OperationalError) as ei:
        tls_connect(env, port, role.name, role.password, certs,
                    sslcert=str(tmp_path / "none.crt"), sslkey=str(tmp_path / "none.key")).close()
    print("no client certificate:", ei.value)
    assert "SSL error" in str(ei.value) and "certificate required" in str(ei.value), ei.value
    # A certificate of another CA: refused by the handshake too.
    with pytest.raises(psycopg2.OperationalError) as ei:
        tls_connect(env, port, role.name, role.password, certs,
                    sslcert=certs.wrong_client_cert, sslkey=certs.wrong_client_key).close()
    print("client certificate of another CA:", ei.value)
    assert "SSL error" in str(ei.value), ei.value
    assert "password authentication failed" not in str(ei.value)
    # Plaintext: refused too.
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(env, port, role.name, role.password, sslmode="disable").close()
    assert "connections without TLS are refused" in str(ei.value)
    # The password is still checked under verify-ca.
    with pytest.raises(psycopg2.OperationalError) as ei:
        tls_connect(env, port, role.name, "wrong", certs,
                    sslcert=certs.client_cert, sslkey=certs.client_key).close()
    assert "password authentication failed" in str(ei.value)


def test_client_verify_full_checks_cn(env, wirepool, config, certs, make_role, tmp_path):
    alice, bob = make_role(), make_role()
    wp = wirepool(config([alice, bob], client_tls=client_tls(certs, "verify-full",
                                                             ca_file=certs.ca_cert)))
    port = wp.port()
    alice_cert, alice_key = client_cert(certs, alice.name)
    conn = tls_connect(env, port, alice.name, alice.password, certs,
                       sslcert=alice_cert, sslkey=alice_key)
    try:
        assert scalar(conn, "SELECT current_user") == alice.name
    finally:
        conn.close()

    # Alice's certificate for Bob's login: refused, whatever the password.
    with pytest.raises(psycopg2.OperationalError) as ei:
        tls_connect(env, port, bob.name, bob.password, certs,
                    sslcert=alice_cert, sslkey=alice_key).close()
    assert f'certificate authentication failed for user "{bob.name}"' in str(ei.value)
    c, err = raw_tls_login(env, port, client_context(certs.ca_cert, alice_cert, alice_key),
                           bob.name, bob.password)
    if c:
        c.close()
    assert err is not None, "Bob logged in with Alice's certificate"
    assert err.sqlstate in ("28000", "28P01"), err.fields
    assert err.message == f'certificate authentication failed for user "{bob.name}"', err.fields
    assert wp.wait_log(rf'client certificate of 127\.0\.0\.1:\d+ is not for user "{bob.name}"')

    # No certificate, or one of another CA with the right CN: refused.
    with pytest.raises(psycopg2.OperationalError):
        tls_connect(env, port, alice.name, alice.password, certs,
                    sslcert=str(tmp_path / "none.crt"), sslkey=str(tmp_path / "none.key")).close()
    wrong_cert, wrong_key = _wrong_ca_client(certs, alice.name, tmp_path)
    with pytest.raises(psycopg2.OperationalError):
        tls_connect(env, port, alice.name, alice.password, certs,
                    sslcert=wrong_cert, sslkey=wrong_key).close()
    # Bob with his own certificate: in.
    bob_cert, bob_key = client_cert(certs, bob.name)
    conn = tls_connect(env, port, bob.name, bob.password, certs, sslcert=bob_cert, sslkey=bob_key)
    try:
        assert scalar(conn, "SELECT current_user") == bob.name
    finally:
        conn.close()


def _wrong_ca_client(certs, cn, directory):
    """A client certificate with this CN signed by the wrong CA."""
    from tlscerts import _issue  # the module's own issuer; the wrong CA is in certs

    return _issue(directory, f"wrong-client-{cn}", certs.wrong_ca_cert, certs.wrong_ca_key, cn,
                  "client", certs.days)


# ---------------------------------------------------------------- 7. key file permissions


def test_key_readable_by_others_refused_at_start(env, config, certs, role, tmp_path):
    key = tmp_path / "open.key"
    shutil.copyfile(certs.server_key, key)
    os.chmod(key, 0o644)
    cfg_path = tmp_path / "open-key.yaml"
    cfg_path.write_text(config_text(config([role], client_tls=client_tls(
        certs, "require", key=str(key)))))
    wp = Wirepool(env["WIREPOOL_BIN"], cfg_path, tmp_path / "open-key.log")
    try:
        code = wp.wait(timeout=10)
    except subprocess.TimeoutExpired:
        wp.stop()
        pytest.fail(f"wirepool started with a key file of mode 0644:\n{wp.log_tail(20)}")
    wp.stop()
    log = wp.log_text()
    assert code != 0, log
    assert "chmod 600" in log and str(key) in log, log
    assert "listening on" not in log, log
    for secret in key_material(certs.server_key):
        assert secret not in log


# ---------------------------------------------------------------- 8. rotation by SIGHUP


def test_sighup_rotates_certificates(env, wirepool, config, certs, role, tmp_path):
    cert, key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copyfile(certs.server_cert, cert)
    shutil.copyfile(certs.server_key, key)
    os.chmod(key, 0o600)
    wp = wirepool(config([role], client_tls=client_tls(certs, "require", cert=str(cert),
                                                       key=str(key))))
    port = wp.port()

    def new_conn(root):
        return tls_connect(env, port, role.name, role.password, certs, root=root)

    old = new_conn(certs.ca_cert)
    try:
        assert scalar(old, "SELECT 1") == 1
        # Another CA's certificate for the same names, swapped in on disk.
        shutil.copyfile(certs.wrong_server_cert, cert)
        shutil.copyfile(certs.wrong_server_key, key)
        os.chmod(key, 0o600)
        before = len(wp.log_text())
        wp.send_signal(signal.SIGHUP)
        assert wp.wait_log(r"reload done", start=before), wp.log_tail(20)
        assert "TLS settings kept as they were" not in wp.log_text()[before:], wp.log_tail(20)

        conn = new_conn(certs.wrong_ca_cert)
        try:
            assert scalar(conn, "SELECT current_user") == role.name
        finally:
            conn.close()
        with pytest.raises(psycopg2.OperationalError) as ei:
            new_conn(certs.ca_cert).close()
        assert "certificate verify failed" in str(ei.value)
        # The connection made before the reload goes on, still over TLS.
        assert scalar(old, "SELECT 2") == 2 and old.info.ssl_in_use

        # A broken certificate file: the reload keeps the last good context.
        cert.write_text("-----BEGIN CERTIFICATE-----\nthis is not a certificate\n"
                        "-----END CERTIFICATE-----\n")
        before = len(wp.log_text())
        wp.send_signal(signal.SIGHUP)
        line = wp.wait_log(r"(?m)^.*TLS settings kept as they were.*$", start=before)
        assert line, wp.log_tail(20)
        assert "error" in line.group(0).lower(), line.group(0)
        assert wp.wait_log(r"reload done", start=before), wp.log_tail(20)
        conn = new_conn(certs.wrong_ca_cert)
        try:
            assert scalar(conn, "SELECT 3") == 3
        finally:
            conn.close()
        assert scalar(old, "SELECT 4") == 4
        assert wp.poll() is None
    finally:
        old.close()


# ---------------------------------------------------------------- 9. cancel over TLS


def test_cancel_over_tls_backend(env, wirepool, config, certs, sandbox_tls, tlsonly, admin):
    """conn.cancel() through wirepool when the backend leg is TLS: the side connection that
    carries the CancelRequest opens with an SSLRequest too (seen by a relay in front of
    PostgreSQL) and the statement stops at once."""
    relay = Relay((env["WP_PG_HOST"], int(env["WP_PG_PORT"])))
    try:
        wp = wirepool(config([tlsonly], backends=[f"127.0.0.1:{relay.port}"],
                             client_tls=client_tls(certs, "require"),
                             backend_tls=backend_tls(sandbox_tls, "require")))
        conn = tls_connect(env, wp.port(), tlsonly.name, tlsonly.password, certs)
        try:
            backend_pid = scalar(conn, "SELECT pg_backend_pid()")
            t, box = run_in_thread(lambda: conn.cursor().execute("SELECT pg_sleep(30)"))
            wait_until_running(admin, "pg_sleep", pid=backend_pid)
            opened = len(relay.connections())
            log_before = len(wp.log_text())
            sent = time.monotonic()
            conn.cancel()
            t.join(timeout=35)
            took = time.monotonic() - sent
            assert not t.is_alive(), "pg_sleep still running 35 s after cancel"
            err = box.get("error")
            assert isinstance(err, psycopg2.extensions.QueryCanceledError), box
            assert took < 2.0, f"the cancel took {took:.2f}s"
            assert scalar(conn, "SELECT 5") == 5
        finally:
            conn.close()
        conns = relay.connections()
        assert len(conns) > opened, "no side connection reached the server for the cancel"
        assert all(c == ssl_request() for c in conns), \
            f"a connection to the server did not start with SSLRequest: {conns}"
        assert "cancel on a side connection" not in wp.log_text()[log_before:], wp.log_tail(20)
    finally:
        relay.close()


# ---------------------------------------------------------------- 10. pgbench


def test_pgbench_over_tls(env, wirepool, config, certs, sandbox_tls, role):
    wp = wirepool(config([role], max_backend_connections=8,
                         client_tls=client_tls(certs, "require"),
                         backend_tls=backend_tls(sandbox_tls, "verify-full")))
    e = client_env(role.password)
    e["PGSSLMODE"] = "require"

    def run(*args, timeout=60):
        return subprocess.run(pgbench_cmd(env, wp.port(), role.name, *args), env=e,
                              capture_output=True, text=True, timeout=timeout)

    init = run("-i", "-s", "1", "-q")
    assert init.returncode == 0, f"pgbench -i failed:\n{init.stdout}\n{init.stderr}"
    res = parse_pgbench(run("-n", "-S", "-T", "3", "-c", "4"))
    res.assert_clean()
    # -C: a new TLS connection (and login) per transaction.
    res = parse_pgbench(run("-n", "-S", "-T", "2", "-c", "2", "-C"))
    res.assert_clean()
    print(f"\npgbench -C over TLS: {res.processed} transactions in 2 s")
    # Without TLS, pgbench does not get in.
    e["PGSSLMODE"] = "disable"
    r = run("-n", "-S", "-t", "1", "-c", "1")
    assert r.returncode != 0 and TLS_REFUSED in r.stderr, r.stderr


# ---------------------------------------------------------------- 11. secrets


def test_no_secret_in_log(env, wirepool, config, certs, sandbox_tls, make_role, tmp_path):
    """Logins that succeed and fail, over TLS and not, a certificate refused, a reload: at the
    most verbose log level no password, wrong password or private key reaches the log."""
    role = make_role()
    md5_role = make_role(md5=True)
    wrong = "wrong_" + os.urandom(8).hex()
    cfg = config([role, md5_role], client_tls=client_tls(certs, "verify-ca",
                                                          ca_file=certs.ca_cert),
                 backend_tls=backend_tls(sandbox_tls, "verify-full"))
    cfg["log_level"] = "trace"
    wp = wirepool(cfg)
    port = wp.port()
    for r in (role, md5_role):
        conn = tls_connect(env, port, r.name, r.password, certs,
                           sslcert=certs.client_cert, sslkey=certs.client_key)
        try:
            assert scalar(conn, "SELECT current_user") == r.name
        finally:
            conn.close()
        with pytest.raises(psycopg2.OperationalError):
            tls_connect(env, port, r.name, wrong, certs,
                        sslcert=certs.client_cert, sslkey=certs.client_key).close()
    with pytest.raises(psycopg2.OperationalError):
        connect(env, port, role.name, role.password, sslmode="disable").close()
    with pytest.raises(psycopg2.OperationalError):
        tls_connect(env, port, role.name, role.password, certs,
                    sslcert=certs.wrong_client_cert, sslkey=certs.wrong_client_key).close()
    before = len(wp.log_text())
    wp.send_signal(signal.SIGHUP)
    assert wp.wait_log(r"reload done", start=before)
    stop(wp)

    log = wp.log_text()
    assert "TLS" in log or "tls" in log  # the log is not empty of what happened
    secrets = [role.password, md5_role.password, wrong]
    for key in (certs.server_key, certs.client_key, certs.wrong_client_key):
        secrets += key_material(key)
    found = leaked_secrets(log, secrets)
    assert not found, f"wirepool's log holds secrets: {found}"


# ---------------------------------------------------------------- 12. direct TLS (PostgreSQL 17)
# PostgreSQL 17's sslnegotiation=direct: the client opens with its TLS hello, no SSLRequest, and
# must name the protocol by ALPN ("postgresql"). No PostgreSQL 17 client (libpq 17, psql 17) is
# installable here, so these tests are the test of that path: Python's ssl module plays the
# client, handshaking at once with ALPN, then speaking protocol 3.0 inside TLS.

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402

from wpwire import message, parse_error_fields  # noqa: E402

PG_ALPN = "postgresql"
TLS_HANDSHAKE_RECORD = b"\x16"


def direct_tls(env, port, ctx, timeout=10):
    """A RawPg whose first bytes are a TLS hello (no SSLRequest); the handshake is done when
    this returns (ssl errors and resets propagate)."""
    c = RawPg(env["WP_PG_HOST"], port, timeout=timeout)
    try:
        c.sock = ctx.wrap_socket(c.sock, server_hostname=env["WP_PG_HOST"])
        return c
    except BaseException:
        c.close()
        raise


def direct_context(certs, alpn=(PG_ALPN,)):
    ctx = client_context(certs.ca_cert)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_hello(alpn=(PG_ALPN,)):
    """The bytes of a TLS ClientHello, made by Python's ssl over memory BIOs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == TLS_HANDSHAKE_RECORD, hello[:8]
    return hello




class ScramPlusClient:
    """SCRAM-SHA-256-PLUS with tls-server-end-point (RFC 5929): the binding data is the SHA-256 of
    the server's certificate (the test CA signs with SHA-256)."""

    GS2 = b"p=tls-server-end-point,,"

    def __init__(self, password, server_cert_der):
        self.password = password.encode()
        self.binding = hashlib.sha256(server_cert_der).digest()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"
        self.auth_message = None
        self.salted = None

    def client_first(self):
        return self.GS2 + self.first_bare.encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        assert attrs["r"].startswith(self.nonce), server_first
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password, base64.b64decode(attrs["s"]),
                                          int(attrs["i"]))
        client_key = hmac.new(self.salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        cbind = base64.b64encode(self.GS2 + self.binding).decode()
        without_proof = f"c={cbind},r={attrs['r']}"
        self.auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def server_signature_ok(self, data):
        attrs = dict(item.split("=", 1) for item in data.decode().split(","))
        server_key = hmac.new(self.salted, b"Server Key", hashlib.sha256).digest()
        expected = hmac.new(server_key, self.auth_message, hashlib.sha256).digest()
        return "v" in attrs and hmac.compare_digest(base64.b64decode(attrs["v"]), expected)


def scram_plus_login(c, user, password, database, cert_der):
    """SCRAM-SHA-256-PLUS over the RawPg's TLS; returns when ReadyForQuery arrives, raises PgError
    on an ErrorResponse."""
    mechanisms = sasl_mechanisms(c, user, database)
    assert "SCRAM-SHA-256-PLUS" in mechanisms, mechanisms
    scram = ScramPlusClient(password, cert_der)
    first = scram.client_first()
    c.send(message(b"p", b"SCRAM-SHA-256-PLUS\x00" + struct.pack("!i", len(first)) + first))
    while True:
        kind, payload = c.read_message()
        if kind == b"E":
            raise PgError(parse_error_fields(payload), "auth")
        if kind == b"R":
            (code,) = struct.unpack("!I", payload[:4])
            if code == 11:
                c.send(message(b"p", scram.client_final(payload[4:])))
            elif code == 12:
                assert scram.server_signature_ok(payload[4:]), "bad SCRAM server signature"
            else:
                assert code == 0, f"unexpected auth request {code}"
        elif kind == b"Z":
            return


@pytest.mark.parametrize("mode", ["prefer", "require"])
def test_direct_tls_with_alpn(env, wirepool, config, certs, role, mode):
    wp = wirepool(config([role], client_auth="scram-sha-256", client_tls=client_tls(certs, mode)))
    port = wp.port()

    # Handshake at once, then a StartupMessage inside TLS: an AuthenticationSASL that offers
    # channel binding (so the proxy knows this is TLS, and under require does not refuse it).
    c = direct_tls(env, port, direct_context(certs))
    try:
        assert c.sock.selected_alpn_protocol() == PG_ALPN
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
        mechanisms = sasl_mechanisms(c, role.name, env["WP_PG_DB"])
    finally:
        c.close()
    assert "SCRAM-SHA-256-PLUS" in mechanisms and "SCRAM-SHA-256" in mechanisms, mechanisms

    # The whole login with channel binding to the certificate this connection saw, and a query.
    c = direct_tls(env, port, direct_context(certs))
    try:
        scram_plus_login(c, role.name, role.password, env["WP_PG_DB"],
                         c.sock.getpeercert(binary_form=True))
        assert c.query("SELECT current_user") == [(role.name,)]
        assert c.query("SELECT 6 * 7") == [("42",)]
    finally:
        c.terminate()

    # Binding data of another certificate: refused (the binding is really checked).
    c = direct_tls(env, port, direct_context(certs))
    try:
        with open(certs.wrong_server_cert) as f:
            other_der = ssl.PEM_cert_to_DER_cert(f.read())
        with pytest.raises(PgError) as ei:
            scram_plus_login(c, role.name, role.password, env["WP_PG_DB"], other_der)
        print("wrong channel binding:", ei.value)
    finally:
        c.close()
    # A wrong password over direct TLS: the ordinary 28P01.
    c = direct_tls(env, port, direct_context(certs))
    try:
        with pytest.raises(PgError) as ei:
            c.login(role.name, role.password + "-wrong", env["WP_PG_DB"])
        assert ei.value.sqlstate == "28P01", ei.value.fields
    finally:
        c.close()


@pytest.mark.parametrize("alpn", [None, ("http/1.1",)], ids=["no-alpn", "other-alpn"])
def test_direct_tls_without_postgresql_alpn_refused(env, wirepool, config, certs, role, alpn):
    wp = wirepool(config([role], client_tls=client_tls(certs, "prefer")))
    port = wp.port()
    before = len(wp.log_text())
    try:
        c = direct_tls(env, port, direct_context(certs, alpn=alpn), timeout=5)
    except (ssl.SSLError, ConnectionError) as e:
        # The handshake itself may fail (a fatal alert for a protocol that is not ours).
        print("handshake refused:", e)
        outcome, data = "closed", b""
    else:
        try:
            try:
                c.send(startup_packet(role.name, env["WP_PG_DB"]))
            except (ssl.SSLError, ConnectionError):
                pass
            outcome, data = read_until_closed(c.sock, 5)
        finally:
            c.close()
    assert outcome == "closed", f"still open after 5 s, got {data!r}"
    assert not data.startswith(b"R"), f"asked for a password: {data!r}"
    assert data == b"", f"the proxy answered inside TLS: {data!r}"
    if alpn is None:
        assert wp.wait_log(r"direct TLS from 127\.0\.0\.1:\d+ without ALPN", start=before), \
            wp.log_tail(20)
    # The proxy goes on: an SSLRequest client and a direct one with ALPN get in.
    conn = tls_connect(env, port, role.name, role.password, certs)
    try:
        assert scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()
    c = direct_tls(env, port, direct_context(certs))
    try:
        c.login(role.name, role.password, env["WP_PG_DB"])
        assert c.query("SELECT 2") == [("2",)]
    finally:
        c.terminate()
    assert wp.poll() is None


@pytest.mark.parametrize("tls", ["absent", "disable"])
def test_direct_tls_refused_when_client_tls_is_off(env, wirepool, config, certs, role, tls):
    extra = {} if tls == "absent" else {"client_tls": client_tls(certs, "disable")}
    wp = wirepool(config([role], **extra))
    port = wp.port()
    other = connect(env, port, role.name, role.password, sslmode="disable")
    try:
        # A TLS hello where a startup packet belongs: closed, never a ServerHello.
        s = socket.create_connection((env["WP_PG_HOST"], port), timeout=5)
        try:
            s.sendall(client_hello())
            outcome, data = read_until_closed(s, 5)
        finally:
            s.close()
        assert outcome == "closed", f"still open after 5 s, got {data!r}"
        assert not data.startswith(TLS_HANDSHAKE_RECORD), f"a TLS answer: {data[:16]!r}"
        # Read as a startup packet of absurd length, as PostgreSQL before 17 does: at most a
        # plaintext protocol violation.
        assert data == b"" or (data[:1] == b"E" and b"C08P01\x00" in data), data

        # Python's ssl client sees a failed handshake.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            direct_tls(env, port, direct_context(certs), timeout=5).close()

        # Nothing else is disturbed.
        assert scalar(other, "SELECT 41 + 1") == 42
        conn = connect(env, port, role.name, role.password, sslmode="disable")
        try:
            assert scalar(conn, "SELECT current_user") == role.name
        finally:
            conn.close()
        assert wp.poll() is None
    finally:
        other.close()
