"""The fetcher: one aiohttp session per worker process (kept from chunk to chunk), in its own asyncio event loop.

Why aiohttp (docs/CONTRACTS.md says more): one mature asyncio HTTP/1.1 client with connection
pooling and keep-alive, per-host connection limits, a pluggable resolver (which is where the
address policy of :mod:`.urls` is enforced, at connect time) and streaming bodies; thousands of
requests in flight cost coroutines, not threads.

Per URL (:meth:`Fetcher.fetch`): up to ``retries + 1`` tries, each bounded by ``timeout`` for
the whole try (every redirect hop and the body) and ``connect_timeout`` for each connection.
Redirects are followed by hand (at most ``max_redirects``), so every hop's URL is checked
(:func:`.urls.check_url`) before it is requested and a loop is recognised. 429, 5xx and
connection resets are retried after ``backoff * 2**try`` seconds with full jitter, or after the
server's ``Retry-After`` when it says so (a wait beyond ``max_retry_wait`` is not waited for).
``X-Robots-Tag: noai|noimageai|noimageindex|noindex|none`` (for every agent, or for ``imgnet``)
rejects the response as ``opted_out`` before its body is read, unless ``ignore_opt_out``.
``max_bytes`` is checked against Content-Length before the body is read and against the bytes
received while it streams (after any Content-Encoding is undone, so a gzip bomb is cut off too).
Every outcome is an :class:`Outcome` with a reason from the manifest's vocabulary; nothing raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import email.utils
import random
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imgnet_tools import __version__
from imgnet_tools.collect.store import Body, ObjectStore, Stored, storage_error
from imgnet_tools.collect.urls import AddressPolicy, check_url
from imgnet_tools.errors import ImgnetError

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

USER_AGENT = f"imgnet/{__version__} (image dataset collection; honours X-Robots-Tag noai, noimageai)"
USER_AGENT_TOKEN = "imgnet"
OPT_OUT_DIRECTIVES = frozenset({"noai", "noimageai", "noimageindex", "noindex", "none"})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRY_STATUS = frozenset({429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
READ_CHUNK = 1 << 16
IN_MEMORY = 8 << 20  # bodies up to this size (by Content-Length) are read whole; larger ones stream to disk


@dataclass(frozen=True)
class FetchConfig:
    """How one worker process fetches (the run's totals already divided among the workers)."""

    concurrency: int = 64
    per_host: int = 16
    connect_timeout: float = 10.0
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_retry_wait: float = 60.0
    max_redirects: int = 10
    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 89_478_485
    ignore_opt_out: bool = False
    user_agent: str = USER_AGENT
    policy: AddressPolicy = AddressPolicy()
    write_threads: int = 4  # threads that hash and write bodies (0: in the event loop)


@dataclass
class Outcome:
    """What became of one URL: stored bytes, or a reason (and the facts the manifest records)."""

    stored: Stored | None = None
    reason: str | None = None
    error: str | None = None
    http_status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    fetched_at: datetime.datetime | None = None
    retry_after: float | None = field(default=None, repr=False)  # set when the try may be repeated


class PrivateHostError(OSError):
    """Every address a name resolves to is refused by the address policy."""


def make_resolver(policy: AddressPolicy) -> "aiohttp.abc.AbstractResolver":
    """A resolver that drops addresses the policy refuses (raising when none is left)."""
    from aiohttp.abc import AbstractResolver
    from aiohttp.resolver import ThreadedResolver

    class PolicyResolver(AbstractResolver):
        def __init__(self) -> None:
            self._inner = ThreadedResolver()

        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
            found = await self._inner.resolve(host, port, family)
            if policy.allows_endpoint(host, port):
                return found
            kept = [r for r in found if policy.allows_address(r["host"])]
            if not kept:
                addresses = ", ".join(sorted({r["host"] for r in found}))
                raise PrivateHostError(f"{host} resolves only to non-global addresses ({addresses})")
            return kept

        async def close(self) -> None:
            await self._inner.close()

    return PolicyResolver()


def opted_out(values: list[str]) -> bool:
    """True when an X-Robots-Tag value forbids use, for every agent or for ``imgnet``
    (``noai``, ``imgnet: noimageai``; directives are comma-separated, case-insensitive)."""
    for value in values:
        agent, sep, rest = value.partition(":")
        token = agent.strip().lower()
        if sep and token and not any(c in token for c in " ,"):  # "agent: directives"
            if token != USER_AGENT_TOKEN:
                continue
            directives = rest
        else:
            directives = value
        if any(d.strip().lower() in OPT_OUT_DIRECTIVES for d in directives.split(",")):
            return True
    return False


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _status_reason(status: int) -> str:
    if status in (404, 410):
        return "http_404"
    if status == 429:
        return "http_429"
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "http_other"


def classify_error(exc: BaseException) -> tuple[str, bool]:
    """(reason, retryable) for an exception raised by a try."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, PrivateHostError):
            return "private_host", False
        return "dns", False
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return "tls", False
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", False
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "truncated", False
    if isinstance(exc, (aiohttp.InvalidURL, ValueError, UnicodeError)):
        return "bad_url", False
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection", isinstance(exc.os_error, (ConnectionResetError, ConnectionAbortedError))
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
        return "connection", True
    return "connection", False


class Fetcher:
    """Fetches URLs into an :class:`~.store.ObjectStore` over one aiohttp session (use as ``async with``)."""

    def __init__(self, config: FetchConfig, store: ObjectStore) -> None:
        self.config = config
        self.store = store
        self._session: aiohttp.ClientSession | None = None
        self._writers: concurrent.futures.ThreadPoolExecutor | None = None

    async def __aenter__(self) -> "Fetcher":
        import aiohttp

        cfg = self.config
        connector = aiohttp.TCPConnector(limit=cfg.concurrency, limit_per_host=cfg.per_host, ttl_dns_cache=300,
                                         resolver=make_resolver(cfg.policy))
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.connect_timeout, sock_read=cfg.timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True,
                                              headers={"User-Agent": cfg.user_agent, "Accept": "image/*,*/*;q=0.8"},
                                              cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._writers is not None:
            self._writers.shutdown(wait=True)
            self._writers = None

    async def _put(self, data: bytes) -> tuple[Stored | None, str | None, str | None]:
        """Hash, check and store a whole body: in a writer thread (hashlib and file system calls
        release the GIL, so a slow file creation does not stall the event loop), or inline."""
        if self.config.write_threads <= 0:
            return self.store.put(data)
        if self._writers is None:
            self._writers = concurrent.futures.ThreadPoolExecutor(self.config.write_threads,
                                                                  thread_name_prefix="imgnet-store")
        return await asyncio.get_running_loop().run_in_executor(self._writers, self.store.put, data)

    async def fetch(self, url: str | None) -> Outcome:
        """Fetch one URL with retries; never raises (cancellation aside)."""
        reason, detail = check_url(url, self.config.policy)
        if reason is not None or url is None:
            return Outcome(reason=reason or "bad_url", error=detail)
        cfg = self.config
        for attempt in range(cfg.retries + 1):
            outcome = await self._try(url)
            wait = outcome.retry_after
            if wait is None or attempt == cfg.retries:
                break
            delay = max(wait, random.uniform(0, cfg.backoff * 2 ** attempt))
            if delay > cfg.max_retry_wait:
                outcome.error = f"{outcome.error}; the server asks to wait {wait:.0f} s, above --max-retry-wait"
                break
            await asyncio.sleep(delay)
        outcome.retry_after = None
        return outcome

    async def _try(self, url: str) -> Outcome:
        """One try, bounded by ``timeout`` as a whole."""
        body = self.store.new_body()
        outcome = Outcome(final_url=url)
        try:
            data = await self._follow(url, body, outcome)
            if data is not None:  # received whole, outside the response (its connection is back in the pool)
                outcome.stored, outcome.reason, outcome.error = await self._put(data)
        except (asyncio.CancelledError, ImgnetError):  # cancelled, or the store failed (disk full): the run stops
            body.discard()
            raise
        except Exception as exc:  # noqa: BLE001 - every other failure of a try is an outcome, not an exception
            body.discard()
            reason, retry = classify_error(exc)
            outcome.reason, outcome.stored = reason, None
            outcome.error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
            if reason == "private_host":
                outcome.error = str(getattr(exc, "os_error", exc))
            if reason == "timeout":
                outcome.error = f"no complete response within --timeout {self.config.timeout:g} s"
            outcome.retry_after = 0.0 if retry else None
        outcome.fetched_at = _now()
        return outcome

    async def _follow(self, url: str, body: Body, outcome: Outcome) -> bytes | None:
        """Request ``url``, following redirects by hand, and receive the body: into ``body`` (when
        it streams to disk), or returned whole, to be stored by the caller."""
        import aiohttp

        assert self._session is not None  # noqa: S101 - internal invariant: used inside ``async with``
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.timeout  # one budget for the whole try: every hop and the body
        seen = {url}
        current = url
        for _hop in range(cfg.max_redirects + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=cfg.connect_timeout)
            async with self._session.get(current, allow_redirects=False, timeout=timeout) as resp:
                outcome.http_status, outcome.final_url = resp.status, current
                outcome.content_type = resp.headers.get("Content-Type")
                if resp.status in REDIRECTS:
                    nxt = self._next_hop(resp, current, outcome)
                    if nxt is None:
                        return None
                    if nxt in seen:
                        outcome.reason, outcome.error = "redirect_loop", f"{resp.status} back to a URL already visited"
                        return None
                    seen.add(nxt)
                    current = nxt
                    continue
                return await self._receive(resp, body, outcome)
        outcome.reason = "too_many_redirects"
        outcome.error = f"more than --max-redirects {cfg.max_redirects} redirects"
        return None

    def _next_hop(self, resp: "aiohttp.ClientResponse", current: str, outcome: Outcome) -> str | None:
        """The redirect's target, checked like a URL from the list; None (and a reason) when refused."""
        location = resp.headers.get("Location")
        if not location:
            outcome.reason, outcome.error = "bad_redirect", f"{resp.status} without a Location header"
            return None
        try:
            nxt = str(resp.url.join(type(resp.url)(location)))
        except (ValueError, TypeError) as exc:
            outcome.reason, outcome.error = "bad_redirect", f"unusable Location {location[:200]!r}: {exc}"
            return None
        reason, detail = check_url(nxt, self.config.policy)
        if reason is not None:
            outcome.reason, outcome.error = reason, f"redirect to a refused URL: {detail}"
            return None
        return nxt

    async def _receive(self, resp: "aiohttp.ClientResponse", body: Body, outcome: Outcome) -> bytes | None:
        """Judge the final response's status and headers, then receive its body: whole (returned)
        when its size is known and modest, else streamed into ``body`` and committed here."""
        cfg = self.config
        if resp.status != 200:
            outcome.reason = _status_reason(resp.status)
            outcome.error = f"HTTP {resp.status} {resp.reason or ''}".strip()
            if resp.status in RETRY_STATUS or resp.status == 429:
                outcome.retry_after = retry_after_seconds(resp.headers.get("Retry-After")) or 0.0
            return None
        if not cfg.ignore_opt_out and opted_out(resp.headers.getall("X-Robots-Tag", [])):
            outcome.reason = "opted_out"
            outcome.error = "X-Robots-Tag: " + ", ".join(resp.headers.getall("X-Robots-Tag"))
            return None
        if resp.content_length is not None and resp.content_length > cfg.max_bytes:
            outcome.reason, outcome.error = "too_large", f"Content-Length {resp.content_length} above --max-bytes {cfg.max_bytes}"
            return None
        if resp.content_length is not None and resp.content_length <= IN_MEMORY and "Content-Encoding" not in resp.headers:
            # The common case (an image of known, modest size, not compressed on the wire): one read
            # into memory, then hashed and written once; no streaming bookkeeping per chunk.
            return await resp.read()
        async for data in resp.content.iter_chunked(READ_CHUNK):
            if body.size + len(data) > cfg.max_bytes:
                body.discard()
                outcome.reason, outcome.error = "too_large", f"body above --max-bytes {cfg.max_bytes}; cut off"
                return None
            if not body.feed(data):
                body.discard()
                outcome.reason, outcome.error = "not_an_image", "the body starts with no image format's magic"
                return None
        if not body.finish():
            body.discard()
            outcome.reason, outcome.error = "not_an_image", "the body starts with no image format's magic"
            return None
        try:
            outcome.stored, outcome.reason, outcome.error = body.commit()
        except OSError as exc:
            body.discard()
            raise storage_error(exc, self.store.root) from exc
        return None


async def fetch_all(urls: list[str | None], config: FetchConfig, store: ObjectStore,
                    on_result: Any = None) -> list[Outcome]:
    """Fetch every URL with at most ``config.concurrency`` in flight; ``on_result(i, outcome)`` as each ends."""
    async with Fetcher(config, store) as fetcher:
        return await _fetch_with(fetcher, urls, on_result)


async def _fetch_with(fetcher: Fetcher, urls: list[str | None], on_result: Any) -> list[Outcome]:
    results: list[Outcome | None] = [None] * len(urls)
    order = iter(range(len(urls)))

    async def worker() -> None:
        for i in order:
            outcome = await fetcher.fetch(urls[i])
            results[i] = outcome
            if on_result is not None:
                on_result(i, outcome)

    await asyncio.gather(*(worker() for _ in range(max(1, min(fetcher.config.concurrency, len(urls))))))
    return [r if r is not None else Outcome(reason="connection", error="not fetched") for r in results]


class _Kept:
    """A worker process's event loop and open :class:`Fetcher` (session, connections, writer
    threads), kept from one chunk to the next while the configuration stays the same."""

    loop: asyncio.AbstractEventLoop | None = None
    fetcher: Fetcher | None = None


def close_kept() -> None:
    """Close the event loop and session :func:`fetch_chunk` kept (if any) in this process."""
    loop, fetcher = _Kept.loop, _Kept.fetcher
    _Kept.loop = _Kept.fetcher = None
    if loop is not None and not loop.is_closed():
        if fetcher is not None:
            loop.run_until_complete(fetcher.__aexit__(None, None, None))
        loop.close()


def fetch_chunk(urls: list[str | None], config: FetchConfig, store: ObjectStore, on_result: Any = None,
                keep: bool = False) -> list[Outcome]:
    """:func:`fetch_all` from synchronous code. ``keep``: leave the event loop and the session
    open for this process's next call (a pool worker's next chunk then reuses its keep-alive
    connections and threads instead of opening them again); otherwise both are closed."""
    if not keep:
        return asyncio.run(fetch_all(urls, config, store, on_result))
    if _Kept.loop is None or _Kept.loop.is_closed():
        _Kept.loop, _Kept.fetcher = asyncio.new_event_loop(), None
    loop = _Kept.loop
    if _Kept.fetcher is None or _Kept.fetcher.config != config:
        if _Kept.fetcher is not None:
            loop.run_until_complete(_Kept.fetcher.__aexit__(None, None, None))
        _Kept.fetcher = loop.run_until_complete(Fetcher(config, store).__aenter__())
    fetcher = _Kept.fetcher
    fetcher.store = store
    try:
        return loop.run_until_complete(_fetch_with(fetcher, urls, on_result))
    except BaseException:
        _Kept.fetcher = None  # a failed chunk (a full disk, ...): the next one starts afresh
        with contextlib.suppress(Exception):
            loop.run_until_complete(fetcher.__aexit__(None, None, None))
        raise

