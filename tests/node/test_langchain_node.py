"""LangChain JS (``@langchain/openai``'s ``ChatOpenAI`` with ``configuration.baseURL``) through
the gateway, on Chat Completions and on the Responses API (``useResponsesApi``): an image with
its detail, usage, a stream, a bound tool and the next turn from the answer as kept."""

from __future__ import annotations

from tests import sample_images
from tests.node.harness import run_script


def test_chat_openai_through_the_gateway(node: str, gateway_url: str) -> None:
    result = run_script(
        node,
        "langchain.mjs",
        APERTURE_URL=f"{gateway_url}/v1",
        APERTURE_MODEL="demo-vision",
        APERTURE_IMAGE=sample_images.data_uri(sample_images.jpeg(64, 48), "image/jpeg"),
    )
    seen = "Saw 1 image: #1 image/jpeg 64x48 detail=low."
    for api in ("chat", "responses"):
        got = result[api]
        assert got["text"] == f'{seen} Asked: "Describe this image." System: "Be brief."', api
        assert got["again"] == f'{seen} Asked: "And again?" System: "Be brief."', api
        usage = got["usage"]
        assert usage["input_tokens"] > 85  # the low-detail image's tokens, and the text
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert got["streamed"] == 'Saw no images. Asked: "Say hello."', api
        assert got["calls"] == [["weather", {"text": "Weather?"}]], api
