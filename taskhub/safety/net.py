"""Outgoing HTTP that can't be turned against our own network (SSRF guard).

Only http(s) URLs; every address a host name resolves to is checked, and the connection is made
to the checked address itself — not to a second lookup — so DNS rebinding can't slip a private
address in between the check and the connect. Private, loopback, link-local (cloud metadata at
169.254.169.254), carrier-grade NAT, multicast, reserved, IPv6 unique-local and site-local,
IPv4-mapped private addresses and the IPv6 ranges that carry or translate to IPv4 (IPv4-compatible
``::/96``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``) are refused, and so
is any port but ``TASKHUB["ALLOWED_PORTS"]`` (80 and 443 unless more are listed) — unless
``TASKHUB["ALLOW_PRIVATE_TARGETS"]`` (or the caller) allows private targets, which turns both
checks off. Redirects are never followed.

Webhook deliveries, image downloads and data syncs all use :func:`guarded_client`.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from typing import Any

import httpcore
import httpx
from httpcore._backends.sync import SyncBackend

from ..conf import taskhub_settings

_BLOCKED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
        "2001:db8::/32",
        "64:ff9b::/96",
        "::/96",
        "2002::/16",
        "64:ff9b:1::/48",
        "fec0::/10",
    )
]


class BlockedAddress(httpx.ConnectError):
    """The target resolves to an address taskhub refuses to connect to."""


class BlockedPort(BlockedAddress):
    """The target's port is not in ``TASKHUB["ALLOWED_PORTS"]``."""


class UnsupportedScheme(ValueError):
    """Only http and https are allowed."""


def is_blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _BLOCKED_NETWORKS if ip.version == network.version)


def check_url(url: str) -> None:
    """Refuse non-http(s) URLs early, before any lookup."""
    scheme = httpx.URL(url).scheme
    if scheme not in ("http", "https"):
        raise UnsupportedScheme(f"only http and https URLs are allowed, not {scheme!r}")


def port_allowed(port: int) -> bool:
    """Whether outgoing requests may use this port (when private targets are not allowed)."""
    return port in set(taskhub_settings.ALLOWED_PORTS)


def _private_allowed() -> bool:
    return bool(taskhub_settings.ALLOW_PRIVATE_TARGETS)


class GuardedBackend(SyncBackend):
    """Resolves, checks every address, then connects to a checked address."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options=None,
    ):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [info[4][0] for info in infos]
        if not self.allow_private:
            blocked = [a for a in addresses if is_blocked(a)]
            if blocked:
                raise BlockedAddress(f"{host} resolves to a refused address ({blocked[0]})")
            if not port_allowed(port):
                # Another port reaches services that are not web servers (SSH, SMTP, Redis …).
                raise BlockedPort(f"port {port} of {host} is not an allowed port (ALLOWED_PORTS)")
        return super().connect_tcp(addresses[0], port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, *, allow_private: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        pool = self._pool
        self._pool = httpcore.ConnectionPool(
            ssl_context=pool._ssl_context,
            max_connections=pool._max_connections,
            max_keepalive_connections=pool._max_keepalive_connections,
            keepalive_expiry=pool._keepalive_expiry,
            http1=pool._http1,
            http2=pool._http2,
            network_backend=GuardedBackend(allow_private),
        )


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """Building an SSL context loads the CA bundle (tens of milliseconds of CPU); every client
    shares one. It holds no per-connection state, so sharing it is safe across threads."""
    return httpx.create_ssl_context()


def guarded_client(
    *, timeout: float = 10.0, allow_private: bool | None = None, **kwargs: Any
) -> httpx.Client:
    """An httpx.Client that refuses SSRF targets and never follows redirects."""
    allow = _private_allowed() if allow_private is None else allow_private
    return httpx.Client(
        transport=GuardedTransport(allow_private=allow, verify=_shared_ssl_context()),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )
