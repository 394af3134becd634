# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Helpers for the MySQL/MariaDB integration tests: the WP_MY_* environment
contract, wirepool configs with a `protocol: mysql` proxy named 'my', the
mariadb CLI, sysbench and node runners, PyMySQL connections, a processlist
sampler, and a tiny raw-socket MySQL client for the bad-input tests.

Development aid: with WP_MY_TEST_DIRECT=1 the `my_proxy` fixture does not
start wirepool but points the tests at MariaDB itself, so the helpers and the
"same as direct" expectations can be checked without a MySQL codec. Tests of
proxy-only behaviour (pool limits, login timeout, auth conversion, id
mapping) skip in that mode, saying why; without it nothing is ever skipped.
"""

import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pymysql

from wphelpers import default_workers

REPO = Path(__file__).resolve().parents[2]
NODE_DIR = REPO / "tests" / "node"

MY_ENV_VARS = (
    "WP_MY_HOST",
    "WP_MY_PORT",
    "WP_MY_DB",
    "WP_MY_NATIVE_USER",
    "WP_MY_NATIVE_PASSWORD",
    "WP_MY_ED25519_USER",
    "WP_MY_ED25519_PASSWORD",
    "WP_MY_ADMIN_USER",
    "WP_MY_ADMIN_PASSWORD",
)

HOW_TO_RUN_MY = (
    "the MySQL integration tests need the sandbox MariaDB described by the WP_MY_* "
    "environment variables: run them via tools/test, or by hand with "
    '`tools/sandbox start && eval "$(tools/sandbox env)" && '
    "/usr/bin/python3 -m pytest -q tests/integration -k mysql`"
)

DIRECT_MODE_VAR = "WP_MY_TEST_DIRECT"

# MySQL error numbers the tests look for.
ER_CON_COUNT_ERROR = 1040        # too many connections (and wirepool's borrow timeout)
ER_ACCESS_DENIED_ERROR = 1045
ER_PARSE_ERROR = 1064
ER_NO_SUCH_THREAD = 1094
ER_KILL_DENIED_ERROR = 1095      # MariaDB's answer for another user's thread (direct only)
ER_NOT_SUPPORTED_YET = 1235      # what wirepool answers for what it does not do
ER_NO_SUCH_TABLE = 1146
ER_UNKNOWN_STMT_HANDLER = 1243
ER_QUERY_INTERRUPTED = 1317
CR_SERVER_GONE_ERROR = 2006
CR_SERVER_LOST = 2013

# Capability flags used by the raw client.
CLIENT_LONG_PASSWORD = 1 << 0
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_SESSION_TRACK = 1 << 23

UTF8MB4_GENERAL_CI = 45


def read_my_env():
    """The WP_MY_* variables (plus WP_MY_SOCKET and WIREPOOL_BIN) as a dict.
    Returns (env, missing)."""
    env = {k: os.environ.get(k) for k in MY_ENV_VARS}
    missing = [k for k, v in env.items() if not v]
    env["WP_MY_SOCKET"] = os.environ.get("WP_MY_SOCKET")
    env["WIREPOOL_BIN"] = os.environ.get("WIREPOOL_BIN") or str(
        REPO / "build" / "bin" / "wirepool"
    )
    return env, missing


def direct_mode():
    return os.environ.get(DIRECT_MODE_VAR, "") not in ("", "0")


def my_backend_addr(env):
    return f"{env['WP_MY_HOST']}:{env['WP_MY_PORT']}"


# ---------------------------------------------------------------- config


def make_my_config(env, users, shutdown_timeout="5s", workers=None, **proxy_overrides):
    """A wirepool config dict with one mysql proxy named 'my' in front of the
    sandbox MariaDB. users: list of (name, password) or of dicts. A proxy
    override of None removes that key."""
    user_entries = []
    for u in users:
        if isinstance(u, dict):
            user_entries.append(u)
        else:
            name, password = u
            user_entries.append({"name": name, "password": password})
    proxy = {
        "name": "my",
        "protocol": "mysql",
        "listen": "127.0.0.1:0",
        "pool_mode": "session",
        "backends": [my_backend_addr(env)],
        "max_backend_connections": 20,
        "max_client_connections": 10000,
        "connection_borrow_timeout": "5s",
        "client_login_timeout": "15s",
        "client_auth": "mysql_native_password",
    }
    for k, v in proxy_overrides.items():
        if v is None:
            proxy.pop(k, None)
        else:
            proxy[k] = v
    return {
        "workers": default_workers() if workers is None else workers,
        "shutdown_timeout": shutdown_timeout,
        "users": user_entries,
        "proxies": [proxy],
    }


class Target:
    """Where a test's clients connect: wirepool's mysql proxy, or (in direct
    mode) MariaDB itself. .proxied says which."""

    def __init__(self, host, port, proxied, wp=None):
        self.host = host
        self.port = int(port)
        self.proxied = proxied
        self.wp = wp

    def __repr__(self):
        kind = "wirepool" if self.proxied else "direct MariaDB"
        return f"<{kind} {self.host}:{self.port}>"


# ---------------------------------------------------------------- PyMySQL


def my_connect(host, port, user, password, database="", **kw):
    """PyMySQL connection (autocommit unless told otherwise) with timeouts on
    everything. database=None connects without a schema; "" means WP_MY_DB
    is not known here, so callers pass it explicitly."""
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("read_timeout", 60)
    kw.setdefault("write_timeout", 60)
    kw.setdefault("autocommit", True)
    kw.setdefault("charset", "utf8mb4")
    return pymysql.connect(
        host=host, port=int(port), user=user, password=password,
        database=database or None, **kw,
    )


def connect_target(env, target, user=None, password=None, database="", **kw):
    """Through the target, as the native user unless told otherwise."""
    return my_connect(
        target.host, target.port,
        user or env["WP_MY_NATIVE_USER"],
        password if password is not None else env["WP_MY_NATIVE_PASSWORD"],
        database=env["WP_MY_DB"] if database == "" else database,
        **kw,
    )


def connect_my_direct(env, user=None, password=None, database="", **kw):
    """Direct to MariaDB over TCP, as the admin unless told otherwise."""
    return my_connect(
        env["WP_MY_HOST"], env["WP_MY_PORT"],
        user or env["WP_MY_ADMIN_USER"],
        password if password is not None else env["WP_MY_ADMIN_PASSWORD"],
        database=env["WP_MY_DB"] if database == "" else database,
        **kw,
    )


def my_scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        row = cur.fetchone()
        return None if row is None else row[0]


def my_rows(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def my_errno(exc):
    """The MySQL error number of a PyMySQL exception, or None."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


def my_errmsg(exc):
    args = getattr(exc, "args", ())
    return args[1] if len(args) > 1 else str(exc)


ACCESS_DENIED_RE = re.compile(
    r"^Access denied for user '(?P<user>[^']*)'@'(?P<host>[^']*)' "
    r"\(using password: (?P<pw>YES|NO)\)$"
)


# ---------------------------------------------------------------- processlist


def processlist_ids(admin_conn, user):
    """MariaDB thread ids of user's connections (admin_conn's own excluded)."""
    with admin_conn.cursor() as cur:
        cur.execute(
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE USER = %s AND ID <> CONNECTION_ID()",
            (user,),
        )
        return sorted(int(r[0]) for r in cur.fetchall())


class ProcesslistSampler:
    """Samples the MariaDB connections of one user (information_schema
    .PROCESSLIST) every `interval` seconds on its own direct admin connection."""

    def __init__(self, env, user, interval=0.05):
        self.env = env
        self.user = user
        self.interval = interval
        self.samples = []
        self.ids_seen = set()
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            conn = connect_my_direct(self.env, database=None, read_timeout=10)
            try:
                while not self._stop.is_set():
                    ids = processlist_ids(conn, self.user)
                    self.samples.append(len(ids))
                    self.ids_seen.update(ids)
                    self._stop.wait(self.interval)
            finally:
                conn.close()
        except Exception as e:  # reported by stop()
            self.error = e

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "processlist sampler did not stop"
        if self.error:
            raise self.error

    @property
    def max(self):
        return max(self.samples) if self.samples else 0


def wait_for_query(admin_conn, info_prefix, timeout=5.0):
    """Wait until a statement starting with info_prefix runs on MariaDB;
    returns its processlist ID (the backend thread), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with admin_conn.cursor() as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST "
                "WHERE INFO LIKE %s AND ID <> CONNECTION_ID()",
                (info_prefix.replace("%", r"\%") + "%",),
            )
            row = cur.fetchone()
        if row:
            return int(row[0])
        time.sleep(0.05)
    return None


# ---------------------------------------------------------------- mariadb CLI


def my_client_env():
    e = dict(os.environ)
    for k in ("MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT", "MYSQL_PWD",
              "MYSQL_HOME", "MARIADB_HOME", "MYSQL_HISTFILE"):
        e.pop(k, None)
    e["MYSQL_HISTFILE"] = "/dev/null"
    return e


def mariadb_cli(host, port, user, password, sql=None, *, db=None, args=(), timeout=60,
                check=True, input=None, batch=True):
    """Run `mariadb --no-defaults --skip-ssl -h HOST -P PORT -u USER -pPASSWORD
    [ARGS] [DB] [-e SQL]` (with --batch --skip-column-names unless batch=False).
    Returns CompletedProcess (text). check=True asserts exit code 0."""
    cmd = [
        "mariadb", "--no-defaults", "--skip-ssl", "--protocol=TCP",
        f"-h{host}", f"-P{port}", f"-u{user}", f"-p{password}",
        "--connect-timeout=10",
    ]
    if batch:
        cmd += ["--batch", "--skip-column-names"]
    cmd += list(args)
    if db:
        cmd.append(db)
    if sql is not None:
        cmd += ["-e", sql]
    r = subprocess.run(cmd, env=my_client_env(), input=input, capture_output=True,
                       text=True, timeout=timeout)
    if check:
        shown = [("-p***" if a.startswith("-p") and not a.startswith("--") else a) for a in cmd]
        assert r.returncode == 0, (
            f"mariadb failed ({r.returncode}): {shown}\nstdout:\n{r.stdout[-3000:]}\n"
            f"stderr:\n{r.stderr[-3000:]}"
        )
    return r


def mariadb_admin(host, port, user, password, *args, timeout=30):
    cmd = ["mariadb-admin", "--no-defaults", "--skip-ssl", "--protocol=TCP",
           f"-h{host}", f"-P{port}", f"-u{user}", f"-p{password}",
           "--connect-timeout=10", *args]
    return subprocess.run(cmd, env=my_client_env(), capture_output=True, text=True,
                          timeout=timeout)


# ---------------------------------------------------------------- sysbench

# sysbench's own default list, spelled out: InnoDB deadlocks (1213), lock wait
# timeouts (1205) and 1020 are retried. They happen with 16 threads on 2 x 1000
# rows even directly against MariaDB (about 2% of transactions); any other error
# makes sysbench print FATAL and exit non-zero.
SYSBENCH_RETRIED_ERRORS = "1213,1205,1020"


def sysbench_cmd(env, host, port, user, password, command, *args,
                 tables=2, table_size=1000):
    return [
        "sysbench", "oltp_read_write", "--db-driver=mysql",
        f"--mysql-host={host}", f"--mysql-port={port}",
        f"--mysql-user={user}", f"--mysql-password={password}",
        f"--mysql-db={env['WP_MY_DB']}", "--mysql-ssl=off",
        f"--tables={tables}", f"--table-size={table_size}",
        f"--mysql-ignore-errors={SYSBENCH_RETRIED_ERRORS}",
        *[str(a) for a in args], command,
    ]


def sysbench(env, host, port, user, password, command, *args, timeout=120, **kw):
    cmd = sysbench_cmd(env, host, port, user, password, command, *args, **kw)
    return subprocess.run(cmd, env=my_client_env(), capture_output=True, text=True,
                          timeout=timeout)


class SysbenchResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        out = stdout + "\n" + stderr
        self.errors = {}  # "errors" / "ignored errors" -> count
        for m in re.finditer(r"^\s*((?:ignored )?errors):\s*(\d+)", out, re.M):
            self.errors[m.group(1)] = int(m.group(2))
        m = re.search(r"^\s*transactions:\s*(\d+)", out, re.M)
        self.transactions = int(m.group(1)) if m else None
        m = re.search(r"^\s*reconnects:\s*(\d+)", out, re.M)
        self.reconnects = int(m.group(1)) if m else None
        self.fatal = [ln for ln in out.splitlines() if "FATAL" in ln or "error" in ln.lower()
                      and "errors:" not in ln]

    def describe(self):
        return (
            f"sysbench exit {self.returncode}, transactions={self.transactions}, "
            f"errors={self.errors}, reconnects={self.reconnects}\n"
            f"stdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )

    def assert_clean(self):
        """Exit 0, transactions done, no error but the retried deadlocks."""
        assert self.returncode == 0, self.describe()
        assert self.transactions is not None and self.transactions > 0, self.describe()
        assert "ignored errors" in self.errors, self.describe()
        assert self.errors.get("errors", 0) == 0, self.describe()
        assert not self.fatal, self.describe()
        assert self.reconnects == 0, self.describe()
        # Only deadlocks/lock waits can be "ignored" (see SYSBENCH_RETRIED_ERRORS);
        # directly they stay near 2% of transactions. Far more means the proxy
        # is serialising or mixing up sessions.
        assert self.errors["ignored errors"] <= max(20, self.transactions // 10), self.describe()


def parse_sysbench(completed):
    return SysbenchResult(completed.returncode, completed.stdout, completed.stderr)


# ---------------------------------------------------------------- node (mysql2, pg)


def run_node(script, params, timeout=60, module="mysql2"):
    """Run `node tests/node/<script> '<params as JSON>'`, a script that uses the npm package
    `module`. The scripts print one JSON object on their last stdout line. Returns
    (returncode, obj, completed)."""
    path = NODE_DIR / script
    assert path.is_file(), f"{path} is missing"
    assert (NODE_DIR / "node_modules" / module).is_dir(), (
        f"{NODE_DIR}/node_modules/{module} is missing: run tools/setup (npm install in tests/node)"
    )
    r = subprocess.run(["node", str(path), json.dumps(params)], cwd=str(NODE_DIR),
                       capture_output=True, text=True, timeout=timeout)
    obj = None
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if lines:
        try:
            obj = json.loads(lines[-1])
        except ValueError:
            obj = None
    return r.returncode, obj, r


# ---------------------------------------------------------------- raw protocol


class MyProtocolError(Exception):
    pass


class MyErr(Exception):
    """An ERR packet: .errno, .sqlstate, .message."""

    def __init__(self, errno, sqlstate, message):
        self.errno = errno
        self.sqlstate = sqlstate
        self.message = message
        super().__init__(f"ERROR {errno} ({sqlstate}): {message}")


def packet(seq, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def parse_err(payload):
    """ERR packet payload (starting with 0xff) -> MyErr."""
    if len(payload) < 3 or payload[0] != 0xFF:
        raise MyProtocolError(f"not an ERR packet: {payload[:16]!r}")
    (errno,) = struct.unpack("<H", payload[1:3])
    rest = payload[3:]
    sqlstate = None
    if rest[:1] == b"#":
        sqlstate, rest = rest[1:6].decode("ascii", "replace"), rest[6:]
    return MyErr(errno, sqlstate, rest.decode("utf-8", "replace"))


def parse_handshake(payload):
    """Handshake v10 -> dict(server_version, connection_id, capabilities,
    scramble, auth_plugin)."""
    if not payload or payload[0] != 10:
        raise MyProtocolError(f"not a Handshake v10: {payload[:16]!r}")
    end = payload.index(b"\x00", 1)
    version = payload[1:end].decode("utf-8", "replace")
    pos = end + 1
    (conn_id,) = struct.unpack("<I", payload[pos:pos + 4])
    pos += 4
    scramble1 = payload[pos:pos + 8]
    pos += 9  # + filler
    (cap_lo,) = struct.unpack("<H", payload[pos:pos + 2])
    pos += 2
    caps = cap_lo
    scramble2 = b""
    plugin = None
    if len(payload) > pos:
        pos += 1 + 2  # charset, status
        (cap_hi,) = struct.unpack("<H", payload[pos:pos + 2])
        pos += 2
        caps |= cap_hi << 16
        auth_len = payload[pos]
        pos += 1 + 10  # reserved (MariaDB: 6 filler + 4 extended capability bytes)
        if caps & CLIENT_SECURE_CONNECTION:
            n = max(13, auth_len - 8)
            scramble2 = payload[pos:pos + n].rstrip(b"\x00")
            pos += n
        if caps & CLIENT_PLUGIN_AUTH:
            end = payload.find(b"\x00", pos)
            plugin = payload[pos:end if end >= 0 else len(payload)].decode("ascii", "replace")
    return {
        "server_version": version,
        "connection_id": conn_id,
        "capabilities": caps,
        "scramble": scramble1 + scramble2[:12],
        "auth_plugin": plugin,
    }


def native_token(password, scramble):
    if not password:
        return b""
    p1 = hashlib.sha1(password.encode()).digest()
    p2 = hashlib.sha1(p1).digest()
    p3 = hashlib.sha1(scramble[:20] + p2).digest()
    return bytes(a ^ b for a, b in zip(p1, p3))


def handshake_response(user, password, scramble, database=None,
                       caps=None, charset=UTF8MB4_GENERAL_CI):
    """HandshakeResponse41 payload with a mysql_native_password token."""
    if caps is None:
        caps = (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
                | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH)
    if database:
        caps |= CLIENT_CONNECT_WITH_DB
    token = native_token(password, scramble)
    body = struct.pack("<IIB", caps, 16 * 1024 * 1024, charset) + b"\x00" * 23
    body += user.encode() + b"\x00"
    body += bytes([len(token)]) + token
    if database:
        body += database.encode() + b"\x00"
    body += b"mysql_native_password\x00"
    return body


class RawMy:
    """One raw client connection (server speaks first). Everything has a
    socket timeout, so a silent peer becomes socket.timeout, never a hang."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""
        self.handshake = None
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def send_packet(self, payload, seq=None):
        if seq is None:
            seq = self.seq
        self.send(packet(seq, payload))
        self.seq = (seq + 1) & 0xFF

    def _recv_exact(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionResetError("peer closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_packet(self):
        """(seq, payload) of one physical packet."""
        header = self._recv_exact(4)
        length = header[0] | header[1] << 8 | header[2] << 16
        seq = header[3]
        self.seq = (seq + 1) & 0xFF
        return seq, self._recv_exact(length)

    def read_handshake(self):
        seq, payload = self.read_packet()
        if payload[:1] == b"\xff":
            raise parse_err(payload)
        self.handshake = parse_handshake(payload)
        return self.handshake

    def login(self, user, password, database=None, caps=None):
        """Native-password login. Returns self; raises MyErr on an ERR packet."""
        hs = self.read_handshake()
        self.send_packet(handshake_response(user, password, hs["scramble"], database, caps),
                         seq=1)
        while True:
            _, payload = self.read_packet()
            if payload[:1] == b"\x00":
                return self
            if payload[:1] == b"\xff":
                raise parse_err(payload)
            if payload[:1] == b"\xfe":  # AuthSwitchRequest
                end = payload.index(b"\x00", 1)
                plugin = payload[1:end].decode()
                if plugin != "mysql_native_password":
                    raise MyProtocolError(f"auth switch to {plugin}")
                scramble = payload[end + 1:].rstrip(b"\x00")
                self.send_packet(native_token(password, scramble))
                continue
            raise MyProtocolError(f"unexpected packet during login: {payload[:16]!r}")

    def command(self, payload):
        """Send a command (sequence id 0) and return the first response payload."""
        self.send_packet(payload, seq=0)
        _, resp = self.read_packet()
        return resp


def wait_err_or_close(sock, timeout, skip_handshake=True):
    """Read packets until the peer closes or `timeout` passes. Returns
    (outcome, elapsed, info): outcome is 'closed' (EOF/reset, after at most
    ERR packets), 'timeout' (still open), or 'unexpected' (a packet that is
    neither a handshake nor ERR, e.g. an OK: info has its first bytes).
    info is the list of ERR packets seen (MyErr) otherwise. A Handshake v10
    with sequence id 0 is skipped when skip_handshake."""
    start = time.monotonic()
    deadline = start + timeout
    buf = b""
    errs = []
    while True:
        # Whole packets in buf?
        while len(buf) >= 4:
            length = buf[0] | buf[1] << 8 | buf[2] << 16
            if len(buf) < 4 + length:
                break
            seq, payload = buf[3], buf[4:4 + length]
            buf = buf[4 + length:]
            if skip_handshake and seq == 0 and payload[:1] == b"\x0a":
                continue
            if payload[:1] == b"\xff":
                try:
                    errs.append(parse_err(payload))
                except MyProtocolError:
                    errs.append(MyErr(None, None, repr(payload[:40])))
                continue
            return "unexpected", time.monotonic() - start, payload[:40]
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", time.monotonic() - start, errs
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return "timeout", time.monotonic() - start, errs
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return "closed", time.monotonic() - start, errs
        if not data:
            if buf:
                return "unexpected", time.monotonic() - start, b"partial packet " + buf[:40]
            return "closed", time.monotonic() - start, errs
        buf += data


# ---- The binary protocol (server-side prepared statements) over a PyMySQL connection ----------
# PyMySQL has no prepared statements of its own; these speak COM_STMT_* through its packet layer,
# with BIGINT parameters and string results, enough to drive a statement the way libmysqlclient
# does (parameter types sent with the first execution only).

COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_CLOSE = 0x19
_CLIENT_DEPRECATE_EOF = 1 << 24
_MYSQL_TYPE_LONGLONG = 8


def _deprecate_eof(conn):
    return bool(conn.client_flag & _CLIENT_DEPRECATE_EOF) and bool(
        conn.server_capabilities & _CLIENT_DEPRECATE_EOF)


def _skip_definitions(conn, count):
    for _ in range(count):
        conn._read_packet()
    if count and not _deprecate_eof(conn):
        conn._read_packet()  # the EOF after them


def stmt_prepare(conn, sql):
    """COM_STMT_PREPARE: returns (statement id, parameter count); raises the server's error."""
    conn._execute_command(COM_STMT_PREPARE, sql)
    data = conn._read_packet().get_all_data()
    stmt_id, columns, params = struct.unpack_from("<IHH", data, 1)
    _skip_definitions(conn, params)
    _skip_definitions(conn, columns)
    return stmt_id, params


def stmt_execute(conn, stmt_id, params, send_types=True):
    """COM_STMT_EXECUTE with BIGINT parameters; returns the rows as tuples of str (every result
    column must be a non-NULL string), or None for an OK."""
    payload = struct.pack("<IBI", stmt_id, 0, 1)
    if params:
        payload += b"\0" * ((len(params) + 7) // 8)
        if send_types:
            payload += b"\x01" + struct.pack("<BB", _MYSQL_TYPE_LONGLONG, 0) * len(params)
        else:
            payload += b"\x00"
        payload += b"".join(struct.pack("<q", p) for p in params)
    conn._execute_command(COM_STMT_EXECUTE, payload)
    data = conn._read_packet().get_all_data()
    if data[0] == 0:
        return None
    columns = data[0]
    _skip_definitions(conn, columns)
    rows = []
    while True:
        data = conn._read_packet().get_all_data()
        if data[0] == 0xFE and len(data) < 9:
            return rows
        pos = 1 + (columns + 7 + 2) // 8  # the header byte and the NULL bitmap
        row = []
        for _ in range(columns):
            length = data[pos]
            row.append(data[pos + 1:pos + 1 + length].decode())
            pos += 1 + length
        rows.append(tuple(row))


def stmt_close(conn, stmt_id):
    """COM_STMT_CLOSE (no answer)."""
    conn._execute_command(COM_STMT_CLOSE, struct.pack("<I", stmt_id))
