"""Cue tidying shared by both engines: order, the audio's bounds, no empty or control-character text."""

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.transcription.engine import tidy_cues


def test_cues_past_the_end_are_dropped_and_overlong_ones_clamped() -> None:
    cues = tidy_cues([Cue(1.0, 12.5, "tail"), Cue(10.0, 11.0, "late"), Cue(0.0, 1.0, "head")], duration=10.0)
    assert cues == [Cue(0.0, 1.0, "head"), Cue(1.0, 10.0, "tail")]


def test_cues_come_back_in_time_order() -> None:
    cues = tidy_cues([Cue(5.0, 6.0, "b"), Cue(2.0, 3.0, "a")], duration=10.0)
    assert [c.text for c in cues] == ["a", "b"]


def test_empty_text_and_control_characters_are_removed() -> None:
    cues = tidy_cues([Cue(0.0, 1.0, "  "), Cue(1.0, 2.0, "a\x00b\x03 c ")], duration=10.0)
    assert cues == [Cue(1.0, 2.0, "ab c")]


def test_negative_start_and_inverted_span_are_repaired() -> None:
    assert tidy_cues([Cue(-0.5, -0.2, "x")], duration=3.0) == [Cue(0.0, 0.0, "x")]
