"""``imgnet votes serve``: a labeling page for a team that labels its own data (Starlette + uvicorn).

What it guarantees:

* **Nothing is lost.** An answer is appended to the journal (:mod:`.page`: one write, fsync)
  before the page is told it is saved; a background thread folds new journal lines into the votes
  table (atomic rewrite under the table's lock, de-duplicated), and so do start-up and shutdown.
  After a crash, the next start folds whatever the journal holds (a torn last line is closed off
  first so that later lines stay whole).
* **Only manifest images, only by key.** ``/image/{key}`` looks the key up in the set of rows the
  page asks about and sends that row's ``path``; nothing from the request reaches the file system.
* **Loopback unless told otherwise.** It binds 127.0.0.1 by default and refuses any other address
  without ``--token``; with a token every request needs it (``?token=`` once, then a cookie, or
  the ``X-Imgnet-Token`` header). On loopback, requests must name a loopback Host (no DNS
  rebinding). Answers must be posted as JSON (a cross-site form cannot), and the page is served
  with a Content-Security-Policy that allows only its own script and style.
"""

from __future__ import annotations

import datetime
import hmac
import importlib.resources
import ipaddress
import os
import re
import signal
import socket
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imgnet_tools.errors import InputError
from imgnet_tools.votes.page import JOURNAL_FILE, append_line, journal_line, open_journal, read_journal
from imgnet_tools.votes.records import Problems
from imgnet_tools.votes.table import ANSWERS

if TYPE_CHECKING:  # pragma: no cover
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

WORKER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@+-]{0,63}")
TOKEN_COOKIE = "imgnet_votes_token"
FOLD_EVERY_S = 1.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
STATIC = ("page.html", "page.js", "page.css")


@dataclass(frozen=True)
class ServeParams:
    """``imgnet votes serve`` options (field names = CLI option names)."""

    manifest: str
    votes: str
    synsets: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    tasks: str | None = None
    journal: str | None = None
    page_size: int = 30

    def journal_path(self) -> Path:
        return Path(self.journal) if self.journal else Path(self.votes).with_name(JOURNAL_FILE)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_params(params: ServeParams) -> None:
    """Refuse an address other than loopback without a token, and a weak token."""
    if params.token is not None and len(params.token) < 8:
        raise InputError("--token must be at least 8 characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe())').")
    if not is_loopback(params.host) and not params.token:
        raise InputError(f"--host {params.host} is reachable by others; pass --token SECRET (labelers open the page with "
                         "?token=SECRET), or keep the default --host 127.0.0.1.")


class LabelState:
    """The questions shown, everyone's latest answers, the journal, and the fold into the table."""

    def __init__(self, params: ServeParams) -> None:
        from imgnet_tools.votes.questions import read_manifest
        from imgnet_tools.votes.synsets import find_synsets, load_words

        self.params = params
        mq = read_manifest(params.manifest)
        self.paths = mq.paths()
        self.questions = self._questions(mq)
        self.words = load_words(find_synsets(params.synsets, params.manifest), self.questions) if self.questions else {}
        self.asked = {(k, w) for w, keys in self.questions.items() for k in keys}
        self.answers: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self.lock = threading.Lock()
        self.journal = params.journal_path()
        self._close_torn_line()
        self.fd = open_journal(self.journal)
        self.folded = 0
        self.fold_problems = Problems()
        self.fold()  # whatever an earlier run left in the journal
        self._load_answers()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fold_loop, name="imgnet-votes-fold", daemon=True)

    def _questions(self, mq: Any) -> dict[str, list[str]]:
        """wnid -> keys, sorted: the manifest's asked rows, or a --tasks file's (shown rows only)."""
        if self.params.tasks:
            from imgnet_tools.votes.page import read_page_tasks

            pairs = read_page_tasks(Path(self.params.tasks))
        else:
            pairs = list(zip(mq.asked.column("key").to_pylist(), mq.asked.column("wnid").to_pylist()))
        found: dict[str, set[str]] = defaultdict(set)
        for key, wnid in pairs:
            if key in self.paths:
                found[wnid].add(key)
        return {w: sorted(keys) for w, keys in sorted(found.items())}

    def _close_torn_line(self) -> None:
        """A crash mid-write can leave a last line without its newline: end it, so the next
        line is not glued to it (the torn line is then skipped as malformed)."""
        if self.journal.is_file() and self.journal.stat().st_size:
            with open(self.journal, "rb+") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())

    def _load_answers(self) -> None:
        from imgnet_tools.votes.table import latest_answers, read_votes

        table = latest_answers(read_votes(self.params.votes))
        for key, wnid, worker, answer in zip(*(table.column(c).to_pylist() for c in ("key", "wnid", "worker", "answer"))):
            if (key, wnid) in self.asked:
                self.answers[(key, wnid)][worker] = answer

    # ---- answers ---------------------------------------------------------------------------

    def answer(self, key: str, wnid: str, worker: str, answer: str) -> dict[str, Any]:
        """Save one answer durably (journal), remember it, wake the folder; the synset's progress."""
        line = journal_line(key, wnid, worker, answer, datetime.datetime.now(datetime.timezone.utc))
        with self.lock:
            append_line(self.fd, line)
            self.answers[(key, wnid)][worker] = answer
        self._wake.set()
        return self.progress(wnid, worker)

    def progress(self, wnid: str, worker: str) -> dict[str, Any]:
        keys = self.questions.get(wnid, [])
        mine = sum(worker in self.answers.get((k, wnid), {}) for k in keys)
        voted = sum(bool(self.answers.get((k, wnid))) for k in keys)
        return {"wnid": wnid, "images": len(keys), "answered_by_you": mine, "with_votes": voted}

    def synsets(self, worker: str) -> list[dict[str, Any]]:
        return [{**self.progress(w, worker), "words": self.words[w].words, "gloss": self.words[w].gloss}
                for w in self.questions]

    def grid(self, wnid: str, worker: str, offset: int | None) -> dict[str, Any]:
        keys = self.questions[wnid]
        size = self.params.page_size
        if offset is None:  # the first page with an image this worker has not answered
            first = next((i for i, k in enumerate(keys) if worker not in self.answers.get((k, wnid), {})), 0)
            offset = first - first % size
        offset = max(0, min(offset, max(len(keys) - 1, 0)))
        offset -= offset % size
        items = [{"key": k, "answer": self.answers.get((k, wnid), {}).get(worker),
                  "votes": len(self.answers.get((k, wnid), {}))} for k in keys[offset:offset + size]]
        return {**self.progress(wnid, worker), "words": self.words[wnid].words, "gloss": self.words[wnid].gloss,
                "offset": offset, "page_size": size, "items": items}

    # ---- folding the journal into the votes table -------------------------------------------

    def fold(self) -> int:
        """Append the journal's new complete lines to the votes table; return how many answers."""
        from imgnet_tools.votes.importer import Checker
        from imgnet_tools.votes.table import append_votes, normalize_answer, votes_from_columns

        with self.lock:
            start = self.folded
        if not self.journal.is_file():
            return 0
        records, end = read_journal(self.journal, self.fold_problems, start=start, final=False)
        check = Checker(frozenset(self.paths))
        good = [r for r in records if check.reason(r) is None]
        if good:
            append_votes(self.params.votes, votes_from_columns({
                "key": [r.key for r in good], "wnid": [r.wnid for r in good], "worker": [r.worker for r in good],
                "answer": [normalize_answer(r.answer) for r in good], "source": ["page"] * len(good),
                "answered_at": [r.answered_at for r in good]}))
        with self.lock:
            self.folded = end
        return len(good)

    def _fold_loop(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(timeout=FOLD_EVERY_S):
                self._wake.clear()
                self.fold()
                self._stop.wait(FOLD_EVERY_S)  # coalesce a burst of answers into one rewrite

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the folder, fold what is left, close the journal."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.fold()
        os.close(self.fd)

    def status(self) -> dict[str, Any]:
        size = self.journal.stat().st_size if self.journal.is_file() else 0
        with self.lock:
            folded = self.folded
        return {"journal": str(self.journal), "journal_bytes": size, "folded_bytes": folded,
                "unfolded_bytes": size - folded, "skipped": dict(self.fold_problems.counts)}


def _static(name: str) -> bytes:
    return importlib.resources.files("imgnet_tools.votes").joinpath("static", name).read_bytes()


CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def build_app(state: LabelState) -> "Starlette":
    """The Starlette application over ``state``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    params = state.params
    token = params.token

    def authorised(request: "Request") -> bool:
        if not token:
            return True
        given = request.headers.get("x-imgnet-token") or request.cookies.get(TOKEN_COOKIE) or ""
        return hmac.compare_digest(given.encode(), token.encode())

    def guard(handler: Callable[["Request"], Any]) -> Callable[["Request"], Any]:
        async def wrapped(request: "Request") -> "Response":
            if not authorised(request):
                return JSONResponse({"error": "open the page with ?token=... (see the serve command's output)"}, 403)
            response: Response = await handler(request)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["Cache-Control"] = "no-store" if not request.url.path.startswith("/image/") else "private, max-age=3600"
            return response
        return wrapped

    async def index(request: "Request") -> "Response":
        given = request.query_params.get("token")
        if token and given is not None:
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "wrong token"}, 403)
            keep = {k: v for k, v in request.query_params.items() if k != "token"}
            target = "/" + ("?" + "&".join(f"{k}={v}" for k, v in keep.items()) if keep else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
            return redirect
        if not authorised(request):
            return JSONResponse({"error": "open the page with ?token=... (see the serve command's output)"}, 403)
        page = Response(_static("page.html"), media_type="text/html; charset=utf-8")
        page.headers["Content-Security-Policy"] = CSP
        page.headers["X-Frame-Options"] = "DENY"
        return page

    async def static(request: "Request") -> "Response":
        name = request.path_params["name"]
        if name not in STATIC:
            return JSONResponse({"error": "not found"}, 404)
        kind = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[1]]
        return Response(_static(name), media_type=f"{kind}; charset=utf-8")

    def worker_of(request: "Request") -> str:
        worker = request.query_params.get("worker", "").strip()
        return worker if WORKER_RE.fullmatch(worker) else ""

    async def synsets(request: "Request") -> "Response":
        return JSONResponse({"synsets": state.synsets(worker_of(request)), "page_size": params.page_size})

    async def grid(request: "Request") -> "Response":
        wnid = request.path_params["wnid"]
        if wnid not in state.questions:
            return JSONResponse({"error": f"no images of {wnid} here"}, 404)
        raw = request.query_params.get("offset")
        offset = int(raw) if raw is not None and raw.isdigit() else None
        return JSONResponse(state.grid(wnid, worker_of(request), offset))

    async def image(request: "Request") -> "Response":
        path = state.paths.get(request.path_params["key"])  # a manifest key, never a path from the request
        if path is None or not Path(path).is_file():
            return JSONResponse({"error": "no such image"}, 404)
        return FileResponse(path)

    async def answer(request: "Request") -> "Response":
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "post JSON"}, 415)
        try:
            doc = await request.json()
        except ValueError:
            return JSONResponse({"error": "not JSON"}, 400)
        if not isinstance(doc, dict):
            return JSONResponse({"error": "post an object"}, 400)
        key, wnid, worker, value = (doc.get(f) for f in ("key", "wnid", "worker", "answer"))
        if not isinstance(worker, str) or not WORKER_RE.fullmatch(worker.strip()):
            return JSONResponse({"error": "type your name first (letters, digits, . _ @ + -)"}, 400)
        if value not in ANSWERS:
            return JSONResponse({"error": f"answer must be one of {', '.join(ANSWERS)}"}, 400)
        if (key, wnid) not in state.asked:
            return JSONResponse({"error": "not a question of this page"}, 404)
        from starlette.concurrency import run_in_threadpool

        progress = await run_in_threadpool(state.answer, str(key), str(wnid), worker.strip(), str(value))
        return JSONResponse({"saved": True, "progress": progress})

    async def status(request: "Request") -> "Response":
        return JSONResponse(state.status())

    routes = [
        Route("/", index), Route("/static/{name}", guard(static)), Route("/api/synsets", guard(synsets)),
        Route("/api/synset/{wnid}", guard(grid)), Route("/image/{key}", guard(image)),
        Route("/api/answer", guard(answer), methods=["POST"]), Route("/api/status", guard(status)),
    ]
    middleware = []
    if is_loopback(params.host):
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_HOSTS)))
    return Starlette(routes=routes, middleware=middleware)


def url_of(sock: socket.socket, params: ServeParams) -> str:
    """The address to open, with the token for the first visit."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={params.token}" if params.token else "")


def _quiet_server_class() -> Any:
    import uvicorn

    class QuietServer(uvicorn.Server):  # type: ignore[misc]
        """uvicorn re-raises a SIGINT/SIGTERM once it has shut down, which would kill us before the
        journal's last fold (or print a KeyboardInterrupt traceback); here a signal only asks it
        to stop (twice Ctrl-C: stop now), and ``serve`` returns normally."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return QuietServer


def serve(params: ServeParams, on_ready: Callable[[str], None] | None = None) -> None:
    """Bind, start the folder, serve until interrupted, fold and close on the way out."""
    import uvicorn

    check_params(params)
    _QuietServer = _quiet_server_class()
    state = LabelState(params)
    family = socket.AF_INET6 if ":" in params.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((params.host, params.port))
        sock.listen(128)  # connections wait in the backlog from now on, so the address can be printed
    except OSError as exc:
        sock.close()
        state.stop()
        raise InputError(f"cannot listen on {params.host}:{params.port} ({exc}); pick another --port (0: any free).") from exc
    state.start()
    try:
        if on_ready is not None:
            on_ready(url_of(sock, params))
        config = uvicorn.Config(build_app(state), log_level="warning", lifespan="off", access_log=False)
        _QuietServer(config).run(sockets=[sock])
    finally:
        state.stop()
        sock.close()
