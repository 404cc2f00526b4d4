"""Which hosts are this machine: plain http:// is allowed only to a local stand-in on loopback. Pure."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    """``localhost``, ``127.0.0.0/8`` or ``::1``."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_http(url: str) -> bool:
    """A plain ``http://`` URL to a loopback host (a stand-in on this machine)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and is_loopback(parts.hostname)
