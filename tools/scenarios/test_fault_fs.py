"""Storage-fault test: the server on a real filesystem that fills up, and one that turns read-only.

Why it exists: a full or read-only disk must cost the service its writes, answered as such (507
or 503 with Retry-After), never its reads, its process or an acknowledged write; and the writes
must come back by themselves once the disk does. Only a real filesystem shows that.

How it runs
  Each test re-runs itself (`python -m pytest tools/scenarios/test_fault_fs.py::NAME`) under
  `unshare -rm`, an unprivileged user and mount namespace; if `unshare -rm true` fails the test is
  skipped ("unshare -rm not available"). Inside, it mounts an 8 MiB tmpfs on a temporary directory
  DIR and runs `dendrite serve` on 127.0.0.1 (a free port) with its database at DIR/dendrite.db.
  The mounts disappear with the namespace.

Scenario and checks (each check is printed PASS/FAIL; the test fails if any failed)
  test_database_on_full_and_read_only_filesystem:
  1. before: create the space "faults" (n=2048, a=40, s=24, theta=12), store patterns and forget some;
     create the space "doomed" and store 3,000 patterns in it (more than one purge step removes).
  2. disk full: write a filler file with dd that takes all but RESERVE_KIB of the free space, then
     store batches of patterns until a write is refused. Every refused write (batch, single store,
     forget) must answer 507 or 503, as application/problem+json, with a Retry-After header;
     while degraded GET /readyz answers 503 and GET /healthz 200; queries and GET of a stored
     pattern answer 200. Forgets are tried too (204 or 507/503 are both acceptable while full).
     A backup is refused with 507 and leaves no file. DELETE /v1/spaces/doomed is tried: 204, or
     507/503 problem+json (its commit is one small row; removing its rows then goes on in steps,
     which the full disk may refuse until space is freed).
  3. recovery: delete the filler; within RECOVER_SECONDS a store answers 201 and /readyz 200,
     with the same server process (no restart). A backup is written. Forgets answer 204 again.
     "doomed" is deleted if the full disk refused it, then created again: 201 once its old rows
     are gone (the re-creation waits for them), within 30 s.
  4. read-only: a read-only tmpfs over the backup folder makes a backup answer 503 while the
     service goes on serving. Then `mount -o remount,ro DIR`; stores and forgets must answer 503
     (problem+json, Retry-After), reads (GET pattern, query, /healthz) keep answering 200; then
     `mount -o remount,rw DIR` and within RECOVER_SECONDS a store answers 201 and /readyz 200.
     Linux refuses a read-only remount (EBUSY) while any file on the filesystem is open for
     writing, which a running server's SQLite files are; when the kernel refuses, this phase is
     reported as NOT EXERCISED (not as a server failure).
  5. after: more stores and forgets; then kill -9 the server, restart it on the same file, and
     verify that every acknowledged store (2xx) is present with the same bits and every
     acknowledged forget (204) is gone. Writes answered otherwise (no answer, 500, ...) are
     "uncertain": either state is accepted and the real one is reported. "doomed" is there, empty.
  test_backup_disk_sized_for_kept_backups:
  6. a backup disk with room for --backup-keep 2 backups: the third backup removes the oldest
     first and is written, and the two newest are kept.

Everything is bounded in time (the outer test kills the inner run after its time limit); every
server started is killed on exit. Traffic goes only to 127.0.0.1.

Run (from the repository root):
    target/test-venv/bin/python -m pytest tools/scenarios/test_fault_fs.py    # DENDRITE_BINARY picks the binary
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

from tools import harness
from tools.harness import SPACE_PARAMS, Checks, NoAnswer, Server, random_bits

SPACE = "faults"
REFUSED = (503, 507)
INSIDE = "DENDRITE_FAULT_FS_INSIDE"  # set in the namespace: the test runs its body there
BATCH = 200  # patterns per batch while filling
RESERVE_KIB = 1536  # free space the filler leaves
RECOVER_SECONDS = 10.0  # how fast writes must come back
SEED = 1


# ---------------------------------------------------------------------------------------------
# running inside the namespace


def unshare_available():
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def rerun_in_namespace(test_name, binary, time_limit):
    """Runs this module's `test_name` again under `unshare -rm`, its body there (INSIDE set);
    fails unless it passes within `time_limit` seconds."""
    if not unshare_available():
        pytest.skip("unshare -rm not available")
    command = ["unshare", "-rm", sys.executable, "-m", "pytest", "-q", "-s", f"{__file__}::{test_name}"]
    env = dict(os.environ, **{INSIDE: "1", "DENDRITE_BINARY": binary})
    print(f"fault test: binary {binary}; in a namespace: {' '.join(command)}", flush=True)
    child = subprocess.Popen(command, env=env, cwd=harness.ROOT)
    try:
        code = child.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        pytest.fail(f"the run took longer than {time_limit:g} s; stopped it")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert code == 0, f"the run in the namespace failed (exit status {code}): its output is above"


def inside_namespace():
    """True in the re-run under unshare, where SIGTERM (the outer time limit) ends the test
    through `finally`, so the server is stopped and the mounts undone."""
    if os.environ.get(INSIDE) != "1":
        return False
    harness.exit_on_sigterm()
    return True


# ---------------------------------------------------------------------------------------------
# plumbing


def call(port, method, path, body=None, timeout=10.0):
    """One request on a fresh connection: (status, headers with lower-case names, decoded body)."""
    status, headers, raw = harness.request_once(port, method, path, body, timeout)
    return status, headers, harness.decode(raw, limit=200)


class Model:
    """What the server acknowledged: (neuron, id) -> [bits, state]; state present/absent/uncertain."""

    def __init__(self, rng):
        self.rng = rng
        self.items = {}
        self.acked_stores = self.acked_forgets = 0
        self.counter = 0

    def new(self, neuron, prefix):
        self.counter += 1
        return neuron, f"{prefix}{self.counter}", random_bits(self.rng)

    def present(self):
        return [k for k, v in self.items.items() if v[1] == "present"]


def refusal_problems(status, headers):
    """What is wrong with a refused write's answer: it must be 507/503, problem+json, Retry-After."""
    ctype = headers.get("content-type", "")
    problems = []
    if status not in REFUSED:
        problems.append(f"status {status} (expected 507 or 503)")
    if not ctype.startswith("application/problem+json"):
        problems.append(f"content-type {ctype!r}")
    if "retry-after" not in headers:
        problems.append("no Retry-After header")
    return problems


def refusal_ok(checks, what, status, headers, body):
    problems = refusal_problems(status, headers)
    detail = "; ".join(problems)
    if problems and isinstance(body, dict):
        detail += f"; body type={body.get('type')} detail={str(body.get('detail'))[:120]!r}"
    return checks.check(not problems, f"{what} refused as 507/503 problem+json with Retry-After", detail)


def read_only_refused(checks, what, answer):
    """On the read-only filesystem a write (`what`: store, batch store, forget) must answer 503,
    problem+json, with Retry-After."""
    if answer is None:
        checks.check(False, f"read-only: a {what} gets an answer", "no answer")
        return
    status, headers, body = answer
    checks.check(status == 503, f"read-only: a {what} answers 503", f"status {status}")
    refusal_ok(checks, f"read-only: the {what}", status, headers, body)


def store_one(port, model, key, bits):
    """Single store; updates the model; returns (status, headers, body) or None on no answer."""
    neuron, id_ = key
    try:
        status, headers, body = call(
            port, "POST", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns", {"active": bits, "id": id_}
        )
    except NoAnswer:
        model.items[key] = [bits, "uncertain"]
        return None
    if status in (200, 201):
        model.items[key] = [bits, "present"]
        model.acked_stores += 1
    elif status in REFUSED:
        model.items.setdefault(key, [bits, "absent"])
    else:
        model.items[key] = [bits, "uncertain"]
    return status, headers, body


def store_batch(port, model, entries):
    """Batch store of [(neuron, id, bits)]; all or nothing. Returns (status, headers, body) or None."""
    body = {"patterns": [{"neuron": n, "id": i, "active": b} for n, i, b in entries]}
    try:
        status, headers, answer = call(port, "POST", f"/v1/spaces/{SPACE}/patterns", body, timeout=30)
    except NoAnswer:
        for n, i, b in entries:
            model.items[(n, i)] = [b, "uncertain"]
        return None
    for n, i, b in entries:
        if status == 200:
            model.items[(n, i)] = [b, "present"]
            model.acked_stores += 1
        elif status in REFUSED:
            model.items.setdefault((n, i), [b, "absent"])
        else:
            model.items[(n, i)] = [b, "uncertain"]
    return status, headers, answer


def forget_one(port, model, key):
    neuron, id_ = key
    try:
        status, headers, body = call(port, "DELETE", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns/{id_}")
    except NoAnswer:
        model.items[key][1] = "uncertain"
        return None
    if status == 204:
        model.items[key][1] = "absent"
        model.acked_forgets += 1
    elif status not in REFUSED:
        model.items[key][1] = "uncertain"
    return status, headers, body


def reads_work(checks, port, model, when):
    key = model.rng.choice(model.present())
    bits = model.items[key][0]
    try:
        status, _, body = call(port, "GET", f"/v1/spaces/{SPACE}/neurons/{key[0]}/patterns/{key[1]}")
        checks.check(
            status == 200 and body.get("active") == bits,
            f"{when}: GET of a stored pattern answers 200",
            f"status {status}",
        )
        status, _, body = call(port, "POST", f"/v1/spaces/{SPACE}/query", {"active": bits})
        checks.check(
            status == 200 and any(m.get("neuron") == key[0] for m in body.get("matches", [])),
            f"{when}: a query answers 200 and recognises a stored pattern",
            f"status {status}",
        )
        status = call(port, "GET", "/healthz")[0]
        checks.check(status == 200, f"{when}: /healthz answers 200", f"status {status}")
    except NoAnswer as error:
        checks.check(False, f"{when}: reads answer", str(error))


def wait_recovered(checks, server, model, when, seconds):
    """Polls: a store must answer 201 and /readyz 200 within `seconds`, same process."""
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    stored_at = ready_at = None
    last = None
    while time.monotonic() < deadline and (stored_at is None or ready_at is None):
        try:
            if stored_at is None:
                neuron, id_, bits = model.new("after", "r")
                answer = store_one(server.port, model, (neuron, id_), bits)
                last = answer[0] if answer else "no answer"
                if answer and answer[0] == 201:
                    stored_at = time.monotonic() - started
            if ready_at is None and call(server.port, "GET", "/readyz")[0] == 200:
                ready_at = time.monotonic() - started
        except NoAnswer:
            last = "no answer"
        time.sleep(0.2)
    checks.check(
        stored_at is not None,
        f"{when}: a store answers 201 again within {seconds:g} s without a restart",
        f"last store answered {last}",
    )
    checks.check(ready_at is not None, f"{when}: /readyz answers 200 again within {seconds:g} s")
    checks.check(server.alive(), f"{when}: the same server process is still running")
    if stored_at is not None and ready_at is not None:
        print(f"  (writes back after {stored_at:.2f} s, ready after {ready_at:.2f} s)")


def run_mount(*args):
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=20)
    return result.returncode, (result.stderr or result.stdout).strip()


# ---------------------------------------------------------------------------------------------
# the scenario on the database's filesystem (phases 1 to 5)


@dataclass
class Run:
    """What the phases share: the server on DIR, the checks made, what was acknowledged."""

    directory: str
    server: Server
    deadline: float
    checks: Checks = field(default_factory=Checks)
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))
    model: Model = None
    doomed_deleted: bool = False

    def __post_init__(self):
        self.model = Model(self.rng)

    @property
    def port(self):
        return self.server.port

    @property
    def backups(self):
        return os.path.join(self.directory, "backups")

    @property
    def filler(self):
        return os.path.join(self.directory, "filler")


def before_faults(run):
    """1. Stores and forgets on a healthy disk; the space "doomed" filled for a deletion later."""
    print("1. before the faults: stores and forgets")
    model, port = run.model, run.port
    for k in range(40):
        neuron, id_, bits = model.new(f"pre{k % 4}", "b")
        store_one(port, model, (neuron, id_), bits)
    for key in run.rng.sample(model.present(), 10):
        forget_one(port, model, key)
    run.checks.check(
        model.acked_stores == 40 and model.acked_forgets == 10,
        "40 stores answered 2xx and 10 forgets 204",
        f"{model.acked_stores} stores, {model.acked_forgets} forgets acknowledged",
    )
    call(port, "PUT", "/v1/spaces/doomed", SPACE_PARAMS)
    doomed = [{"neuron": f"d{k % 30}", "active": random_bits(run.rng)} for k in range(3000)]
    for first in range(0, len(doomed), 1000):
        status, _, body = call(port, "POST", "/v1/spaces/doomed/patterns", {"patterns": doomed[first : first + 1000]})
        if status != 200:
            raise RuntimeError(f"filling doomed answered {status}: {body}")


def write_filler(run):
    """A file taking all but RESERVE_KIB of the free space."""
    stat = os.statvfs(run.directory)
    free = stat.f_bavail * stat.f_frsize
    blocks = max(0, (free - RESERVE_KIB * 1024) // 65536)
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={run.filler}", "bs=65536", f"count={blocks}", "status=none"],
        check=True,
        timeout=30,
    )
    stat = os.statvfs(run.directory)
    print(f"  filler of {blocks * 64} KiB written; {stat.f_bavail * stat.f_frsize // 1024} KiB left")


def fill_until_refused(run):
    """Batches until one is refused, then ever smaller ones down to single stores, so that the
    disk is really full (a refused big batch leaves room for smaller writes). Returns the refused
    writes: (what, status, headers, body)."""
    model, rng = run.model, run.rng
    refusals = []
    size, batches, stored_before = BATCH, 0, len(model.present())
    fill_deadline = min(run.deadline, time.monotonic() + 40)
    while time.monotonic() < fill_deadline and batches < 2000:
        if size > 1:
            answer = store_batch(run.port, model, [model.new(f"fill{rng.randrange(20)}", "f") for _ in range(size)])
            what = f"batch store of {size}"
        else:
            neuron, id_, bits = model.new(f"fill{rng.randrange(20)}", "f")
            answer = store_one(run.port, model, (neuron, id_), bits)
            what = "single store"
        batches += 1
        if answer is None:
            run.checks.check(False, "a store while filling gets an answer", "no answer")
            break
        if answer[0] in (200, 201):
            continue
        refusals.append((what, *answer))
        if size == 1:
            break
        size //= 2
    print(
        f"  {batches} store requests sent while filling; {len(model.present()) - stored_before} more "
        f"patterns stored; {len(refusals)} refused, the last a single store: {size == 1 and bool(refusals)}"
    )
    if not run.checks.check(
        bool(refusals) and size == 1,
        "filling the filesystem makes even a single store fail",
        f"{len(refusals)} refusals, smallest batch tried {size}",
    ):
        raise RuntimeError("the filesystem never filled up; cannot go on")
    return refusals


def readiness(run, expected, what, wait):
    """Polls /readyz for up to `wait` seconds until it answers `expected`; checks it did."""
    until = time.monotonic() + wait
    while True:
        try:
            seen = call(run.port, "GET", "/readyz")[0]
        except NoAnswer:
            seen = "no answer"
        if seen == expected or time.monotonic() >= until:
            break
        time.sleep(0.1)
    run.checks.check(seen == expected, what, f"status {seen}")


def more_writes_while_full(run, refusals):
    """Forgets and one more batch on the full disk; what is refused joins `refusals`."""
    forgets_accepted = 0
    for key in run.rng.sample(run.model.present(), 3):
        answer = forget_one(run.port, run.model, key)
        if answer is None:
            run.checks.check(False, "a forget on a full disk gets an answer", "no answer")
        elif answer[0] == 204:
            forgets_accepted += 1
        else:
            refusals.append(("forget", *answer))
    if forgets_accepted:
        run.checks.note(f"{forgets_accepted} of 3 forgets on the full disk were accepted (204)")
    answer = store_batch(run.port, run.model, [run.model.new("during", "d") for _ in range(50)])
    if answer is not None and answer[0] != 200:
        refusals.append(("batch store of 50", *answer))
    elif answer is not None:
        run.checks.note("a batch of 50 on the full disk was accepted after the forgets")


def refusals_well_formed(run, refusals):
    """Every write refused on the full disk answered 507/503 problem+json with Retry-After."""
    bad = [
        (what, status, problems)
        for what, status, headers, body in refusals
        for problems in [refusal_problems(status, headers)]
        if problems
    ]
    detail = ""
    if bad:
        what, status, problems = bad[0]
        body = next(r[3] for r in refusals if r[0] == what)
        detail = f"{len(bad)} of {len(refusals)} wrong, e.g. {what}: {'; '.join(problems)}" + (
            f"; type={body.get('type')}" if isinstance(body, dict) else ""
        )
    kinds = ", ".join(sorted({r[0] for r in refusals}))
    run.checks.check(
        not bad,
        f"every write refused on the full disk ({len(refusals)}: {kinds}) answered 507/503 problem+json with "
        f"Retry-After",
        detail,
    )
    print(f"  refusal statuses: {sorted({r[1] for r in refusals})}")


def backup_and_deletion_while_full(run):
    """A backup is a write too: refused like one, leaving no file. Then the deletion of "doomed"."""
    status, headers, body = call(run.port, "POST", "/v1/admin/backup", timeout=30.0)
    problems = refusal_problems(status, headers)
    run.checks.check(
        status == 507 and not problems,
        "disk full: a backup is refused with 507 problem+json",
        f"status {status}: {'; '.join(problems)} {body}",
    )
    left = os.listdir(run.backups) if os.path.isdir(run.backups) else []
    run.checks.check(not left, "disk full: the refused backup left no file behind", f"found {left}")
    readiness(run, 503, "still degraded before freeing space: /readyz answers 503", 0.0)
    # Last: its commit is one small row, which may well fit, and a write that succeeds makes the
    # service ready again.
    status, headers, body = call(run.port, "DELETE", "/v1/spaces/doomed", timeout=30.0)
    run.doomed_deleted = status == 204
    run.checks.check(
        run.doomed_deleted or (status in REFUSED and not refusal_problems(status, headers)),
        "disk full: deleting a space answers 204 or 507/503 problem+json",
        f"status {status}: {body}",
    )
    run.checks.check(run.server.alive(), "disk full: the server process is still running")


def disk_full(run):
    """2. The disk filled up: writes refused as such, reads served, the process alive."""
    print("2. disk full")
    write_filler(run)
    refusals = fill_until_refused(run)
    readiness(run, 503, "while degraded (disk full) /readyz answers 503", 2.0)
    more_writes_while_full(run, refusals)
    refusals_well_formed(run, refusals)
    reads_work(run.checks, run.port, run.model, "disk full")
    backup_and_deletion_while_full(run)


def space_freed(run):
    """3. The filler removed: writes, backups and forgets come back without a restart."""
    print("3. space freed")
    os.remove(run.filler)
    wait_recovered(run.checks, run.server, run.model, "after freeing space", RECOVER_SECONDS)
    status, _, body = call(run.port, "POST", "/v1/admin/backup", timeout=30.0)
    complete = isinstance(body, dict) and os.path.isfile(os.path.join(run.backups, str(body.get("name"))))
    run.checks.check(
        status == 201 and complete,
        "after freeing space: a backup is written (201, file present)",
        f"status {status}: {body}",
    )
    if complete:
        # Its room is needed by the rest of the scenario.
        os.remove(os.path.join(run.backups, body["name"]))
    for key in run.rng.sample(run.model.present(), 5):
        answer = forget_one(run.port, run.model, key)
        run.checks.check(
            answer is not None and answer[0] == 204,
            "after freeing space: a forget answers 204",
            f"answered {answer[0] if answer else 'nothing'}",
        )
    if not run.doomed_deleted:
        status, _, body = call(run.port, "DELETE", "/v1/spaces/doomed", timeout=30.0)
        run.checks.check(status == 204, "after freeing space: deleting a space answers 204", f"status {status}: {body}")
    status, _, body = call(run.port, "PUT", "/v1/spaces/doomed", SPACE_PARAMS, timeout=30.0)
    run.checks.check(
        status == 201,
        "after freeing space: the deleted space's rows go and its name is free again",
        f"status {status}: {body}",
    )


def read_only_backup_folder(run):
    """A fresh read-only tmpfs over the backup folder (no file is open there, so this mount works
    where the database's remount cannot): a backup is refused, the service goes on."""
    os.makedirs(run.backups, exist_ok=True)
    code, message = run_mount("-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", run.backups)
    if not run.checks.check(code == 0, "a read-only tmpfs mounts over the backup folder", message):
        return
    try:
        status, headers, body = call(run.port, "POST", "/v1/admin/backup", timeout=30.0)
        problems = refusal_problems(status, headers)
        run.checks.check(
            status == 503 and not problems,
            "read-only backup folder: a backup is refused with 503 problem+json",
            f"status {status}: {'; '.join(problems)} {body}",
        )
        status = call(run.port, "POST", f"/v1/spaces/{SPACE}/query", {"active": [1, 2, 3]})[0]
        run.checks.check(
            status == 200,
            "read-only backup folder: the service goes on serving",
            f"a query answered {status}",
        )
    finally:
        unmounted = subprocess.run(["umount", run.backups], capture_output=True, text=True, timeout=20)
        run.checks.check(unmounted.returncode == 0, "the read-only backup folder unmounts", unmounted.stderr)


def writes_refused_read_only(run):
    """On the remounted read-only database: writes answer 503, reads 200."""
    model = run.model
    neuron, id_, bits = model.new("readonly", "o")
    read_only_refused(run.checks, "store", store_one(run.port, model, (neuron, id_), bits))
    entries = [model.new("readonly", "o") for _ in range(20)]
    read_only_refused(run.checks, "batch store", store_batch(run.port, model, entries))
    key = run.rng.choice(model.present())
    read_only_refused(run.checks, "forget", forget_one(run.port, model, key))
    reads_work(run.checks, run.port, model, "read-only")
    try:
        print(f"  (read-only: /readyz answers {call(run.port, 'GET', '/readyz')[0]})")
    except NoAnswer:
        pass


def read_only(run):
    """4. The backup folder, then the database's filesystem, read-only."""
    print("4. read-only filesystem")
    read_only_backup_folder(run)
    code, message = 1, ""
    for _ in range(10):
        code, message = run_mount("-o", "remount,ro", run.directory)
        if code == 0 or time.monotonic() > run.deadline:
            break
        time.sleep(0.2)
    if code != 0:
        run.checks.note(
            f"read-only phase NOT EXERCISED: `mount -o remount,ro` failed: {message!r} (Linux refuses a read-only "
            f"remount while a file on the filesystem is open for writing, as the running server's database is)"
        )
        return
    try:
        writes_refused_read_only(run)
    finally:
        code, message = run_mount("-o", "remount,rw", run.directory)
        run.checks.check(code == 0, "remount,rw succeeds", message)
    wait_recovered(run.checks, run.server, run.model, "after remounting read-write", RECOVER_SECONDS)


def read_back_everything(run):
    """Every id ever written, read on the restarted server: (missing, resurrected, wrong, resolved)."""
    missing, resurrected, wrong, unresolved = [], [], [], {"present": 0, "absent": 0}
    for (neuron, id_), (bits, state) in sorted(run.model.items.items()):
        if time.monotonic() > run.deadline + 10:
            run.checks.check(False, "verification finished in time")
            break
        try:
            status, _, body = call(run.port, "GET", f"/v1/spaces/{SPACE}/neurons/{neuron}/patterns/{id_}")
        except NoAnswer as error:
            run.checks.check(False, "verification reads answer", str(error))
            break
        if status == 200:
            if body.get("active") != bits:
                wrong.append(f"{neuron}/{id_}")
            if state == "absent":
                resurrected.append(f"{neuron}/{id_}")
            elif state == "uncertain":
                unresolved["present"] += 1
        elif status == 404:
            if state == "present":
                missing.append(f"{neuron}/{id_}")
            elif state == "uncertain":
                unresolved["absent"] += 1
        else:
            wrong.append(f"{neuron}/{id_} answered {status}")
    return missing, resurrected, wrong, unresolved


def after_faults(run):
    """5. More writes, kill -9, restart: every acknowledged write held."""
    print("5. after the faults: stores, forgets, kill -9, restart, verify")
    model = run.model
    for k in range(20):
        neuron, id_, bits = model.new(f"post{k % 4}", "a")
        answer = store_one(run.port, model, (neuron, id_), bits)
        if answer is None or answer[0] not in (200, 201):
            run.checks.check(
                False,
                "after the faults: a store answers 201",
                f"answered {answer[0] if answer else 'nothing'}",
            )
            break
    for key in run.rng.sample(model.present(), 10):
        forget_one(run.port, model, key)
    run.server.kill9()
    took = run.server.start(30.0, http_timeout=10.0)
    print(f"  restarted after kill -9 in {took:.2f} s")
    missing, resurrected, wrong, unresolved = read_back_everything(run)
    print(
        f"  verified {len(model.items)} ids: {model.acked_stores} acknowledged stores, {model.acked_forgets} "
        f"acknowledged forgets; uncertain writes found applied {unresolved['present']}, "
        f"not applied {unresolved['absent']}"
    )
    checks = run.checks
    checks.check(
        not missing,
        "every acknowledged store survived kill -9",
        f"{len(missing)} missing, e.g. {missing[:5]}",
    )
    checks.check(
        not resurrected,
        "every acknowledged forget stayed forgotten",
        f"{len(resurrected)} back, e.g. {resurrected[:5]}",
    )
    checks.check(not wrong, "every stored pattern kept its bits", f"{wrong[:5]}")
    status, _, body = call(run.port, "GET", "/v1/spaces/doomed")
    patterns = body.get("counts", {}).get("patterns") if isinstance(body, dict) else None
    checks.check(
        status == 200 and patterns == 0,
        "after the restart the re-created space is there, empty",
        f"status {status}, patterns {patterns}",
    )


def start_on_tmpfs(run):
    took = run.server.start(30.0, http_timeout=10.0)
    status, _, body = call(run.port, "PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS)
    if status not in (200, 201):
        raise RuntimeError(f"creating the space answered {status}: {body}")
    print(f"server ready in {took:.2f} s on a 8 MiB tmpfs at {run.directory}")


DATABASE_TIME_LIMIT = 115.0


def test_database_on_full_and_read_only_filesystem(binary):
    if not inside_namespace():
        return rerun_in_namespace("test_database_on_full_and_read_only_filesystem", binary, DATABASE_TIME_LIMIT)
    directory = tempfile.mkdtemp(prefix="dendrite-fault-")
    code, message = run_mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", directory)
    assert code == 0, f"cannot mount a tmpfs on {directory}: {message}"
    logdir = tempfile.mkdtemp(prefix="dendrite-fault-log-")  # the log lives off the small tmpfs
    server = Server(
        binary,
        os.path.join(directory, "dendrite.db"),
        os.path.join(logdir, "server.log"),
        die_with_parent=True,
    )
    run = Run(directory, server, deadline=time.monotonic() + DATABASE_TIME_LIMIT - 15)
    try:
        start_on_tmpfs(run)
        for phase in (before_faults, disk_full, space_freed, read_only, after_faults):
            phase(run)
    except (RuntimeError, NoAnswer, subprocess.SubprocessError, OSError) as error:
        run.checks.check(False, "the scenario ran to its end", f"{type(error).__name__}: {error}")
    finally:
        server.kill9()
        run_mount("-o", "remount,rw", directory)
        subprocess.run(["umount", directory], capture_output=True, timeout=20)
        shutil.rmtree(directory, ignore_errors=True)
    print(f"{run.model.acked_stores} acknowledged stores, {run.model.acked_forgets} acknowledged forgets")
    if run.checks.failed:
        print(f"server log kept in {logdir}")
    run.checks.assert_all(server.log_tail(20))
    shutil.rmtree(logdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# a backup disk sized for the backups kept (phase 6)


def learn_backup_size(binary, database_dir, logdir, checks):
    """The size of one backup of 300 patterns, or None (a failed check) when none was written."""
    probe = os.path.join(database_dir, "probe-backups")
    server = Server(
        binary,
        os.path.join(database_dir, "dendrite.db"),
        os.path.join(logdir, "backup-server.log"),
        extra_args=("--backup-dir", probe),
        die_with_parent=True,
    )
    try:
        server.start(30.0, http_timeout=10.0)
        call(server.port, "PUT", f"/v1/spaces/{SPACE}", SPACE_PARAMS)
        rng = random.Random(6)
        patterns = [{"neuron": f"n{i % 10}", "active": random_bits(rng)} for i in range(300)]
        call(server.port, "POST", f"/v1/spaces/{SPACE}/patterns", {"patterns": patterns}, timeout=30.0)
        status, _, body = call(server.port, "POST", "/v1/admin/backup", timeout=30.0)
        if not checks.check(status == 201, "a first backup is written to learn its size", f"{status}: {body}"):
            return None
        server.stop(10.0)
        return body["bytes"]
    finally:
        server.kill9()


def three_backups_on_small_disk(binary, database_dir, backup_dir, logdir, checks):
    """Three backups with --backup-keep 2 where only two and a half fit."""
    server = Server(
        binary,
        os.path.join(database_dir, "dendrite.db"),
        os.path.join(logdir, "backup-server.log"),
        extra_args=("--backup-dir", backup_dir, "--backup-keep", "2"),
        die_with_parent=True,
    )
    try:
        server.start(30.0, http_timeout=10.0)
        names = []
        for n in range(3):
            status, _, body = call(server.port, "POST", "/v1/admin/backup", timeout=30.0)
            checks.check(status == 201, f"full backup disk: backup {n + 1} of 3 is written (201)", f"{status}: {body}")
            if status == 201:
                names.append(body["name"])
            time.sleep(0.01)
        kept = sorted(f for f in os.listdir(backup_dir) if f.startswith("dendrite-"))
        checks.check(
            kept == sorted(names[-2:]),
            "full backup disk: the two newest backups are kept",
            f"kept {kept}, written {names}",
        )
        checks.check(
            "removed the oldest backup" in server.log_tail(50),
            "full backup disk: the third backup made room by removing the oldest (logged)",
        )
    finally:
        server.kill9()


BACKUP_TIME_LIMIT = 60.0


def test_backup_disk_sized_for_kept_backups(binary):
    """6. A backup disk with room for `--backup-keep 2` backups and no more: the third backup
    finds it full, removes the oldest (which it would prune anyway) and succeeds, where it would
    otherwise be refused for ever. A backup folder on its own tmpfs, the database on another."""
    if not inside_namespace():
        return rerun_in_namespace("test_backup_disk_sized_for_kept_backups", binary, BACKUP_TIME_LIMIT)
    print("6. a backup disk sized for the backups kept")
    checks = Checks()
    logdir = tempfile.mkdtemp(prefix="dendrite-fault-log-")
    database_dir = tempfile.mkdtemp(prefix="dendrite-fault-db-")
    backup_dir = tempfile.mkdtemp(prefix="dendrite-fault-backups-")
    try:
        code, message = run_mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", database_dir)
        if checks.check(code == 0, "a tmpfs mounts for the database", message):
            size = learn_backup_size(binary, database_dir, logdir, checks)
            # Room for two backups and a half: the third must make room first.
            kib = (size * 5 // 2) // 1024 + 4 if size else 0
            code, message = run_mount("-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", backup_dir) if size else (1, "")
            if size and checks.check(code == 0, "a small tmpfs mounts for the backups", message):
                three_backups_on_small_disk(binary, database_dir, backup_dir, logdir, checks)
    except (RuntimeError, NoAnswer, subprocess.SubprocessError, OSError, KeyError) as error:
        checks.check(False, "the backup disk phase ran to its end", f"{type(error).__name__}: {error}")
    finally:
        subprocess.run(["umount", backup_dir], capture_output=True, timeout=20)
        subprocess.run(["umount", database_dir], capture_output=True, timeout=20)
        shutil.rmtree(database_dir, ignore_errors=True)
        shutil.rmtree(backup_dir, ignore_errors=True)
    log = os.path.join(logdir, "backup-server.log")
    tail = open(log, errors="replace").read()[-3000:] if os.path.exists(log) else ""
    checks.assert_all(tail)
    shutil.rmtree(logdir, ignore_errors=True)
