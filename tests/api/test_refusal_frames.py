"""A refusal, once rendered, keeps none of the request's frames alive."""

from __future__ import annotations

import weakref

import pytest

from aperture.api.chat import _drop_frames
from aperture.errors import InvalidRequestError


class _Payload:
    """Stands for what a request's frames hold: its body, a decoded image."""


def _refuse(refs: list[weakref.ref[_Payload]]) -> None:
    payload = _Payload()
    refs.append(weakref.ref(payload))
    kept: list[BaseException] = []
    try:
        try:
            raise ValueError("not base64")
        except ValueError:
            raise InvalidRequestError("The image data is not valid base64.") from None
    except InvalidRequestError as error:
        # As a future does for an error from a worker thread: this frame holds the error,
        # whose traceback holds this frame (and `payload`), a cycle.
        kept.append(error)
        raise


@pytest.mark.usefixtures("no_cyclic_gc")
def test_a_rendered_refusal_lets_go_of_its_frames_without_waiting_for_the_collector() -> None:
    refs: list[weakref.ref[_Payload]] = []
    with pytest.raises(InvalidRequestError) as caught:
        _refuse(refs)
    error = caught.value
    del caught
    assert refs[0]() is not None  # held by the cycle
    _drop_frames(error)
    assert error.__traceback__ is None
    assert error.__context__ is not None and error.__context__.__traceback__ is None
    del error
    assert refs[0]() is None
