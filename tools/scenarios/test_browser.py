"""The dashboard in a real browser, against a real server.

Why it exists: the dashboard is JavaScript that no Rust test runs; only a browser shows that it
draws, fits a phone and keeps to its Content-Security-Policy.

Starts the binary ($DENDRITE_BINARY) on a free port with a fresh database, makes a small space
(2048 input bits, 40 active) with 20 patterns on 5 neurons and runs a few queries, then opens the
dashboard (`GET /`) in Debian's Chromium through Playwright and checks that

  - the service's totals and the spaces table show the 20 patterns, and the version;
  - the charts drew: each is a uPlot <canvas> of non-zero size;
  - choosing the space lists its 5 neurons with their false-match probabilities, draws the
    theory's three curves, and shows the calibration part (a 404 there is "none yet"); "Run
    calibration" gives a table with a verdict on each line;
  - the query box shows a problem+json error readably (a repeated index: 422), and a stored
    pattern pasted into it is matched to the neuron that holds it;
  - at 390x844 (a phone) the page does not scroll sideways;
  - with an API key set, the page asks for it, and works once it is entered;
  - no script error and no Content-Security-Policy violation happened;

and saves screenshots at 1280x800 and 390x844 under target/dashboard ($DENDRITE_DASHBOARD_OUT
names another folder). Each test names the first failed check, and the module is bounded in
time; the servers are stopped however it ends.

What it needs and does not find it installs: Debian's `chromium` with apt-get (as root), and
Playwright for Python with pip into the test venv at target/test-venv, when pytest runs there.
Playwright never downloads a browser of its own: it drives Debian's Chromium.

The binary must serve the page (`GET /`, with its Content-Security-Policy). For working on the
page, DENDRITE_DASHBOARD_FILES=1 serves it through a small local proxy instead (the static files
from src/http/dashboard with the same policy, /v1/* passed to the server), so the files in the
work tree can be tried without a rebuild (the binary holds the copies it was built with).

Run (from the repository root):
    DENDRITE_BINARY=target/release/dendrite target/test-venv/bin/python -m pytest tools/scenarios/test_browser.py
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.harness import ROOT, Server, call_url

VENV = Path(ROOT) / "target" / "test-venv"
DASHBOARD = Path(ROOT) / "src" / "http" / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The whole module after the installs, and the longest any one browser wait may take.
TIME_LIMIT_S = 240
WAIT_MS = 20_000
# The policy the binary serves the page with (src/http/dashboard.rs), for the proxy to do the same.
CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
SPACE = "browser"
NEURONS = ["door", "window", "hall", "kitchen", "garage"]
PATTERNS = 20
API_KEY = "browser-test-key-0123456789abcdef"

# The files the dashboard is served as, by URL.
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/style.css": ("style.css", "text/css; charset=utf-8"),
    "/dashboard/uplot.iife.min.js": ("uplot.iife.min.js", "text/javascript; charset=utf-8"),
    "/dashboard/uplot.min.css": ("uplot.min.css", "text/css; charset=utf-8"),
    "/dashboard/uplot.LICENSE": ("uplot.LICENSE", "text/plain; charset=utf-8"),
}


class Failure(AssertionError):
    """A check that did not hold."""


def say(message: str) -> None:
    print(f"browser test: {message}", flush=True)


# ------------------------------------------------------------------ what it needs


def ensure_chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("installing Debian's chromium with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise Failure(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")
        found = shutil.which("chromium")
        if found:
            return found
    raise Failure(
        "Debian's chromium is not installed and this run cannot install it "
        "(it needs root and apt-get): install it with `sudo apt-get install chromium`"
    )


def in_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def ensure_playwright() -> None:
    """Makes `playwright` importable: installs it into the test venv when pytest runs there."""
    try:
        import playwright.sync_api  # noqa: F401

        return
    except ImportError:
        pass
    if not in_venv():
        raise Failure(f"playwright is not importable: run pytest with {VENV / 'bin' / 'python'}, which installs it")
    say(f"installing playwright into {VENV} (no browser download: it drives Debian's chromium)")
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "playwright"]
    if subprocess.run(command, env=env).returncode != 0:
        raise Failure("pip could not install playwright into the test venv")
    import importlib

    importlib.invalidate_caches()
    import playwright.sync_api  # noqa: F401


# ------------------------------------------------------------------ the stand-in for `GET /`


class DashboardProxyHandler(BaseHTTPRequestHandler):
    """Serves the dashboard's files as the binary will, and passes /v1/* to `upstream`."""

    protocol_version = "HTTP/1.1"
    upstream = ""  # set by start_proxy's subclass

    def log_message(self, *args):  # quiet
        pass

    def send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("content-security-policy", CSP)
        self.send_header("x-content-type-options", "nosniff")
        self.send_header("cache-control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def forward(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        wanted = ("content-type", "authorization", "accept")
        headers = {k: v for k, v in self.headers.items() if k.lower() in wanted}
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, raw, got = answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), error.headers
        extra = {"www-authenticate": got["www-authenticate"]} if got.get("www-authenticate") else {}
        self.send(status, raw, got.get("content-type", "application/octet-stream"), extra)

    def handle_any(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1/") or path == "/openapi.yaml":
            self.forward()
        elif self.command == "GET" and path in STATIC:
            name, content_type = STATIC[path]
            self.send(200, (DASHBOARD / name).read_bytes(), content_type)
        else:
            problem = {
                "type": "urn:dendrite:problem:not-found",
                "title": "Not found",
                "status": 404,
                "detail": "no such file",
            }
            self.send(404, json.dumps(problem).encode(), "application/problem+json")

    do_GET = do_POST = do_PUT = do_DELETE = handle_any


class DashboardProxy(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A browser that closes a connection mid-answer (a page left) is no failure.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def start_proxy(upstream: str) -> tuple[ThreadingHTTPServer, str]:
    """The proxy for `upstream`, serving on a free port: (proxy, its URL)."""
    handler = type("Handler", (DashboardProxyHandler,), {"upstream": upstream})
    proxy = DashboardProxy(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy, f"http://127.0.0.1:{proxy.server_address[1]}"


def page_url(server: Server, proxies: list, served: bool | None = None, files: bool = False) -> str:
    """Where the dashboard is: the server itself, or the proxy while it does not serve `GET /`.

    `served` is what an earlier server of the same binary showed; None checks this one. `files`
    takes the proxy, with the work tree's files, whatever the server does."""
    if files:
        proxy, base = start_proxy(server.base)
        proxies.append(proxy)
        return base
    status, _, headers = call_url(server.base, "GET", "/")
    if status == 200 and "text/html" in (headers.get("content-type") or ""):
        if not (headers.get("content-security-policy") or "").startswith("default-src 'self'"):
            raise Failure("GET / answers without its Content-Security-Policy (default-src 'self')")
        return server.base
    if served:
        raise Failure(
            f"GET / answered {status} on the server with an API key: the page must load without a key "
            "to be able to ask for one"
        )
    raise Failure(
        f"GET / answered {status} ({headers.get('content-type')}): the binary must serve the dashboard "
        "(DENDRITE_DASHBOARD_FILES=1 tries the work tree's files through a local proxy instead)"
    )


# ------------------------------------------------------------------ the data


def store_dashboard_data(base: str) -> dict:
    """The space, 20 patterns on 5 neurons and 4 queries; returns what the page should show."""
    # With an encoder, so the page shows its fields' meanings; the patterns are bit lists all the
    # same (a space with an encoder takes both).
    encoder = {
        "fields": {
            "temperature": {"type": "number", "active_bits": 24, "resolution": 0.5},
            "device": {"type": "category", "active_bits": 16},
        }
    }
    status, body, _ = call_url(
        base, "PUT", f"/v1/spaces/{SPACE}", {"input_size": 2048, "active_bits": 40, "encoder": encoder}
    )
    if status != 201:
        raise Failure(f"creating the space answered {status}: {body}")
    rng = random.Random(20261127)
    stored = []
    for i in range(PATTERNS):
        neuron = NEURONS[i % len(NEURONS)]
        active = sorted(rng.sample(range(2048), 40))
        pattern_id = f"{neuron}-{i // len(NEURONS)}"
        path = f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns"
        status, body, _ = call_url(base, "POST", path, {"id": pattern_id, "active": active})
        if status != 201:
            raise Failure(f"storing {pattern_id} answered {status}: {body}")
        stored.append((neuron, pattern_id, active))
    return query_dashboard_data(base, stored, rng)


def query_dashboard_data(base: str, stored: list, rng: random.Random) -> dict:
    """Three noisy queries and one exact one; what the page should show afterwards."""
    for neuron, _, active in stored[:3]:
        noisy = sorted(set(active[8:]) | set(rng.sample(range(2048), 8)))
        status, body, _ = call_url(base, "POST", f"/v1/spaces/{SPACE}/query", {"active": noisy})
        if status != 200:
            raise Failure(f"a query answered {status}: {body}")
    neuron, pattern_id, active = stored[7]
    status, body, _ = call_url(base, "POST", f"/v1/spaces/{SPACE}/query", {"active": active})
    if status != 200 or not body["matches"] or body["matches"][0]["neuron"] != neuron:
        raise Failure(f"the API itself does not match {pattern_id} to {neuron} first: {status} {body}")
    status, stats, _ = call_url(base, "GET", "/v1/stats")
    if status != 200:
        raise Failure(f"GET /v1/stats answered {status}")
    return {
        "neuron": neuron,
        "pattern": pattern_id,
        "active": active,
        "version": stats.get("version"),
        "sequence": stats.get("applied_sequence"),
    }


# ------------------------------------------------------------------ the browser


class Watch:
    """Script errors and CSP violations on a page; console 404s of fetches are expected."""

    def __init__(self, page, label: str):
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"{label}: script error: {error}"))
        page.on("console", self.console)
        self.label = label

    def console(self, message) -> None:
        text = message.text
        if message.type == "error" and ("Content Security Policy" in text or "Refused to" in text):
            self.problems.append(f"{self.label}: {text}")

    def check(self) -> None:
        if self.problems:
            raise Failure("; ".join(self.problems[:5]))


def text_of(page, selector: str) -> str:
    return (page.locator(selector).first.text_content(timeout=WAIT_MS) or "").strip()


def wait_text(page, selector: str, wanted: str, what: str) -> None:
    try:
        page.wait_for_function(
            "([s, w]) => { const e = document.querySelector(s); return e && e.textContent.trim() === w; }",
            arg=[selector, wanted],
            timeout=WAIT_MS,
        )
    except Exception:
        got = page.evaluate(
            "(s) => { const e = document.querySelector(s); return e ? e.textContent.trim() : null; }", selector
        )
        raise Failure(f"{what}: expected {wanted!r} in {selector}, found {got!r}") from None


def canvas_size(page, selector: str) -> tuple[float, float]:
    box = page.evaluate(
        "(s) => { const c = document.querySelector(s); if (!c) return null;"
        " const r = c.getBoundingClientRect(); return [r.width, r.height, c.width, c.height]; }",
        selector,
    )
    if not box:
        raise Failure(f"no chart canvas at {selector}")
    if min(box) <= 0:
        raise Failure(f"the chart canvas at {selector} has no size: {box}")
    return box[0], box[1]


def wait_canvas(page, selector: str, what: str) -> None:
    try:
        page.wait_for_function(
            "(s) => { const c = document.querySelector(s); if (!c) return false;"
            " const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0 && c.width > 0 && c.height > 0; }",
            arg=selector,
            timeout=WAIT_MS,
        )
    except Exception:
        raise Failure(f"{what}: no drawn chart canvas at {selector}") from None
    canvas_size(page, selector)


def run_calibration(page) -> None:
    """Runs a calibration from the page: a table with a verdict on each line, or, on a service
    without calibration (404), a readable message."""
    page.click("#calibrate-run")
    try:
        page.wait_for_function(
            "() => !document.getElementById('calibrate-run').disabled"
            " && (!document.getElementById('calibration-result').hidden"
            " || !document.getElementById('calibration-problem').hidden)",
            timeout=60_000,
        )
    except Exception:
        raise Failure("Run calibration did not finish in 60 s") from None
    if page.locator("#calibration-problem").is_visible():
        shown = text_of(page, "#calibration-problem")
        raise Failure(f"Run calibration shows an error: {shown!r}")
    verdicts = page.locator("#calibration-table tbody tr .verdict").all_text_contents()
    if not verdicts or any(v not in ("consistent", "optimistic", "pessimistic") for v in verdicts):
        raise Failure(f"the calibration table's verdicts are {verdicts!r}")
    say(f"calibration ran: {len(verdicts)} lines, verdicts {', '.join(sorted(set(verdicts)))}")


def check_neurons_and_theory(page) -> None:
    """The space's neurons with their false-match probabilities, and the theory's curves."""
    try:
        page.wait_for_function(
            "(n) => { const rows = document.querySelectorAll('#neurons-table tbody tr');"
            " return rows.length === n && Array.from(rows).every(r => !r.textContent.includes('…')); }",
            arg=len(NEURONS),
            timeout=WAIT_MS,
        )
    except Exception:
        rows = page.locator("#neurons-table tbody tr").count()
        raise Failure(
            f"the neurons table should list {len(NEURONS)} neurons with their reports; it has {rows} rows"
        ) from None
    listed = sorted(page.locator("#neurons-table tbody tr th").all_text_contents())
    if [n.strip() for n in listed] != sorted(NEURONS):
        raise Failure(f"the neurons table lists {listed}, not {sorted(NEURONS)}")
    if "×" not in text_of(page, "#neurons-table tbody tr td.false-match"):
        raise Failure("a neuron's false-match probability is not shown as a power of ten")
    wait_canvas(page, "#chart-neurons canvas", "the neurons' false-match chart")
    for chart in ("theta", "union", "miss"):
        wait_canvas(page, f"#chart-{chart} canvas", f"the theory's {chart} curve")


def check_encoder_and_calibration(page, calibrate: bool) -> None:
    """The encoder's fields, the theory part without error, and the calibration part."""
    # The encoder's fields, each with how far it may move and still be recognised.
    try:
        page.wait_for_function(
            "() => !document.getElementById('space-encoder').hidden"
            " && document.querySelectorAll('#encoder-table tbody tr').length === 2",
            timeout=WAIT_MS,
        )
    except Exception:
        raise Failure("the space's encoder fields are not shown in a table of two rows") from None
    fields = sorted(t.strip() for t in page.locator("#encoder-table tbody tr th").all_text_contents())
    if fields != ["device", "temperature"]:
        raise Failure(f"the encoder table lists {fields}, not device and temperature")
    problem = page.locator("#theory-problem")
    if problem.is_visible():
        raise Failure(f"the theory part shows an error: {problem.text_content()}")
    try:
        page.wait_for_function(
            "() => { const s = document.getElementById('calibration-state').textContent;"
            " return document.getElementById('calibration-result').hidden === false"
            " || (s !== '' && s !== 'loading…') || !document.getElementById('calibration-problem').hidden; }",
            timeout=WAIT_MS,
        )
    except Exception:
        raise Failure("the calibration part never finished loading") from None
    say(f"calibration part shows: {text_of(page, '#calibration-state') or 'a table'}")
    if calibrate:
        run_calibration(page)


def check_query_box(page, expected: dict) -> None:
    """A problem+json answer shown readably, then a stored pattern matched to its neuron."""
    # A problem+json answer, shown readably: a repeated index is 422.
    page.fill("#query-active", "5, 5")
    page.click("#query-run")
    page.locator("#query-problem").wait_for(state="visible", timeout=WAIT_MS)
    shown = text_of(page, "#query-problem")
    if "422" not in shown or "twice" not in shown:
        raise Failure(f"a 422 answer is not shown with its title and detail: {shown!r}")

    page.fill("#query-active", ", ".join(map(str, expected["active"])))
    page.fill("#query-threshold", "")
    page.click("#query-run")
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('#query-table tbody tr').length > 0 && !document.getElementById('query-result').hidden",
            timeout=WAIT_MS,
        )
    except Exception:
        raise Failure(f"the query of {expected['pattern']} showed no matches table") from None
    if page.locator("#query-problem").is_visible():
        raise Failure(f"the query shows an error: {text_of(page, '#query-problem')}")
    first = text_of(page, "#query-table tbody tr td.neuron")
    if first != expected["neuron"]:
        raise Failure(
            f"the query of {expected['pattern']} should match {expected['neuron']} first; the table names {first!r}"
        )
    p_value = text_of(page, "#query-table tbody tr td.p-value")
    if "×" not in p_value:
        raise Failure(f"the match's p-value is not shown as a power of ten: {p_value!r}")


def check_space(page, expected: dict, calibrate: bool = False) -> None:
    """The space's parts after choosing it: neurons, theory curves, calibration, query."""
    check_neurons_and_theory(page)
    check_encoder_and_calibration(page, calibrate)
    check_query_box(page, expected)


# ------------------------------------------------------------------ fixtures


class Dashboard:
    """Two servers with the dashboard (one open and holding the data, one with an API key),
    where their pages are, and what the open one's page should show."""

    def __init__(self, binary: str, folder: Path, files: bool):
        self.servers: list[Server] = []
        self.proxies: list[ThreadingHTTPServer] = []
        self.out = Path(os.environ.get("DENDRITE_DASHBOARD_OUT") or Path(ROOT) / "target" / "dashboard").resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        plain = self.start_server(binary, folder / "open")
        self.expected = store_dashboard_data(plain.base)
        say(f"server {plain.base}: space {SPACE!r}, {PATTERNS} patterns on {len(NEURONS)} neurons, 4 queries")
        self.url = page_url(plain, self.proxies, files=files)
        if files:
            say("serving the work tree's src/http/dashboard through a local proxy (DENDRITE_DASHBOARD_FILES=1)")
        keyed = self.start_server(binary, folder / "keyed", ["--api-key", API_KEY])
        self.keyed_url = page_url(keyed, self.proxies, served=self.url == plain.base, files=files)

    def start_server(self, binary: str, folder: Path, extra: tuple = ()) -> Server:
        folder.mkdir()
        server = Server(binary, str(folder / "d.db"), str(folder / "server.log"), extra_args=extra)
        self.servers.append(server)
        try:
            server.start(30.0, http_timeout=2.0)
        except RuntimeError as error:
            raise Failure(f"{error}; its log:\n{server.log_tail(None, max_bytes=3000)}") from None
        return server

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.shutdown()
        for server in self.servers:
            server.stop(10)

    def kill(self) -> None:
        for server in self.servers:
            with contextlib.suppress(OSError):
                server.kill9()


@pytest.fixture(scope="module")
def dashboard(binary):
    for name, _ in STATIC.values():
        if not (DASHBOARD / name).is_file():
            raise Failure(f"{DASHBOARD / name} is missing")
    chromium = ensure_chromium()
    ensure_playwright()
    with tempfile.TemporaryDirectory(prefix="dendrite-browser-") as folder:
        made = []

        def too_long() -> None:
            print(f"browser test: FAILED: it ran past its {TIME_LIMIT_S} s limit", file=sys.stderr, flush=True)
            for each in made:
                each.kill()
            os._exit(1)

        watchdog = threading.Timer(TIME_LIMIT_S, too_long)
        watchdog.daemon = True
        watchdog.start()
        try:
            made.append(Dashboard(binary, Path(folder), os.environ.get("DENDRITE_DASHBOARD_FILES") == "1"))
            made[0].chromium = chromium
            yield made[0]
        finally:
            for each in made:
                each.stop()
            watchdog.cancel()


@pytest.fixture(scope="module")
def browser(dashboard):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=dashboard.chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def page_in(browser, out: Path, label: str, **context_options):
    """A page in a fresh browser context, watched for script errors and CSP violations; on a
    failed check the page as it was is saved as failure.png."""
    context = browser.new_context(**context_options)
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        yield page, Watch(page, label)
    except Failure:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(out / "failure.png"), full_page=True)
            say(f"the page as it was: {out / 'failure.png'}")
        raise
    finally:
        context.close()


# ------------------------------------------------------------------ the tests


def test_desktop_shows_totals_charts_space_and_query(browser, dashboard):
    expected = dashboard.expected
    with page_in(browser, dashboard.out, "1280x800", viewport={"width": 1280, "height": 800}) as (page, watch):
        page.goto(dashboard.url + "/", wait_until="load")
        wait_text(page, "#stat-patterns", str(PATTERNS), "the service's pattern count")
        row = f'#spaces-table tbody tr[data-space="{SPACE}"] td.patterns'
        wait_text(page, row, str(PATTERNS), "the space's pattern count")
        # One change per write: the space, then each pattern (SQLite shows no lag).
        wait_text(page, "#stat-sequence", str(expected["sequence"]), "the changes applied")
        wait_text(page, "#stat-backend", "sqlite database", "the database's kind")
        if not expected["version"]:
            raise Failure("/v1/stats has no version for the page to show")
        wait_text(page, "#version", f"version {expected['version']}", "the version")
        say(f"counts show {PATTERNS} patterns, version {expected['version']}")
        wait_canvas(page, "#chart-rates canvas", "the request-rate chart")
        wait_canvas(page, "#chart-latency canvas", "the latency chart")
        say("rate and latency charts drew (canvas of non-zero size)")
        page.select_option("#space-select", SPACE)
        check_space(page, expected, calibrate=True)
        say(f"space chosen: {len(NEURONS)} neurons, 3 theory curves; the query matched {expected['neuron']}")
        page.wait_for_timeout(2500)  # a second poll, so the rate chart has a point
        watch.check()
        shot = dashboard.out / "dashboard-1280x800.png"
        page.screenshot(path=str(shot), full_page=True)
        say(f"screenshot {shot}")


def test_phone_layout_fits(browser, dashboard):
    """A phone: the space from the address, nothing wider than the screen."""
    phone = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
    with page_in(browser, dashboard.out, "390x844", **phone) as (page, watch):
        page.goto(dashboard.url + f"/#space={SPACE}", wait_until="load")
        wait_text(page, "#stat-patterns", str(PATTERNS), "the phone's pattern count")
        if page.locator("#space-select").input_value() != SPACE:
            page.wait_for_function(
                f"() => document.getElementById('space-select').value === '{SPACE}'", timeout=WAIT_MS
            )
        check_space(page, dashboard.expected)
        wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if wide[0] > wide[1] + 1:
            raise Failure(f"at 390x844 the page is {wide[0]} px wide for a {wide[1]} px screen: it scrolls sideways")
        width, _ = canvas_size(page, "#chart-theta canvas")
        if width > 390:
            raise Failure(f"at 390x844 a chart is {width} px wide")
        watch.check()
        shot = dashboard.out / "dashboard-390x844.png"
        page.screenshot(path=str(shot), full_page=True)
        say(f"phone layout fits 390 px; screenshot {shot}")


def test_api_key_is_asked_for_and_used(browser, dashboard):
    """A service with keys: the page asks for one, keeps it in sessionStorage, then works."""
    with page_in(browser, dashboard.out, "keyed", viewport={"width": 1280, "height": 800}) as (page, watch):
        page.goto(dashboard.keyed_url + "/", wait_until="load")
        page.locator("#key-form").wait_for(state="visible", timeout=WAIT_MS)
        page.fill("#key-input", API_KEY)
        page.click("#key-form button[type=submit]")
        wait_text(page, "#stat-spaces", "0", "the keyed service's space count")
        if page.locator("#key-form").is_visible():
            raise Failure("the key box stayed open after a good key")
        kept = page.evaluate("() => sessionStorage.getItem('dendrite.apiKey')")
        if kept != API_KEY:
            raise Failure("the key is not kept in sessionStorage")
        watch.check()
        say("with --api-key: the page asked for the key and used it")
