"""Fixtures every scenario test shares: which server binary to run, the PostgreSQL server to make
databases on, the random seed, and whether to run the long forms.

Why here: each scenario used to parse the same options (--binary, --postgres-url, --seed) on its
own; as fixtures they are read once, the same way, and a test that needs PostgreSQL is skipped
with the reason when none is given instead of failing.

Environment:
  DENDRITE_BINARY              the server binary (default target/debug/dendrite), relative to the
                               repository root unless absolute;
  DENDRITE_TEST_POSTGRES_URL   an admin URL of a PostgreSQL server the replica tests may create
                               databases on (scripts/pg_cluster start DIR prints one);
  DENDRITE_TEST_SEED           the seed of the random choices (default: a new one, printed).
"""

import os
import random
import shutil

import pytest

from tools import harness


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        help="the long forms of the scenarios: the crash test's 20 kills with 64 clients (default: "
        "the short form CI runs, 3 kills with 16 clients)",
    )


@pytest.fixture(scope="session")
def binary():
    """The absolute path of the server binary under test ($DENDRITE_BINARY)."""
    path = harness.resolve_binary(os.environ.get("DENDRITE_BINARY", os.path.join("target", "debug", "dendrite")))
    if not os.access(path, os.X_OK):
        pytest.fail(f"no executable server binary at {path} (set DENDRITE_BINARY, or build it)")
    return path


@pytest.fixture(scope="session")
def postgres_url():
    """The PostgreSQL admin URL ($DENDRITE_TEST_POSTGRES_URL); skips the test when it is unset."""
    url = os.environ.get("DENDRITE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("DENDRITE_TEST_POSTGRES_URL is unset (scripts/pg_cluster start DIR prints a URL)")
    if shutil.which("psql") is None:
        pytest.fail("psql not found (Debian/Ubuntu: apt-get install postgresql-client)")
    return url


@pytest.fixture(scope="module")
def seed():
    """The seed of a module's random choices, printed so that a failed run can be repeated."""
    value = os.environ.get("DENDRITE_TEST_SEED")
    chosen = int(value) if value else random.randrange(1 << 30)
    print(f"seed {chosen} (DENDRITE_TEST_SEED={chosen} repeats it)")
    return chosen


@pytest.fixture(scope="session")
def full(request):
    """Whether --full asked for the long forms."""
    return request.config.getoption("--full")
