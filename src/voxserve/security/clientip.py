"""The client's address: the peer's, or what a trusted proxy in front of voxserve says it is.

``X-Forwarded-For`` and ``X-Real-IP`` are believed only when the peer is one
of ``auth.trusted_proxies``; anyone else could write any address there and
walk around per-address limits. In ``X-Forwarded-For`` the client is the
rightmost address that is not itself a trusted proxy (each proxy appends
the address it saw).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, headers: Mapping[str, str], trusted: tuple[Network, ...]) -> str:
    """The client's address for limits and logs."""
    peer = peer or "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    forwarded = [part.strip() for part in headers.get("x-forwarded-for", "").split(",") if part.strip()]
    for address in reversed(forwarded):
        if not _trusted(address, trusted):
            return address
    real = headers.get("x-real-ip", "").strip()
    return real or (forwarded[0] if forwarded else peer)
