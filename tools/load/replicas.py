#!/usr/bin/env python3
"""Replicas on PostgreSQL with the standard workload: writes through PostgreSQL against SQLite,
query throughput with one replica and with two, and the replication lag a client sees under write
load (the figures of the README's "Several replicas on PostgreSQL").

What it does, each step bounded in time (--duration seconds per measuring phase, timeouts on every
start-up and request):
  (a) Writes. A server on a fresh SQLite file in a temporary directory, then replica A on a fresh
      PostgreSQL database (CREATE DATABASE through psql on --postgres-url), one after the other
      and with the same client code: create the spaces "bench" and "load" (tools/load/run.py's SPACE),
      store the standard workload (tools/load/workload.py: 100,000 patterns) into "bench" with the
      batch endpoint, 1000 patterns a request on one keep-alive connection (bodies encoded
      beforehand), and time it; then single-pattern stores from 64 wrk connections
      (tools/load/store.lua, into "load") for --duration seconds. The SQLite server is stopped before A
      starts.
  (b) Queries. wrk with tools/load/query.lua (one thread, --connections connections, the workload's
      10,000 queries round robin) against A alone; then replica B starts on the same database,
      and once its /v1/stats says applied_sequence == head_sequence and it has applied all A has,
      200 queries must get the same answer from A and B; then two wrk processes at once, half the
      connections each, one against A and one against B (the rates are summed); then A alone
      again, to show how far the machine drifted meanwhile.
  (c) Replication lag. For --duration seconds, a background wrk (--lag-background connections,
      tools/load/store.lua) stores single patterns through A, while --lag-writers client threads each
      store a pattern with an id through A and, as soon as it is acknowledged with
      `Dendrite-Sequence: N`, read it back from B with GET .../patterns/{id}?min_sequence=N. The
      time from the acknowledgement to B's answer is the lag such a client sees (it includes one
      round trip to B, measured alone beforehand as read_rtt). Every such read must answer 200
      (404 would break read-your-writes; 503 means B had not applied N within 5 s). B's
      replication_lag (in changes) is sampled from its /v1/stats every 100 ms.
Then it stops every server it started, drops the database and removes its temporary directory
(unless --keep), and prints one JSON object, the summary.

Usage (release binary built; PostgreSQL reachable with a role that may create databases):
    python -m tools.load.replicas --postgres-url postgres://dendrite@127.0.0.1:PORT/postgres [--duration S]
                     [--one-core-each]   (A on CPU 0, B on CPU 1: each replica on a core of its own)
    (scripts/pg_cluster start DIR prints such a URL for a throw-away cluster)
Needs wrk (apt-get install wrk) and psql (apt-get install postgresql-client). Traffic goes only to
127.0.0.1 and to the PostgreSQL server named. Exit status 0, or 1 when a check failed (a request
answered other than expected, answers differing between replicas, a read that missed its write).
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from tools import harness
from tools.harness import NoAnswer, Server, percentile
from tools.load import workload
from tools.load.run import SPACE  # (the standard space: n=2048, a=40, s=24, theta=12)

HERE = os.path.dirname(os.path.abspath(__file__))

BATCH = 1000
SINGLE_CONNECTIONS = 64  # wrk connections for single-pattern stores, as tools/load/run.py
PARITY_QUERIES = 200
RTT_SAMPLES = 200
START_TIMEOUT = 300.0  # seconds a server may take to be ready (B loads everything A stored)
HTTP_TIMEOUT = 120.0


def say(message):
    print(f"replicas: {message}", flush=True)


# ---- PostgreSQL ---------------------------------------------------------------------------------


def psql(admin_url, sql):
    """Runs one statement on the admin database; RuntimeError with psql's message if it fails."""
    try:
        result = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", admin_url, "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"psql did not finish {sql!r} within 60 s") from None
    if result.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {result.stderr.strip()}")


def database_url(admin_url, name):
    """The admin URL with `name` as its database (user, password, host, port and query kept)."""
    parts = urllib.parse.urlsplit(admin_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def drop_database(admin_url, name):
    """Drops the database, ending connections left to it (WITH (FORCE), PostgreSQL 13 and newer;
    plain DROP on older servers)."""
    try:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except RuntimeError:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}"')


# ---- HTTP ---------------------------------------------------------------------------------------


def expect(connection, method, path, body=None, ok=(200,)):
    """The Answer of a request that must answer one of `ok`; RuntimeError otherwise."""
    answer = connection.exchange(method, path, body)
    if answer.status not in ok:
        raise RuntimeError(f"{method} {path} answered {answer.status}: {answer.raw[:300]!r}")
    return answer


def sequence_of(answer, what):
    """The Dendrite-Sequence of a write's answer; RuntimeError when it has none."""
    value = answer.headers.get("dendrite-sequence")
    if value is None or not value.isdigit():
        raise RuntimeError(f"{what} answered without a Dendrite-Sequence header ({value!r})")
    return int(value)


def stats(port):
    with harness.Connection(port, 10.0) as connection:
        return json.loads(expect(connection, "GET", "/v1/stats").raw)


def sequences(port):
    """(applied_sequence, head_sequence) from the server's /v1/stats."""
    s = stats(port)
    if "applied_sequence" not in s or "head_sequence" not in s:
        raise RuntimeError("GET /v1/stats has no applied_sequence/head_sequence: a binary without replicas?")
    return s["applied_sequence"], s["head_sequence"]


def create_spaces(port):
    with harness.Connection(port, HTTP_TIMEOUT) as connection:
        for name in ("bench", "load"):
            expect(connection, "PUT", f"/v1/spaces/{name}", SPACE, ok=(201,))


def store_batches(port, bodies, count):
    """Sends the encoded batch bodies to space "bench" one after the other on one keep-alive
    connection: (patterns per second, the last answer). Only the requests are timed."""
    with harness.Connection(port, HTTP_TIMEOUT) as connection:
        answer = None
        started = time.perf_counter()
        for body in bodies:
            answer = expect(connection, "POST", "/v1/spaces/bench/patterns", body)
        seconds = time.perf_counter() - started
    return count / seconds, answer


# ---- wrk ----------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(number) * _UNITS_MS[unit]


def wrk_start(port, path, duration, connections, script, script_args=()):
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--latency",
        "-s",
        os.path.join(HERE, script),
        f"http://127.0.0.1:{port}{path}",
    ]
    if script_args:
        command += ["--", *script_args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_finish(process, duration):
    """Waits for a wrk started by wrk_start (bounded) and parses its report:
    {"per_s", "p50_ms", "p99_ms", "non_2xx", "socket_errors"}."""
    try:
        out, err = process.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError("wrk did not finish in time") from None
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.strip()[:300]}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate: {out[:300]}")
    latency = {p: _ms(re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1)) for p in ("50", "99")}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "per_s": round(float(rate.group(1))),
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(x) for x in sockets.groups()) if sockets else 0,
    }


def wrk(port, path, duration, connections, script, script_args=()):
    return wrk_finish(wrk_start(port, path, duration, connections, script, script_args), duration)


def check_wrk(what, result, failures):
    """A failure line for a wrk run that saw answers other than 2xx or socket errors."""
    if result["non_2xx"] or result["socket_errors"]:
        failures.append(f"{what}: {result['non_2xx']} answers other than 2xx, {result['socket_errors']} socket errors")


def single_stores(port, duration):
    """Single-pattern stores from SINGLE_CONNECTIONS wrk connections, with writes per commit from
    /v1/stats when the server counts them."""
    before = stats(port)
    result = wrk(port, "/", duration, SINGLE_CONNECTIONS, "store.lua")
    after = stats(port)
    if "commits" in before and "commits" in after:
        commits = after["commits"] - before["commits"]
        writes = after["writes_committed"] - before["writes_committed"]
        result["writes_per_commit"] = round(writes / max(commits, 1), 1)
    return result


# ---- (c) the lag a client sees ------------------------------------------------------------------


class LagRecord:
    """One probing writer's results, appended only by its thread and read after it stopped."""

    def __init__(self):
        self.write_s = []  # store through A: sent to acknowledged
        self.wait_s = []  # acknowledged to B's answer of the read with min_sequence (200 only)
        self.missing = 0  # B answered 404: it said it had applied N but did not hold the write
        self.timeouts = 0  # B answered 503: it had not applied N within its bound
        self.errors = []  # anything else (first few)
        self.error_count = 0

    def error(self, text):
        self.error_count += 1
        if len(self.errors) < 3:
            self.errors.append(text)


def lag_writer(index, port_a, port_b, seed, stop_at, record):
    rng = random.Random(seed)
    with harness.Connection(port_a, 10.0) as a, harness.Connection(port_b, 10.0) as b:
        count = 0
        while time.monotonic() < stop_at:
            neuron = f"w{index}-{count // 100:05d}"
            pattern_id = f"lag-{index}-{count}"
            count += 1
            body = json.dumps({"id": pattern_id, "active": workload.random_pattern(rng)}).encode()
            try:
                sent = time.perf_counter()
                answer = a.exchange("POST", f"/v1/spaces/lag/neurons/{neuron}/patterns", body)
                acked = time.perf_counter()
                if answer.status != 201:
                    record.error(f"store {answer.status}: {answer.raw[:200]!r}")
                    continue
                sequence = sequence_of(answer, "a store")
                read = b.exchange(
                    "GET", f"/v1/spaces/lag/neurons/{neuron}/patterns/{pattern_id}?min_sequence={sequence}"
                )
                answered = time.perf_counter()
            except (NoAnswer, RuntimeError) as error:
                record.error(f"{type(error).__name__}: {error}")
                time.sleep(0.05)
                continue
            record.write_s.append(acked - sent)
            if read.status == 200:
                record.wait_s.append(answered - acked)
            elif read.status == 404:
                record.missing += 1
            elif read.status == 503:
                record.timeouts += 1
            else:
                record.error(f"read {read.status}: {read.raw[:200]!r}")


def lag_sampler(port_b, stop, samples):
    """B's replication_lag (changes) every 100 ms until `stop` is set."""
    with harness.Connection(port_b, 10.0) as connection:
        while not stop.wait(0.1):
            try:
                answer = connection.exchange("GET", "/v1/stats")
                if answer.status == 200:
                    samples.append(json.loads(answer.raw).get("replication_lag"))
            except (NoAnswer, ValueError):
                pass


def read_rtt(port_a, port_b):
    """Seconds of B's answer to a read whose min_sequence it has already applied: the round trip
    included in every lag figure. Stores one pattern through A, waits for B, then reads it
    RTT_SAMPLES times."""
    rng = random.Random(7)
    with harness.Connection(port_a, 10.0) as a, harness.Connection(port_b, 10.0) as b:
        stored = expect(
            a,
            "POST",
            "/v1/spaces/lag/neurons/rtt/patterns",
            {"id": "rtt", "active": workload.random_pattern(rng)},
            ok=(201,),
        )
        path = f"/v1/spaces/lag/neurons/rtt/patterns/rtt?min_sequence={sequence_of(stored, 'a store')}"
        expect(b, "GET", path)  # waits (at most 5 s) until B has it
        times = []
        for _ in range(RTT_SAMPLES):
            started = time.perf_counter()
            expect(b, "GET", path)
            times.append(time.perf_counter() - started)
    return sorted(times)


def ms(seconds):
    return round(seconds * 1000.0, 3)


def distribution(sorted_seconds):
    if not sorted_seconds:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": ms(percentile(sorted_seconds, 50)),
        "p99": ms(percentile(sorted_seconds, 99)),
        "max": ms(sorted_seconds[-1]),
    }


# ---- the run ------------------------------------------------------------------------------------


def wait_caught_up(port, target, timeout):
    """Waits until the server's applied_sequence equals its head_sequence and is at least `target`;
    returns the seconds it took."""
    started = time.monotonic()
    while True:
        applied, head = sequences(port)
        if applied == head and applied >= target:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not caught up within {timeout:g} s: applied {applied}, head {head}, wanted {target}")
        time.sleep(0.05)


def parity(port_a, port_b, queries, failures):
    """Sends the same queries to A and B: how many got the same answer."""
    same = 0
    with harness.Connection(port_a, HTTP_TIMEOUT) as a, harness.Connection(port_b, HTTP_TIMEOUT) as b:
        for body in queries:
            answers = [json.loads(expect(c, "POST", "/v1/spaces/bench/query", body).raw) for c in (a, b)]
            if answers[0] == answers[1]:
                same += 1
            elif len(failures) < 20:
                failures.append(f"A and B answered a query differently: {body[:80]!r}...")
    return same


def pin(server, cpu, wanted):
    """With --one-core-each, binds every thread of `server` (and those it starts later) to `cpu`."""
    if wanted:
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(server.process.pid)],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument(
        "--postgres-url",
        required=True,
        help="admin URL of a PostgreSQL server whose role may create databases, "
        "e.g. postgres://dendrite@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of each measuring phase (default 10)")
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="wrk connections for queries, split between the replicas (default 32)",
    )
    parser.add_argument(
        "--lag-writers",
        type=int,
        default=4,
        help="client threads that store through A and read back from B (default 4)",
    )
    parser.add_argument(
        "--lag-background",
        type=int,
        default=16,
        help="wrk connections storing through A meanwhile (default 16; 0: none)",
    )
    parser.add_argument(
        "--one-core-each",
        action="store_true",
        help="pin replica A to CPU 0 and B to CPU 1 (every thread, with taskset), as if "
        "each ran on a one-core machine of its own: what a second replica adds "
        "when each is bound by its own CPU",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (SQLite file, logs) and the database",
    )
    return parser.parse_args()


class ReplicasRun:
    """One run: the SQLite server and replicas A and B on a fresh database, the summary that is
    printed as JSON, and the failed checks. Each measuring phase is a method."""

    def __init__(self, options, binary):
        self.options, self.binary = options, binary
        self.directory = tempfile.mkdtemp(prefix="dendrite-replicas-")
        self.name = f"dendrite_replicas_{os.getpid()}_{int(time.time())}"
        self.url = database_url(options.postgres_url, self.name)
        directory = self.directory
        self.sqlite = Server(
            binary, os.path.join(directory, "sqlite.db"), os.path.join(directory, "sqlite.log"), die_with_parent=True
        )
        self.a = Server(binary, None, os.path.join(directory, "a.log"), die_with_parent=True, database_url=self.url)
        self.b = Server(binary, None, os.path.join(directory, "b.log"), die_with_parent=True, database_url=self.url)
        self.servers = (self.sqlite, self.a, self.b)
        self.created = False
        self.failures = []
        self.summary = {
            "binary": binary,
            "duration_s": options.duration,
            "database": self.name,
            "one_core_each": options.one_core_each,
        }

    def prepare_workload(self):
        """The standard workload's batch bodies, its queries in a file for wrk, and the parity queries."""
        self.stores, queries = workload.generate(self.binary)
        self.bodies = [
            json.dumps({"patterns": [{"neuron": n, "active": act} for n, act in self.stores[i : i + BATCH]]}).encode()
            for i in range(0, len(self.stores), BATCH)
        ]
        self.query_file = os.path.join(self.directory, "queries.txt")
        with open(self.query_file, "w") as f:
            for active, _ in queries:
                f.write(json.dumps({"active": active}) + "\n")
        self.parity_bodies = [json.dumps({"active": active}).encode() for active, _ in queries[:PARITY_QUERIES]]

    def sqlite_writes(self, write):
        """(a) Writes to SQLite: the batch store rate, then single stores."""
        sqlite = self.sqlite
        sqlite.start(START_TIMEOUT)
        create_spaces(sqlite.port)
        write["sqlite_batch_patterns_per_s"] = round(store_batches(sqlite.port, self.bodies, len(self.stores))[0])
        say(f"SQLite batch store: {write['sqlite_batch_patterns_per_s']:,} patterns/s")
        write["sqlite_single_stores"] = single_stores(sqlite.port, self.options.duration)
        say(f"SQLite single stores: {write['sqlite_single_stores']}")
        check_wrk("SQLite single stores", write["sqlite_single_stores"], self.failures)
        sqlite.stop(timeout=60)

    def postgres_writes(self, write):
        """(a) The same writes to PostgreSQL through replica A, with the same client code."""
        options, a = self.options, self.a
        psql(options.postgres_url, f'CREATE DATABASE "{self.name}"')
        self.created = True
        self.summary["replica_a_ready_s"] = round(a.start(START_TIMEOUT), 2)
        pin(a, 0, options.one_core_each)
        backend = stats(a.port).get("backend")
        if backend != "postgres":
            raise RuntimeError(f"replica A's /v1/stats says backend {backend!r}, not 'postgres'")
        create_spaces(a.port)
        rate, last = store_batches(a.port, self.bodies, len(self.stores))
        write["postgres_batch_patterns_per_s"] = round(rate)
        write["postgres_sequence_after_batches"] = sequence_of(last, "a batch")
        write["postgres_over_sqlite"] = round(rate / write["sqlite_batch_patterns_per_s"], 3)
        say(f"PostgreSQL batch store: {write['postgres_batch_patterns_per_s']:,} patterns/s")
        write["postgres_single_stores"] = single_stores(a.port, options.duration)
        say(f"PostgreSQL single stores: {write['postgres_single_stores']}")
        check_wrk("PostgreSQL single stores", write["postgres_single_stores"], self.failures)

    def writes(self):
        write = self.summary["write"] = {
            "patterns": len(self.stores),
            "batch": BATCH,
            "single_store_connections": SINGLE_CONNECTIONS,
        }
        self.sqlite_writes(write)
        self.postgres_writes(write)

    def query_rate(self, port, connections):
        return wrk(port, "/v1/spaces/bench/query", self.options.duration, connections, "query.lua", [self.query_file])

    def queries(self):
        """(b) Queries: A alone, then A and B at once, then A alone again."""
        options, a, b = self.options, self.a, self.b
        query = self.summary["query"] = {"connections": options.connections}
        query["one_replica"] = self.query_rate(a.port, options.connections)
        say(f"queries, one replica: {query['one_replica']}")
        target = sequences(a.port)[0]
        self.summary["replica_b_ready_s"] = round(b.start(START_TIMEOUT), 2)
        pin(b, 1, options.one_core_each)
        self.summary["replica_b_caught_up_after_ready_s"] = round(wait_caught_up(b.port, target, 120.0), 2)
        same = parity(a.port, b.port, self.parity_bodies, self.failures)
        query["identical_answers"] = f"{same}/{len(self.parity_bodies)}"
        half = options.connections // 2
        running = [
            wrk_start(port, "/v1/spaces/bench/query", options.duration, half, "query.lua", [self.query_file])
            for port in (a.port, b.port)
        ]
        each = [wrk_finish(process, options.duration) for process in running]
        query["two_replicas"] = {"per_s": sum(e["per_s"] for e in each), "a": each[0], "b": each[1]}
        query["two_over_one"] = round(query["two_replicas"]["per_s"] / query["one_replica"]["per_s"], 3)
        say(f"queries, two replicas: {query['two_replicas']}")
        query["one_replica_again"] = self.query_rate(a.port, options.connections)
        for what, result in (
            ("queries, one replica", query["one_replica"]),
            ("queries, two replicas, A", each[0]),
            ("queries, two replicas, B", each[1]),
            ("queries, one replica again", query["one_replica_again"]),
        ):
            check_wrk(what, result, self.failures)

    def lag_load(self, lag):
        """The lag phase's load: probing writers through A reading back from B, wrk storing
        through A meanwhile, B's replication lag sampled. Returns (records, lag samples, seconds)."""
        options, a, b = self.options, self.a, self.b
        background = None
        if options.lag_background:
            background = wrk_start(a.port, "/", options.duration, options.lag_background, "store.lua")
        stop_sampling = threading.Event()
        lag_samples = []
        sampler = threading.Thread(target=lag_sampler, args=(b.port, stop_sampling, lag_samples), daemon=True)
        sampler.start()
        records = [LagRecord() for _ in range(options.lag_writers)]
        started = time.monotonic()
        stop_at = started + options.duration
        threads = [
            threading.Thread(target=lag_writer, args=(i, a.port, b.port, 100 + i, stop_at, records[i]), daemon=True)
            for i in range(options.lag_writers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=options.duration + 30)
        elapsed = time.monotonic() - started
        stop_sampling.set()
        sampler.join(timeout=15)
        if background is not None:
            lag["background_stores"] = wrk_finish(background, options.duration)
            check_wrk("background stores during the lag phase", lag["background_stores"], self.failures)
        if any(thread.is_alive() for thread in threads):
            self.failures.append("a probing writer did not stop in time")
        return records, lag_samples, elapsed

    def lag(self):
        """(c) Replication lag under write load."""
        options = self.options
        lag = self.summary["lag"] = {
            "probing_writers": options.lag_writers,
            "background_connections": options.lag_background,
        }
        with harness.Connection(self.a.port, HTTP_TIMEOUT) as connection:
            expect(connection, "PUT", "/v1/spaces/lag", SPACE, ok=(201,))
        lag["read_rtt_ms"] = distribution(read_rtt(self.a.port, self.b.port))
        records, lag_samples, elapsed = self.lag_load(lag)
        waits = sorted(w for r in records for w in r.wait_s)
        writes = sorted(w for r in records for w in r.write_s)
        lag["probed_writes"] = len(writes)
        lag["probed_writes_per_s"] = round(len(writes) / elapsed, 1)
        lag["write_ms"] = distribution(writes)
        lag["read_wait_ms"] = distribution(waits)
        lag["missing"] = sum(r.missing for r in records)
        lag["timeouts"] = sum(r.timeouts for r in records)
        lag["errors"] = sum(r.error_count for r in records)
        known = [s for s in lag_samples if isinstance(s, int)]
        lag["replication_lag_changes"] = {
            "max": max(known) if known else None,
            "mean": round(sum(known) / len(known), 2) if known else None,
            "samples": len(known),
        }
        say(f"lag: {lag['read_wait_ms']} ms over {len(waits)} reads (round trip alone {lag['read_rtt_ms']})")
        if lag["missing"]:
            self.failures.append(
                f"{lag['missing']} reads with min_sequence answered 404 on B (read-your-writes broken)"
            )
        if lag["timeouts"]:
            self.failures.append(
                f"{lag['timeouts']} reads with min_sequence answered 503 on B (not applied within 5 s)"
            )
        for r in records:
            self.failures.extend(r.errors)
        if not waits:
            self.failures.append("no write was read back from B")

    def clean_up(self):
        """Stops the servers and drops the database (unless kept)."""
        for server in self.servers:
            if server.alive():
                server.stop(timeout=30)
        if self.created and not self.options.keep:
            try:
                drop_database(self.options.postgres_url, self.name)
            except RuntimeError as error:
                self.failures.append(f"could not drop database {self.name}: {error}")

    def report(self):
        """Prints the servers' log tails after a failure, then the summary as JSON."""
        if self.failures:
            for server, label in zip(self.servers, ("sqlite", "A", "B")):
                tail = server.log_tail(lines=None, max_bytes=2000).strip()
                if tail:
                    print(f"server {label} log (tail):\n{tail}")
        self.summary["failures"] = self.failures
        if self.options.keep:
            self.summary["kept"] = {"directory": self.directory, "database": self.url if self.created else None}
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
        print(json.dumps(self.summary, indent=1))


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "replicas")
    if binary is None:
        return 1
    for tool, package in (("wrk", "wrk"), ("psql", "postgresql-client")):
        if not shutil.which(tool):
            say(f"{tool} is missing: apt-get install {package}")
            return 1
    if options.duration < 1 or options.connections < 2 or options.lag_writers < 1 or options.lag_background < 0:
        say("--duration at least 1, --connections at least 2, --lag-writers at least 1, --lag-background 0 or more")
        return 1
    harness.exit_on_sigterm()  # so that `finally` stops the servers and drops the database
    run = ReplicasRun(options, binary)
    say(f"binary {binary}, data and logs in {run.directory}, database {run.name}")
    try:
        run.prepare_workload()
        run.writes()
        run.queries()
        run.lag()
    except Exception as error:  # set-up failures, a dead server, bugs: report, exit 1
        run.failures.append(f"{type(error).__name__}: {error}")
    finally:
        run.clean_up()
    run.report()
    return 1 if run.failures else 0


if __name__ == "__main__":
    sys.exit(main())
