# SPDX-License-Identifier: GPL-2.0-only
"""Fixtures of the `es` tests: a real Elasticsearch (one per test file, shared
by its tests; each test writes under its own index prefix) and the real agent."""
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))

from eslib import Elasticsearch  # noqa: E402


def require_root():
    """Elasticsearch runs as its own user and the agent loads BPF: root only. In
    CI this fails; a developer may opt out with AUTOTRACE_TEST_ALLOW_SKIP=1."""
    if os.geteuid() == 0:
        return
    if os.environ.get("AUTOTRACE_TEST_ALLOW_SKIP") == "1":
        pytest.skip("needs root (AUTOTRACE_TEST_ALLOW_SKIP=1)")
    pytest.fail("needs root: run as root, or set AUTOTRACE_TEST_ALLOW_SKIP=1 to skip")


@pytest.fixture(autouse=True)
def _needs_root():
    require_root()


@pytest.fixture(scope="module")
def es():
    # module-scoped: set up before the autouse check, so it checks for itself
    require_root()
    cluster = Elasticsearch()
    try:
        cluster.start()
    except Exception:
        cluster.cleanup()
        raise
    yield cluster
    cluster.cleanup()


@pytest.fixture
def prefix():
    """An index prefix of this test's own: tests sharing a cluster never see each
    other's incidents."""
    return "at-" + uuid.uuid4().hex[:10]
