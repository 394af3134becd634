# Runs under /usr/bin/python3 (Debian's pytest and python3-pymysql).
"""Big values through wirepool's mysql proxy: payloads of 16 MiB and more
travel as several packets (0xffffff-byte pieces, a shorter last one, an
empty one when the size is an exact multiple), both ways. MariaDB's
max_allowed_packet is 64M in the sandbox; the clients raise theirs."""

import hashlib
import os

import pytest

from mysqlhelpers import connect_my_direct, connect_target, my_scalar, run_node

MAX_PAYLOAD = 0xFFFFFF
BIG = 64 * 1024 * 1024


@pytest.fixture
def target(my_proxy):
    return my_proxy()


def test_40mib_longblob_roundtrip_pymysql(my_env, target, my_table):
    env = my_env
    t = my_table()
    # Random bytes: PyMySQL sends them escaped inside a COM_QUERY of about
    # 41 MiB (three packets); the row comes back as a 40 MiB packet chain.
    data = os.urandom(40 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    conn = connect_target(env, target, max_allowed_packet=BIG, read_timeout=120,
                          write_timeout=120)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, b LONGBLOB)")
            cur.execute(f"INSERT INTO {t} (id, b) VALUES (%s, %s)", (1, data))
            assert cur.rowcount == 1
            cur.execute(f"SELECT b, LENGTH(b), SHA2(b, 256) FROM {t} WHERE id = %s", (1,))
            got, length, server_sha = cur.fetchone()
        assert length == len(data) and server_sha == digest
        assert isinstance(got, bytes) and len(got) == len(data)
        assert got == data, "the blob read back through wirepool differs"
        # The session is fine after the big packets.
        assert my_scalar(conn, "SELECT 1") == 1
    finally:
        conn.close()
    # And MariaDB stored exactly those bytes.
    direct = connect_my_direct(env, max_allowed_packet=BIG, read_timeout=120)
    try:
        assert my_scalar(direct, f"SELECT SHA2(b, 256) FROM {t} WHERE id = 1") == digest
    finally:
        direct.close()


def test_packets_of_exactly_16mib_minus_1(my_env, target):
    """A payload of exactly 0xffffff bytes is followed by an empty packet."""
    env = my_env
    conn = connect_target(env, target, max_allowed_packet=BIG, read_timeout=120,
                          write_timeout=120)
    try:
        # Server to client: a one-column text row is a 4-byte length prefix
        # (0xfd + 3 bytes) plus the value, so this row packet is 0xffffff long.
        n = MAX_PAYLOAD - 4
        with conn.cursor() as cur:
            cur.execute(f"SELECT REPEAT('x', {n})")
            (value,) = cur.fetchone()
        assert len(value) == n and value[:3] == "xxx" and value[-3:] == "xxx"
        # Client to server: a COM_QUERY (1 command byte + SQL) of 0xffffff bytes.
        head, tail = "SELECT LENGTH('", "')"
        k = MAX_PAYLOAD - 1 - len(head) - len(tail)
        sql = head + "y" * k + tail
        assert 1 + len(sql) == MAX_PAYLOAD
        with conn.cursor() as cur:
            cur.execute(sql)
            assert cur.fetchone()[0] == k
        # And just past it: two packets, the second of one byte.
        sql = head + "y" * (k + 1) + tail
        with conn.cursor() as cur:
            cur.execute(sql)
            assert cur.fetchone()[0] == k + 1
        assert my_scalar(conn, "SELECT 2") == 2
    finally:
        conn.close()


def test_20mib_blob_binary_protocol_node(my_env, target, my_table):
    """mysql2 prepared execute(): a COM_STMT_EXECUTE over 16 MiB, and a binary
    result row over 16 MiB."""
    env = my_env
    t = my_table()
    params = {
        "host": target.host, "port": target.port,
        "user": env["WP_MY_NATIVE_USER"], "password": env["WP_MY_NATIVE_PASSWORD"],
        "database": env["WP_MY_DB"], "table": t, "sizeMiB": 20,
    }
    rc, obj, r = run_node("mysql_blob.js", params, timeout=90)
    assert rc == 0 and obj and obj.get("ok"), (rc, obj, r.stdout[-2000:], r.stderr[-2000:])
    assert obj["serverLen"] == obj["len"] == 20 * 1024 * 1024, obj
    assert obj["serverSha"] == obj["sha256"], obj
    assert obj["executeMatch"] is True and obj["queryMatch"] is True, obj
