#!/usr/bin/env python3
"""Online backups on the standard workload: how long POST /v1/admin/backup takes idle and under
load, what a backup costs the clients meanwhile, and whether it holds every acknowledged write.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, `--log-level warn`, `--backup-dir` in that directory and an API key it generates
    (`--api-key`, 48 hex characters). Every request but GET /healthz and GET /readyz sends
    `Authorization: Bearer <key>`; one request without it must be refused (401).
  - Creates the space "bench" (n=2048, a=40, s=24, theta=12) and stores the standard workload
    (tools/load/workload.py: --neurons x --patterns-per-neuron patterns of 40 random bits of 2048,
    default 1000 x 100 = 100,000) with POST /v1/spaces/bench/patterns in batches of 2000 (bodies
    encoded beforehand; each must answer 200 with one result per pattern).
  - Idle backup: POST /v1/admin/backup three times, one after the other; reports the median time
    and the answer's `bytes` (the file's size), `patterns` and `last_write`. Each must answer 201
    and hold every stored pattern.
  - Backup under load: --clients threads (default 8, at least 2) for --seconds seconds (default
    20), each on one keep-alive connection, sending requests back to back: the even-numbered
    threads store single patterns (POST .../neurons/{neuron}/patterns, a new id `live-T-K` and 40
    random bits, on a random neuron of the workload; must answer 201), the odd-numbered ones query
    noisy copies of stored patterns (8 of 40 bits replaced, bodies encoded beforehand; must
    answer 200). Half-way through, one backup is taken. The load goes on until the window is over
    and at least 2 s after the backup answered. Reports the backup's time and answer, and for
    stores and queries, latency (p50, p99, max) and answers per second in three intervals:
      before  the 2 s before the backup request was sent (requests answered in them);
      during  the backup (requests that were in flight at any moment of it);
      after   the 2 s after it answered (requests sent in them).
  - Checks the backup under load against what the clients saw:
      count   the patterns it holds beyond the workload lie between the stores acknowledged before
              the backup request was sent and the stores sent before it answered;
      restore the first server is stopped, a second one is started (another free port) on a copy
              of the backup file; its GET /v1/stats must count the backup's patterns, and a sample
              of 200 stores acknowledged before the backup request was sent must each answer
              GET .../patterns/{id} with 200 and their bits;
      after   a sample of 200 stores sent after the backup answered must each answer 404 there.
  - Prints a summary block, with the command line, at the end.

Exit status: 0 when every check passed; 1 when one failed, a request got an unexpected status or
no answer, the set-up failed or a server died. Times and latencies are reported, never failed on.

Run from the repository root (release binary built):
    python -m tools.load.backup                                     # 100,000 patterns, 8 clients, 20 s
    python -m tools.load.backup --neurons 50 --patterns-per-neuron 20 --seconds 6   # a quick run
The clients are Python threads in one process: their own overhead is part of the latencies, and
it is the same in all three intervals. Traffic goes only to 127.0.0.1; the script stops by itself,
stops the servers it started and removes its temporary directory (unless --keep).
"""

import json
import os
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time

from tools import harness
from tools.harness import SPACE_PARAMS, NoAnswer, Server, percentile
from tools.load import workload

SPACE = "bench"
BATCH = 2000
IDLE_RUNS = 3
WINDOW = 2.0  # seconds of the "before" and "after" intervals
SAMPLE = 200
QUERY_POOL = 4000


def connect(port, key, timeout):
    """A harness.Connection that sends `Authorization: Bearer <key>` with every request.

    It sends a request once more on a fresh connection only when it failed on a reused one (a
    stale keep-alive connection): the first request on a new Connection is never sent twice, so a
    backup gets a Connection of its own (see backup())."""
    return harness.Connection(port, timeout, headers={"authorization": f"Bearer {key}"})


def expect_json(connection, method, path, body=None, expect=(200,)):
    """The decoded answer of a request that must answer one of `expect`; RuntimeError otherwise."""
    status, raw = connection.call(method, path, body)
    if status not in expect:
        raise RuntimeError(f"{method} {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


class Record:
    """The requests of one client thread: (sent, answered, status, detail) each, appended only by
    its thread and read after it stopped. `detail` is (neuron, id, active) for a store."""

    def __init__(self, kind):
        self.kind = kind
        self.requests = []
        self.examples = []  # the first few unexpected answers


def storer(index, port, key, timeout, neurons, seed, stop, record):
    rng = random.Random(seed)
    client = connect(port, key, timeout)
    sequence = 0
    try:
        while not stop.is_set():
            neuron = workload.neuron_name(rng.randrange(neurons))
            active = workload.random_pattern(rng)
            pattern_id = f"live-{index}-{sequence}"
            sequence += 1
            body = json.dumps({"id": pattern_id, "active": active}).encode()
            sent = time.perf_counter()
            try:
                status, raw = client.call("POST", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns", body)
            except NoAnswer as error:
                status, raw = None, str(error).encode()
            record.requests.append((sent, time.perf_counter(), status, (neuron, pattern_id, active)))
            if status != 201:
                if len(record.examples) < 3:
                    record.examples.append(f"store {status}: {raw[:200]!r}")
                if status is None:
                    stop.wait(0.05)
    finally:
        client.close()


def querier(port, key, timeout, pool, seed, stop, record):
    rng = random.Random(seed)
    client = connect(port, key, timeout)
    try:
        while not stop.is_set():
            body = pool[rng.randrange(len(pool))]
            sent = time.perf_counter()
            try:
                status, raw = client.call("POST", f"/v1/spaces/{SPACE}/query", body)
            except NoAnswer as error:
                status, raw = None, str(error).encode()
            record.requests.append((sent, time.perf_counter(), status, None))
            if status != 200:
                if len(record.examples) < 3:
                    record.examples.append(f"query {status}: {raw[:200]!r}")
                if status is None:
                    stop.wait(0.05)
    finally:
        client.close()


def backup(port, key, timeout):
    """(seconds, answer) of one POST /v1/admin/backup on a fresh connection (so that it is never sent
    twice); RuntimeError unless 201."""
    client = connect(port, key, timeout)
    try:
        started = time.perf_counter()
        status, raw = client.call("POST", "/v1/admin/backup")
        took = time.perf_counter() - started
    finally:
        client.close()
    if status != 201:
        raise RuntimeError(f"POST /v1/admin/backup answered {status}: {raw[:300]!r}")
    return took, json.loads(raw)


def wait_until(deadline, server):
    """Sleeps until `deadline` (perf_counter); False as soon as the server has died."""
    while True:
        if not server.alive():
            return False
        left = deadline - time.perf_counter()
        if left <= 0:
            return True
        time.sleep(min(0.1, left))


def stats_line(latencies, answered, seconds):
    if not latencies:
        return f"{0:>6} {'-':>7} {'-':>8} {'-':>8} {'-':>8}"
    rate = answered / seconds if seconds > 0 else float("nan")
    return (
        f"{len(latencies):>6} {rate:>7,.0f} {percentile(latencies, 50) * 1000:>8.2f} "
        f"{percentile(latencies, 99) * 1000:>8.2f} {latencies[-1] * 1000:>8.2f}"
    )


def command_line():
    """The command line this process was started with (from /proc when there is one), the
    interpreter named as the shell would find it (`python3`, not pyenv's full path)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            words = [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        words = []
    if not words:
        words = [sys.executable, *sys.argv]
    if os.path.basename(words[0]).startswith("python"):
        words[0] = os.path.basename(words[0])
    return shlex.join(words)


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument(
        "--neurons", type=int, default=workload.NEURONS, help=f"workload neurons (default {workload.NEURONS})"
    )
    parser.add_argument(
        "--patterns-per-neuron",
        type=int,
        default=workload.PATTERNS,
        help=f"workload patterns per neuron (default {workload.PATTERNS})",
    )
    parser.add_argument("--clients", type=int, default=8, help="client threads under load (default 8, at least 2)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="load window in seconds, the backup taken half-way (default 20, at least 6)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
    return parser.parse_args()


def latency_rows(requests, sent, answered):
    """(name, sorted latencies, answers in the interval, its seconds) before, during and after
    the backup under load."""
    before = sorted(a - s for s, a, *_ in requests if sent - WINDOW <= a < sent)
    during = sorted(a - s for s, a, *_ in requests if s < answered and a > sent)
    after = sorted(a - s for s, a, *_ in requests if answered <= s < answered + WINDOW)

    def answered_in(lo, hi):
        return sum(1 for _, a, *_ in requests if lo <= a < hi)

    return [
        ("before", before, answered_in(sent - WINDOW, sent), WINDOW),
        ("during", during, answered_in(sent, answered), answered - sent),
        ("after", after, answered_in(answered, answered + WINDOW), WINDOW),
    ]


class BackupRun:
    """One run: the servers (the loaded one, and the one restored from its backup), the client
    threads' records, what was measured, and the failed checks. Each phase is a method."""

    def __init__(self, options, binary):
        self.options, self.binary = options, binary
        self.key = secrets.token_hex(24)
        self.directory = tempfile.mkdtemp(prefix="dendrite-backup-")
        self.backup_dir = os.path.join(self.directory, "backups")
        self.server = Server(
            binary,
            os.path.join(self.directory, "d.db"),
            os.path.join(self.directory, "server.log"),
            extra_args=["--api-key", self.key, "--backup-dir", self.backup_dir],
            die_with_parent=True,
        )
        restore_backups = os.path.join(self.directory, "restore", "backups")
        self.restored = Server(
            binary,
            os.path.join(self.directory, "restore", "d.db"),
            os.path.join(self.directory, "restore.log"),
            extra_args=["--api-key", self.key, "--backup-dir", restore_backups],
        )
        self.stop = threading.Event()  # set: the client threads stop
        self.failures = []  # one line per failed check
        self.total = options.neurons * options.patterns_per_neuron

    def connect(self, port=None):
        return connect(self.server.port if port is None else port, self.key, self.options.timeout)

    def prepare_workload(self):
        """The workload's batch bodies, and a pool of noisy queries of its patterns."""
        options = self.options
        stores, _ = workload.generate(
            self.binary, options.neurons, options.patterns_per_neuron, queries=0, seed=options.seed
        )
        self.stores = stores
        self.bodies = [
            json.dumps({"patterns": [{"neuron": n, "active": a} for n, a in stores[i : i + BATCH]]}).encode()
            for i in range(0, len(stores), BATCH)
        ]
        rng = random.Random(options.seed + 1)
        self.pool = [
            json.dumps({"active": workload.noisy(rng, stores[rng.randrange(len(stores))][1])}).encode()
            for _ in range(QUERY_POOL)
        ]

    def start_and_store(self):
        """1. The server (which refuses a request without the key), the standard workload stored."""
        self.ready = self.server.start(60.0)
        self.setup = self.connect()
        with harness.Connection(self.server.port, self.options.timeout) as keyless:  # sends no key
            status, _ = keyless.call("GET", "/v1/stats")
        if status != 401:
            self.failures.append(f"GET /v1/stats without the key answered {status}, not 401")
        expect_json(self.setup, "PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS, expect=(201,))
        started = time.perf_counter()
        for first, body in zip(range(0, len(self.stores), BATCH), self.bodies):
            answer = expect_json(self.setup, "POST", f"/v1/spaces/{SPACE}/patterns", body)
            expected = min(BATCH, len(self.stores) - first)
            if len(answer.get("results", [])) != expected:
                raise RuntimeError(f"a batch of {expected} answered {len(answer.get('results', []))} results")
        self.load_seconds = time.perf_counter() - started
        self.loaded = expect_json(self.setup, "GET", "/v1/stats")["patterns"]
        print(
            f"server ready in {self.ready:.2f} s; stored {self.loaded:,} patterns in {self.load_seconds:.1f} s "
            f"({self.total / self.load_seconds:,.0f}/s)"
        )
        if self.loaded != self.total:
            self.failures.append(f"the server counts {self.loaded:,} patterns after storing {self.total:,}")

    def idle_backups(self):
        """2. Backups of the idle server, each holding every pattern."""
        self.idle = [backup(self.server.port, self.key, self.options.timeout) for _ in range(IDLE_RUNS)]
        for took, answer in self.idle:
            print(f"idle backup: {took:.3f} s, {answer}")
            if answer["patterns"] != self.loaded:
                self.failures.append(
                    f"idle backup {answer['name']} holds {answer['patterns']:,} patterns, not {self.loaded:,}"
                )
        self.idle_median = median([took for took, _ in self.idle])
        self.idle_answer = self.idle[-1][1]

    def client_threads(self):
        """Half the clients store, half query; each with its record."""
        options, port = self.options, self.server.port
        self.records, self.threads = [], []
        for index in range(options.clients):
            record = Record("store" if index % 2 == 0 else "query")
            seed = options.seed * 1000 + index
            if record.kind == "store":
                args = (index, port, self.key, options.timeout, options.neurons, seed, self.stop, record)
                target = storer
            else:
                args = (port, self.key, options.timeout, self.pool, seed, self.stop, record)
                target = querier
            self.records.append(record)
            self.threads.append(threading.Thread(target=target, args=args, daemon=True))

    def backup_under_load(self):
        """3. A backup half-way through a window of client load."""
        server, options = self.server, self.options
        self.client_threads()
        self.window_stats = expect_json(self.setup, "GET", "/v1/stats")
        self.begun = time.perf_counter()
        for thread in self.threads:
            thread.start()
        if not wait_until(self.begun + options.seconds / 2, server):
            raise RuntimeError(f"the server died under load (status {server.process.returncode})")
        self.sent = time.perf_counter()
        self.took, self.loaded_answer = backup(server.port, self.key, options.timeout)
        self.answered = self.sent + self.took
        print(f"backup under load: {self.took:.3f} s, {self.loaded_answer}")
        alive = wait_until(max(self.begun + options.seconds, self.answered + WINDOW), server)
        self.stop.set()
        self.ended = time.perf_counter()
        for thread in self.threads:
            thread.join(options.timeout + 5)
        if any(thread.is_alive() for thread in self.threads):
            self.failures.append("a client thread got no answer within the HTTP timeout")
        if not alive:
            raise RuntimeError(f"the server died under load (status {server.process.returncode})")

    def check_client_answers(self):
        """Every store under load answered 201, every query 200."""
        self.errors = {}
        for record in self.records:
            ok = 201 if record.kind == "store" else 200
            for *_, status, _ in record.requests:
                if status != ok:
                    label = f"{record.kind} {status if status is not None else 'no answer'}"
                    self.errors[label] = self.errors.get(label, 0) + 1
        if self.errors:
            self.failures.append(
                "unexpected answers under load: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items()))
            )
            for record in self.records:
                for example in record.examples:
                    print(f"    e.g. {example}")

    def check_backup_count(self):
        """The backup under load holds at least the stores acknowledged before it was sent and at
        most those sent before it answered."""
        self.store_requests = [r for rec in self.records if rec.kind == "store" for r in rec.requests]
        self.query_requests = [r for rec in self.records if rec.kind == "query" for r in rec.requests]
        sent, answered = self.sent, self.answered
        self.acked_before = [r for r in self.store_requests if r[2] == 201 and r[1] < sent]
        self.sent_before_answer = [r for r in self.store_requests if r[0] < answered]
        self.sent_after = [r for r in self.store_requests if r[2] == 201 and r[0] >= answered]
        self.in_flight = sum(1 for r in self.store_requests if r[0] < sent < r[1])
        self.new_in_backup = self.loaded_answer["patterns"] - self.loaded
        self.count_ok = len(self.acked_before) <= self.new_in_backup <= len(self.sent_before_answer)
        if not self.count_ok:
            self.failures.append(
                f"the backup under load holds {self.new_in_backup:,} new patterns: not between the "
                f"{len(self.acked_before):,} stores acknowledged before it and the "
                f"{len(self.sent_before_answer):,} sent before it answered"
            )

    def stop_first_server(self):
        self.final_stats = expect_json(self.setup, "GET", "/v1/stats")
        self.setup.close()
        status = self.server.stop(timeout=30)
        if status != 0:
            self.failures.append(f"the first server stopped with status {status}")

    def sampled_reads(self, check, sample, expected_status, what):
        """How many of the sampled stores answer `expected_status` (200 with their bits, or 404)."""
        matching = 0
        for *_, (neuron, pattern_id, active) in sample:
            status, raw = check.call("GET", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns/{pattern_id}")
            if status == expected_status and (status != 200 or json.loads(raw).get("active") == active):
                matching += 1
            elif len(self.failures) < 20:
                self.failures.append(
                    f"{what}, {neuron}/{pattern_id} answered {status} from the restored server"
                    + (f": {raw[:200]!r}" if expected_status == 200 else ", not 404")
                )
        return matching

    def restore_and_check(self):
        """A second server on a copy of the backup taken under load: what was acknowledged before
        it is there, what was sent after it answered is not."""
        restored = self.restored
        os.makedirs(os.path.dirname(restored.database))
        shutil.copyfile(os.path.join(self.backup_dir, self.loaded_answer["name"]), restored.database)
        self.restore_ready = restored.start(120.0)
        check = connect(restored.port, self.key, self.options.timeout)
        self.restored_patterns = expect_json(check, "GET", "/v1/stats")["patterns"]
        if self.restored_patterns != self.loaded_answer["patterns"]:
            self.failures.append(
                f"the restored server counts {self.restored_patterns:,} patterns, "
                f"the backup {self.loaded_answer['patterns']:,}"
            )
        sampler = random.Random(self.options.seed + 2)
        self.sample = sampler.sample(self.acked_before, min(SAMPLE, len(self.acked_before)))
        self.present = self.sampled_reads(check, self.sample, 200, "acknowledged before the backup")
        self.late_sample = sampler.sample(self.sent_after, min(SAMPLE, len(self.sent_after)))
        self.absent = self.sampled_reads(check, self.late_sample, 404, "sent after the backup answered")
        if not self.sample:
            self.failures.append("no store was acknowledged before the backup: nothing to check")
        if not self.late_sample:
            self.failures.append("no store was sent after the backup answered: nothing to check")
        check.close()
        status = restored.stop(timeout=30)
        if status != 0:
            self.failures.append(f"the restored server stopped with status {status}")

    def run(self):
        self.prepare_workload()
        self.start_and_store()
        self.idle_backups()
        self.backup_under_load()
        self.check_client_answers()
        self.check_backup_count()
        self.stop_first_server()
        self.restore_and_check()

    def stop_servers(self):
        self.stop.set()
        for each in (self.server, self.restored):
            if each.alive():
                each.stop(timeout=30)


def summary_head(run, command):
    """The summary's lines on the workload, the idle backups and the backup under load."""
    options = run.options
    stores_done = sum(1 for r in run.store_requests if r[2] == 201)
    lines = [
        f"command:      {command}",
        f"binary:       {run.binary}",
        f"workload:     {run.total:,} patterns ({options.neurons:,} neurons x {options.patterns_per_neuron}) "
        f"in space {SPACE}, stored in {run.load_seconds:.1f} s ({run.total / run.load_seconds:,.0f}/s, "
        f"batches of {BATCH})",
        f"idle backup:  median {run.idle_median:.3f} s of {IDLE_RUNS} "
        f"({', '.join(f'{t:.3f}' for t, _ in run.idle)}); {run.idle_answer['bytes']:,} bytes, "
        f"{run.idle_answer['patterns']:,} patterns, last_write {run.idle_answer['last_write']:,}",
        f"under load:   {options.clients} clients ({len(run.threads[::2])} store, {len(run.threads[1::2])} query) "
        f"for {run.ended - run.begun:.1f} s: {stores_done:,} stores, {len(run.query_requests):,} queries",
        f"  backup at {run.sent - run.begun:.1f} s took {run.took:.3f} s ({run.took / run.idle_median:.2f}x idle); "
        f"{run.loaded_answer['bytes']:,} bytes, {run.loaded_answer['patterns']:,} patterns, "
        f"last_write {run.loaded_answer['last_write']:,}",
        "  latency (ms)      n     /s      p50      p99      max",
    ]
    for kind, requests in (("store", run.store_requests), ("query", run.query_requests)):
        for name, latencies, count, seconds in latency_rows(requests, run.sent, run.answered):
            lines.append(f"  {kind} {name:<7} {stats_line(latencies, count, seconds)}")
    return lines


def summary_checks(run):
    """The summary's lines on commits, the count check, the restore and the client errors."""
    writes = run.final_stats["writes_committed"] - run.window_stats["writes_committed"]
    commits = run.final_stats["commits"] - run.window_stats["commits"]
    return [
        "  before: answered in the 2 s before the backup was sent; during: in flight at any moment of it;",
        "  after: sent in the 2 s after it answered; /s: answers arriving in the interval per second",
        f"  writes per commit under load: {writes / max(commits, 1):.1f} ({writes:,} writes in {commits:,} commits)",
        f"count:        backup holds {run.new_in_backup:,} patterns beyond the workload; "
        f"{len(run.acked_before):,} stores acknowledged before it was sent, {run.in_flight} in flight then, "
        f"{len(run.sent_before_answer):,} sent before it answered: {'ok' if run.count_ok else 'FAILED'}",
        f"restore:      second server on a copy (port {run.restored.port}, first {run.server.port}) ready in "
        f"{run.restore_ready:.2f} s, {run.restored_patterns:,} patterns; {run.present}/{len(run.sample)} sampled "
        f"stores acknowledged before the backup was sent answered 200 with their bits: "
        f"{'ok' if run.present == len(run.sample) and run.sample else 'FAILED'}",
        f"after:        {run.absent}/{len(run.late_sample)} sampled stores sent after the backup answered are "
        f"absent (404): {'ok' if run.absent == len(run.late_sample) and run.late_sample else 'FAILED'}",
        f"client errors: {', '.join(f'{k} x{v}' for k, v in sorted(run.errors.items())) or 'none'}",
    ]


def print_result(run, summary, command):
    if run.failures:
        for each in (run.server, run.restored):
            tail = each.log_tail(lines=None, max_bytes=2000).strip()
            if tail:
                print(f"{os.path.basename(each.log_path)} (tail):\n{tail}")
    print()
    print("== tools/load/backup.py summary ==")
    for line in summary or [f"command:      {command}"]:
        print(line)
    for failure in run.failures:
        print(f"FAILED: {failure}")
    print(f"result:       {'FAILED' if run.failures else 'all checks passed'}")


def main():
    options = parse_options()
    command = command_line()
    binary = harness.executable(options.binary, "backup")
    if binary is None:
        return 1
    if options.neurons < 1 or options.patterns_per_neuron < 1 or options.clients < 2 or options.seconds < 6:
        print(
            "backup: --neurons and --patterns-per-neuron must be positive, --clients at least 2 "
            "and --seconds at least 6"
        )
        return 1
    run = BackupRun(options, binary)
    harness.exit_on_sigterm()  # so that `finally` stops the servers
    summary = []
    print(
        f"backup: {run.total:,} patterns ({options.neurons:,} neurons x {options.patterns_per_neuron}), "
        f"{options.clients} clients for {options.seconds:g} s, binary {binary}, data in {run.directory}"
    )
    try:
        run.run()
        summary = summary_head(run, command) + summary_checks(run)
    except Exception as error:  # set-up failures, a dead server, bugs: report, exit 1
        run.failures.append(f"{type(error).__name__}: {error}")
    finally:
        run.stop_servers()
    print_result(run, summary, command)
    if options.keep:
        print(f"kept {run.directory}")
    else:
        shutil.rmtree(run.directory, ignore_errors=True)
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
