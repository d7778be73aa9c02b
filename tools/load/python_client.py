#!/usr/bin/env python3
"""The Python client's batch speed beside the raw HTTP tools/load/run.py measures, in one run.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file and a 16 MiB body
    limit, as tools/load/run.py does.
  - Generates the standard workload's 100,000 patterns (tools/load/workload.py: 1000 neurons x 100
    patterns of 40 random bits of 2048).
  - For --rounds rounds (default 3), each into fresh spaces, alternating: stores them with
    tools/load/run.py's own `store_batches` (bodies encoded beforehand, answers read but not decoded),
    the same asking for short results (`Prefer: return=minimal`, as the client does), with
    `Client.store_many` and with `AsyncClient.store_many` (lists of (neuron, bits) in, typed
    results out), all in batches of --batch (default 1000) over one connection.
  - Prints each rate, the medians, and each client's median over the raw one.

Exit status: 0 when the sync client's median reaches --floor (default 0.7) of the raw one.
Traffic goes only to 127.0.0.1; the server is stopped on exit.

Run from the repository root with a release binary and the client installed
(pip install ./clients/python):
    python -m tools.load.python_client
    python -m tools.load.python_client --rounds 5 --neurons 200
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request

import dendrite

from tools import harness
from tools.load import run, workload

HERE = os.path.dirname(os.path.abspath(__file__))


def client_rate(url, space, stores, batch):
    with dendrite.Client(url, timeout=120) as client:
        client.create_space(space, **harness.SPACE_PARAMS)
        started = time.monotonic()
        results = client.store_many(space, stores, batch_size=batch)
        elapsed = time.monotonic() - started
    assert len(results) == len(stores) and all(result.created for result in results)
    return len(stores) / elapsed


def async_client_rate(url, space, stores, batch):
    async def go():
        async with dendrite.AsyncClient(url, timeout=120) as client:
            await client.create_space(space, **harness.SPACE_PARAMS)
            started = time.monotonic()
            results = await client.store_many(space, stores, batch_size=batch)
            elapsed = time.monotonic() - started
        assert len(results) == len(stores) and all(result.created for result in results)
        return len(stores) / elapsed

    return asyncio.run(go())


def raw_rate(space, stores, batch):
    run.call("PUT", f"/v1/spaces/{space}", harness.SPACE_PARAMS)
    return run.store_batches(stores, space=space, batch=batch)


def raw_minimal_rate(space, stores, batch):
    """tools/load/run.py's way, asking for the short results the client asks for: the server's part
    of the client's rate."""
    run.call("PUT", f"/v1/spaces/{space}", harness.SPACE_PARAMS)
    bodies = [
        json.dumps({"patterns": [{"neuron": n, "active": a} for n, a in stores[i : i + batch]]}).encode()
        for i in range(0, len(stores), batch)
    ]
    started = time.monotonic()
    for body in bodies:
        request = urllib.request.Request(
            run.BASE + f"/v1/spaces/{space}/patterns",
            data=body,
            method="POST",
            headers={"content-type": "application/json", "prefer": "return=minimal"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200, response.status
            response.read()
    return len(stores) / (time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=harness.DEFAULT_BINARY)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--neurons", type=int, default=workload.NEURONS)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--floor", type=float, default=0.7)
    options = parser.parse_args()
    stores, _ = workload.generate(options.binary, neurons=options.neurons, queries=0)
    directory, server = harness.fresh_server(
        harness.resolve_binary(options.binary), "python-client", ["--body-limit", str(16 << 20)]
    )
    rates = {
        "raw (tools/load/run.py)": [],
        "raw, return=minimal": [],
        "Client.store_many": [],
        "AsyncClient.store_many": [],
    }
    try:
        server.start()
        url = f"http://127.0.0.1:{server.port}"
        run.BASE = url
        for round in range(options.rounds):
            measured = {
                "raw (tools/load/run.py)": raw_rate(f"raw-{round}", stores, options.batch),
                "raw, return=minimal": raw_minimal_rate(f"minimal-{round}", stores, options.batch),
                "Client.store_many": client_rate(url, f"sync-{round}", stores, options.batch),
                "AsyncClient.store_many": async_client_rate(url, f"async-{round}", stores, options.batch),
            }
            for what, rate in measured.items():
                rates[what].append(rate)
            print(f"round {round + 1}: " + ", ".join(f"{what} {rate:,.0f}/s" for what, rate in measured.items()))
    finally:
        server.stop(30)
        harness.keep_or_remove(directory, False)
    medians = {what: statistics.median(values) for what, values in rates.items()}
    raw = medians["raw (tools/load/run.py)"]
    print(f"{len(stores):,} patterns in batches of {options.batch}, medians of {options.rounds} rounds:")
    for what, median in medians.items():
        print(f"  {what:24s} {median:>10,.0f} patterns/s   {median / raw:.2f} of raw")
    return 0 if medians["Client.store_many"] >= options.floor * raw else 1


if __name__ == "__main__":
    sys.exit(main())
