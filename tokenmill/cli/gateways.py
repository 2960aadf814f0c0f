"""``serve --gateways N``: N gateway processes on one port, kept running by the controller.

Each gateway is ``tokenmill gateway`` in a process of its own (its own event loop and core),
bound with SO_REUSEPORT to the same address, so the kernel spreads connections among them.
A gateway that dies is started again after a short back-off; all of them get SIGTERM when
the controller stops, and die with it if it is killed.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

from tokenmill.fleet.local import die_with_parent, stop_process
from tokenmill.settings import Settings

log = logging.getLogger(__name__)

CHECK_SECONDS = 0.5
RESTART_BACKOFF_SECONDS = 1.0


def gateway_command(settings: Settings) -> list[str]:
    """The command of one gateway, with what ``serve`` was given on its command line (the
    rest of the settings reach it through the environment, as they reached ``serve``)."""
    command = [
        sys.executable,
        "-m",
        "tokenmill.cli.main",
        "gateway",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
    ]
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        command += ["--ssl-certfile", str(settings.ssl_certfile)]
        command += ["--ssl-keyfile", str(settings.ssl_keyfile)]
    return command


class GatewaySupervisor:
    def __init__(self, command: list[str], count: int) -> None:
        self.command = command
        self.count = count
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count
        self.restarts = 0

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p is not None and p.poll() is None]

    async def run(self) -> None:
        try:
            while True:
                for index, process in enumerate(self.processes):
                    if process is None or process.poll() is not None:
                        await self._start(index, process)
                await asyncio.sleep(CHECK_SECONDS)
        finally:
            await asyncio.to_thread(self.stop)

    async def _start(self, index: int, before: subprocess.Popen[bytes] | None) -> None:
        if before is not None:
            log.error("gateway %d (pid %d) exited with %s; starting it again", index,
                      before.pid, before.returncode)  # fmt: skip
            self.restarts += 1
            await asyncio.sleep(RESTART_BACKOFF_SECONDS)
        # Started from the event loop's thread, which lives as long as this process: the
        # death signal (die_with_parent) follows this process, not a passing thread.
        self.processes[index] = subprocess.Popen(
            self.command, preexec_fn=die_with_parent, stdin=subprocess.DEVNULL
        )

    def stop(self) -> None:
        for process in self.processes:
            if process is not None:
                stop_process(process, grace_seconds=20)
