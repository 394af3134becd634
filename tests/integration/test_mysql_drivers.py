# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Drivers through wirepool's mysql proxy: PyMySQL with mysql_native_password
and caching_sha2_password, node mysql2 (tests/node/mysql_check.js) with
caching_sha2_password first as MySQL 8 clients do, wrong passwords and
unknown users (1045), and the ed25519 backend user (clients log in to
wirepool with native/caching_sha2, wirepool logs in to MariaDB with ed25519)."""

import time

import pymysql
import pytest

from mysqlhelpers import (
    ACCESS_DENIED_RE,
    ER_ACCESS_DENIED_ERROR,
    connect_my_direct,
    connect_target,
    my_connect,
    my_errmsg,
    my_errno,
    my_rows,
    my_scalar,
    run_node,
)


def _login_error(host, port, user, password, database):
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as ei:
        my_connect(host, port, user, password, database=database).close()
    return ei.value, time.monotonic() - t0


def test_pymysql_native_password(my_env, my_proxy, my_table, my_admin):
    env = my_env
    target = my_proxy(client_auth="mysql_native_password")
    conn = connect_target(env, target)
    try:
        # The handshake shows the backend's version string.
        assert conn.get_server_info() == my_admin.get_server_info()
        assert conn.thread_id() > 0
        if target.proxied:
            assert conn._auth_plugin_name == "mysql_native_password"
        assert my_scalar(conn, "SELECT %s + %s", (40, 2)) == 42
        assert my_scalar(conn, "SELECT %s", ("it's \"quoted\" \\ ✓ 😀",)) == "it's \"quoted\" \\ ✓ 😀"
        assert my_rows(conn, "SELECT CURRENT_USER(), DATABASE()") == (
            (f"{env['WP_MY_NATIVE_USER']}@127.0.0.1", env["WP_MY_DB"]),)

        t = my_table()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, name VARCHAR(40), "
                        f"data VARBINARY(64), note TEXT NULL)")
    finally:
        conn.close()

    # A transaction: parameterized inserts, invisible until commit; rollback.
    rows = [(i, f"name {i} ✓", bytes([i % 256, 0, 39, 92, 255]), None if i % 3 else f"n{i}")
            for i in range(1, 101)]
    conn = connect_target(env, target, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {t} (id, name, data, note) VALUES (%s, %s, %s, %s)", rows)
            assert cur.rowcount == 100
            cur.execute(f"INSERT INTO {t} (id, name) VALUES (%s, %s)", (1000, "single"))
        assert my_scalar(my_admin, f"SELECT COUNT(*) FROM {t}") == 0
        conn.commit()
        assert my_scalar(my_admin, f"SELECT COUNT(*) FROM {t}") == 101
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM {t} WHERE id <= 50")
        conn.rollback()
        assert my_scalar(conn, f"SELECT COUNT(*) FROM {t}") == 101
        conn.commit()
        got = my_rows(conn, f"SELECT id, name, data, note FROM {t} WHERE id <= 100 ORDER BY id")
        assert [tuple(r) for r in got] == rows

        # COM_INIT_DB and COM_PING.
        conn.select_db("information_schema")
        assert my_scalar(conn, "SELECT DATABASE()") == "information_schema"
        conn.select_db(env["WP_MY_DB"])
        assert my_scalar(conn, "SELECT DATABASE()") == env["WP_MY_DB"]
        conn.ping(reconnect=False)
    finally:
        conn.close()


def test_wrong_password_and_unknown_user_give_1045(my_env, my_proxy):
    env = my_env
    target = my_proxy(client_auth="mysql_native_password")
    db = env["WP_MY_DB"]
    cases = [
        (env["WP_MY_NATIVE_USER"], "wrong-" + env["WP_MY_NATIVE_PASSWORD"]),
        (env["WP_MY_ED25519_USER"], "wrong-" + env["WP_MY_ED25519_PASSWORD"]),
        ("wp_nobody", "whatever"),
    ]
    for user, password in cases:
        if user == env["WP_MY_ED25519_USER"] and not target.proxied:
            continue  # PyMySQL needs PyNaCl (not installed) for ed25519 directly
        err, elapsed = _login_error(target.host, target.port, user, password, db)
        assert my_errno(err) == ER_ACCESS_DENIED_ERROR, (user, repr(err))
        # The same shape as MariaDB's own, for known and unknown users alike.
        m = ACCESS_DENIED_RE.match(my_errmsg(err))
        assert m and m.group("user") == user and m.group("pw") == "YES", my_errmsg(err)
        assert elapsed < 5, f"1045 for {user} took {elapsed:.2f}s"
        if user != env["WP_MY_ED25519_USER"]:
            direct, _ = _login_error(env["WP_MY_HOST"], env["WP_MY_PORT"], user, password, db)
            assert my_errno(direct) == ER_ACCESS_DENIED_ERROR, (user, repr(direct))
            assert ACCESS_DENIED_RE.match(my_errmsg(direct)), my_errmsg(direct)
            print(f"{user}: wirepool {my_errmsg(err)!r} / direct {my_errmsg(direct)!r}")
    # The proxy still lets the right password in.
    conn = connect_target(env, target)
    try:
        assert my_scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()


def test_pymysql_caching_sha2_password(my_env, my_proxy, proxy_only):
    env = my_env
    target = my_proxy(client_auth="caching_sha2_password")
    proxy_only(target, "client_auth: caching_sha2_password")
    # The first login takes the full path (RSA key exchange: no TLS yet), the
    # later ones may take the fast path; all must work.
    ids = set()
    for _ in range(3):
        conn = connect_target(env, target)
        try:
            assert conn._auth_plugin_name == "caching_sha2_password"
            assert my_scalar(conn, "SELECT CURRENT_USER()") == f"{env['WP_MY_NATIVE_USER']}@127.0.0.1"
            ids.add(conn.thread_id())
        finally:
            conn.close()
    assert len(ids) == 3, f"connection ids repeat: {ids}"
    err, _ = _login_error(target.host, target.port, env["WP_MY_NATIVE_USER"], "wrong",
                          env["WP_MY_DB"])
    assert my_errno(err) == ER_ACCESS_DENIED_ERROR, repr(err)
    assert ACCESS_DENIED_RE.match(my_errmsg(err)), my_errmsg(err)


def test_ed25519_backend_user_with_pymysql(my_env, my_proxy, my_table, proxy_only):
    env = my_env
    target = my_proxy(client_auth="mysql_native_password")
    proxy_only(target, "a native-password client for an ed25519 account")
    user, password = env["WP_MY_ED25519_USER"], env["WP_MY_ED25519_PASSWORD"]
    conn = connect_target(env, target, user, password)
    try:
        assert conn._auth_plugin_name == "mysql_native_password"
        assert my_scalar(conn, "SELECT CURRENT_USER()") == f"{user}@127.0.0.1"
        t = my_table()
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(10))")
            cur.executemany(f"INSERT INTO {t} VALUES (%s, %s)", [(i, f"v{i}") for i in range(10)])
        assert my_scalar(conn, f"SELECT COUNT(*) FROM {t}") == 10
    finally:
        conn.close()
    # MariaDB saw the ed25519 account log in (the plugin is per account).
    admin = connect_my_direct(env, database=None)
    try:
        plugin = my_scalar(admin, "SELECT plugin FROM mysql.user WHERE user = %s AND host = "
                                  "'127.0.0.1'", (user,))
        assert plugin == "ed25519"
    finally:
        admin.close()
    err, _ = _login_error(target.host, target.port, user, "wrong", env["WP_MY_DB"])
    assert my_errno(err) == ER_ACCESS_DENIED_ERROR, repr(err)


def _node_params(env, target, user=None, password=None, **kw):
    p = {
        "host": target.host,
        "port": target.port,
        "user": user or env["WP_MY_NATIVE_USER"],
        "password": password if password is not None else env["WP_MY_NATIVE_PASSWORD"],
        "database": env["WP_MY_DB"],
    }
    p.update(kw)
    return p


def _node_ok(script, params, timeout=60):
    rc, obj, r = run_node(script, params, timeout=timeout)
    assert rc == 0 and obj and obj.get("ok"), (
        f"node {script} exit {rc}: {obj}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-2000:]}"
    )
    return obj


@pytest.mark.parametrize("client_auth", ["caching_sha2_password", "mysql_native_password"])
def test_node_mysql2_query_and_execute(my_env, my_proxy, my_table, client_auth):
    env = my_env
    target = my_proxy(client_auth=client_auth)
    t = my_table()
    obj = _node_ok("mysql_check.js", _node_params(env, target, table=t))
    if target.proxied:
        # mysql2 answers with the plugin the handshake names (caching_sha2 first, like
        # MySQL 8 clients), so this is the path that was taken.
        assert obj["authPlugin"] == client_auth, obj
    assert obj["query"] == {"two": 2, "user": f"{env['WP_MY_NATIVE_USER']}@127.0.0.1",
                            "db": env["WP_MY_DB"]}, obj
    assert obj["queryEscaped"] is True, obj
    assert obj["execute"] == {"sum": 42, "text": "héllo ✓"}, obj
    assert obj["preparedRowsOk"] == 8, obj
    assert obj["executeCount"] == obj["queryCount"] == {"n": 50, "s": 1275}, obj
    assert obj["updateAffected"] == 10, obj  # CLIENT_FOUND_ROWS semantics kept
    admin = connect_my_direct(env)
    try:
        assert my_scalar(admin, f"SELECT COUNT(*) FROM {t}") == 50
        assert obj["serverVersion"] == admin.get_server_info(), obj
    finally:
        admin.close()

    # Again (caching_sha2: the fast path once the proxy knows the password).
    again = _node_ok("mysql_check.js", _node_params(env, target))
    assert again["execute"]["sum"] == 42 and again["threadId"] != obj["threadId"], again

    # A wrong password: 1045.
    rc, bad, r = run_node("mysql_check.js",
                          _node_params(env, target, password="wrong", loginOnly=True))
    assert rc == 1 and bad and bad["error"]["errno"] == ER_ACCESS_DENIED_ERROR, (rc, bad, r.stderr)
    assert ACCESS_DENIED_RE.match(bad["error"]["message"]), bad


def test_node_mysql2_ed25519_backend_user(my_env, my_proxy, proxy_only):
    env = my_env
    target = my_proxy(client_auth="caching_sha2_password")
    proxy_only(target, "a caching_sha2 client for an ed25519 account")
    user, password = env["WP_MY_ED25519_USER"], env["WP_MY_ED25519_PASSWORD"]
    obj = _node_ok("mysql_check.js", _node_params(env, target, user, password))
    assert obj["authPlugin"] == "caching_sha2_password", obj
    assert obj["query"]["user"] == f"{user}@127.0.0.1", obj
    assert obj["execute"]["sum"] == 42, obj


@pytest.mark.parametrize("client_auth", ["mysql_native_password", "caching_sha2_password"])
def test_node_mysql2_change_user(my_env, my_proxy, proxy_only, client_auth):
    """COM_CHANGE_USER (mysql2 changeUser): the proxy checks the new password itself, the old
    session's state is gone (its server was reset and pooled), and the client lands in the new
    user's pool (here the ed25519 account's, which MariaDB logs in with client_ed25519)."""
    env = my_env
    target = my_proxy(client_auth=client_auth)
    proxy_only(target, "changing to an account whose backend login is client_ed25519")
    user2, password2 = env["WP_MY_ED25519_USER"], env["WP_MY_ED25519_PASSWORD"]
    obj = _node_ok("mysql_change_user.js",
                   _node_params(env, target, user2=user2, password2=password2,
                                database2="information_schema"))
    native = f"{env['WP_MY_NATIVE_USER']}@127.0.0.1"
    assert obj["first"]["user"] == native and obj["first"]["v"] == 42, obj
    assert obj["first"]["mode"] == "ANSI_QUOTES" and obj["first"]["tx"] == 1, obj
    second = obj["second"]
    assert second["user"] == f"{user2}@127.0.0.1" and second["db"] == "information_schema", obj
    assert second["v"] is None and second["mode"] != "ANSI_QUOTES" and second["tx"] == 0, obj
    assert second["sum"] == 42, obj
    back = obj["back"]
    assert back["user"] == native and back["db"] == env["WP_MY_DB"], obj
    assert back["v"] is None and back["mode"] != "ANSI_QUOTES" and back["sum"] == 42, obj
    assert obj["wrong"]["errno"] == ER_ACCESS_DENIED_ERROR, obj
    assert ACCESS_DENIED_RE.match(obj["wrong"]["message"]), obj
