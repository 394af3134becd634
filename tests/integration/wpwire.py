# Runs under /usr/bin/python3 (Debian's psycopg2 and pytest).
"""A tiny PostgreSQL protocol 3.0 client on a raw socket.

libpq (and so psycopg2 and psql) hides the SQLSTATE of errors raised during
login, and cannot send malformed bytes. The tests use this client when they
need the exact ErrorResponse fields of a failed login (28P01, 3D000, 53300)
or want to misbehave on purpose. Everything has a socket timeout, so a silent
peer turns into socket.timeout instead of a hang.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import time

PROTOCOL_3_0 = 196608
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102


class ProtocolError(Exception):
    """The peer said something this client did not expect."""


class PgError(Exception):
    """An ErrorResponse from the peer; .fields maps field codes ('C', 'M', ...) to text."""

    def __init__(self, fields, phase):
        self.fields = fields
        self.phase = phase
        super().__init__(
            f"{fields.get('S', '?')} {fields.get('C', '?')}: {fields.get('M', '')} (during {phase})"
        )

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M")

    @property
    def severity(self):
        return self.fields.get("V", self.fields.get("S"))


def parse_error_fields(payload):
    fields = {}
    for part in payload.split(b"\x00"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def startup_packet(user, database=None, params=None, protocol=PROTOCOL_3_0):
    body = struct.pack("!I", protocol)
    kv = {"user": user}
    if database is not None:
        kv["database"] = database
    kv.update(params or {})
    for k, v in kv.items():
        body += k.encode() + b"\x00" + v.encode() + b"\x00"
    body += b"\x00"
    return struct.pack("!I", len(body) + 4) + body


def message(kind, payload=b""):
    return kind + struct.pack("!I", len(payload) + 4) + payload


def wait_closed_or_error(sock, timeout):
    """Read until the peer closes. Returns (outcome, elapsed, first_byte) where
    outcome is 'closed' (EOF/reset) or 'timeout' (still open after timeout).
    first_byte is the first byte the peer sent, or None."""
    start = time.monotonic()
    deadline = start + timeout
    first = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", time.monotonic() - start, first
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return "timeout", time.monotonic() - start, first
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            return "closed", time.monotonic() - start, first
        if not data:
            return "closed", time.monotonic() - start, first
        if first is None:
            first = data[:1]


class RawPg:
    """One client connection. Use as a context manager, or call close()."""

    def __init__(self, host, port, timeout=10.0, source=None):
        # `source`: a local address to connect from (another loopback address, say).
        self.sock = socket.create_connection((host, int(port)), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._buf = b""
        self.parameters = {}
        self.backend_key = None
        self.tx_status = None
        self.notices = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def terminate(self):
        try:
            self.sock.sendall(message(b"X"))
        except OSError:
            pass
        self.close()

    # -- low level -------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionResetError("peer closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def read_byte(self):
        return self._recv_exact(1)

    def read_message(self):
        kind = self._recv_exact(1)
        (length,) = struct.unpack("!I", self._recv_exact(4))
        if length < 4 or length > (1 << 30):
            raise ProtocolError(f"bad message length {length} for type {kind!r}")
        return kind, self._recv_exact(length - 4)

    # -- login -----------------------------------------------------------

    def login(self, user, password, database, params=None):
        """Full login. Returns when ReadyForQuery arrives; raises PgError on an
        ErrorResponse (phase 'auth' before AuthenticationOk, 'startup' after)."""
        self.send(startup_packet(user, database, params))
        phase = "auth"
        scram = None
        while True:
            kind, payload = self.read_message()
            if kind == b"E":
                raise PgError(parse_error_fields(payload), phase)
            if kind == b"N":
                self.notices.append(parse_error_fields(payload))
                continue
            if kind == b"R":
                (code,) = struct.unpack("!I", payload[:4])
                data = payload[4:]
                if code == 0:
                    phase = "startup"
                elif code == 3:
                    self.send(message(b"p", password.encode() + b"\x00"))
                elif code == 5:
                    self.send(message(b"p", md5_response(user, password, data[:4])))
                elif code == 10:
                    mechs = [m for m in data.split(b"\x00") if m]
                    if b"SCRAM-SHA-256" not in mechs:
                        raise ProtocolError(f"no SCRAM-SHA-256 in {mechs!r}")
                    scram = ScramClient(password)
                    first = scram.client_first()
                    self.send(
                        message(
                            b"p",
                            b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first,
                        )
                    )
                elif code == 11:
                    if scram is None:
                        raise ProtocolError("SASLContinue without SASL")
                    self.send(message(b"p", scram.client_final(data)))
                elif code == 12:
                    if scram is None or not scram.verify_server_final(data):
                        raise ProtocolError("bad SCRAM server signature")
                else:
                    raise ProtocolError(f"unsupported auth request {code}")
                continue
            if kind == b"S":
                k, v = payload.split(b"\x00")[:2]
                self.parameters[k.decode()] = v.decode()
                continue
            if kind == b"K":
                self.backend_key = struct.unpack("!ii", payload[:8])
                continue
            if kind == b"Z":
                self.tx_status = payload[:1]
                return self
            raise ProtocolError(f"unexpected message {kind!r} during login")

    # -- queries ---------------------------------------------------------

    def query(self, sql):
        """Simple query. Returns list of rows (tuples of str/None) of the last
        result; raises PgError (after draining to ReadyForQuery)."""
        self.send(message(b"Q", sql.encode() + b"\x00"))
        rows = []
        error = None
        while True:
            kind, payload = self.read_message()
            if kind == b"T":
                rows = []
            elif kind == b"D":
                rows.append(parse_data_row(payload))
            elif kind == b"E":
                error = PgError(parse_error_fields(payload), "query")
            elif kind == b"N":
                self.notices.append(parse_error_fields(payload))
            elif kind == b"Z":
                self.tx_status = payload[:1]
                if error:
                    raise error
                return rows
            elif kind in (b"C", b"I", b"S"):
                pass
            else:
                raise ProtocolError(f"unexpected message {kind!r} during query")


def parse_data_row(payload):
    (n,) = struct.unpack("!h", payload[:2])
    pos = 2
    row = []
    for _ in range(n):
        (ln,) = struct.unpack("!i", payload[pos : pos + 4])
        pos += 4
        if ln < 0:
            row.append(None)
        else:
            row.append(payload[pos : pos + ln].decode())
            pos += ln
    return tuple(row)


def md5_response(user, password, salt):
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode() + b"\x00"


class ScramClient:
    """SCRAM-SHA-256 without channel binding (what libpq does over plain TCP)."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n=,r={self.nonce}"
        self.auth_message = None
        self.salted = None

    def client_first(self):
        return ("n,," + self.client_first_bare).encode()

    def client_final(self, server_first):
        server_first = server_first.decode()
        attrs = dict(item.split("=", 1) for item in server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ProtocolError("server nonce does not extend the client nonce")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.new(self.salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        self.auth_message = (
            f"{self.client_first_bare},{server_first},{without_proof}".encode()
        )
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server_final(self, data):
        attrs = dict(item.split("=", 1) for item in data.decode().split(","))
        if "v" not in attrs:
            return False
        server_key = hmac.new(self.salted, b"Server Key", hashlib.sha256).digest()
        expected = hmac.new(server_key, self.auth_message, hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64decode(attrs["v"]), expected)


def try_login(host, port, user, password, database, timeout=10.0, params=None):
    """Log in once; return (RawPg, None) on success or (None, PgError) on an
    ErrorResponse. Other failures raise."""
    conn = RawPg(host, port, timeout=timeout)
    try:
        conn.login(user, password, database, params)
        return conn, None
    except PgError as e:
        conn.close()
        return None, e
    except BaseException:
        conn.close()
        raise
