"""The server behind `tuimeter web`: textual-serve's Server with tuimeter's access rules (web.py
decides them), quiet, and the page's own address taken from each request.

Rules, checked by one aiohttp middleware before any route (page, /ws, /download, /static):
with a token, a request needs the login cookie, or the token itself on `/?token=…`, which sets the
cookie and redirects to `/`; otherwise 401 and a line saying how to open it. Without a token on
loopback, a Host other than an address or localhost is refused (a DNS-rebinding page names its own
host). A websocket whose Origin is present and not this very host is refused in every mode.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import hmac
import ipaddress
import logging
import shlex
import signal
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from textual_serve.server import Server

from tuimeter.attach.web import PROG, Access, WebError, url_host

log = logging.getLogger(__name__)

TAB_STOP_TIMEOUT = 5.0  # seconds the tabs' views get to quit at shutdown before we stop waiting

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# the address the browser used, per request: textual-serve writes it into the page for the websocket
_public_url: ContextVar[str | None] = ContextVar("tuimeter_web_public_url", default=None)


def cookie_value(token: str) -> str:
    """What the login cookie holds: derived from the token, so the cookie is not the password itself."""
    return hmac.new(token.encode(), b"tuimeter web session", hashlib.sha256).hexdigest()


def _host_name(host_header: str) -> str:
    """The host part of a Host header (`[::1]:8000` → `::1`)."""
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


def _address_or_localhost(host: str) -> bool:
    """A host a DNS-rebinding page cannot be reached as: an IP literal or localhost."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.lower() == "localhost" or host.lower().endswith(".localhost")
    return True


def _same_origin(request: web.Request) -> bool:
    """No Origin (not a browser), or one naming this very host: a page elsewhere must not drive the view."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


def bind_error(host: str, port: int, exc: OSError) -> str:
    where = f"{url_host(host)}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use (another tuimeter web?); choose another port with --bind HOST:PORT"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot serve on {where}: this machine has no such address; give --bind one of its addresses"
    if exc.errno == errno.EACCES:
        return f"cannot serve on {where}: permission denied (ports below 1024 need root); use --bind HOST:8000"
    return f"cannot serve on {where}: {exc.strerror or exc}; check --bind"


class WebServer(Server):
    """Serves `command` (one process per browser tab) on host:port, as `access` allows."""

    def __init__(self, command: list[str], host: str, port: int, access: Access) -> None:
        super().__init__(shlex.join(command), host=host, port=port, title="tuimeter")
        self.access = access
        self.cookie_name = f"tuimeter_web_{port}"  # cookies ignore ports: one name per server on a host
        self._cookie = cookie_value(access.token) if access.token is not None else None
        self._tabs: set[asyncio.Task[object]] = set()

    @property
    def public_url(self) -> str:
        return _public_url.get() or self._default_url

    @public_url.setter
    def public_url(self, value: str) -> None:
        self._default_url = value

    def initialize_logging(self) -> None:
        """Our one start line instead of textual-serve's log (its warnings still reach stderr)."""

    async def on_startup(self, app: web.Application) -> None:
        """No logo: the start line is printed once the port is bound."""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        if self._token_given(request):
            return self._login(request)
        _public_url.set(f"{request.scheme}://{request.host}")
        return await handler(request)

    def _refusal(self, request: web.Request) -> web.StreamResponse | None:
        """Why this request may not go on, as a short plain answer; None if it may."""
        if self._cookie is None:
            if self.access.loopback and not _address_or_localhost(_host_name(request.host)):
                return _plain(403, f"{PROG}: open it at http://{url_host(self.host)}:{self.port}/ (a host name "
                                   "other than localhost is refused: it could be a DNS-rebinding page)")
        elif not self._authorised(request):
            return _plain(401, f"{PROG}: this view needs its access token: open "
                               f"http://{request.host}/?token=… with the password 'tuimeter web' was started with")
        if request.path == "/ws" and not _same_origin(request):
            return _plain(403, f"{PROG}: websocket refused: it comes from another site's page")
        return None

    def _authorised(self, request: web.Request) -> bool:
        assert self._cookie is not None
        cookie = request.cookies.get(self.cookie_name, "")
        return hmac.compare_digest(cookie.encode(), self._cookie.encode()) or self._token_given(request)

    def _token_given(self, request: web.Request) -> bool:
        """`/?token=` with the right token: only the page takes it, so it never sits in other URLs."""
        token = request.query.get("token")
        return (self.access.token is not None and token is not None and request.path == "/"
                and hmac.compare_digest(token.encode(), self.access.token.encode()))

    def _login(self, request: web.Request) -> web.StreamResponse:
        """The cookie, and back to the page (its other parameters kept) without the token in the address bar."""
        assert self._cookie is not None
        rest = [(k, v) for k, v in request.query.items() if k != "token"]
        response = web.HTTPSeeOther("/" + (f"?{urlencode(rest)}" if rest else ""))
        response.set_cookie(self.cookie_name, self._cookie, httponly=True, samesite="Strict", path="/")
        return response

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Each tab's websocket, tracked so that shutdown can end its view."""
        task = asyncio.current_task()
        assert task is not None
        self._tabs.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self._tabs.discard(task)

    async def on_shutdown(self, app: web.Application) -> None:
        """Tell every tab's view to quit (textual-serve then waits for it), so no view outlives us."""
        for task in self._tabs:
            task.cancel()
        if self._tabs:
            await asyncio.wait(self._tabs, timeout=TAB_STOP_TIMEOUT)

    async def run(self, started: Callable[[], None]) -> None:
        """Serve until SIGINT or SIGTERM; `started` runs once the port is bound."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(await self._make_app(), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, self.host, self.port).start()
            except OSError as exc:
                raise WebError(bind_error(self.host, self.port, exc)) from None
            started()
            await stop.wait()
        finally:
            await runner.cleanup()
