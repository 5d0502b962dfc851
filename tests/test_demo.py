"""The embedded default a newcomer gets from ./scripts/serve, served for real."""

import base64
from collections.abc import Iterator

import msgspec
import openai
import pytest

from aperture.app import create_app
from aperture.demo import demo_settings
from aperture.settings.schema import StorageSettings
from tests import sample_images
from tests.servers import reserve_port, serve


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    sock = reserve_port()
    settings = demo_settings({}, host="127.0.0.1", port=sock.getsockname()[1])
    # The demo's SQLite file and spool, in a directory of the test's own.
    state = tmp_path_factory.mktemp("demo-state")
    storage = StorageSettings(database=f"sqlite:///{state}/aperture.db", spool_dir=str(state))
    settings = msgspec.structs.replace(settings, storage=storage)
    with serve(create_app(settings), sock) as url:
        yield url


def test_demo_models_answer_offline_through_the_mounted_emulator(demo_url: str) -> None:
    client = openai.OpenAI(base_url=f"{demo_url}/v1", api_key="unused", max_retries=0)
    image = sample_images.data_uri(sample_images.jpeg(640, 480), "image/jpeg")
    completion = client.chat.completions.create(
        model="qwen3-vl-30b-instruct",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this image in one sentence."},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
        max_tokens=200,
    )
    assert completion.choices[0].message.content == (
        "Saw 1 image: #1 image/jpeg 640x480 detail=auto. "
        'Asked: "Describe this image in one sentence."'
    )
    models = {m.id for m in client.models.list()}
    assert {"demo-vision", "demo-text", "qwen3-vl-30b-instruct", "gpt-5.5-pro"} <= models


def test_an_openai_key_in_the_environment_adds_the_real_provider() -> None:
    settings = demo_settings({"OPENAI_API_KEY": "sk-test"}, host="127.0.0.1", port=8080)
    openai_provider = next(p for p in settings.providers if p.name == "openai")
    assert openai_provider.api_key == "sk-test"
    assert "gpt-4o" in {m.name for m in settings.models}


def test_the_demo_claude_answers_both_dialects(demo_url: str) -> None:
    client = openai.OpenAI(base_url=f"{demo_url}/v1", api_key="unused", max_retries=0)
    image = sample_images.data_uri(sample_images.png(20, 10), "image/png")
    completion = client.chat.completions.create(
        model="demo-claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    )
    assert "#1 image/png 20x10" in (completion.choices[0].message.content or "")


def test_the_readme_logprobs_example_works_on_the_demo(demo_url: str) -> None:
    client = openai.OpenAI(base_url=f"{demo_url}/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model="demo-vision",
        messages=[{"role": "user", "content": "Say hello."}],
        logprobs=True,
        top_logprobs=3,
        n=2,
    )
    assert len(answer.choices) == 2
    content = answer.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(len(token.top_logprobs) == 3 for token in content)


def test_the_readme_responses_image_example_works_on_the_demo(demo_url: str) -> None:
    client = openai.OpenAI(base_url=f"{demo_url}/v1", api_key="unused", max_retries=0)
    drawn = client.responses.create(
        model="demo-draw", input="A lighthouse at dusk", tools=[{"type": "image_generation"}]
    )
    (call,) = [item for item in drawn.output if item.type == "image_generation_call"]
    assert base64.b64decode(call.result or "", validate=True).startswith(b"\x89PNG")
    assert "A lighthouse at dusk" in drawn.output_text
