"""PDFs through the gateway with the official SDKs, to the emulators' native document shapes."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from aperture.app import create_app
from aperture.emulator import create_emulator_app
from aperture.settings import parse_settings
from tests.documents.pdfs import blank_pdf, text_pdf
from tests.documents.test_intake import encrypted_pdf, make_pdf
from tests.servers import serve
from tests.upstreams import Recorder


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def claude(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def file_part(data: bytes) -> dict[str, Any]:
    uri = f"data:application/pdf;base64,{b64(data)}"
    return {"type": "file", "file": {"file_data": uri, "filename": "report.pdf"}}


@pytest.mark.parametrize("model", ["claude-vision", "gemini-vision"])
def test_an_openai_file_part_reaches_anthropic_and_gemini(
    client: openai.OpenAI, model: str
) -> None:
    answer = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": [file_part(make_pdf(2)), {"type": "text", "text": "Sum"}]}  # type: ignore[list-item]
        ],
    )
    assert answer.choices[0].message.content


def test_an_anthropic_document_block_reaches_anthropic(claude: anthropic.Anthropic) -> None:
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(make_pdf())},
        "title": "Report",
    }
    message = claude.messages.create(
        model="claude-vision",
        max_tokens=256,
        messages=[{"role": "user", "content": [block, {"type": "text", "text": "Summarise."}]}],  # type: ignore[list-item]
    )
    assert message.content


def test_a_page_bomb_is_refused_before_any_call(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="claude-vision",
            messages=[{"role": "user", "content": [file_part(make_pdf(3000))]}],  # type: ignore[list-item]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "too_many_pages"
    assert error["param"] == "messages[0].content[0]"


def test_huge_page_boxes_are_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="claude-vision",
            messages=[{"role": "user", "content": [file_part(make_pdf(1, (90_000, 90_000)))]}],  # type: ignore[list-item]
        )
    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "document_too_large"


def test_an_encrypted_pdf_is_refused(claude: anthropic.Anthropic) -> None:
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(encrypted_pdf())},
    }
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(
            model="claude-vision",
            max_tokens=64,
            messages=[{"role": "user", "content": [block]}],  # type: ignore[list-item]
        )
    assert "encrypted" in str(refused.value)


def test_a_text_only_model_refuses_documents(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="demo-text",
            messages=[{"role": "user", "content": [file_part(make_pdf())]}],  # type: ignore[list-item]
        )
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "unsupported_capability"
    assert refused.value.body["param"] == "messages[0].content[0]"
    # Those that read PDFs, and every vision model (it gets the pages).
    message = refused.value.body["message"]
    assert "claude-vision" in message and "demo-vision" in message
    assert "text_only: extract" in message


# --- Every dialect to every kind, with what the emulators received -----------------------

DOCS_CONFIG = """
storage: {database: "memory://", spool_dir: "${SPOOL}"}
documents: {text_only: extract, render_max_pages: 20}
providers:
  - {name: oa, kind: openai, base_url: "${UP}/openai/v1", api_key: k}
  - {name: an, kind: anthropic, base_url: "${UP}/anthropic", api_key: k}
  - {name: an-down, kind: anthropic, base_url: "${UP}/anthropic", api_key: k,
     headers: {x-emulator-fault: "status=503"}}
  - {name: ge, kind: gemini, base_url: "${UP}/gemini", api_key: k}
  - {name: br, kind: bedrock, base_url: "${UP}/bedrock", api_key: k}
models:
  - {name: pages-vision, provider: oa, upstream_model: emulator-vision, capabilities: [vision]}
  - {name: text-only, provider: oa, upstream_model: emulator-text, capabilities: []}
  - {name: claude, provider: an, upstream_model: claude-sonnet-4-5}
  - {name: gemini, provider: ge, upstream_model: gemini-2.5-flash}
  - {name: bedrock, provider: br, upstream_model: us.anthropic.claude-sonnet-4-5-20250929-v1:0}
routes:
  - id: claude-then-pages
    model_pattern: "failover-doc"
    providers:
      - {provider: an-down, model: claude-sonnet-4-5}
      - {provider: oa, model: emulator-vision, capabilities: [vision]}
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder(create_emulator_app())
    with serve(recorder) as url:
        yield recorder, url


@pytest.fixture(scope="module")
def docs_url(
    upstream: tuple[Recorder, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {"UP": upstream[1], "SPOOL": str(tmp_path_factory.mktemp("spool"))}
    with serve(create_app(parse_settings(DOCS_CONFIG, env))) as url:
        yield url


@pytest.fixture
def docs(docs_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{docs_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def docs_claude(docs_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=docs_url, api_key="unused", max_retries=0) as sdk:
        yield sdk


REPORT = text_pdf("Quarterly report\nRevenue rose 12 percent", "Outlook\nSteady")


def sent(recorder: Recorder) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(recorder.bodies[-1])
    return body


def chat_file(client: openai.OpenAI, model: str, pdf: bytes = REPORT) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {
                "role": "user",
                "content": [file_part(pdf), {"type": "text", "text": "Summarise."}],  # type: ignore[list-item]
            }
        ],
    )


def messages_document(client: anthropic.Anthropic, model: str) -> Any:
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(REPORT)},
        "title": "report.pdf",
    }
    return client.messages.with_raw_response.create(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": [block, {"type": "text", "text": "Summarise."}]}],  # type: ignore[list-item]
    )


def responses_file(client: openai.OpenAI, model: str) -> Any:
    return client.responses.with_raw_response.create(
        model=model,
        input=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_file",
                        "filename": "report.pdf",
                        "file_data": f"data:application/pdf;base64,{b64(REPORT)}",
                    },
                    {"type": "input_text", "text": "Summarise."},
                ],
            }
        ],
    )


def send(dialect: str, model: str, docs: openai.OpenAI, claude: anthropic.Anthropic) -> Any:
    if dialect == "chat":
        return chat_file(docs, model)
    if dialect == "messages":
        return messages_document(claude, model)
    return responses_file(docs, model)


def pdf_in(value: str) -> bytes:
    data = base64.b64decode(value.split(",", 1)[-1])
    assert data == REPORT
    return data


DIALECTS = ["chat", "messages", "responses"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_pdf_reaches_anthropic_as_a_document_block(
    dialect: str,
    docs: openai.OpenAI,
    docs_claude: anthropic.Anthropic,
    upstream: tuple[Recorder, str],
) -> None:
    raw = send(dialect, "claude", docs, docs_claude)
    blocks = sent(upstream[0])["messages"][0]["content"]
    document = next(b for b in blocks if b["type"] == "document")
    assert document["source"]["media_type"] == "application/pdf"
    pdf_in(document["source"]["data"])
    # Two letter pages at Claude's rule: each page as an image plus its text.
    assert int(raw.headers["x-aperture-document-tokens"]) > 2 * 1500


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_pdf_reaches_bedrock_as_a_named_document(
    dialect: str,
    docs: openai.OpenAI,
    docs_claude: anthropic.Anthropic,
    upstream: tuple[Recorder, str],
) -> None:
    raw = send(dialect, "bedrock", docs, docs_claude)
    blocks = sent(upstream[0])["messages"][0]["content"]
    document = next(b["document"] for b in blocks if "document" in b)
    assert document["format"] == "pdf" and document["name"]
    pdf_in(document["source"]["bytes"])
    assert raw.headers["x-aperture-document-tokens"] == str(2 * 1500)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_pdf_reaches_gemini_as_inline_data(
    dialect: str,
    docs: openai.OpenAI,
    docs_claude: anthropic.Anthropic,
    upstream: tuple[Recorder, str],
) -> None:
    raw = send(dialect, "gemini", docs, docs_claude)
    parts = sent(upstream[0])["contents"][0]["parts"]
    blob = next(p["inlineData"] for p in parts if "inlineData" in p)
    assert blob["mimeType"] == "application/pdf"
    pdf_in(blob["data"])
    assert raw.headers["x-aperture-document-tokens"] == str(2 * 258)


def page_images(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(MIME type, width, height) of each image part the OpenAI emulator was sent."""
    from PIL import Image as PILImage

    out = []
    for part in body["messages"][0]["content"]:
        if part["type"] == "image_url":
            header, data = part["image_url"]["url"].split(",", 1)
            image = PILImage.open(io.BytesIO(base64.b64decode(data)))
            out.append((header.removeprefix("data:").split(";")[0], *image.size))
    return out


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_vision_model_without_documents_gets_the_pages_as_images(
    dialect: str,
    docs: openai.OpenAI,
    docs_claude: anthropic.Anthropic,
    upstream: tuple[Recorder, str],
) -> None:
    raw = send(dialect, "pages-vision", docs, docs_claude)
    body = sent(upstream[0])
    assert not any(p["type"] == "file" for p in body["messages"][0]["content"])
    images = page_images(body)
    # Two letter pages (612 x 792 points) at 144 dpi: under OpenAI's 2048-pixel long edge,
    # and a page has no more detail to show at a higher resolution.
    assert images == [("image/png", 1224, 1584)] * 2
    texts = [p["text"] for p in body["messages"][0]["content"] if p["type"] == "text"]
    assert any("report.pdf, 2 pages" in t for t in texts)
    # Each page at OpenAI's tile rule: 768 x 994, 4 tiles of 170 and 85 = 765.
    assert raw.headers["x-aperture-document-tokens"] == str(2 * 765)


def test_failover_from_a_native_target_to_a_vision_one_renders_the_pages(
    docs: openai.OpenAI, upstream: tuple[Recorder, str]
) -> None:
    raw = chat_file(docs, "failover-doc")
    assert raw.headers["x-aperture-provider"] == "oa"
    assert raw.headers["x-aperture-attempts"] == "2"
    assert [kind for kind, _, _ in page_images(sent(upstream[0]))] == ["image/png"] * 2


def test_a_text_only_model_gets_the_text_layer_when_configured(
    docs: openai.OpenAI, upstream: tuple[Recorder, str]
) -> None:
    raw = chat_file(docs, "text-only")
    content = sent(upstream[0])["messages"][0]["content"]
    text = content if isinstance(content, str) else " ".join(p["text"] for p in content)
    assert "Revenue rose 12 percent" in text and "Outlook" in text
    assert "[report.pdf, 2 pages]" in text
    assert int(raw.headers["x-aperture-document-tokens"]) > 0


def test_a_page_bomb_for_a_vision_model_is_refused_before_rendering(
    docs: openai.OpenAI, upstream: tuple[Recorder, str]
) -> None:
    calls = len(upstream[0].bodies)
    with pytest.raises(openai.BadRequestError) as refused:
        chat_file(docs, "pages-vision", blank_pdf(60))
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "too_many_pages"
    assert error["param"] == "messages[0].content[0]"
    assert "render_max_pages" in error["message"]
    assert len(upstream[0].bodies) == calls


def test_a_mile_wide_page_is_refused_before_rendering(docs: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as refused:
        chat_file(docs, "pages-vision", blank_pdf(1, (14_400, 200_000)))
    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "document_too_large"
    assert refused.value.body["param"] == "messages[0].content[0]"


def test_count_tokens_counts_the_pages_a_vision_model_would_see(
    docs_claude: anthropic.Anthropic,
) -> None:
    block = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": b64(REPORT)},
    }
    plain = [{"role": "user", "content": "Summarise."}]
    with_pdf = [{"role": "user", "content": [block, {"type": "text", "text": "Summarise."}]}]
    before = docs_claude.messages.count_tokens(model="pages-vision", messages=plain)  # type: ignore[arg-type]
    after = docs_claude.messages.with_raw_response.count_tokens(
        model="pages-vision",
        messages=with_pdf,  # type: ignore[arg-type]
    )
    assert after.headers["x-aperture-token-count"] == "estimate"
    # The two rendered pages at OpenAI's tile rule, 765 each.
    assert after.parse().input_tokens - before.input_tokens == 2 * 765


def test_a_stream_to_a_vision_model_carries_the_pages_too(
    docs: openai.OpenAI, upstream: tuple[Recorder, str]
) -> None:
    with docs.chat.completions.with_streaming_response.create(
        model="pages-vision",
        stream=True,
        messages=[{"role": "user", "content": [file_part(REPORT)]}],  # type: ignore[list-item]
    ) as response:
        assert response.headers["x-aperture-document-tokens"] == str(2 * 765)
        text = "".join(
            chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
        )
    assert "Saw 2 images" in text
    assert len(page_images(sent(upstream[0]))) == 2
