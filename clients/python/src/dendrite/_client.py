# Generated from _async_client.py by scripts/generate.py: edit that file, then run the script.
"""`Client`: every operation of the API as a method on httpx (see _async_client.py)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Callable, Optional, TypeVar, Union

import httpx

from . import _core as core
from ._core import Bits, Call, Consistency, Options, Session
from .errors import ApiError, DendriteError
from .models import (
    Analysis,
    Backup,
    BackupList,
    Calibration,
    Code,
    Health,
    NeuronList,
    NeuronReport,
    NeuronSummary,
    PatternBatchSummary,
    PatternBatchSummaryResponse,
    PatternList,
    QueryBatchResponse,
    Ready,
    Recognition,
    SpaceList,
    SpaceReport,
    SpaceStats,
    Stats,
    StoredPattern,
)

T = TypeVar("T")
R = TypeVar("R")


class Client:
    """A dendrite server's API.

    `url` and `api_key` default to `DENDRITE_URL` and `DENDRITE_API_KEY` (then to
    http://127.0.0.1:8080 and no key). `retries` > 0 sends a failed call again where that cannot
    apply a write twice (see `Retries`). `consistency="session"` reads this program's own writes
    on any replica. Use it as a context manager, or call `close()`, to close its connections.
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: Union[float, httpx.Timeout, None] = 30.0,
        retries: int = 0,
        backoff: float = 0.5,
        consistency: Consistency = "eventual",
        session: Optional[Session] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self._options = Options.resolve(url, api_key, timeout, retries, backoff, consistency)
        self.session = session if session is not None else Session()
        self._http = httpx.Client(
            base_url=self._options.url,
            headers=self._options.headers(),
            timeout=self._options.timeout,
            transport=transport,
        )

    @property
    def url(self) -> str:
        return self._options.url

    def __repr__(self) -> str:
        return f"Client({self._options.url!r}, consistency={self._options.consistency!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            failure: DendriteError
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=core.params_for(call, self._options, self.session),
                    content=call.body,
                    headers=call.headers,
                )
            except httpx.TransportError as error:
                failure = core.transport_error(error, call)
            else:
                self.session.observe(response)
                if response.is_success:
                    return call.parse(response)
                failure = core.api_error(response)
            wait = self._options.retries.delay(attempt, failure, call)
            if wait is None:
                raise failure
            attempt += 1
            time.sleep(wait)

    def _download(self, path: str, destination: Any) -> int:
        call: Call[None] = core.get(path, core.parse_nothing)
        params = core.params_for(call, self._options, self.session)
        try:
            with self._http.stream("GET", path, params=params) as response:
                if not response.is_success:
                    response.read()
                    raise core.api_error(response)
                with core.Destination(destination) as target:
                    for chunk in response.iter_bytes():
                        target.write(chunk)
                    return target.written
        except httpx.TransportError as error:
            raise core.transport_error(error, call) from None

    def _in_order(
        self, calls: Iterable[core.BatchCall], parse: Callable[[httpx.Response], R]
    ) -> Iterator[tuple[int, R]]:
        """Sends a batch method's calls one at a time, in order, each once the one before has
        succeeded, and yields (items, parsed answer) for each. While a call is sent, a worker
        thread encodes the next and parses the last, so the client's work overlaps the server's;
        the sending stays here, where waiting on the socket needs no lock that the worker's work
        could hold up. A failure stops it, naming the batch (`batch_start`)."""
        pending = iter(calls)
        with core.Worker() as worker:
            encoding = worker.submit(next, pending, None)
            parsing: Optional[tuple[int, Any]] = None  # the last answer's items, and its parse
            while (batch := worker.result(encoding)) is not None:
                start, count, call = batch
                encoding = worker.submit(next, pending, None)
                try:
                    response = self._send(call)
                except ApiError as error:
                    raise core.in_batch(error, start) from None
                if parsing is not None:
                    yield parsing[0], worker.result(parsing[1])
                parsing = (count, worker.submit(parse, response))
            if parsing is not None:
                yield parsing[0], worker.result(parsing[1])

    # -- operations --------------------------------------------------------------------------

    def health(self) -> Health:
        """Liveness: answers while the process runs."""
        return self._send(core.get("/healthz", core.parse_model(Health)))

    def ready(self) -> Ready:
        """Readiness: raises `Unavailable` while the service cannot take writes."""
        return self._send(core.get("/readyz", core.parse_model(Ready)))

    def openapi(self) -> str:
        """The API's OpenAPI document, as YAML text."""
        return self._send(core.get("/openapi.yaml", core.parse_text))

    def metrics(self) -> str:
        """Prometheus metrics, as text."""
        return self._send(core.get("/metrics", core.parse_text))

    def dashboard(self) -> str:
        """The dashboard's HTML page."""
        return self._send(core.get("/", core.parse_text))

    def dashboard_file(self, file: str) -> bytes:
        """One of the dashboard's files (script, style sheet, licence)."""
        return self._send(core.get(f"/dashboard/{core.segment(file)}", core.parse_bytes))

    def icon(self) -> bytes:
        """The service's icon (SVG)."""
        return self._send(core.get("/favicon.ico", core.parse_bytes))

    def stats(self) -> Stats:
        """The service's counters, latencies and every space's share."""
        return self._send(core.get("/v1/stats", core.parse_model(Stats)))

    def space_stats(self, space: str) -> SpaceStats:
        return self._send(core.get(f"/v1/spaces/{core.segment(space)}/stats", core.parse_model(SpaceStats)))

    def theory(
        self,
        *,
        n: int,
        a: int,
        s: int,
        theta: int,
        patterns: Optional[int] = None,
        segments: Optional[int] = None,
        noise_bits: Optional[int] = None,
        noise: Optional[float] = None,
        target: Optional[float] = None,
    ) -> Analysis:
        """The theory's probabilities for these parameters, without storing anything."""
        return self._send(
            core.get(
                "/v1/theory",
                core.parse_model(Analysis),
                n=n,
                a=a,
                s=s,
                theta=theta,
                patterns=patterns,
                segments=segments,
                noise_bits=noise_bits,
                noise=noise,
                target=target,
            )
        )

    def create_space(
        self,
        space: str,
        *,
        input_size: int,
        active_bits: Optional[int] = None,
        synapses_per_pattern: Optional[int] = None,
        threshold: Optional[int] = None,
        max_false_match: Optional[float] = None,
        max_segments_per_neuron: Optional[int] = None,
        seed: Optional[int] = None,
        encoder: Optional[Mapping[str, Any]] = None,
    ) -> SpaceReport:
        """Creates the space, or confirms it exists with these parameters (raises `Conflict`
        naming each one that differs). Arguments left at None take the server's defaults."""
        body = core.drop_none(
            {
                "input_size": input_size,
                "active_bits": active_bits,
                "synapses_per_pattern": synapses_per_pattern,
                "threshold": threshold,
                "max_false_match": max_false_match,
                "max_segments_per_neuron": max_segments_per_neuron,
                "seed": seed,
                "encoder": encoder,
            }
        )
        path = f"/v1/spaces/{core.segment(space)}"
        return self._send(
            Call("PUT", path, core.parse_model(SpaceReport), body=core.to_json(body), idempotent=True)
        )

    def space(self, space: str) -> SpaceReport:
        return self._send(core.get(f"/v1/spaces/{core.segment(space)}", core.parse_model(SpaceReport)))

    def spaces(self, *, limit: Optional[int] = None, after: Optional[str] = None) -> SpaceList:
        """One page of spaces, by name; `iter_spaces` walks them all."""
        return self._send(core.get("/v1/spaces", core.parse_model(SpaceList), limit=limit, after=after))

    def iter_spaces(self, *, page_size: Optional[int] = None) -> Iterator[SpaceReport]:
        after: Optional[str] = None
        while True:
            page = self.spaces(limit=page_size, after=after)
            for space in page.spaces:
                yield space
            if page.next is None:
                return
            after = page.next

    def delete_space(self, space: str) -> None:
        """Deletes the space and everything in it."""
        path = f"/v1/spaces/{core.segment(space)}"
        self._send(Call("DELETE", path, core.parse_nothing, idempotent=True))

    def neurons(self, space: str, *, limit: Optional[int] = None, after: Optional[str] = None) -> NeuronList:
        """One page of the space's neurons, by name; `iter_neurons` walks them all."""
        path = f"/v1/spaces/{core.segment(space)}/neurons"
        return self._send(core.get(path, core.parse_model(NeuronList), limit=limit, after=after))

    def iter_neurons(self, space: str, *, page_size: Optional[int] = None) -> Iterator[NeuronSummary]:
        after: Optional[str] = None
        while True:
            page = self.neurons(space, limit=page_size, after=after)
            for neuron in page.neurons:
                yield neuron
            if page.next is None:
                return
            after = page.next

    def neuron(
        self,
        space: str,
        neuron: str,
        *,
        segments_limit: Optional[int] = None,
        segments_after: Optional[int] = None,
    ) -> NeuronReport:
        """The neuron, its theory and a page of its segments."""
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}"
        return self._send(
            core.get(
                path,
                core.parse_model(NeuronReport),
                segments_limit=segments_limit,
                segments_after=segments_after,
            )
        )

    def delete_neuron(self, space: str, neuron: str) -> None:
        """Deletes the neuron and its patterns."""
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}"
        self._send(Call("DELETE", path, core.parse_nothing, idempotent=True))

    def patterns(
        self, space: str, neuron: str, *, limit: Optional[int] = None, after: Optional[str] = None
    ) -> PatternList:
        """One page of the neuron's patterns, by id; `iter_patterns` walks them all."""
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}/patterns"
        return self._send(core.get(path, core.parse_model(PatternList), limit=limit, after=after))

    def iter_patterns(
        self, space: str, neuron: str, *, page_size: Optional[int] = None
    ) -> Iterator[StoredPattern]:
        after: Optional[str] = None
        while True:
            page = self.patterns(space, neuron, limit=page_size, after=after)
            for pattern in page.patterns:
                yield pattern
            if page.next is None:
                return
            after = page.next

    def store(
        self,
        space: str,
        neuron: str,
        active: Optional[Bits] = None,
        *,
        record: Optional[Mapping[str, Any]] = None,
        id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> StoredPattern:
        """Stores a pattern on the neuron (creating the neuron): its `active` bits, or a `record`
        for the space's encoder. With an `id`, storing again is harmless (and may be retried)."""
        body = {**core.one_input(active, record), **core.drop_none({"id": id, "metadata": metadata})}
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}/patterns"
        return self._send(
            Call(
                "POST",
                path,
                core.parse_model(StoredPattern),
                body=core.to_json(body),
                idempotent=id is not None,
            )
        )

    def store_many(
        self,
        space: str,
        items: Iterable[Any],
        *,
        batch_size: int = 1000,
        progress: bool = False,
    ) -> list[PatternBatchSummary]:
        """Stores every item, `batch_size` per request, and answers one result per item, in order:
        its `neuron`, `id` (assigned when not given), `segment` and whether it was `created`.

        Items are `(neuron, active)` tuples, or dicts as the batch API takes them (`neuron`, then
        `active` or `record`, and `id` and `metadata` if wanted); any iterable, read as it goes.
        Each batch is stored whole or not at all, one after the other; on an error,
        `error.batch_start` says how many items were stored before it. The server is asked for
        short results (`Prefer: return=minimal`): each pattern's bits, synapses and probabilities
        are ten times the bytes, and `pattern()` reads them.
        """
        parse = core.parse_model(PatternBatchSummaryResponse)
        results: list[PatternBatchSummary] = []
        with core.Progress(progress, items, "patterns") as bar:
            for count, stored in self._in_order(core.store_calls(space, items, batch_size), parse):
                results.extend(stored.results)
                bar.update(count)
        return results

    def pattern(self, space: str, neuron: str, id: str) -> StoredPattern:
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}/patterns/{core.segment(id)}"
        return self._send(core.get(path, core.parse_model(StoredPattern)))

    def forget(self, space: str, neuron: str, id: str) -> None:
        """Forgets one pattern: the neuron answers as if it had never been stored."""
        path = f"/v1/spaces/{core.segment(space)}/neurons/{core.segment(neuron)}/patterns/{core.segment(id)}"
        self._send(Call("DELETE", path, core.parse_nothing, idempotent=True))

    def query(
        self,
        space: str,
        active: Optional[Bits] = None,
        *,
        record: Optional[Mapping[str, Any]] = None,
        threshold: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Recognition:
        """Recognises an input (its `active` bits, or a `record`) against every neuron of the space."""
        body = {**core.one_input(active, record), **core.drop_none({"threshold": threshold, "limit": limit})}
        path = f"/v1/spaces/{core.segment(space)}/query"
        return self._send(core.post_read(path, core.parse_model(Recognition), body))

    def query_many(
        self,
        space: str,
        inputs: Iterable[Any],
        *,
        threshold: Optional[int] = None,
        limit: Optional[int] = None,
        batch_size: int = 1000,
        progress: bool = False,
    ) -> list[Recognition]:
        """Recognises every input, `batch_size` per request: one answer per input, in order.

        Inputs are bits as `query` takes them, or dicts shaped like a query (`{"record": {...}}`,
        or `active` with its own `threshold` or `limit`); any iterable, read as it goes.
        """
        parse = core.parse_model(QueryBatchResponse)
        answers: list[Recognition] = []
        with core.Progress(progress, inputs, "queries") as bar:
            calls = core.query_calls(space, inputs, threshold, limit, batch_size)
            for count, recognised in self._in_order(calls, parse):
                answers.extend(recognised.results)
                bar.update(count)
        return answers

    def encode(self, space: str, record: Mapping[str, Any]) -> Code:
        """The code the space's encoder makes of a record, and each field's bits."""
        path = f"/v1/spaces/{core.segment(space)}/encode"
        return self._send(core.post_read(path, core.parse_model(Code), {"record": record}))

    def calibrate(
        self,
        space: str,
        *,
        sample: Optional[int] = None,
        random_inputs: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> Calibration:
        """Measures the space's error rates on its own patterns and compares them with the theory."""
        body = core.drop_none({"sample": sample, "random_inputs": random_inputs, "seed": seed})
        path = f"/v1/spaces/{core.segment(space)}/calibrate"
        return self._send(core.post_read(path, core.parse_model(Calibration), body))

    def calibration(self, space: str) -> Calibration:
        """The space's last calibration."""
        path = f"/v1/spaces/{core.segment(space)}/calibration"
        return self._send(core.get(path, core.parse_model(Calibration)))

    def backup(self) -> Backup:
        """Writes an online backup into the server's backup folder (never retried: each makes a file)."""
        return self._send(Call("POST", "/v1/admin/backup", core.parse_model(Backup)))

    def backups(self) -> BackupList:
        return self._send(core.get("/v1/admin/backups", core.parse_model(BackupList)))

    def download_backup(self, name: str, destination: Any) -> int:
        """Streams a backup file to `destination` (a path, or a binary file); answers its bytes."""
        return self._download(f"/v1/admin/backups/{core.segment(name)}", destination)

    def export(self, destination: Any) -> int:
        """Streams `dendrite export`'s NDJSON (every space, neuron and pattern) to `destination` (a
        path, or a binary file); answers its bytes. `dendrite import` reads it into any database."""
        return self._download("/v1/admin/export", destination)
