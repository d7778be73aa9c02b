"""The client is complete and current: a method for every operationId of openapi.yaml, each
sending its operation's HTTP method and path, the same on Client and AsyncClient; the generated
modules match the spec and the async source; the package builds into a wheel that says what it
needs."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import zipfile
from typing import Any

import httpx
import pytest
import respx
import yaml

import dendrite

from .conftest import ROOT, SPEC, Awaited

CLIENT_DIR = os.path.join(ROOT, "clients", "python")
URL = "http://dendrite.test"


def operations() -> dict[str, tuple[str, str]]:
    """operationId -> (HTTP method, path template), from openapi.yaml."""
    with open(SPEC) as spec:
        paths = yaml.safe_load(spec)["paths"]
    found = {}
    for path, item in paths.items():
        for method, operation in item.items():
            if method != "parameters":
                found[operation["operationId"]] = (method.upper(), path)
    return found


# How each method is called for the test: the arguments a user would give it.
EXAMPLE_CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "dashboard_file": (("app.js",), {}),
    "space_stats": (("s",), {}),
    "theory": ((), {"n": 2048, "a": 40, "s": 24, "theta": 12}),
    "create_space": (("s",), {"input_size": 2048, "active_bits": 40}),
    "space": (("s",), {}),
    "delete_space": (("s",), {}),
    "neurons": (("s",), {}),
    "neuron": (("s", "n"), {}),
    "delete_neuron": (("s", "n"), {}),
    "patterns": (("s", "n"), {}),
    "store": (("s", "n", [1, 2]), {}),
    "pattern": (("s", "n", "p"), {}),
    "forget": (("s", "n", "p"), {}),
    "store_many": (("s", [("n", [1, 2])]), {}),
    "query": (("s", [1, 2]), {}),
    "encode": (("s", {"f": 1}), {}),
    "query_many": (("s", [[1, 2]]), {}),
    "calibrate": (("s",), {}),
    "calibration": (("s",), {}),
    "download_backup": (("b.db", "/dev/null"), {}),
    "export": (("/dev/null",), {}),
}


class Sent(Exception):
    """Raised by the mock transport once the request is seen: the test needs nothing more."""


def test_every_operation_has_a_method_on_both_clients() -> None:
    spec = set(operations())
    assert set(dendrite.OPERATIONS) == spec, (
        f"without a method: {sorted(spec - set(dendrite.OPERATIONS))}; "
        f"not in openapi.yaml: {sorted(set(dendrite.OPERATIONS) - spec)}"
    )
    for method in dendrite.OPERATIONS.values():
        sync, awaited = getattr(dendrite.Client, method), getattr(dendrite.AsyncClient, method)
        assert inspect.iscoroutinefunction(awaited), method
        assert inspect.signature(sync).parameters.keys() == inspect.signature(awaited).parameters.keys(), (
            method
        )


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("operation", sorted(operations()))
def test_each_method_sends_its_operation(operation: str, kind: str) -> None:
    http_method, template = operations()[operation]
    method = dendrite.OPERATIONS[operation]
    args, kwargs = EXAMPLE_CALLS.get(method, ((), {}))
    pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
    with respx.mock(assert_all_called=False) as mock:
        route = mock.route().mock(side_effect=Sent)
        client: Any = dendrite.Client(URL) if kind == "sync" else Awaited(dendrite.AsyncClient(URL))
        try:
            with pytest.raises(Sent):
                getattr(client, method)(*args, **kwargs)
        finally:
            client.close()
    request: httpx.Request = route.calls.last.request
    assert request.method == http_method and re.match(pattern, request.url.path), (
        f"{method} sent {request.method} {request.url.path}, {operation} is {http_method} {template}"
    )


def test_generated_modules_are_current() -> None:
    done = subprocess.run(
        [sys.executable, os.path.join(CLIENT_DIR, "scripts", "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_wheel_holds_the_typed_package_and_needs_only_httpx_and_pydantic(tmp_path: Any) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            CLIENT_DIR,
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("dendrite_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for module in (
        "__init__.py",
        "_client.py",
        "_async_client.py",
        "_core.py",
        "models.py",
        "errors.py",
        "py.typed",
    ):
        assert f"dendrite/{module}" in names
    assert "Requires-Python: >=3.9" in metadata
    required = [
        line.split(":", 1)[1].split(";")[0].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(re.split(r"[<>=!~ ]", r)[0] for r in required) == ["httpx", "pydantic"]
