"""Which network addresses the image downloader may connect to.

Image URLs come from the server, so a hostile or compromised server could point them (or a
redirect) at this computer's own services, the lab network or a cloud metadata service
(169.254.169.254), and read the answer back from the error results. Images are fetched only
from public addresses, unless the configured server itself is on a local address: then
loopback and private addresses are allowed too (a lab server with its image store next to
it), and link-local ones only when the server is link-local itself. Unspecified (0.0.0.0),
multicast and reserved addresses are never allowed.

The check runs on every connection after DNS resolution and therefore after every redirect
(``ml.http_guard``); the connection goes to the address that was checked.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from trapgui.ml.http_guard import Resolver

log = logging.getLogger(__name__)

PUBLIC, LOOPBACK, PRIVATE, LINK_LOCAL, RESERVED = (
    "public", "loopback", "private", "link-local", "reserved")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not global, not "private"


def address_kind(ip: str) -> str:
    """``public``, ``loopback``, ``private``, ``link-local`` or ``reserved``."""
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return RESERVED
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if addr.is_unspecified or addr.is_multicast:
        return RESERVED
    if addr.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return LOOPBACK
    if addr.is_link_local:
        return LINK_LOCAL
    if addr.is_reserved:
        return RESERVED
    if addr.is_global:
        return PUBLIC
    if addr.is_private or (addr.version == 4 and addr in _SHARED):
        return PRIVATE
    return RESERVED


@dataclass(frozen=True)
class AddressPolicy:
    allowed: frozenset[str] = frozenset({PUBLIC})

    def allows(self, ip: str) -> bool:
        return address_kind(ip) in self.allowed

    @classmethod
    def public_only(cls) -> "AddressPolicy":
        return cls()

    @classmethod
    def for_server(cls, base_url: str, resolve: Resolver | None = None) -> "AddressPolicy":
        """The policy for image URLs handed out by the server at ``base_url``."""
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        kinds = {address_kind(ip) for ip in _resolve(host, port, resolve)}
        allowed = {PUBLIC}
        if kinds & {LOOPBACK, PRIVATE}:
            allowed |= {LOOPBACK, PRIVATE}
        if LINK_LOCAL in kinds:
            allowed.add(LINK_LOCAL)
        return cls(frozenset(allowed))


def _resolve(host: str, port: int, resolve: Resolver | None) -> list[str]:
    if not host:
        return []
    if resolve is not None:
        return list(resolve(host, port))
    try:
        ipaddress.ip_address(host.split("%")[0])
        return [host]
    except ValueError:
        pass
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except OSError as exc:  # the worker cannot reach it either; stay strict
        log.info("Could not resolve the server %s (%s); images only from public addresses.",
                 host, type(exc).__name__)
        return []
