"""Pages rendered for a vision model: the size it sees, its byte cap, one job in the pool."""

from __future__ import annotations

import io

import msgspec
import pytest
from PIL import Image

from aperture.documents.forms import form_for, rendered_size
from aperture.documents.pdf import page_texts, render_pages
from aperture.images.limits import limits_for
from aperture.images.rendered import encode_bitmaps
from aperture.images.workers import DecodePool, chain
from tests.documents.pdfs import blank_pdf, text_pdf


def test_the_form_follows_the_capabilities() -> None:
    assert form_for({"vision", "documents"}, inline=True, extract=False) == "native"
    assert form_for({"vision"}, inline=True, extract=False) == "pages"
    assert form_for({"vision"}, inline=False, extract=True) is None  # a file id: unreadable
    assert form_for({"tools"}, inline=True, extract=True) == "text"
    assert form_for({"tools"}, inline=True, extract=False) is None


def test_a_page_is_drawn_at_the_long_edge_the_model_sees_and_no_finer() -> None:
    assert rendered_size(612, 792, 1568, 10**9)[:2] == (1212, 1568)
    assert rendered_size(612, 792, 4096, 10**9)[:2] == (1224, 1584)  # 144 dpi at most
    # A mile-wide page within the PDF spec still costs only the pixels allowed.
    width, height, _ = rendered_size(14_400, 14_400, 8192, 4_000_000)
    assert width * height <= 4_000_000


def test_rendered_pages_fit_the_targets_limits() -> None:
    pdf = text_pdf("Hello", "World")
    pages = encode_bitmaps(render_pages(pdf, (0, 1), 1568, 4_200_000), limits_for("anthropic"))
    assert [(p.mime, p.width, p.height) for p in pages] == [("image/png", 1212, 1568)] * 2
    assert Image.open(io.BytesIO(pages[0].data)).size == (1212, 1568)
    small = msgspec.structs.replace(limits_for("openai"), max_bytes=20_000)
    (page,) = encode_bitmaps(render_pages(text_pdf("x " * 400), (0,), 2048, 4_200_000), small)
    assert len(page.data) <= 20_000


def test_the_text_layer_is_read_per_page() -> None:
    assert page_texts(text_pdf("One\nline two", "Two"), 10, 10_000) == ("One\nline two", "Two")
    assert page_texts(blank_pdf(2), 10, 10_000) == ("", "")


@pytest.mark.anyio
async def test_rendering_runs_as_one_job_in_the_pool() -> None:
    pool = DecodePool(workers=1, memory_mb=512, cpu_s=20)
    try:
        first = (blank_pdf(3), (0, 1, 2), 800, 4_200_000)
        pages = await pool.run(chain, render_pages, first, encode_bitmaps, (limits_for("openai"),))
    finally:
        pool.close()
    assert [(p.width, p.height) for p in pages] == [(619, 800)] * 3
    assert rendered_size(612, 792, 800, 4_200_000)[:2] == (619, 800)  # what tokens count


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
