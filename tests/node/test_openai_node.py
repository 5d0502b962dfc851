"""The official ``openai`` npm package through the gateway: ``responses.create``, the
``responses.stream`` helper and ``previous_response_id``; Chat Completions with several images,
``stream: true``, the ``chat.completions.stream`` helper, ``runTools``, ``parse`` and typed
errors.

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


def test_chat_completions_through_the_node_sdk(node: str, gateway_url: str) -> None:
    result = run_script(
        node,
        "chat.mjs",
        APERTURE_URL=f"{gateway_url}/v1",
        APERTURE_MODEL="demo-vision",
        APERTURE_JPEG=JPEG_URI,
        APERTURE_PNG=sample_images.data_uri(sample_images.png(600, 400), "image/png"),
    )
    seen = (
        "Saw 3 images: #1 image/jpeg 64x48 detail=low, #2 image/png 600x400 detail=high, "
        '#3 image/jpeg 64x48 detail=auto. Asked: "Compare these."'
    )
    # OpenAI's tile rule per image: low is 85; 600x400 high is 85 + 2 tiles; 64x48 auto 85 + 1.
    image_tokens = 85 + (85 + 2 * 170) + (85 + 170)
    created = result["created"]
    assert created["text"] == f'{seen} System: "Be brief."'
    assert (created["finish"], created["model"]) == ("stop", "demo-vision")
    assert created["usage"]["prompt_tokens_details"]["image_tokens"] == image_tokens
    assert created["usage"]["prompt_tokens"] > image_tokens

    iterated = result["iterated"]
    assert (iterated["text"], iterated["finish"]) == (seen, "stop")
    assert iterated["usage"]["prompt_tokens_details"]["image_tokens"] == image_tokens
    assert iterated["usage"]["completion_tokens"] > 0

    helper = result["helper"]
    assert helper["text"] == helper["deltas"]
    assert helper["text"] == 'Saw 1 image: #1 image/jpeg 64x48 detail=low. Asked: "Say hello."'
    assert helper["usage"]["prompt_tokens_details"]["image_tokens"] == 85

    tools = result["tools"]
    assert tools["args"] == {"text": "Describe the weather."}
    assert (tools["result"], tools["roles"]) == ("sunny", ["user", "assistant", "tool"])
    assert tools["after"] == 'Saw no images. Asked: "What did it say?"'

    assert result["parsed"] == {"images": 0, "asked": "Count the images."}

    unsupported = result["errors"]["unsupported"]
    assert (unsupported["class"], unsupported["isBadRequest"], unsupported["status"]) == (
        "BadRequestError",
        True,
        400,
    )
    assert (unsupported["code"], unsupported["param"]) == (
        "unsupported_capability",
        "messages[0].content[1]",
    )
    assert unsupported["message"].startswith("The model 'demo-text' does not accept images")
    unknown = result["errors"]["unknown_model"]
    assert (unknown["class"], unknown["isNotFound"], unknown["code"], unknown["param"]) == (
        "NotFoundError",
        True,
        "model_not_found",
        "model",
    )
