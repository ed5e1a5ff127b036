"""Running a speech program as a child process, confined and bounded.

What engines that wrap a command line share: an argument list (never a
shell), stdin closed or fed the text, a hard timeout, the process killed
when the request is cancelled or times out, stdout read up to a limit, and
the tail of stderr in the error. A run that fails says whether it looks like
running out of memory, so a pool lowers its limit instead of ejecting.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from voxserve.engines.remote import OUT_OF_MEMORY
from voxserve.errors import EngineOverloaded, EngineTimeout, EngineUnavailable

STDERR_TAIL = 400
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
    try:
        process = await asyncio.create_subprocess_exec(
            *arguments,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if capture_stdout else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(environment) if environment is not None else None,
            cwd=cwd,
        )
    except OSError as exc:
        raise EngineUnavailable(f"engine {engine!r} could not start {arguments[0]!r}: {exc}") from exc

    async def talk() -> tuple[bytes, bytes]:
        assert process.stderr is not None
        if stdin is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(stdin)
                await process.stdin.drain()
            process.stdin.close()
        out = _read_bounded(process.stdout, max_stdout, engine) if process.stdout else asyncio.sleep(0, b"")
        readers = [
            asyncio.ensure_future(out),
            asyncio.ensure_future(_read_bounded(process.stderr, max_stdout, engine)),
        ]
        try:
            stdout, stderr = await asyncio.gather(*readers)
        finally:  # one failed (or all were cancelled): the other stops reading too
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        await process.wait()
        return stdout, stderr

    try:
        stdout, stderr = await asyncio.wait_for(talk(), timeout)
    except TimeoutError as exc:
        raise EngineTimeout(f"engine {engine!r} ran longer than {timeout:g} s; killed") from exc
    finally:
        if process.returncode is None:  # timed out, over its output limit or cancelled: never leave it
            process.kill()
            await asyncio.gather(_drain(process.stdout), _drain(process.stderr))
            await process.wait()
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip()[-STDERR_TAIL:] or "(no output on stderr)"
        message = f"engine {engine!r} exited with {process.returncode}: {tail}"
        raise EngineOverloaded(message) if OUT_OF_MEMORY.search(tail) else EngineUnavailable(message)
    return stdout
