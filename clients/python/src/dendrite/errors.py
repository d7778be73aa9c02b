"""What the client raises: every failure is an exception, never a value to check.

`ApiError` carries the server's RFC 9457 problem details, with one subclass per way a caller
handles an answer differently (fix the input, authenticate, wait and retry, free space); a failure
to reach the server at all is a `TransportError`, and `Timeout` is the one of those that ran out of
time. Catch `DendriteError` for all of them.
"""

from __future__ import annotations

from typing import Any, Optional


class DendriteError(Exception):
    """The root of every error this client raises."""


class ApiError(DendriteError):
    """The server answered with an error status; the fields are its problem details.

    `field` names the offending field or query parameter, `index` the position of the first bad
    item of a batch (counted over everything `store_many` / `query_many` were given), `value`
    repeats the offending value. `batch_start` is set by `store_many` and `query_many`: the
    position of the first item of the batch that failed, so every item before it was stored.
    """

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        *,
        field: Optional[str] = None,
        index: Optional[int] = None,
        value: Any = None,
        retry_after: Optional[float] = None,
        problem: Optional[dict[str, Any]] = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.field = field
        self.index = index
        self.value = value
        self.retry_after = retry_after
        self.problem: dict[str, Any] = problem if problem is not None else {}
        self.batch_start: Optional[int] = None

    def __str__(self) -> str:
        where = []
        if self.field is not None:
            where.append(f"field {self.field}")
        if self.index is not None:
            where.append(f"item {self.index}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.status} {self.title}: {self.detail}{suffix}"


class InvalidRequest(ApiError):
    """400 or 422: the request itself is wrong (see `field` and `index`); sending it again fails again."""


class Unauthorized(ApiError):
    """401: no API key, or one the server does not know."""


class Forbidden(ApiError):
    """403: a read-only key tried to write."""


class NotFound(ApiError):
    """404: no such space, neuron, pattern or backup."""


class Conflict(ApiError):
    """409: the space or pattern exists with other parameters or metadata."""


class PayloadTooLarge(ApiError):
    """413: the body is over the server's limit; send smaller batches."""


class Unavailable(ApiError):
    """503: busy, not ready, or a replica behind `min_sequence`; `retry_after` says when to try again."""


class StorageFull(ApiError):
    """507: the database's disk or its configured size limit is full; nothing was written."""


class TransportError(DendriteError):
    """The server could not be reached, or the connection failed before an answer arrived.

    `sent` is False when the request certainly never reached the server (the connection could not
    be opened), so even a write is safe to send again; True when it may have been applied.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Timeout(TransportError):
    """The server did not answer within the client's timeout."""


class UnexpectedResponse(DendriteError):
    """A success status whose body is not what the API documents (a proxy's page, a newer server)."""


# Each status a caller handles differently, and the class that says so.
ERROR_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    422: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
    507: StorageFull,
}
