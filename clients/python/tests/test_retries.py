"""Retries, transport failures and odd answers, with respx standing in for the server: which calls
are sent again, how often, and which never are (a write that may have been applied)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

import dendrite

URL = "http://dendrite.test"
PROBLEM = {"content-type": "application/problem+json"}
BUSY = {
    "type": "urn:dendrite:problem:busy",
    "title": "Busy",
    "status": 503,
    "detail": "the writer queue is full",
}
FULL = {"type": "urn:dendrite:problem:storage-full", "title": "Storage full", "status": 507, "detail": "full"}
HEALTH = {"status": "ok"}
STORED = {
    "id": "p",
    "neuron": "n",
    "segment": 0,
    "active": [1, 2],
    "synapses": [1, 2],
    "segment_false_match": {"value": 0.0, "log10": -40.0},
    "neuron_false_match": {"value": 0.0, "log10": -40.0},
}


def busy(retry_after: str | None = "0") -> httpx.Response:
    headers = dict(PROBLEM, **({"retry-after": retry_after} if retry_after is not None else {}))
    return httpx.Response(503, json=BUSY, headers=headers)


@pytest.fixture
def make(connect: Any) -> Any:
    """Makes clients of this run's kind (conftest's `connect`) on the mocked URL, without backoff."""

    def build(**options: Any) -> Any:
        options.setdefault("backoff", 0.0)
        return connect(URL, **options)

    return build


@respx.mock
def test_a_read_is_retried_on_503_with_retry_after(make: Any) -> None:
    route = respx.get(f"{URL}/healthz").mock(side_effect=[busy(), busy(), httpx.Response(200, json=HEALTH)])
    assert make(retries=3).health().status == "ok"
    assert route.call_count == 3


@respx.mock
def test_without_retries_the_first_failure_raises(make: Any) -> None:
    route = respx.get(f"{URL}/healthz").mock(side_effect=[busy("7"), httpx.Response(200, json=HEALTH)])
    with pytest.raises(dendrite.Unavailable) as unavailable:
        make().health()
    assert unavailable.value.retry_after == 7.0 and unavailable.value.detail == BUSY["detail"]
    assert route.call_count == 1


@respx.mock
def test_retries_stop_after_their_number(make: Any) -> None:
    route = respx.get(f"{URL}/healthz").mock(return_value=busy())
    with pytest.raises(dendrite.Unavailable):
        make(retries=2).health()
    assert route.call_count == 3


@respx.mock
def test_a_503_without_retry_after_is_not_retried(make: Any) -> None:
    route = respx.get(f"{URL}/healthz").mock(side_effect=[busy(None), httpx.Response(200, json=HEALTH)])
    with pytest.raises(dendrite.Unavailable):
        make(retries=3).health()
    assert route.call_count == 1


@respx.mock
def test_a_read_is_retried_after_a_dropped_connection(make: Any) -> None:
    route = respx.get(f"{URL}/healthz").mock(
        side_effect=[
            httpx.ReadError("reset"),
            httpx.RemoteProtocolError("closed"),
            httpx.Response(200, json=HEALTH),
        ]
    )
    assert make(retries=2).health().status == "ok"
    assert route.call_count == 3


@respx.mock
def test_a_store_without_an_id_is_never_retried(make: Any) -> None:
    path = f"{URL}/v1/spaces/s/neurons/n/patterns"
    route = respx.post(path).mock(side_effect=[busy(), httpx.Response(201, json=STORED)])
    client = make(retries=5)
    with pytest.raises(dendrite.Unavailable):
        client.store("s", "n", [1, 2])
    assert route.call_count == 1
    full = httpx.Response(507, json=FULL, headers=dict(PROBLEM, **{"retry-after": "0"}))
    route.reset()
    route.mock(side_effect=[full, httpx.Response(201, json=STORED)])
    with pytest.raises(dendrite.StorageFull):
        client.store("s", "n", [1, 2])
    assert route.call_count == 1
    # The connection broke after the request went out: it may have been stored.
    route.reset()
    route.mock(side_effect=[httpx.ReadError("reset"), httpx.Response(201, json=STORED)])
    with pytest.raises(dendrite.TransportError) as failure:
        client.store("s", "n", [1, 2])
    assert failure.value.sent is True and route.call_count == 1


@respx.mock
def test_a_store_whose_connection_never_opened_is_retried(make: Any) -> None:
    route = respx.post(f"{URL}/v1/spaces/s/neurons/n/patterns").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(201, json=STORED)]
    )
    assert make(retries=1).store("s", "n", [1, 2]).id == "p"
    assert route.call_count == 2


@respx.mock
def test_a_store_with_an_id_is_retried(make: Any) -> None:
    route = respx.post(f"{URL}/v1/spaces/s/neurons/n/patterns").mock(
        side_effect=[busy(), httpx.ReadError("reset"), httpx.Response(200, json=STORED)]
    )
    assert make(retries=2).store("s", "n", [1, 2], id="p").id == "p"
    assert route.call_count == 3


@respx.mock
def test_a_batch_is_retried_only_when_every_item_has_an_id(make: Any) -> None:
    answer = {"results": [{"created": True, "id": "p", "neuron": "n", "segment": 0}]}
    route = respx.post(f"{URL}/v1/spaces/s/patterns").mock(
        side_effect=[busy(), httpx.Response(200, json=answer)]
    )
    client = make(retries=2)
    assert len(client.store_many("s", [{"neuron": "n", "active": [1, 2], "id": "p"}])) == 1
    assert route.call_count == 2
    assert route.calls.last.request.headers["prefer"] == "return=minimal"
    route.reset()
    route.mock(side_effect=[busy(), httpx.Response(200, json=answer)])
    with pytest.raises(dendrite.Unavailable) as unavailable:
        client.store_many("s", [{"neuron": "n", "active": [1, 2], "id": "p"}, ("n", [3, 4])])
    assert route.call_count == 1 and unavailable.value.batch_start == 0


@respx.mock
def test_backups_are_never_retried(make: Any) -> None:
    route = respx.post(f"{URL}/v1/admin/backup").mock(side_effect=[busy(), httpx.Response(201, json={})])
    with pytest.raises(dendrite.Unavailable):
        make(retries=3).backup()
    assert route.call_count == 1


@respx.mock
def test_a_timeout_is_its_own_error(make: Any) -> None:
    respx.get(f"{URL}/healthz").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(dendrite.Timeout) as timeout:
        make().health()
    assert isinstance(timeout.value, dendrite.TransportError) and timeout.value.sent is True
    respx.post(f"{URL}/v1/spaces/s/query").mock(side_effect=httpx.ConnectTimeout("no route"))
    with pytest.raises(dendrite.Timeout) as never_sent:
        make().query("s", [1])
    assert never_sent.value.sent is False


@respx.mock
def test_retry_after_as_an_http_date(make: Any) -> None:
    respx.get(f"{URL}/healthz").mock(return_value=busy("Wed, 21 Oct 2015 07:28:00 GMT"))
    with pytest.raises(dendrite.Unavailable) as unavailable:
        make().health()
    assert unavailable.value.retry_after == 0.0


@respx.mock
def test_an_error_without_problem_details(make: Any) -> None:
    respx.get(f"{URL}/v1/stats").mock(
        return_value=httpx.Response(
            502, text="<html>bad gateway</html>", headers={"content-type": "text/html"}
        )
    )
    with pytest.raises(dendrite.ApiError) as error:
        make().stats()
    assert type(error.value) is dendrite.ApiError
    assert (
        error.value.status == 502
        and error.value.title == "Bad Gateway"
        and "bad gateway" in error.value.detail
    )


@respx.mock
def test_a_success_with_an_unexpected_body(make: Any) -> None:
    respx.get(f"{URL}/healthz").mock(return_value=httpx.Response(200, text="<html>captive portal</html>"))
    with pytest.raises(dendrite.UnexpectedResponse, match="Health"):
        make().health()


@respx.mock
def test_an_answer_with_fields_this_client_does_not_know_still_parses(make: Any) -> None:
    respx.get(f"{URL}/healthz").mock(return_value=httpx.Response(200, json={"status": "ok", "since": 3}))
    assert make().health().status == "ok"


@respx.mock
def test_session_consistency_sends_min_sequence_on_reads_only(make: Any) -> None:
    respx.post(f"{URL}/v1/spaces/s/neurons/n/patterns").mock(
        return_value=httpx.Response(201, json=STORED, headers={"dendrite-sequence": "41"})
    )
    respx.delete(f"{URL}/v1/spaces/s/neurons/n/patterns/p").mock(
        return_value=httpx.Response(204, headers={"dendrite-sequence": "42"})
    )
    reads = respx.get(f"{URL}/v1/spaces/s/neurons/n/patterns/p").mock(
        return_value=httpx.Response(200, json=STORED)
    )
    session = make(consistency="session")
    eventual = make()
    session.store("s", "n", [1, 2])
    session.forget("s", "n", "p")
    eventual.store("s", "n", [1, 2])
    session.pattern("s", "n", "p")
    eventual.pattern("s", "n", "p")
    assert [call.request.url.params.get("min_sequence") for call in reads.calls] == ["42", None]
    assert session.session.sequence == 42 and eventual.session.sequence == 41
    writes = [call for call in respx.calls if call.request.method != "GET"]
    assert all("min_sequence" not in call.request.url.params for call in writes)


@respx.mock
def test_the_key_is_sent_as_a_bearer_token(make: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DENDRITE_API_KEY", "from-the-environment")
    route = respx.get(f"{URL}/healthz").mock(return_value=httpx.Response(200, json=HEALTH))
    make().health()
    make(api_key="given").health()
    assert [call.request.headers["authorization"] for call in route.calls] == [
        "Bearer from-the-environment",
        "Bearer given",
    ]


@respx.mock
def test_a_failed_batch_stops_the_ones_after_it(make: Any) -> None:
    """Batches go one at a time: the third is never sent once the second has failed."""
    ok = {"results": [{"created": True, "id": "p", "neuron": "n", "segment": 0}] * 2}
    bad = {
        "type": "urn:dendrite:problem:invalid-pattern",
        "title": "Invalid pattern",
        "status": 422,
        "detail": "patterns[1]: bit 9999 is not below 2048",
        "field": "active",
        "index": 1,
    }
    route = respx.post(f"{URL}/v1/spaces/s/patterns").mock(
        side_effect=[
            httpx.Response(200, json=ok),
            httpx.Response(422, json=bad, headers=PROBLEM),
            httpx.Response(200, json=ok),
        ]
    )
    with pytest.raises(dendrite.InvalidRequest) as refused:
        make().store_many("s", [("n", [i]) for i in range(6)], batch_size=2)
    assert route.call_count == 2
    assert refused.value.batch_start == 2 and refused.value.index == 3
    sent = [json.loads(call.request.content)["patterns"] for call in route.calls]
    assert sent == [
        [{"neuron": "n", "active": [0]}, {"neuron": "n", "active": [1]}],
        [{"neuron": "n", "active": [2]}, {"neuron": "n", "active": [3]}],
    ]
