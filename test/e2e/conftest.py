# SPDX-License-Identifier: GPL-2.0-only
"""Shared fixtures for the end-to-end tests: the real binary, real anomalies."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    config.addinivalue_line("markers", "root: needs root and BPF")


@pytest.fixture(autouse=True)
def _needs_root():
    """In CI a test that needs root fails when it cannot run; a developer may
    opt out with AUTOTRACE_TEST_ALLOW_SKIP=1."""
    if os.geteuid() == 0:
        return
    if os.environ.get("AUTOTRACE_TEST_ALLOW_SKIP") == "1":
        pytest.skip("needs root (AUTOTRACE_TEST_ALLOW_SKIP=1)")
    pytest.fail("needs root and BPF: run as root, or set AUTOTRACE_TEST_ALLOW_SKIP=1 to skip")
