"""Multi-replica test: several `dendrite serve` processes on one PostgreSQL database take writes
concurrently, converge to identical answers, match SQLite fed the same log, and lose no
acknowledged write to a kill -9.

Why it exists: replicas share nothing but the database's change log; only real processes,
written to at once and killed mid-load, show that they agree and that what one acknowledged
every other serves.

The stages (issue 12's "Multi-replica tests"), one test each, in this order; a test run alone
runs the stages before it first (they build the state it checks), on one database per module:
  1. test_replicas_start_and_serve_the_space: creates a fresh database (psql ADMIN_URL: CREATE
     DATABASE, a random name) and starts three replicas on it at once (`dendrite serve --listen
     127.0.0.1:PORT --database-url URL --log-level warn`, free ports; concurrent start-ups run the
     migrations together); each must answer /healthz and /readyz 200. The space "replicas"
     (n=2048, a=40) is created through one replica; every other one must serve it with
     ?min_sequence= the creation's sequence.
  2. test_writes_spread_over_replicas: CLIENTS threads (12) each send their requests to replicas
     chosen at random: single stores with explicit ids (40 random bits of 2048, fixed per id),
     batches (POST /v1/spaces/{space}/patterns), forgets, and one neuron deletion (the neuron
     "doomed", deleted while the others are being written). Most writes go to three "hot" neurons
     that every client writes at once, so stores to the same neuron (and of the same ids) arrive
     concurrently at different replicas. Ids are either shared (stored by anyone, never forgotten:
     at most one store of each may answer "created") or owned by one client (stored and forgotten
     by it alone, so it knows their state, as in test_crash.py). Every acknowledged write must
     carry a `Dendrite-Sequence` header, and a write of an owned id that changed it must carry a
     sequence no lower than the client's previous acknowledged write of that id.
     Read-your-writes (stage 3, during stages 2 and 7): for a sample of acknowledged stores and
     forgets, a GET of the pattern on another replica with ?min_sequence=N (N: the write's
     sequence) must answer 200 with the same bits (404 after a forget) without waiting out the
     5 s bound (503).
  4. test_replicas_converge_to_identical_answers: every replica's /v1/stats must reach
     applied_sequence == head_sequence, the same on all, at least the highest acknowledged
     sequence, equal to the log's last seq, within CONVERGE_TIMEOUT s. Then every id is read back
     on every replica (acknowledged stores present with their bits, acknowledged forgets and the
     deleted neuron's ids absent), and the replicas must answer identically: 200 queries (half the
     exact bits of stored ids, half noisy or random, some with another threshold), the space, the
     neuron listing, every neuron (all pages of its segments and their pattern ids) and a sample
     of patterns (with their segment numbers), each whole JSON body compared.
  5. test_fresh_replica_answers_alike: a fresh fourth replica started on the same database
     answers all of that identically too.
  6. test_sqlite_fed_the_log_answers_alike: the change log is read with psql (`SELECT seq, kind,
     body::text FROM changes ORDER BY seq`); every acknowledged write must be visible in it at its
     sequence N (the log's last change by seq N to the pattern is that store, with those bits, or
     a forget; also for "already stored" answers), and the log must end where the replicas
     converged. A dendrite on a fresh sqlite:// file replays the log over HTTP (create_space: PUT
     the space with the logged parameters; store: POST each pattern with its id and bits, in the
     listed order; forget, delete_neuron, delete_space: the DELETE); each store must land on the
     segment with the synapses the log names, and then the SQLite server must answer the same
     queries, space, neurons and patterns identically.
  7. test_kill9_loses_no_acknowledged_write: the clients write to all three replicas again; one
     replica, chosen at random, gets SIGKILL mid-load, and the clients carry on with the two
     others. Every write any replica acknowledged must then be readable from the survivors with
     ?min_sequence= its sequence, and from the killed replica once restarted on the same
     database. A write that got no answer is "uncertain": either state is accepted, the real one
     is read back (and must be the same on every replica).
  8. test_restarted_replica_catches_up: stage 4's convergence and identical answers on all three;
     the log also holds every write acknowledged in stage 7, the killed replica's included.
     Finally SIGTERM must stop every replica with status 0 within 30 s. The database is dropped
     when the module ends (kept with DENDRITE_TEST_KEEP=1).
  9. test_shard_groups (on its own, on a second fresh database): two replicas started with
     `--spaces` set to the first DENDRITE_SPACES list of docker-compose.postgres.yml and one with
     the second. Requests are routed by the rule of deploy/nginx.conf's `map $uri $shard_group`
     (read from the file, and checked to agree with the compose lists on names of every kind):
     three spaces on both sides of the split are created and written in batches through it, each
     batch read back through it with min_sequence. Every replica must hold exactly its group's
     spaces (the space list, counts and memory of /v1/stats), and answer a read of the other
     group's space, or creating one there, with a 404 naming --spaces.
The test_helper_* tests check the pure helpers, without a server or PostgreSQL.

Every request has a timeout (10 s: a min_sequence read may wait 5 s), every wait a deadline;
every process started is killed when the module ends, also on failure. Traffic goes only to
127.0.0.1 and to the PostgreSQL server of DENDRITE_TEST_POSTGRES_URL (the tests needing it are
skipped when it is unset). The write phases are bounded (WRITE_SECONDS, MAX_WRITES) so that the
whole module stays well under two minutes with a debug binary on two cores.

Run (from the repository root):
    url=$(scripts/pg_cluster start "$(mktemp -d)")   # or any PostgreSQL you may create databases on
    DENDRITE_TEST_POSTGRES_URL="$url" target/test-venv/bin/python -m pytest tools/scenarios/test_replicas.py
    DENDRITE_TEST_POSTGRES_URL="$url" target/test-venv/bin/python -m pytest \\
        tools/scenarios/test_replicas.py::test_shard_groups
"""

import copy
import json
import os
import random
import re
import secrets
import subprocess
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tools import harness
from tools.harness import ROOT, Connection, Http, N, NoAnswer, Server, Violations, random_bits, request_once

SPACE = "replicas"
SPACE_PARAMS = {"input_size": 2048, "active_bits": 40}
HOT = ["hot-0", "hot-1", "hot-2"]  # every client writes these at once
DOOMED = "doomed"  # written in stage 2, then deleted while the others are written
SEQUENCE_HEADER = "dendrite-sequence"  # harness.Answer has lower-case header names
NOT_DONE = (503, 507)  # a write refused: nothing changed, the client may retry
# Fields left out when answers are compared. `memory_bytes` (in the space's counts) is the
# engine's estimate of the memory it holds, computed from the capacities of its vectors: those
# depend on the allocation history (grown by writes one at a time on a replica that followed the
# log, sized at once on one that loaded the tables), not on the state. Nothing else in the
# compared answers (queries, the space, neurons, patterns) depends on time or history.
VOLATILE_FIELDS = frozenset({"memory_bytes"})
QUERY_LIMIT = 100


@dataclass(frozen=True)
class Options:
    """How hard the test pushes, and how long it waits."""

    clients: int = 12  # client threads
    write_seconds: float = 6.0  # the longest write phase
    max_writes: int = 1500  # patterns written per write phase at most
    timeout: float = 10.0  # HTTP timeout: a min_sequence read may wait 5 s
    ready_timeout: float = 60.0  # seconds a start-up may take
    converge_timeout: float = 30.0  # seconds the replicas may take to converge after the writes stop
    keep: bool = False  # keep the databases and the temporary directory (DENDRITE_TEST_KEEP=1)


def make_replica(name, binary, url, log_path, spaces=None):
    """One `BINARY serve` on a full database URL (postgres:// or sqlite://). DENDRITE_* variables
    of this environment are not passed on (an API key there would lock the test out)."""
    extra = ["--spaces", spaces] if spaces else []
    return Server(binary, None, log_path, extra_args=extra, database_url=url, name=name, clean_env=True)


# ---------------------------------------------------------------------------------------------
# Pure helpers (exercised by --self-check)


def database_url(admin_url, name):
    """ADMIN_URL with its path (the database) replaced by NAME; user, host, port and ?query kept."""
    parts = urllib.parse.urlsplit(admin_url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.netloc:
        raise ValueError(f"not a postgres:// URL: {admin_url}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name, safe="")))


def strip_volatile(value, volatile=VOLATILE_FIELDS):
    """A copy of a decoded JSON value without the keys in `volatile`, at any depth."""
    if isinstance(value, dict):
        return {k: strip_volatile(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [strip_volatile(v, volatile) for v in value]
    return value


def first_difference(a, b, path="$"):
    """None when a == b, else (path, value in a, value in b) of the first difference found."""
    if type(a) is not type(b):
        return path, a, b
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}", a.get(key, "<missing>"), b.get(key, "<missing>")
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        if len(a) != len(b):
            return f"{path}.length", len(a), len(b)
        return None
    return None if a == b else (path, a, b)


def short(value, limit=160):
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def compare_snapshots(reference_label, reference, label, other, max_reported=5):
    """Messages for every key whose answer differs between two snapshots (the first few in
    detail, then a count)."""
    messages = []
    differing = 0
    for key in sorted(set(reference) | set(other)):
        if key not in other or key not in reference:
            found = (
                key,
                "<asked>" if key in reference else "<not asked>",
                "<asked>" if key in other else "<not asked>",
            )
        else:
            found = first_difference(reference[key], other[key])
        if found is None:
            continue
        differing += 1
        if len(messages) < max_reported:
            where, mine, theirs = found
            messages.append(
                f"{label} answers {key} differently from {reference_label} at {where}: "
                f"{short(theirs)} instead of {short(mine)}"
            )
    if differing > max_reported:
        messages.append(f"{label}: {differing - max_reported} more answers differ from {reference_label}")
    return messages


def parse_sequence(headers):
    """The Dendrite-Sequence header as an int, or None when absent or not an unsigned integer."""
    value = headers.get(SEQUENCE_HEADER)
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def parse_changes(text):
    """psql -At output of `SELECT seq, kind, body::text ...` -> [(seq, kind, body dict)]."""
    changes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        seq, kind, body = line.split("|", 2)  # names have no '|'; the JSON body is the rest
        changes.append((int(seq), kind, json.loads(body)))
    return changes


def noisy(bits, rng, fraction):
    """`bits` with `fraction` of them (rounded) replaced by other random bits below N; sorted."""
    keep = set(rng.sample(bits, len(bits) - round(len(bits) * fraction)))
    while len(keep) < len(bits):
        keep.add(rng.randrange(N))
    return sorted(keep)


def with_min_sequence(path, sequence):
    if not sequence:
        return path
    return f"{path}{'&' if '?' in path else '?'}min_sequence={sequence}"


def describe_log(changes):
    kinds = {}
    for _, kind, _ in changes:
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "empty"


def index_log(changes):
    """The log's changes to the test's space by what they touch: (events: (neuron, id) -> [(seq,
    "store" | "forget", bits)], deletions: neuron -> [seq] (None: the whole space), creations:
    [seq])."""
    events = {}  # (neuron, id) -> [(seq, "store" | "forget", bits)]
    deletions = {}  # neuron -> [seq]
    creations = []
    for seq, kind, body in changes:
        if kind == "store":
            for p in body.get("patterns", []):
                if p.get("space") == SPACE:
                    events.setdefault((p.get("neuron"), p.get("id")), []).append((seq, "store", p.get("active")))
        elif body.get("space") != SPACE:
            continue
        elif kind == "forget":
            events.setdefault((body.get("neuron"), body.get("id")), []).append((seq, "forget", None))
        elif kind == "delete_neuron":
            deletions.setdefault(body.get("neuron"), []).append(seq)
        elif kind == "create_space":
            creations.append(seq)
        elif kind == "delete_space":
            deletions.setdefault(None, []).append(seq)  # every neuron of the space
    return events, deletions, creations


def log_mismatches(changes, acks):
    """Checks each acknowledged write against the log: a write acknowledged with sequence N is
    visible at N, so the log's last change by seq N concerning its pattern (a store or forget of
    it, a deletion of its neuron) must be what was acknowledged. This holds whether N is the
    write's own change or a later one (a group commit's number), and for "already stored" answers
    (the sequence the replica had applied: the pattern was there). `acks`: [(seq, kind, neuron,
    id, bits)], kind "store" (created or already stored), "forget", "delete_neuron" or
    "create_space". Returns violation messages."""
    events, deletions, creations = index_log(changes)

    def last_word(neuron, id_, n):
        """(seq, what, bits) of the last change by seq n about the pattern; (0, "nothing", None)."""
        latest = (0, "nothing", None)
        for event in events.get((neuron, id_), ()):
            if latest[0] <= event[0] <= n:
                latest = event
        for seq in deletions.get(neuron, []) + deletions.get(None, []):
            if latest[0] < seq <= n:
                latest = (seq, "deletion of the neuron", None)
        return latest

    messages = []
    for seq, kind, neuron, id_, bits in acks:
        what = f"{kind} of {neuron or SPACE}{'/' + id_ if id_ else ''} acknowledged with sequence {seq}"
        if kind == "store":
            at, word, logged = last_word(neuron, id_, seq)
            if word != "store":
                messages.append(
                    f"{what}: by seq {seq} the log's last change to it is "
                    f"{'none' if not at else f'the {word} at seq {at}'}, not a store"
                )
            elif logged != bits:
                messages.append(f"{what}: the log stores other bits for it (seq {at})")
        elif kind == "forget":
            at, word, _ = last_word(neuron, id_, seq)
            if word == "store" or not any(e[1] == "forget" and e[0] <= seq for e in events.get((neuron, id_), ())):
                messages.append(
                    f"{what}: the log has no forget of it by seq {seq} "
                    f"(its last change by then: {word}{f' at seq {at}' if at else ''})"
                )
        elif kind == "delete_neuron":
            if not any(d <= seq for d in deletions.get(neuron, [])):
                messages.append(f"{what}: the log has no deletion of that neuron by seq {seq}")
        elif kind == "create_space":
            if not any(c <= seq for c in creations):
                messages.append(f"{what}: the log has no creation of the space by seq {seq}")
    return messages


# ---------------------------------------------------------------------------------------------
# PostgreSQL through psql


def psql(url, sql, tuples=False, timeout=60):
    """Runs one SQL command with psql; returns its output. Raises RuntimeError on failure."""
    command = ["psql", "-X", url, "-v", "ON_ERROR_STOP=1", "-q"] + (["-At"] if tuples else []) + ["-c", sql]
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"psql did not finish within {timeout} s: {sql[:80]}") from None
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}) on {sql[:80]!r}: {done.stderr.strip()[:400]}")
    return done.stdout


def create_database(admin_url, name):
    psql(admin_url, f'CREATE DATABASE "{name}"')
    return database_url(admin_url, name)


def drop_database(admin_url, name):
    """Drops the database (WITH (FORCE) where the server has it, PostgreSQL 13+)."""
    try:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except RuntimeError:
        psql(admin_url, f'DROP DATABASE IF EXISTS "{name}"')


def log_head(url):
    """The last seq of the change log (0 when empty)."""
    return int(psql(url, "SELECT coalesce(max(seq), 0) FROM changes", tuples=True).split()[0])


def read_log(url):
    """(changes, compacted_through) of the database at `url`."""
    changes = parse_changes(psql(url, "SELECT seq, kind, body::text FROM changes ORDER BY seq", tuples=True))
    head = psql(url, "SELECT coalesce(compacted_through, 0) FROM change_head", tuples=True).split()
    return changes, int(head[0]) if head else 0


# ---------------------------------------------------------------------------------------------
# What the clients know


class Item:
    """One (neuron, id) with fixed bits. `owner`: the client that alone writes it, or None for a
    shared id (stored by anyone, never forgotten). `state`: "absent", "present" or "uncertain";
    `seq`: the highest sequence acknowledged for it."""

    __slots__ = ("neuron", "id", "bits", "owner", "state", "seq", "touched", "creations")

    def __init__(self, neuron, id_, bits, owner=None):
        self.neuron, self.id, self.bits, self.owner = neuron, id_, bits, owner
        self.state, self.seq, self.touched = "absent", 0, False
        self.creations = 0  # acknowledged stores that answered "created" (shared ids: at most 1)

    def key(self):
        return f"{self.neuron}/{self.id}"

    def path(self):
        return f"/v1/spaces/{SPACE}/neurons/{self.neuron}/patterns/{self.id}"


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}
        self.by_replica = {}

    def add(self, **counts):
        with self.lock:
            for key, value in counts.items():
                self.values[key] = self.values.get(key, 0) + value

    def acked(self, replica, patterns=1):
        with self.lock:
            self.by_replica[replica] = self.by_replica.get(replica, 0) + patterns
            self.values["writes"] = self.values.get("writes", 0) + patterns

    def __getitem__(self, key):
        return self.values.get(key, 0)


class Phase:
    """One period of client load: the replicas written, the shared ids, when to stop."""

    def __init__(self, replicas, shared, max_writes, duration):
        self.ports = {r.port: r.name for r in replicas}
        self.shared = shared
        self.max_writes = max_writes
        self.stop = threading.Event()
        self.counters = Counters()
        self.deadline = time.monotonic() + duration
        self.lock = threading.Lock()  # the shared items' state and the doomed neuron's guard
        self.doomed_closing = False
        self.doomed_inflight = 0
        self.doomed_changed = threading.Condition(self.lock)

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline and self.counters["writes"] < self.max_writes


class ReplicaRun:
    """The state every stage and client shares: the items, the acknowledged writes, the violations."""

    def __init__(self, options, rng):
        self.options = options
        self.rng = rng
        self.violations = Violations()
        self.acks = []  # (seq, kind, neuron, id, bits) of every acknowledged write, for log_mismatches
        self.acks_lock = threading.Lock()
        self.max_seq = 0
        self.shared_s = [Item(n, f"s{j}", random_bits(rng)) for n in HOT for j in range(30)]
        self.shared_doomed = [Item(DOOMED, f"d{j}", random_bits(rng)) for j in range(16)]
        self.shared_k = [Item(n, f"k{j}", random_bits(rng)) for n in HOT for j in range(20)]
        self.owned = [
            [Item(n, f"c{c}-{j}", random_bits(rng), owner=c) for n in HOT for j in range(3)]
            + [Item(f"own-{c}", f"p{j}", random_bits(rng), owner=c) for j in range(6)]
            for c in range(options.clients)
        ]
        self.items = self.shared_s + self.shared_doomed + self.shared_k + [i for o in self.owned for i in o]
        self.doomed_seq = None

    def violate(self, message):
        self.violations.add(message)

    def record(self, seq, kind, neuron=None, id_=None, bits=None):
        if not seq:
            return  # no valid header: already a violation, nothing to check against the log
        with self.acks_lock:
            self.acks.append((seq, kind, neuron, id_, bits))
            self.max_seq = max(self.max_seq, seq)

    def note_seq(self, seq):
        with self.acks_lock:
            self.max_seq = max(self.max_seq, seq)


# ---------------------------------------------------------------------------------------------
# Clients


class Conns:
    """One keep-alive connection per replica port, for one thread."""

    def __init__(self, timeout):
        self.timeout = timeout
        self.by_port = {}

    def exchange(self, port, method, path, body=None):
        if port not in self.by_port:
            self.by_port[port] = Connection(port, self.timeout)
        return self.by_port[port].exchange(method, path, body)

    def close(self):
        for connection in self.by_port.values():
            connection.close()
        self.by_port.clear()


def decode(answer):
    return harness.decode(answer.raw)


def write_sequence(test, phase, answer, what):
    """The acknowledged write's sequence (0 and a violation when the header is missing)."""
    seq = parse_sequence(answer.headers)
    if seq is None:
        phase.counters.add(no_header=1)
        if phase.counters["no_header"] <= 3:
            test.violate(
                f"{what} answered {answer.status} without a valid Dendrite-Sequence header "
                f"({answer.headers.get(SEQUENCE_HEADER)!r})"
            )
        return 0
    test.note_seq(seq)
    return seq


class Client:
    def __init__(self, test, phase, number, rng):
        self.test, self.phase, self.number, self.rng = test, phase, number, rng
        self.conns = Conns(test.options.timeout)
        self.avoid = set()  # ports that refused connections (a killed replica)

    def ports(self):
        return [p for p in self.phase.ports if p not in self.avoid]

    def send(self, port, method, path, body=None):
        """An Answer, or None after a request that cannot have reached the server (refused:
        the port is avoided from now on). Raises NoAnswer when it may have."""
        try:
            return self.conns.exchange(port, method, path, body)
        except NoAnswer as error:
            if not error.sent:
                self.avoid.add(port)
                self.phase.counters.add(unsent=1)
                return None
            self.phase.counters.add(uncertain=1)
            raise

    # -- the doomed neuron's guard: no request to it is in flight when it is deleted

    def enter(self, items):
        if not any(i.neuron == DOOMED for i in items):
            return True
        with self.phase.lock:
            if self.phase.doomed_closing:
                return False
            self.phase.doomed_inflight += 1
            return True

    def leave(self, items):
        if any(i.neuron == DOOMED for i in items):
            with self.phase.lock:
                self.phase.doomed_inflight -= 1
                self.phase.doomed_changed.notify_all()

    # -- acknowledgements

    def check_pattern(self, item, body, what, port):
        if (
            not isinstance(body, dict)
            or body.get("neuron") != item.neuron
            or body.get("id") != item.id
            or body.get("active") != item.bits
        ):
            got = {k: body.get(k) for k in ("neuron", "id")} if isinstance(body, dict) else short(body)
            self.test.violate(f"{what} {item.key()} on {self.phase.ports[port]} answered another pattern: {got}")

    def stored(self, item, created, seq, port):
        """Records an acknowledged store of `item` (created: this request stored it)."""
        test = self.test
        test.record(seq, "store", item.neuron, item.id, item.bits)
        if item.owner is None:
            with self.phase.lock:
                item.touched = True
                if created:
                    item.creations += 1
                    if item.creations > 1:
                        test.violate(
                            f"shared {item.key()} was created twice (the second time with sequence "
                            f"{seq} by {self.phase.ports[port]}): two replicas stored the same id"
                        )
                item.state = "present"
                item.seq = max(item.seq, seq)
        else:
            self.owned_ack(item, seq, "present", port, created)

    def owned_ack(self, item, seq, state, port, changed):
        # A write that changed something was planned after this client's previous write of the
        # item was visible (at its sequence), so its own sequence cannot be lower. (An "already
        # stored" answer carries the sequence its replica had applied, which may be.)
        if changed and seq < item.seq:
            self.test.violate(
                f"{'store' if state == 'present' else 'forget'} of {item.key()} on "
                f"{self.phase.ports[port]} answered with sequence {seq}, below the sequence "
                f"{item.seq} of this client's previous acknowledged write of it"
            )
        item.state, item.seq = state, max(item.seq, seq)

    def no_answer(self, items):
        with self.phase.lock:
            for item in items:
                if item.state != "present" or item.owner is not None:
                    item.state = "uncertain"

    def read_your_write(self, port, item, seq, expect_present):
        """GET on another replica with ?min_sequence=seq: the write must be visible there."""
        others = [p for p in self.ports() if p != port]
        if not others or not seq:
            return
        other = self.rng.choice(others)
        try:
            answer = self.conns.exchange(other, "GET", with_min_sequence(item.path(), seq))
        except NoAnswer:
            return  # that replica may be the one being killed
        counters, test = self.phase.counters, self.test
        where = (
            f"{item.key()} acknowledged by {self.phase.ports[port]} with sequence {seq}, read on "
            f"{self.phase.ports[other]} with min_sequence={seq}"
        )
        counters.add(ryw=1)
        if answer.status == 503:
            counters.add(ryw_failed=1)
            test.violate(
                f"{where}: 503, the replica did not reach the sequence within the wait "
                f"(Retry-After {answer.headers.get('retry-after')!r})"
            )
        elif expect_present and answer.status == 200:
            body = decode(answer)
            if not isinstance(body, dict) or body.get("active") != item.bits:
                counters.add(ryw_failed=1)
                test.violate(f"{where}: another pattern: {short(body)}")
        elif not expect_present and answer.status == 404:
            pass
        else:
            counters.add(ryw_failed=1)
            test.violate(
                f"{where}: {answer.status} although the {'store' if expect_present else 'forget'} "
                f"was acknowledged: {short(decode(answer))}"
            )

    # -- operations

    def store(self, port, item, expected_status=None):
        if not self.enter([item]):
            return
        try:
            if item.owner is None:
                with self.phase.lock:
                    item.touched = True
            else:
                item.touched = True
            try:
                answer = self.send(
                    port,
                    "POST",
                    f"/v1/spaces/{SPACE}/neurons/{item.neuron}/patterns",
                    {"id": item.id, "active": item.bits},
                )
            except NoAnswer:
                self.no_answer([item])
                return
            if answer is None:
                return
            name = self.phase.ports[port]
            if answer.status in (200, 201):
                seq = write_sequence(self.test, self.phase, answer, f"store of {item.key()} on {name}")
                self.phase.counters.acked(name)
                self.phase.counters.add(stores=1)
                self.check_pattern(item, decode(answer), "store of", port)
                if expected_status is not None and answer.status != expected_status:
                    self.test.violate(
                        f"store of {item.key()} ({'absent' if expected_status == 201 else 'present'} "
                        f"by its client's acknowledged writes) on {name} answered {answer.status}, "
                        f"expected {expected_status}"
                    )
                self.stored(item, answer.status == 201, seq, port)
                if item.neuron != DOOMED and self.rng.random() < 0.25:
                    self.read_your_write(port, item, seq, True)
            elif answer.status in NOT_DONE:
                self.phase.counters.add(refused=1)
            else:
                self.test.violate(f"store of {item.key()} on {name} answered {answer.status}: {short(decode(answer))}")
                self.no_answer([item])
        finally:
            self.leave([item])

    def forget(self, port, item):
        item.touched = True
        try:
            answer = self.send(port, "DELETE", item.path())
        except NoAnswer:
            self.no_answer([item])
            return
        if answer is None:
            return
        name = self.phase.ports[port]
        if answer.status == 204:
            seq = write_sequence(self.test, self.phase, answer, f"forget of {item.key()} on {name}")
            self.phase.counters.acked(name)
            self.phase.counters.add(forgets=1)
            self.test.record(seq, "forget", item.neuron, item.id)
            self.owned_ack(item, seq, "absent", port, True)
            if self.rng.random() < 0.25:
                self.read_your_write(port, item, seq, False)
        elif answer.status in NOT_DONE:
            self.phase.counters.add(refused=1)
        elif answer.status == 404:
            self.test.violate(
                f"forget of {item.key()} on {name} answered 404 although its store was acknowledged "
                f"(sequence {item.seq}): the replica did not plan against the log's head"
            )
            item.state = "absent"
        else:
            self.test.violate(f"forget of {item.key()} on {name} answered {answer.status}: {short(decode(answer))}")
            item.state = "uncertain"

    def batch(self, port, owned):
        pool = self.phase.shared + [i for i in owned if i.state != "uncertain"]
        items = self.rng.sample(pool, min(len(pool), self.rng.randint(3, 10)))
        if not self.enter(items):
            items = [i for i in items if i.neuron != DOOMED]
            if not items:
                return
        try:
            was = {id(i): i.state for i in items if i.owner is not None}
            with self.phase.lock:
                for item in items:
                    item.touched = True
            try:
                answer = self.send(
                    port,
                    "POST",
                    f"/v1/spaces/{SPACE}/patterns",
                    {"patterns": [{"neuron": i.neuron, "id": i.id, "active": i.bits} for i in items]},
                )
            except NoAnswer:
                self.no_answer(items)
                return
            if answer is None:
                return
            name = self.phase.ports[port]
            if answer.status == 200:
                seq = write_sequence(self.test, self.phase, answer, f"batch of {len(items)} on {name}")
                self.phase.counters.acked(name, len(items))
                self.phase.counters.add(batches=1, batch_items=len(items))
                results = (decode(answer) or {}).get("results") if isinstance(decode(answer), dict) else None
                if not isinstance(results, list) or len(results) != len(items):
                    self.test.violate(
                        f"batch of {len(items)} on {name} answered 200 without one result per item: "
                        f"{short(decode(answer))}"
                    )
                    self.no_answer(items)
                    return
                for item, result in zip(items, results):
                    self.check_pattern(item, result, "batch store of", port)
                    created = bool(result.get("created")) if isinstance(result, dict) else False
                    if item.owner is not None and created != (was[id(item)] == "absent"):
                        self.test.violate(
                            f"batch store of {item.key()} ({was[id(item)]} by its client's acknowledged "
                            f"writes) on {name} answered created={created}"
                        )
                    self.stored(item, created, seq, port)
                item = self.rng.choice(items)
                if item.neuron != DOOMED and self.rng.random() < 0.5:
                    self.read_your_write(port, item, seq, True)
            elif answer.status in NOT_DONE:
                self.phase.counters.add(refused=1)
            else:
                self.test.violate(f"batch of {len(items)} on {name} answered {answer.status}: {short(decode(answer))}")
                self.no_answer(items)
        finally:
            self.leave(items)

    def run(self):
        owned = self.test.owned[self.number]
        try:
            while self.phase.running():
                ports = self.ports()
                if not ports:
                    return
                port = self.rng.choice(ports)
                r = self.rng.random()
                if r < 0.1:
                    self.batch(port, owned)
                elif r < 0.55:
                    self.store(port, self.rng.choice(self.phase.shared))
                else:
                    candidates = [i for i in owned if i.state != "uncertain"]
                    if not candidates:
                        return
                    item = self.rng.choice(candidates)
                    if item.state == "absent" or self.rng.random() < 0.25:
                        self.store(port, item, expected_status=201 if item.state == "absent" else 200)
                    else:
                        self.forget(port, item)
        except Exception as error:  # a bug here must not pass as "no violations"
            self.test.violate(f"client {self.number} stopped on {type(error).__name__}: {error}")
        finally:
            self.conns.close()


def start_clients(test, phase):
    threads = []
    for c in range(test.options.clients):
        client = Client(test, phase, c, random.Random(test.rng.random()))
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def join_clients(test, threads, what):
    deadline = time.monotonic() + 2 * test.options.timeout + 10
    for thread in threads:
        thread.join(timeout=max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        test.violate(f"{what}: client threads still blocked {2 * test.options.timeout + 10:g} s after the stop")


# ---------------------------------------------------------------------------------------------
# Checks on whole replicas


def call(http, port, method, path, body=None, attempts=3):
    """(status, decoded body) with read 503s (busy) retried a few times; raises NoAnswer."""
    for attempt in range(attempts):
        status, decoded = http.call_json(method, path, body, port=port)
        if status != 503 or attempt == attempts - 1:
            return status, decoded
        time.sleep(0.2)
    raise AssertionError("unreachable")


def stats_of(port, timeout):
    answer = request_once(port, "GET", "/v1/stats", timeout=timeout)
    body = decode(answer)
    return body if answer.status == 200 and isinstance(body, dict) else None


def converge(test, replicas, backend="postgres"):
    """Waits until every replica's applied_sequence == head_sequence, all equal and at least the
    highest acknowledged sequence. Returns (sequence, seconds) or (None, seconds) after a violation."""
    started = time.monotonic()
    deadline = started + test.options.converge_timeout
    last = {}
    while True:
        seen = {}
        for replica in replicas:
            try:
                body = stats_of(replica.port, test.options.timeout)
            except NoAnswer as error:
                body = {"error": str(error)}
            seen[replica.name] = body
        last = seen
        shape_ok = all(
            isinstance(b, dict)
            and isinstance(b.get("applied_sequence"), int)
            and isinstance(b.get("head_sequence"), int)
            for b in seen.values()
        )
        if shape_ok:
            applied = {b["applied_sequence"] for b in seen.values()}
            heads = {b["head_sequence"] for b in seen.values()}
            if len(applied) == 1 and applied == heads and min(applied) >= test.max_seq:
                sequence = applied.pop()
                for name, body in seen.items():
                    if body.get("backend") != backend:
                        test.violate(f"{name}: /v1/stats says backend {body.get('backend')!r}, expected {backend!r}")
                    if body.get("replication_lag") != 0:
                        test.violate(
                            f"{name}: /v1/stats says replication_lag {body.get('replication_lag')!r} "
                            f"with applied_sequence == head_sequence"
                        )
                return sequence, time.monotonic() - started
        if time.monotonic() >= deadline:
            summary = "; ".join(
                f"{name}: "
                + (
                    f"applied {b.get('applied_sequence')!r}, head {b.get('head_sequence')!r}"
                    if isinstance(b, dict) and "error" not in b
                    else short(b)
                )
                for name, b in last.items()
            )
            test.violate(
                f"the replicas did not converge (applied == head, all equal, >= the highest acknowledged "
                f"sequence {test.max_seq}) within {test.options.converge_timeout:g} s: {summary}"
            )
            return None, time.monotonic() - started
        time.sleep(0.1)


def expected_of(item):
    return item.state  # "present", "absent" or "uncertain" (either accepted)


def verify_items(test, replicas, items, label, floor):
    """Reads every touched item on every replica, with ?min_sequence= its last acknowledged
    sequence; an uncertain one with at least `floor`, the log's last seq (an unanswered write may
    have committed after every acknowledged one). Uncertain items are resolved by the first
    replica's answer; the others must agree. Returns (checked, resolved present, resolved absent)."""
    touched = [i for i in items if i.touched]
    resolved = {"present": 0, "absent": 0}
    lock = threading.Lock()
    http = Http(timeout=test.options.timeout)

    def check(item):
        expected = expected_of(item)
        resolved_here = False
        sequence = item.seq if expected != "uncertain" else max(item.seq, floor)
        for replica in replicas:
            path = with_min_sequence(item.path(), sequence)
            where = f"{label}: {item.key()} on {replica.name} (min_sequence={sequence})"
            try:
                status, body = http.call_json("GET", path, port=replica.port)
            except NoAnswer as error:
                test.violate(f"{where}: no answer: {error}")
                continue
            if status == 200:
                if not isinstance(body, dict) or body.get("active") != item.bits:
                    test.violate(f"{where}: other bits than stored: {short(body)}")
                got = "present"
            elif status == 404:
                got = "absent"
            else:
                test.violate(f"{where}: {status}: {short(body)}")
                continue
            if expected == "uncertain":
                with lock:
                    resolved[got] += 1
                expected = got
                item.state = got
                resolved_here = True
            elif got != expected:
                why = {
                    "present": "its store was acknowledged",
                    "absent": "it was forgotten or its neuron deleted, acknowledged",
                }[expected]
                if resolved_here:
                    why = f"{replicas[0].name} answered {expected} for this unacknowledged write"
                test.violate(f"{where}: {got} although {why} (sequence {item.seq})")

    def run(chunk):
        try:
            for item in chunk:
                check(item)
        finally:
            http.close()

    workers = 8
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, [touched[k::workers] for k in range(workers)]))
    return len(touched), resolved["present"], resolved["absent"]


def make_plan(test, rng, queries=200, patterns=150):
    """The queries and pattern ids every replica is asked in a snapshot."""
    touched = sorted((i for i in test.items if i.touched), key=Item.key) or test.items
    plan_queries = []
    for k in range(queries):
        base = rng.choice(touched).bits
        if k < queries // 2:
            active = base
        elif k < queries * 3 // 4:
            active = noisy(base, rng, rng.choice((0.1, 0.25, 0.4)))
        else:
            active = random_bits(rng)
        query = {"active": active, "limit": QUERY_LIMIT}
        if k % 10 == 9:
            query["threshold"] = rng.choice((6, 10, 14))  # another threshold: the non-nominal path
        plan_queries.append(query)
    sample = rng.sample(touched, min(patterns, len(touched)))
    return {"queries": plan_queries, "patterns": sorted((i.neuron, i.id) for i in sample)}


class Snapshot:
    """Answers of one server, gathered from several threads: {key: {"status", "body" without
    volatile fields}}, with the requests that got no answer."""

    def __init__(self, test, port):
        self.port = port
        self.http = Http(port=port, timeout=test.options.timeout)
        self.out = {}
        self.failures = []

    def get(self, key, method, path, body=None):
        try:
            status, decoded = call(self.http, self.port, method, path, body)
        except NoAnswer as error:
            self.failures.append(f"{key}: no answer ({error})")
            status, decoded = None, None
        self.out[key] = {"status": status, "body": strip_volatile(decoded)}
        return status, self.out[key]["body"]

    def closing(self, work):
        """`work` made to close its thread's connection when done (threads of a pool)."""

        def run(argument):
            try:
                work(argument)
            finally:
                self.http.close()

        return run

    def space_and_neuron_names(self):
        """GET of the space and every page of its neuron listing; the neurons' names."""
        self.get("space", "GET", f"/v1/spaces/{SPACE}")
        neurons, after = [], None
        for page in range(100):
            path = f"/v1/spaces/{SPACE}/neurons?limit=1000" + (f"&after={urllib.parse.quote(after)}" if after else "")
            status, body = self.get(f"neurons page {page}", "GET", path)
            if status != 200 or not isinstance(body, dict):
                break
            neurons += [n.get("name") for n in body.get("neurons", [])]
            after = body.get("next")
            if not after:
                break
        self.http.close()
        return [n for n in neurons if isinstance(n, str)]

    def neuron(self, name):
        """Every page of a neuron's segments."""
        segments_after = None
        for page in range(1000):
            path = f"/v1/spaces/{SPACE}/neurons/{name}?segments_limit=1000" + (
                f"&segments_after={segments_after}" if segments_after is not None else ""
            )
            status, body = self.get(f"neuron {name} page {page}", "GET", path)
            if status != 200 or not isinstance(body, dict) or body.get("next_segment") is None:
                return
            segments_after = body["next_segment"]

    def pattern(self, key):
        self.get(f"pattern {key[0]}/{key[1]}", "GET", f"/v1/spaces/{SPACE}/neurons/{key[0]}/patterns/{key[1]}")

    def query(self, numbered):
        k, body = numbered
        self.get(f"query {k:03d}", "POST", f"/v1/spaces/{SPACE}/query", body)


def snapshot(test, port, plan):
    """Every answer of the plan from one server: {key: {"status", "body" without volatile fields}}."""
    snap = Snapshot(test, port)
    neurons = snap.space_and_neuron_names()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(snap.closing(snap.neuron), neurons))
        list(pool.map(snap.closing(snap.pattern), plan["patterns"]))
        list(pool.map(snap.closing(snap.query), list(enumerate(plan["queries"]))))
    for failure in snap.failures[:3]:
        test.violate(f"snapshot on port {port}: {failure}")
    return snap.out


def compare_all(test, reference_label, reference, snapshots):
    for label, other in snapshots:
        for message in compare_snapshots(reference_label, reference, label, other):
            test.violate(message)


def snapshot_summary(snap):
    queries = sum(1 for k in snap if k.startswith("query "))
    matches = sum(
        len(v["body"].get("matches", []))
        for k, v in snap.items()
        if k.startswith("query ") and isinstance(v["body"], dict)
    )
    neurons = len({k.split()[1] for k in snap if k.startswith("neuron ")})
    patterns = sum(1 for k, v in snap.items() if k.startswith("pattern ") and v["status"] == 200)
    return f"{queries} queries ({matches} matches), {neurons} neurons, {patterns} patterns"


# ---------------------------------------------------------------------------------------------
# Stages


def write_phase(test, replicas, shared, duration, max_writes, kill=None):
    """Runs the clients over `replicas`. `kill`: (replica, seconds) to SIGKILL mid-load, after which
    the load goes on for a second. Without it the neuron "doomed" is deleted part way through."""
    phase = Phase(replicas, shared, max_writes, duration)
    threads = start_clients(test, phase)
    started = time.monotonic()
    killed_at = None
    try:
        if kill is None:
            while (
                phase.running()
                and time.monotonic() - started < duration * 0.45
                and phase.counters["writes"] < max_writes * 0.45
            ):
                time.sleep(0.05)
            delete_doomed(test, phase, replicas)
        else:
            victim, after = kill
            while (
                phase.running() and time.monotonic() - started < after and phase.counters["writes"] < max_writes * 0.6
            ):
                time.sleep(0.02)
            victim.kill9()
            killed_at = time.monotonic() - started
            phase.deadline = min(phase.deadline, time.monotonic() + 1.0)
        while phase.running():
            time.sleep(0.05)
    finally:
        phase.stop.set()
        join_clients(test, threads, "writes")
    return phase, time.monotonic() - started, killed_at


def delete_doomed(test, phase, replicas):
    """Deletes the neuron "doomed" once no request to it is in flight (none is sent after)."""
    with phase.lock:
        phase.doomed_closing = True
        deadline = time.monotonic() + 2 * test.options.timeout
        while phase.doomed_inflight and time.monotonic() < deadline:
            phase.doomed_changed.wait(timeout=0.1)
        inflight = phase.doomed_inflight
    if inflight:
        test.violate(f"a request to {DOOMED} stayed in flight {2 * test.options.timeout:g} s")
    replica = test.rng.choice(replicas)
    uncertain = False
    seq = None
    for attempt in range(5):
        try:
            answer = request_once(
                replica.port, "DELETE", f"/v1/spaces/{SPACE}/neurons/{DOOMED}", timeout=test.options.timeout
            )
        except NoAnswer as error:
            test.violate(f"deleting neuron {DOOMED} on {replica.name} got no answer: {error}")
            uncertain = True
            break
        if answer.status in NOT_DONE and attempt < 4:
            time.sleep(0.2)
            continue
        if answer.status == 204:
            seq = write_sequence(test, phase, answer, f"deletion of neuron {DOOMED} on {replica.name}")
            test.record(seq, "delete_neuron", DOOMED)
            test.doomed_seq = seq
        elif answer.status == 404 and not any(i.state == "present" for i in test.shared_doomed):
            pass  # nothing was stored on it yet (a very slow server); nothing to delete
        else:
            test.violate(
                f"deleting neuron {DOOMED} on {replica.name} answered {answer.status}: {short(decode(answer))}"
            )
            uncertain = True
        break
    with phase.lock:
        for item in test.shared_doomed:
            if uncertain or item.state == "uncertain":
                item.state = "uncertain"
            else:
                item.state = "absent"
                item.seq = max(item.seq, seq or 0)
    if seq:
        deletion_seen_elsewhere(test, phase, replicas, replica, seq)


def deletion_seen_elsewhere(test, phase, replicas, replica, seq):
    """Another replica, asked with min_sequence the deletion's sequence, no longer has the neuron."""
    others = [r for r in replicas if r is not replica]
    other = test.rng.choice(others)
    try:
        answer = request_once(
            other.port,
            "GET",
            with_min_sequence(f"/v1/spaces/{SPACE}/neurons/{DOOMED}", seq),
            timeout=test.options.timeout,
        )
        phase.counters.add(ryw=1)
        if answer.status != 404:
            phase.counters.add(ryw_failed=1)
            test.violate(
                f"neuron {DOOMED} deleted by {replica.name} with sequence {seq}: {other.name} answers "
                f"{answer.status} with min_sequence={seq}, not 404"
            )
    except NoAnswer as error:
        test.violate(f"GET of the deleted {DOOMED} on {other.name} got no answer: {error}")


def stop_gracefully(test, replica):
    status = replica.stop(timeout=30)
    if status != 0:
        test.violate(f"{replica.name}: graceful stop (SIGTERM) ended with {status} (None: had to be killed after 30 s)")


def replay_on_sqlite(test, changes, port):
    """Replays the log over HTTP; returns counts. Each store must land where the log says."""
    counts = {"changes": 0, "patterns": 0, "placed_differently": 0}
    with Connection(port, test.options.timeout) as connection:

        def send(method, path, body=None):
            for attempt in range(5):
                answer = connection.exchange(method, path, body)
                if answer.status not in NOT_DONE or attempt == 4:
                    return answer
                time.sleep(0.2)
            raise AssertionError("unreachable")

        for seq, kind, body in changes:
            counts["changes"] += 1
            what = f"replaying change {seq} ({kind})"
            if kind == "create_space":
                answer = send("PUT", f"/v1/spaces/{body['space']}", body["params"])
                if answer.status != 201:
                    test.violate(f"{what}: PUT answered {answer.status}: {short(decode(answer))}")
            elif kind == "store":
                for p in body.get("patterns", []):
                    counts["patterns"] += 1
                    answer = send(
                        "POST",
                        f"/v1/spaces/{p['space']}/neurons/{p['neuron']}/patterns",
                        {"id": p["id"], "active": p["active"]},
                    )
                    result = decode(answer)
                    if answer.status not in (200, 201) or not isinstance(result, dict):
                        test.violate(
                            f"{what}: storing {p['neuron']}/{p['id']} answered {answer.status}: {short(result)}"
                        )
                        continue
                    placed = {k: result.get(k) for k in ("id", "segment", "active", "synapses")}
                    logged = {k: p.get(k) for k in ("id", "segment", "active", "synapses")}
                    if placed != logged:
                        counts["placed_differently"] += 1
                        where = first_difference(logged, placed)
                        test.violate(
                            f"{what}: {p['neuron']}/{p['id']} on SQLite differs from the log at {where[0]}: "
                            f"{short(where[2])} instead of {short(where[1])}"
                        )
            elif kind in ("forget", "delete_neuron", "delete_space"):
                path = f"/v1/spaces/{body['space']}"
                if kind != "delete_space":
                    path += f"/neurons/{body['neuron']}"
                if kind == "forget":
                    path += f"/patterns/{body['id']}"
                answer = send("DELETE", path)
                if answer.status != 204:
                    test.violate(f"{what}: DELETE {path} answered {answer.status}: {short(decode(answer))}")
            else:
                test.violate(f"{what}: unknown kind of change {kind!r}: {short(body)}")
    return counts


def check_log(test, url, converged_at, since=0):
    """Reads the change log; checks its end and the acknowledged writes from the `since`-th on.
    Returns (changes, the number of acknowledgements checked)."""
    changes, compacted = read_log(url)
    if compacted:
        test.violate(f"the change log was compacted through {compacted} during a test of a few seconds")
    last = changes[-1][0] if changes else 0
    if converged_at is not None and last != converged_at:
        test.violate(f"the change log ends at seq {last}, but the replicas converged at sequence {converged_at}")
    with test.acks_lock:
        acks = test.acks[since:]
    for message in log_mismatches(changes, acks):
        test.violate(message)
    return changes, len(acks)


def converged_text(sequence, took):
    return (
        f"converged at sequence {sequence} in {took:.1f} s"
        if sequence is not None
        else f"NOT converged after {took:.1f} s"
    )


def phase_summary(phase, replicas):
    c = phase.counters
    spread = "/".join(str(c.by_replica.get(r.name, 0)) for r in replicas)
    return (
        f"{c['writes']} patterns written (stores {c['stores']}, {c['batches']} batches of {c['batch_items']}), "
        f"forgets {c['forgets']}; acknowledged per replica {spread}; refused(503/507) {c['refused']}, "
        f"uncertain {c['uncertain']}, not sent {c['unsent']}"
    )


# ---------------------------------------------------------------------------------------------
# Shard groups (stage 9)


def shard_rules(root=ROOT):
    """(route, lists): the routing of deploy/nginx.conf's `map $uri $shard_group` (a function from a
    path to an upstream name) and the DENDRITE_SPACES lists of docker-compose.postgres.yml by anchor
    (`shard-one-spaces` -> shard_one), read from the files so that the test holds them to each other."""
    with open(os.path.join(root, "deploy", "nginx.conf")) as conf:
        text = conf.read()
    block = re.search(r"map \$uri \$shard_group \{(.*?)\}", text, re.S)
    if block is None:
        raise RuntimeError("deploy/nginx.conf has no `map $uri $shard_group` block")
    rules, default = [], None
    for line in block.group(1).splitlines():
        line = line.split("#", 1)[0].strip().rstrip(";")
        if not line:
            continue
        pattern, upstream = line.split()
        if pattern == "default":
            default = upstream
        else:
            rules.append((re.compile(pattern.lstrip("~")), upstream))

    def route(path):
        return next((upstream for pattern, upstream in rules if pattern.search(path)), default)

    with open(os.path.join(root, "docker-compose.postgres.yml")) as compose:
        anchors = dict(re.findall(r'^x-(shard-[a-z]+)-spaces: &[a-z-]+ "([^"]*)"', compose.read(), re.M))
    lists = {f"shard_{group.split('-')[1]}": spaces for group, spaces in anchors.items()}
    return route, lists


def served_by(spaces, name):
    """Whether a DENDRITE_SPACES list (names, and prefixes ending in *) covers `name`."""
    items = [item.strip() for item in spaces.split(",") if item.strip()]
    return any(name.startswith(item[:-1]) if item.endswith("*") else name == item for item in items)


PROBES = ["alpha", "mango", "Zed", "november", "zulu", "0day", "-x", ".hidden", "Nine", "_a", ":b"]
SHARD_SPACES = {"alpha": "shard_one", "mango": "shard_one", "november": "shard_two"}


def rule_agrees_with_lists(test, route, lists):
    """nginx's rule and the compose lists give every probe name to the same group."""
    if sorted(lists) != ["shard_one", "shard_two"]:
        raise RuntimeError(f"docker-compose.postgres.yml's shard lists are {sorted(lists)}")
    for probe in PROBES:
        groups = [group for group, spaces in lists.items() if served_by(spaces, probe)]
        if groups != [route(f"/v1/spaces/{probe}/query")]:
            test.violate(
                f"space {probe!r}: nginx routes it to {route(f'/v1/spaces/{probe}/query')}, "
                f"the compose lists give it to {groups or 'no group'}"
            )


def launch_shard_groups(test, binary, url, log_path, processes, lists):
    """Two replicas serving the first list and one the second, all ready: {group: [replica]}."""
    groups = {"shard_one": [], "shard_two": []}
    for group, count in (("shard_one", 2), ("shard_two", 1)):
        for k in range(count):
            replica = make_replica(f"{group}-{k}", binary, url, log_path(f"{group}-{k}"), spaces=lists[group])
            groups[group].append(replica)
            processes.append(replica)
            replica.launch()
    for replica in groups["shard_one"] + groups["shard_two"]:
        replica.wait_ready(test.options.ready_timeout, test.options.timeout)
    return groups


def write_through_rule(test, groups, route, http, rng):
    """Creates the spaces and writes 30 batches through the rule, each read back through it with
    min_sequence. Returns (patterns stored per space, the last sequence)."""
    conns = Conns(test.options.timeout)

    def send(method, path, body=None):
        replica = rng.choice(groups[route(path)])
        return call(http, replica.port, method, path, body)

    stored, last_seq = {space: 0 for space in SHARD_SPACES}, 0
    for space in SHARD_SPACES:
        status, body = send("PUT", f"/v1/spaces/{space}", SPACE_PARAMS)
        if status != 201:
            raise RuntimeError(f"creating {space} through the rule answered {status}: {short(body)}")
    for _ in range(30):
        space = rng.choice(list(SHARD_SPACES))
        batch = [{"neuron": f"n{rng.randrange(5)}", "active": sorted(rng.sample(range(2048), 40))} for _ in range(20)]
        target = rng.choice(groups[route(f"/v1/spaces/{space}/patterns")])
        reply = conns.exchange(target.port, "POST", f"/v1/spaces/{space}/patterns", {"patterns": batch})
        if reply.status != 200:
            test.violate(f"a batch into {space} through the rule answered {reply.status}: {short(decode(reply))}")
            continue
        stored[space] += len(batch)
        last_seq = max(last_seq, parse_sequence(reply.headers) or 0)
        # Read back through the rule on whichever replica of the group, at the write's sequence.
        probe = batch[0]
        path = with_min_sequence(f"/v1/spaces/{space}/query", last_seq)
        status, body = send("POST", path, {"active": probe["active"]})
        if status != 200 or probe["neuron"] not in [m["neuron"] for m in body.get("matches", [])]:
            test.violate(f"a pattern stored in {space} is not recognised through the rule: {status} {short(body)}")
    conns.close()
    return stored, last_seq


def stats_at(replica, sequence, options):
    """The replica's /v1/stats once it applied `sequence` (or the last seen, or None)."""
    stats = None
    deadline = time.monotonic() + options.converge_timeout
    while time.monotonic() < deadline:
        stats = stats_of(replica.port, options.timeout)
        if stats and stats.get("applied_sequence", 0) >= sequence:
            break
        time.sleep(0.1)
    return stats


def holds_only_its_group(test, replica, group, stored, last_seq, http):
    """The replica holds exactly its group's spaces (list, counts, memory) and refuses the other's."""
    own = sorted(space for space, owner in SHARD_SPACES.items() if owner == group)
    stats = stats_at(replica, last_seq, test.options)
    if not stats:
        test.violate(f"{replica.name} answered no /v1/stats")
        return
    by_space = {entry["name"]: entry for entry in stats.get("by_space", [])}
    held = sorted(by_space)
    patterns = sum(stored[space] for space in own)
    if held != own or stats.get("spaces") != len(own) or stats.get("patterns") != patterns:
        test.violate(
            f"{replica.name} holds spaces {held} ({stats.get('spaces')}) and "
            f"{stats.get('patterns')} patterns, not {own} and {patterns}"
        )
    memory = sum(by_space[space]["memory_bytes"] for space in held)
    if stats.get("memory_bytes") != memory:
        test.violate(f"{replica.name}'s memory ({stats.get('memory_bytes')} bytes) is not its own spaces' ({memory})")
    other = next(space for space, owner in SHARD_SPACES.items() if owner != group)
    status, body = call(http, replica.port, "GET", f"/v1/spaces/{other}")
    if status != 404 or "--spaces" not in str(body.get("detail", "")):
        test.violate(f"{replica.name} answers GET of {other} (another group's) with {status}: {short(body)}")
    status, body = call(http, replica.port, "PUT", f"/v1/spaces/{other}-new", SPACE_PARAMS)
    if status != 404 or "--spaces" not in str(body.get("detail", "")):
        test.violate(f"{replica.name} answers creating {other}-new (another group's) with {status}")


def shard_groups(test, binary, url, log_path, processes, rng):
    """Two shard groups (two replicas serving the compose file's first list, one the second) on a
    fresh database. Spaces on both sides of the split are created, written and read through the
    nginx rule; each group must hold only its own spaces (counts, memory and the space list), refuse
    the other's with a 404 naming --spaces, and rule and lists must agree on every name tried."""
    route, lists = shard_rules()
    rule_agrees_with_lists(test, route, lists)
    groups = launch_shard_groups(test, binary, url, log_path, processes, lists)
    http = Http(timeout=test.options.timeout)
    stored, last_seq = write_through_rule(test, groups, route, http, rng)
    for group, replicas in groups.items():
        for replica in replicas:
            holds_only_its_group(test, replica, group, stored, last_seq, http)
    http.close()
    for replica in groups["shard_one"] + groups["shard_two"]:
        stop_gracefully(test, replica)
    return (
        f"2 shard groups (2 + 1 replicas) on {url.rsplit('/', 1)[1]}: nginx's rule and the compose "
        f"lists agree on {len(PROBES)} names; {sum(stored.values())} patterns stored through the rule "
        f"({', '.join(f'{s} {n}' for s, n in stored.items())}), each read back; each replica holds "
        f"only its group's spaces and refuses the other's; stopped gracefully"
    )


# ---------------------------------------------------------------------------------------------
# The stages, on one database and its replicas


class Cluster:
    """The module's database, its replicas and what the stages found. Each stage runs once, the
    stages before it first: run(n) runs what has not run of 1..n, so a test run alone by name
    builds the state it checks, and a whole run of the file runs every stage once, in order."""

    def __init__(self, test, binary, admin, directory):
        self.test, self.binary, self.admin, self.directory = test, binary, admin, directory
        self.name = f"dendrite_replica_test_{secrets.token_hex(4)}"
        self.url = None
        self.databases = []
        self.replicas = []
        self.extra = []  # the fresh replica, the SQLite server, the shard groups' replicas
        self.started = time.monotonic()
        self.finished = {}  # stage number -> its summary
        self.aborted = None  # (stage number, error) of a stage that could not go on
        self.reference = self.plan = self.converged = None
        self.checked_acks = 0

    def log_path(self, label):
        return os.path.join(self.directory, f"{label}.log")

    def run(self, number):
        """Runs stages 1..number that have not run yet; raises when one of them aborted."""
        for stage in sorted(s for s in STAGES if s <= number):
            if self.aborted is not None:
                raise RuntimeError(f"stage {self.aborted[0]} aborted: {self.aborted[1]}")
            if stage not in self.finished:
                self.run_one(stage)

    def run_one(self, stage):
        before = self.test.violations.count
        try:
            summary = STAGES[stage](self)
        except (RuntimeError, NoAnswer) as error:
            self.test.violate(f"aborted: {error}")
            self.aborted = (stage, short(str(error), 120))
            summary = f"aborted: {short(str(error), 120)}"
        added = self.test.violations.count - before
        self.finished[stage] = summary
        print(
            f"stage {stage} [{time.monotonic() - self.started:5.1f} s]: {summary}; "
            f"{'OK' if not added else f'{added} violation(s)'}",
            flush=True,
        )

    def processes(self):
        return self.replicas + self.extra

    def close(self):
        """Kills every process and drops the databases (unless kept)."""
        for process in self.processes():
            process.kill9()
        if self.databases and not self.test.options.keep:
            for database in self.databases:
                try:
                    drop_database(self.admin, database)
                except RuntimeError as error:
                    print(f"could not drop database {database}: {error}")
        elif self.databases:
            print(f"databases kept: {', '.join(database_url(self.admin, d) for d in self.databases)}")


def stage_start(cluster):
    """1. Three replicas on one fresh database, the space created through one of them."""
    test, options = cluster.test, cluster.test.options
    cluster.url = create_database(cluster.admin, cluster.name)
    cluster.databases.append(cluster.name)
    cluster.replicas = [
        make_replica(f"replica-{k}", cluster.binary, cluster.url, cluster.log_path(f"replica-{k}")) for k in range(3)
    ]
    for replica in cluster.replicas:
        replica.launch()
    took = [replica.wait_ready(options.ready_timeout, options.timeout) for replica in cluster.replicas]
    creator = test.rng.choice(cluster.replicas)
    answer = request_once(creator.port, "PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS, timeout=options.timeout)
    if answer.status != 201:
        raise RuntimeError(f"creating the space on {creator.name} answered {answer.status}: {short(decode(answer))}")
    space_seq = parse_sequence(answer.headers)
    if space_seq is None:
        test.violate("creating the space answered without a valid Dendrite-Sequence header")
        space_seq = 0
    test.record(space_seq, "create_space")
    for replica in cluster.replicas:
        path = with_min_sequence(f"/v1/spaces/{SPACE}", space_seq)
        answer = request_once(replica.port, "GET", path, timeout=options.timeout)
        if answer.status != 200:
            test.violate(
                f"{replica.name} answers GET of the space {creator.name} created (sequence {space_seq}) "
                f"with min_sequence={space_seq}: {answer.status}"
            )
    return (
        f"3 replicas on database {cluster.name} ready in {max(took):.1f} s (ports "
        f"{', '.join(str(r.port) for r in cluster.replicas)}); space {SPACE} created on {creator.name} "
        f"with sequence {space_seq}, served by every replica"
    )


def stage_writes(cluster):
    """2. (and 3.) Writes spread over all replicas, read-your-writes on another replica."""
    test, options, replicas = cluster.test, cluster.test.options, cluster.replicas
    shared = test.shared_s + test.shared_doomed
    phase, took, _ = write_phase(test, replicas, shared, options.write_seconds, options.max_writes)
    for replica in replicas:
        if not phase.counters.by_replica.get(replica.name):
            test.violate(f"{replica.name} acknowledged no write in stage 2")
    doomed = (
        f"neuron {DOOMED} deleted with sequence {test.doomed_seq}"
        if test.doomed_seq
        else f"neuron {DOOMED} not deleted"
    )
    return (
        f"{took:.1f} s of writes by {options.clients} clients: {phase_summary(phase, replicas)}; {doomed}; "
        f"(stage 3) read-your-writes: {phase.counters['ryw']} reads on another replica with min_sequence, "
        f"{phase.counters['ryw_failed']} failed"
    )


def stage_converge(cluster):
    """4. Convergence, then identical answers everywhere."""
    test, replicas = cluster.test, cluster.replicas
    cluster.converged, took = converge(test, replicas)
    checked, _, _ = verify_items(test, replicas, test.items, "stage 4", log_head(cluster.url))
    cluster.plan = make_plan(test, test.rng)
    cluster.reference = snapshot(test, replicas[0].port, cluster.plan)
    others = [(r.name, snapshot(test, r.port, cluster.plan)) for r in replicas[1:]]
    compare_all(test, replicas[0].name, cluster.reference, others)
    return (
        f"{converged_text(cluster.converged, took)}; {checked} ids checked on every replica; "
        f"{snapshot_summary(cluster.reference)} compared on 3 replicas"
    )


def stage_fresh_replica(cluster):
    """5. A fresh replica on the same database answers alike."""
    test, options = cluster.test, cluster.test.options
    fresh = make_replica("replica-fresh", cluster.binary, cluster.url, cluster.log_path("replica-fresh"))
    cluster.extra.append(fresh)
    took = fresh.start(options.ready_timeout, options.timeout)
    fresh_seq, waited = converge(test, cluster.replicas + [fresh])
    snap = snapshot(test, fresh.port, cluster.plan)
    compare_all(test, cluster.replicas[0].name, cluster.reference, [(fresh.name, snap)])
    stop_gracefully(test, fresh)
    return (
        f"a fresh replica was ready in {took:.1f} s; {converged_text(fresh_seq, waited)}; "
        f"its answers compared; stopped gracefully"
    )


def stage_sqlite(cluster):
    """6. The log holds every acknowledged write; SQLite fed it in log order answers alike."""
    test, options = cluster.test, cluster.test.options
    changes, acks = check_log(test, cluster.url, cluster.converged)
    cluster.checked_acks = acks
    sqlite = Server(
        cluster.binary, os.path.join(cluster.directory, "replay.db"), cluster.log_path("sqlite"), name="sqlite"
    )
    cluster.extra.append(sqlite)
    sqlite.start(options.ready_timeout, http_timeout=options.timeout)
    replay_started = time.monotonic()
    counts = replay_on_sqlite(test, changes, sqlite.port)
    replay_took = time.monotonic() - replay_started
    sqlite_stats = stats_of(sqlite.port, options.timeout) or {}
    if sqlite_stats.get("backend") != "sqlite":
        test.violate(f"the SQLite server's /v1/stats says backend {sqlite_stats.get('backend')!r}")
    snap = snapshot(test, sqlite.port, cluster.plan)
    compare_all(test, cluster.replicas[0].name, cluster.reference, [("sqlite", snap)])
    stop_gracefully(test, sqlite)
    return (
        f"log: {len(changes)} changes ({describe_log(changes)}), {acks} acknowledged writes checked "
        f"against it; replayed on SQLite in {replay_took:.1f} s: {counts['patterns']} stores, "
        f"{counts['placed_differently']} placed other than logged; answers compared"
    )


def stage_kill(cluster):
    """7. kill -9 of one replica under load; every acknowledged write readable everywhere."""
    test, options, replicas = cluster.test, cluster.test.options, cluster.replicas
    victim = test.rng.choice(replicas)
    cluster.survivors = [r for r in replicas if r is not victim]
    kill = (victim, test.rng.uniform(1.0, max(1.5, options.write_seconds / 2)))
    shared = test.shared_s + test.shared_k
    phase, took, killed_at = write_phase(test, replicas, shared, options.write_seconds, options.max_writes, kill=kill)
    if not phase.counters.by_replica.get(victim.name):
        test.violate(f"{victim.name} acknowledged no write before it was killed: the kill tested nothing")
    floor = log_head(cluster.url)
    label = "after the kill, survivors"
    checked, res_present, res_absent = verify_items(test, cluster.survivors, test.items, label, floor)
    restart_took = victim.start(options.ready_timeout, options.timeout)
    verify_items(test, [victim], test.items, "restarted after kill -9", floor)
    return (
        f"{victim.name} killed after {killed_at:.1f} s of writes ({took:.1f} s in all): "
        f"{phase_summary(phase, replicas)}; read-your-writes {phase.counters['ryw']} "
        f"({phase.counters['ryw_failed']} failed); {checked} ids checked on the survivors, uncertain "
        f"resolved present {res_present}, absent {res_absent}; restarted in {restart_took:.1f} s, "
        f"ids checked on it too"
    )


def stage_caught_up(cluster):
    """8. The restarted replica caught up; identical answers; the log holds every acknowledged write."""
    test, replicas, survivors = cluster.test, cluster.replicas, cluster.survivors
    converged, took = converge(test, replicas)
    changes, acks = check_log(test, cluster.url, converged, since=cluster.checked_acks)
    plan = make_plan(test, test.rng)
    reference = snapshot(test, survivors[0].port, plan)
    others = [(r.name, snapshot(test, r.port, plan)) for r in replicas if r is not survivors[0]]
    compare_all(test, survivors[0].name, reference, others)
    for replica in replicas:
        stop_gracefully(test, replica)
    return (
        f"{converged_text(converged, took)}; {acks} more acknowledged writes (stage 7's) checked against the log; "
        f"{snapshot_summary(reference)} compared on 3 replicas; stopped gracefully"
    )


STAGES = {
    1: stage_start,
    2: stage_writes,
    4: stage_converge,
    5: stage_fresh_replica,
    6: stage_sqlite,
    7: stage_kill,
    8: stage_caught_up,
}


# ---------------------------------------------------------------------------------------------
# Fixtures and tests


def options_from_environment():
    return Options(keep=os.environ.get("DENDRITE_TEST_KEEP") == "1")


def log_tails(processes):
    return [(f"{getattr(p, 'name', 'server')} log", p.log_tail(8)) for p in processes]


@pytest.fixture(scope="module")
def cluster(binary, postgres_url, seed):
    options = options_from_environment()
    test = ReplicaRun(options, random.Random(seed))
    directory = tempfile.mkdtemp(prefix="dendrite-replicas-")
    print(
        f"replica test: 3 replicas, {options.clients} clients, up to {options.max_writes} patterns in "
        f"{options.write_seconds:g} s per write phase, binary {binary}, logs in {directory}",
        flush=True,
    )
    made = Cluster(test, binary, postgres_url, directory)
    try:
        yield made
    finally:
        made.close()
        if test.violations.count:
            print(f"logs kept in {directory}")
        else:
            harness.keep_or_remove(directory, options.keep)


def check_stage(cluster, number):
    """Runs stage `number` (and any before it not yet run); fails with the violations it added."""
    violations = cluster.test.violations
    before, kept_before = violations.count, len(violations.kept)
    cluster.run(number)
    added = violations.count - before
    if added:
        listed = "\n".join(f"  - {m}" for m in violations.kept[kept_before:])
        more = added - (len(violations.kept) - kept_before)
        tails = "".join(
            f"\n{label} (last lines):\n{tail}" for label, tail in log_tails(cluster.processes()) if tail.strip()
        )
        raise AssertionError(f"{added} violation(s):\n{listed}" + (f"\n  ... and {more} more" if more else "") + tails)


def test_replicas_start_and_serve_the_space(cluster):
    check_stage(cluster, 1)


def test_writes_spread_over_replicas(cluster):
    check_stage(cluster, 2)


def test_replicas_converge_to_identical_answers(cluster):
    check_stage(cluster, 4)


def test_fresh_replica_answers_alike(cluster):
    check_stage(cluster, 5)


def test_sqlite_fed_the_log_answers_alike(cluster):
    check_stage(cluster, 6)


def test_kill9_loses_no_acknowledged_write(cluster):
    check_stage(cluster, 7)


def test_restarted_replica_catches_up(cluster):
    check_stage(cluster, 8)


def test_shard_groups(binary, postgres_url, seed):
    """9. Two shard groups on another fresh database, requests routed as deploy/nginx.conf routes them."""
    options = options_from_environment()
    test = ReplicaRun(options, random.Random(seed))
    directory = tempfile.mkdtemp(prefix="dendrite-replicas-shards-")
    name = f"dendrite_replica_test_{secrets.token_hex(4)}_shards"
    processes = []
    try:
        url = create_database(postgres_url, name)
        try:
            summary = shard_groups(
                test, binary, url, lambda label: os.path.join(directory, f"{label}.log"), processes, test.rng
            )
            print(f"stage 9: {summary}")
        except (RuntimeError, NoAnswer) as error:
            test.violate(f"aborted: {error}")
        finally:
            for process in processes:
                process.kill9()
            if options.keep:
                print(f"database kept: {url}")
            else:
                drop_database(postgres_url, name)
        test.violations.assert_none("shard groups", log_tails(processes))
    finally:
        if test.violations.count:
            print(f"logs kept in {directory}")
        else:
            harness.keep_or_remove(directory, options.keep)


# ---------------------------------------------------------------------------------------------
# The helpers, without a server (these were the script's --self-check)


def test_helper_shard_rules():
    route, lists = shard_rules()
    assert route("/v1/spaces/november/query") == "shard_two" and route("/v1/spaces/alpha") == "shard_one"
    assert route("/v1/stats") == "shard_one" and sorted(lists) == ["shard_one", "shard_two"]
    assert served_by("a*,b", "alpha") and served_by("a*,b", "b") and not served_by("a*,b", "bb")
    assert Options().clients == 12 and not Options().keep


def test_helper_database_url():
    assert (
        database_url("postgres://dendrite@127.0.0.1:5432/postgres", "t_1") == "postgres://dendrite@127.0.0.1:5432/t_1"
    )
    assert (
        database_url("postgresql://u:p@h:1/postgres?sslmode=disable", "x") == "postgresql://u:p@h:1/x?sslmode=disable"
    )
    assert database_url("postgres://u@h:1", "x") == "postgres://u@h:1/x"
    for bad in ("sqlite:///tmp/x.db", "postgres:///postgres"):
        try:
            database_url(bad, "x")
        except ValueError:
            pass
        else:
            raise AssertionError(f"database_url accepted {bad}")


def test_helper_strip_volatile_and_first_difference():
    answer = {"name": "s", "counts": {"neurons": 2, "memory_bytes": 10}, "l": [{"memory_bytes": 1, "a": 1}]}
    assert strip_volatile(answer) == {"name": "s", "counts": {"neurons": 2}, "l": [{"a": 1}]}
    assert answer["counts"]["memory_bytes"] == 10  # the original is untouched
    other = copy.deepcopy(answer)
    other["counts"]["memory_bytes"] = 99
    assert first_difference(strip_volatile(answer), strip_volatile(other)) is None
    other["counts"]["neurons"] = 3
    assert first_difference(strip_volatile(answer), strip_volatile(other)) == ("$.counts.neurons", 2, 3)
    assert first_difference([1, 2], [1, 2, 3]) == ("$.length", 2, 3)
    assert first_difference({"a": 1}, {"b": 1}) == ("$.a", 1, "<missing>")
    assert first_difference(1, 1.0) == ("$", 1, 1.0)  # 1 and 1.0 are different JSON answers
    assert first_difference({"p": {"value": 0.0, "log10": None}}, {"p": {"value": 0.0, "log10": None}}) is None


def test_helper_compare_snapshots():
    a = {"query 000": [200, {"matches": []}], "space": [200, {"x": 1}]}
    b = {"query 000": [200, {"matches": [{"neuron": "n"}]}], "space": [200, {"x": 1}], "extra": [404, None]}
    messages = compare_snapshots("r0", a, "r1", b)
    assert len(messages) == 2 and "query 000" in messages[1] and "extra" in messages[0], messages
    assert compare_snapshots("r0", a, "r1", copy.deepcopy(a)) == []


def test_helper_parse_sequence_and_min_sequence():
    assert parse_sequence({"dendrite-sequence": "17"}) == 17
    assert parse_sequence({"dendrite-sequence": " 3 "}) == 3
    for bad in ({}, {"dendrite-sequence": "-1"}, {"dendrite-sequence": "x"}, {"dendrite-sequence": ""}):
        assert parse_sequence(bad) is None
    assert with_min_sequence("/a", 5) == "/a?min_sequence=5"
    assert with_min_sequence("/a?limit=1", 5) == "/a?limit=1&min_sequence=5"
    assert with_min_sequence("/a", 0) == "/a"


def test_helper_noisy_and_item():
    rng = random.Random(1)
    bits = random_bits(rng)
    for fraction in (0.0, 0.25, 1.0):
        changed = noisy(bits, rng, fraction)
        assert len(changed) == len(set(changed)) == 40 and changed == sorted(changed)
        assert all(0 <= b < N for b in changed)
        assert len(set(changed) & set(bits)) >= 40 - round(40 * fraction)
    assert noisy(bits, rng, 0.0) == bits

    item = Item("hot-0", "s1", bits)
    assert item.path() == f"/v1/spaces/{SPACE}/neurons/hot-0/patterns/s1" and item.state == "absent"


def logged_store(seq, neuron, id_, active):
    pattern = {"space": SPACE, "neuron": neuron, "id": id_, "segment": 0, "active": active, "synapses": active}
    return (seq, "store", {"kind": "store", "patterns": [pattern]})


def sample_log():
    text = (
        "\n".join(
            f"{seq}|{kind}|{json.dumps(body)}"
            for seq, kind, body in [
                (1, "create_space", {"space": SPACE, "params": {"input_size": 2048}}),
                logged_store(2, "hot-0", "s1", [1, 2]),
                (3, "forget", {"space": SPACE, "neuron": "hot-0", "id": "s1"}),
                logged_store(4, "doomed", "d1", [5, 6]),
                (5, "delete_neuron", {"space": SPACE, "neuron": "doomed"}),
                logged_store(7, "hot-0", "s1", [1, 2]),
            ]
        )
        + "\n\n"
    )  # seq 6 missing: gaps are allowed
    changes = parse_changes(text)
    assert [c[:2] for c in changes] == [
        (1, "create_space"),
        (2, "store"),
        (3, "forget"),
        (4, "store"),
        (5, "delete_neuron"),
        (7, "store"),
    ]
    assert changes[1][2]["patterns"][0]["active"] == [1, 2]
    assert describe_log(changes) == "1 create_space, 1 delete_neuron, 1 forget, 3 store"
    return changes


def test_helper_log_mismatches():
    changes = sample_log()
    good = [
        (1, "create_space", None, None, None),
        (2, "store", "hot-0", "s1", [1, 2]),
        (3, "forget", "hot-0", "s1", None),
        (4, "forget", "hot-0", "s1", None),  # visible at a later seq
        (4, "store", "doomed", "d1", [5, 6]),
        (5, "delete_neuron", "doomed", None, None),
        (6, "delete_neuron", "doomed", None, None),
        (7, "store", "hot-0", "s1", [1, 2]),
        (9, "store", "hot-0", "s1", [1, 2]),
    ]  # an "already stored" answer at a later applied sequence
    assert log_mismatches(changes, good) == [], log_mismatches(changes, good)
    wrong = log_mismatches(
        changes,
        [
            (2, "store", "hot-0", "s1", [1, 3]),  # other bits
            (3, "store", "hot-0", "s1", [1, 2]),  # "stored" at 3, but forgotten by then
            (1, "store", "hot-0", "s1", [1, 2]),  # not stored yet at 1
            (5, "store", "doomed", "d1", [5, 6]),  # its neuron deleted at 5
            (2, "forget", "hot-0", "s1", None),  # not forgotten by 2
            (7, "forget", "hot-0", "s1", None),  # stored again at 7
            (4, "delete_neuron", "doomed", None, None),
            (9, "store", "hot-1", "x", [1, 2]),
        ],
    )  # never stored
    assert len(wrong) == 8, wrong
    assert (
        "other bits" in wrong[0]
        and "forget at seq 3" in wrong[1]
        and "is none" in wrong[2]
        and "deletion of the neuron at seq 5" in wrong[3]
        and "no forget" in wrong[4]
        and "no forget" in wrong[5]
        and "no deletion" in wrong[6]
        and "is none" in wrong[7]
    ), wrong
    assert converged_text(None, 1.0).startswith("NOT converged")
