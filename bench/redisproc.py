"""A Redis of its own for fault tests and the chaos run: paused, resumed, killed and restarted at
will, never the machine's shared Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from bench.server import free_port


class PrivateRedis:
    """``redis-server`` on a free loopback port, its data in ``directory``, every write on disk before
    it is answered (a restart loses nothing that was acknowledged)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server did not start; see {self.directory}/redis.log"
                    ) from None
                time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, as on a stalled machine."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Killed without warning, then started again on the same port and data."""
        self.stop(signal.SIGKILL)
        self.start()

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(how)
            self.process.wait(10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)
