"""dendrite's Python client: typed, sync (`Client`) and async (`AsyncClient`).

    import dendrite

    with dendrite.Client("http://127.0.0.1:8080") as client:
        client.create_space("sensors", input_size=2048, active_bits=40)
        client.store("sensors", "door", [3, 17, 99, ...])
        answer = client.query("sensors", [3, 17, 98, ...])
        best = answer.matches[0]
        print(best.neuron, best.p_value.value, best.p_value.log10)

Answers are the pydantic models of `dendrite.models`, generated from the server's openapi.yaml;
errors are the exceptions of `dendrite.errors`, all `DendriteError`.
"""

from ._async_client import AsyncClient
from ._client import Client
from ._core import OPERATIONS, Retries, Session, __version__
from .errors import (
    ApiError,
    Conflict,
    DendriteError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    StorageFull,
    Timeout,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
)
from .models import Match, Probability, Recognition, SpaceReport, StoredPattern

__all__ = [
    "OPERATIONS",
    "ApiError",
    "AsyncClient",
    "Client",
    "Conflict",
    "DendriteError",
    "Forbidden",
    "InvalidRequest",
    "Match",
    "NotFound",
    "PayloadTooLarge",
    "Probability",
    "Recognition",
    "Retries",
    "Session",
    "SpaceReport",
    "StorageFull",
    "StoredPattern",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "__version__",
]
