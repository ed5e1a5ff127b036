"""A Redis of its own for fault tests and the chaos run: paused, resumed, killed and restarted at
will, never the machine's shared Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from harness.server import free_port


class PrivateRedis:
    """``redis-server`` on a free loopback port (or with ``unix_socket``, on a socket file and no
    port), its data in ``directory``, every write on disk before it is answered (a restart loses
    nothing that was acknowledged)."""

    def __init__(self, directory: Path, unix_socket: bool = False) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock" if unix_socket else None
        self.port = 0 if unix_socket else free_port()
        self.url = f"unix://{self.socket}?db=0" if self.socket else f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        listen = ["--port", str(self.port), "--bind", "127.0.0.1"]
        if self.socket is not None:
            listen += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        durable = ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        command = ["redis-server", *listen, "--dir", str(self.directory), *durable, "--logfile", "redis.log"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
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
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=1)
