"""``tokenmill serve --ssl-certfile --ssl-keyfile``: the gateway speaks HTTPS itself, and the
official client reaches it through a certificate it trusts; plain HTTP and an untrusted
certificate get nowhere; half a TLS setting is refused before anything starts."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import start_process
from tokenmill.cli.main import main
from tokenmill.cli.serve import tls_options
from tokenmill.fleet.local import free_port, stop_process
from tokenmill.settings import Settings


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def https_platform(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """``tokenmill serve`` over HTTPS with no models: (base URL, admin key, certificate)."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {
        **os.environ,
        "TOKENMILL_DATA_DIR": str(tmp_path / "data"),
        "TOKENMILL_PORT": str(port),
        "TOKENMILL_BUNDLED_MODELS": "[]",
        "TOKENMILL_CONFIG": str(tmp_path / "absent.toml"),
    }
    env.pop("TOKENMILL_DATABASE_URL", None)
    command = [sys.executable, "-m", "tokenmill.cli.main", "serve",
               "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]  # fmt: skip
    with open(tmp_path / "serve.log", "w") as log:
        process = start_process(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            assert process.stdout is not None
            secret, banner = None, ""
            for line in process.stdout:
                secret = line.strip().split("=", 1)[1] if "TOKENMILL_API_KEY=" in line else secret
                if "tokenmill is serving" in line:
                    banner = line
                    break
            assert secret is not None and f"https://127.0.0.1:{port}/v1" in banner, banner
            base = f"https://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    trusted = ssl.create_default_context(cafile=str(cert))
                    httpx.get(f"{base}/health", verify=trusted, timeout=2).raise_for_status()
                    break
                except httpx.HTTPError:
                    assert process.poll() is None, (tmp_path / "serve.log").read_text()
                    assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    time.sleep(0.2)
            yield base, secret, cert
        finally:
            stop_process(process, grace_seconds=10)


def test_the_official_client_talks_to_the_gateway_over_https(
    https_platform: tuple[str, str, Path],
) -> None:
    base, secret, cert = https_platform
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as http:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=secret, http_client=http)
        assert client.models.list().data == []
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="tm-wrong", http_client=http).models.list()
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate
        httpx.get(f"{base}/health", timeout=5)
    plain = base.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the TLS port is not served
        httpx.get(f"{plain}/health", timeout=5).raise_for_status()


def test_half_a_tls_setting_is_refused_before_anything_starts(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(Exception, match="both --ssl-certfile and --ssl-keyfile"):
        tls_options(Settings(data_dir=tmp_path, ssl_certfile=cert))
    result = CliRunner().invoke(
        main, ["serve", "--ssl-certfile", str(cert)], env={"TOKENMILL_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code == 2 and "both --ssl-certfile and --ssl-keyfile" in result.output
    assert not (tmp_path / "tokenmill.db").exists()


def test_trusted_proxies_turn_on_forwarded_headers_for_those_addresses_only(
    tmp_path: Path,
) -> None:
    assert tls_options(Settings(data_dir=tmp_path)) == {"proxy_headers": False}
    behind = tls_options(Settings(data_dir=tmp_path, trusted_proxies=["10.0.0.5", "10.1.0.0/16"]))
    assert behind == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5,10.1.0.0/16"}
