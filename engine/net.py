"""Network helpers shared by the engine, the model server and their clients: loopback, free ports, bearer tokens."""

from __future__ import annotations

import hmac
import ipaddress
import socket

WILDCARD_HOSTS = ("0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the system picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_host(host: str) -> str:
    """``host`` as it appears in a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def local_host(host: str) -> str:
    """Where this machine reaches a server bound to ``host`` (a wildcard bind is reached on loopback)."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else url_host(host)


def bearer_matches(header: str, secret: str) -> bool:
    """Constant-time check of an ``Authorization: Bearer <secret>`` header."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), secret.encode())
