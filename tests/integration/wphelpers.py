# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""Helpers shared by the integration tests: the environment contract, psql /
pgbench runners, psycopg2 connections (through wirepool and direct), and
counting wirepool's backend connections in pg_stat_activity."""

import json
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[2]

ENV_VARS = (
    "WP_PG_BIN",
    "WP_PG_HOST",
    "WP_PG_PORT",
    "WP_PG_SOCKET_DIR",
    "WP_PG_DB",
    "WP_PG_SCRAM_USER",
    "WP_PG_SCRAM_PASSWORD",
    "WP_PG_MD5_USER",
    "WP_PG_MD5_PASSWORD",
    "WP_PG_ADMIN_USER",
    "WP_PG_ADMIN_PASSWORD",
    "WP_PG_LOG",
)

HOW_TO_RUN = (
    "the integration tests need the sandbox PostgreSQL described by the WP_PG_* "
    "environment variables: run them via tools/test, or by hand with "
    '`tools/sandbox start && eval "$(tools/sandbox env)" && '
    "/usr/bin/python3 -m pytest -q tests/integration`"
)

LISTEN_RE = re.compile(
    r"proxy=[\"']?([A-Za-z0-9_.\-]+)[\"']?\b.*?listening on "
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost):(\d+)"
)


def read_env():
    """The WP_* variables as a dict, plus WIREPOOL_BIN. Returns (env, missing)."""
    env = {k: os.environ.get(k) for k in ENV_VARS}
    missing = [k for k, v in env.items() if not v]
    env["WIREPOOL_BIN"] = os.environ.get("WIREPOOL_BIN") or str(
        REPO / "build" / "bin" / "wirepool"
    )
    return env, missing


def backend_addr(env):
    return f"{env['WP_PG_HOST']}:{env['WP_PG_PORT']}"


# ---------------------------------------------------------------- config


def default_workers():
    """The `workers` of every test config that does not set its own: 1, or
    WP_TEST_WORKERS (tools/test runs the suite a second time with 2)."""
    return int(os.environ.get("WP_TEST_WORKERS", "1"))


def make_config(env, users, shutdown_timeout="5s", workers=None, **proxy_overrides):
    """A wirepool config dict with one postgres proxy named 'pg' in front of
    the sandbox. users: list of (name, password) or of dicts. A proxy
    override of None removes that key."""
    user_entries = []
    for u in users:
        if isinstance(u, dict):
            user_entries.append(u)
        else:
            name, password = u
            user_entries.append({"name": name, "password": password})
    proxy = {
        "name": "pg",
        "protocol": "postgres",
        "listen": "127.0.0.1:0",
        "pool_mode": "session",
        "backends": [backend_addr(env)],
        "max_backend_connections": 20,
        "max_client_connections": 10000,
        "connection_borrow_timeout": "5s",
        "client_login_timeout": "15s",
        "client_auth": "scram-sha-256",
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


def config_text(config):
    """JSON is valid YAML; strings pass through verbatim."""
    if isinstance(config, str):
        return config
    return json.dumps(config, indent=2) + "\n"


# ---------------------------------------------------------------- wirepool process


class Wirepool:
    """A running wirepool started by the `wirepool` fixture."""

    def __init__(self, binary, config_path, log_path, extra_env=None):
        self.binary = binary
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.ports = {}
        self.stopped_on_purpose = False
        env = dict(os.environ)
        env.update(extra_env or {})
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def wait_listening(self, names, timeout=10.0):
        deadline = time.monotonic() + timeout
        names = list(names)
        while True:
            for name, port in LISTEN_RE.findall(self.log_text()):
                self.ports[name] = int(port)
            if all(n in self.ports for n in names):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"wirepool exited with code {self.proc.returncode} before listening; "
                    f"log:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"wirepool did not log 'proxy=<name> listening on 127.0.0.1:<port>' for "
                    f"{[n for n in names if n not in self.ports]} within {timeout}s; log:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def port(self, name="pg"):
        return self.ports[name]

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Wait until regex `pattern` matches the log after offset `start`."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.log_text()[start:])
            if m:
                return m
            time.sleep(0.05)
        return None

    def send_signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
            self.stopped_on_purpose = True
        os.kill(self.pid, sig)

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout):
        """Wait for exit; returns the exit code or raises subprocess.TimeoutExpired."""
        return self.proc.wait(timeout=timeout)

    def stop(self):
        """SIGINT, wait, then SIGKILL. Returns the exit code it had *before* we
        stopped it (None if it was still running)."""
        before = self.proc.poll()
        if before is None:
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()
        return before


# ---------------------------------------------------------------- psql / pgbench


def client_env(password):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("PG"):
            del e[k]
    e["PGPASSWORD"] = password
    e["PGCONNECT_TIMEOUT"] = "10"
    e["PGAPPNAME"] = "wirepool-tests"
    return e


def psql(env, port, user, password, sql=None, *, db=None, args=(), timeout=60,
         check=True, input=None, verbose=False):
    """Run psql -X -v ON_ERROR_STOP=1 -At against host WP_PG_HOST:port.
    Returns CompletedProcess (text). check=True asserts exit code 0."""
    cmd = [
        os.path.join(env["WP_PG_BIN"], "psql"),
        "-X", "-v", "ON_ERROR_STOP=1", "-At",
        "-h", env["WP_PG_HOST"], "-p", str(port),
        "-U", user, "-d", db or env["WP_PG_DB"],
    ]
    if verbose:
        cmd += ["-v", "VERBOSITY=verbose"]
    cmd += list(args)
    if sql is not None:
        cmd += ["-c", sql]
    r = subprocess.run(
        cmd, env=client_env(password), input=input, capture_output=True,
        text=True, timeout=timeout,
    )
    if check:
        assert r.returncode == 0, (
            f"psql failed ({r.returncode}): {cmd}\nstdout:\n{r.stdout[-3000:]}\n"
            f"stderr:\n{r.stderr[-3000:]}"
        )
    return r


def pgbench_cmd(env, port, user, *args, db=None):
    return [
        os.path.join(env["WP_PG_BIN"], "pgbench"),
        "-h", env["WP_PG_HOST"], "-p", str(port), "-U", user,
        *[str(a) for a in args],
        db or env["WP_PG_DB"],
    ]


def pgbench(env, port, user, password, *args, timeout=120, db=None):
    cmd = pgbench_cmd(env, port, user, *args, db=db)
    return subprocess.run(
        cmd, env=client_env(password), capture_output=True, text=True, timeout=timeout
    )


class PgbenchResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        out = stdout + "\n" + stderr
        m = re.search(r"number of transactions actually processed:\s*(\d+)", out)
        self.processed = int(m.group(1)) if m else None
        m = re.search(r"number of failed transactions:\s*(\d+)", out)
        self.failed = int(m.group(1)) if m else None

    def describe(self):
        return (
            f"pgbench exit {self.returncode}, processed={self.processed}, "
            f"failed={self.failed}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-3000:]}"
        )

    def assert_clean(self):
        assert self.returncode == 0, self.describe()
        assert self.processed is not None and self.processed > 0, self.describe()
        if self.failed is not None:
            assert self.failed == 0, self.describe()
        assert "aborted" not in self.stderr, self.describe()
        assert "pgbench: error" not in self.stderr, self.describe()


def parse_pgbench(completed):
    return PgbenchResult(completed.returncode, completed.stdout, completed.stderr)


# ---------------------------------------------------------------- psycopg2


def connect(env, port, user, password, dbname=None, autocommit=True, **kw):
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("application_name", "wirepool-tests")
    conn = psycopg2.connect(
        host=env["WP_PG_HOST"], port=int(port), user=user, password=password,
        dbname=dbname or env["WP_PG_DB"], **kw,
    )
    conn.autocommit = autocommit
    return conn


def connect_proxy(env, wp, user, password, dbname=None, proxy="pg", **kw):
    return connect(env, wp.port(proxy), user, password, dbname=dbname, **kw)


def connect_direct(env, user=None, password=None, dbname=None, **kw):
    """Direct to PostgreSQL, as admin unless told otherwise."""
    return connect(
        env, env["WP_PG_PORT"], user or env["WP_PG_ADMIN_USER"],
        password if password is not None else env["WP_PG_ADMIN_PASSWORD"],
        dbname=dbname, **kw,
    )


def scalar(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()[0]


def backend_pid_of_new_session(env, port, user, password):
    """Connects, asks which backend serves the session, and disconnects."""
    conn = connect(env, port, user, password)
    try:
        return scalar(conn, "SELECT pg_backend_pid()")
    finally:
        conn.close()


def backend_connections(admin_conn, user, dbname):
    """Pids of backend connections for user/dbname, excluding admin_conn's own."""
    with admin_conn.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE usename = %s AND datname = %s AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'",
            (user, dbname),
        )
        return sorted(r[0] for r in cur.fetchall())


def count_backend_connections(admin_conn, user, dbname):
    return len(backend_connections(admin_conn, user, dbname))


class ActivitySampler:
    """Samples the number of backend connections for one role every
    `interval` seconds on its own direct admin connection."""

    def __init__(self, env, user, dbname=None, interval=0.05):
        self.env = env
        self.user = user
        self.dbname = dbname or env["WP_PG_DB"]
        self.interval = interval
        self.samples = []
        self.pids_seen = set()
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            conn = connect_direct(self.env)
            try:
                while not self._stop.is_set():
                    pids = backend_connections(conn, self.user, self.dbname)
                    self.samples.append(len(pids))
                    self.pids_seen.update(pids)
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
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "pg_stat_activity sampler did not stop"
        if self.error:
            raise self.error

    @property
    def max(self):
        return max(self.samples) if self.samples else 0


def wait_until_running(admin_conn, needle, *, pid=None, user=None, timeout=5.0):
    """Waits until a backend (by pid, or any backend of `user`) is active running a query that
    contains `needle`, as pg_stat_activity shows it; fails the test after `timeout` seconds."""
    column, value = ("pid", pid) if pid is not None else ("usename", user)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with admin_conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {column} = %s AND "
                        "state = 'active' AND strpos(query, %s) > 0 AND pid <> pg_backend_pid()",
                        (value, needle))
            if cur.fetchone()[0] > 0:
                return
        time.sleep(0.05)
    pytest.fail(f"{needle} never showed up as active in pg_stat_activity")


def run_in_thread(fn, *args, **kwargs):
    """Start fn in a daemon thread; returns (thread, box) where box gets
    'result' or 'error' and 'elapsed'."""
    box = {}

    def target():
        start = time.monotonic()
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            box["error"] = e
        box["elapsed"] = time.monotonic() - start

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


# ---------------------------------------------------------------- secrets in logs


def key_material(path):
    """Strings that would show a private key file's secret if they appeared in a log: its PEM
    body (whole and line by line), the DER bytes in hex, and the private value as openssl
    prints it (colon-separated hex) and as plain hex."""
    text = Path(path).read_text()
    body = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("-----")]
    joined = "".join(body)
    out = [joined] + [ln for ln in body if len(ln) >= 16]
    try:
        import base64

        out.append(base64.b64decode(joined).hex())
    except ValueError:
        pass
    r = subprocess.run(["openssl", "pkey", "-in", str(path), "-noout", "-text"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    m = re.search(r"priv:\s*\n((?:[ \t]+[0-9a-fA-F:]+\n)+)", r.stdout)
    if m:
        colon = "".join(m.group(1).split())
        plain = colon.replace(":", "")
        if plain.startswith("00") and len(plain) % 2 == 0 and len(plain) > 64:
            plain = plain[2:]
        out += [colon, plain.lower(), plain.upper()]
    return out


def leaked_secrets(text, secrets):
    """The secrets (shown by their first characters only) that occur in text."""
    return [s[:8] + "..." for s in secrets if s and s in text]


def assert_logs_hold_none(wirepools, secrets, key_paths=()):
    """No wirepool log holds any of `secrets` nor the material of any private key file."""
    secrets = list(secrets)
    for path in key_paths:
        secrets += key_material(path)
    for wp in wirepools:
        found = leaked_secrets(wp.log_text(), secrets)
        assert not found, f"{wp.log_path} holds secrets: {found}"


# ---------------------------------------------------------------- a recording relay


class Relay:
    """A TCP relay in front of a server (target: (host, port)) that records the first 8 bytes
    each connection sends, so a test can see how wirepool opened its connections (PostgreSQL:
    an SSLRequest; MySQL: the header and capabilities of the first client packet). close()
    stops it and closes every socket."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.openings = []  # first 8 bytes of every connection, in order
        self._lock = threading.Lock()
        self._socks = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        self.lsock.settimeout(0.1)  # a closed listening socket does not wake accept()
        while not self._stop.is_set():
            try:
                down, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            down.settimeout(None)
            try:
                up = socket.create_connection(self.target, timeout=5)
            except OSError:
                down.close()
                continue
            with self._lock:
                self._socks += [down, up]
                slot = len(self.openings)
                self.openings.append(b"")
            t = threading.Thread(target=self._pump, args=(down, up, slot), daemon=True)
            self._threads.append(t)
            t.start()

    def _pump(self, down, up, slot):
        sel = selectors.DefaultSelector()
        sel.register(down, selectors.EVENT_READ, up)
        sel.register(up, selectors.EVENT_READ, down)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is down:
                        with self._lock:
                            if len(self.openings[slot]) < 8:
                                self.openings[slot] += data[:8 - len(self.openings[slot])]
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            sel.close()
            for s in (down, up):
                try:
                    s.close()
                except OSError:
                    pass

    def connections(self):
        with self._lock:
            return list(self.openings)

    def close(self):
        self._stop.set()
        self._threads[0].join(timeout=5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)


def read_until_closed(sock, timeout):
    """Everything the peer sends until it closes: ('closed' | 'timeout', bytes). On an SSL socket a
    TLS alert or an unexpected EOF counts as a close too."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return "timeout", data
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return "closed", data
        if not chunk:
            return "closed", data
        data += chunk
