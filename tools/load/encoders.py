#!/usr/bin/env python3
"""Records against bits: query throughput posting a three-field record, beside posting its code.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file.
  - Creates two spaces holding the same patterns: "records", with an encoder of a temperature
    (16 bits), a time (time of day and hour of week, 8 bits each, Europe/Berlin) and a device
    (8 bits) of 2048, and "bits" (n=2048, a=40, the same s and threshold). Stores --neurons x
    --per-neuron readings (default 1000 x 100) as records in "records", and the codes the
    service made of them as bit lists in "bits".
  - Writes --queries query bodies (default 10,000; half a stored reading moved a little, half a
    fresh reading) twice: as records, and as the codes POST /encode gives for them.
  - Runs wrk (one thread, --connections, --duration seconds) on each, alternating, --rounds
    times (default 3), and prints each rate, the medians and the ratio records / bits.

Exit status: 0 when every request got its expected answer (wrk's non-2xx count included); 1
otherwise. Needs wrk (apt-get install wrk). Traffic goes only to 127.0.0.1; the server is stopped
on exit.

Run from the repository root with a release binary:
    python -m tools.load.encoders
    python -m tools.load.encoders --neurons 100 --duration 5
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys

from tools import harness
from tools.harness import Connection

HERE = os.path.dirname(os.path.abspath(__file__))
ENCODER = {
    "fields": {
        "temperature": {"type": "number", "active_bits": 16, "resolution": 0.25},
        "time": {
            "type": "time",
            "timezone": "Europe/Berlin",
            "time_of_day": {"active_bits": 8},
            "hour_of_week": {"active_bits": 8},
        },
        "device": {"type": "category", "active_bits": 8},
    }
}
SHAPE = {"synapses_per_pattern": 24, "threshold": 12}
BATCH = 1000


def reading(rng, device):
    minute = rng.randrange(7 * 24 * 60)
    day, hour, minute = 1 + minute // 1440, minute // 60 % 24, minute % 60
    return {
        "temperature": round(rng.uniform(20.0, 80.0), 2),
        "time": f"2026-06-{day:02d}T{hour:02d}:{minute:02d}:00+02:00",
        "device": device,
    }


def moved(record):
    """The same reading a little warmer and a few minutes later (same day and hour)."""
    minute = int(record["time"][14:16])
    return dict(
        record,
        temperature=round(record["temperature"] + 0.3, 2),
        time=record["time"][:14] + f"{min(minute + 5, 59):02d}" + record["time"][16:],
    )


def wrk(port, path, bodies, duration, connections):
    command = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "-s",
        os.path.join(HERE, "query.lua"),
        f"http://127.0.0.1:{port}{path}",
        "--",
        bodies,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(errors.group(1)) if errors else 0


def call(connection, method, path, body, expected=200):
    status, answer = connection.call_json(method, path, body)
    if status != expected:
        raise RuntimeError(f"{method} {path} answered {status}: {str(answer)[:200]}")
    return answer


def parse_options():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--per-neuron", type=int, default=100)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args()


def store_readings(connection, options, rng):
    """The same readings in both spaces: as records, and as the codes the records encode to.
    Returns the records stored."""
    call(connection, "PUT", "/v1/spaces/records", {"input_size": 2048, "encoder": ENCODER, **SHAPE}, 201)
    call(connection, "PUT", "/v1/spaces/bits", {"input_size": 2048, "active_bits": 40, **SHAPE}, 201)
    stored = []
    items = [n for n in range(options.neurons) for _ in range(options.per_neuron)]
    for first in range(0, len(items), BATCH):
        batch = [{"neuron": f"pump-{n}", "record": reading(rng, f"pump-{n}")} for n in items[first : first + BATCH]]
        answer = call(connection, "POST", "/v1/spaces/records/patterns", {"patterns": batch})
        codes = [
            {"neuron": item["neuron"], "active": result["active"]} for item, result in zip(batch, answer["results"])
        ]
        call(connection, "POST", "/v1/spaces/bits/patterns", {"patterns": codes})
        stored.extend(item["record"] for item in batch)
    return stored


def write_query_bodies(connection, options, rng, stored, directory):
    """Query bodies for wrk, one file per kind: half moved stored readings, half new ones, each
    posted as its record and as its code. Returns {kind: file}."""
    bodies = {"records": os.path.join(directory, "records.txt"), "bits": os.path.join(directory, "bits.txt")}
    with open(bodies["records"], "w") as records, open(bodies["bits"], "w") as bits:
        for i in range(options.queries):
            fresh = reading(rng, f"pump-{rng.randrange(options.neurons)}") if i % 2 else None
            record = fresh if fresh is not None else moved(rng.choice(stored))
            code = call(connection, "POST", "/v1/spaces/records/encode", {"record": record})
            records.write(json.dumps({"record": record}) + "\n")
            bits.write(json.dumps({"active": code["active"]}) + "\n")
    return bodies


def compare_query_rates(port, bodies, options):
    """Alternating wrk rounds of each kind; prints the medians. Returns the non-2xx answers."""
    rates = {"records": [], "bits": []}
    failed = 0
    for round_number in range(options.rounds):
        for kind in ("records", "bits"):
            path = f"/v1/spaces/{kind}/query"
            rate, errors = wrk(port, path, bodies[kind], options.duration, options.connections)
            failed += errors
            rates[kind].append(rate)
            print(f"round {round_number + 1}: POST query with {kind}: {rate:,.0f} req/s, non-2xx {errors}")
    median = {kind: sorted(values)[len(values) // 2] for kind, values in rates.items()}
    print(
        f"medians: records {median['records']:,.0f} req/s, bits {median['bits']:,.0f} req/s; "
        f"records / bits = {median['records'] / median['bits']:.2f}"
    )
    return failed


def main():
    options = parse_options()
    binary = harness.executable(options.binary, "encoders")
    if binary is None:
        return 1
    if not shutil.which("wrk"):
        print("encoders: wrk is missing (apt-get install wrk)")
        return 1
    rng = random.Random(options.seed)
    directory, server = harness.fresh_server(binary, "encoders", ["--body-limit", str(16 << 20)])
    try:
        server.start(60.0, http_timeout=60.0)
        connection = Connection(server.port, 120.0)
        stored = store_readings(connection, options, rng)
        bodies = write_query_bodies(connection, options, rng, stored, directory)
        connection.close()
        print(f"stored {len(stored):,} readings in each space; {options.queries:,} query bodies of each kind")
        return 1 if compare_query_rates(server.port, bodies, options) else 0
    except (RuntimeError, harness.NoAnswer, subprocess.CalledProcessError) as error:
        print(f"FAILED: {error}")
        return 1
    finally:
        server.stop(10.0)
        harness.keep_or_remove(directory, False)


if __name__ == "__main__":
    sys.exit(main())
