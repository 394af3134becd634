# Runs under /usr/bin/python3; needs only the standard library and the openssl CLI.
"""Test certificates, made at test time with openssl (EC P-256, quick):

- a CA (ca.crt, ca.key) and a server certificate it signs for 127.0.0.1 and
  localhost (server.crt, server.key, subjectAltName IP:127.0.0.1, DNS:localhost);
- a client certificate it signs with a given CN (client.crt, client.key), and
  more on demand with client_cert();
- an unrelated "wrong" CA (wrong-ca.crt, wrong-ca.key) with a server and a
  client certificate of its own for the same names (wrong-server.*,
  wrong-client.*), for checking that a peer signed by another CA is refused.

Keys are mode 0600. make_tls_certs(directory) returns a TlsCerts of paths
(str). The sandbox servers' own CA is another one: WP_SANDBOX_CA
(tools/sandbox)."""

import os
import re
import secrets
import subprocess
from collections import namedtuple
from pathlib import Path

TlsCerts = namedtuple(
    "TlsCerts",
    "dir days ca_cert ca_key server_cert server_key client_cn client_cert client_key "
    "wrong_ca_cert wrong_ca_key wrong_server_cert wrong_server_key "
    "wrong_client_cert wrong_client_key",
)

SERVER_NAMES = "IP:127.0.0.1, DNS:localhost"

# CNs go into openssl's -subj and into file names: user-name characters only.
CN_RE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")

# Extension sections for the certificates a CA signs (openssl x509 -extfile).
_EXTENSIONS = f"""\
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = {SERVER_NAMES}

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""

_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def _openssl(*args):
    proc = subprocess.run(
        ["openssl", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )


def _private(key):
    os.chmod(key, 0o600)


def _make_ca(directory, stem, cn, days):
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    _openssl(
        "req", "-x509", "-new", *_EC_KEY, "-sha256", "-days", str(days),
        "-subj", f"/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    )
    _private(key)
    return str(cert), str(key)


def _issue(directory, stem, ca_cert, ca_key, cn, kind, days):
    """A key and a certificate for CN signed by the CA; kind is "server" or
    "client" (a section of _EXTENSIONS). Returns (cert, key)."""
    if not CN_RE.fullmatch(cn):
        raise ValueError(f"certificate CN {cn!r} does not match {CN_RE.pattern}")
    cert, key, csr = (directory / f"{stem}.{ext}" for ext in ("crt", "key", "csr"))
    ext_file = directory / "extensions.cnf"
    if not ext_file.exists():
        ext_file.write_text(_EXTENSIONS)
    _openssl(
        "req", "-new", *_EC_KEY, "-sha256", "-subj", f"/CN={cn}",
        "-keyout", str(key), "-out", str(csr),
    )
    _private(key)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", ca_cert, "-CAkey", ca_key,
        "-sha256", "-days", str(days), "-set_serial", "0x" + secrets.token_hex(16),
        "-extfile", str(ext_file), "-extensions", kind, "-out", str(cert),
    )
    csr.unlink()
    return str(cert), str(key)


def make_tls_certs(directory, client_cn="wp_client", days=2):
    """Make every certificate in directory (created if missing); returns TlsCerts."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(d, "ca", "wirepool test CA", days)
    server_cert, server_key = _issue(d, "server", ca_cert, ca_key, "localhost", "server", days)
    client_cert_, client_key = _issue(d, "client", ca_cert, ca_key, client_cn, "client", days)
    wrong_ca_cert, wrong_ca_key = _make_ca(d, "wrong-ca", "wirepool wrong test CA", days)
    wrong_server_cert, wrong_server_key = _issue(
        d, "wrong-server", wrong_ca_cert, wrong_ca_key, "localhost", "server", days
    )
    wrong_client_cert, wrong_client_key = _issue(
        d, "wrong-client", wrong_ca_cert, wrong_ca_key, client_cn, "client", days
    )
    return TlsCerts(
        dir=str(d),
        days=days,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=server_cert,
        server_key=server_key,
        client_cn=client_cn,
        client_cert=client_cert_,
        client_key=client_key,
        wrong_ca_cert=wrong_ca_cert,
        wrong_ca_key=wrong_ca_key,
        wrong_server_cert=wrong_server_cert,
        wrong_server_key=wrong_server_key,
        wrong_client_cert=wrong_client_cert,
        wrong_client_key=wrong_client_key,
    )


def client_cert(certs, cn):
    """Another client certificate with this CN, signed by certs' CA, in certs.dir
    (client-<cn>.crt/.key; made once, then reused). Returns (cert, key)."""
    d = Path(certs.dir)
    cert, key = d / f"client-{cn}.crt", d / f"client-{cn}.key"
    if cert.exists() and key.exists():
        return str(cert), str(key)
    return _issue(d, f"client-{cn}", certs.ca_cert, certs.ca_key, cn, "client", certs.days)


def key_files(certs):
    """Every private key of a TlsCerts set (for checks that none leaks into a log)."""
    return (certs.server_key, certs.client_key, certs.ca_key, certs.wrong_server_key,
            certs.wrong_client_key)


def client_tls(certs, mode="require", cert=None, key=None, **kw):
    """A proxy's client_tls section serving the test server certificate."""
    out = {"mode": mode, "cert_file": cert or certs.server_cert,
           "key_file": key or certs.server_key}
    out.update(kw)
    return out


def backend_tls(sandbox_tls, mode="verify-full", **kw):
    """A proxy's backend_tls section; verify modes check against the sandbox CA."""
    out = {"mode": mode}
    if mode.startswith("verify"):
        out["ca_file"] = sandbox_tls["ca"]
    out.update(kw)
    return out


def sandbox_tls_env(user_var, password_var):
    """(CA path, TLS-only user, its password) from the sandbox env (tools/sandbox), or a test
    failure saying how to get them."""
    import pytest

    names = ("WP_SANDBOX_CA", user_var, password_var)
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: the sandbox is older than its TLS setup; "
                    f"run `tools/sandbox start` again and eval `tools/sandbox env`", pytrace=False)
    ca = os.environ["WP_SANDBOX_CA"]
    assert os.path.isfile(ca), f"WP_SANDBOX_CA={ca} is not a file"
    return ca, os.environ[user_var], os.environ[password_var]
