"""`tuimeter web` in a real headless Chromium: what a person in a browser sees and types, and what a
stranger's request is told.

A headless service runs on the simulated meter; each browser tab runs `tuimeter attach` on its control
socket, as the real server does. The page draws with xterm.js on a canvas, so the screen is read from xterm's own
buffer: a script run before the page's own catches the Terminal object as textual.js stores it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.headless_process import Tuimeter
from tests.waiting import TIMEOUT, until_sync
from tests.web_process import WebProcess

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    if os.environ.get("CI"):
        raise RuntimeError("chromium or chromedriver is missing; .ci/run installs them")
    pytest.skip("Chromium is not installed (sudo apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (after the skip: only this module needs it)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402

TUIMETER = [sys.executable, "-m", "tuimeter"]
SECRET = "correct horse battery staple"
TOKEN_QUERY = urllib.parse.quote(SECRET)
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-proxy-server", "--window-size=1280,900")

# run before the page's scripts: textual.js does `this.terminal = new Terminal(…)`; a setter on
# Object.prototype sees that assignment, keeps the value as an own property and remembers the Terminal
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {configurable: true, set(value) {
  Object.defineProperty(this, 'terminal', {value, writable: true, configurable: true, enumerable: true});
  if (value && value.buffer && value.buffer.active) window.tuimeterTerminal = value;
}});
"""
# the rows on screen, as text, from xterm's buffer
READ_SCREEN = """
const t = window.tuimeterTerminal;
if (!t) return '';
const buffer = t.buffer.active, rows = [];
for (let y = 0; y < t.rows; y++) {
  const line = buffer.getLine(buffer.viewportY + y);
  rows.push(line ? line.translateToString(true) : '');
}
return rows.join('\\n');
"""
VOLTAGE = re.compile(r"min (\d{3}\.\d)\s+max (\d{3}\.\d)")  # the Voltage panel's line (current has 3 decimals)
RELAY_ON, RELAY_OFF = re.compile(r"│ ON\s+│"), re.compile(r"│ OFF\s+│")  # the Relay panel's first line


class Page:
    """The browser on one `tuimeter web` page: its terminal's text and the keys typed into it."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get(url)

    def screen(self) -> str:
        return str(self.driver.execute_script(READ_SCREEN))

    def wait_for(self, pattern: str | re.Pattern[str]) -> str:
        """The screen, once it shows `pattern` (text, or a regular expression)."""
        def showing() -> str:
            screen = self.screen()
            found = pattern.search(screen) if isinstance(pattern, re.Pattern) else pattern in screen
            return screen if found else ""

        return until_sync(showing, what=f"{pattern!r} in the browser's terminal", show=self.screen, interval=0.2)

    def press(self, key: str) -> None:
        """A key typed into the terminal (focused by script: a click would reach the app as a mouse click)."""
        self.driver.execute_script("window.tuimeterTerminal.focus()")
        ActionChains(self.driver).send_keys(key).perform()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="tuimeter-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        # Service with the path: Selenium Manager never looks for (or downloads) a driver
        d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            d.set_page_load_timeout(TIMEOUT)
            d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL})
            yield d
        finally:
            d.quit()


@pytest.fixture
def page(driver: webdriver.Chrome) -> Iterator[Page]:
    yield Page(driver)
    driver.get("about:blank")  # closes the tab's websocket: its view ends
    driver.delete_all_cookies()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "meter.sock"


@pytest.fixture
def service(run: Callable[..., Tuimeter], sock: Path) -> Tuimeter:
    """The headless service on the simulated meter that every tab attaches to."""
    svc = run("--control", str(sock), name="service")
    svc.wait_output(f"viewers attach with: tuimeter attach {sock}")
    return svc


@pytest.fixture
def serve(tmp_path: Path, service: Tuimeter, sock: Path) -> Iterator[Callable[..., WebProcess]]:
    """Start `tuimeter web SOCKET ARGS`; at the end it must stop on SIGTERM with exit 0."""
    started: list[WebProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> WebProcess:
        web = WebProcess(tmp_path, str(sock), *args, env=env)
        started.append(web)
        web.wait_serving()
        return web

    yield start
    for web in started:
        assert web.stop() == 0, web.output()
        assert "Traceback" not in web.output(), web.output()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def lan_address() -> str | None:
    """An address of this machine other than loopback that it can serve on and reach itself at, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # UDP: sends nothing, only picks the source address of the default route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    if address.startswith("127.") or address == "0.0.0.0":
        return None
    try:
        with socket.create_server((address, 0)) as server:
            socket.create_connection(server.getsockname()[:2], timeout=5).close()
    except OSError:
        return None
    return address


@pytest.fixture
def lan() -> str:
    address = lan_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address that it can reach itself at")
    return address


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_direct_no_redirect = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http_get(url: str, headers: dict[str, str] | None = None, follow: bool = True) -> tuple[int, dict[str, str], str]:
    """(status, headers, body) of a GET, errors included, never through a proxy."""
    opener = _direct if follow else _direct_no_redirect
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=TIMEOUT) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def descendants(pid: int) -> set[int]:
    """Every process under `pid` (the tabs' views), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            children = {int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()}
        except OSError:
            continue
        found |= children
        todo.extend(children)
    return found


def switch_relay_off(page: Page) -> None:
    page.wait_for(RELAY_ON)
    page.press("r")
    page.wait_for("This switches mains power")
    page.press("y")
    page.wait_for("relay off (confirmed by the meter)")
    page.wait_for(RELAY_OFF)


def test_loopback_view_shows_the_meter_and_switches_the_relay(page: Page, serve: Callable[..., WebProcess],
                                                              service: Tuimeter, sock: Path) -> None:
    port = free_port()
    web = serve("--bind", f"127.0.0.1:{port}")
    assert web.wait_serving() == (f"tuimeter web: serving the live screen of {sock} on "
                                  f"http://127.0.0.1:{port}/ (loopback only)")
    page.open(f"http://127.0.0.1:{port}/")
    screen = page.wait_for("● online")
    screen = page.wait_for(VOLTAGE)
    assert "Voltage" in screen and "READ-ONLY" not in screen
    assert f"attached to {sock}" in screen
    shown = VOLTAGE.search(screen)
    assert shown is not None  # the page's min and max are readings the service logged
    assert {shown.group(1), shown.group(2)} <= {f"{r['voltage_v']:.1f}" for r in service.readings()}
    switch_relay_off(page)
    (command,) = service.events("command")  # through the service's one command path, from the web
    assert command["source"] == "web" and command["result"] == "confirmed" and command["value"] is False
    views = descendants(web.proc.pid)
    assert views, "the tab's view process was not found"
    assert web.stop() == 0, web.output()
    until_sync(lambda: not any(Path(f"/proc/{pid}").exists() for pid in views),
               what="the tab's view to end with the server")


def test_non_loopback_without_a_password_is_read_only(page: Page, serve: Callable[..., WebProcess],
                                                      lan: str, service: Tuimeter, sock: Path) -> None:
    port = free_port(lan)
    web = serve("--bind", f"0.0.0.0:{port}")
    line = web.wait_serving()
    assert line.startswith(f"tuimeter web: serving the live screen of {sock} on "
                           f"http://0.0.0.0:{port}/ (read-only")
    assert "TUIMETER_WEB_PASSWORD" in line
    page.open(f"http://{lan}:{port}/")  # the page's websocket must use this address, not 0.0.0.0
    screen = page.wait_for("● online")
    assert "READ-ONLY" in screen
    page.wait_for(RELAY_ON)
    page.press("r")
    page.wait_for("read-only mode")  # the key reached the view, which explains it is locked
    screen = page.screen()
    assert "This switches mains power" not in screen
    assert RELAY_ON.search(screen) and "relay off" not in screen
    assert not service.events("command")  # nothing reached the service


def test_non_loopback_with_a_password_needs_the_token(page: Page, serve: Callable[..., WebProcess],
                                                      lan: str) -> None:
    port = free_port(lan)
    web = serve("--bind", f"{lan}:{port}", env={"TUIMETER_WEB_PASSWORD": SECRET})
    assert web.wait_serving().endswith("(token required)")
    assert SECRET not in web.output()
    base = f"http://{lan}:{port}"
    for path in ("/", "/ws", "/download/x", "/static/js/textual.js", "/?token=wrong", f"/ws?token={TOKEN_QUERY}"):
        status, _, body = http_get(base + path)
        assert status == 401, path
        assert "/?token=" in body and SECRET not in body, body
    status, headers, _ = http_get(f"{base}/?token={TOKEN_QUERY}", follow=False)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and SECRET not in cookie

    page.open(f"{base}/?token={TOKEN_QUERY}")
    page.wait_for("● online")
    assert page.driver.current_url == f"{base}/"  # the token is gone from the address bar
    switch_relay_off(page)


def test_a_websocket_from_another_site_is_refused(serve: Callable[..., WebProcess]) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    port = free_port()
    serve("--bind", f"127.0.0.1:{port}")
    url = f"ws://127.0.0.1:{port}/ws?width=80&height=24"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="http://evil.example", open_timeout=TIMEOUT)
    assert refused.value.response.status_code == 403
    with connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=TIMEOUT) as ws:
        assert ws.recv(timeout=TIMEOUT)  # the same page's websocket gets the view's output
    # a page of another site whose name is made to resolve to 127.0.0.1 (DNS rebinding) sends its own name
    status, _, body = http_get(f"http://127.0.0.1:{port}/", headers={"Host": f"evil.example:{port}"})
    assert status == 403 and "DNS-rebinding" in body


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def web(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUIMETER, "web", *args], capture_output=True, text=True, timeout=TIMEOUT)


def test_no_password_on_argv_and_a_bad_password_file_is_one_line(tmp_path: Path) -> None:
    for argv in (["--password", "s3cret"], ["--password=s3cret"], ["--token", "s3cret"]):
        assert "s3cret" not in one_line(web(*argv), "--password-file", "TUIMETER_WEB_PASSWORD")
    assert "--password" not in web("--help").stdout.replace("--password-file", "")
    empty = tmp_path / "empty"
    empty.write_text("\n  \n")
    one_line(web("--password-file", str(empty)), str(empty), "empty")
    one_line(web("--password-file", str(tmp_path / "missing")), "cannot read", "missing")


def test_a_busy_port_is_one_line_naming_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        one_line(web("--bind", f"127.0.0.1:{port}"), f"127.0.0.1:{port}", "already in use", "--bind")
