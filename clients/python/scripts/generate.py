#!/usr/bin/env python3
"""Makes the client's two generated modules, or with --check fails when either is out of date.

- src/dendrite/models.py: pydantic v2 classes for every schema of the repository's openapi.yaml,
  by datamodel-code-generator (the version pinned in pyproject.toml's `dev` extra), so the
  client's models cannot drift from the spec.
- src/dendrite/_client.py: `Client`, made from `AsyncClient` (_async_client.py) by dropping
  `async` and `await` and naming httpx's sync counterparts, so the methods are written once.

Usage: scripts/generate.py [--check]   (run from anywhere; needs datamodel-codegen on PATH or
beside this Python)
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(os.path.dirname(HERE), "src", "dendrite")
SPEC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))), "openapi.yaml")

MODELS_HEADER = "Generated from openapi.yaml by scripts/generate.py (datamodel-code-generator): do not edit."
CODEGEN_OPTIONS = [
    "--input-file-type",
    "openapi",
    "--output-model-type",
    "pydantic_v2.BaseModel",
    # 3.10 is the oldest target the generator offers; without union operators its output also
    # runs on 3.9 (the package's floor).
    "--target-python-version",
    "3.10",
    "--no-use-union-operator",
    "--use-annotated",
    "--field-constraints",
    "--collapse-root-models",
    # Constrained item types (a bit index, a rate) as aliases of int and float, not classes.
    "--use-type-alias",
    "--use-schema-description",
    "--enum-field-as-literal",
    "all",
    "--use-double-quotes",
    "--disable-timestamp",
    # A newer server's extra fields are ignored, not refused: an answer with a field this client
    # does not know yet still parses. (Not kept: a dict per answer object for fields nobody
    # reads costs store_many a tenth of its speed in allocation and garbage collection.)
    "--extra-fields",
    "ignore",
    "--formatters",
    "builtin",
    "--custom-file-header",
    f"# {MODELS_HEADER}",
]

# AsyncClient's words and their sync counterparts, whole words only.
UNASYNC = [
    (r"\basync def\b", "def"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\bawait ", ""),
    (r"\bAsyncClient\b", "Client"),
    (r"\bAsyncBaseTransport\b", "BaseTransport"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncWorker\b", "Worker"),
    (r"\baclose\b", "close"),
    (r"\baread\b", "read"),
    (r"\baiter_bytes\b", "iter_bytes"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"^import asyncio$", "import time"),
    (r", awaited\.", "."),
    (r"\bawaitable method\b", "method"),
]
SYNC_HEADER = (
    "# Generated from _async_client.py by scripts/generate.py: edit that file, then run the script.\n"
)


def codegen() -> str:
    executable = shutil.which("datamodel-codegen") or os.path.join(
        os.path.dirname(sys.executable), "datamodel-codegen"
    )
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "models.py")
        subprocess.run(
            [executable, "--input", SPEC, "--output", output, *CODEGEN_OPTIONS],
            check=True,
            stderr=subprocess.DEVNULL,
        )
        with open(output) as generated:
            return generated.read()


def unasync(source: str) -> str:
    lines = []
    for line in source.splitlines(keepends=True):
        for pattern, replacement in UNASYNC:
            line = re.sub(pattern, replacement, line)
        lines.append(line)
    text = "".join(lines)
    # The module's docstring describes the async file; the generated one says what it is.
    text = re.sub(
        r'^"""`Client`: .*?"""',
        '"""`Client`: every operation of the API as a method on httpx (see _async_client.py)."""',
        text,
        count=1,
        flags=re.S,
    )
    return ruff(SYNC_HEADER + text, os.path.join(PACKAGE, "_client.py"))


def ruff(text: str, filename: str) -> str:
    """The text with its imports sorted and formatted as the package's ruff settings want."""
    executable = shutil.which("ruff") or os.path.join(os.path.dirname(sys.executable), "ruff")
    for command in (["check", "--select", "I", "--fix", "--quiet"], ["format", "--quiet"]):
        text = subprocess.run(
            [executable, *command, "--stdin-filename", filename, "-"],
            input=text,
            text=True,
            capture_output=True,
            check=True,
            cwd=os.path.dirname(PACKAGE),
        ).stdout
    return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail when a generated module differs")
    options = parser.parse_args()
    with open(os.path.join(PACKAGE, "_async_client.py")) as source:
        wanted = {"models.py": codegen(), "_client.py": unasync(source.read())}
    stale = []
    for name, text in wanted.items():
        path = os.path.join(PACKAGE, name)
        current = ""
        if os.path.exists(path):
            with open(path) as committed:
                current = committed.read()
        if current == text:
            continue
        if options.check:
            stale.append(name)
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(True),
                    text.splitlines(True),
                    f"{name} (committed)",
                    f"{name} (generated)",
                    n=1,
                )
            )
        else:
            with open(path, "w") as target:
                target.write(text)
            print(f"wrote {path}")
    if stale:
        print(
            f"generate: {', '.join(stale)} out of date; run clients/python/scripts/generate.py",
            file=sys.stderr,
        )
        return 1
    if options.check:
        print("generate: models.py and _client.py match openapi.yaml and _async_client.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
