"""The database going away under a gateway (PostgreSQL restarting, a network cut) is a 503
with Retry-After, not a 500; and the gateway answers again once it is back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.conftest import postgres_schema
from tests.gateway.conftest import admin_keys
from tokenmill.clock import SystemClock
from tokenmill.gateway.app import build_app
from tokenmill.gateway.compose import build_gateway
from tokenmill.gateway.routing import Router
from tokenmill.settings import Settings
from tokenmill.store.db import Database


class Relay:
    """A TCP relay to PostgreSQL that can be cut: every connection through it closed, and
    new ones refused, until it is opened again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_an_unreachable_database_is_a_503_until_it_is_back(
    postgres_server: str, tmp_path: Path
) -> None:
    relay = Relay(
        make_url(postgres_server).host or "127.0.0.1", make_url(postgres_server).port or 5432
    )
    await relay.open()
    with postgres_schema(postgres_server) as url:
        through = make_url(url).set(host="127.0.0.1", port=relay.port)
        db = Database(through.render_as_string(hide_password=False))
        await asyncio.to_thread(db.migrate)
        clock = SystemClock()
        keys = await asyncio.to_thread(admin_keys, db, clock)
        gateway = await asyncio.to_thread(
            build_gateway, Settings(data_dir=tmp_path), db, clock, Router(),
            admission=False, journal=False, worker=False,
        )  # fmt: skip
        transport = httpx.ASGITransport(app=build_app(gateway.services))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                headers = {"authorization": f"Bearer {keys.platform}"}
                assert (await http.get("/admin/v1/tenants", headers=headers)).status_code == 200
                await relay.cut()
                other = {"authorization": f"Bearer {keys.alpha_admin}"}  # not in the key cache
                reply = await http.get("/v1/models", headers=other)
                assert reply.status_code == 503, reply.text
                assert reply.json()["error"]["code"] == "database_unavailable"
                assert reply.headers["retry-after"] == "2"
                await relay.open()
                reply = await http.get("/v1/models", headers=other)
                assert reply.status_code == 200, reply.text
        finally:
            gateway.close()
            db.dispose()
            await relay.cut()
