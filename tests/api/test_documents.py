"""PDFs through the gateway with the official SDKs, to the emulators' native document shapes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from tests.documents.test_intake import encrypted_pdf, make_pdf


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
