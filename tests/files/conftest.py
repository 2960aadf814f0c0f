"""moto's S3-compatible server, in this process over real HTTP, standing in for S3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def moto_s3_server_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # a test extra, imported here

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto takes any credentials; boto3's chain reads these."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def moto_s3_bucket(moto_s3_server_url: str, s3_credentials: None) -> tuple[Any, str]:
    """A fresh bucket on moto's server, and a boto3 client for it."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_s3_server_url, region_name="us-east-1")
    bucket = f"tm-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket
