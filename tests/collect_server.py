"""A real HTTP server on 127.0.0.1 for the collect tests and benchmark (aiohttp.web, HTTP/1.1 keep-alive).

Serves images from memory at ``/img/NAME`` and the fault endpoints the tests need:

``/404``                       404 Not Found
``/gone``                      410 Gone
``/forbidden``                 403 Forbidden
``/flaky/ID``                  500 on the first request for ID, then the image ``ID``
``/limited/ID``                429 with ``Retry-After: 1`` on the first request for ID, then the image
``/limited-long/ID``           429 with ``Retry-After: 3600`` (longer than any test waits)
``/chain/N/ID``                N redirects (302, relative and absolute), then the image ID
``/loop/a``, ``/loop/b``       redirect to each other
``/redirect?to=URL``           302 to any URL (another port, another scheme)
``/no-location``               302 without a Location header
``/slow``                      headers at once, then one byte every 0.2 s for 10 s
``/stall``                     no response for 10 s
``/truncated/ID``              Content-Length of the whole image, half of it sent, connection closed
``/huge``                      Content-Length 1 GiB (nothing more sent than asked for)
``/huge-stream``               no Content-Length, 64 KiB of JPEG-looking bytes forever
``/gzip-bomb``                 Content-Encoding gzip: 90 KiB on the wire, 90 MiB inflated
``/wrong-type/ID``             the image ID as ``text/html``
``/html``                      an HTML page as ``image/jpeg``
``/empty``                     200 with an empty body
``/bomb``                      a tiny PNG whose header claims 100000 x 100000 pixels
``/optout/ID``                 the image with ``X-Robots-Tag: noai``
``/optout-imgnet/ID``          ``X-Robots-Tag: imgnet: noimageai``
``/optout-other/ID``           ``X-Robots-Tag: otherbot: noindex`` (not for us: fetched)
``/toggle/ID``                 503 until the test sets ``handlers.toggle_ok``, then the image

Hits per path, the User-Agents seen, the clients' (address, port) and the most requests in flight
at once are recorded. ``latency`` delays every response (the benchmark's stand-in for the
internet). Run standalone for the benchmark::

    python -m tests.collect_server --images DIR --port P --latency 0.02 --procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import gzip
import os
import socket
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from aiohttp import web


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (only the header and an empty IDAT)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@functools.lru_cache(maxsize=1)
def _gzip_bomb() -> bytes:
    """90 MiB of JPEG-looking bytes, gzipped (made once: compressing takes a while)."""
    return gzip.compress(b"\xff\xd8\xff" + b"\x00" * (90 << 20), compresslevel=6)


def _h(fn: Any) -> Any:
    """A coroutine handler around a plain function (aiohttp wants async handlers)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = fn(request)
        return response

    return handler


class App:
    """The handlers, over an in-memory image table."""

    def __init__(self, images: dict[str, bytes], latency: float = 0.0) -> None:
        self.images = images
        self.latency = latency
        self.hits: collections.Counter[str] = collections.Counter()
        self.agents: set[str] = set()
        self.peers: set[tuple[str, int]] = set()  # the clients' (address, port): one per connection
        self.in_flight = 0
        self.most_in_flight = 0  # the most requests being answered at once
        self.toggle_ok = False
        _gzip_bomb()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/img/{name}", self.img)
        r.add_get("/404", _h(lambda req: web.Response(status=404, text="no")))
        r.add_get("/gone", _h(lambda req: web.Response(status=410, text="gone")))
        r.add_get("/forbidden", _h(lambda req: web.Response(status=403, text="no")))
        r.add_get("/flaky/{name}", self.flaky)
        r.add_get("/toggle/{name}", _h(lambda req: self._image(req) if self.toggle_ok else web.Response(status=503)))
        r.add_get("/limited/{name}", self.limited)
        r.add_get("/limited-long/{name}", _h(lambda req: web.Response(status=429, headers={"Retry-After": "3600"})))
        r.add_get("/chain/{n}/{name}", self.chain)
        r.add_get("/loop/{side}", self.loop)
        r.add_get("/redirect", _h(lambda req: web.Response(status=302, headers={"Location": req.query["to"]})))
        r.add_get("/no-location", _h(lambda req: web.Response(status=302)))
        r.add_get("/slow", self.slow)
        r.add_get("/stall", self.stall)
        r.add_get("/truncated/{name}", self.truncated)
        r.add_get("/huge", self.huge)
        r.add_get("/huge-stream", self.huge_stream)
        r.add_get("/gzip-bomb", self.gzip_bomb)
        r.add_get("/wrong-type/{name}", _h(lambda req: self._image(req, content_type="text/html")))
        r.add_get("/html", _h(lambda req: web.Response(body=b"<!doctype html><html><body>hi</body></html>",
                                                    content_type="image/jpeg")))
        r.add_get("/empty", _h(lambda req: web.Response(body=b"", content_type="image/jpeg")))
        r.add_get("/bomb", _h(lambda req: web.Response(body=bomb_png(), content_type="image/png")))
        r.add_get("/optout/{name}", _h(lambda req: self._image(req, headers={"X-Robots-Tag": "noai"})))
        r.add_get("/optout-imgnet/{name}", _h(lambda req: self._image(req, headers={"X-Robots-Tag": "imgnet: noimageai"})))
        r.add_get("/optout-other/{name}", _h(lambda req: self._image(req, headers={"X-Robots-Tag": "otherbot: noindex"})))
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.agents.add(request.headers.get("User-Agent", ""))
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername")[:2])
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            response: web.StreamResponse = await handler(request)
        finally:
            self.in_flight -= 1
        return response

    def _image(self, request: web.Request, content_type: str = "image/jpeg",
               headers: dict[str, str] | None = None) -> web.Response:
        data = self.images.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="no such image")
        return web.Response(body=data, content_type=content_type, headers=headers)

    async def img(self, request: web.Request) -> web.Response:
        return self._image(request)

    async def flaky(self, request: web.Request) -> web.Response:
        if self.hits[request.path] == 1:
            return web.Response(status=500, text="try again")
        return self._image(request)

    async def limited(self, request: web.Request) -> web.Response:
        if self.hits[request.path] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return self._image(request)

    async def chain(self, request: web.Request) -> web.Response:
        n, name = int(request.match_info["n"]), request.match_info["name"]
        if n == 0:
            return self._image(request)
        # alternate relative and absolute Location headers
        target = f"/chain/{n - 1}/{name}" if n % 2 else str(request.url.with_path(f"/chain/{n - 1}/{name}"))
        return web.Response(status=302, headers={"Location": target})

    async def loop(self, request: web.Request) -> web.Response:
        other = "b" if request.match_info["side"] == "a" else "a"
        return web.Response(status=301, headers={"Location": f"/loop/{other}"})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"\xff\xd8\xff")
        for _ in range(50):
            await asyncio.sleep(0.2)
            await resp.write(b"\x00")
        return resp

    async def stall(self, request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(status=204)

    async def truncated(self, request: web.Request) -> web.StreamResponse:
        data = self.images[request.match_info["name"]]
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(len(data))})
        await resp.prepare(request)
        await resp.write(data[: len(data) // 2])
        if request.transport is not None:
            request.transport.close()
        return resp

    async def huge(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg", "Content-Length": str(1 << 30)})
        await resp.prepare(request)
        await resp.write(b"\xff\xd8\xff" + b"\x00" * 1024)
        if request.transport is not None:
            request.transport.close()
        return resp

    async def huge_stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"\xff\xd8\xff" + b"\x00" * 65533)
        try:
            for _ in range(10_000):
                await resp.write(b"\x00" * 65536)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def gzip_bomb(self, request: web.Request) -> web.Response:
        return web.Response(body=_gzip_bomb(), headers={"Content-Type": "image/jpeg", "Content-Encoding": "gzip"})


class ServerThread:
    """The app on 127.0.0.1 in a background thread with its own event loop."""

    def __init__(self, images: dict[str, bytes], latency: float = 0.0) -> None:
        self.handlers = App(images, latency)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.handlers.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _serve_forever(sock: socket.socket, images_dir: Path, latency: float) -> None:
    images = {p.name: p.read_bytes() for p in sorted(images_dir.iterdir()) if p.is_file()}
    app = App(images, latency).app()
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def main() -> None:
    """Serve a folder of images from ``--procs`` processes sharing one listening socket."""
    import multiprocessing

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(4096)
    sock.set_inheritable(True)
    print(sock.getsockname()[1], flush=True)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_serve_forever, args=(sock, args.images, args.latency)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
