# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""The command line and the process contract: --check, --version, secrets
from password/password_env/password_file, SIGHUP reload, SIGTERM drain and
SIGINT exit."""

import copy
import os
import re
import signal
import subprocess
import time

import psycopg2
import pytest

from wphelpers import config_text, connect_direct, connect_proxy, scalar
from wpwire import PgError, try_login

GOOD_YAML = """\
# A hand-written YAML file (not JSON), as a user would write it.
workers: 1
shutdown_timeout: 5s
users:
  - name: app
    password: "app-secret"
  - name: from_env
    password_env: WP_TEST_SOME_PASSWORD
  - name: from_file
    password_file: {password_file}
proxies:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:0
    pool_mode: session
    backends: ["{backend}"]
    max_backend_connections: 20
    max_client_connections: 10000
    connection_borrow_timeout: 5s
    client_login_timeout: 15s
    server_connect_timeout: 5s
    server_idle_timeout: 60s
    server_lifetime: 3600s
    client_auth: scram-sha-256
"""


def _run(env, *args, timeout=10, extra_env=None):
    e = None
    if extra_env:
        e = dict(os.environ)
        e.update(extra_env)
    return subprocess.run([env["WIREPOOL_BIN"], *args], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


def _backend(env):
    return f"{env['WP_PG_HOST']}:{env['WP_PG_PORT']}"


def _good_file(env, tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("file-secret\n")
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_YAML.format(password_file=pw, backend=_backend(env)))
    return path


@pytest.fixture
def binary(env):
    b = env["WIREPOOL_BIN"]
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"wirepool binary {b} is missing: build it first (tools/test builds it)",
                    pytrace=False)
    return b


def test_version(env, binary):
    r = _run(env, "--version")
    assert r.returncode == 0, r
    assert re.search(r"\d+\.\d+", r.stdout + r.stderr), r


def test_check_good_file(env, binary, tmp_path):
    path = _good_file(env, tmp_path)
    r = _run(env, "-c", str(path), "--check", extra_env={"WP_TEST_SOME_PASSWORD": "env-secret"})
    assert r.returncode == 0, f"--check rejected a good file:\n{r.stdout}\n{r.stderr}"


def test_check_good_json_config(env, binary, config, tmp_path):
    path = tmp_path / "good.json.yaml"
    path.write_text(config_text(config([("app", "app-secret")])))
    r = _run(env, "-c", str(path), "--check")
    assert r.returncode == 0, f"--check rejected a good file:\n{r.stdout}\n{r.stderr}"


def _path_re(*parts):
    """A YAML path in any usual notation: proxies[0].x, proxies.0.x, /proxies/0/x."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += rf"(\[{p}\]|[./]{p})"
        else:
            out += (r"[./]?" if out else "") + re.escape(p)
    return re.compile(out)


def test_check_reports_every_error_with_its_path(env, binary, tmp_path):
    text = GOOD_YAML.format(password_file=tmp_path / "pw.txt", backend=_backend(env))
    (tmp_path / "pw.txt").write_text("x\n")
    text = text.replace("workers: 1", "wokers: 1")  # unknown top-level key
    text = text.replace("    pool_mode: session\n", "    pool_mode: session\n    bogus_key: 42\n")
    text = text.replace("connection_borrow_timeout: 5s", "connection_borrow_timeout: 5 parsecs")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = _run(env, "-c", str(path), "--check", extra_env={"WP_TEST_SOME_PASSWORD": "x"})
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"--check accepted a bad file:\n{out}"
    assert _path_re("proxies", 0, "bogus_key").search(out), f"no path for the unknown key:\n{out}"
    assert _path_re("proxies", 0, "connection_borrow_timeout").search(out), (
        f"no path for the bad duration:\n{out}")
    assert "wokers" in out, f"unknown top-level key not reported:\n{out}"


def test_check_pool_mode_defaults_to_transaction(env, binary, tmp_path):
    text = GOOD_YAML.format(password_file=tmp_path / "pw.txt", backend=_backend(env))
    (tmp_path / "pw.txt").write_text("x\n")
    path = tmp_path / "nomode.yaml"
    path.write_text(text.replace("    pool_mode: session\n", ""))
    r = _run(env, "-c", str(path), "--check", extra_env={"WP_TEST_SOME_PASSWORD": "x"})
    assert r.returncode == 0, r
    path.write_text(text.replace("    pool_mode: session\n", "    pool_mode: statement\n"))
    r = _run(env, "-c", str(path), "--check", extra_env={"WP_TEST_SOME_PASSWORD": "x"})
    assert r.returncode != 0 and "unknown pool_mode 'statement'" in r.stdout + r.stderr, r


def test_check_does_not_print_secrets(env, binary, tmp_path):
    text = GOOD_YAML.format(password_file=tmp_path / "pw.txt", backend=_backend(env))
    (tmp_path / "pw.txt").write_text("x\n")
    text = text.replace("    pool_mode: session\n", "    pool_mode: session\n    bogus_key: 1\n")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = _run(env, "-c", str(path), "--check", extra_env={"WP_TEST_SOME_PASSWORD": "x"})
    assert r.returncode != 0
    assert "app-secret" not in r.stdout + r.stderr


def test_password_env_and_password_file(env, wirepool, config, make_role, tmp_path):
    a, b = make_role(), make_role()
    pw_file = tmp_path / "b.pw"
    pw_file.write_text(b.password + "\n")
    cfg = config([
        {"name": a.name, "password_env": "WP_TEST_PW_A"},
        {"name": b.name, "password_file": str(pw_file)},
    ])
    wp = wirepool(cfg, extra_env={"WP_TEST_PW_A": a.password})
    for r in (a, b):
        conn = connect_proxy(env, wp, r.name, r.password)
        try:
            assert scalar(conn, "SELECT current_user") == r.name
        finally:
            conn.close()
    assert a.password not in wp.log_text() and b.password not in wp.log_text()


def _wait_login(env, wp, user, password, want_ok, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = connect_proxy(env, wp, user, password)
            conn.close()
            ok = True
        except psycopg2.OperationalError:
            ok = False
        if ok == want_ok or time.monotonic() > deadline:
            return ok
        time.sleep(0.1)


def test_sighup_reloads_passwords_and_users(env, wirepool, config, make_role, admin, tmp_path):
    r1, r2 = make_role(), make_role()
    cfg = config([(r1.name, r1.password)])
    wp = wirepool(cfg)

    session = connect_proxy(env, wp, r1.name, r1.password)
    try:
        pid = scalar(session, "SELECT pg_backend_pid()")
        # r2 is not a wirepool user yet.
        assert not _wait_login(env, wp, r2.name, r2.password, want_ok=False, timeout=0)

        new_pw = "new_" + r1.password
        with admin.cursor() as cur:
            cur.execute(f'ALTER ROLE "{r1.name}" PASSWORD %s', (new_pw,))
        cfg2 = copy.deepcopy(cfg)
        cfg2["users"] = [{"name": r1.name, "password": new_pw},
                         {"name": r2.name, "password": r2.password}]
        wp.config_path.write_text(config_text(cfg2))
        wp.send_signal(signal.SIGHUP)

        assert _wait_login(env, wp, r1.name, new_pw, want_ok=True), \
            "the new password was not accepted after SIGHUP"
        with pytest.raises(psycopg2.OperationalError) as ei:
            connect_proxy(env, wp, r1.name, r1.password)
        assert "password authentication failed" in str(ei.value)
        assert _wait_login(env, wp, r2.name, r2.password, want_ok=True), \
            "a user added by SIGHUP cannot log in"

        # The session opened before the reload is untouched.
        assert scalar(session, "SELECT 41 + 1") == 42
        assert scalar(session, "SELECT pg_backend_pid()") == pid
        assert wp.poll() is None
    finally:
        session.close()


def test_sighup_reloads_limits(env, wirepool, config, role):
    cfg = config([(role.name, role.password)], max_backend_connections=1,
                 connection_borrow_timeout="1s")
    wp = wirepool(cfg)
    first = connect_proxy(env, wp, role.name, role.password)
    try:
        assert scalar(first, "SELECT 1") == 1
        conn, err = try_login(env["WP_PG_HOST"], wp.port(), role.name, role.password,
                              env["WP_PG_DB"], timeout=10)
        if conn:
            try:
                conn.query("SELECT 1")
            except PgError as e:
                err = e
            conn.close()
        assert err is not None and err.sqlstate == "53300", err

        cfg2 = copy.deepcopy(cfg)
        cfg2["proxies"][0]["max_backend_connections"] = 2
        wp.config_path.write_text(config_text(cfg2))
        wp.send_signal(signal.SIGHUP)

        deadline = time.monotonic() + 5
        while True:
            conn, err = try_login(env["WP_PG_HOST"], wp.port(), role.name, role.password,
                                  env["WP_PG_DB"], timeout=10)
            if conn:
                try:
                    conn.query("SELECT 1")
                    err = None
                except PgError as e:
                    err = e
                conn.close()
            if err is None or time.monotonic() > deadline:
                break
        assert err is None, f"max_backend_connections 1 -> 2 not applied by SIGHUP: {err}"
        assert scalar(first, "SELECT 2") == 2
    finally:
        first.close()


def test_sigterm_with_idle_client_exits_0(env, wirepool, config, role):
    wp = wirepool(config([(role.name, role.password)], shutdown_timeout="2s"))
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        assert scalar(conn, "SELECT 1") == 1
        t0 = time.monotonic()
        wp.send_signal(signal.SIGTERM)
        try:
            rc = wp.wait(timeout=4.0)
        except subprocess.TimeoutExpired:
            pytest.fail("wirepool still running 4 s after SIGTERM with shutdown_timeout 2s")
        assert rc == 0, f"exit code {rc} after SIGTERM"
        print(f"SIGTERM -> exit after {time.monotonic() - t0:.2f}s")
    finally:
        conn.close()


def test_sigterm_lets_open_transactions_finish(env, wirepool, config, role):
    """Drain: a transaction open at SIGTERM may still commit; one that never
    ends does not keep wirepool alive past shutdown_timeout."""
    wp = wirepool(config([(role.name, role.password)], shutdown_timeout="3s"))
    finishing = connect_proxy(env, wp, role.name, role.password, autocommit=False)
    stuck = connect_proxy(env, wp, role.name, role.password, autocommit=False)
    try:
        with finishing.cursor() as cur:
            cur.execute("CREATE TABLE drained (a int)")
            cur.execute("INSERT INTO drained VALUES (1)")
        with stuck.cursor() as cur:
            cur.execute("SELECT 1")
        t0 = time.monotonic()
        wp.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert wp.poll() is None, "wirepool exited at SIGTERM with transactions open"
        with finishing.cursor() as cur:
            cur.execute("INSERT INTO drained VALUES (2)")
        finishing.commit()
        try:
            rc = wp.wait(timeout=max(0.1, 5.0 - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            pytest.fail("wirepool still running 5 s after SIGTERM with shutdown_timeout 3s")
        assert rc == 0, f"exit code {rc} after SIGTERM"
    finally:
        finishing.close()
        stuck.close()
    direct = connect_direct(env, role.name, role.password)
    try:
        assert scalar(direct, "SELECT count(*) FROM drained") == 2
    finally:
        direct.close()


def test_sigterm_without_clients_exits_0_quickly(env, wirepool, config, role):
    wp = wirepool(config([(role.name, role.password)], shutdown_timeout="5s"))
    wp.send_signal(signal.SIGTERM)
    try:
        rc = wp.wait(timeout=3.0)
    except subprocess.TimeoutExpired:
        pytest.fail("wirepool with no clients still running 3 s after SIGTERM")
    assert rc == 0


def test_sigint_exits_at_once(env, wirepool, config, role):
    wp = wirepool(config([(role.name, role.password)], shutdown_timeout="30s"))
    conn = connect_proxy(env, wp, role.name, role.password)
    try:
        assert scalar(conn, "SELECT 1") == 1
        wp.send_signal(signal.SIGINT)
        try:
            wp.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail("wirepool still running 2 s after SIGINT")
    finally:
        conn.close()


def test_server_reset_after_open_transaction_counts_as_idle(env, wirepool, config, role):
    """A client that leaves inside a transaction hands back a server that the reset cleans: the
    next client on that server (the only one: max_backend_connections 1) is idle between
    transactions before it has run anything, so SIGTERM closes it at once instead of waiting
    for shutdown_timeout."""
    wp = wirepool(config([(role.name, role.password)], shutdown_timeout="10s",
                         max_backend_connections=1))
    leaver = connect_proxy(env, wp, role.name, role.password, autocommit=False)
    with leaver.cursor() as cur:
        cur.execute("SELECT 1")  # psycopg2 opened a transaction around it
    leaver.close()
    conn = connect_proxy(env, wp, role.name, role.password)  # runs no statement
    try:
        t0 = time.monotonic()
        wp.send_signal(signal.SIGTERM)
        try:
            rc = wp.wait(timeout=4.0)
        except subprocess.TimeoutExpired:
            pytest.fail("an idle client on a reset server kept wirepool draining past 4 s")
        assert rc == 0
        print(f"SIGTERM -> exit after {time.monotonic() - t0:.2f}s")
    finally:
        conn.close()
