#!/usr/bin/env python3
"""Crash test: kill -9 the server under concurrent writes, restart it, and check that nothing
acknowledged was lost.

What it does
  - Starts `dendrite serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, waits for GET /healthz and GET /readyz to answer 200, and creates the space
    "crash" (n=2048, a=40, s=24, theta=12).
  - Runs rounds. In each round CLIENTS threads (64 by default) store and forget patterns; each
    client owns its neurons ("c{client}n{k}") and a fixed pool of explicit ids ("p{j}"), each id
    always with the same 40 random bits, so a client knows exactly what it did. At a random moment
    the server is killed with SIGKILL.
  - After each kill the server is restarted on the same database file (a new free port); the restart
    must answer /healthz and /readyz 200 within --ready-timeout seconds. Then every id any client
    ever touched is read back:
      * the last acknowledged operation was a store (201/200)  -> GET answers 200 with the same bits;
      * the last acknowledged operation was a forget (204)      -> GET answers 404;
      * the last request got no answer (in flight at the kill, a connection error or a timeout) ->
        "uncertain": either state is accepted, and the real state is read back and recorded before
        the next round. An uncertain id is not touched again until that resolution, so a request
        still queued in a dying server cannot change it behind our back.
    A 503 or 507 answer means the write was not done (the state stays what it was). Queries with the
    exact bits of a sample of stored patterns must list their neuron among the matches.
  - Within a round it also checks each answer: a store of a known-absent id answers 201, a store of
    a known-present id 200, both with the same neuron, id and bits; a forget of a present id 204.
  - Finally the server is stopped with SIGTERM and must exit 0 within 30 s.

Every loop is bounded (a round lasts at most a few seconds, every request has a short timeout,
every wait has a deadline); every server started is killed on exit. Traffic goes only to 127.0.0.1.

Run (from the repository root):
    python3 scripts/crash_test.py                                  # 20 kills, 64 clients, release
    python3 scripts/crash_test.py --short --binary target/debug/dendrite   # CI: 3 kills, 16 clients
Options: --kills N, --clients N, --seed N, --keep (keep the temporary directory), --timeout S.
Prints one line per round; exits 0 when every check held, 1 otherwise (listing the violations).
"""
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "load"))
from harness import SPACE_PARAMS, Http, NoAnswer, Server, random_bits  # noqa: E402
import harness  # noqa: E402

SPACE = "crash"
NOT_DONE = (503, 507)  # the write was refused: nothing changed, the client may retry
MAX_VIOLATIONS_KEPT = 200


class Item:
    """One (neuron, id) a client owns: fixed bits, and what we know of its state."""
    __slots__ = ("neuron", "id", "bits", "state", "touched")

    def __init__(self, neuron, id_, bits):
        self.neuron, self.id, self.bits = neuron, id_, bits
        self.state = "absent"  # "present", "absent" or "uncertain"
        self.touched = False

    def path(self):
        return f"/v1/spaces/{SPACE}/neurons/{self.neuron}/patterns/{self.id}"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked_stores = 0
        self.acked_forgets = 0
        self.refused = 0  # 503/507
        self.uncertain = 0
        self.unsent = 0  # connection refused: the request never left
        self.round_uncertain = 0
        self.round_acked = 0
        self.violations = []
        self.violation_count = 0

    def add(self, **counts):
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def violate(self, message):
        with self.lock:
            self.violation_count += 1
            if len(self.violations) < MAX_VIOLATIONS_KEPT:
                self.violations.append(message)


def check_pattern_answer(stats, item, status, body, what):
    if not isinstance(body, dict) or body.get("neuron") != item.neuron or body.get("id") != item.id \
            or body.get("active") != item.bits:
        got = {k: body.get(k) for k in ("neuron", "id")} if isinstance(body, dict) else body
        stats.violate(f"{what} {item.neuron}/{item.id} answered {status} with another pattern: {got}")
        return False
    return True


def no_answer(item, stats, error):
    """A write without an answer: uncertain if it may have reached the server, else unchanged."""
    if error.sent:
        item.state = "uncertain"
        stats.add(uncertain=1, round_uncertain=1)
    else:
        stats.add(unsent=1)
        time.sleep(0.01)


def client_loop(client_items, http_client, server_port, stats, stop, rng, deadline):
    """Stores and forgets this client's items until `stop` or `deadline`; one request at a time."""
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            candidates = [i for i in client_items if i.state != "uncertain"]
            if not candidates:
                return
            item = rng.choice(candidates)
            if item.state == "absent" or rng.random() < 0.25:
                # a store: a new one for an absent id, an idempotent repeat for a present one
                was = item.state
                item.touched = True
                try:
                    status, body = http_client.call_json(
                        "POST", f"/v1/spaces/{SPACE}/neurons/{item.neuron}/patterns",
                        {"active": item.bits, "id": item.id}, port=server_port)
                except NoAnswer as error:
                    no_answer(item, stats, error)
                    continue
                if status in (200, 201):
                    stats.add(acked_stores=1, round_acked=1)
                    item.state = "present"
                    if check_pattern_answer(stats, item, status, body, "store"):
                        expected = 201 if was == "absent" else 200
                        if status != expected:
                            stats.violate(f"store of {was} {item.neuron}/{item.id} answered {status}, "
                                          f"expected {expected}")
                elif status in NOT_DONE:
                    stats.add(refused=1)
                else:
                    stats.violate(f"store {item.neuron}/{item.id} answered {status}: {body}")
                    item.state = "uncertain"
            else:
                try:
                    status, body = http_client.call_json("DELETE", item.path(), port=server_port)
                except NoAnswer as error:
                    no_answer(item, stats, error)
                    continue
                if status == 204:
                    stats.add(acked_forgets=1, round_acked=1)
                    item.state = "absent"
                elif status in NOT_DONE:
                    stats.add(refused=1)
                elif status == 404:
                    stats.violate(f"forget of acknowledged {item.neuron}/{item.id} answered 404: "
                                  f"the acknowledged store is lost")
                    item.state = "absent"
                else:
                    stats.violate(f"forget {item.neuron}/{item.id} answered {status}: {body}")
                    item.state = "uncertain"
    finally:
        http_client.close()


def verify(items, http_client, port, stats, rng, query_sample, workers):
    """Reads every touched item back; resolves the uncertain ones. Returns (checked, resolved)."""
    touched = [i for i in items if i.touched]
    resolved = {"present": 0, "absent": 0}
    lock = threading.Lock()

    def check(item):
        try:
            status, body = http_client.call_json("GET", item.path(), port=port)
        except NoAnswer as error:
            stats.violate(f"GET {item.neuron}/{item.id} after restart got no answer: {error}")
            return
        if status == 200:
            same = isinstance(body, dict) and body.get("active") == item.bits
            if not same:
                stats.violate(f"after restart {item.neuron}/{item.id} has other bits than stored")
            if item.state == "absent":
                stats.violate(f"after restart {item.neuron}/{item.id} is present although its forget "
                              f"was acknowledged (204)")
            elif item.state == "uncertain":
                with lock:
                    resolved["present"] += 1
            item.state = "present"
        elif status == 404:
            if item.state == "present":
                stats.violate(f"after restart {item.neuron}/{item.id} is missing although its store "
                              f"was acknowledged")
            elif item.state == "uncertain":
                with lock:
                    resolved["absent"] += 1
            item.state = "absent"
        else:
            stats.violate(f"GET {item.neuron}/{item.id} after restart answered {status}: {body}")

    def run(chunk):
        try:
            for item in chunk:
                check(item)
        finally:
            http_client.close()

    chunks = [touched[k::workers] for k in range(workers)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, chunks))

    present = [i for i in touched if i.state == "present"]
    sample = rng.sample(present, min(query_sample, len(present)))

    def query(chunk):
        try:
            for item in chunk:
                try:
                    status, body = http_client.call_json("POST", f"/v1/spaces/{SPACE}/query",
                                                         {"active": item.bits, "limit": 100}, port=port)
                except NoAnswer as error:
                    stats.violate(f"query for {item.neuron}/{item.id} got no answer: {error}")
                    continue
                if status != 200:
                    stats.violate(f"query for {item.neuron}/{item.id} answered {status}: {body}")
                elif not any(m.get("neuron") == item.neuron for m in body.get("matches", [])):
                    stats.violate(f"query with the exact bits of {item.neuron}/{item.id} does not list "
                                  f"{item.neuron} among its matches")
        finally:
            http_client.close()

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(query, [sample[k::workers] for k in range(workers)]))
    return len(touched), len(sample), resolved


def main():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--kills", type=int, default=None, help="kill -9 rounds (default 20, 3 with --short)")
    parser.add_argument("--clients", type=int, default=None, help="client threads (default 64, 16 with --short)")
    parser.add_argument("--neurons", type=int, default=4, help="neurons per client")
    parser.add_argument("--ids", type=int, default=None, help="ids per neuron (default 16, 8 with --short)")
    parser.add_argument("--short", action="store_true", help="CI: 3 kills, 16 clients, short rounds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=5.0, help="HTTP timeout in seconds")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds a restart may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    options = parser.parse_args()
    kills = options.kills if options.kills is not None else (3 if options.short else 20)
    clients = options.clients if options.clients is not None else (16 if options.short else 64)
    ids = options.ids if options.ids is not None else (8 if options.short else 16)
    kill_after = (0.4, 1.5) if options.short else (0.5, 3.0)
    seed = options.seed if options.seed is not None else random.randrange(1 << 30)
    binary = harness.executable(options.binary, "crash_test")
    if binary is None:
        return 1

    harness.exit_on_sigterm()  # so that the finally below kills the server
    rng = random.Random(seed)
    directory = tempfile.mkdtemp(prefix="dendrite-crash-")
    http_client = Http(timeout=options.timeout)
    server = Server(binary, os.path.join(directory, "dendrite.db"), os.path.join(directory, "server.log"))
    stats = Stats()
    owned = [[Item(f"c{c}n{k}", f"p{j}", random_bits(rng)) for k in range(options.neurons) for j in range(ids)]
             for c in range(clients)]
    everything = [item for items in owned for item in items]
    print(f"crash test: {kills} kills, {clients} clients x {options.neurons} neurons x {ids} ids, seed {seed}, "
          f"binary {binary}, data in {directory}")
    failed_early = None
    started = time.monotonic()
    try:
        took = server.start(options.ready_timeout, http_timeout=options.timeout)
        status, body = http_client.call_json("PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS, port=server.port)
        if status not in (200, 201):
            raise RuntimeError(f"creating the space answered {status}: {body}")
        print(f"started in {took:.2f} s")
        for round_number in range(1, kills + 1):
            stats.round_uncertain = stats.round_acked = 0
            stop = threading.Event()
            round_deadline = time.monotonic() + kill_after[1] + 30
            threads = []
            for c in range(clients):
                t = threading.Thread(target=client_loop, daemon=True, args=(
                    owned[c], http_client, server.port, stats, stop, random.Random(rng.random()), round_deadline))
                t.start()
                threads.append(t)
            time.sleep(rng.uniform(*kill_after))
            server.kill9()
            stop.set()
            for t in threads:
                t.join(timeout=options.timeout + 10)
            if any(t.is_alive() for t in threads):
                stats.violate(f"round {round_number}: client threads still blocked after the kill")
            took = server.start(options.ready_timeout, http_timeout=options.timeout)
            checked, queried, resolved = verify(everything, http_client, server.port, stats, rng,
                                                query_sample=100 if options.short else 300, workers=8)
            print(f"round {round_number:2d}: acked this round {stats.round_acked:5d}; so far stores "
                  f"{stats.acked_stores:6d}, forgets {stats.acked_forgets:6d}, refused(503/507) {stats.refused}; "
                  f"restart {took:.2f} s; checked {checked} ids, {queried} queries; uncertain "
                  f"{stats.round_uncertain} (applied {resolved['present']}, not {resolved['absent']}); "
                  f"violations {stats.violation_count}")
            if stats.round_acked == 0:
                stats.violate(f"round {round_number}: no write was acknowledged before the kill")
        status = server.stop(timeout=30)
        if status != 0:
            stats.violate(f"graceful stop (SIGTERM) ended with {status} (None: had to be killed after 30 s)")
    except (RuntimeError, NoAnswer) as error:
        failed_early = str(error)
    finally:
        server.kill9()
        http_client.close()
    elapsed = time.monotonic() - started

    print(f"done in {elapsed:.1f} s: {stats.acked_stores} acknowledged stores, {stats.acked_forgets} acknowledged "
          f"forgets, {stats.refused} refused (503/507), {stats.uncertain} uncertain (all resolved after restarts), "
          f"{stats.unsent} not sent (connection refused after the kill)")
    if failed_early:
        stats.violate(f"aborted: {failed_early}")
    if stats.violation_count:
        print(f"FAILED: {stats.violation_count} violation(s):")
        for message in stats.violations:
            print(f"  - {message}")
        if stats.violation_count > len(stats.violations):
            print(f"  ... and {stats.violation_count - len(stats.violations)} more")
        server.print_log_tail(15)
        print(f"data kept in {directory}")
        return 1
    harness.keep_or_remove(directory, options.keep)
    print("OK: every acknowledged store survived every kill -9, every acknowledged forget stayed forgotten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
