#!/usr/bin/env python3
"""Polling many spaces: /healthz while clients scrape /metrics and list /v1/spaces without pause.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory and `--log-level warn`, and waits for it to be ready.
  - Creates --spaces spaces (default 10,000; n=2048, a=40, s=24, theta=12), named s00000, ...,
    each with one stored pattern of 40 random bits (PUT, then POST .../neurons/n/patterns).
  - For --seconds seconds (default 20), --pollers threads (default 8) request back to back, on
    keep-alive connections: half GET /metrics, half GET /v1/spaces?limit=1000 following `next`
    through every page (each must answer 200). Meanwhile GET /healthz is sent every 20 ms on its
    own connection (a tick falling due while the previous request is still out is skipped), from
    a process of its own, so that the pollers' JSON decoding (Python's global lock) cannot delay
    the probe's own timing.
  - Prints each kind's count, p50, p99 and max latency in ms.

Exit status: 0 when every request got its expected answer; 1 otherwise. Latencies are reported,
never failed on. Traffic goes only to 127.0.0.1; the server is killed on exit.

Run from the repository root with a release binary:
    python -m tools.load.polling
    python -m tools.load.polling --spaces 2000 --seconds 10
"""

import multiprocessing
import random
import sys
import threading
import time

from tools import harness
from tools.harness import SPACE_PARAMS, Connection, percentile, random_bits


def line(kind, latencies):
    ms = sorted(v * 1000 for v in latencies)
    if not ms:
        return f"{kind:10s} none"
    return (
        f"{kind:10s} {len(ms):6d}  p50 {percentile(ms, 50):8.2f} ms  p99 {percentile(ms, 99):8.2f} ms  "
        f"max {ms[-1]:8.2f} ms"
    )


def probe_health(port, seconds, answers):
    """GET /healthz every 20 ms for `seconds`; puts (latencies, statuses not 200) on `answers`."""
    took, failed = [], []
    with Connection(port, 10.0) as connection:
        end = tick = time.monotonic()
        end += seconds
        while time.monotonic() < end:
            sent = time.monotonic()
            status, _ = connection.call("GET", "/healthz")
            took.append(time.monotonic() - sent)
            if status != 200:
                failed.append(status)
            tick += 0.020
            while tick < time.monotonic():
                tick += 0.020
            time.sleep(max(0.0, tick - time.monotonic()))
    answers.put((took, failed))


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--spaces", type=int, default=10_000)
    parser.add_argument("--pollers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def make_spaces(port, options, rng):
    """--spaces spaces with one pattern each."""
    setup = Connection(port, 60.0)
    started = time.monotonic()
    for i in range(options.spaces):
        name = f"s{i:05d}"
        status, raw = setup.call("PUT", f"/v1/spaces/{name}", SPACE_PARAMS)
        if status != 201:
            raise RuntimeError(f"creating {name} answered {status}: {raw[:200]!r}")
        status, raw = setup.call("POST", f"/v1/spaces/{name}/neurons/n/patterns", {"active": random_bits(rng)})
        if status != 201:
            raise RuntimeError(f"storing in {name} answered {status}: {raw[:200]!r}")
    print(f"{options.spaces:,} spaces made in {time.monotonic() - started:.1f} s")
    setup.close()


def poll(port, kind, stop, latencies, failures):
    """GET /metrics, or every page of the space listing, over and over until `stop`."""
    with Connection(port, 60.0) as connection:
        while not stop.is_set():
            sent = time.monotonic()
            if kind == "metrics":
                status, raw = connection.call("GET", "/metrics")
            else:
                after, status = None, 200
                while status == 200:
                    path = "/v1/spaces?limit=1000" + (f"&after={after}" if after else "")
                    status, body = connection.call_json("GET", path)
                    after = body.get("next") if status == 200 else None
                    if after is None:
                        break
            latencies[kind].append(time.monotonic() - sent)
            if status != 200:
                failures.append(f"{kind} answered {status}")


def health_under_polling(port, options, latencies, failures):
    """The pollers running, /healthz probed from a process of its own (so this one's threads
    cannot delay it) for --seconds."""
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=poll, args=(port, "metrics" if i % 2 == 0 else "spaces", stop, latencies, failures), daemon=True
        )
        for i in range(options.pollers)
    ]
    for thread in threads:
        thread.start()
    answers = multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe_health, args=(port, options.seconds, answers))
    prober.start()
    took, failed = answers.get(timeout=options.seconds + 60)
    prober.join(10.0)
    latencies["healthz"] = took
    failures.extend(f"/healthz answered {status}" for status in failed)
    stop.set()
    for thread in threads:
        thread.join(60.0)


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "polling")
    if binary is None or options.spaces < 1 or options.pollers < 2 or options.seconds <= 0:
        return 1
    rng = random.Random(options.seed)
    directory, server = harness.fresh_server(binary, "polling")
    failures = []
    latencies = {"healthz": [], "metrics": [], "spaces": []}
    try:
        server.start(60.0, http_timeout=60.0)
        make_spaces(server.port, options, rng)
        health_under_polling(server.port, options, latencies, failures)
        for kind, values in latencies.items():
            print(line(kind, values))
    except (RuntimeError, harness.NoAnswer) as error:
        failures.append(str(error))
    finally:
        server.stop(10.0)
        harness.keep_or_remove(directory, False)
    for failure in failures[:10]:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
