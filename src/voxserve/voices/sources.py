"""Where inline reference audio may come from: an allowed directory, or an allowed URL.

``audio_path`` (the CosyVoice3 /tts wrapper's) reads a file on the voxserve machine, but only
inside the configured ``references.dirs``: a path with ``..`` is refused
outright, and the path is resolved (symlinks followed) before it is
compared, so a link inside an allowed directory cannot lead out of it.
URLs are fetched only from hosts on ``references.url_hosts``, and never from
loopback, private, link-local or otherwise internal addresses unless
``references.url_private`` allows it, so a reference URL cannot be used to
probe the network voxserve sits in. The name is resolved once, and the
connection goes to the address that was checked (the name still in ``Host``
and in TLS's SNI and certificate check): a name that answers a public address
to the check and an internal one a moment later (DNS rebinding) reaches only
the public one. Redirects are not followed, and no proxy from the environment
is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Sequence
from pathlib import Path

import httpx

from voxserve.errors import Forbidden, InvalidRequest, NotFound, PayloadTooLarge

FETCH_DEADLINE = 20.0  # seconds for a whole reference download, however slowly the server sends
READ_TIMEOUT = 10.0  # seconds of silence between two reads


def _too_large(size: int, limit: int, param: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{param} is {size} bytes or more; the limit is {limit} bytes ({limit / 2**20:g} MiB)", param=param
    )


def read_allowed_path(raw: str, allowed: Sequence[Path], max_bytes: int, param: str = "audio_path") -> bytes:
    """The bytes of ``raw`` if it lies inside one of ``allowed``; Forbidden otherwise."""
    if not allowed:
        raise Forbidden(f"{param} is not enabled here: no references.dirs are configured", param=param)
    if "\x00" in raw or not raw.strip():
        raise InvalidRequest(f"{param} is not a usable path", param=param)
    path = Path(raw)
    if ".." in path.parts:
        raise Forbidden(f"{param} may not contain '..'", param=param)
    roots = [root.resolve() for root in allowed]
    resolved = (path if path.is_absolute() else roots[0] / path).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise Forbidden(f"{param} is outside the directories references may be read from", param=param)
    if not resolved.is_file():
        raise NotFound(f"{param} {raw!r} is not a file", param=param)
    size = resolved.stat().st_size
    if size > max_bytes:
        raise _too_large(size, max_bytes, param)
    return resolved.read_bytes()


def _host_allowed(host: str, hosts: Sequence[str]) -> bool:
    host = host.lower().rstrip(".")
    for pattern in hosts:
        pattern = pattern.lower().rstrip(".")
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _checked_addresses(host: str, port: int, allow_private: bool, param: str) -> list[str]:
    """The addresses to connect to, in the resolver's order, once every one is allowed."""
    try:
        addresses = [ipaddress.ip_address(found) for found in await _resolve(host, port)]
    except (socket.gaierror, ValueError) as exc:
        raise InvalidRequest(f"{param} host {host!r} does not resolve", param=param) from exc
    for address in addresses:
        if not allow_private and not address.is_global:
            raise Forbidden(
                f"{param} host {host!r} resolves to an internal address ({address}); not allowed", param=param
            )
    if not addresses:
        raise InvalidRequest(f"{param} host {host!r} does not resolve", param=param)
    return [str(address) for address in addresses]


async def fetch_allowed_url(
    url: str,
    hosts: Sequence[str],
    allow_private: bool,
    max_bytes: int,
    param: str = "audio",
    deadline: float = FETCH_DEADLINE,
) -> bytes:
    """The body at ``url`` if its host is allowed and public, up to ``max_bytes``, within ``deadline``
    seconds for the whole download (a server sending a byte every few seconds is cut off)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"{param} is not a valid URL", param=param) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"{param} must be an http or https URL", param=param)
    if not _host_allowed(parsed.host, hosts):
        raise Forbidden(f"{param} host {parsed.host!r} is not on references.url_hosts", param=param)
    addresses = await _checked_addresses(
        parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80), allow_private, param
    )
    try:
        async with asyncio.timeout(deadline):
            for address in addresses[:-1]:  # the next address when one cannot be reached (no IPv6 route...)
                with contextlib.suppress(httpx.ConnectError):
                    return await _download(parsed, address, max_bytes, param)
            return await _download(parsed, addresses[-1], max_bytes, param)
    except TimeoutError:
        raise InvalidRequest(
            f"{param} was not fetched within {deadline:g} s; serve the file faster or upload it", param=param
        ) from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"{param} could not be fetched ({type(exc).__name__})", param=param) from exc


async def _download(url: httpx.URL, address: str, max_bytes: int, param: str) -> bytes:
    """GET ``url`` from ``address``: the host name goes only in ``Host`` and in TLS."""
    pinned = url.copy_with(host=address)
    host = url.netloc.decode("ascii").rpartition("@")[2]
    async with (
        httpx.AsyncClient(timeout=READ_TIMEOUT, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "GET", pinned, headers={"Host": host}, extensions={"sni_hostname": url.host}
        ) as response,
    ):
        body = bytearray()
        if response.status_code != 200:
            raise InvalidRequest(f"{param} answered HTTP {response.status_code}", param=param)
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(len(body), max_bytes, param)
        return bytes(body)
