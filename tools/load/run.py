#!/usr/bin/env python3
"""Load test of the release binary on 127.0.0.1 with the standard workload (tools/load/workload.py, as
src/workload.rs defines it; the figures are the README's Performance section).

Bounded: every phase has a fixed duration and the script stops the server itself. Reports:
  - the batch endpoint's store rate while loading the 100,000 patterns;
  - query throughput and p50/p99 latency (wrk), and GET /healthz throughput in the same run;
  - single-pattern stores from 64 concurrent clients, and writes per commit from /v1/stats;
  - with --startup: start-up time with about 1,000,000 stored patterns (topped up to that).

Usage: python -m tools.load.run [--duration SECONDS] [--startup]   (needs wrk: apt-get install wrk)
       python -m tools.load.run --fsync-delay-ms 2 --single-stores-only [--binary PATH]
         every fsync and fdatasync of the server delayed 2 ms, as on a network volume (the server
         runs under `strace --seccomp-bpf`, which stops it only at those calls; needs strace), and
         only the 64-client single-store phase: what group commit makes of a slow disk.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

from tools.load import workload

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))  # the repository: tools/load/ is two levels down

BINARY = os.path.join(ROOT, "target", "release", "dendrite")
PORT = 18090
BASE = f"http://127.0.0.1:{PORT}"
SPACE = {
    "input_size": 2048,
    "active_bits": 40,
    "synapses_per_pattern": 24,
    "threshold": 12,
    "max_false_match": 1e-6,
}


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        BASE + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.status, json.loads(response.read() or b"null")


def start(database, binary=BINARY, fsync_delay_ms=0):
    log = open(database + ".log", "a")
    command = [
        binary,
        "serve",
        "--listen",
        f"127.0.0.1:{PORT}",
        "--database-url",
        f"sqlite://{database}",
        "--log-level",
        "warn",
        "--body-limit",
        str(16 << 20),
    ]
    if fsync_delay_ms > 0:
        delay = int(fsync_delay_ms * 1000)
        command = [
            "strace",
            "--seccomp-bpf",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            "trace=fsync,fdatasync",
            "-e",
            f"inject=fsync,fdatasync:delay_exit={delay}",
            *command,
        ]
    server = subprocess.Popen(command, stdout=log, stderr=log)
    started = time.monotonic()
    while True:
        try:
            if call("GET", "/readyz")[0] == 200:
                return server, time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > 120:
            server.kill()
            raise SystemExit("the server did not become ready")
        time.sleep(0.01)


def stop(server):
    # Under strace the server is strace's child: SIGTERM goes to the server itself (strace would
    # detach and leave it running), and strace exits with it.
    children = f"/proc/{server.pid}/task/{server.pid}/children"
    traced = [int(pid) for pid in open(children).read().split()] if server.args[0] == "strace" else []
    for pid in traced:
        os.kill(pid, signal.SIGTERM)
    if not traced:
        server.terminate()
    server.wait(timeout=60)


def store_batches(stores, space="bench", batch=1000):
    """Stores in batches; the rate counts only the requests (bodies are encoded beforehand and
    answers are read but not decoded, so Python's JSON speed does not enter the figure)."""
    bodies = [
        json.dumps({"patterns": [{"neuron": n, "active": a} for n, a in stores[i : i + batch]]}).encode()
        for i in range(0, len(stores), batch)
    ]
    started = time.monotonic()
    for body in bodies:
        request = urllib.request.Request(
            BASE + f"/v1/spaces/{space}/patterns",
            data=body,
            method="POST",
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200, response.status
            response.read()
    return len(stores) / (time.monotonic() - started)


def wrk(path, duration, connections, script=None, script_args=()):
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--latency", BASE + path]
    if script:
        command[1:1] = ["-s", script]
        command += ["--", *script_args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: re.search(rf"\s{p}%\s+([\d.]+\w+)", out).group(1) for p in ("50", "99")}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, latency, int(errors.group(1)) if errors else 0


def single_stores(duration):
    _, before = call("GET", "/v1/stats")
    single, single_latency, single_errors = wrk("/", duration, 64, os.path.join(HERE, "store.lua"))
    _, after = call("GET", "/v1/stats")
    commits = after["commits"] - before["commits"]
    writes = after["writes_committed"] - before["writes_committed"]
    print(
        f"single stores, 64 clients: {single:,.0f} patterns/s, p50 {single_latency['50']}, "
        f"p99 {single_latency['99']}, non-2xx {single_errors}; {writes:,} writes in {commits:,} commits "
        f"= {writes / max(commits, 1):.1f} writes per commit"
    )


def parse_options():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk phase")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (one wrk thread)")
    parser.add_argument("--startup", action="store_true", help="also time start-up with 1,000,000 patterns")
    parser.add_argument("--binary", default=BINARY, help="the server to measure (default: this tree's release build)")
    parser.add_argument(
        "--fsync-delay-ms",
        type=float,
        default=0.0,
        help="delay every fsync/fdatasync of the server this long (needs strace)",
    )
    parser.add_argument("--single-stores-only", action="store_true", help="run only the 64-client single-store phase")
    return parser.parse_args()


def throughput(stores, queries, workdir, options):
    """The batch store rate, a recognition check, then /healthz and query throughput with wrk."""
    batch_rate = store_batches(stores)
    print(f"batch store: {batch_rate:,.0f} patterns/s ({len(stores):,} patterns in batches of 1000, one client)")
    found = sum(
        any(m["neuron"] == source for m in call("POST", "/v1/spaces/bench/query", {"active": active})[1]["matches"])
        for active, source in queries[:1000:2]
    )
    print(f"recognition check: {found}/500 noisy queries found their neuron")
    health, health_latency, _ = wrk("/healthz", options.duration, options.connections)
    query, query_latency, query_errors = wrk(
        "/v1/spaces/bench/query",
        options.duration,
        options.connections,
        os.path.join(HERE, "query.lua"),
        [os.path.join(workdir, "queries.txt")],
    )
    print(f"GET /healthz: {health:,.0f} req/s, p50 {health_latency['50']}, p99 {health_latency['99']}")
    print(
        f"POST query:   {query:,.0f} req/s, p50 {query_latency['50']}, p99 {query_latency['99']}, "
        f"non-2xx {query_errors}; query/healthz = {query / health:.2f}"
    )


def startup_time(database):
    """Tops the database up to about 1,000,000 patterns, then times three start-ups to ready."""
    server, _ = start(database)
    try:
        # Top the database up to 1,000,000 patterns, 100 per new neuron.
        _, stats = call("GET", "/v1/stats")
        neurons = max(0, 1_000_000 - stats["patterns"]) // 100
        more, _ = workload.generate(BINARY, neurons=neurons, patterns=100, queries=0, seed=2)
        more = [(f"m{neuron}", active) for neuron, active in more]
        rate = store_batches(more)
        _, stats = call("GET", "/v1/stats")
        print(f"stored {stats['patterns']:,} patterns in all (batch store {rate:,.0f} patterns/s)")
    finally:
        stop(server)
    timings = []
    for _ in range(3):
        server, elapsed = start(database)
        timings.append(elapsed)
        stop(server)
    timings.sort()
    print(
        f"start-up with {stats['patterns']:,} patterns: median {timings[1]:.2f} s to ready "
        f"(runs: {', '.join(f'{t:.2f}' for t in timings)})"
    )


def main():
    options = parse_options()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    if options.fsync_delay_ms > 0 and not shutil.which("strace"):
        raise SystemExit("strace is missing: apt-get install strace")
    if options.binary == BINARY:
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="dendrite-load-")
    database = os.path.join(workdir, "load.db")
    stores, queries = workload.generate(options.binary)
    with open(os.path.join(workdir, "queries.txt"), "w") as f:
        for active, _ in queries:
            f.write(json.dumps({"active": active}) + "\n")

    server, _ = start(database, options.binary, options.fsync_delay_ms)
    try:
        call("PUT", "/v1/spaces/bench", SPACE)
        call("PUT", "/v1/spaces/load", SPACE)
        if options.single_stores_only:
            single_stores(options.duration)
            return
        throughput(stores, queries, workdir, options)
        single_stores(options.duration)
    finally:
        stop(server)

    if options.startup:
        startup_time(database)
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
