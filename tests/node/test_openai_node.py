"""The official ``openai`` npm package through the gateway: ``responses.create``, the
``responses.stream`` helper and ``previous_response_id``.

The package is installed here from package-lock.json (``npm ci``) when node_modules is absent;
without node and npm the test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

from tests import sample_images
from tests.node.harness import run_script

JPEG_URI = sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg")


def test_responses_through_the_node_sdk(node: str, gateway_url: str) -> None:
    result = run_script(
        node,
        "responses.mjs",
        APERTURE_URL=f"{gateway_url}/v1",
        APERTURE_MODEL="demo-vision",
        APERTURE_IMAGE=JPEG_URI,
    )
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
