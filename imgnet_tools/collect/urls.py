"""URL safety: which URLs collect will fetch, and which addresses it will connect to.

Only absolute ``http`` and ``https`` URLs with a host are fetched (``bad_url`` otherwise). Hosts
must be global addresses: a URL whose host is, or resolves only to, a loopback, link-local,
private, shared (CGNAT), multicast, reserved or unspecified address is refused (``private_host``),
so a URL list cannot make collect probe the machine it runs on or its network (SSRF). The check
runs on the URL's own host before connecting (:func:`check_url`, for IP literals) and again on
the addresses DNS returns, at connect time (:class:`AddressPolicy`, used by the fetcher's
resolver), which also covers every redirect and a name that resolves differently the second time.
``--allow-private-hosts`` lifts the rule; ``--allow-host HOST:PORT`` lifts it for one endpoint.

Nothing from a URL ever reaches a file name: files are named by the sha256 of their bytes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_URL_LENGTH = 8192
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SCHEMES = ("http", "https")


@dataclass(frozen=True)
class AddressPolicy:
    """Which endpoints may be connected to: global addresses always; others only when allowed."""

    allow_private: bool = False
    allow_hosts: tuple[str, ...] = ()

    def allows_endpoint(self, host: str, port: int) -> bool:
        """True when ``host:port`` is named by ``--allow-host`` (or private hosts are allowed)."""
        if self.allow_private:
            return True
        host = host.strip("[]").lower()
        return f"{host}:{port}" in self._allowed() or host in self._allowed()

    def allows_address(self, address: str) -> bool:
        """True for a global unicast address (or when private hosts are allowed)."""
        return self.allow_private or is_global_address(address)

    def _allowed(self) -> frozenset[str]:
        cached: frozenset[str] | None = self.__dict__.get("_cache")
        if cached is None:
            cached = frozenset(h.strip().lower().replace("[", "").replace("]", "") for h in self.allow_hosts)
            object.__setattr__(self, "_cache", cached)
        return cached


def is_global_address(address: str) -> bool:
    """True when ``address`` (an IP literal) is a global unicast address; False for loopback,
    link-local, private, shared, multicast, reserved, unspecified and non-addresses. IPv4-mapped
    and 6to4/Teredo-embedded IPv6 addresses are judged by the IPv4 address they carry."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return is_global_address(str(inner))
    return bool(ip.is_global) and not ip.is_multicast


def ip_literal(host: str) -> str | None:
    """``host`` as an IP address string when it is an IP literal (``[::1]`` included), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str | None, policy: AddressPolicy) -> tuple[str | None, str | None]:
    """(reason, detail) for a URL collect must not fetch; (None, None) for one it may.

    Checks the text only (no DNS): scheme, host, port, length, control characters, and a host
    that is itself a non-global IP literal. Names are checked when they resolve.
    """
    from yarl import URL

    if not url:
        return "bad_url", "no URL"
    if len(url) > MAX_URL_LENGTH:
        return "bad_url", f"URL longer than {MAX_URL_LENGTH} characters"
    if _CONTROL.search(url):
        return "bad_url", "control character in the URL"
    try:
        parsed = URL(url)
        scheme, host, port = parsed.scheme.lower(), parsed.raw_host, parsed.port
    except (ValueError, TypeError, UnicodeError) as exc:
        return "bad_url", f"malformed URL: {exc}"
    if scheme not in SCHEMES:
        return "bad_url", f"scheme {scheme or '(none)'!r} is not http or https"
    if not host:
        return "bad_url", "URL has no host"
    if port is None or not 0 < port < 65536:
        return "bad_url", "URL has no valid port"
    literal = ip_literal(host)
    if literal is not None and not policy.allows_address(literal) and not policy.allows_endpoint(literal, port):
        return "private_host", f"{literal} is not a global address"
    return None, None
