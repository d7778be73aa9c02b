#!/usr/bin/env python3
"""Online backups on the standard workload: how long POST /v1/admin/backup takes idle and under
load, what a backup costs the clients meanwhile, and whether it holds every acknowledged write.

What it does
  - Starts `BINARY serve` on 127.0.0.1 (a free port) with a fresh SQLite file in a temporary
    directory, `--log-level warn`, `--backup-dir` in that directory and an API key it generates
    (`--api-key`, 48 hex characters). Every request but GET /healthz and GET /readyz sends
    `Authorization: Bearer <key>`; one request without it must be refused (401).
  - Creates the space "bench" (n=2048, a=40, s=24, theta=12) and stores the standard workload
    (load/workload.py: --neurons x --patterns-per-neuron patterns of 40 random bits of 2048,
    default 1000 x 100 = 100,000) with POST /v1/spaces/bench/patterns in batches of 2000 (bodies
    encoded beforehand; each must answer 200 with one result per pattern).
  - Idle backup: POST /v1/admin/backup three times, one after the other; reports the median time
    and the answer's `bytes` (the file's size), `patterns` and `last_write`. Each must answer 201
    and hold every stored pattern.
  - Backup under load: --clients threads (default 8, at least 2) for --seconds seconds (default
    20), each on one keep-alive connection, sending requests back to back: the even-numbered
    threads store single patterns (POST .../neurons/{neuron}/patterns, a new id `live-T-K` and 40
    random bits, on a random neuron of the workload; must answer 201), the odd-numbered ones query
    noisy copies of stored patterns (8 of 40 bits replaced, bodies encoded beforehand; must
    answer 200). Half-way through, one backup is taken. The load goes on until the window is over
    and at least 2 s after the backup answered. Reports the backup's time and answer, and for
    stores and queries, latency (p50, p99, max) and answers per second in three intervals:
      before  the 2 s before the backup request was sent (requests answered in them);
      during  the backup (requests that were in flight at any moment of it);
      after   the 2 s after it answered (requests sent in them).
  - Checks the backup under load against what the clients saw:
      count   the patterns it holds beyond the workload lie between the stores acknowledged before
              the backup request was sent and the stores sent before it answered;
      restore the first server is stopped, a second one is started (another free port) on a copy
              of the backup file; its GET /v1/stats must count the backup's patterns, and a sample
              of 200 stores acknowledged before the backup request was sent must each answer
              GET .../patterns/{id} with 200 and their bits;
      after   a sample of 200 stores sent after the backup answered must each answer 404 there.
  - Prints a summary block, with the command line, at the end.

Exit status: 0 when every check passed; 1 when one failed, a request got an unexpected status or
no answer, the set-up failed or a server died. Times and latencies are reported, never failed on.

Run from the repository root (release binary built):
    python3 load/backup.py                                     # 100,000 patterns, 8 clients, 20 s
    python3 load/backup.py --neurons 50 --patterns-per-neuron 20 --seconds 6   # a quick run
The clients are Python threads in one process: their own overhead is part of the latencies, and
it is the same in all three intervals. Traffic goes only to 127.0.0.1; the script stops by itself,
stops the servers it started and removes its temporary directory (unless --keep).
"""
import json
import os
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SPACE_PARAMS, NoAnswer, Server, percentile  # noqa: E402
import harness  # noqa: E402
import workload  # noqa: E402

SPACE = "bench"
BATCH = 2000
IDLE_RUNS = 3
WINDOW = 2.0  # seconds of the "before" and "after" intervals
SAMPLE = 200
QUERY_POOL = 4000


def connect(port, key, timeout):
    """A harness.Connection that sends `Authorization: Bearer <key>` with every request.

    It sends a request once more on a fresh connection only when it failed on a reused one (a
    stale keep-alive connection): the first request on a new Connection is never sent twice, so a
    backup gets a Connection of its own (see backup())."""
    return harness.Connection(port, timeout, headers={"authorization": f"Bearer {key}"})


def expect_json(connection, method, path, body=None, expect=(200,)):
    """The decoded answer of a request that must answer one of `expect`; RuntimeError otherwise."""
    status, raw = connection.call(method, path, body)
    if status not in expect:
        raise RuntimeError(f"{method} {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


class Record:
    """The requests of one client thread: (sent, answered, status, detail) each, appended only by
    its thread and read after it stopped. `detail` is (neuron, id, active) for a store."""

    def __init__(self, kind):
        self.kind = kind
        self.requests = []
        self.examples = []  # the first few unexpected answers


def storer(index, port, key, timeout, neurons, seed, stop, record):
    rng = random.Random(seed)
    client = connect(port, key, timeout)
    sequence = 0
    try:
        while not stop.is_set():
            neuron = workload.neuron_name(rng.randrange(neurons))
            active = workload.random_pattern(rng)
            pattern_id = f"live-{index}-{sequence}"
            sequence += 1
            body = json.dumps({"id": pattern_id, "active": active}).encode()
            sent = time.perf_counter()
            try:
                status, raw = client.call("POST", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns", body)
            except NoAnswer as error:
                status, raw = None, str(error).encode()
            record.requests.append((sent, time.perf_counter(), status, (neuron, pattern_id, active)))
            if status != 201:
                if len(record.examples) < 3:
                    record.examples.append(f"store {status}: {raw[:200]!r}")
                if status is None:
                    stop.wait(0.05)
    finally:
        client.close()


def querier(port, key, timeout, pool, seed, stop, record):
    rng = random.Random(seed)
    client = connect(port, key, timeout)
    try:
        while not stop.is_set():
            body = pool[rng.randrange(len(pool))]
            sent = time.perf_counter()
            try:
                status, raw = client.call("POST", f"/v1/spaces/{SPACE}/query", body)
            except NoAnswer as error:
                status, raw = None, str(error).encode()
            record.requests.append((sent, time.perf_counter(), status, None))
            if status != 200:
                if len(record.examples) < 3:
                    record.examples.append(f"query {status}: {raw[:200]!r}")
                if status is None:
                    stop.wait(0.05)
    finally:
        client.close()


def backup(port, key, timeout):
    """(seconds, answer) of one POST /v1/admin/backup on a fresh connection (so that it is never sent
    twice); RuntimeError unless 201."""
    client = connect(port, key, timeout)
    try:
        started = time.perf_counter()
        status, raw = client.call("POST", "/v1/admin/backup")
        took = time.perf_counter() - started
    finally:
        client.close()
    if status != 201:
        raise RuntimeError(f"POST /v1/admin/backup answered {status}: {raw[:300]!r}")
    return took, json.loads(raw)


def wait_until(deadline, server):
    """Sleeps until `deadline` (perf_counter); False as soon as the server has died."""
    while True:
        if not server.alive():
            return False
        left = deadline - time.perf_counter()
        if left <= 0:
            return True
        time.sleep(min(0.1, left))


def stats_line(latencies, answered, seconds):
    if not latencies:
        return f"{0:>6} {'-':>7} {'-':>8} {'-':>8} {'-':>8}"
    rate = answered / seconds if seconds > 0 else float("nan")
    return (f"{len(latencies):>6} {rate:>7,.0f} {percentile(latencies, 50) * 1000:>8.2f} "
            f"{percentile(latencies, 99) * 1000:>8.2f} {latencies[-1] * 1000:>8.2f}")


def command_line():
    """The command line this process was started with (from /proc when there is one), the
    interpreter named as the shell would find it (`python3`, not pyenv's full path)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            words = [w.decode(errors="replace") for w in f.read().split(b"\0") if w]
    except OSError:
        words = []
    if not words:
        words = [sys.executable, *sys.argv]
    if os.path.basename(words[0]).startswith("python"):
        words[0] = os.path.basename(words[0])
    return shlex.join(words)


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    parser = harness.argument_parser(__doc__)
    parser.add_argument("--neurons", type=int, default=workload.NEURONS,
                        help=f"workload neurons (default {workload.NEURONS})")
    parser.add_argument("--patterns-per-neuron", type=int, default=workload.PATTERNS,
                        help=f"workload patterns per neuron (default {workload.PATTERNS})")
    parser.add_argument("--clients", type=int, default=8, help="client threads under load (default 8, at least 2)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="load window in seconds, the backup taken half-way (default 20, at least 6)")
    parser.add_argument("--timeout", type=float, default=120.0, help="HTTP timeout in seconds (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, logs)")
    options = parser.parse_args()
    command = command_line()
    binary = harness.executable(options.binary, "backup")
    if binary is None:
        return 1
    if options.neurons < 1 or options.patterns_per_neuron < 1 or options.clients < 2 or options.seconds < 6:
        print("backup: --neurons and --patterns-per-neuron must be positive, --clients at least 2 "
              "and --seconds at least 6")
        return 1

    key = secrets.token_hex(24)
    directory = tempfile.mkdtemp(prefix="dendrite-backup-")
    backup_dir = os.path.join(directory, "backups")
    server_args = ["--api-key", key, "--backup-dir", backup_dir]
    server = Server(binary, os.path.join(directory, "d.db"), os.path.join(directory, "server.log"),
                    extra_args=server_args, die_with_parent=True)
    restored = Server(binary, os.path.join(directory, "restore", "d.db"),
                      os.path.join(directory, "restore.log"),
                      extra_args=["--api-key", key, "--backup-dir", os.path.join(directory, "restore", "backups")])
    harness.exit_on_sigterm()  # so that `finally` stops the servers
    stop = threading.Event()  # set: the client threads stop
    failures = []  # one line per failed check
    summary = []  # the summary block's lines
    total = options.neurons * options.patterns_per_neuron
    print(f"backup: {total:,} patterns ({options.neurons:,} neurons x {options.patterns_per_neuron}), "
          f"{options.clients} clients for {options.seconds:g} s, binary {binary}, data in {directory}")

    try:
        stores, _ = workload.generate(options.neurons, options.patterns_per_neuron, queries=0, seed=options.seed)
        bodies = [json.dumps({"patterns": [{"neuron": n, "active": a} for n, a in stores[i:i + BATCH]]}).encode()
                  for i in range(0, len(stores), BATCH)]
        rng = random.Random(options.seed + 1)
        pool = [json.dumps({"active": workload.noisy(rng, stores[rng.randrange(len(stores))][1])}).encode()
                for _ in range(QUERY_POOL)]

        ready = server.start(60.0)
        port = server.port
        setup = connect(port, key, options.timeout)
        with harness.Connection(port, options.timeout) as keyless:  # sends no key
            status, _ = keyless.call("GET", "/v1/stats")
        if status != 401:
            failures.append(f"GET /v1/stats without the key answered {status}, not 401")
        expect_json(setup, "PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS, expect=(201,))

        # 1. The standard workload through the batch endpoint.
        started = time.perf_counter()
        for first, body in zip(range(0, len(stores), BATCH), bodies):
            answer = expect_json(setup, "POST", f"/v1/spaces/{SPACE}/patterns", body)
            expected = min(BATCH, len(stores) - first)
            if len(answer.get("results", [])) != expected:
                raise RuntimeError(f"a batch of {expected} answered {len(answer.get('results', []))} results")
        load_seconds = time.perf_counter() - started
        loaded = expect_json(setup, "GET", "/v1/stats")["patterns"]
        print(f"server ready in {ready:.2f} s; stored {loaded:,} patterns in {load_seconds:.1f} s "
              f"({total / load_seconds:,.0f}/s)")
        if loaded != total:
            failures.append(f"the server counts {loaded:,} patterns after storing {total:,}")

        # 2. Idle backups.
        idle = [backup(port, key, options.timeout) for _ in range(IDLE_RUNS)]
        for took, answer in idle:
            print(f"idle backup: {took:.3f} s, {answer}")
            if answer["patterns"] != loaded:
                failures.append(f"idle backup {answer['name']} holds {answer['patterns']:,} patterns, not {loaded:,}")
        idle_median = median([took for took, _ in idle])
        idle_answer = idle[-1][1]

        # 3. A backup under load.
        records, threads = [], []
        for index in range(options.clients):
            record = Record("store" if index % 2 == 0 else "query")
            if record.kind == "store":
                args = (storer, (index, port, key, options.timeout, options.neurons,
                                 options.seed * 1000 + index, stop, record))
            else:
                args = (querier, (port, key, options.timeout, pool, options.seed * 1000 + index, stop, record))
            records.append(record)
            threads.append(threading.Thread(target=args[0], args=args[1], daemon=True))
        window_stats = expect_json(setup, "GET", "/v1/stats")
        begun = time.perf_counter()
        for thread in threads:
            thread.start()
        alive = wait_until(begun + options.seconds / 2, server)
        if not alive:
            raise RuntimeError(f"the server died under load (status {server.process.returncode})")
        sent = time.perf_counter()
        took, loaded_answer = backup(port, key, options.timeout)
        answered = sent + took
        print(f"backup under load: {took:.3f} s, {loaded_answer}")
        alive = wait_until(max(begun + options.seconds, answered + WINDOW), server)
        stop.set()
        ended = time.perf_counter()
        for thread in threads:
            thread.join(options.timeout + 5)
        if any(thread.is_alive() for thread in threads):
            failures.append("a client thread got no answer within the HTTP timeout")
        if not alive:
            raise RuntimeError(f"the server died under load (status {server.process.returncode})")

        errors = {}
        for record in records:
            ok = 201 if record.kind == "store" else 200
            for *_, status, _ in record.requests:
                if status != ok:
                    label = f"{record.kind} {status if status is not None else 'no answer'}"
                    errors[label] = errors.get(label, 0) + 1
        if errors:
            failures.append("unexpected answers under load: "
                            + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())))
            for record in records:
                for example in record.examples:
                    print(f"    e.g. {example}")

        store_requests = [r for record in records if record.kind == "store" for r in record.requests]
        query_requests = [r for record in records if record.kind == "query" for r in record.requests]
        acked_before = [r for r in store_requests if r[2] == 201 and r[1] < sent]
        sent_before_answer = [r for r in store_requests if r[0] < answered]
        sent_after = [r for r in store_requests if r[2] == 201 and r[0] >= answered]
        in_flight = sum(1 for r in store_requests if r[0] < sent < r[1])
        new_in_backup = loaded_answer["patterns"] - loaded
        count_ok = len(acked_before) <= new_in_backup <= len(sent_before_answer)
        if not count_ok:
            failures.append(f"the backup under load holds {new_in_backup:,} new patterns: not between the "
                            f"{len(acked_before):,} stores acknowledged before it and the "
                            f"{len(sent_before_answer):,} sent before it answered")

        def rows(requests):
            before = sorted(a - s for s, a, *_ in requests if sent - WINDOW <= a < sent)
            during = sorted(a - s for s, a, *_ in requests if s < answered and a > sent)
            after = sorted(a - s for s, a, *_ in requests if answered <= s < answered + WINDOW)
            answered_in = lambda lo, hi: sum(1 for _, a, *_ in requests if lo <= a < hi)  # noqa: E731
            return [("before", before, answered_in(sent - WINDOW, sent), WINDOW),
                    ("during", during, answered_in(sent, answered), answered - sent),
                    ("after", after, answered_in(answered, answered + WINDOW), WINDOW)]

        final_stats = expect_json(setup, "GET", "/v1/stats")
        setup.close()
        status = server.stop(timeout=30)
        if status != 0:
            failures.append(f"the first server stopped with status {status}")

        # Restore: a second server on a copy of the backup taken under load.
        os.makedirs(os.path.dirname(restored.database))
        shutil.copyfile(os.path.join(backup_dir, loaded_answer["name"]), restored.database)
        restore_ready = restored.start(120.0)
        check = connect(restored.port, key, options.timeout)
        restored_patterns = expect_json(check, "GET", "/v1/stats")["patterns"]
        if restored_patterns != loaded_answer["patterns"]:
            failures.append(f"the restored server counts {restored_patterns:,} patterns, the backup "
                            f"{loaded_answer['patterns']:,}")
        sampler = random.Random(options.seed + 2)
        sample = sampler.sample(acked_before, min(SAMPLE, len(acked_before)))
        present = 0
        for *_, (neuron, pattern_id, active) in sample:
            status, raw = check.call("GET", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns/{pattern_id}")
            if status == 200 and json.loads(raw).get("active") == active:
                present += 1
            elif len(failures) < 20:
                failures.append(f"acknowledged before the backup, {neuron}/{pattern_id} answered {status} "
                                f"from the restored server: {raw[:200]!r}")
        late_sample = sampler.sample(sent_after, min(SAMPLE, len(sent_after)))
        absent = 0
        for *_, (neuron, pattern_id, _) in late_sample:
            status, raw = check.call("GET", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns/{pattern_id}")
            if status == 404:
                absent += 1
            elif len(failures) < 20:
                failures.append(f"sent after the backup answered, {neuron}/{pattern_id} answered {status} "
                                f"from the restored server, not 404")
        if not sample:
            failures.append("no store was acknowledged before the backup: nothing to check")
        if not late_sample:
            failures.append("no store was sent after the backup answered: nothing to check")
        check.close()
        status = restored.stop(timeout=30)
        if status != 0:
            failures.append(f"the restored server stopped with status {status}")

        # 4. The summary.
        stores_done = sum(1 for r in store_requests if r[2] == 201)
        writes = final_stats["writes_committed"] - window_stats["writes_committed"]
        commits = final_stats["commits"] - window_stats["commits"]
        summary += [
            f"command:      {command}",
            f"binary:       {binary}",
            f"workload:     {total:,} patterns ({options.neurons:,} neurons x {options.patterns_per_neuron}) "
            f"in space {SPACE}, stored in {load_seconds:.1f} s ({total / load_seconds:,.0f}/s, "
            f"batches of {BATCH})",
            f"idle backup:  median {idle_median:.3f} s of {IDLE_RUNS} "
            f"({', '.join(f'{t:.3f}' for t, _ in idle)}); {idle_answer['bytes']:,} bytes, "
            f"{idle_answer['patterns']:,} patterns, last_write {idle_answer['last_write']:,}",
            f"under load:   {options.clients} clients ({len(threads[::2])} store, {len(threads[1::2])} query) "
            f"for {ended - begun:.1f} s: {stores_done:,} stores, {len(query_requests):,} queries",
            f"  backup at {sent - begun:.1f} s took {took:.3f} s ({took / idle_median:.2f}x idle); "
            f"{loaded_answer['bytes']:,} bytes, {loaded_answer['patterns']:,} patterns, "
            f"last_write {loaded_answer['last_write']:,}",
            "  latency (ms)      n     /s      p50      p99      max",
        ]
        for kind, requests in (("store", store_requests), ("query", query_requests)):
            for name, latencies, count, seconds in rows(requests):
                summary.append(f"  {kind} {name:<7} {stats_line(latencies, count, seconds)}")
        summary += [
            "  before: answered in the 2 s before the backup was sent; during: in flight at any moment of it;",
            "  after: sent in the 2 s after it answered; /s: answers arriving in the interval per second",
            f"  writes per commit under load: {writes / max(commits, 1):.1f} ({writes:,} writes in "
            f"{commits:,} commits)",
            f"count:        backup holds {new_in_backup:,} patterns beyond the workload; "
            f"{len(acked_before):,} stores acknowledged before it was sent, {in_flight} in flight then, "
            f"{len(sent_before_answer):,} sent before it answered: {'ok' if count_ok else 'FAILED'}",
            f"restore:      second server on a copy (port {restored.port}, first {port}) ready in "
            f"{restore_ready:.2f} s, {restored_patterns:,} patterns; {present}/{len(sample)} sampled stores "
            f"acknowledged before the backup was sent answered 200 with their bits: "
            f"{'ok' if present == len(sample) and sample else 'FAILED'}",
            f"after:        {absent}/{len(late_sample)} sampled stores sent after the backup answered are "
            f"absent (404): {'ok' if absent == len(late_sample) and late_sample else 'FAILED'}",
            f"client errors: {', '.join(f'{k} x{v}' for k, v in sorted(errors.items())) or 'none'}",
        ]
    except Exception as error:  # set-up failures, a dead server, bugs: report, exit 1
        failures.append(f"{type(error).__name__}: {error}")
    finally:
        stop.set()
        for each in (server, restored):
            if each.alive():
                each.stop(timeout=30)

    if failures:
        for each in (server, restored):
            tail = each.log_tail(lines=None, max_bytes=2000).strip()
            if tail:
                print(f"{os.path.basename(each.log_path)} (tail):\n{tail}")
    print()
    print("== load/backup.py summary ==")
    if not summary:
        summary.append(f"command:      {command}")
    for line in summary:
        print(line)
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"result:       {'FAILED' if failures else 'all checks passed'}")
    if options.keep:
        print(f"kept {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
