#!/usr/bin/env python3
"""Memory: the engine's estimate of its memory against the process's resident memory (RSS).

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory and `--log-level warn`, waits for it to be ready and reads its RSS (VmRSS in
    /proc/PID/status): the empty process.
  - Creates the space "bench" (n=2048, a=40, s=24, theta=12) and stores --neurons x --per-neuron
    patterns (default 1000 x 100, the standard workload's size) of 40 random bits, in a random
    order, with POST /v1/spaces/bench/patterns in batches of 2000 (each must answer 200).
  - After --settle seconds (default 5), reads GET /v1/spaces/bench (`counts.memory_bytes`, the
    estimate) and the RSS; stops the server, starts it again on the same file, and reads both
    again.
  - Prints, for both moments: the estimate, the RSS, and the ratios RSS / estimate and
    (RSS - empty process's RSS) / estimate.

Exit status: 0 when every request got its expected answer; 1 otherwise. Linux only (it reads
/proc). Traffic goes only to 127.0.0.1; the server is killed on exit.

Run from the repository root with a release binary:
    python -m tools.load.memory
    python -m tools.load.memory --neurons 100 --per-neuron 100
"""

import random
import sys
import time

from tools import harness
from tools.harness import SPACE_PARAMS, Connection, random_bits

BATCH = 2000
MIB = 1 << 20


def resident(pid, field="VmRSS"):
    """A memory figure of /proc/PID/status in bytes: VmRSS, or its parts RssAnon and RssFile."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/PID/status")


def report(server, when, empty):
    status, body = Connection(server.port, 60.0).call_json("GET", "/v1/spaces/bench")
    if status != 200:
        raise RuntimeError(f"GET /v1/spaces/bench answered {status}")
    estimate, rss = body["counts"]["memory_bytes"], resident(server.process.pid)
    print(
        f"{when:14s} estimate {estimate / MIB:8.1f} MiB  RSS {rss / MIB:8.1f} MiB  "
        f"RSS/estimate {rss / estimate:5.2f}  (RSS - empty)/estimate {(rss - empty) / estimate:5.2f}  "
        f"(anonymous {resident(server.process.pid, 'RssAnon') / MIB:.1f} MiB, "
        f"files {resident(server.process.pid, 'RssFile') / MIB:.1f} MiB)"
    )


def main():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--neurons", type=int, default=1000)
    parser.add_argument("--per-neuron", type=int, default=100)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before reading RSS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database (printed) for later restarts")
    options = parser.parse_args()
    binary = harness.executable(options.binary, "memory")
    if binary is None or options.neurons < 1 or options.per_neuron < 1:
        return 1
    rng = random.Random(options.seed)
    directory, server = harness.fresh_server(binary, "memory")
    try:
        server.start(60.0, http_timeout=60.0)
        empty = resident(server.process.pid)
        print(
            f"empty process: RSS {empty / MIB:.1f} MiB (anonymous {resident(server.process.pid, 'RssAnon') / MIB:.1f} MiB)"
        )
        connection = Connection(server.port, 60.0)
        status, raw = connection.call("PUT", "/v1/spaces/bench", SPACE_PARAMS)
        if status != 201:
            raise RuntimeError(f"creating the space answered {status}: {raw[:200]!r}")
        items = [n for n in range(options.neurons) for _ in range(options.per_neuron)]
        rng.shuffle(items)
        for first in range(0, len(items), BATCH):
            body = {"patterns": [{"neuron": f"n{n}", "active": random_bits(rng)} for n in items[first : first + BATCH]]}
            status, raw = connection.call("POST", "/v1/spaces/bench/patterns", body)
            if status != 200:
                raise RuntimeError(f"a batch answered {status}: {raw[:200]!r}")
        connection.close()
        time.sleep(options.settle)
        report(server, f"{len(items):,} stored", empty)
        server.stop(10.0)
        server.start(300.0, http_timeout=60.0)
        time.sleep(options.settle)
        report(server, "after restart", empty)
    except (RuntimeError, harness.NoAnswer) as error:
        print(f"FAILED: {error}")
        return 1
    finally:
        server.stop(10.0)
        harness.keep_or_remove(directory, options.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
