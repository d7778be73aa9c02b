"""Request building and answer parsing, without I/O, shared by `Client` and `AsyncClient`.

Everything that decides what goes on the wire and what comes back lives here: turning the inputs
people have (lists, numpy arrays, dicts with datetimes) into JSON, the `Call` that describes one
request, problem details into exceptions, which failures a retry may follow, the session's
sequence for reading one's own writes, batching and progress. The two clients only send calls;
the sync one is generated from the async one (scripts/generate.py), so no logic is kept twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import importlib
import json
import os
import random
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Callable, Generic, Literal, Optional, Protocol, TypeVar, Union
from urllib.parse import quote

import httpx
import pydantic
import pydantic_core

from .errors import (
    ERROR_BY_STATUS,
    ApiError,
    DendriteError,
    StorageFull,
    Timeout,
    TransportError,
    Unavailable,
    UnexpectedResponse,
)

__version__ = "0.1.0"

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_URL = "http://127.0.0.1:8080"
# The server's own bounds on one batch request.
MAX_STORE_BATCH = 10_000
MAX_QUERY_BATCH = 1_000


class ArrayLike(Protocol):
    """A numpy array, or anything shaped like one, without this package importing numpy."""

    @property
    def dtype(self) -> Any: ...

    @property
    def ndim(self) -> int: ...

    def tolist(self) -> Any: ...


# A code's active bits: indices in any order, or a numpy array of indices or of a dense code's
# booleans.
Bits = Union[Sequence[int], ArrayLike]
Consistency = Literal["eventual", "session"]


def segment(name: str) -> str:
    """A name as one path segment: a name that is not one (it holds `/`) reaches the server as
    itself and is refused there, rather than addressing another route; `.` and `..`, valid names,
    are escaped whole, since a URL's dot segments would otherwise be resolved away."""
    if name in (".", ".."):
        return "%2E" * len(name)
    return quote(str(name), safe="")


def bits(active: Bits, what: str = "active") -> list[int]:
    """The active bits as a list the server reads: a numpy boolean vector becomes the indices of
    its set bits; numpy integers are left for `to_json` to convert."""
    if type(active) is list:
        return active
    dtype = getattr(active, "dtype", None)
    if dtype is not None:
        array: Any = active
        if array.ndim != 1:
            raise ValueError(f"{what}: a numpy array must be one-dimensional, not {array.ndim}-dimensional")
        if dtype.kind == "b":
            indices: list[int] = array.nonzero()[0].tolist()
            return indices
        if dtype.kind in "iu":
            values: list[int] = array.tolist()
            return values
        raise TypeError(
            f"{what}: a numpy array of bit indices (integers) or of a dense code (booleans), not {dtype}"
        )
    if isinstance(active, (str, bytes, Mapping)) or not isinstance(active, Iterable):
        raise TypeError(f"{what}: a sequence of bit indices, not {type(active).__name__}")
    return active if type(active) is list else list(active)


def _jsonable(value: Any) -> Any:
    """What `json` cannot write itself: datetimes as RFC 3339, numpy scalars and arrays as numbers
    and lists, other mappings as objects."""
    if type(value).__name__ == "datetime64":
        moment = value.astype("datetime64[us]").item()
        if moment is None:
            raise ValueError("NaT is not a time: leave the field out (or None) for a missing value")
        value = moment
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def to_json(body: Any) -> bytes:
    """The body as JSON, by pydantic's encoder (five times the standard one's speed on a batch of
    bit lists), refusing NaN and infinity, which JSON has no words for."""
    try:
        encoded = pydantic_core.to_json(body, fallback=_jsonable, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        return _standard_json(body)
    if b"NaN" in encoded or b"Infinity" in encoded:
        # A real NaN, or only a string holding the word: the standard encoder tells them apart.
        return _standard_json(body)
    return encoded


def _standard_json(body: Any) -> bytes:
    """The standard encoder, which raises what a value that cannot be sent is (pydantic's wraps
    it)."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False, default=_jsonable).encode()
    except ValueError as error:
        if "Out of range float" in str(error):
            raise ValueError(
                "NaN and infinity cannot be sent: JSON has no such numbers "
                "(leave a record's field out, or None, for a missing value)"
            ) from None
        raise


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments left at None are left out, so the server applies its documented defaults."""
    return {key: value for key, value in values.items() if value is not None}


def one_input(active: Optional[Bits], record: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """A pattern or query's input: exactly one of `active` and `record`."""
    if (active is None) == (record is None):
        raise ValueError("give exactly one of active (the bits) and record (for the space's encoder)")
    return {"active": bits(active)} if active is not None else {"record": record}


def store_item(item: Any) -> dict[str, Any]:
    """One item of `store_many`: a `(neuron, active)` tuple, or a dict as the batch API takes it
    (`neuron` with `active` or `record`, optionally `id` and `metadata`)."""
    if type(item) is tuple and len(item) == 2:
        return {"neuron": item[0], "active": bits(item[1])}
    if isinstance(item, Mapping):
        if "active" in item and item["active"] is not None:
            return {**item, "active": bits(item["active"])}
        return dict(item)
    if isinstance(item, tuple) and len(item) == 2:
        return {"neuron": item[0], "active": bits(item[1])}
    raise TypeError(f"store_many takes (neuron, active) tuples or dicts, not {type(item).__name__}")


def query_item(item: Any, threshold: Optional[int], limit: Optional[int]) -> dict[str, Any]:
    """One input of `query_many`: bits as `query` takes them, or a dict shaped like the query API's
    body (`{"record": {...}}`, or `active` with its own `threshold` or `limit`)."""
    if isinstance(item, Mapping):
        query = dict(item)
        if query.get("active") is not None:
            query["active"] = bits(query["active"])
    else:
        query = {"active": bits(item)}
    if threshold is not None:
        query.setdefault("threshold", threshold)
    if limit is not None:
        query.setdefault("limit", limit)
    return query


def check_batch_size(batch_size: int, largest: int) -> None:
    if not isinstance(batch_size, int) or not 1 <= batch_size <= largest:
        raise ValueError(f"batch_size must be a whole number from 1 to {largest} (the server's bound)")


def batches(items: Iterable[T], size: int) -> Iterator[tuple[int, list[T]]]:
    """The items in lists of `size` (the last may be shorter), each with its first item's position;
    any iterable, read as it goes, so a generator of a million patterns is never held whole."""
    batch: list[T] = []
    start = 0
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield start, batch
            start += size
            batch = []
    if batch:
        yield start, batch


def in_batch(error: ApiError, start: int) -> ApiError:
    """The error of a batch that began at `start`, its `index` counted over all the items."""
    error.batch_start = start
    if error.index is not None:
        error.index += start
    return error


# One request of a batch method: the position of its first item, its item count, the call.
BatchCall = tuple[int, int, "Call[httpx.Response]"]


def store_calls(space: str, items: Iterable[Any], batch_size: int) -> Iterator[BatchCall]:
    """`store_many`'s requests, each encoded only when the one before is on its way."""
    check_batch_size(batch_size, MAX_STORE_BATCH)
    path = f"/v1/spaces/{segment(space)}/patterns"
    for start, batch in batches(items, batch_size):
        patterns = [store_item(item) for item in batch]
        body = to_json({"patterns": patterns})
        # Sent again only when every item names its id: a repeat then stores nothing twice.
        idempotent = all("id" in pattern for pattern in patterns)
        yield (
            start,
            len(batch),
            Call("POST", path, parse_response, body=body, idempotent=idempotent, prefer="return=minimal"),
        )


def query_calls(
    space: str, inputs: Iterable[Any], threshold: Optional[int], limit: Optional[int], batch_size: int
) -> Iterator[BatchCall]:
    """`query_many`'s requests, each encoded only when the one before is on its way."""
    check_batch_size(batch_size, MAX_QUERY_BATCH)
    path = f"/v1/spaces/{segment(space)}/query/batch"
    for start, batch in batches(inputs, batch_size):
        queries = [query_item(item, threshold, limit) for item in batch]
        yield start, len(batch), post_read(path, parse_response, {"queries": queries})


# Each operation of openapi.yaml and the client method that carries it out (the same name on
# Client and AsyncClient); a test holds this to the spec, and each method to its operation's
# HTTP method and path.
OPERATIONS = {
    "getDashboard": "dashboard",
    "getDashboardFile": "dashboard_file",
    "getIcon": "icon",
    "getHealth": "health",
    "getReadiness": "ready",
    "getOpenApi": "openapi",
    "getMetrics": "metrics",
    "getStats": "stats",
    "getSpaceStats": "space_stats",
    "getTheory": "theory",
    "listSpaces": "spaces",
    "putSpace": "create_space",
    "getSpace": "space",
    "deleteSpace": "delete_space",
    "listNeurons": "neurons",
    "getNeuron": "neuron",
    "deleteNeuron": "delete_neuron",
    "listPatterns": "patterns",
    "storePattern": "store",
    "getPattern": "pattern",
    "deletePattern": "forget",
    "storePatterns": "store_many",
    "query": "query",
    "encodeRecord": "encode",
    "queryBatch": "query_many",
    "calibrate": "calibrate",
    "getCalibration": "calibration",
    "createBackup": "backup",
    "listBackups": "backups",
    "downloadBackup": "download_backup",
    "exportDatabase": "export",
}


# ---------------------------------------------------------------------------------------------
# One request and its answer


def parse_model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except pydantic.ValidationError as error:
            raise UnexpectedResponse(
                f"the answer to {response.request.method} {response.request.url.path} is not a "
                f"{model.__name__}: {error}"
            ) from None

    return parse


def parse_response(response: httpx.Response) -> httpx.Response:
    return response


def parse_nothing(response: httpx.Response) -> None:
    return None


def parse_text(response: httpx.Response) -> str:
    return response.text


def parse_bytes(response: httpx.Response) -> bytes:
    return response.content


@dataclass(frozen=True)
class Call(Generic[T]):
    """One operation's request, and how to read its answer.

    `reads` marks an operation that takes `min_sequence` (reads and queries), `idempotent` one that
    changes nothing when sent twice, which a retry may repeat.
    """

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] = field(default_factory=dict)
    body: Optional[bytes] = None
    reads: bool = False
    idempotent: bool = False
    # An RFC 7240 preference, as `Prefer: return=minimal` for a batch's short results.
    prefer: Optional[str] = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"} if self.body is not None else {}
        if self.prefer is not None:
            headers["prefer"] = self.prefer
        return headers


def get(path: str, parse: Callable[[httpx.Response], T], **params: Any) -> Call[T]:
    return Call("GET", path, parse, params=drop_none(params), reads=True, idempotent=True)


def post_read(path: str, parse: Callable[[httpx.Response], T], body: Any) -> Call[T]:
    """A POST that changes nothing (a query, an encoding): a read that can follow `min_sequence`."""
    return Call("POST", path, parse, body=to_json(body), reads=True, idempotent=True)


def retry_after(response: httpx.Response) -> Optional[float]:
    """Retry-After in seconds, given as seconds or as an HTTP date."""
    header = response.headers.get("retry-after")
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    return max(0.0, seconds)


def api_error(response: httpx.Response) -> ApiError:
    """The exception for an error answer: its problem details when it has them, else its status."""
    problem: dict[str, Any] = {}
    if "json" in response.headers.get("content-type", ""):
        try:
            decoded = json.loads(response.content)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            problem = decoded
    status = response.status_code
    kind = ERROR_BY_STATUS.get(status, ApiError)
    title = problem.get("title") or response.reason_phrase or f"HTTP {status}"
    detail = problem.get("detail") or response.text[:500].strip() or title
    index = problem.get("index")
    return kind(
        status,
        str(problem.get("type", "about:blank")),
        str(title),
        str(detail),
        field=problem.get("field") if isinstance(problem.get("field"), str) else None,
        index=index if isinstance(index, int) else None,
        value=problem.get("value"),
        retry_after=retry_after(response),
        problem=problem,
    )


def transport_error(error: httpx.TransportError, call: Call[Any]) -> TransportError:
    """httpx's failure as ours; `sent` is False only where the request cannot have left."""
    never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    message = f"{call.method} {call.path}: {type(error).__name__}: {error or 'no detail'}"
    if isinstance(error, httpx.TimeoutException):
        return Timeout(message, sent=not never_sent)
    return TransportError(message, sent=not never_sent)


@dataclass(frozen=True)
class Retries:
    """When a failed call is sent again: never, unless `attempts` > 0.

    A call is repeated only where repeating it cannot apply a write twice: when its connection
    could not be opened (nothing was sent), or when the call is idempotent (reads, queries, PUT,
    DELETE, stores that carry an id) and the failure is a transport error or a 503 / 507 with
    Retry-After. Waits grow from `backoff` seconds, doubling, with jitter, at most `max_wait`; a
    Retry-After longer than the backoff is waited out (up to `max_wait`).
    """

    attempts: int = 0
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, attempt: int, failure: DendriteError, call: Call[Any]) -> Optional[float]:
        """Seconds to wait before sending `call` again after its `attempt`-th failure (from 0), or
        None when the failure is final."""
        if attempt >= self.attempts:
            return None
        backoff = self.backoff * 2.0**attempt * random.uniform(0.5, 1.0)
        if isinstance(failure, TransportError):
            if failure.sent and not call.idempotent:
                return None
            return min(backoff, self.max_wait)
        if isinstance(failure, (Unavailable, StorageFull)) and failure.retry_after is not None:
            if not call.idempotent:
                return None
            return min(max(backoff, failure.retry_after), self.max_wait)
        return None


class Session:
    """The highest `Dendrite-Sequence` this program has seen, to read its own writes.

    With `consistency="session"` a client sends it as `min_sequence` on every read, so the replica
    answering waits until it has applied those writes. Clients given the same `Session` (one per
    replica, say) read each other's writes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = 0

    @property
    def sequence(self) -> int:
        return self._sequence

    def observe(self, response: httpx.Response) -> None:
        header = response.headers.get("dendrite-sequence")
        if header is None or not header.isdigit():
            return
        seen = int(header)
        # A lock, not a bare max(): two threads finishing writes together must not leave the
        # lower sequence behind, or a later read could miss the higher write.
        with self._lock:
            if seen > self._sequence:
                self._sequence = seen


@dataclass(frozen=True)
class Options:
    """A client's settings, resolved from its arguments and the environment."""

    url: str
    api_key: Optional[str]
    timeout: httpx.Timeout
    retries: Retries
    consistency: Consistency

    @classmethod
    def resolve(
        cls,
        url: Optional[str],
        api_key: Optional[str],
        timeout: Union[float, httpx.Timeout, None],
        retries: int,
        backoff: float,
        consistency: Consistency,
    ) -> Options:
        if consistency not in ("eventual", "session"):
            raise ValueError(f"consistency must be 'eventual' or 'session', not {consistency!r}")
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        resolved_url = url or os.environ.get("DENDRITE_URL") or DEFAULT_URL
        key = api_key if api_key is not None else os.environ.get("DENDRITE_API_KEY") or None
        return cls(
            url=resolved_url.rstrip("/"),
            api_key=key,
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            retries=Retries(attempts=retries, backoff=backoff),
            consistency=consistency,
        )

    def headers(self) -> dict[str, str]:
        python = f"{sys.version_info[0]}.{sys.version_info[1]}"
        headers = {"user-agent": f"dendrite-client/{__version__} python/{python}"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return headers


def params_for(call: Call[Any], options: Options, session: Session) -> dict[str, Any]:
    if call.reads and options.consistency == "session" and session.sequence > 0:
        return {**call.params, "min_sequence": session.sequence}
    return call.params


# ---------------------------------------------------------------------------------------------
# Downloads and progress


class Worker:
    """A thread for a batch method's own work (encoding, parsing) while the caller sends: jobs
    run one at a time, in the order given; leaving the block waits for a job still running."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dendrite")

    def submit(self, function: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self._pool.submit(function, *args)

    def result(self, job: concurrent.futures.Future[T]) -> T:
        return job.result()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


class AsyncWorker:
    """`Worker` for AsyncClient: the same thread, awaited, so the event loop runs on (drives the
    call being sent, and the caller's other tasks) meanwhile."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dendrite")

    def submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def result(self, job: asyncio.Future[T]) -> T:
        return await job

    def __enter__(self) -> AsyncWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


class Destination:
    """Where a download goes: a path (written to a temporary name, then moved into place, so a
    failed download leaves no partial file under the name) or an open binary file."""

    def __init__(self, target: Union[str, os.PathLike[str], Any]) -> None:
        self._target = target
        self._file: Any = None
        self._partial: Optional[str] = None
        self.written = 0

    def __enter__(self) -> Destination:
        if isinstance(self._target, (str, os.PathLike)):
            self._partial = f"{os.fspath(self._target)}.partial"
            # Closed in __exit__, which also moves or removes it.
            self._file = open(self._partial, "wb")
        else:
            self._file = self._target
        return self

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        if self._partial is None:
            return
        self._file.close()
        if kind is None:
            os.replace(self._partial, os.fspath(self._target))
        else:
            os.unlink(self._partial)


class Progress:
    """A progress bar for batches when asked: tqdm's when it is installed, else a line on stderr."""

    def __init__(self, enabled: bool, items: Iterable[Any], unit: str) -> None:
        self._bar: Any = None
        self._done = 0
        self._enabled = enabled
        self._unit = unit
        self._total = len(items) if isinstance(items, Sized) else None
        if not enabled:
            return
        try:
            tqdm = importlib.import_module("tqdm.auto")
        except ImportError:
            return
        self._bar = tqdm.tqdm(total=self._total, unit=unit)

    def update(self, count: int) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._enabled:
            total = f" of {self._total:,}" if self._total is not None else ""
            print(f"\r{self._done:,}{total} {self._unit}", end="", file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            print(file=sys.stderr)
