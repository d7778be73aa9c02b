"""Shared plumbing of everything in tools/ that drives a real `dendrite serve` process over HTTP.

Why it exists: the scenario tests (tools/scenarios: crash, storage faults, replicas, the browser)
and the load tools (tools/load: soak, isolation, backup, ...) all start the server on 127.0.0.1
and a free port with a database of their own, wait until it is ready, talk JSON to it and
summarise what they saw. Those pieces live here once, so that a fix (say, to how a stale
keep-alive connection is retried, or to how a request that may have reached the server is told
apart from one that cannot have) reaches every scenario and tool.

Standard library only, imported as `tools.harness`: run everything from the repository root
(`python -m pytest tools/scenarios/...`, `python -m tools.load.run ...`). Traffic goes only to
127.0.0.1.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BINARY = os.path.join(ROOT, "target", "release", "dendrite")

# The space every script creates: n=2048, a=40, s=24, theta=12.
SPACE_PARAMS = {"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12}
N, A = SPACE_PARAMS["input_size"], SPACE_PARAMS["active_bits"]

# A failure of these on a connection that already carried a request is a stale keep-alive
# connection (the server closed it meanwhile): the request is sent once more on a fresh one.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class NoAnswer(Exception):
    """The request got no HTTP answer (connection refused or reset, timeout). `sent` is False only
    when no byte of the request can have reached the server (every attempt was refused at connect):
    then nothing can have changed."""

    def __init__(self, message, sent=True):
        super().__init__(message)
        self.sent = sent


Answer = namedtuple("Answer", "status headers raw")
Answer.__doc__ = "An HTTP answer: status, headers (lower-case names), raw body bytes."


def encode(body):
    """Request body bytes: None stays None, bytes are sent as they are, anything else as JSON."""
    if body is None or isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


def decode(raw, limit=None):
    """The decoded JSON of a body (None when empty); a body that is not JSON is returned as bytes
    (its first `limit` bytes when a limit is given)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw if limit is None else raw[:limit]


class Connection:
    """One keep-alive HTTP connection to 127.0.0.1:`port`, owned by one thread.

    `headers`: extra request headers sent with every request (e.g. {"authorization": "Bearer KEY"}).

    A request that fails on a reused connection before any answer (a stale keep-alive connection)
    is sent once more on a fresh one and counted in `reconnects`. Every other failure raises
    NoAnswer at once; its `sent` is False only when nothing can have reached the server. The first
    request on a new Connection is never sent twice: use a fresh one for a request that must not be
    repeated (say, a backup)."""

    def __init__(self, port, timeout, headers=None):
        self.port, self.timeout = port, timeout
        self.headers = dict(headers or {})
        self.conn = None
        self.used = False
        self.reconnects = 0

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exchange(self, method, path, body=None):
        """Sends one request (`body`: JSON-able, bytes or None); returns an Answer or raises NoAnswer."""
        data = encode(body)
        headers = {"content-type": "application/json"} if data is not None else {}
        headers.update(self.headers)
        may_have_left = False  # an earlier attempt may have reached the server
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                self.used = False
            reused = self.used
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
            except _STALE as error:
                self.close()
                may_have_left = True
                if reused and attempt == 1:
                    self.reconnects += 1
                    continue
                raise NoAnswer(f"{type(error).__name__}: {error}") from None
            except (OSError, http.client.HTTPException) as error:  # includes timeouts
                self.close()
                refused = isinstance(error, ConnectionRefusedError)
                raise NoAnswer(f"{type(error).__name__}: {error}", sent=may_have_left or not refused) from None
            self.used = True
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, raw)
            if response.will_close:
                self.close()
            return answer
        raise AssertionError("unreachable")

    def call(self, method, path, body=None):
        """(status, raw body bytes). Raises NoAnswer."""
        answer = self.exchange(method, path, body)
        return answer.status, answer.raw

    def call_json(self, method, path, body=None):
        """(status, decoded body, see decode()). Raises NoAnswer."""
        answer = self.exchange(method, path, body)
        return answer.status, decode(answer.raw)


def request_once(port, method, path, body=None, timeout=10.0):
    """One request on a fresh connection, closed afterwards: an Answer. Raises NoAnswer."""
    with Connection(port, timeout) as connection:
        return connection.exchange(method, path, body)


class Http:
    """A Connection per thread (thread-local), to `port` or to the port named in each call.

    A thread's connection is replaced when it calls another port (a restarted server);
    close() closes the calling thread's connection."""

    def __init__(self, port=None, timeout=10.0):
        self.port, self.timeout = port, timeout
        self.local = threading.local()

    def connection(self, port=None):
        """The calling thread's Connection to `port` (default: the client's port)."""
        port = self.port if port is None else port
        connection = getattr(self.local, "connection", None)
        if connection is None or connection.port != port:
            if connection is not None:
                connection.close()
            connection = self.local.connection = Connection(port, self.timeout)
        return connection

    def call(self, method, path, body=None, port=None):
        """(status, raw body bytes). Raises NoAnswer."""
        return self.connection(port).call(method, path, body)

    def call_json(self, method, path, body=None, port=None):
        """(status, decoded body). Raises NoAnswer."""
        return self.connection(port).call_json(method, path, body)

    def close(self):
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
            self.local.connection = None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def random_bits(rng, count=A):
    """`count` distinct random bits of N, ascending."""
    return sorted(rng.sample(range(N), count))


def argument_parser(doc):
    """An ArgumentParser described by the first paragraph of `doc`, with --binary."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(
        "--binary",
        default=DEFAULT_BINARY,
        help="server binary, relative to the repository root unless absolute (default target/release/dendrite)",
    )
    return parser


def resolve_binary(path):
    """The absolute path of a server binary given absolute or relative to the repository root."""
    return path if os.path.isabs(path) else os.path.abspath(os.path.join(ROOT, path))


def executable(path, script):
    """resolve_binary(path) if that is an executable file; else None, after printing
    "SCRIPT: no executable server binary at PATH"."""
    binary = resolve_binary(path)
    if not os.access(binary, os.X_OK):
        print(f"{script}: no executable server binary at {binary}")
        return None
    return binary


def exit_on_sigterm():
    """SIGTERM exits with status 1 through SystemExit, so that `finally` blocks stop the server."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def fresh_server(binary, name, extra_args=()):
    """(directory, Server): a new temporary directory `dendrite-NAME-*` holding the server's SQLite
    file and log, and SIGTERM made to exit through `finally`, so the caller's clean-up stops it."""
    directory = tempfile.mkdtemp(prefix=f"dendrite-{name}-")
    server = Server(
        binary, os.path.join(directory, "d.db"), os.path.join(directory, "server.log"), extra_args=extra_args
    )
    exit_on_sigterm()
    return directory, server


def keep_or_remove(directory, keep):
    """Prints where the data is kept, or removes the directory."""
    if keep:
        print(f"data kept in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


def _die_with_parent():
    """In the server's child process: SIGKILL it if the thread that started it dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Server:
    """One `BINARY serve` process at a time on one database, on 127.0.0.1 and a free port.

    Runs `BINARY serve --listen 127.0.0.1:PORT --database-url sqlite://DATABASE --log-level warn
    [extra_args]` with its output appended to `log_path`; `database_url`, when given, is passed
    instead of sqlite://DATABASE (a PostgreSQL replica: postgres://...). With die_with_parent the
    server gets SIGKILL if the script dies (Linux; only for single-threaded scripts: it needs a
    preexec_fn). With clean_env the DENDRITE_* variables of this environment are not passed on
    (an API key there would lock the caller out). `name` labels it in messages.

    start() is launch() then wait_ready(): several servers can be launched first and waited for
    afterwards, so that their start-ups overlap (replicas running their migrations together)."""

    def __init__(
        self,
        binary,
        database,
        log_path,
        extra_args=(),
        die_with_parent=False,
        database_url=None,
        name="server",
        clean_env=False,
    ):
        self.binary, self.database, self.log_path = binary, database, log_path
        self.database_url = database_url if database_url is not None else f"sqlite://{database}"
        self.extra_args = list(extra_args)
        self.die_with_parent = die_with_parent
        self.name, self.clean_env = name, clean_env
        self.process = None
        self.port = None
        self.launched = None

    @property
    def base(self):
        """The server's URL, http://127.0.0.1:PORT."""
        return f"http://127.0.0.1:{self.port}"

    def launch(self):
        """Starts the process on a new free port without waiting for it."""
        self.port = free_port()
        env = None
        if self.clean_env:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "serve",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--database-url",
                    self.database_url,
                    "--log-level",
                    "warn",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        self.launched = time.monotonic()

    def wait_ready(self, ready_timeout=60.0, http_timeout=5.0):
        """Seconds from launch() until GET /healthz and GET /readyz both answered 200. Raises
        RuntimeError when the process exits first or `ready_timeout` seconds pass (the process is
        then left to kill9() or stop())."""
        deadline = self.launched + ready_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.process.returncode} while starting "
                    f"(log: {self.log_path}): {self.log_tail(3).strip()[-400:]}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"{self.name} was not ready (healthz and readyz 200) within {ready_timeout:g} s "
                    f"(log: {self.log_path})"
                )
            timeout = max(0.05, min(http_timeout, remaining))
            try:
                if (
                    request_once(self.port, "GET", "/healthz", timeout=timeout).status == 200
                    and request_once(self.port, "GET", "/readyz", timeout=timeout).status == 200
                ):
                    return time.monotonic() - self.launched
            except NoAnswer:
                pass
            time.sleep(0.02)

    def start(self, ready_timeout=60.0, http_timeout=5.0):
        """launch() and wait_ready(): the seconds until the server was ready."""
        self.launch()
        return self.wait_ready(ready_timeout, http_timeout)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def kill9(self):
        """SIGKILL if running; waits for (reaps) the process."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self, timeout):
        """SIGTERM; returns the exit status (also of a process that had already exited), or None if
        none was started or it had to be killed after `timeout` s."""
        if self.process is None:
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def print_log_tail(self, lines=15):
        """Prints the log's last `lines` lines under "server log (last lines):", if there are any."""
        tail = self.log_tail(lines)
        if tail:
            print("server log (last lines):\n" + tail)

    def log_tail(self, lines=15, max_bytes=None):
        """The last `lines` lines of the log (of its last `max_bytes` bytes if given; all the lines
        there when `lines` is None), or "" when there is none."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        if max_bytes is not None:
            data = data[-max_bytes:]
        kept = data.splitlines(keepends=True)
        if lines is not None:
            kept = kept[-lines:]
        return b"".join(kept).decode(errors="replace")


def call_url(base, method, path, body=None, key=None, timeout=15.0):
    """One request to `base` + `path` with urllib (any host the caller names, an API key as a
    Bearer token): (status, decoded JSON or None, headers). An HTTP error status is an answer,
    not an exception; a connection failure raises OSError."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"accept": "application/json"}
    if body is not None:
        headers["content-type"] = "application/json"
    if key:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw, status, got = answer.read(), answer.status, answer.headers
    except urllib.error.HTTPError as error:
        raw, status, got = error.read(), error.code, error.headers
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return status, parsed, got


class Violations:
    """Broken promises found by many threads at once: every one is counted, the first `keep`
    are kept word for word. A scenario asserts there are none at its end (assert_none), so one
    run reports all it found rather than only the first."""

    def __init__(self, keep=200):
        self.lock = threading.Lock()
        self.keep = keep
        self.kept = []
        self.count = 0

    def add(self, message):
        with self.lock:
            self.count += 1
            if len(self.kept) < self.keep:
                self.kept.append(message)

    def report(self):
        """The violations as lines, ending with how many were not kept."""
        lines = [f"  - {message}" for message in self.kept]
        if self.count > len(self.kept):
            lines.append(f"  ... and {self.count - len(self.kept)} more")
        return "\n".join(lines)

    def assert_none(self, what, log_tails=()):
        """Raises AssertionError listing the violations (and `log_tails`, (label, text) pairs)."""
        if not self.count:
            return
        tails = "".join(f"\n{label} (last lines):\n{tail}" for label, tail in log_tails if tail.strip())
        raise AssertionError(f"{what}: {self.count} violation(s):\n{self.report()}{tails}")


class Checks:
    """Named checks, each printed PASS or FAIL as it is made, the run going on after a failure;
    assert_all() at the end fails with every failed one."""

    def __init__(self):
        self.failed = []
        self.passed = 0
        self.notes = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"  PASS {what}")
        else:
            self.failed.append(f"{what}: {detail}" if detail else what)
            print(f"  FAIL {what}" + (f": {detail}" if detail else ""))
        return ok

    def note(self, text):
        self.notes.append(text)
        print(f"  NOTE {text}")

    def assert_all(self, log_tail=""):
        print(f"summary: {self.passed} passed, {len(self.failed)} failed")
        for note in self.notes:
            print(f"  note: {note}")
        if self.failed:
            failures = "\n".join(f"  - {failure}" for failure in self.failed)
            tail = f"\nserver log (last lines):\n{log_tail}" if log_tail.strip() else ""
            raise AssertionError(f"{len(self.failed)} check(s) failed:\n{failures}{tail}")
