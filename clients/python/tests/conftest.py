"""Fixtures: real dendrite servers (the release binary the test command built), and each test's
client twice, once `Client` and once `AsyncClient`, so one suite holds both to the same answers."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any, Optional

import httpx
import pytest

import dendrite

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SPEC = os.path.join(ROOT, "openapi.yaml")
READ_WRITE_KEY = "rw-key-0123456789abcdef"
READ_ONLY_KEY = "ro-key-0123456789abcdef"


def binary() -> str:
    path = os.environ.get("DENDRITE_BINARY") or os.path.join(ROOT, "target", "release", "dendrite")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no dendrite binary at {path}: run `cargo build --release` (or set DENDRITE_BINARY)", 2)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`dendrite serve` on a free port of 127.0.0.1, ready (`/readyz` 200) once made; `stop()` ends it."""

    def __init__(self, *args: str, database_url: Optional[str] = None) -> None:
        self.folder = tempfile.mkdtemp(prefix="dendrite-client-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        database = database_url or f"sqlite://{self.folder}/dendrite.db"
        self.log = open(os.path.join(self.folder, "server.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary(),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--database-url",
                database,
                "--log-level",
                "warn",
                *args,
            ],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        with open(os.path.join(self.folder, "server.log")) as log:
            raise RuntimeError(f"dendrite serve did not start: {log.read()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def keyed_server() -> Iterator[Server]:
    """Keys set, and a 64 KiB body limit for the 413 test."""
    running = Server(
        "--api-key", READ_WRITE_KEY, "--read-only-api-key", READ_ONLY_KEY, "--body-limit", str(64 * 1024)
    )
    yield running
    running.stop()


class Awaited:
    """An AsyncClient with every coroutine run to its end on a private event loop (and every
    async iterator collected into a list), so the sync suite drives it unchanged."""

    def __init__(self, client: dendrite.AsyncClient) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            if inspect.isasyncgen(result):
                return self._loop.run_until_complete(collect(result))
            if inspect.iscoroutine(result):
                return self._loop.run_until_complete(result)
            return result

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


async def collect(items: Any) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Makes clients of the kind this run of the test is for; closes them after it."""
    made: list[Any] = []

    def make(url: Optional[str] = None, api_key: Optional[str] = None, **options: Any) -> Any:
        if request.param == "sync":
            client: Any = dendrite.Client(url, api_key, **options)
        else:
            client = Awaited(dendrite.AsyncClient(url, api_key, **options))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(connect: Any, server: Server) -> Any:
    return connect(server.url)


@pytest.fixture
def name() -> str:
    """A space name of this test's own, as both client kinds share one server."""
    return f"t-{uuid.uuid4().hex[:12]}"
