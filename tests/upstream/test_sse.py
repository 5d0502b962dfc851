from hypothesis import given
from hypothesis import strategies as st

from aperture.upstream import SseDecoder, SseEvent

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
