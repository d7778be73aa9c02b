"""Every method against a real server, through `Client` and through `AsyncClient` (the `connect`
fixture runs each test once with each)."""

from __future__ import annotations

import datetime
import io
import json
import random
import socket
from typing import Any

import numpy as np
import pytest

import dendrite
from dendrite import models

from .conftest import READ_ONLY_KEY, READ_WRITE_KEY, SPEC, Server


def code(rng: random.Random, n: int = 2048, a: int = 40) -> list[int]:
    return rng.sample(range(n), a)


def noisy(rng: random.Random, active: list[int], replaced: int, n: int = 2048) -> list[int]:
    """`active` with `replaced` of its bits swapped for bits it does not have."""
    kept = rng.sample(active, len(active) - replaced)
    others = [bit for bit in rng.sample(range(n), 3 * replaced + len(active)) if bit not in active]
    return kept + others[:replaced]


def standard_space(client: Any, name: str) -> models.SpaceReport:
    report: models.SpaceReport = client.create_space(name, input_size=2048, active_bits=40, seed=1)
    return report


def test_operations_answer(client: Any) -> None:
    assert client.health().status == "ok"
    assert client.ready().status == "ready"
    assert client.openapi().startswith("openapi: 3.1.0")
    assert "dendrite_" in client.metrics()
    assert "<html" in client.dashboard().lower()
    assert client.icon().lstrip().startswith(b"<svg")
    stats = client.stats()
    assert stats.backend == "sqlite" and stats.kernel in ("portable", "avx2", "avx512")


def test_dashboard_file(client: Any) -> None:
    page = client.dashboard()
    # The page names its own files; fetch the first one it loads.
    start = page.index("/dashboard/") + len("/dashboard/")
    file = page[start : page.index('"', start)]
    assert len(client.dashboard_file(file)) > 0
    with pytest.raises(dendrite.NotFound):
        client.dashboard_file("no-such-file.js")


def test_theory_matches_the_paper(client: Any) -> None:
    analysis = client.theory(n=2048, a=40, s=24, theta=12, patterns=5, segments=20, noise_bits=8)
    assert analysis.segment_false_match.log10 == pytest.approx(-14.929122974273787, abs=1e-12)
    assert analysis.segment_false_match.value == pytest.approx(1.1772725713144214e-15, rel=1e-12)
    with pytest.raises(dendrite.InvalidRequest) as refused:
        client.theory(n=2048, a=40, s=24, theta=25)
    assert refused.value.status in (400, 422) and refused.value.field is not None


def test_create_space_is_idempotent_and_names_a_conflict(client: Any, name: str) -> None:
    created = standard_space(client, name)
    assert created.name == name
    assert created.parameters.input_size == 2048 and created.parameters.active_bits == 40
    assert created.parameters.synapses_per_pattern == 24
    assert created.theory.segment_false_match.log10 is not None
    again = standard_space(client, name)
    assert again.parameters == created.parameters
    with pytest.raises(dendrite.Conflict) as conflict:
        client.create_space(name, input_size=2048, active_bits=40, seed=2)
    assert conflict.value.status == 409 and "seed" in conflict.value.detail
    assert client.space(name).parameters == created.parameters
    assert client.space_stats(name).name == name


def test_store_and_query_take_lists_tuples_and_numpy(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(1)
    stored = {neuron: code(rng) for neuron in ("list", "tuple", "ints", "dense")}
    client.store(name, "list", stored["list"])
    client.store(name, "tuple", tuple(stored["tuple"]))
    client.store(name, "ints", np.array(stored["ints"], dtype=np.int64))
    dense = np.zeros(2048, dtype=bool)
    dense[stored["dense"]] = True
    pattern = client.store(name, "dense", dense)
    assert pattern.active == sorted(stored["dense"]) and len(pattern.synapses) == 24
    for neuron, active in stored.items():
        answer = client.query(name, np.array(noisy(rng, active, 8), dtype=np.uint16))
        best = answer.matches[0]
        assert best.neuron == neuron
        assert isinstance(best.p_value, dendrite.Probability)
        assert 0 <= best.p_value.value < 1e-6 and best.p_value.log10 < -6
        assert best.neuron_false_match.log10 is not None
    random_input = client.query(name, code(rng))
    assert random_input.matches == []
    assert random_input.expected_false_matches.log10 < -3
    strict = client.query(name, stored["list"], threshold=24, limit=1)
    assert strict.threshold == 24 and len(strict.matches) == 1 and strict.matches[0].overlap == 24
    with pytest.raises(ValueError, match="exactly one"):
        client.query(name)
    with pytest.raises(ValueError, match="one-dimensional"):
        client.store(name, "x", np.zeros((2, 2048), dtype=bool))


def test_patterns_with_ids_and_metadata(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(2)
    morning = code(rng)
    stored = client.store(name, "door", morning, id="open-morning", metadata={"shift": "early", "line": 3})
    assert stored.id == "open-morning" and stored.metadata == {"line": 3, "shift": "early"}
    assert (
        client.store(name, "door", morning, id="open-morning", metadata={"shift": "early", "line": 3}).id
        == stored.id
    )
    with pytest.raises(dendrite.Conflict):
        client.store(name, "door", morning, id="open-morning", metadata={"shift": "late"})
    for index in range(4):
        client.store(name, "door", code(rng), id=f"p{index}")
    assert client.pattern(name, "door", "open-morning").active == sorted(morning)
    page = client.patterns(name, "door", limit=2)
    assert [p.id for p in page.patterns] == ["open-morning", "p0"] and page.next == "p0"
    assert [p.id for p in client.iter_patterns(name, "door", page_size=2)] == [
        "open-morning",
        "p0",
        "p1",
        "p2",
        "p3",
    ]
    answer = client.query(name, noisy(rng, morning, 4))
    assert answer.matches[0].pattern == "open-morning"
    assert answer.matches[0].pattern_metadata == {"line": 3, "shift": "early"}
    client.forget(name, "door", "open-morning")
    with pytest.raises(dendrite.NotFound) as missing:
        client.pattern(name, "door", "open-morning")
    assert missing.value.status == 404 and missing.value.type.startswith("urn:dendrite:problem:")
    assert all(match.pattern != "open-morning" for match in client.query(name, morning).matches)


def test_neurons_pages_reports_and_deletion(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(3)
    for neuron in ("a", "b", "c"):
        client.store(name, neuron, code(rng))
    first = client.neurons(name, limit=2)
    assert [n.name for n in first.neurons] == ["a", "b"] and first.next == "b"
    assert [n.name for n in client.iter_neurons(name, page_size=1)] == ["a", "b", "c"]
    report = client.neuron(name, "a", segments_limit=1)
    assert report.name == "a" and report.patterns == 1 and report.segment_count == 1
    assert [row.noise for row in report.false_miss_by_noise] == [0.1, 0.2, 0.3]
    client.delete_neuron(name, "b")
    with pytest.raises(dendrite.NotFound):
        client.neuron(name, "b")
    assert [n.name for n in client.iter_neurons(name)] == ["a", "c"]


def test_spaces_pages_and_deletion(client: Any, name: str) -> None:
    for suffix in ("1", "2", "3"):
        standard_space(client, f"{name}-{suffix}")
    page = client.spaces(limit=2, after=f"{name}-0")
    assert [s.name for s in page.spaces] == [f"{name}-1", f"{name}-2"]
    everything = [s.name for s in client.iter_spaces(page_size=2)]
    assert [f"{name}-1", f"{name}-2", f"{name}-3"] == [s for s in everything if s.startswith(f"{name}-")]
    client.delete_space(f"{name}-2")
    with pytest.raises(dendrite.NotFound):
        client.space(f"{name}-2")


def test_store_many_and_query_many_in_batches(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(4)
    codes = [(f"n{i % 50}", code(rng)) for i in range(2_500)]
    results = client.store_many(name, iter(codes), batch_size=1000)
    assert len(results) == 2_500 and all(r.created for r in results)
    assert [r.neuron for r in results] == [n for n, _ in codes]
    first = client.pattern(name, results[0].neuron, results[0].id)
    assert first.active == sorted(codes[0][1]) and first.segment == results[0].segment
    assert client.space(name).counts.patterns == 2_500
    # Dicts, with ids: a second run finds them stored.
    items = [{"neuron": "named", "active": np.array(code(rng)), "id": f"i{i}"} for i in range(5)]
    assert [r.created for r in client.store_many(name, items, batch_size=2)] == [True] * 5
    assert [r.created for r in client.store_many(name, items, batch_size=2)] == [False] * 5
    queries = [noisy(rng, active, 8) for _, active in codes[:1500:100]] + [code(rng)]
    answers = client.query_many(name, queries, batch_size=4, limit=1)
    assert len(answers) == 16
    assert [a.matches[0].neuron for a in answers[:15]] == [n for n, _ in codes[:1500:100]]
    assert answers[15].matches == []
    shaped = client.query_many(name, [{"active": codes[0][1], "threshold": 24}], threshold=10)
    assert shaped[0].threshold == 24


def test_a_bad_item_is_named_across_batches(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(5)
    items: list[Any] = [(f"n{i}", code(rng)) for i in range(25)]
    items[17] = ("n17", [*code(rng, a=39), 4096])  # a bit beyond input_size
    with pytest.raises(dendrite.InvalidRequest) as refused:
        client.store_many(name, items, batch_size=10)
    assert refused.value.status == 422 and refused.value.field == "active"
    assert refused.value.index == 17 and refused.value.batch_start == 10
    # Batches are whole or nothing: the first one stored, the failing one not.
    assert client.space(name).counts.patterns == 10
    with pytest.raises(dendrite.InvalidRequest) as refused_query:
        client.query_many(name, [code(rng), code(rng), [1, 1]], batch_size=2)
    assert refused_query.value.index == 2 and refused_query.value.batch_start == 2
    with pytest.raises(ValueError, match="batch_size"):
        client.store_many(name, items, batch_size=10_001)


def test_invalid_requests_name_their_field(client: Any, name: str) -> None:
    standard_space(client, name)
    with pytest.raises(dendrite.InvalidRequest) as bad_bit:
        client.store(name, "x", [5000, *range(39)])
    assert bad_bit.value.status == 422 and bad_bit.value.field == "active"
    with pytest.raises(dendrite.InvalidRequest) as bad_parameter:
        client.neurons(name, limit=0)
    assert bad_parameter.value.status == 400 and bad_parameter.value.field == "limit"
    # Names that are not one path segment reach the server as names, and are refused as such.
    for bad in ("no/slash", ".."):
        with pytest.raises(dendrite.InvalidRequest) as bad_name:
            client.create_space(bad, input_size=2048, active_bits=40)
        assert bad_name.value.status == 400 and bad_name.value.field == "space"
    with pytest.raises(dendrite.NotFound):
        client.query("no-such-space", [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        client.store(name, "x", record={"t": float("nan")})


PUMPS = {
    "temperature": {"type": "number", "active_bits": 14, "resolution": 0.5},
    "vibration": {"type": "number", "active_bits": 10, "resolution": 0.1},
    "time": {
        "type": "time",
        "timezone": "Europe/Berlin",
        "time_of_day": {"active_bits": 6},
        "weekend": {"active_bits": 2},
    },
    "device": {"type": "category", "active_bits": 8},
}


def test_records_with_numpy_values_and_datetimes(client: Any, name: str) -> None:
    space = client.create_space(name, input_size=2048, seed=7, encoder={"fields": PUMPS})
    assert space.parameters.active_bits == 40 and "temperature" in space.encoder.fields
    berlin = datetime.timezone(datetime.timedelta(hours=1))
    morning = {
        "temperature": np.float32(58.0),
        "vibration": 0.3,
        "time": datetime.datetime(2026, 12, 2, 9, 0, tzinfo=berlin),
        "device": "pump-3",
    }
    encoded = client.encode(name, morning)
    assert len(encoded.active) == 40 and len(encoded.fields["device"]) == 8
    stored = client.store(name, "pump-3", record=morning, id="morning")
    assert stored.active == encoded.active
    nearby = {**morning, "temperature": np.float64(58.6), "time": np.datetime64("2026-12-03T08:20:00")}
    answer = client.query(name, record=nearby)
    assert answer.matches[0].pattern == "morning"
    assert sum(answer.matches[0].fields.values()) == answer.matches[0].overlap
    both = client.query_many(
        name,
        [
            {"record": nearby},
            {"record": {**morning, "temperature": 85.0, "vibration": 2.4, "device": "pump-9"}},
        ],
    )
    assert both[0].matches[0].pattern == "morning" and both[1].matches == []
    with pytest.raises(dendrite.InvalidRequest) as unknown:
        client.encode(name, {"pressure": 3})
    assert unknown.value.field == "record" and "pressure" in unknown.value.detail


def test_calibration(client: Any, name: str) -> None:
    standard_space(client, name)
    rng = random.Random(6)
    client.store_many(name, [(f"n{i % 20}", code(rng)) for i in range(200)])
    calibration = client.calibrate(name, sample=50, random_inputs=200, seed=3)
    assert calibration.space == name and calibration.sample == 50
    assert {line.verdict for line in calibration.lines} <= {"consistent", "optimistic", "pessimistic"}
    assert client.calibration(name) == calibration


def test_backups_and_export_download(client: Any, name: str, tmp_path: Any) -> None:
    standard_space(client, name)
    client.store(name, "n", code(random.Random(7)), id="kept", metadata={"k": 1})
    backup = client.backup()
    assert backup.patterns >= 1
    assert backup.name in [b.name for b in client.backups().backups]
    target = tmp_path / "copy.db"
    assert client.download_backup(backup.name, target) == backup.bytes
    assert target.read_bytes()[:16] == b"SQLite format 3\x00"
    assert not (tmp_path / "copy.db.partial").exists()
    with pytest.raises(dendrite.NotFound):
        client.download_backup("dendrite-19700101T000000Z.db", tmp_path / "none.db")
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "none.db.partial").exists()
    buffer = io.BytesIO()
    written = client.export(buffer)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert written == len(buffer.getvalue())
    assert any(json.dumps(line).find('"kept"') >= 0 and json.dumps(line).find(name) >= 0 for line in lines)


def test_keys_from_arguments_and_environment(
    connect: Any, keyed_server: Server, name: str, monkeypatch: Any
) -> None:
    with pytest.raises(dendrite.Unauthorized) as unauthorized:
        connect(keyed_server.url).stats()
    assert unauthorized.value.status == 401
    monkeypatch.setenv("DENDRITE_URL", keyed_server.url)
    monkeypatch.setenv("DENDRITE_API_KEY", READ_WRITE_KEY)
    writer = connect()
    assert writer.url == keyed_server.url
    standard_space(writer, name)
    writer.store(name, "n", list(range(40)))
    reader = connect(keyed_server.url, READ_ONLY_KEY)
    assert reader.query(name, list(range(40))).matches[0].neuron == "n"
    with pytest.raises(dendrite.Forbidden) as forbidden:
        reader.store(name, "n", list(range(40, 80)))
    assert forbidden.value.status == 403


def test_a_body_over_the_limit_is_refused(connect: Any, keyed_server: Server, name: str) -> None:
    writer = connect(keyed_server.url, READ_WRITE_KEY)
    standard_space(writer, name)
    rng = random.Random(8)
    with pytest.raises(dendrite.PayloadTooLarge) as too_large:
        writer.store_many(name, [(f"n{i}", code(rng)) for i in range(2_000)], batch_size=2_000)
    assert too_large.value.status == 413 and too_large.value.batch_start == 0


def test_a_full_database_is_storage_full_and_unready(connect: Any, name: str) -> None:
    small = Server("--max-database-size", str(384 * 1024))
    try:
        client = connect(small.url)
        standard_space(client, name)
        rng = random.Random(9)
        with pytest.raises(dendrite.StorageFull) as full:
            for round in range(200):
                client.store_many(name, [(f"r{round}-{i}", code(rng)) for i in range(50)])
        assert full.value.status == 507 and full.value.retry_after is not None
        assert "--max-database-size" in full.value.detail
        with pytest.raises(dendrite.Unavailable) as unready:
            client.ready()
        assert unready.value.status == 503
        # Reads still served.
        assert client.space(name).counts.patterns > 0
    finally:
        small.stop()


def test_an_unreachable_server_is_a_transport_error(connect: Any) -> None:
    from .conftest import free_port

    client = connect(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(dendrite.TransportError) as unreachable:
        client.health()
    assert unreachable.value.sent is False and not isinstance(unreachable.value, dendrite.ApiError)


def test_a_server_that_does_not_answer_in_time_is_a_timeout(connect: Any) -> None:
    # A listening socket that never answers: the request goes out, no answer comes back.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = connect(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.3)
        with pytest.raises(dendrite.Timeout) as timeout:
            client.health()
    assert timeout.value.sent is True and isinstance(timeout.value, dendrite.TransportError)


def test_session_consistency_sends_the_last_write(connect: Any, server: Server, name: str) -> None:
    writer = connect(server.url, consistency="session")
    assert writer.session.sequence == 0
    standard_space(writer, name)
    after_space = writer.session.sequence
    assert after_space > 0
    writer.store(name, "n", list(range(40)))
    assert writer.session.sequence > after_space
    # The server takes it as min_sequence (on SQLite it has applied every write it answered).
    assert writer.query(name, list(range(40))).matches[0].neuron == "n"
    # Another client sharing the session reads with it too.
    other = connect(server.url, consistency="session", session=writer.session)
    assert other.session.sequence == writer.session.sequence
    with pytest.raises(ValueError, match="consistency"):
        connect(server.url, consistency="strong")


def test_the_spec_the_server_serves_is_the_one_the_models_came_from(client: Any) -> None:
    with open(SPEC) as spec:
        assert client.openapi() == spec.read()
