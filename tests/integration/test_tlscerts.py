# Runs under /usr/bin/python3: /usr/bin/python3 -m pytest -q tests/integration/test_tlscerts.py
"""The test certificates (tlscerts.py) chain as the TLS tests expect."""

import os
import stat
import subprocess

from tlscerts import client_cert


def verify(ca, cert, purpose):
    """openssl verify's exit code and output for cert against ca alone."""
    proc = subprocess.run(
        ["openssl", "verify", "-CAfile", ca, "-purpose", purpose, cert],
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_certificates_chain_to_their_own_ca_only(tls_certs):
    c = tls_certs
    for ca, cert, purpose in [
        (c.ca_cert, c.server_cert, "sslserver"),
        (c.ca_cert, c.client_cert, "sslclient"),
        (c.wrong_ca_cert, c.wrong_server_cert, "sslserver"),
        (c.wrong_ca_cert, c.wrong_client_cert, "sslclient"),
    ]:
        rc, out = verify(ca, cert, purpose)
        assert rc == 0, out
    for ca, cert, purpose in [
        (c.ca_cert, c.wrong_server_cert, "sslserver"),
        (c.ca_cert, c.wrong_client_cert, "sslclient"),
        (c.wrong_ca_cert, c.server_cert, "sslserver"),
    ]:
        rc, out = verify(ca, cert, purpose)
        assert rc != 0, f"{cert} verified against {ca}: {out}"

    text = subprocess.run(
        ["openssl", "x509", "-in", c.server_cert, "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    subject = subprocess.run(
        ["openssl", "x509", "-in", c.client_cert, "-noout", "-subject", "-nameopt", "multiline"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"commonName                = {c.client_cn}" in subject

    extra_cert, extra_key = client_cert(c, "alice")
    assert verify(c.ca_cert, extra_cert, "sslclient")[0] == 0
    keys = [c.ca_key, c.server_key, c.client_key, extra_key]
    keys += [c.wrong_ca_key, c.wrong_server_key, c.wrong_client_key]
    for key in keys:
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, key
