"""The standard workload, as src/workload.rs defines it (the README's Performance section quotes
figures for it), for load scripts: neurons x patterns of A distinct uniformly random bits of N to
store, then queries, half a stored pattern with round(noise * A) of its bits replaced by other
random bits, half a fresh random pattern. (Python's generator, not the Rust one: the same
definition, other random numbers.)"""

import random

N, A, NEURONS, PATTERNS, QUERIES, NOISE = 2048, 40, 1000, 100, 10_000, 0.2


def neuron_name(i):
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


def generate(neurons=NEURONS, patterns=PATTERNS, queries=QUERIES, seed=1):
    """([(neuron, active)], [(active, source neuron or None)])."""
    rng = random.Random(seed)
    stores = [(neuron_name(i), random_pattern(rng)) for i in range(neurons) for _ in range(patterns)]
    asked = []
    for q in range(queries):
        if q % 2 == 0:
            neuron, active = stores[rng.randrange(len(stores))]
            asked.append((noisy(rng, active), neuron))
        else:
            asked.append((random_pattern(rng), None))
    return stores, asked
