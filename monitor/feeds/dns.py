"""Name resolution for the fetcher: answers cached for their DNS TTL, and the private-address
guard.

Why our own resolver: aiohttp's connector cache keeps every answer for one fixed time
(`ttl_dns_cache`, 10 s by default) whatever the record's TTL, and its threaded resolver
(`getaddrinfo`) never sees a TTL. c-ares (through aiodns) does: each `getaddrinfo` node carries
the TTL of its record. `CachingResolver` keeps each answer for the smallest TTL among its
addresses (at most `MAX_TTL`), and lets concurrent lookups of one name share one query, so a
pass over a thousand feeds on fifty hosts asks fifty questions. Names c-ares cannot answer (an
nsswitch source such as mDNS or LDAP) get a second try through the system resolver, whose
answers carry no TTL and are kept `FALLBACK_TTL`. Failures are not cached.

The guard: `address_kind` names what is not a public address (loopback, private, link-local,
...), looking through IPv4-mapped, 6to4 and NAT64 IPv6 forms; `PublicOnlyResolver` drops such
addresses from the answers for feeds that must stay on the public internet, and refuses the
name when nothing public is left.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult

from monitor.errors import PrivateAddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_TTL = 3600.0  # seconds an answer is kept at most, whatever its TTL says
FALLBACK_TTL = 60.0  # seconds for an answer without a TTL (system resolver)
_PRUNE_EVERY = 1024  # cache insertions between sweeps of expired entries

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# (host, port, family) -> (addresses, seconds to keep them or None for "no TTL known")
Answer = tuple[list[ResolveResult], float | None]
Lookup = Callable[[str, int, socket.AddressFamily], Awaitable[Answer]]


def address_kind(ip: IPAddress) -> str | None:
    """None for a public (globally routable) address, else the kind of address it is."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_kind(embedded)
            if inner is not None or ip.ipv4_mapped is not None:
                return inner
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "non-public"
    return None


def parse_ip(text: str) -> IPAddress | None:
    """An IP address literal (brackets and an IPv6 zone allowed) or None for a host name."""
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


@dataclass(slots=True)
class _Entry:
    results: list[ResolveResult]
    expires: float


class CachingResolver(AbstractResolver):
    """An aiohttp resolver that keeps each answer for its DNS TTL (see the module doc).

    `lookup` and `monotonic` are seams for tests; by default c-ares, then the system resolver.
    """

    def __init__(
        self,
        lookup: Lookup | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_ttl: float = MAX_TTL,
        fallback_ttl: float = FALLBACK_TTL,
    ) -> None:
        self._lookup = lookup
        self._monotonic = monotonic
        self._max_ttl = max_ttl
        self._fallback_ttl = fallback_ttl
        self._cache: dict[tuple[str, int, int], _Entry] = {}
        self._pending: dict[tuple[str, int, int], asyncio.Task[list[ResolveResult]]] = {}
        self._inserts = 0
        self._aiodns: object | None = None  # aiodns.DNSResolver, made on first use
        self.lookups = 0  # queries actually sent (for tests and benchmarks)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = (host.lower().rstrip("."), port, int(family))
        entry = self._cache.get(key)
        if entry is not None:
            if entry.expires > self._monotonic():
                return list(entry.results)
            del self._cache[key]
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query(key, host, port, family))
            self._pending[key] = task
            task.add_done_callback(lambda _: self._pending.pop(key, None))
        # shielded: one caller's cancellation must not fail the others sharing the query
        return list(await asyncio.shield(task))

    async def _query(
        self, key: tuple[str, int, int], host: str, port: int, family: socket.AddressFamily
    ) -> list[ResolveResult]:
        self.lookups += 1
        lookup = self._lookup or self._default_lookup
        results, ttl = await lookup(host, port, family)
        keep = self._fallback_ttl if ttl is None else min(max(ttl, 0.0), self._max_ttl)
        if keep > 0:
            self._cache[key] = _Entry(results, self._monotonic() + keep)
            self._inserts += 1
            if self._inserts % _PRUNE_EVERY == 0:
                now = self._monotonic()
                for k in [k for k, e in self._cache.items() if e.expires <= now]:
                    del self._cache[k]
        return results

    async def _default_lookup(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> tuple[list[ResolveResult], float | None]:
        import aiodns

        if self._aiodns is None:
            self._aiodns = aiodns.DNSResolver()
        resolver: aiodns.DNSResolver = self._aiodns  # type: ignore[assignment]
        try:
            answer = await resolver.getaddrinfo(
                host, family=family, port=port, type=socket.SOCK_STREAM
            )
        except aiodns.error.DNSError:
            return await _system_lookup(host, port, family), None
        results = [
            _result(host, node.addr[0].decode("ascii"), node.addr[1], node.family)
            for node in answer.nodes
        ]
        if not results:
            return await _system_lookup(host, port, family), None
        return results, float(min(node.ttl for node in answer.nodes))

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        resolver, self._aiodns = self._aiodns, None
        if resolver is not None:
            await resolver.close()  # type: ignore[attr-defined]


class PublicOnlyResolver(AbstractResolver):
    """Answers of `inner` without the addresses `address_kind` calls non-public.

    When no public address is left, raises `PrivateAddressRefused` naming the first one.
    Does not close `inner` (it is shared).
    """

    def __init__(
        self,
        inner: AbstractResolver,
        kind_of: Callable[[IPAddress], str | None] = address_kind,
    ) -> None:
        self._inner = inner
        self._kind_of = kind_of

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        public: list[ResolveResult] = []
        refused: tuple[IPAddress, str] | None = None
        for result in results:
            ip = parse_ip(result["host"])
            kind = "unparseable" if ip is None else self._kind_of(ip)
            if kind is None:
                public.append(result)
            elif refused is None and ip is not None:
                refused = (ip, kind)
        if not public:
            if refused is not None:
                raise PrivateAddressRefused(*refused, host=host)
            raise OSError(None, "no usable address")
        return public

    async def close(self) -> None:
        pass


async def _system_lookup(host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, family=family
    )
    results: list[ResolveResult] = []
    for fam, _, _, _, address in infos:
        if fam == socket.AF_INET6 and len(address) >= 4 and address[3]:
            continue  # a scoped link-local address: never a feed's
        if fam in (socket.AF_INET, socket.AF_INET6):
            results.append(_result(host, str(address[0]), int(address[1]), fam))
    if not results:
        raise OSError(None, "DNS lookup failed")
    return results


def _result(hostname: str, ip: str, port: int, family: int) -> ResolveResult:
    return ResolveResult(
        hostname=hostname,
        host=ip,
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
