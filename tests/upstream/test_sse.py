import pytest
from hypothesis import given
from hypothesis import strategies as st

from aperture.upstream import FrameTooLargeError, SseDecoder, SseEvent

STREAM = (
    b'data: {"a":1}\r\n\r\n'
    b"event: ping\ndata: x\ndata: y\n\n"
    b": keep-alive comment\n\n"
    b"data:no-space\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SseEvent("message", '{"a":1}'),
    SseEvent("ping", "x\ny"),
    SseEvent("message", "no-space"),
    SseEvent("message", "[DONE]"),
]


def test_decodes_events_comments_and_multi_line_data() -> None:
    assert SseDecoder().feed(STREAM) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM)), max_size=8))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    decoder = SseDecoder()
    events: list[SseEvent] = []
    start = 0
    for cut in [*sorted(cuts), len(STREAM)]:
        events += decoder.feed(STREAM[start:cut])
        start = max(start, cut)
    assert events == EXPECTED


def test_an_incomplete_event_waits_for_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: part") == []
    assert decoder.feed(b"ial\n") == []
    assert decoder.feed(b"\n") == [SseEvent("message", "partial")]


EIGHT_MB = 8 * 1024 * 1024


def test_an_8_mb_event_in_small_chunks_is_scanned_once() -> None:
    # Each byte is searched for a line end once: a decoder that re-joined and re-split its
    # buffer per chunk would scan ~4,000 times the event's size here (gigabytes).
    payload = b"x" * EIGHT_MB
    stream = b"event: big\ndata: " + payload + b"\r\n\r\ndata: after\n\n"
    decoder = SseDecoder()
    events: list[SseEvent] = []
    for at in range(0, len(stream), 1024):
        events += decoder.feed(stream[at : at + 1024])
    assert events == [SseEvent("big", payload.decode()), SseEvent("message", "after")]
    assert decoder.scanned == len(stream)


def test_many_data_lines_count_towards_one_event() -> None:
    decoder = SseDecoder(max_event_bytes=1000)
    assert decoder.feed(b"data: " + b"a" * 400 + b"\ndata: " + b"b" * 400 + b"\n") == []
    with pytest.raises(FrameTooLargeError, match="over the limit of 1000 bytes"):
        decoder.feed(b"data: " + b"c" * 400 + b"\n")


@pytest.mark.parametrize("chunk", [1, 100, 5000])
def test_an_event_over_the_cap_is_refused_before_it_is_all_held(chunk: int) -> None:
    # The event never ends: the decoder must give up once it holds more than the cap.
    decoder = SseDecoder(max_event_bytes=4096)
    fed = 0
    while True:
        try:
            decoder.feed(b"data: " + b"y" * chunk if fed == 0 else b"y" * chunk)
        except FrameTooLargeError as exc:
            refused = exc
            break
        fed += chunk
    assert "max_event_bytes" in str(refused)
    assert refused.limit == 4096
    assert fed <= 4096 + chunk


def test_a_comment_line_over_the_cap_is_refused() -> None:
    decoder = SseDecoder(max_event_bytes=100)
    assert decoder.feed(b": " + b"z" * 98 + b"\n") == []
    with pytest.raises(FrameTooLargeError):
        decoder.feed(b": " + b"z" * 99 + b"\n")


def test_events_at_the_cap_pass_and_the_count_resets_per_event() -> None:
    decoder = SseDecoder(max_event_bytes=100)
    one = b"data: " + b"q" * 94 + b"\n\n"  # a 100-byte line
    assert decoder.feed(one * 3) == [SseEvent("message", "q" * 94)] * 3
