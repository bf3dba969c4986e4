"""Segments start on cue boundaries, overlap, and never exceed the embedding model's input."""

from __future__ import annotations

import pytest

from chaffee_assets.ingest.cues import Cue
from chaffee_assets.retrieval.segmenter import Segment, SegmentParams, approximate_token_count, segment_cues
from chaffee_assets_tests.conftest import shared_path


def speech(n: int, seconds: float = 4.0, words: int = 12) -> list[Cue]:
    """n consecutive cues of `words` distinct words each."""
    return [
        Cue(i * seconds, (i + 1) * seconds, " ".join(f"w{i}x{j}" for j in range(words))) for i in range(n)
    ]


def one_piece_per_word(text: str) -> int:
    return len(text.split())


def test_every_segment_starts_on_a_cue_start():
    cues = speech(100)
    starts = {c.start for c in cues}
    segments = segment_cues(cues, SegmentParams(), one_piece_per_word)
    assert segments and all(s.start_s in starts for s in segments)


def test_consecutive_segments_overlap_so_straddling_answers_stay_whole():
    segments = segment_cues(speech(100), SegmentParams(window_s=60, stride_s=30), one_piece_per_word)
    assert all(b.start_s < a.end_s for a, b in zip(segments, segments[1:], strict=False))


def test_every_cue_is_in_some_segment():
    cues = speech(57)
    text = " ".join(s.text for s in segment_cues(cues, SegmentParams(), one_piece_per_word))
    assert all(c.text in text for c in cues)


def test_token_cap_binds_before_the_time_window():
    params = SegmentParams(window_s=600, stride_s=30, max_tokens=100, reserve_tokens=10)
    segments = segment_cues(speech(200), params, one_piece_per_word)
    assert max(one_piece_per_word(s.text) for s in segments) <= params.text_budget
    assert max(s.end_s - s.start_s for s in segments) < 600


def test_a_cue_longer_than_the_budget_is_split_with_time_shared_out():
    long_cue = Cue(10.0, 110.0, " ".join(f"word{i}" for i in range(500)))
    params = SegmentParams(max_tokens=120, reserve_tokens=10)
    segments = segment_cues([long_cue], params, one_piece_per_word)
    assert len(segments) >= 5
    assert all(one_piece_per_word(s.text) <= params.text_budget for s in segments)
    assert segments[0].start_s == 10.0 and segments[-1].end_s == pytest.approx(110.0)
    assert " ".join(s.text for s in segments).split()[-1] == "word499"


def test_rolled_repeats_of_auto_captions_are_said_once():
    cues = [Cue(0, 2, "so fasting"), Cue(2, 4, "so fasting"), Cue(4, 6, "helps insulin")]
    [segment] = segment_cues(cues, SegmentParams(), one_piece_per_word)
    assert segment == Segment(0, 0.0, 6.0, "so fasting helps insulin")


def test_ordinals_count_from_zero_and_empty_transcripts_give_nothing():
    assert segment_cues([], SegmentParams()) == []
    segments = segment_cues(speech(60), SegmentParams(), one_piece_per_word)
    assert [s.ordinal for s in segments] == list(range(len(segments)))


def test_the_approximate_counter_never_undercounts_real_word_pieces():
    from transformers import AutoTokenizer

    from chaffee_assets.retrieval.embedder import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    text = "Dr. Huberman: melatonin, acetylcholine and norepinephrine's half-life (about 4-6 hours)."
    assert approximate_token_count(text) >= len(tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("bad", [dict(window_s=0), dict(stride_s=90, window_s=60), dict(max_tokens=20)])
def test_impossible_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        SegmentParams(**bad)


def test_dev_library_segments_fit_the_model_input_with_a_passage_prompt(tmp_path):
    """Every segment of the dev library, cut with the reference tokenizer and read with the longest
    known passage prompt in front, fits the 256 pieces all-MiniLM-L6-v2 reads (counted by the
    model's own tokenizer, special tokens included): no words are silently dropped."""
    from transformers import AutoTokenizer

    from chaffee_assets.ingest.captions import parse_caption_file
    from chaffee_assets.retrieval.embedder import default_model_path
    from chaffee_assets.retrieval.models import KNOWN_MODELS
    from chaffee_assets.retrieval.segmenter import reference_token_counter

    library = shared_path("eval", "huberman_dev", "library")
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    prompt = max((card.passage_prompt for card in KNOWN_MODELS.values()), key=len)
    params = SegmentParams()
    inputs = []
    for info_path in sorted(library.glob("*.info.json")):
        video_id = info_path.name.removesuffix(".info.json")
        caption = next(p for p in library.iterdir() if p.name.startswith(f"{video_id}.en."))
        for segment in segment_cues(parse_caption_file(caption), params, reference_token_counter()):
            inputs.append(prompt + segment.text)
    assert len(inputs) > 1000
    lengths = [len(ids) for ids in tokenizer(inputs, truncation=False)["input_ids"]]  # with [CLS]/[SEP]
    assert max(lengths) <= params.max_tokens == 256
