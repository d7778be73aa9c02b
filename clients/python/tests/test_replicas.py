"""Reading one's own writes across two replicas of one PostgreSQL database, through a round-robin
"load balancer": with consistency="session" every read carries the last write's sequence and
sees it. Runs when DENDRITE_TEST_POSTGRES_URL names a server whose user may create databases (the
test command's throw-away cluster); skipped otherwise."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import httpx
import pytest

import dendrite

from .conftest import Server

ADMIN_URL = os.environ.get("DENDRITE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not ADMIN_URL, reason="DENDRITE_TEST_POSTGRES_URL is not set")


def psql(url: str, sql: str) -> None:
    subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def replicas() -> Iterator[tuple[Server, Server]]:
    assert ADMIN_URL
    database = f"client_{uuid.uuid4().hex[:10]}"
    psql(ADMIN_URL, f'CREATE DATABASE "{database}"')
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(ADMIN_URL)._replace(path=f"/{database}"))
    first = Server(database_url=url)
    second = Server(database_url=url)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        psql(ADMIN_URL, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


class RoundRobin(httpx.BaseTransport):
    """A load balancer in miniature: each request to the next replica in turn, each one noted."""

    def __init__(self, ports: list[int]) -> None:
        self._ports = itertools.cycle(ports)
        self._inner = httpx.HTTPTransport()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=next(self._ports))
        self.sent.append(request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


def test_session_reads_see_every_write_on_either_replica(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    balancer = RoundRobin([first.port, second.port])
    rng = random.Random(12)
    with dendrite.Client("http://127.0.0.1:1", consistency="session", transport=balancer) as client:
        client.create_space("rr", input_size=2048, active_bits=40)
        # Writes take no min_sequence: a store must not reach a replica that has not applied the
        # space yet, so read it through both first (the balancer alternates).
        client.space("rr")
        client.space("rr")
        for index in range(40):
            active = rng.sample(range(2048), 40)
            # Written through one replica, read at once through the other.
            stored = client.store("rr", f"n{index}", active, id="p")
            assert client.pattern("rr", f"n{index}", "p").active == stored.active
            assert client.query("rr", active).matches[0].neuron == f"n{index}"
    reads = [
        request for request in balancer.sent if request.method == "GET" or request.url.path.endswith("/query")
    ]
    assert len(reads) == 82
    assert all(int(request.url.params["min_sequence"]) > 0 for request in reads)
    writes = [request for request in balancer.sent if request not in reads]
    assert {request.url.port for request in writes} == {first.port, second.port}


def test_a_replica_behind_min_sequence_answers_unavailable(replicas: tuple[Server, Server]) -> None:
    first, _ = replicas
    with dendrite.Client(first.url, consistency="session") as client:
        client.create_space("behind", input_size=2048, active_bits=40)
        # A sequence no write has reached yet: the replica waits its 5 s, then says so.
        client.session.observe(
            httpx.Response(200, headers={"dendrite-sequence": str(client.session.sequence + 10**6)})
        )
        started = time.monotonic()
        with pytest.raises(dendrite.Unavailable) as behind:
            client.space("behind")
        assert behind.value.status == 503 and behind.value.retry_after is not None
        assert time.monotonic() - started >= 4


def test_clients_sharing_a_session_read_each_others_writes(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    session = dendrite.Session()
    rng = random.Random(13)
    with (
        dendrite.Client(first.url, consistency="session", session=session) as writer,
        dendrite.Client(second.url, consistency="session", session=session) as reader,
    ):
        writer.create_space("shared", input_size=2048, active_bits=40)
        for index in range(20):
            writer.store("shared", "n", rng.sample(range(2048), 40), id=f"p{index}")
            assert reader.neuron("shared", "n").patterns == index + 1
