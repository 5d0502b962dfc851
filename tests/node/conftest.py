"""The Node harness: node and npm found (or the tests skipped; under ``CI=true`` failed), and
the npm packages installed from the lockfile on first use."""

from __future__ import annotations

import shutil

import pytest

from tests.contract.services import in_ci
from tests.node.harness import install, installed


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node"), shutil.which("npm")
    if None in found:
        message = "node and npm are needed for the Node SDK tests (install Node.js >= 20)"
        if in_ci():
            pytest.fail(f"{message}. CI=true requires them.", pytrace=False)
        pytest.skip(message)
    if not installed():
        install(str(found[1]))
    return str(found[0])
