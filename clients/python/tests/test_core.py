"""The I/O-free part: inputs turned into JSON, batches, the retry rule, the session's sequence."""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import httpx
import numpy as np
import pytest

from dendrite import _core as core
from dendrite.errors import StorageFull, TransportError, Unavailable


def test_bits_from_the_inputs_people_have() -> None:
    assert core.bits([3, 1, 2]) == [3, 1, 2]
    assert core.bits((3, 1)) == [3, 1]
    assert core.bits(range(3)) == [0, 1, 2]
    assert core.bits(np.array([5, 7], dtype=np.uint32)) == [5, 7]
    dense = np.zeros(10, dtype=bool)
    dense[[2, 9]] = True
    assert core.bits(dense) == [2, 9]
    assert all(type(bit) is int for bit in core.bits(dense))
    with pytest.raises(TypeError, match="integers"):
        core.bits(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="one-dimensional"):
        core.bits(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError):
        core.bits("1,2,3")  # type: ignore[arg-type]


def test_json_takes_numpy_and_datetimes() -> None:
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    record = {
        "t": datetime.datetime(2026, 12, 3, 9, 0, tzinfo=berlin),
        "wall": datetime.datetime(2026, 12, 3, 9, 0),
        "np_time": np.datetime64("2026-12-03T09:00:00"),
        "f32": np.float32(1.5),
        "f64": np.float64(2.5),
        "i": np.int16(3),
        "flag": np.bool_(True),
        "vector": np.array([0.5, 1.0]),
        "bits": [np.int64(4)],
    }
    assert json.loads(core.to_json(record)) == {
        "t": "2026-12-03T09:00:00+01:00",
        "wall": "2026-12-03T09:00:00",
        "np_time": "2026-12-03T09:00:00",
        "f32": 1.5,
        "f64": 2.5,
        "i": 3,
        "flag": True,
        "vector": [0.5, 1.0],
        "bits": [4],
    }
    for missing in (float("nan"), np.float32("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN and infinity"):
            core.to_json({"x": missing})
    with pytest.raises(ValueError, match="NaT"):
        core.to_json({"x": np.datetime64("NaT")})
    with pytest.raises(TypeError, match="object"):
        core.to_json({"x": object()})
    # Words are not numbers: a text saying NaN goes as it is.
    assert json.loads(core.to_json({"note": "NaN or Infinity"})) == {"note": "NaN or Infinity"}


def test_batch_items() -> None:
    assert core.store_item(("n", np.array([1, 2]))) == {"neuron": "n", "active": [1, 2]}
    assert core.store_item({"neuron": "n", "record": {"a": 1}, "id": "x"}) == {
        "neuron": "n",
        "record": {"a": 1},
        "id": "x",
    }
    with pytest.raises(TypeError, match="tuples or dicts"):
        core.store_item(["n", [1]])
    assert core.query_item([1, 2], 5, None) == {"active": [1, 2], "threshold": 5}
    assert core.query_item({"active": (1, 2), "threshold": 9}, 5, 3) == {
        "active": [1, 2],
        "threshold": 9,
        "limit": 3,
    }
    assert list(core.batches(iter(range(5)), 2)) == [(0, [0, 1]), (2, [2, 3]), (4, [4])]
    assert list(core.batches([], 2)) == []
    with pytest.raises(ValueError, match="exactly one"):
        core.one_input([1], {"a": 1})


def call(idempotent: bool) -> core.Call[None]:
    return core.Call("POST", "/x", core.parse_nothing, idempotent=idempotent)


def failure(kind: type[Any], retry_after: float | None = None) -> Any:
    return kind(503, "t", "title", "detail", retry_after=retry_after)


def test_which_failures_are_retried() -> None:
    retries = core.Retries(attempts=2, backoff=1.0, max_wait=10.0)
    connect_failed = TransportError("refused", sent=False)
    dropped = TransportError("reset", sent=True)
    busy = failure(Unavailable, retry_after=4.0)
    full = failure(StorageFull, retry_after=0.0)
    # Anything whose connection never opened; after that, idempotent calls only.
    assert retries.delay(0, connect_failed, call(False)) is not None
    assert retries.delay(0, dropped, call(False)) is None
    assert retries.delay(0, busy, call(False)) is None
    assert retries.delay(0, dropped, call(True)) is not None
    assert retries.delay(0, busy, call(True)) == 4.0
    assert 0.5 <= (retries.delay(0, full, call(True)) or 0) <= 1.0
    assert retries.delay(0, failure(Unavailable), call(True)) is None
    assert retries.delay(2, busy, call(True)) is None
    assert retries.delay(1, failure(Unavailable, retry_after=100.0), call(True)) == 10.0
    assert core.Retries().delay(0, connect_failed, call(True)) is None


def test_the_session_keeps_the_highest_sequence_across_threads() -> None:
    session = core.Session()

    def observe(start: int) -> None:
        for sequence in range(start, 20_000, 4):
            session.observe(httpx.Response(200, headers={"dendrite-sequence": str(sequence)}))

    threads = [threading.Thread(target=observe, args=(start,)) for start in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert session.sequence == 19_999
    session.observe(httpx.Response(200, headers={"dendrite-sequence": "5"}))
    session.observe(httpx.Response(200, headers={"dendrite-sequence": "junk"}))
    assert session.sequence == 19_999


def test_options_from_the_environment(monkeypatch: Any) -> None:
    monkeypatch.delenv("DENDRITE_URL", raising=False)
    monkeypatch.delenv("DENDRITE_API_KEY", raising=False)
    defaults = core.Options.resolve(None, None, 30.0, 0, 0.5, "eventual")
    assert defaults.url == core.DEFAULT_URL and defaults.api_key is None
    assert "authorization" not in defaults.headers()
    monkeypatch.setenv("DENDRITE_URL", "http://replica:9000/")
    monkeypatch.setenv("DENDRITE_API_KEY", "k" * 16)
    resolved = core.Options.resolve(None, None, 30.0, 0, 0.5, "eventual")
    assert (
        resolved.url == "http://replica:9000" and resolved.headers()["authorization"] == "Bearer " + "k" * 16
    )
    assert core.Options.resolve("http://given", "other", 30.0, 0, 0.5, "eventual").api_key == "other"
    with pytest.raises(ValueError, match="retries"):
        core.Options.resolve(None, None, 30.0, -1, 0.5, "eventual")


def test_progress_with_tqdm_and_without(capsys: Any, monkeypatch: Any) -> None:
    with core.Progress(True, [1, 2, 3], "patterns") as bar:
        bar.update(2)
        bar.update(1)
    assert "3/3" in capsys.readouterr().err
    real_import = core.importlib.import_module

    def without_tqdm(name: str) -> Any:
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real_import(name)

    monkeypatch.setattr(core.importlib, "import_module", without_tqdm)
    with core.Progress(True, iter([1, 2]), "queries") as bar:
        bar.update(2)
    assert capsys.readouterr().err.strip() == "2 queries"
    with core.Progress(False, [1], "patterns") as bar:
        bar.update(1)
    assert capsys.readouterr().err == ""
