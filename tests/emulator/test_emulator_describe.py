"""The provider-neutral answer text, token arithmetic and fault scripts."""

from __future__ import annotations

import pytest

from aperture.emulator.describe import (
    Seen,
    SeenImage,
    describe,
    describe_json,
    prompt_tokens,
    short_hash,
    stream_pieces,
    tile_tokens,
    truncate_words,
)
from aperture.emulator.faults import FaultScript, parse_faults


def _seen(
    *images: SeenImage, asked: str = "Describe this image.", system: str | None = None
) -> Seen:
    return Seen(images=images, asked=asked, system=system, text_chars=len(asked))


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (1024, 1024, "high", 765),
        (2048, 4096, "high", 1105),
        (4000, 3000, "low", 85),
        (10, 10, "auto", 255),
        (640, 480, "auto", 425),
    ],
)
def test_tile_tokens_follow_the_gpt_4o_worked_examples(
    width: int, height: int, detail: str, tokens: int
) -> None:
    assert tile_tokens(width, height, detail) == tokens


def test_describe_lists_images_in_order_with_size_and_detail() -> None:
    seen = _seen(
        SeenImage(detail="auto", mime="image/jpeg", width=640, height=480),
        SeenImage(detail="low", mime="image/png", width=10, height=10),
    )
    assert describe(seen) == (
        "Saw 2 images: #1 image/jpeg 640x480 detail=auto, #2 image/png 10x10 detail=low. "
        'Asked: "Describe this image."'
    )


def test_describe_without_images_and_with_a_url_image_and_system() -> None:
    assert describe(_seen(asked="hi")) == 'Saw no images. Asked: "hi"'
    seen = _seen(SeenImage(detail="high", host="example.com"), system="Be\nbrief.")
    assert describe(seen) == (
        "Saw 1 image: #1 url image from example.com detail=high. "
        'Asked: "Describe this image." System: "Be brief."'
    )


def test_describe_keeps_the_answer_on_one_line() -> None:
    assert describe(_seen(asked="line one\n\n  line two")) == (
        'Saw no images. Asked: "line one line two"'
    )


def test_describe_json_is_compact() -> None:
    seen = _seen(SeenImage(detail="auto", host="example.com"), asked='say "json"')
    assert describe_json(seen) == '{"images":1,"asked":"say \\"json\\""}'


def test_prompt_tokens_add_text_quarters_and_image_costs() -> None:
    seen = Seen(
        images=(
            SeenImage(detail="high", mime="image/png", width=1024, height=1024),
            SeenImage(detail="auto", host="example.com"),
        ),
        asked="",
        system=None,
        text_chars=9,
    )
    assert prompt_tokens(seen) == 3 + 765 + 85


def test_truncate_words() -> None:
    assert truncate_words("a b  c", None) == ("a b  c", False)
    assert truncate_words("a b  c", 3) == ("a b  c", False)
    assert truncate_words("a b  c", 2) == ("a b", True)


def test_stream_pieces_rejoin_exactly() -> None:
    text = 'Saw no images.  Asked: "x" '
    pieces = stream_pieces(text)
    assert "".join(pieces) == text
    assert pieces[:3] == ["Saw", " no", " images."]


def test_short_hash_is_stable() -> None:
    assert short_hash("abc") == "ba7816bf8f01cfea414140de"
    assert short_hash(b"abc", 8) == "ba7816bf"


def test_parse_faults() -> None:
    assert parse_faults(None) == FaultScript()
    assert parse_faults("delay=50, status=503") == FaultScript(status=503, delay_ms=50)
    assert parse_faults("delay_ms=5,midstream") == FaultScript(delay_ms=5, midstream=True)
    assert parse_faults("quota") == FaultScript(quota=True)


@pytest.mark.parametrize("header", ["status=abc", "status=200", "explode", "delay=-1", "quota=1"])
def test_parse_faults_rejects_typos(header: str) -> None:
    with pytest.raises(ValueError, match="x-emulator-fault"):
        parse_faults(header)
