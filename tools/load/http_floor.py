#!/usr/bin/env python3
"""dendrite's `GET /healthz` against the HTTP floor: a bare axum server answering the same JSON
(benches/http_floor.rs), in one run, on 127.0.0.1.

What it does
  - Builds the floor with `cargo bench --bench http_floor --no-run` (the release profile) and
    starts it on a free port; starts `BINARY serve` with a fresh SQLite file on another.
  - Runs wrk (one thread, --connections, --duration seconds) on each `/healthz`, alternating,
    --rounds times (default 3), and prints each rate, the medians and dendrite / floor.

Exit status: 0 when every request answered 200. Needs wrk (apt-get install wrk). Both servers are
stopped on exit.

Run from the repository root with a release binary:
    python -m tools.load.http_floor
    python -m tools.load.http_floor --rounds 5 --duration 8
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from tools import harness
from tools.load import run

HERE = os.path.dirname(os.path.abspath(__file__))


def floor_binary():
    """The http_floor bench's executable, built (release profile) if it is not."""
    out = subprocess.run(
        ["cargo", "bench", "--locked", "--bench", "http_floor", "--no-run", "--message-format", "json"],
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if (
            message.get("reason") == "compiler-artifact"
            and message["target"]["name"] == "http_floor"
            and message.get("executable")
        ):
            return message["executable"]
    raise SystemExit("cargo built no http_floor executable")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=harness.DEFAULT_BINARY)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    floor_port = harness.free_port()
    floor = subprocess.Popen(
        [floor_binary(), "--listen", f"127.0.0.1:{floor_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    directory, server = harness.fresh_server(harness.resolve_binary(options.binary), "http-floor")
    rates = {"dendrite": [], "floor": []}
    errors = 0
    try:
        server.start()
        for _ in range(100):
            try:
                harness.request_once(floor_port, "GET", "/healthz", timeout=1)
                break
            except harness.NoAnswer:
                time.sleep(0.05)
        for round in range(options.rounds):
            for what, port in (("dendrite", server.port), ("floor", floor_port)):
                run.BASE = f"http://127.0.0.1:{port}"
                rate, _, non_2xx = run.wrk("/healthz", options.duration, options.connections)
                rates[what].append(rate)
                errors += non_2xx
            print(
                f"round {round + 1}: dendrite {rates['dendrite'][-1]:,.0f} req/s, floor {rates['floor'][-1]:,.0f} req/s"
            )
    finally:
        server.stop(30)
        floor.terminate()
        floor.wait()
        harness.keep_or_remove(directory, False)
    dendrite, bare = statistics.median(rates["dendrite"]), statistics.median(rates["floor"])
    print(
        f"GET /healthz, wrk 1 thread {options.connections} connections {options.duration} s, medians of "
        f"{options.rounds}: dendrite {dendrite:,.0f} req/s, floor {bare:,.0f} req/s, dendrite/floor = {dendrite / bare:.2f}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
