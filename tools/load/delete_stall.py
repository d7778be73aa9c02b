#!/usr/bin/env python3
"""Deleting a large space: how long other spaces' writes wait meanwhile.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory and `--log-level warn`, and waits for GET /healthz and GET /readyz.
  - Creates the spaces "big" and "other" (n=2048, a=40, s=24, theta=12) and fills "big" with
    --patterns patterns (default 500,000) of 40 random bits on --neurons neurons (default 100,000)
    with POST /v1/spaces/big/patterns in batches of 2000 (each must answer 200).
  - One thread stores single patterns into "other" back to back (neurons w0..w499; 201), timing
    each. After 2 s of that, the main thread sends DELETE /v1/spaces/big (204) and at once
    PUT /v1/spaces/big again (201: the name is free once the old rows are gone, so its answer
    marks the end of the purge), then lets the stores go on for 2 s more.
  - Prints the DELETE's and the PUT's times, and the stores' count, p50, p99 and max latency in
    three intervals: before the DELETE was sent, from it until the PUT answered (the purge), and
    after.

Exit status: 0 when every request got its expected answer; 1 otherwise. Latencies are reported,
never failed on. Traffic goes only to 127.0.0.1; the server is killed on exit.

Run from the repository root with a release binary:
    python -m tools.load.delete_stall
    python -m tools.load.delete_stall --patterns 100000
"""

import random
import sys
import threading
import time

from tools import harness
from tools.harness import SPACE_PARAMS, Connection, percentile, random_bits

FILL_BATCH = 2000


def summary(latencies):
    values = sorted(latencies)
    if not values:
        return "0 stores"
    ms = [v * 1000 for v in values]
    return (
        f"{len(ms):6d} stores  p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  max {ms[-1]:7.2f} ms"
    )


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--patterns", type=int, default=500_000, help="patterns in space big")
    parser.add_argument("--neurons", type=int, default=100_000, help="neurons they are spread over")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and log")
    return parser.parse_args()


def fill(setup, options, rng):
    """Creates the spaces "big" and "other" and fills big."""
    for space in ("big", "other"):
        status, raw = setup.call("PUT", f"/v1/spaces/{space}", SPACE_PARAMS)
        if status != 201:
            raise RuntimeError(f"creating {space} answered {status}: {raw[:200]!r}")
    started = time.monotonic()
    for first in range(0, options.patterns, FILL_BATCH):
        count = min(FILL_BATCH, options.patterns - first)
        neurons = [f"n{(first + k) % options.neurons}" for k in range(count)]
        body = {"patterns": [{"neuron": neuron, "active": random_bits(rng)} for neuron in neurons]}
        status, raw = setup.call("POST", "/v1/spaces/big/patterns", body)
        if status != 200:
            raise RuntimeError(f"a fill batch answered {status}: {raw[:300]!r}")
    print(f"filled big with {options.patterns:,} patterns in {time.monotonic() - started:.1f} s")


def store_other(port, rng, stop, stores, failures):
    """Stores to "other" one after another until `stop`, timing each: (sent, took) in `stores`."""
    with Connection(port, 60.0) as connection:
        i = 0
        while not stop.is_set():
            sent = time.monotonic()
            path = f"/v1/spaces/other/neurons/w{i % 500}/patterns"
            status, raw = connection.call("POST", path, {"active": random_bits(rng)})
            stores.append((sent, time.monotonic() - sent))
            if status not in (200, 201):
                failures.append(f"a store to other answered {status}: {raw[:200]!r}")
            i += 1


def delete_under_writes(server, setup, rng, failures):
    """Deletes big (and creates it again) while another space is written; prints the store
    latencies before, during and after the purge."""
    stores = []  # (sent, took)
    stop = threading.Event()
    writer_rng = random.Random(rng.random())
    writer = threading.Thread(target=store_other, args=(server.port, writer_rng, stop, stores, failures), daemon=True)
    writer.start()
    time.sleep(2.0)
    deleted_at = time.monotonic()
    status, raw = setup.call("DELETE", "/v1/spaces/big")
    delete_took = time.monotonic() - deleted_at
    if status != 204:
        failures.append(f"DELETE answered {status}: {raw[:200]!r}")
    status, raw = setup.call("PUT", "/v1/spaces/big", SPACE_PARAMS)
    purged_at = time.monotonic()
    if status != 201:
        failures.append(f"PUT after the delete answered {status}: {raw[:200]!r}")
    time.sleep(2.0)
    stop.set()
    writer.join(60.0)
    print(
        f"DELETE answered in {delete_took * 1000:.1f} ms; the name was free again "
        f"{(purged_at - deleted_at) * 1000:.0f} ms after it was sent"
    )
    print(f"before  {summary([t for s, t in stores if s + t < deleted_at])}")
    print(f"purge   {summary([t for s, t in stores if s + t >= deleted_at and s <= purged_at])}")
    print(f"after   {summary([t for s, t in stores if s > purged_at])}")


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "delete_stall")
    if binary is None or options.patterns < 1 or options.neurons < 1:
        return 1
    rng = random.Random(options.seed)
    directory, server = harness.fresh_server(binary, "delete-stall")
    failures = []
    try:
        server.start(60.0, http_timeout=60.0)
        setup = Connection(server.port, 60.0)
        fill(setup, options, rng)
        delete_under_writes(server, setup, rng, failures)
    except (RuntimeError, harness.NoAnswer) as error:
        failures.append(str(error))
    finally:
        server.stop(10.0)
        harness.keep_or_remove(directory, options.keep)
    for failure in failures[:10]:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
