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
from dataclasses import dataclass
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
    """``host`` is on the list: named, under a ``*.`` pattern, or the list holds ``*``."""
    host = host.lower().rstrip(".")
    for pattern in hosts:
        pattern = pattern.lower().rstrip(".")
        if pattern == "*" or host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to the IPv4 network (mapped, 6to4, NAT64, the old
    IPv4-compatible form, Teredo's client), which is where a connection to it ends up."""
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if any(address in network for network in _NAT64) or int(address) >> 32 == 0:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.teredo[1] if address.teredo else None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address on the public internet: global, not multicast, and (for IPv6) carrying no IPv4
    address that is not."""
    if address.is_multicast or not address.is_global:
        return False
    embedded = _embedded_ipv4(address) if isinstance(address, ipaddress.IPv6Address) else None
    return embedded is None or is_public(embedded)


async def _checked_addresses(host: str, port: int, allow_private: bool, param: str) -> list[str]:
    """The addresses to connect to, in the resolver's order, once every one is allowed."""
    try:
        addresses = [ipaddress.ip_address(found) for found in await _resolve(host, port)]
    except (socket.gaierror, ValueError) as exc:
        raise InvalidRequest(f"{param} host {host!r} does not resolve", param=param) from exc
    for address in addresses:
        if not allow_private and not is_public(address):
            raise Forbidden(
                f"{param} host {host!r} resolves to an internal address ({address}); not allowed", param=param
            )
    if not addresses:
        raise InvalidRequest(f"{param} host {host!r} does not resolve", param=param)
    return [str(address) for address in addresses]


@dataclass(frozen=True)
class Target:
    """A URL whose host is allowed, and the addresses it resolved to, every one of them allowed:
    requests go to these addresses, never to what the name resolves to later."""

    url: httpx.URL
    addresses: list[str]

    @property
    def host(self) -> str:
        """The URL's host as sent in ``Host`` (its port too, when it names one)."""
        return self.url.netloc.decode("ascii").rpartition("@")[2]

    def pinned(self, address: str) -> httpx.URL:
        return self.url.copy_with(host=address)


async def checked_target(
    url: str, hosts: Sequence[str], allow_private: bool, param: str, listed_as: str
) -> Target:
    """``url`` if it is http(s), its host is on ``hosts`` (the setting ``listed_as``) and resolves
    only to addresses allowed (public ones, unless ``allow_private``); a 4xx naming ``param`` if not."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"{param} is not a valid URL", param=param) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"{param} must be an http or https URL", param=param)
    if not _host_allowed(parsed.host, hosts):
        raise Forbidden(f"{param} host {parsed.host!r} is not on {listed_as}", param=param)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed, await _checked_addresses(parsed.host, port, allow_private, param))


async def post_to(target: Target, content: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``content`` to a checked target (at its first address that can be reached): the answer's
    status. Redirects are not followed, no proxy is used, the answer's body is not read."""
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for number, address in enumerate(target.addresses):
            request = client.build_request(
                "POST",
                target.pinned(address),
                content=content,
                headers={**headers, "Host": target.host},
                extensions={"sni_hostname": target.url.host},
            )
            try:
                response = await client.send(request, stream=True)  # its body is never read
            except httpx.ConnectError:
                if number + 1 == len(target.addresses):
                    raise
                continue
            await response.aclose()
            return response.status_code
    raise AssertionError("a checked target has an address")


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
    target = await checked_target(url, hosts, allow_private, param, "references.url_hosts")
    addresses = target.addresses
    try:
        async with asyncio.timeout(deadline):
            for address in addresses[:-1]:  # the next address when one cannot be reached (no IPv6 route...)
                with contextlib.suppress(httpx.ConnectError):
                    return await _download(target, address, max_bytes, param)
            return await _download(target, addresses[-1], max_bytes, param)
    except TimeoutError:
        raise InvalidRequest(
            f"{param} was not fetched within {deadline:g} s; serve the file faster or upload it", param=param
        ) from None
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"{param} could not be fetched ({type(exc).__name__})", param=param) from exc


async def _download(target: Target, address: str, max_bytes: int, param: str) -> bytes:
    """GET the target from ``address``: the host name goes only in ``Host`` and in TLS."""
    async with (
        httpx.AsyncClient(timeout=READ_TIMEOUT, follow_redirects=False, trust_env=False) as client,
        client.stream(
            "GET",
            target.pinned(address),
            headers={"Host": target.host},
            extensions={"sni_hostname": target.url.host},
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
