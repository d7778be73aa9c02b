"""Crash test: kill -9 the server under concurrent writes, restart it, and check that nothing
acknowledged was lost.

Why it exists: a write the server acknowledged must survive any crash, and one it forgot must
stay forgotten; only a whole process killed mid-load, many times, shows that.

What it does
  - Starts `dendrite serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, waits for GET /healthz and GET /readyz to answer 200, and creates the space
    "crash" (n=2048, a=40, s=24, theta=12).
  - Runs rounds. In each round client threads (16; 64 with --full) store and forget patterns; each
    client owns its neurons ("c{client}n{k}") and a fixed pool of explicit ids ("p{j}"), each id
    always with the same 40 random bits, so a client knows exactly what it did. At a random moment
    the server is killed with SIGKILL.
  - After each kill the server is restarted on the same database file (a new free port); the restart
    must answer /healthz and /readyz 200 within READY_TIMEOUT seconds. Then every id any client
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
    target/test-venv/bin/python -m pytest tools/scenarios/test_crash.py          # CI: 3 kills, 16 clients
    DENDRITE_BINARY=target/release/dendrite target/test-venv/bin/python -m pytest \\
        tools/scenarios/test_crash.py --full -s                                   # 20 kills, 64 clients
On failure the temporary directory (database and server log) is kept and named.
"""

import os
import random
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tools.harness import SPACE_PARAMS, Http, NoAnswer, Server, Violations, random_bits

SPACE = "crash"
NOT_DONE = (503, 507)  # the write was refused: nothing changed, the client may retry
HTTP_TIMEOUT = 5.0
READY_TIMEOUT = 60.0  # seconds a restart may take
NEURONS_PER_CLIENT = 4
VERIFY_WORKERS = 8


@dataclass
class Form:
    """How hard the test pushes: the short form CI runs, or the full one (--full)."""

    kills: int
    clients: int
    ids: int  # per neuron
    kill_after: tuple  # seconds into a round, drawn uniformly
    query_sample: int


SHORT = Form(kills=3, clients=16, ids=8, kill_after=(0.4, 1.5), query_sample=100)
FULL = Form(kills=20, clients=64, ids=16, kill_after=(0.5, 3.0), query_sample=300)


class Item:
    """One (neuron, id) a client owns: fixed bits, and what we know of its state."""

    __slots__ = ("neuron", "id", "bits", "state", "touched")

    def __init__(self, neuron, id_, bits):
        self.neuron, self.id, self.bits = neuron, id_, bits
        self.state = "absent"  # "present", "absent" or "uncertain"
        self.touched = False

    def path(self):
        return f"/v1/spaces/{SPACE}/neurons/{self.neuron}/patterns/{self.id}"


class Stats(Violations):
    """What the clients saw, counted across threads, and the violations found."""

    def __init__(self):
        super().__init__()
        self.acked_stores = self.acked_forgets = 0
        self.refused = 0  # 503/507
        self.uncertain = 0
        self.unsent = 0  # connection refused: the request never left
        self.round_uncertain = self.round_acked = 0

    def tally(self, **counts):
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


def check_pattern_answer(stats, item, status, body, what):
    if (
        not isinstance(body, dict)
        or body.get("neuron") != item.neuron
        or body.get("id") != item.id
        or body.get("active") != item.bits
    ):
        got = {k: body.get(k) for k in ("neuron", "id")} if isinstance(body, dict) else body
        stats.add(f"{what} {item.neuron}/{item.id} answered {status} with another pattern: {got}")
        return False
    return True


def no_answer(item, stats, error):
    """A write without an answer: uncertain if it may have reached the server, else unchanged."""
    if error.sent:
        item.state = "uncertain"
        stats.tally(uncertain=1, round_uncertain=1)
    else:
        stats.tally(unsent=1)
        time.sleep(0.01)


def store(item, http_client, port, stats):
    """A store: a new one for an absent id, an idempotent repeat for a present one."""
    was = item.state
    item.touched = True
    try:
        status, body = http_client.call_json(
            "POST",
            f"/v1/spaces/{SPACE}/neurons/{item.neuron}/patterns",
            {"active": item.bits, "id": item.id},
            port=port,
        )
    except NoAnswer as error:
        no_answer(item, stats, error)
        return
    if status in (200, 201):
        stats.tally(acked_stores=1, round_acked=1)
        item.state = "present"
        expected = 201 if was == "absent" else 200
        if check_pattern_answer(stats, item, status, body, "store") and status != expected:
            stats.add(f"store of {was} {item.neuron}/{item.id} answered {status}, expected {expected}")
    elif status in NOT_DONE:
        stats.tally(refused=1)
    else:
        stats.add(f"store {item.neuron}/{item.id} answered {status}: {body}")
        item.state = "uncertain"


def forget(item, http_client, port, stats):
    try:
        status, body = http_client.call_json("DELETE", item.path(), port=port)
    except NoAnswer as error:
        no_answer(item, stats, error)
        return
    if status == 204:
        stats.tally(acked_forgets=1, round_acked=1)
        item.state = "absent"
    elif status in NOT_DONE:
        stats.tally(refused=1)
    elif status == 404:
        stats.add(f"forget of acknowledged {item.neuron}/{item.id} answered 404: the acknowledged store is lost")
        item.state = "absent"
    else:
        stats.add(f"forget {item.neuron}/{item.id} answered {status}: {body}")
        item.state = "uncertain"


def client_loop(client_items, http_client, port, stats, stop, rng, deadline):
    """Stores and forgets this client's items until `stop` or `deadline`; one request at a time."""
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            candidates = [i for i in client_items if i.state != "uncertain"]
            if not candidates:
                return
            item = rng.choice(candidates)
            if item.state == "absent" or rng.random() < 0.25:
                store(item, http_client, port, stats)
            else:
                forget(item, http_client, port, stats)
    finally:
        http_client.close()


def read_back(item, http_client, port, stats, resolved, lock):
    """One touched item after a restart: its acknowledged state holds; an uncertain one is resolved."""
    try:
        status, body = http_client.call_json("GET", item.path(), port=port)
    except NoAnswer as error:
        stats.add(f"GET {item.neuron}/{item.id} after restart got no answer: {error}")
        return
    if status == 200:
        if not (isinstance(body, dict) and body.get("active") == item.bits):
            stats.add(f"after restart {item.neuron}/{item.id} has other bits than stored")
        if item.state == "absent":
            stats.add(f"after restart {item.neuron}/{item.id} is present although its forget was acknowledged (204)")
        elif item.state == "uncertain":
            with lock:
                resolved["present"] += 1
        item.state = "present"
    elif status == 404:
        if item.state == "present":
            stats.add(f"after restart {item.neuron}/{item.id} is missing although its store was acknowledged")
        elif item.state == "uncertain":
            with lock:
                resolved["absent"] += 1
        item.state = "absent"
    else:
        stats.add(f"GET {item.neuron}/{item.id} after restart answered {status}: {body}")


def query_finds(item, http_client, port, stats):
    """A query with the exact bits of a stored pattern lists its neuron."""
    try:
        status, body = http_client.call_json(
            "POST", f"/v1/spaces/{SPACE}/query", {"active": item.bits, "limit": 100}, port=port
        )
    except NoAnswer as error:
        stats.add(f"query for {item.neuron}/{item.id} got no answer: {error}")
        return
    if status != 200:
        stats.add(f"query for {item.neuron}/{item.id} answered {status}: {body}")
    elif not any(m.get("neuron") == item.neuron for m in body.get("matches", [])):
        stats.add(f"query with the exact bits of {item.neuron}/{item.id} does not list {item.neuron} among its matches")


def in_parallel(http_client, work, items):
    """work(item) for every item, spread over VERIFY_WORKERS threads, each closing its connection."""

    def run(chunk):
        try:
            for item in chunk:
                work(item)
        finally:
            http_client.close()

    with ThreadPoolExecutor(VERIFY_WORKERS) as pool:
        list(pool.map(run, [items[k::VERIFY_WORKERS] for k in range(VERIFY_WORKERS)]))


def verify(items, http_client, port, stats, rng, query_sample):
    """Reads every touched item back and resolves the uncertain ones, then queries a sample of the
    present ones. Returns (checked, queried, resolved)."""
    touched = [i for i in items if i.touched]
    resolved = {"present": 0, "absent": 0}
    lock = threading.Lock()
    in_parallel(http_client, lambda item: read_back(item, http_client, port, stats, resolved, lock), touched)
    present = [i for i in touched if i.state == "present"]
    sample = rng.sample(present, min(query_sample, len(present)))
    in_parallel(http_client, lambda item: query_finds(item, http_client, port, stats), sample)
    return len(touched), len(sample), resolved


def start_with_space(server, http_client):
    """Starts the server and creates the space; the seconds the start took."""
    took = server.start(READY_TIMEOUT, http_timeout=HTTP_TIMEOUT)
    status, body = http_client.call_json("PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS, port=server.port)
    if status not in (200, 201):
        raise RuntimeError(f"creating the space answered {status}: {body}")
    return took


def load_then_kill(server, http_client, owned, stats, rng, form, number):
    """One round's load: every client writing, the server killed at a random moment."""
    stats.round_uncertain = stats.round_acked = 0
    stop = threading.Event()
    deadline = time.monotonic() + form.kill_after[1] + 30
    threads = []
    for items in owned:
        client_rng = random.Random(rng.random())
        args = (items, http_client, server.port, stats, stop, client_rng, deadline)
        thread = threading.Thread(target=client_loop, daemon=True, args=args)
        thread.start()
        threads.append(thread)
    time.sleep(rng.uniform(*form.kill_after))
    server.kill9()
    stop.set()
    for thread in threads:
        thread.join(timeout=HTTP_TIMEOUT + 10)
    if any(t.is_alive() for t in threads):
        stats.add(f"round {number}: client threads still blocked after the kill")


def crash_round(server, http_client, owned, everything, stats, rng, form, number):
    """Load, kill -9, restart, verify; prints the round's line."""
    load_then_kill(server, http_client, owned, stats, rng, form, number)
    took = server.start(READY_TIMEOUT, http_timeout=HTTP_TIMEOUT)
    checked, queried, resolved = verify(everything, http_client, server.port, stats, rng, form.query_sample)
    print(
        f"round {number:2d}: acked this round {stats.round_acked:5d}; so far stores {stats.acked_stores:6d}, "
        f"forgets {stats.acked_forgets:6d}, refused(503/507) {stats.refused}; restart {took:.2f} s; checked "
        f"{checked} ids, {queried} queries; uncertain {stats.round_uncertain} (applied {resolved['present']}, "
        f"not {resolved['absent']}); violations {stats.count}",
        flush=True,
    )
    if stats.round_acked == 0:
        stats.add(f"round {number}: no write was acknowledged before the kill")


def stop_gracefully(server, stats):
    status = server.stop(timeout=30)
    if status != 0:
        stats.add(f"graceful stop (SIGTERM) ended with {status} (None: had to be killed after 30 s)")


def test_acknowledged_writes_survive_kill9(binary, full, seed):
    form = FULL if full else SHORT
    rng = random.Random(seed)
    directory = tempfile.mkdtemp(prefix="dendrite-crash-")
    http_client = Http(timeout=HTTP_TIMEOUT)
    server = Server(binary, os.path.join(directory, "dendrite.db"), os.path.join(directory, "server.log"))
    stats = Stats()
    owned = [
        [Item(f"c{c}n{k}", f"p{j}", random_bits(rng)) for k in range(NEURONS_PER_CLIENT) for j in range(form.ids)]
        for c in range(form.clients)
    ]
    everything = [item for items in owned for item in items]
    print(
        f"crash test: {form.kills} kills, {form.clients} clients x {NEURONS_PER_CLIENT} neurons x {form.ids} ids, "
        f"binary {binary}, data in {directory}"
    )
    started = time.monotonic()
    try:
        print(f"started in {start_with_space(server, http_client):.2f} s")
        for number in range(1, form.kills + 1):
            crash_round(server, http_client, owned, everything, stats, rng, form, number)
        stop_gracefully(server, stats)
    except (RuntimeError, NoAnswer) as error:
        stats.add(f"aborted: {error}")
    finally:
        server.kill9()
        http_client.close()
    print(
        f"done in {time.monotonic() - started:.1f} s: {stats.acked_stores} acknowledged stores, "
        f"{stats.acked_forgets} acknowledged forgets, {stats.refused} refused (503/507), {stats.uncertain} uncertain "
        f"(all resolved after restarts), {stats.unsent} not sent (connection refused after the kill)"
    )
    stats.assert_none(f"crash test (data kept in {directory})", [("server log", server.log_tail(15))])
    shutil.rmtree(directory, ignore_errors=True)
