"""SSRF protection for webhook targets: which URLs and addresses a delivery may reach, and
HTTP connections pinned to the address that was checked.

The check runs at delivery time, after DNS, not only when an endpoint is saved: a name that
resolved to a public address yesterday may resolve to 127.0.0.1 today. The connection then
goes to the very address that passed (never to a second lookup, which DNS rebinding could
answer differently), while TLS still sends the URL's host name (SNI) and checks the
certificate against it.

Policy (docs/webhooks.md, "SSRF"):
- live endpoints must use https;
- every address a name resolves to must be public (globally routable), else the target is
  refused; loopback, private, link-local, multicast, reserved, shared (CGNAT), unspecified
  and IPv4 embedded in IPv6 (mapped, 6to4, Teredo, NAT64) count as private;
- WEBHOOKS_ALLOW_PRIVATE_TARGETS=true (development and tests) allows private and loopback
  targets, over http too, in every environment; public targets in live still need https.
"""

import contextlib
import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

from common.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(InvalidInput):
    """A webhook URL or the address it resolves to may not be reached."""

    code = "webhook_target_refused"
    title = "Webhook target not allowed"


@dataclass(frozen=True)
class Target:
    """A URL that passed the check, with the address to connect to."""

    scheme: str
    host: str  # the URL's host name (Host header, SNI, certificate check)
    port: int
    address: str  # the checked IP address the connection goes to
    path: str  # path and query, as sent in the request line
    host_header: str


def private_targets_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE_TARGETS", False))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# Not global, though Python's flags let them through: IPv6 site-local (deprecated, but
# routed inside some networks) and the IPv4 service-continuity prefix.
NOT_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("192.0.0.0/24"))


def address_is_public(address: IPAddress) -> bool:
    if any(address in network for network in NOT_PUBLIC if address.version == network.version):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_is_public(embedded)
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def _split(url: str) -> tuple[str, str, int, str, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(
            f"The URL is not valid: {error}.", code="webhook_url_invalid"
        ) from error
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused("Webhook URLs must use http or https.", code="webhook_url_scheme")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefused("The URL has no host.", code="webhook_url_invalid")
    if parts.username or parts.password:
        raise TargetRefused("Webhook URLs may not carry credentials.", code="webhook_url_invalid")
    default_port = 443 if scheme == "https" else 80
    port = port or default_port
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    netloc_host = f"[{host}]" if ":" in host else host
    host_header = netloc_host if port == default_port else f"{netloc_host}:{port}"
    return scheme, host, port, path, host_header


def url_check(url: str, *, environment: str) -> None:
    """The checks that need no DNS, for saving an endpoint: scheme (https in live), a host,
    and no literal private address unless private targets are allowed."""
    scheme, host, _port, _path, _header = _split(url)
    allowed = private_targets_allowed()
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not allowed and not address_is_public(literal):
        raise TargetRefused(
            "Webhook URLs may not point at private or loopback addresses.",
            code="webhook_target_private",
        )
    # A name may resolve to a private address (allowed then); delivery checks after DNS.
    maybe_private = literal is None or not address_is_public(literal)
    if environment == "live" and scheme != "https" and not (allowed and maybe_private):
        raise TargetRefused("Live webhook URLs must use https.", code="webhook_url_https")


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise TargetRefused(
            f"The host name does not resolve: {error}.", code="webhook_dns_failed"
        ) from error
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused("The host name does not resolve.", code="webhook_dns_failed")
    return addresses


def target_check(url: str, *, environment: str) -> Target:
    """Resolves the URL's host and applies the policy to every address it resolves to;
    returns the target to connect to, or raises TargetRefused."""
    scheme, host, port, path, host_header = _split(url)
    addresses = resolve(host, port)
    private = [address for address in addresses if not address_is_public(address)]
    allowed = private_targets_allowed()
    if private and not allowed:
        raise TargetRefused(
            f"{host} resolves to a non-public address ({private[0]}).",
            code="webhook_target_private",
        )
    if environment == "live" and scheme != "https" and not (allowed and private):
        raise TargetRefused("Live webhook URLs must use https.", code="webhook_url_https")
    return Target(
        scheme=scheme,
        host=host,
        port=port,
        address=str(addresses[0]),
        path=path,
        host_header=host_header,
    )


class Deadlines:
    """A hard limit on a whole request. urllib3's timeouts bound each socket operation, so a
    receiver that drips its answer a byte at a time could hold a delivery thread (and the
    delivery's lease) for ever; a watchdog thread shuts the socket of any request past its
    deadline, and the blocked read fails at once."""

    def __init__(self) -> None:
        self._active: dict[int, list] = {}  # thread id -> [deadline, connection, expired]
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def begin(self, seconds: float) -> None:
        with self._lock:
            self._active[threading.get_ident()] = [time.monotonic() + seconds, None, False]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._watch, daemon=True)
                self._thread.start()

    def track(self, connection) -> None:
        entry = self._active.get(threading.get_ident())
        if entry is not None:
            entry[1] = connection

    def end(self) -> bool:
        """Stops watching this thread's request; True when it was cut at its deadline."""
        with self._lock:
            entry = self._active.pop(threading.get_ident(), None)
        return bool(entry and entry[2])

    def _watch(self) -> None:
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            with self._lock:
                entries = list(self._active.values())
            for entry in entries:
                deadline, connection, expired = entry
                sock = getattr(connection, "sock", None)
                if not expired and now >= deadline and sock is not None:
                    entry[2] = True
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)


deadlines = Deadlines()


class _Tracked:
    """Pools that tell the watchdog which connection the current request uses."""

    def _get_conn(self, timeout=None):
        connection = super()._get_conn(timeout)
        deadlines.track(connection)
        return connection


class _HTTPPool(_Tracked, urllib3.HTTPConnectionPool):
    pass


class _HTTPSPool(_Tracked, urllib3.HTTPSConnectionPool):
    pass


class PinnedPools:
    """Connection pools keyed by (scheme, checked address, port, host name), so keep-alive
    connections are reused across deliveries without ever connecting anywhere unchecked.
    Bounded: the least recently used pool is closed when there are too many."""

    def __init__(self, *, max_pools: int = 200):
        self.max_pools = max_pools
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, target: Target) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, target.address, target.port, target.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            # Keep-alive connections per endpoint: as many as attempts may be in flight.
            connections = int(getattr(settings, "WEBHOOKS_ENDPOINT_CONCURRENCY", 4))
            if target.scheme == "https":
                pool = _HTTPSPool(
                    target.address,
                    target.port,
                    maxsize=max(connections, 32),
                    block=False,
                    retries=False,
                    server_hostname=target.host,
                    assert_hostname=target.host,
                    cert_reqs="CERT_REQUIRED",
                )
            else:
                pool = _HTTPPool(
                    target.address,
                    target.port,
                    maxsize=max(connections, 32),
                    block=False,
                    retries=False,
                )
            self._pools[key] = pool
            while len(self._pools) > self.max_pools:
                _key, oldest = self._pools.popitem(last=False)
                oldest.close()
            return pool

    def clear(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.close()
            self._pools.clear()


pools = PinnedPools()
