#!/usr/bin/env python3
"""Soak test: a steady mixed load at a fixed rate for a fixed time, watching latency, errors and the
server's memory.

What it does
  - Starts `dendrite serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, waits for GET /healthz and GET /readyz to answer 200, creates the space "soak"
    (n=2048, a=40, s=24, theta=12) and preloads --patterns patterns (default 50,000) with
    POST /v1/spaces/soak/patterns in batches of 1000 (each must answer 200 with one result per
    pattern), spread over --neurons neurons.
  - Then, for --minutes minutes (fractions allowed: --minutes 0.5), sends --rate requests per second
    (open loop: a dispatcher paces the requests, a thread pool sends them): about 20% stores, 10%
    forgets, 70% queries. The stored size stays constant: a store is a new pattern while the size is
    at or under the target, otherwise a repeat of a stored one (an idempotent store, answered 200);
    a forget always removes a stored pattern. Queries are half noisy copies of stored patterns
    (8 of 40 bits replaced), half random patterns.
  - Every --report-every seconds (default 60, "a minute") it prints: the minute, requests done,
    throughput per second, p50 and p99 latency in ms for each kind, errors by status, and the
    server's resident memory (VmRSS from /proc/PID/status). At the end it prints the totals and
    whether the memory levelled off (the RSS growth over the last half and the last third of the
    run).

Checks (exit 1 if any is violated, 0 otherwise; memory growth is reported, never failed on):
  - every store answers 201 (new) or 200 (repeat), every forget 204, every query 200; any other
    status, any 5xx, and any request without an answer (connection error, timeout) is an error;
  - the server process stays up and the preload succeeds.
The dispatcher never queues more than a bounded number of requests: if the pool falls behind, the
surplus is counted as "skipped (client behind)" and reported, not sent.

Run (from the repository root, release binary built):
    python -m tools.load.soak                                        # 10 minutes at 400 req/s, 50,000 patterns
    python -m tools.load.soak --minutes 0.5 --rate 100 --patterns 2000 --binary target/debug/dendrite
Traffic goes only to 127.0.0.1; the script stops by itself and kills the server it started.
"""

import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tools import harness
from tools.harness import SPACE_PARAMS, Http, NoAnswer, Server, percentile, random_bits
from tools.load.workload import noisy  # (8 of 40 bits replaced)

SPACE = "soak"
KINDS = ("store", "forget", "query")
EXPECTED = {"store": (200, 201), "forget": (204,), "query": (200,)}


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def engine_summary(client):
    """The server's own view, from GET /v1/stats: segments and its memory estimate (what grows
    when the patterns stay constant tells where resident memory goes)."""
    try:
        status, raw = client.call("GET", "/v1/stats")
        stats = json.loads(raw)
        return (
            f"segments {stats['segments']:,}, synapses {stats['synapses']:,}, "
            f"engine estimate {stats['memory_bytes'] / 2**20:.1f} MiB"
        )
    except (NoAnswer, ValueError, KeyError) as error:
        return f"stats unavailable ({error})"


class Live:
    """The stored patterns: O(1) add, remove and random choice. Guarded by its lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = []  # (neuron, id)
        self.where = {}
        self.bits = {}
        self.pending = 0  # stores sent, not yet answered

    def add(self, key, bits):
        if key in self.where:
            return
        self.where[key] = len(self.keys)
        self.keys.append(key)
        self.bits[key] = bits

    def remove(self, key):
        index = self.where.pop(key)
        last = self.keys.pop()
        if index < len(self.keys):
            self.keys[index] = last
            self.where[last] = index
        return self.bits.pop(key)

    def random(self, rng):
        key = self.keys[rng.randrange(len(self.keys))]
        return key, self.bits[key]

    def __len__(self):
        return len(self.keys)


class Recorder:
    """Latencies and statuses per interval, and totals."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()
        self.total = {k: 0 for k in KINDS}
        self.total_errors = {}
        self.error_examples = []
        self.restores = 0
        self.new_stores = 0
        self.recognised = [0, 0]  # noisy queries that listed their source neuron, noisy queries

    def reset(self):
        self.latency = {k: [] for k in KINDS}
        self.errors = {}
        self.skipped = 0

    def record(self, kind, seconds, status, ok, detail=None):
        with self.lock:
            self.latency[kind].append(seconds)
            self.total[kind] += 1
            if not ok:
                key = f"{kind}:{status}"
                self.errors[key] = self.errors.get(key, 0) + 1
                self.total_errors[key] = self.total_errors.get(key, 0) + 1
                if len(self.error_examples) < 10:
                    self.error_examples.append(f"{kind} -> {status}: {str(detail)[:200]}")

    def take(self):
        with self.lock:
            snapshot = (self.latency, self.errors, self.skipped)
            self.reset()
            return snapshot


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="steady-load duration (fractions allowed)")
    parser.add_argument("--rate", type=float, default=400.0, help="target requests per second")
    parser.add_argument("--patterns", type=int, default=50_000, help="stored patterns to preload and keep")
    parser.add_argument("--neurons", type=int, default=None, help="neurons (default patterns/100, at least 10)")
    parser.add_argument("--threads", type=int, default=32, help="client threads")
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--timeout", type=float, default=10.0, help="HTTP timeout in seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


def preload(client, options, neurons, rng, live):
    """Stores --patterns patterns in batches of 1000; returns the next free id number."""
    started = time.monotonic()
    next_id = 0
    while next_id < options.patterns:
        batch = []
        for _ in range(min(1000, options.patterns - next_id)):
            batch.append((f"n{rng.randrange(neurons)}", f"s{next_id}", random_bits(rng)))
            next_id += 1
        body = {"patterns": [{"neuron": n, "active": b, "id": i} for n, i, b in batch]}
        status, raw = client.call("POST", f"/v1/spaces/{SPACE}/patterns", body)
        if status != 200:
            raise RuntimeError(f"a preload batch answered {status}: {raw[:300]!r}")
        results = json.loads(raw)["results"]
        if len(results) != len(batch):
            raise RuntimeError(f"a preload batch of {len(batch)} answered {len(results)} results")
        for (n, i, b), result in zip(batch, results):
            # a pattern whose bits this neuron already holds under another id keeps that id
            live.add((result["neuron"], result["id"]), b)
    return next_id, time.monotonic() - started


class Actions:
    """The three kinds of request the steady load sends, keeping the stored size at `target`."""

    def __init__(self, client, recorder, live, rng, neurons, next_id):
        self.client, self.recorder, self.live, self.neurons = client, recorder, live, neurons
        self.rng = rng
        self.target = len(live)
        self.id_lock = threading.Lock()
        self.counter = next_id
        self.local = threading.local()

    def fresh_id(self):
        with self.id_lock:
            self.counter += 1
            return f"s{self.counter}"

    def task_rng(self):
        r = getattr(self.local, "rng", None)
        if r is None:
            with self.id_lock:
                r = self.local.rng = random.Random(self.rng.random())
        return r

    def timed(self, kind, method, path, body, ok_statuses):
        t0 = time.perf_counter()
        try:
            status, raw = self.client.call(method, path, body)
        except NoAnswer as error:
            self.recorder.record(kind, time.perf_counter() - t0, "no-answer", False, error)
            return None, None
        elapsed = time.perf_counter() - t0
        ok = status in ok_statuses
        self.recorder.record(kind, elapsed, status, ok, raw[:200] if not ok else None)
        return status, raw

    def store(self):
        r, live = self.task_rng(), self.live
        with live.lock:
            # in flight, a repeated pattern is out of the set (so no forget races with it) but
            # still counts towards the size
            new = len(live) + live.pending <= self.target or len(live) == 0
            live.pending += 1
            if not new:
                (neuron, id_), bits = live.random(r)
                live.remove((neuron, id_))
        if new:
            neuron, id_, bits = f"n{r.randrange(self.neurons)}", self.fresh_id(), random_bits(r)
        path = f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns"
        status, raw = self.timed("store", "POST", path, {"active": bits, "id": id_}, EXPECTED["store"])
        with live.lock:
            live.pending -= 1
            if status in (200, 201):
                answer = json.loads(raw)
                live.add((answer["neuron"], answer["id"]), bits)
            elif not new and status in (503, 507):
                live.add((neuron, id_), bits)  # refused: it is still stored
        with self.recorder.lock:
            if new:
                self.recorder.new_stores += 1
            else:
                self.recorder.restores += 1

    def forget(self):
        r, live = self.task_rng(), self.live
        with live.lock:
            if not len(live):
                return
            key, bits = live.random(r)
            live.remove(key)
        path = f"/v1/spaces/{SPACE}/neurons/{key[0]}/patterns/{key[1]}"
        status, _ = self.timed("forget", "DELETE", path, None, EXPECTED["forget"])
        if status != 204 and status != 404:
            with live.lock:  # refused or unknown outcome: keep it as stored
                live.add(key, bits)

    def query(self):
        r, live = self.task_rng(), self.live
        source = None
        with live.lock:
            if len(live) and r.random() < 0.5:
                (source, _), bits = live.random(r)
        active = noisy(r, bits) if source else random_bits(r)
        status, raw = self.timed("query", "POST", f"/v1/spaces/{SPACE}/query", {"active": active}, EXPECTED["query"])
        if source and status == 200:
            found = any(m["neuron"] == source for m in json.loads(raw)["matches"])
            with self.recorder.lock:
                self.recorder.recognised[0] += found
                self.recorder.recognised[1] += 1


def report_interval(minute, start, now, span, recorder, live, server, client):
    """Prints one report line (a "minute"); returns the RSS sampled for it (KiB, or None)."""
    latency, errors, skipped = recorder.take()
    done = sum(len(v) for v in latency.values())
    rss = rss_kib(server.process.pid)
    parts = []
    for kind in KINDS:
        values = sorted(latency[kind])
        parts.append(
            f"{kind} {len(values)} p50 {percentile(values, 50) * 1000:.1f} p99 {percentile(values, 99) * 1000:.1f}"
        )
    err = ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
    rss_text = f"{rss / 1024:.1f} MiB" if rss is not None else "gone"
    print(
        f"minute {minute} (t={(now - start) / 60:.2f} min, last {span:.0f} s): {done} requests, {done / span:.1f}/s; "
        f"ms: {'; '.join(parts)}; errors: {err}; skipped {skipped}; "
        f"stored {len(live):,}; RSS {rss_text}; {engine_summary(client)}",
        flush=True,
    )
    return rss


class Dispatcher:
    """Paces the requests (open loop) onto a thread pool, never queueing more than a bound."""

    def __init__(self, actions, recorder, options):
        self.actions, self.recorder = actions, recorder
        self.kinds = {"store": actions.store, "forget": actions.forget, "query": actions.query}
        self.max_pending = options.threads * 4
        self.pending = 0
        self.lock = threading.Lock()

    def run(self, kind):
        try:
            self.kinds[kind]()
        except Exception as error:  # a bug here must show, not vanish in the pool
            self.recorder.record(kind, 0.0, f"client-exception {type(error).__name__}", False, error)
        finally:
            with self.lock:
                self.pending -= 1

    def send(self, pool, rng):
        """Submits one request of a random kind, or counts it skipped when the pool is behind."""
        roll = rng.random()
        kind = "store" if roll < 0.2 else "forget" if roll < 0.3 else "query"
        with self.lock:
            if self.pending >= self.max_pending:
                with self.recorder.lock:
                    self.recorder.skipped += 1
                return
            self.pending += 1
        pool.submit(self.run, kind)


def steady_load(server, client, actions, recorder, live, options, rng, problems):
    """The timed load with its reports; returns (RSS samples [(seconds, KiB)], seconds it took)."""
    dispatcher = Dispatcher(actions, recorder, options)
    duration = options.minutes * 60
    interval = 1.0 / options.rate
    rss_samples = []
    pool = ThreadPoolExecutor(options.threads)
    try:
        start = time.monotonic()
        next_report = start + min(options.report_every, duration)
        next_rss, sent, report_started, minute = start, 0, start, 0
        while True:
            now = time.monotonic()
            if now >= next_rss:
                value = rss_kib(server.process.pid)
                if value is not None:
                    rss_samples.append((now - start, value))
                next_rss = now + 5
            if now >= next_report or now >= start + duration:
                minute += 1
                rss = report_interval(minute, start, now, now - report_started, recorder, live, server, client)
                if rss is not None:
                    rss_samples.append((now - start, rss))
                report_started = now
                next_report = now + options.report_every
                if not server.alive():
                    problems.append(f"the server exited with status {server.process.returncode} during the soak")
                    break
                if now >= start + duration:
                    break
            due = start + sent * interval
            if now < due:
                time.sleep(min(due - now, max(0.0, next_report - now), 0.05))
                continue
            # send what is due (catch up in bursts, but never queue without bound)
            sent += 1
            dispatcher.send(pool, rng)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return rss_samples, time.monotonic() - start


def print_totals(recorder, live, target, total_time, options, problems):
    total = sum(recorder.total.values())
    print(
        f"total: {total:,} requests in {total_time:.1f} s = {total / total_time:.1f}/s "
        f"(target {options.rate:g}/s); "
        + ", ".join(f"{k} {recorder.total[k]:,}" for k in KINDS)
        + f"; stores: {recorder.new_stores:,} new, {recorder.restores:,} repeats; stored now {len(live):,} "
        f"(target {target:,})"
    )
    if recorder.recognised[1]:
        print(f"noisy queries that listed their source neuron: {recorder.recognised[0]:,}/{recorder.recognised[1]:,}")
    if recorder.total_errors:
        problems.append(
            "errors by kind:status: " + ", ".join(f"{k}={v}" for k, v in sorted(recorder.total_errors.items()))
        )
        for example in recorder.error_examples:
            problems.append(f"  e.g. {example}")


def print_memory(rss_samples, total_time):
    """Whether the resident memory levelled off: its growth over the last half and third."""
    values = [(t, v) for t, v in rss_samples if v is not None]
    if len(values) < 2:
        print("memory: not enough RSS samples")
        return
    first, last = values[0][1], values[-1][1]
    peak = max(v for _, v in values)

    def at(fraction):
        moment = total_time * fraction
        return min(values, key=lambda tv: abs(tv[0] - moment))[1]

    half, third = at(0.5), at(2 / 3)
    growth_half = (last - half) / half * 100
    growth_third = (last - third) / third * 100
    levelled = abs(growth_third) < 5 or (last - third) < 5 * 1024
    print(
        f"memory (VmRSS): start {first / 1024:.1f} MiB, half-way {half / 1024:.1f}, two-thirds "
        f"{third / 1024:.1f}, end {last / 1024:.1f}, peak {peak / 1024:.1f} MiB; growth over the last "
        f"half {growth_half:+.1f}% ({(last - half) / 1024:+.1f} MiB), last third {growth_third:+.1f}% "
        f"({(last - third) / 1024:+.1f} MiB): "
        + ("levelled off" if levelled else "STILL GROWING (not failed on; run longer to confirm)")
    )


def soak(server, options, neurons, rng, problems):
    """Starts the server, preloads, runs the steady load and prints what it saw."""
    recorder, live = Recorder(), Live()
    server.start(60.0, http_timeout=options.timeout)
    client = Http(server.port, options.timeout)
    status, raw = client.call("PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS)
    if status not in (200, 201):
        raise RuntimeError(f"creating the space answered {status}: {raw[:200]!r}")
    next_id, took = preload(client, options, neurons, rng, live)
    print(
        f"preloaded {len(live):,} patterns in {took:.1f} s ({len(live) / took:,.0f}/s); "
        f"RSS {rss_kib(server.process.pid) / 1024:.1f} MiB"
    )
    actions = Actions(client, recorder, live, rng, neurons, next_id)
    rss_samples, total_time = steady_load(server, client, actions, recorder, live, options, rng, problems)
    print_totals(recorder, live, actions.target, total_time, options, problems)
    print_memory(rss_samples, total_time)


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "soak")
    if binary is None:
        return 1
    if options.minutes <= 0 or options.rate <= 0 or options.patterns < 1:
        print("soak: --minutes, --rate and --patterns must be positive")
        return 1
    neurons = options.neurons or max(10, options.patterns // 100)
    rng = random.Random(options.seed)
    directory = tempfile.mkdtemp(prefix="dendrite-soak-")
    server = Server(binary, os.path.join(directory, "dendrite.db"), os.path.join(directory, "server.log"))
    problems = []
    harness.exit_on_sigterm()
    print(
        f"soak: {options.minutes:g} min at {options.rate:g} req/s, {options.patterns:,} patterns on {neurons} "
        f"neurons, {options.threads} threads, binary {binary}, data in {directory}"
    )
    try:
        soak(server, options, neurons, rng, problems)
    except RuntimeError as error:
        problems.append(str(error))
    finally:
        if server.alive() and server.stop(timeout=30) is None:
            problems.append("the server did not stop within 30 s of SIGTERM")
    if problems:
        print("FAILED:")
        for p in problems:
            print(f"  {p}")
        server.print_log_tail(15)
        print(f"data kept in {directory}")
        return 1
    harness.keep_or_remove(directory, options.keep)
    print("OK: no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
