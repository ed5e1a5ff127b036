"""Running a speech program as a child process, confined and bounded.

What engines that wrap a command line share: an argument list (never a
shell), stdin closed or fed the text, stderr kept as a bounded tail while the
program runs (a chatty or flooding program costs no more memory), the
process killed when the request is cancelled or times out, stdout read up to
a limit, and the tail of stderr in the error. A run that fails says whether
it looks like running out of memory, so a pool lowers its limit instead of
ejecting.

:func:`run_program` runs one program to its end (a segment per run);
:class:`Program` is a started one that the caller watches while it works
(a batch that writes one file per segment).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence

from voxserve.engines.remote import failure
from voxserve.errors import EngineError, EngineTimeout, EngineUnavailable

STDERR_KEPT = 64 * 1024  # bytes of stderr kept while a program runs
READ_CHUNK = 64 * 1024


async def _drain(stream: asyncio.StreamReader | None) -> None:
    """Read to the end and drop it: a pipe left unread is never closed, and then (Python 3.11) neither is
    the process's ``wait()``."""
    while stream is not None and await stream.read(READ_CHUNK):
        pass


async def _read_bounded(stream: asyncio.StreamReader, limit: int, engine: str) -> bytes:
    data = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        data += chunk
        if len(data) > limit:
            raise EngineUnavailable(f"engine {engine!r} wrote more than {limit} bytes; killed")
    return bytes(data)


class Program:
    """A started child process whose stderr is read as it comes, keeping the last ``STDERR_KEPT`` bytes.

    Use it as an async context manager: leaving the block kills the process if it still runs (a
    timeout, a cancelled request, an error) and reaps it, so no run outlives its request.
    """

    def __init__(self, engine: str, process: asyncio.subprocess.Process) -> None:
        self.engine = engine
        self.process = process
        self._stderr = bytearray()
        self._reader = asyncio.ensure_future(self._keep_stderr())

    @classmethod
    async def start(
        cls,
        engine: str,
        arguments: Sequence[str],
        *,
        stdin: bool = False,
        stdout: bool = False,
        environment: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Program:
        """Start ``arguments`` (stdin and stdout are pipes when asked for, else closed)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *arguments,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if stdout else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=dict(environment) if environment is not None else None,
                cwd=cwd,
                start_new_session=True,  # its own process group: killing it kills what it started too
            )
        except OSError as exc:
            raise EngineUnavailable(f"engine {engine!r} could not start {arguments[0]!r}: {exc}") from exc
        return cls(engine, process)

    async def _keep_stderr(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while chunk := await stream.read(READ_CHUNK):
            self._stderr += chunk
            del self._stderr[:-STDERR_KEPT]

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def stderr(self) -> str:
        """What the program has written to stderr so far (its last ``STDERR_KEPT`` bytes)."""
        return self._stderr.decode("utf-8", "replace")

    async def wait(self) -> int:
        """Its exit status, once it has exited and its stderr is read to the end."""
        await self._reader
        return await self.process.wait()

    def error(self) -> EngineError:
        """The error its non-zero exit stands for, with stderr's tail."""
        return failure(self.engine, f"exited with {self.returncode}", self.stderr)

    async def __aenter__(self) -> Program:
        return self

    def kill(self) -> None:
        """Kill the program and everything it started (a model's worker processes hold the GPU too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Kill it if it still runs, and reap it."""
        # timed out, over a limit or cancelled: never leave it running; and when it has exited, what it
        # left behind would still hold the pipes (and perhaps a GPU)
        self.kill()
        await asyncio.gather(_drain(self.process.stdout), self._reader, return_exceptions=True)
        await self.process.wait()


async def run_program(
    engine: str,
    arguments: Sequence[str],
    *,
    timeout: float,
    stdin: bytes | None = None,
    capture_stdout: bool = False,
    max_stdout: int = 64 * 1024 * 1024,
    environment: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> bytes:
    """Run ``arguments`` to the end; what it wrote to stdout (empty unless captured), or an error of
    the tree unless it exits 0 within ``timeout``."""
    program = await Program.start(
        engine, arguments, stdin=stdin is not None, stdout=capture_stdout, environment=environment, cwd=cwd
    )
    process = program.process

    async def talk() -> bytes:
        if stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(stdin)
                await process.stdin.drain()
            process.stdin.close()
        stdout = await _read_bounded(process.stdout, max_stdout, engine) if process.stdout else b""
        await program.wait()
        return stdout

    async with program:
        try:
            stdout = await asyncio.wait_for(talk(), timeout)
        except TimeoutError as exc:
            raise EngineTimeout(f"engine {engine!r} ran longer than {timeout:g} s; killed") from exc
    if program.returncode != 0:
        raise program.error()
    return stdout
