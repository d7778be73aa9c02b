#!/usr/bin/env python3
"""Isolation test: one long read must not stall the rest of the service.

What it checks
  While large query batches keep a big space busy, the service's quick requests (the health check,
  stores and queries in another space, and single stores into the busy space itself) should keep
  answering promptly. The script measures the latency of each kind side by side, so a stall shows
  as a p99 or max of the quick kinds close to the latency of a long read.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, `--log-level warn` and `--body-limit 16777216`, and waits for GET /healthz and
    GET /readyz to answer 200.
  - Creates the spaces "big" and "other" (n=2048, a=40, s=24, theta=12) and fills "big" with
    --neurons neurons (default 100,000), one random pattern of 40 bits each, with
    POST /v1/spaces/big/patterns in batches of 2000 (each must answer 200).
  - Then, for --seconds seconds (default 30), runs concurrently:
      (a) long reads: --readers threads (default 2), each looping
          POST /v1/spaces/big/query/batch with 1000 queries of 30..50 random bits and a threshold
          of 6..20 chosen per query (so the per-(size, threshold) cache of the expected false
          matches does not help). 200 is a success; 503 `timeout` (the batch ran past the server's
          request timeout) is counted separately and is not an error.
      (b) GET /healthz every 20 ms;
      (c) a single store to "other" every 50 ms (neurons w0..w499), 201 or 200;
      (d) a single query of 40 random bits to "other" every 50 ms, 200;
      (e) a single store to "big" every 200 ms (neurons e0..e499), 201 or 200: it shares the space
          with the long reads, so it waits for the writer between their slices.
    The periodic kinds run on a fixed schedule; a tick that falls due while the previous request of
    its kind is still running is skipped and counted ("late"), not sent in a burst afterwards.
    The long-read bodies are generated before the measurement (a pool of --pool distinct batches
    drawn at random), so the client's own JSON work does not disturb the probes' latencies.
    Batches still in flight when the time is up are waited for (at most the HTTP timeout) and counted.
  - Prints one line per kind: count, p50, p99 and max latency in ms, and the statuses that were
    not successes (the long reads also: 503 timeouts, and queries/s answered 200 from the start
    until the last batch came back); then the server's GET /v1/stats on one line.

Exit status: 0 when every request got an expected answer and the server stayed up; 1 when a request
errored (an unexpected status, no answer, a connection error or a client timeout), the set-up
failed or the server died. Latencies are reported, never failed on.

Each thread keeps one keep-alive connection (http.client, timeout --timeout, default 60 s); a
connection that fails on reuse before any answer is reopened and the request sent once more
(counted as "reconnects"). Traffic goes only to 127.0.0.1; the server is killed on exit.

Run from the repository root (release binary built; a debug binary with smaller settings works too):
    python -m tools.load.isolation
    python -m tools.load.isolation --binary target/debug/dendrite --neurons 20000 --seconds 10
Note: recognition moves to the CPU workers only in a space of more than 50,000 segments, so with
--neurons at or under 50,000 the long reads run on the async workers.
"""

import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

from tools import harness
from tools.harness import SPACE_PARAMS, Connection, NoAnswer, Server, percentile, random_bits

FILL_BATCH = 2000
QUERIES_PER_BATCH = 1000
BODY_LIMIT = 16 * 1024 * 1024

# kind -> (label, statuses counted as success)
KINDS = {
    "a": ("long reads (big, batch of 1000)", (200,)),
    "b": ("healthz every 20 ms", (200,)),
    "c": ("store other every 50 ms", (200, 201)),
    "d": ("query other every 50 ms", (200,)),
    "e": ("store big every 200 ms", (200, 201)),
}


class Recorder:
    """Latencies and outcomes of one kind. Guarded by its lock."""

    def __init__(self, ok_statuses):
        self.ok_statuses = ok_statuses
        self.lock = threading.Lock()
        self.latencies = []  # seconds, every answered or failed request
        self.ok = 0
        self.timeouts = 0  # 503 `timeout`: not an error
        self.errors = {}  # "status" or "status:type" or "no-answer" -> count
        self.examples = []
        self.late = 0  # periodic ticks skipped because the previous request was still running
        self.reconnects = 0
        self.last_end = None  # time.monotonic() of the last answer (long reads: for queries/s)

    def record(self, seconds, status, raw, error=None):
        with self.lock:
            self.latencies.append(seconds)
            if status in self.ok_statuses:
                self.ok += 1
                return
            kind = problem_type(raw) if raw is not None else None
            if status == 503 and kind == "timeout":
                self.timeouts += 1
                return
            key = "no-answer" if status is None else (f"{status}:{kind}" if kind else str(status))
            self.errors[key] = self.errors.get(key, 0) + 1
            if len(self.examples) < 5:
                detail = error if status is None else raw[:200]
                self.examples.append(f"{key}: {detail}")


def problem_type(raw):
    """The slug of a problem document's `type` (`urn:dendrite:problem:timeout` -> `timeout`), or None."""
    try:
        value = json.loads(raw).get("type")
    except (ValueError, AttributeError):
        return None
    if not isinstance(value, str) or not value:
        return None
    return value.rstrip("/:").replace("/", ":").rsplit(":", 1)[-1]


def query_batch_body(rng):
    queries = []
    for _ in range(QUERIES_PER_BATCH):
        queries.append({"active": random_bits(rng, rng.randint(30, 50)), "threshold": rng.randint(6, 20)})
    return json.dumps({"queries": queries}, separators=(",", ":")).encode()


def timed(connection, recorder, method, path, body=None):
    t0 = time.perf_counter()
    try:
        status, raw = connection.call(method, path, body)
    except NoAnswer as error:
        recorder.record(time.perf_counter() - t0, None, None, error)
        return None
    recorder.record(time.perf_counter() - t0, status, raw)
    return status


def long_reader(port, timeout, recorder, pool, seed, stop):
    rng = random.Random(seed)
    connection = Connection(port, timeout)
    try:
        while not stop.is_set():
            timed(connection, recorder, "POST", "/v1/spaces/big/query/batch", pool[rng.randrange(len(pool))])
            with recorder.lock:
                recorder.last_end = time.monotonic()
    finally:
        connection.close()
        with recorder.lock:
            recorder.reconnects += connection.reconnects


def periodic(port, timeout, recorder, period, start, stop, request):
    """Calls request(connection, i) at start, start + period, ... until stop is set."""
    connection = Connection(port, timeout)
    i = 0
    due = start
    try:
        while True:
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            if stop.is_set():
                break
            request(connection, i)
            i += 1
            due += period
            behind = time.monotonic() - due
            if behind > 0:  # ticks that fell due meanwhile are skipped, not sent in a burst
                missed = int(behind // period) + 1
                with recorder.lock:
                    recorder.late += missed
                due += missed * period
    finally:
        connection.close()
        with recorder.lock:
            recorder.reconnects += connection.reconnects


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement duration (default 30)")
    parser.add_argument("--neurons", type=int, default=100_000, help="neurons in space big, one pattern each")
    parser.add_argument("--readers", type=int, default=2, help="long-read threads (default 2)")
    parser.add_argument("--pool", type=int, default=32, help="distinct query batches to draw from (default 32)")
    parser.add_argument("--timeout", type=float, default=60.0, help="HTTP timeout in seconds (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and server log")
    return parser.parse_args()


def fill(port, options, rng):
    """Creates the spaces "big" and "other", fills big with one pattern per neuron, and returns
    the pool of query batches the long readers draw from."""
    setup = Connection(port, options.timeout)
    for space in ("big", "other"):
        status, raw = setup.call("PUT", f"/v1/spaces/{space}", SPACE_PARAMS)
        if status not in (200, 201):
            raise RuntimeError(f"creating space {space} answered {status}: {raw[:200]!r}")
    started = time.monotonic()
    for first in range(0, options.neurons, FILL_BATCH):
        count = min(FILL_BATCH, options.neurons - first)
        body = {"patterns": [{"neuron": f"n{first + k}", "active": random_bits(rng)} for k in range(count)]}
        status, raw = setup.call("POST", "/v1/spaces/big/patterns", body)
        if status != 200:
            raise RuntimeError(f"a fill batch answered {status}: {raw[:300]!r}")
        results = json.loads(raw).get("results", [])
        if len(results) != count:
            raise RuntimeError(f"a fill batch of {count} answered {len(results)} results")
    took = time.monotonic() - started
    print(f"filled big with {options.neurons:,} patterns in {took:.1f} s ({options.neurons / took:,.0f}/s)")
    started = time.monotonic()
    pool = [query_batch_body(rng) for _ in range(options.pool)]
    print(
        f"generated {len(pool)} query batches ({sum(map(len, pool)) / len(pool) / 1024:.0f} KiB each) "
        f"in {time.monotonic() - started:.1f} s"
    )
    setup.close()
    return pool


def load_threads(port, options, rng, pool, recorders, stop, start):
    """The long readers (a) and the periodic probes (b: health, c: stores to other, d: queries of
    other, e: stores to big), not yet started."""
    t = options.timeout
    store_other_rng, query_other_rng, store_big_rng = (random.Random(rng.random()) for _ in range(3))

    def health(conn, i):
        timed(conn, recorders["b"], "GET", "/healthz")

    def store_other(conn, i):
        body = {"active": random_bits(store_other_rng)}
        timed(conn, recorders["c"], "POST", f"/v1/spaces/other/neurons/w{i % 500}/patterns", body)

    def query_other(conn, i):
        timed(conn, recorders["d"], "POST", "/v1/spaces/other/query", {"active": random_bits(query_other_rng)})

    def store_big(conn, i):
        body = {"active": random_bits(store_big_rng)}
        timed(conn, recorders["e"], "POST", f"/v1/spaces/big/neurons/e{i % 500}/patterns", body)

    threads = [
        threading.Thread(target=long_reader, daemon=True, args=(port, t, recorders["a"], pool, rng.random(), stop))
        for _ in range(options.readers)
    ]
    for kind, period, request in (
        ("b", 0.020, health),
        ("c", 0.050, store_other),
        ("d", 0.050, query_other),
        ("e", 0.200, store_big),
    ):
        args = (port, t, recorders[kind], period, start, stop, request)
        threads.append(threading.Thread(target=periodic, daemon=True, args=args))
    return threads


def measure(server, threads, options, stop, start):
    """Runs the threads for --seconds; returns (the server's exit status if it died, threads stuck)."""
    for thread in threads:
        thread.start()
    end = start + options.seconds
    died = None
    while time.monotonic() < end:
        if not server.alive():
            died = server.process.returncode
            break
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))
    stop.set()
    stopped = time.monotonic()
    for thread in threads:
        thread.join(max(0.0, stopped + options.timeout + 5 - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    if died is None and not server.alive():
        died = server.process.returncode
    print(f"measured {options.seconds:g} s; in-flight requests took {time.monotonic() - stopped:.1f} s more to finish")
    return died, stuck


def print_latencies(recorders, start):
    """One line per kind of request; True when any answered with an error."""
    failed = False
    for kind, (label, _) in KINDS.items():
        recorder = recorders[kind]
        with recorder.lock:
            values = sorted(recorder.latencies)
            extra = []
            if kind == "a":
                extra.append(f"503-timeout {recorder.timeouts}")
                span = (recorder.last_end or start) - start
                rate = recorder.ok * QUERIES_PER_BATCH / span if span > 0 else 0.0
                extra.append(f"queries/s {rate:,.0f}")
            else:
                extra.append(f"late {recorder.late}")
            if recorder.reconnects:
                extra.append(f"reconnects {recorder.reconnects}")
            errors = ", ".join(f"{k} x{v}" for k, v in sorted(recorder.errors.items())) or "none"
            top = (values[-1] if values else float("nan")) * 1000
            print(
                f"({kind}) {label:<32} n {len(values):>5}  p50 {percentile(values, 50) * 1000:8.1f}  "
                f"p99 {percentile(values, 99) * 1000:8.1f}  max {top:8.1f} ms"
                f"  ok {recorder.ok}  {'  '.join(extra)}  errors: {errors}"
            )
            if recorder.errors:
                failed = True
                for example in recorder.examples:
                    print(f"    e.g. {example}")
    return failed


def print_stats(port, timeout):
    """The server's /v1/stats after the measurement; True when it did not answer 200."""
    final = Connection(port, timeout)
    try:
        status, raw = final.call("GET", "/v1/stats")
        if status == 200:
            print("stats:", json.dumps(json.loads(raw), separators=(",", ":")))
            return False
        print(f"isolation: GET /v1/stats answered {status}: {raw[:200]!r}")
    except NoAnswer as error:
        print(f"isolation: GET /v1/stats got no answer: {error}")
    finally:
        final.close()
    return True


def isolation(server, options, rng):
    """Fills the server, measures, prints; True when a check failed."""
    server.start(60.0, http_timeout=options.timeout)
    pool = fill(server.port, options, rng)
    recorders = {kind: Recorder(ok) for kind, (_, ok) in KINDS.items()}
    stop = threading.Event()
    start = time.monotonic() + 0.05
    threads = load_threads(server.port, options, rng, pool, recorders, stop, start)
    died, stuck = measure(server, threads, options, stop, start)
    failed = print_latencies(recorders, start)
    if stuck:
        failed = True
        print(f"isolation: {stuck} thread(s) still waiting for an answer after the HTTP timeout")
    if died is not None:
        print(f"isolation: the server died during the measurement (status {died})")
        return True
    return print_stats(server.port, options.timeout) or failed


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "isolation")
    if binary is None:
        return 1
    if options.seconds <= 0 or options.neurons < 1 or options.readers < 1 or options.pool < 1:
        print("isolation: --seconds, --neurons, --readers and --pool must be positive")
        return 1
    rng = random.Random(options.seed)
    directory = tempfile.mkdtemp(prefix="dendrite-isolation-")
    server = Server(
        binary,
        os.path.join(directory, "d.db"),
        os.path.join(directory, "server.log"),
        extra_args=["--body-limit", str(BODY_LIMIT)],
    )
    failed = False
    harness.exit_on_sigterm()  # so that `finally` kills the server
    print(
        f"isolation: {options.seconds:g} s, {options.neurons:,} neurons in big, {options.readers} long readers, "
        f"binary {binary}, data in {directory}"
    )
    try:
        failed = isolation(server, options, rng)
    except Exception as error:  # set-up failures and bugs: report, exit 1
        failed = True
        print(f"isolation: {type(error).__name__}: {error}")
    finally:
        if server.alive():
            server.stop(timeout=10)
        elif server.process is not None and server.process.returncode != 0:
            failed = True
        if failed:
            tail = server.log_tail(lines=None, max_bytes=2000).strip()
            if tail:
                print("server log (tail):\n" + tail)
        if options.keep:
            print(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
