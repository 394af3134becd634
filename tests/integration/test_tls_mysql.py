# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""TLS through wirepool's mysql proxy (issue 5), on both legs.

Client leg: certificates made at test time (tlscerts.py, the tls_certs fixture). Backend leg: the
sandbox MariaDB runs with TLS (WP_SANDBOX_CA) and has a user, WP_MY_TLSONLY_USER, created
REQUIRE SSL, so a login as that user through wirepool proves the backend leg is TLS.

The mariadb CLI with --ssl-verify-server-cert; --skip-ssl refused under client_tls require
(3159); node mysql2 and PyMySQL with ssl; caching_sha2_password full authentication with the
password in cleartext inside TLS (a raw client, and PyMySQL); plaintext behind the SSL request
never read; backend_tls modes against the real server and a wrong CA; KILL QUERY whose side
connection logs in over TLS; no secret in wirepool's log."""

import hashlib
import json
import os
import ssl
import struct
import subprocess
import time
from collections import namedtuple

import pymysql
import pytest

from mysqlhelpers import (
    CLIENT_CONNECT_WITH_DB,
    CLIENT_LONG_PASSWORD,
    CLIENT_MULTI_RESULTS,
    CLIENT_PLUGIN_AUTH,
    CLIENT_PROTOCOL_41,
    CLIENT_SECURE_CONNECTION,
    CLIENT_SSL,
    CLIENT_TRANSACTIONS,
    ER_ACCESS_DENIED_ERROR,
    ER_QUERY_INTERRUPTED,
    NODE_DIR,
    UTF8MB4_GENERAL_CI,
    RawMy,
    handshake_response,
    my_client_env,
    my_connect,
    my_errmsg,
    my_errno,
    my_rows,
    my_scalar,
    packet,
    parse_err,
    wait_for_query,
)
from tlscerts import backend_tls, client_tls, key_files, sandbox_tls_env
from wphelpers import Relay, assert_logs_hold_none, read_until_closed, run_in_thread

Account = namedtuple("Account", "name password")

ER_SECURE_TRANSPORT_REQUIRED = 3159
TLS_REFUSED = "connections without TLS are refused by this proxy (client_tls mode require)"
MAX_PACKET = 16 * 1024 * 1024
BASE_CAPS = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
             | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH)


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def sandbox_tls(my_env):
    ca, user, password = sandbox_tls_env("WP_MY_TLSONLY_USER", "WP_MY_TLSONLY_PASSWORD")
    return {"ca": ca, "tlsonly": Account(user, password)}


@pytest.fixture
def mytls(sandbox_tls):
    return sandbox_tls["tlsonly"]


@pytest.fixture
def native(my_env):
    return Account(my_env["WP_MY_NATIVE_USER"], my_env["WP_MY_NATIVE_PASSWORD"])


@pytest.fixture
def certs(tls_certs):
    return tls_certs


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request, my_env, tls_certs):
    """After every test: no password of the sandbox accounts and no private key of the test
    certificates appears in any wirepool log the test wrote."""
    yield
    assert_logs_hold_none(getattr(request.node, "_wirepools", []),
                          [my_env["WP_MY_NATIVE_PASSWORD"], my_env["WP_MY_ED25519_PASSWORD"],
                           my_env["WP_MY_ADMIN_PASSWORD"],
                           os.environ.get("WP_MY_TLSONLY_PASSWORD", "")],
                          key_files(tls_certs))


def start(my_wirepool, my_config, users, **kw):
    wp = my_wirepool(my_config(list(users), **kw))
    return wp, wp.port("my")


def stop(wp):
    """Stop a wirepool before the test ends (the fixture then finds it stopped on purpose)."""
    wp.stopped_on_purpose = True
    wp.stop()


def cli(port, account, sql, *, db=None, tls_args=(), check=True, timeout=30):
    """The mariadb CLI against wirepool with the given TLS arguments (none: --skip-ssl)."""
    cmd = ["mariadb", "--no-defaults", "--protocol=TCP", "-h127.0.0.1", f"-P{port}",
           f"-u{account.name}", f"-p{account.password}", "--connect-timeout=10",
           *(tls_args or ["--skip-ssl"])]
    if db:
        cmd.append(db)
    cmd += ["-e", sql]
    r = subprocess.run(cmd, env=my_client_env(), capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, (f"mariadb failed ({r.returncode}):\nstdout:\n{r.stdout}\n"
                                   f"stderr:\n{r.stderr}")
    return r


def verify_args(ca):
    return ["--ssl", f"--ssl-ca={ca}", "--ssl-verify-server-cert"]


def tls_connect(port, account, ca, database, **kw):
    """PyMySQL over TLS, checking wirepool's certificate (and 127.0.0.1) against ca."""
    return my_connect("127.0.0.1", port, account.name, account.password, database=database,
                      ssl={"ca": ca, "check_hostname": True}, **kw)


def ssl_cipher(conn):
    """The backend connection's cipher, as MariaDB reports it for this session ('' if none)."""
    rows = my_rows(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    return rows[0][1] if rows else None


def ssl_request(caps):
    """The 32-byte SSLRequest: a HandshakeResponse41 cut after its fixed part."""
    return struct.pack("<IIB", caps | CLIENT_SSL, MAX_PACKET, UTF8MB4_GENERAL_CI) + b"\x00" * 23


def handshake_response_sha2(user, token, database, caps):
    body = struct.pack("<IIB", caps, MAX_PACKET, UTF8MB4_GENERAL_CI) + b"\x00" * 23
    body += user.encode() + b"\x00" + bytes([len(token)]) + token
    if database:
        body += database.encode() + b"\x00"
    return body + b"caching_sha2_password\x00"


def sha2_token(password, scramble):
    """caching_sha2_password's fast-path answer: SHA256(p) XOR SHA256(SHA256(SHA256(p)), nonce)."""
    p1 = hashlib.sha256(password.encode()).digest()
    p2 = hashlib.sha256(hashlib.sha256(p1).digest() + scramble[:20]).digest()
    return bytes(a ^ b for a, b in zip(p1, p2))


def raw_tls(port, ca, database, caps=BASE_CAPS):
    """A RawMy that read the handshake, sent the SSL request (seq 1) and speaks TLS now."""
    c = RawMy("127.0.0.1", port)
    try:
        hs = c.read_handshake()
        assert hs["capabilities"] & CLIENT_SSL, "the proxy does not offer CLIENT_SSL"
        if database:
            caps |= CLIENT_CONNECT_WITH_DB
        c.send_packet(ssl_request(caps), seq=1)
        assert not c._buf, f"bytes behind the handshake: {c._buf!r}"
        c.sock = ssl.create_default_context(cafile=ca).wrap_socket(
            c.sock, server_hostname="127.0.0.1")
        c.caps = caps | CLIENT_SSL
        return c
    except BaseException:
        c.close()
        raise


def read_rows(c):
    """After a COM_QUERY (no CLIENT_DEPRECATE_EOF): the raw row payloads; raises on ERR."""
    _, payload = c.read_packet()
    if payload[:1] == b"\xff":
        raise parse_err(payload)
    columns = payload[0]
    for _ in range(columns):
        c.read_packet()
    _, eof = c.read_packet()
    assert eof[:1] == b"\xfe", eof
    rows = []
    while True:
        _, payload = c.read_packet()
        if payload[:1] == b"\xfe" and len(payload) < 9:
            return rows
        if payload[:1] == b"\xff":
            raise parse_err(payload)
        rows.append(payload)


def full_auth_over_tls(port, ca, account, cleartext, database):
    """caching_sha2_password over TLS with a wrong scramble answer, so that the proxy asks for
    full authentication (0x01 0x04); then the cleartext password + NUL. Returns (c, final
    payload)."""
    c = raw_tls(port, ca, database)
    try:
        wrong = os.urandom(32)
        c.send_packet(handshake_response_sha2(account.name, wrong, database, c.caps), seq=2)
        seq, payload = c.read_packet()
        assert payload == b"\x01\x04", f"expected 'perform full authentication', got {payload!r}"
        assert seq == 3, seq
        c.send_packet(cleartext.encode() + b"\x00", seq=4)
        seq, payload = c.read_packet()
        assert seq == 5, (seq, payload[:40])
        return c, payload
    except BaseException:
        c.close()
        raise




NODE_SCRIPT = r"""
'use strict';
const mysql = require('mysql2/promise');
const p = JSON.parse(process.argv[2]);
const watchdog = setTimeout(() => { console.log(JSON.stringify({ok: false, error: 'timeout'}));
                                     process.exit(2); }, 30000);
(async () => {
  const opts = {host: p.host, port: p.port, user: p.user, password: p.password,
                database: p.database, connectTimeout: 10000};
  if (p.ca) opts.ssl = {ca: require('fs').readFileSync(p.ca, 'utf8'), rejectUnauthorized: true};
  const conn = await mysql.createConnection(opts);
  const stream = conn.connection.stream;
  const out = {ok: true, encrypted: !!stream.encrypted,
               protocol: stream.getProtocol ? stream.getProtocol() : null,
               authorized: stream.authorized === undefined ? null : stream.authorized};
  let [rows] = await conn.query("SELECT CURRENT_USER() AS u, 40 + 2 AS n");
  out.user = rows[0].u; out.n = Number(rows[0].n);
  [rows] = await conn.execute("SELECT ? AS t", ['héllo ✓']);
  out.text = rows[0].t;
  [rows] = await conn.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
  out.backendCipher = rows.length ? rows[0].Value : null;
  await conn.end();
  clearTimeout(watchdog);
  console.log(JSON.stringify(out));
})().catch((e) => {
  clearTimeout(watchdog);
  console.log(JSON.stringify({ok: false, errno: e.errno === undefined ? null : e.errno,
                              code: e.code || null, message: e.sqlMessage || e.message}));
  process.exit(1);
});
"""


def run_node_mysql2(tmp_path, params):
    """A mysql2 client (the npm package in tests/node) with the params; returns (rc, obj, r)."""
    modules = NODE_DIR / "node_modules"
    assert (modules / "mysql2").is_dir(), (
        f"{modules}/mysql2 is missing: run tools/setup (npm install in tests/node)")
    script = tmp_path / "mysql2_tls.js"
    script.write_text(NODE_SCRIPT)
    env = dict(os.environ, NODE_PATH=str(modules))
    r = subprocess.run(["node", str(script), json.dumps(params)], capture_output=True,
                       text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    obj = None
    if lines:
        try:
            obj = json.loads(lines[-1])
        except ValueError:
            pass
    return r.returncode, obj, r


# ---------------------------------------------------------------- 1. the mariadb CLI, both legs


def test_cli_verify_server_cert_both_legs(my_env, my_wirepool, my_config, certs, sandbox_tls,
                                          mytls):
    wp, port = start(my_wirepool, my_config, [mytls], client_tls=client_tls(certs, "require"),
                     backend_tls=backend_tls(sandbox_tls, "verify-full"))
    r = cli(port, mytls, r"SHOW SESSION STATUS LIKE 'Ssl_cipher'; SELECT CURRENT_USER(); \s",
            db=my_env["WP_MY_DB"], tls_args=verify_args(certs.ca_cert))
    # Client leg: the CLI verified wirepool's certificate and says it uses a cipher.
    assert "SSL:\t\t\tCipher in use is " in r.stdout, r.stdout
    # Backend leg: MariaDB reports a cipher for wirepool's connection, and the REQUIRE SSL
    # user got in.
    lines = r.stdout.splitlines()
    cipher = [ln for ln in lines if ln.startswith("Ssl_cipher\t")]
    assert cipher and cipher[0].split("\t")[1].strip(), r.stdout
    assert f"{mytls.name}@127.0.0.1" in r.stdout, r.stdout

    # Against another CA the CLI refuses wirepool's certificate (so the check above is real).
    r = cli(port, mytls, "SELECT 1", tls_args=verify_args(certs.wrong_ca_cert), check=False)
    assert r.returncode != 0 and "TLS/SSL error" in r.stderr, r.stderr


# ---------------------------------------------------------------- 2. --skip-ssl refused


def test_skip_ssl_refused_under_require(my_env, my_wirepool, my_config, certs, native):
    wp, port = start(my_wirepool, my_config, [native], client_tls=client_tls(certs, "require"))
    r = cli(port, native, "SELECT 1", check=False)
    assert r.returncode != 0, r.stdout
    assert f"ERROR {ER_SECURE_TRANSPORT_REQUIRED} (HY000): {TLS_REFUSED}" in r.stderr, r.stderr

    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect("127.0.0.1", port, native.name, native.password).close()
    assert my_errno(ei.value) == ER_SECURE_TRANSPORT_REQUIRED, repr(ei.value)
    assert my_errmsg(ei.value) == TLS_REFUSED

    # With TLS the same CLI gets in.
    r = cli(port, native, "SELECT 7", tls_args=verify_args(certs.ca_cert))
    assert r.stdout.strip().splitlines()[-1] == "7", r.stdout
    assert wp.wait_log(r"error tls_required: connections without TLS are refused")


# ---------------------------------------------------------------- 3. drivers with ssl


@pytest.mark.parametrize("client_auth", ["caching_sha2_password", "mysql_native_password"])
def test_node_mysql2_with_ssl(my_env, my_wirepool, my_config, certs, sandbox_tls, mytls,
                              tmp_path, client_auth):
    wp, port = start(my_wirepool, my_config, [mytls], client_auth=client_auth,
                     client_tls=client_tls(certs, "require"),
                     backend_tls=backend_tls(sandbox_tls, "verify-full"))
    params = {"host": "127.0.0.1", "port": port, "user": mytls.name,
              "password": mytls.password, "database": my_env["WP_MY_DB"], "ca": certs.ca_cert}
    rc, obj, r = run_node_mysql2(tmp_path, params)
    assert rc == 0 and obj and obj.get("ok"), (rc, obj, r.stderr[-2000:])
    assert obj["encrypted"] is True and obj["authorized"] is True, obj
    assert obj["protocol"] in ("TLSv1.2", "TLSv1.3"), obj
    assert obj["user"] == f"{mytls.name}@127.0.0.1" and obj["n"] == 42, obj
    assert obj["text"] == "héllo ✓", obj
    assert obj["backendCipher"], obj

    # Without ssl mysql2 is refused (3159); with the wrong CA it refuses the proxy.
    rc, obj, r = run_node_mysql2(tmp_path, dict(params, ca=None))
    assert rc == 1 and obj and obj["errno"] == ER_SECURE_TRANSPORT_REQUIRED, (obj, r.stderr)
    rc, obj, r = run_node_mysql2(tmp_path, dict(params, ca=certs.wrong_ca_cert))
    assert rc == 1 and obj and not obj["ok"], (obj, r.stderr)
    assert "certificate" in (obj.get("message") or ""), obj


@pytest.mark.parametrize("client_auth", ["caching_sha2_password", "mysql_native_password"])
def test_pymysql_with_ssl(my_env, my_wirepool, my_config, certs, sandbox_tls, mytls,
                          client_auth):
    """PyMySQL with ssl={'ca': ...}; with caching_sha2 the first login takes the full path
    (over TLS PyMySQL sends the password in cleartext), later ones may be fast."""
    wp, port = start(my_wirepool, my_config, [mytls], client_auth=client_auth,
                     client_tls=client_tls(certs, "require"),
                     backend_tls=backend_tls(sandbox_tls, "verify-full"))
    for _ in range(2):
        conn = tls_connect(port, mytls, certs.ca_cert, my_env["WP_MY_DB"])
        try:
            assert conn._auth_plugin_name == client_auth
            assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")
            assert my_scalar(conn, "SELECT CURRENT_USER()") == f"{mytls.name}@127.0.0.1"
            assert ssl_cipher(conn)
        finally:
            conn.close()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect("127.0.0.1", port, mytls.name, "wrong", database=my_env["WP_MY_DB"],
                   ssl={"ca": certs.ca_cert}).close()
    assert my_errno(ei.value) == ER_ACCESS_DENIED_ERROR, repr(ei.value)
    # Wirepool's certificate checked against another CA: PyMySQL refuses it.
    with pytest.raises(pymysql.err.OperationalError) as ei:
        tls_connect(port, mytls, certs.wrong_ca_cert, my_env["WP_MY_DB"]).close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(ei.value), repr(ei.value)


# ---------------------------------------------------------------- 4. caching_sha2 full auth


def test_caching_sha2_full_auth_cleartext_inside_tls(my_env, my_wirepool, my_config, certs,
                                                     native):
    wp, port = start(my_wirepool, my_config, [native], client_auth="caching_sha2_password",
                     client_tls=client_tls(certs, "prefer"))
    db = my_env["WP_MY_DB"]
    hs_plugin = None
    c, final = full_auth_over_tls(port, certs.ca_cert, native, native.password, db)
    try:
        assert final[:1] == b"\x00", f"expected OK, got {final[:60]!r}"
        c.send_packet(b"\x03SELECT CURRENT_USER(), 'tls-ok'", seq=0)
        user = f"{native.name}@127.0.0.1".encode()
        rows = read_rows(c)
        assert rows == [bytes([len(user)]) + user + b"\x06tls-ok"], rows
        hs_plugin = c.handshake["auth_plugin"]
    finally:
        c.close()
    assert hs_plugin == "caching_sha2_password", hs_plugin

    # A wrong cleartext password: 1045, the usual message.
    c, final = full_auth_over_tls(port, certs.ca_cert, native, "wrong-" + native.password, db)
    try:
        assert final[:1] == b"\xff", f"expected ERR, got {final[:60]!r}"
        err = parse_err(final)
        assert err.errno == ER_ACCESS_DENIED_ERROR, err
        assert err.message == f"Access denied for user '{native.name}'@'127.0.0.1' " \
                              f"(using password: YES)", err
    finally:
        c.close()

    # The fast path over TLS: the right scramble answer is accepted at once (0x01 0x03, OK).
    c = raw_tls(port, certs.ca_cert, db)
    try:
        token = sha2_token(native.password, c.handshake["scramble"])
        c.send_packet(handshake_response_sha2(native.name, token, db, c.caps), seq=2)
        _, payload = c.read_packet()
        if payload == b"\x01\x03":
            _, payload = c.read_packet()
        assert payload[:1] == b"\x00", f"fast path: expected OK, got {payload[:60]!r}"
    finally:
        c.close()

    # In plaintext the proxy never takes a cleartext password.
    c = RawMy("127.0.0.1", port)
    try:
        c.read_handshake()
        c.send_packet(handshake_response_sha2(native.name, os.urandom(32), db,
                                              BASE_CAPS | CLIENT_CONNECT_WITH_DB), seq=1)
        _, payload = c.read_packet()
        assert payload == b"\x01\x04", payload
        c.send_packet(native.password.encode() + b"\x00")
        _, payload = c.read_packet()
        assert payload[:1] == b"\xff", f"a cleartext password was taken in plaintext: {payload!r}"
    finally:
        c.close()

    # PyMySQL with ssl and caching_sha2 (full path first, fast path after): both work.
    for _ in range(2):
        conn = tls_connect(port, native, certs.ca_cert, db)
        try:
            assert conn._auth_plugin_name == "caching_sha2_password"
            assert my_scalar(conn, "SELECT 1") == 1
        finally:
            conn.close()


# ---------------------------------------------------------------- plaintext behind the SSL request


def test_plaintext_behind_ssl_request_never_read(my_env, my_wirepool, my_config, my_admin, certs,
                                                 native):
    wp, port = start(my_wirepool, my_config, [native], client_tls=client_tls(certs, "prefer"))
    other = tls_connect(port, native, certs.ca_cert, my_env["WP_MY_DB"])
    try:
        backends_before = my_scalar(
            my_admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
            (native.name,))
        # The SSL request and, right behind it in plaintext, a whole HandshakeResponse41 with
        # the right password: it belongs to TLS and must never log anyone in.
        c = RawMy("127.0.0.1", port)
        try:
            hs = c.read_handshake()
            caps = BASE_CAPS | CLIENT_CONNECT_WITH_DB
            c.send(packet(1, ssl_request(caps))
                   + packet(2, handshake_response(native.name, native.password, hs["scramble"],
                                                  my_env["WP_MY_DB"], caps=caps)))
            outcome, data = read_until_closed(c.sock, 5)
        finally:
            c.close()
        assert outcome == "closed", f"still open after 5 s, got {data[:60]!r}"
        # Nothing but (perhaps) a TLS alert: no OK, no ERR, no auth switch in plaintext.
        assert data == b"" or data[:1] == b"\x15", f"not a TLS alert: {data[:60]!r}"
        assert my_scalar(other, "SELECT 42") == 42
        backends_after = my_scalar(
            my_admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
            (native.name,))
        assert backends_after == backends_before
    finally:
        other.close()


# ---------------------------------------------------------------- 5. backend leg modes


def _login_error(port, account, database):
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect("127.0.0.1", port, account.name, account.password, database=database).close()
    return ei.value


def test_backend_require_and_verify_full_for_tls_only_user(my_env, my_wirepool, my_config,
                                                           sandbox_tls, mytls):
    for bt in (backend_tls(sandbox_tls, "verify-full"),
               backend_tls(sandbox_tls, "verify-full", server_name="localhost"),
               backend_tls(sandbox_tls, "require")):
        wp, port = start(my_wirepool, my_config, [mytls], backend_tls=bt)
        conn = my_connect("127.0.0.1", port, mytls.name, mytls.password,
                          database=my_env["WP_MY_DB"])
        try:
            assert my_scalar(conn, "SELECT CURRENT_USER()") == f"{mytls.name}@127.0.0.1", bt
            assert ssl_cipher(conn), bt
        finally:
            conn.close()
        stop(wp)


@pytest.mark.parametrize("mode", ["disable", "verify-full"])
def test_backend_login_error_reaches_client(my_env, my_wirepool, my_config, sandbox_tls, native,
                                            mode):
    """MariaDB refusing a login (an unknown database) sends its ERR and closes: the client gets
    that very error, over TLS as in plaintext."""
    wp, port = start(my_wirepool, my_config, [native], backend_tls=backend_tls(sandbox_tls, mode))
    db = "wp_nosuchdb_" + os.urandom(3).hex()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect(my_env["WP_MY_HOST"], my_env["WP_MY_PORT"], native.name, native.password,
                   database=db).close()
    direct = ei.value
    assert my_errno(direct) in (1044, 1049), repr(direct)  # no privilege on it / unknown
    for _ in range(3):
        err = _login_error(port, native, db)
        assert (my_errno(err), my_errmsg(err)) == (my_errno(direct), my_errmsg(direct)), \
            (repr(err), repr(direct))


def test_backend_wrong_ca_refused(my_env, my_wirepool, my_config, certs, mytls):
    wp, port = start(my_wirepool, my_config, [mytls], server_connect_timeout="5s",
                     backend_tls={"mode": "verify-full", "ca_file": certs.wrong_ca_cert})
    t0 = time.monotonic()
    err = _login_error(port, mytls, my_env["WP_MY_DB"])
    assert time.monotonic() - t0 < 5
    msg = my_errmsg(err)
    print("client error:", my_errno(err), msg)
    assert my_errno(err) not in (ER_ACCESS_DENIED_ERROR, None), repr(err)
    assert "server" in msg.lower() and "certificate verify failed" in msg, msg
    assert wp.wait_log(r"(?m)^.*\b(warn|warning)\b.*certificate verify failed.*$"), \
        wp.log_tail(30)


def test_backend_disable_fails_for_tls_only_user(my_env, my_wirepool, my_config, mytls, native):
    """MariaDB really insists on TLS for that user: without it the login fails."""
    wp, port = start(my_wirepool, my_config, [mytls, native], backend_tls={"mode": "disable"})
    err = _login_error(port, mytls, my_env["WP_MY_DB"])
    assert my_errno(err) == ER_ACCESS_DENIED_ERROR, repr(err)
    # The native user still gets in, with no TLS to the server.
    conn = my_connect("127.0.0.1", port, native.name, native.password,
                      database=my_env["WP_MY_DB"])
    try:
        assert ssl_cipher(conn) == ""
    finally:
        conn.close()


def test_backend_allow_tries_plaintext_then_tls(my_env, my_wirepool, my_config, mytls, native):
    """allow: the REQUIRE SSL user's refused plaintext login is tried again through TLS; the
    native user stays in plaintext."""
    wp, port = start(my_wirepool, my_config, [mytls, native], backend_tls={"mode": "allow"})
    for account, encrypted in ((mytls, True), (native, False)):
        conn = my_connect("127.0.0.1", port, account.name, account.password,
                          database=my_env["WP_MY_DB"])
        try:
            assert bool(ssl_cipher(conn)) == encrypted, account.name
        finally:
            conn.close()


# ---------------------------------------------------------------- 6. KILL QUERY over TLS


def test_kill_query_side_connection_uses_tls(my_env, my_wirepool, my_config, my_admin,
                                             sandbox_tls, mytls):
    """KILL QUERY through wirepool for a REQUIRE SSL user with backend_tls require: the side
    connection that carries the KILL logs in to MariaDB over TLS (a relay in front of MariaDB
    sees an SSL request open every connection) and the statement stops at once."""
    relay = Relay((my_env["WP_MY_HOST"], int(my_env["WP_MY_PORT"])))
    try:
        wp, port = start(my_wirepool, my_config, [mytls], backends=[f"127.0.0.1:{relay.port}"],
                         backend_tls=backend_tls(sandbox_tls, "require"))
        a = my_connect("127.0.0.1", port, mytls.name, mytls.password,
                       database=my_env["WP_MY_DB"], read_timeout=60)
        b = my_connect("127.0.0.1", port, mytls.name, mytls.password,
                       database=my_env["WP_MY_DB"])
        try:
            a_id = a.thread_id()

            def sleep():
                with a.cursor() as cur:
                    cur.execute("SELECT SLEEP(30)")
                    return cur.fetchall()

            t, box = run_in_thread(sleep)
            assert wait_for_query(my_admin, "SELECT SLEEP(30)", timeout=5), \
                "SELECT SLEEP(30) never showed in the processlist"
            opened = len(relay.connections())
            log_before = len(wp.log_text())
            t0 = time.monotonic()
            with b.cursor() as cur:
                cur.execute(f"KILL QUERY {a_id}")
            t.join(timeout=10)
            took = time.monotonic() - t0
            assert not t.is_alive(), "SELECT SLEEP(30) still running 10 s after KILL QUERY"
            err = box.get("error")
            if err is not None:
                assert my_errno(err) == ER_QUERY_INTERRUPTED, repr(err)
            else:
                # MariaDB answers a killed SLEEP() with 1 rather than an error, as directly.
                assert box.get("result") == ((1,),), box
            assert took < 2.0, f"KILL QUERY took {took:.2f}s"
            assert my_scalar(a, "SELECT 42") == 42
        finally:
            a.close()
            b.close()
        conns = relay.connections()
        assert len(conns) > opened, "no side connection reached MariaDB for the KILL"
        for first in conns:
            length = first[0] | first[1] << 8 | first[2] << 16
            (caps,) = struct.unpack("<I", first[4:8])
            assert length == 32 and first[3] == 1 and caps & CLIENT_SSL, \
                f"a connection to MariaDB did not open with an SSL request: {first!r}"
        assert "side connection" not in wp.log_text()[log_before:], wp.log_tail(20)
    finally:
        relay.close()


# ---------------------------------------------------------------- secrets


def test_no_secret_in_log(my_env, my_wirepool, my_config, certs, sandbox_tls, mytls, native):
    """Full and fast caching_sha2 logins over TLS, wrong passwords, plaintext refused, a
    certificate refused: at the most verbose level no password or key reaches the log."""
    wrong = "wrong_" + os.urandom(8).hex()
    cfg = my_config([mytls, native], client_auth="caching_sha2_password",
                    client_tls=client_tls(certs, "require"),
                    backend_tls=backend_tls(sandbox_tls, "verify-full"))
    cfg["log_level"] = "trace"
    wp = my_wirepool(cfg)
    port = wp.port("my")
    db = my_env["WP_MY_DB"]
    for account in (mytls, native):
        c, final = full_auth_over_tls(port, certs.ca_cert, account, account.password, db)
        c.close()
        assert final[:1] == b"\x00", final[:60]
        c, final = full_auth_over_tls(port, certs.ca_cert, account, wrong, db)
        c.close()
        assert final[:1] == b"\xff", final[:60]
        conn = tls_connect(port, account, certs.ca_cert, db)
        try:
            assert my_scalar(conn, "SELECT 1") == 1
        finally:
            conn.close()
    with pytest.raises(pymysql.err.OperationalError):
        my_connect("127.0.0.1", port, native.name, native.password, database=db).close()
    stop(wp)
    assert_logs_hold_none([wp], [mytls.password, native.password, wrong],
                          (certs.server_key, certs.client_key))
