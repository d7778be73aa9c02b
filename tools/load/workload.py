"""The standard workload for load scripts, read from the one definition (src/workload.rs): the
binary writes it (`dendrite bench --write-workload DIR`) and this module reads the files, so the
figures of load scripts and of `dendrite bench` are about the same patterns and queries.

neurons x patterns of A distinct uniformly random bits of N to store, then queries, half a
stored pattern with round(noise * A) of its bits replaced by other random bits, half a fresh
random pattern. `random_pattern` and `noisy` make ad-hoc live traffic of the same shape (soak,
backups); they are not the workload.
"""

import json
import os
import subprocess
import tempfile

from tools import harness

N, A, NEURONS, PATTERNS, QUERIES, NOISE = 2048, 40, 1000, 100, 10_000, 0.2


def neuron_name(i):
    """Neuron names as the workload writes them: n000017."""
    return f"n{i:06d}"


def random_pattern(rng, n=N, a=A):
    return sorted(rng.sample(range(n), a))


def noisy(rng, active, n=N, noise=NOISE):
    replaced = int(noise * len(active) + 0.5)
    kept = rng.sample(active, len(active) - replaced)
    taken = set(active)
    fresh = set()
    while len(fresh) < replaced:
        bit = rng.randrange(n)
        if bit not in taken:
            fresh.add(bit)
    return sorted(kept + list(fresh))


def _read_lines(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def generate(binary=harness.DEFAULT_BINARY, neurons=NEURONS, patterns=PATTERNS, queries=QUERIES, seed=1):
    """([(neuron, active)], [(active, source neuron or None)]), as `binary` generates them."""
    if neurons * patterns == 0 and queries == 0:
        return [], []  # nothing to ask the binary for (it refuses an empty workload)
    with tempfile.TemporaryDirectory(prefix="dendrite-workload-") as folder:
        command = [
            harness.resolve_binary(binary),
            "bench",
            "--write-workload",
            folder,
            "--neurons",
            str(neurons),
            "--patterns",
            str(neurons * patterns),
            "--queries",
            str(queries),
            "--seed",
            str(seed),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        stores = [(line["neuron"], line["active"]) for line in _read_lines(os.path.join(folder, "store.ndjson"))]
        asked = [(line["active"], line.get("source")) for line in _read_lines(os.path.join(folder, "query.ndjson"))]
    return stores, asked
