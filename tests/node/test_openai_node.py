"""The official ``openai`` npm package through the gateway: ``responses.create``, the
``responses.stream`` helper and ``previous_response_id``.

The package is installed here from package-lock.json (``npm ci``) when node_modules is absent;
without node and npm the test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import sample_images
from tests.contract.services import in_ci

HERE = Path(__file__).parent
JPEG_URI = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node"), shutil.which("npm")
    if None in found:
        message = "node and npm are needed for the Node SDK tests (install Node.js >= 20)"
        if in_ci():
            pytest.fail(f"{message}. CI=true requires them.", pytrace=False)
        pytest.skip(message)
    if not (HERE / "node_modules" / "openai").is_dir():
        subprocess.run(
            [str(found[1]), "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return str(found[0])


def test_responses_through_the_node_sdk(node: str, gateway_url: str) -> None:
    env = {
        **os.environ,
        "APERTURE_URL": f"{gateway_url}/v1",
        "APERTURE_MODEL": "demo-vision",
        # An environment variable, not an argument: command lines have a length limit.
        "APERTURE_IMAGE": JPEG_URI,
    }
    run = subprocess.run(
        [node, "responses.mjs"], cwd=HERE, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    created = result["created"]
    assert created["id"].startswith("resp_") and created["status"] == "completed"
    assert created["text"].startswith("Saw 1 image: #1 image/jpeg 64x48")
    streamed = result["streamed"]
    assert streamed["text"] == streamed["deltas"]
    assert streamed["text"].startswith('Saw no images. Asked: "Say hello."')
    assert (streamed["first"], streamed["last"]) == ("response.created", "response.completed")
    assert result["continued"].startswith("Saw 1 image: #1 image/jpeg 64x48")
    assert result["missing"] == {
        "status": 404,
        "code": "previous_response_not_found",
        "param": "previous_response_id",
    }
