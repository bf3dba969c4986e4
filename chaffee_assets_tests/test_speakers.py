"""Who said it: enrolment, labelling and the bad-input cases of `chaffee speakers`, on real speech."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import psycopg
import pytest

from chaffee_assets.cli.main import main
from chaffee_assets.speakers.encoder import SAMPLE_RATE, load_encoder
from chaffee_assets.speakers.evaluation import librispeech_cases, predicted_host, score
from chaffee_assets.speakers.labelling import (
    LabelParams,
    _absorb_fragments,
    _pad_turns,
    _window_scores,
    decide,
    label_samples,
    profile_from_samples,
    speech_windows,
)
from chaffee_assets.speakers.store import write_labelling
from chaffee_assets.speakers.vad import voiced_frames
from chaffee_assets.transcription.audio import decode, encode_mp3
from chaffee_assets_tests.conftest import shared_path

HOST_SPEAKER, GUEST_SPEAKER = "1688", "2033"


def _utterances(speaker: str) -> list[Path]:
    return sorted(shared_path("realdata", "speakers", "librispeech", "test-other", speaker).glob("*.flac"))


def _write(samples: np.ndarray, path: Path) -> Path:
    return encode_mp3(samples.astype(np.int16), path, bitrate=64_000)


def interview_pieces() -> list[tuple[np.ndarray, str]]:
    host, guest = _utterances(HOST_SPEAKER), _utterances(GUEST_SPEAKER)
    return [(decode(host[5]), "host"), (decode(guest[0]), "guest"), (decode(host[6]), "host")]


@pytest.fixture(scope="module")
def interview(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float, str]]]:
    """Host, guest, host: utterances the host was not enrolled from, with 0.6 s pauses; and who spoke when."""
    pieces = interview_pieces()
    pause = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.int16)
    joined, truth, cursor = [], [], 0.0
    for samples, who in pieces:
        joined += [pause, samples]
        cursor += len(pause) / SAMPLE_RATE
        truth.append((cursor, cursor + len(samples) / SAMPLE_RATE, who))
        cursor += len(samples) / SAMPLE_RATE
    path = _write(np.concatenate(joined + [pause]), tmp_path_factory.mktemp("speakers") / "interview.mp3")
    return path, truth


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["speakers", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _enrol_host(capsys) -> None:
    status, out, err = _cli(capsys, "enroll", "Anthony", *map(str, _utterances(HOST_SPEAKER)[:3]), "--host")
    assert status == 0, err
    assert out.startswith("enrolled Anthony (host)")


def test_enrol_then_label_json_tells_the_host_from_the_guest(warehouse_url: str, interview, capsys) -> None:
    _enrol_host(capsys)
    path, truth = interview
    status, out, err = _cli(capsys, "label", str(path), "--json")
    assert status == 0, err
    labels = json.loads(out)
    assert set(labels) == {"turns", "host_share"}
    assert all(set(turn) == {"start_s", "end_s", "speaker", "confidence"} for turn in labels["turns"])
    assert {turn["speaker"] for turn in labels["turns"]} == {"Anthony", "other"}

    def spoken_by(start: float, end: float, speaker: str) -> float:
        return sum(
            max(0.0, min(end, t["end_s"]) - max(start, t["start_s"]))
            for t in labels["turns"]
            if t["speaker"] == speaker
        )

    # Scored against each utterance's speech as the detector hears it: silence has no turn.
    speech = {who: 0.0 for _, _, who in truth}
    for (start, end, who), (samples, _) in zip(truth, interview_pieces(), strict=True):
        voiced_s = voiced_frames(samples.astype(np.float32) / 32768).sum() / 100
        speech[who] += voiced_s
        assert spoken_by(start, end, "Anthony" if who == "host" else "other") >= 0.95 * voiced_s, labels
        assert spoken_by(start, end, "other" if who == "host" else "Anthony") <= 0.05 * (end - start), labels
    assert labels["host_share"] == pytest.approx(speech["host"] / sum(speech.values()), abs=0.05)


def test_list_shows_one_host_and_a_new_host_takes_the_flag(warehouse_url: str, capsys) -> None:
    _enrol_host(capsys)
    status, out, _ = _cli(capsys, "enroll", "Guest", *map(str, _utterances(GUEST_SPEAKER)[:2]), "--host")
    assert status == 0
    status, out, _ = _cli(capsys, "list")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("Guest (host)") and lines[1].startswith("Anthony  ")


def test_reenrolling_replaces_the_profile_and_marks_its_labels_for_recomputation(
    warehouse_url: str, interview, capsys
) -> None:
    _enrol_host(capsys)
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("INSERT INTO videos (video_id, source, title, url) VALUES ('v1', 'library', 't', 'u')")
        from chaffee_assets.speakers.store import load_profiles

        profiles = load_profiles(conn)
        labelling = label_samples(decode(interview[0]), profiles, load_encoder())
        write_labelling(conn, "v1", labelling, [p.name for p in profiles], "interview.mp3")
        before = conn.execute("SELECT vector FROM speaker_profiles WHERE name = 'Anthony'").fetchone()[0]
    status, out, _ = _cli(capsys, "enroll", "Anthony", *map(str, _utterances(HOST_SPEAKER)[3:5]), "--host")
    assert status == 0 and "1 labelled videos marked for recomputation" in out
    with psycopg.connect(warehouse_url) as conn:
        assert (
            conn.execute("SELECT status FROM speaker_labellings WHERE video_id = 'v1'").fetchone()[0]
            == "stale"
        )
        after = conn.execute("SELECT vector FROM speaker_profiles WHERE name = 'Anthony'").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM speaker_profiles").fetchone()[0] == 1
    assert before != after


def test_an_unreadable_recording_is_one_error_line(warehouse_url: str, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "talk.m4a"
    broken.write_bytes(b"not audio at all" * 100)
    for argv in (("enroll", "Anthony", str(broken), "--host"), ("label", str(broken))):
        status, out, err = _cli(capsys, *argv)
        assert status == 2 and out == ""
        assert err.startswith(f"error: cannot read {broken} as audio") and err.count("\n") == 1


def test_a_silent_recording_is_one_error_line_and_stores_nothing(
    warehouse_url: str, tmp_path: Path, capsys
) -> None:
    silent = _write(np.zeros(20 * SAMPLE_RATE, dtype=np.int16), tmp_path / "silence.mp3")
    status, _, err = _cli(capsys, "enroll", "Anthony", str(silent), "--host")
    assert status == 2 and "only 0.0 s of speech for Anthony" in err and err.count("\n") == 1
    _enrol_host(capsys)
    status, _, err = _cli(capsys, "label", str(silent))
    assert status == 2 and err == f"error: {silent}: the recording holds no speech (silent, or noise only)\n"
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT name FROM speaker_profiles").fetchall() == [("Anthony",)]


def test_a_profile_from_two_seconds_of_speech_is_refused(warehouse_url: str, tmp_path: Path, capsys) -> None:
    speech = decode(_utterances(HOST_SPEAKER)[0])
    voiced_start = int(np.argmax(np.abs(speech) > 2000))
    short = _write(speech[voiced_start : voiced_start + 2 * SAMPLE_RATE], tmp_path / "short.mp3")
    status, out, err = _cli(capsys, "enroll", "Anthony", str(short), "--host")
    assert status == 2 and out == ""
    assert "s of speech for Anthony: a profile needs at least 8 s" in err and err.count("\n") == 1


def test_without_a_host_labels_say_so_and_carry_no_host_share(warehouse_url: str, interview, capsys) -> None:
    status, _, err = _cli(capsys, "label", str(interview[0]))
    assert status == 2 and "no voice profiles" in err and "--host" in err
    status, _, _ = _cli(capsys, "enroll", "Guest", *map(str, _utterances(GUEST_SPEAKER)[:2]))
    assert status == 0
    status, out, err = _cli(capsys, "label", str(interview[0]), "--json")
    assert status == 0 and "no host enrolled" in err
    labels = json.loads(out)
    assert labels["host_share"] is None and {t["speaker"] for t in labels["turns"]} == {"Guest", "other"}


def test_other_cannot_name_a_profile(warehouse_url: str, capsys) -> None:
    status, _, err = _cli(capsys, "enroll", "Other", str(_utterances(HOST_SPEAKER)[0]))
    assert status == 2 and "cannot name a profile" in err


@pytest.fixture(scope="module")
def composed_case():
    return librispeech_cases(shared_path("realdata", "speakers", "librispeech"), seed=3, hosts=["2414"])[0]


@pytest.mark.parametrize("model", ["resemblyzer", "campplus"])
def test_spectra_in_batches_equal_the_whole_recording_framed_at_once(model: str, monkeypatch) -> None:
    """The front ends frame a recording in batches (to stay in the cache): a batch boundary anywhere,
    here every 7 frames, gives the frames the whole recording framed at once gives."""
    from chaffee_assets.speakers import campplus, encoder

    speech = decode(_utterances(HOST_SPEAKER)[0]).astype(np.float32) / 32768.0
    front_end = encoder.mel_power_frames if model == "resemblyzer" else campplus.kaldi_fbank
    whole = front_end(speech)
    monkeypatch.setattr(encoder, "SPECTRUM_BATCH_FRAMES", 7)
    batched = front_end(speech)
    assert len(whole) > 100 * 7 and batched.shape == whole.shape and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6 * float(np.abs(whole).max()))


def test_labelling_memory_grows_by_little_more_than_one_float_copy_of_the_recording() -> None:
    """An hour of the channel is 115 MB of 16-bit samples: the labeller may hold one float copy of it
    and its frames, never the padded, clipped, scaled and windowed copies it once made (6.5 times
    the samples per audio minute)."""
    import tracemalloc

    encoder = load_encoder()
    utterances = _utterances(HOST_SPEAKER)
    profile = profile_from_samples("h", True, [decode(p) for p in utterances[:3]], encoder)
    speech = np.concatenate([decode(p) for p in utterances[3:]])

    def peak_bytes(minutes: int) -> int:
        samples = np.resize(speech, SAMPLE_RATE * 60 * minutes)
        tracemalloc.start()
        try:
            label_samples(samples, [profile], encoder)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    per_minute = (peak_bytes(5) - peak_bytes(1)) / 4
    samples_per_minute = SAMPLE_RATE * 60 * 2  # int16
    assert per_minute < 3.5 * samples_per_minute, per_minute / samples_per_minute


def test_composed_recordings_are_rebuilt_the_same_from_their_seed(composed_case) -> None:
    again = librispeech_cases(shared_path("realdata", "speakers", "librispeech"), seed=3, hosts=["2414"])[0]
    assert [r.name for r in again.recordings] == [r.name for r in composed_case.recordings]
    assert [r.truth for r in again.recordings] == [r.truth for r in composed_case.recordings]
    assert np.array_equal(again.recordings[1].samples, composed_case.recordings[1].samples)
    assert [r.kind for r in composed_case.recordings] == ["monologue", "interview", "live_qa", "no_host"]


def test_monologue_is_the_host_and_a_recording_without_him_has_no_host(composed_case) -> None:
    encoder = load_encoder()
    profile = profile_from_samples("host", True, composed_case.enrolment, encoder)
    by_kind = {r.kind: r for r in composed_case.recordings}
    for kind, least in (("monologue", 0.97), ("no_host", 0.99)):
        recording = by_kind[kind]
        labelling = label_samples(recording.samples, [profile], encoder)
        result = score(recording, predicted_host(labelling.turns, "host", int(recording.duration_s * 100)))
        assert result.agreement >= least, kind
        assert result.false_host_rate <= 0.01, kind


def _unit_with_similarity(similarity: float, axis: int, size: int = 256) -> np.ndarray:
    """A unit vector at `similarity` to the first axis, the rest along `axis`."""
    vector = np.zeros(size, dtype=np.float32)
    vector[0], vector[axis] = similarity, np.sqrt(1 - similarity**2)
    return vector


def _frames_of(*stretches: tuple[float, int]) -> np.ndarray:
    """Per 10 ms frame a label (-1 silence) from (seconds, label) stretches."""
    return np.concatenate([np.full(int(round(seconds * 100)), label) for seconds, label in stretches])


def test_isolated_fragments_between_two_host_turns_are_the_host() -> None:
    # The host, then two sub-second stretches set apart by pauses whose own windows sit at 0.65 to
    # his profile (one window is a noisy witness), then the host again: a listener hears one speaker.
    layout = _frames_of((4.0, 0), (0.45, -1), (0.9, 1), (1.75, -1), (0.9, 1), (1.2, -1), (4.0, 0), (0.5, -1))
    voiced = layout >= 0
    starts = speech_windows(voiced, 160, 80)
    host_vector, fragment_vector = _unit_with_similarity(0.92, 1), _unit_with_similarity(0.65, 2)
    vectors = np.stack(
        [
            fragment_vector
            if (layout[s : s + 160] == 1).sum() > (layout[s : s + 160] == 0).sum()
            else host_vector
            for s in starts
        ]
    )
    profile = _unit_with_similarity(1.0, 1)[None, :]
    choice, _ = decide(vectors, starts, voiced, 160, profile, LabelParams())
    assert (choice[voiced] == 0).all()
    # Judged alone, the fragments are someone else: the turns around them are what decide.
    alone, _ = decide(vectors, starts, voiced, 160, profile, LabelParams(fragment_s=0.0))
    assert (alone[layout == 1] == 1).all()


def test_a_fragment_keeps_its_label_when_the_turns_around_it_disagree_or_are_far() -> None:
    host, other, pause = 0, 1, -1
    cases = {
        # a caller's first words before the host answers: a turn on one side only
        "one side": _frames_of((1.2, other), (0.5, pause), (5.0, host)),
        # between the host and a guest
        "two speakers": _frames_of((5.0, host), (0.5, pause), (1.0, other), (0.5, pause), (5.0, other)),
        # a guest's full turn between two of the host's
        "a real turn": _frames_of((5.0, host), (0.5, pause), (3.0, other), (0.5, pause), (5.0, host)),
        # a pause longer than the gap on one side
        "far": _frames_of((5.0, host), (2.5, pause), (1.0, other), (0.5, pause), (5.0, host)),
    }
    for name, choice in cases.items():
        assert np.array_equal(_absorb_fragments(choice, 150, 200), choice), name
    near = _frames_of((5.0, host), (1.5, pause), (1.0, other), (0.5, pause), (5.0, host))
    assert set(_absorb_fragments(near, 150, 200).tolist()) == {host, pause}


def test_a_far_field_voice_near_the_profile_as_a_group_is_still_told_from_the_host() -> None:
    # A meeting room: the host's windows at 0.97 to his profile; a second voice's windows each near
    # 0.68, but as a group (the room's noise averaged out) at 0.86, so that a cluster of them clears
    # the profile's threshold by itself. The recording's own sure windows tell the two apart.
    rng = np.random.default_rng(0)
    host = np.zeros((20, 256))
    host[:, 0], host[:, 1:] = 3.0, rng.normal(0, 0.05, (20, 255))
    other = np.zeros((20, 256))
    other[:, 0], other[:, 5], other[:, 6:] = 1.0, 0.6, rng.normal(0, 0.9 / np.sqrt(250), (20, 250))
    vectors = np.concatenate([host, other])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    profile = _unit_with_similarity(1.0, 1)[None, :]
    group = other.mean(axis=0) / np.linalg.norm(other.mean(axis=0))
    assert float(group @ profile[0]) > 0.80
    scores = _window_scores(vectors.astype(np.float32), profile, LabelParams())[:, 0]
    assert (scores[:20] >= 0.80).all()
    assert (scores[20:] < 0.80).all()


def test_with_two_other_voices_each_is_told_from_the_host_by_its_own_mean() -> None:
    # A meeting: the host, a voice far from him heard often, and a voice nearer him heard little.
    # One mean of "the others" sits nearer the second voice's windows to the host than to the
    # second voice itself; grouped into voices, each window finds its own.
    rng = np.random.default_rng(1)

    def voice(count: int, similarities: np.ndarray, axis: int) -> np.ndarray:
        vectors = np.zeros((count, 256))
        vectors[:, 0], vectors[:, axis] = similarities, np.sqrt(1 - similarities**2)
        vectors[:, 10:] = rng.normal(0, 0.01, (count, 246))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    host = voice(20, np.full(20, 0.97), 1)
    often = voice(16, np.full(16, 0.60), 3)
    nearer = voice(6, np.linspace(0.66, 0.76, 6), 4)
    vectors = np.concatenate([host, often, nearer]).astype(np.float32)
    profile = _unit_with_similarity(1.0, 2)[None, :]
    scores = _window_scores(vectors, profile, LabelParams())[:, 0]
    assert (scores[:20] >= 0.80).all()
    assert (scores[20:] < 0.80).all()


def test_turns_reach_a_little_into_silence_but_never_into_another_turn() -> None:
    choice = _frames_of((0.5, -1), (1.0, 0), (0.1, -1), (1.0, 1), (1.0, -1))
    padded = _pad_turns(choice, 20)
    assert (padded[:30] == -1).all() and (padded[30:150] == 0).all()  # 0.2 s before the first turn
    assert (padded[150:160] == 0).all()  # the 0.1 s between the turns: the first reaches it first
    assert (padded[160:260] == 1).all()  # the second turn is not eaten into
    assert (padded[260:280] == 1).all() and (padded[280:] == -1).all()


def _library_video(folder: Path, video_id: str, cues: list[tuple[float, float, str]]) -> None:
    info = {"id": video_id, "title": f"Talk {video_id}", "upload_date": "20240305", "duration": 30,
            "webpage_url": f"https://www.youtube.com/watch?v={video_id}", "_type": "video"}  # fmt: skip
    (folder / f"{video_id}.info.json").write_text(json.dumps(info))

    def clock(seconds: float) -> str:
        return f"00:{int(seconds) // 60:02d}:{seconds % 60:06.3f}"

    vtt = "WEBVTT\n\n" + "".join(f"{clock(a)} --> {clock(b)}\n{text}\n\n" for a, b, text in cues)
    (folder / f"{video_id}.en.vtt").write_text(vtt)


def test_ingest_labels_each_videos_speakers_and_a_video_without_audio_stays_unknown(
    warehouse_url: str, interview, tmp_path: Path, capsys
) -> None:
    import dagster as dg

    from chaffee_assets.definitions import INGEST_ASSETS, build_resources
    from chaffee_assets.defs.resources import VideoSourceResource

    path, truth = interview
    library = tmp_path / "library"
    library.mkdir()
    lines = ["Meat is the most nutrient dense food.", "My mother swore by oatmeal.", "Fibre is not needed."]
    _library_video(
        library, "talkaudio01", [(a, b, text) for (a, b, _), text in zip(truth, lines, strict=True)]
    )
    (library / "talkaudio01.mp3").write_bytes(path.read_bytes())
    _library_video(library, "talknoaudio", [(1.0, 4.0, "A talk whose recording is missing.")])
    guest = np.concatenate([decode(p) for p in _utterances(GUEST_SPEAKER)[1:3]])
    _write(guest, library / "guestclip01.mp3")
    _library_video(library, "guestclip01", [(0.5, 9.0, "My grandmother ate oatmeal every single morning.")])
    resources = build_resources(video_source=VideoSourceResource(library_dir=str(library)))
    selection = INGEST_ASSETS

    def ingest() -> dg.ExecuteInProcessResult:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                selection, resources=resources, partition_key="2024-03-05", instance=instance
            )
        assert result.success
        return result

    ingest()  # no host enrolled yet: unknown, never guessed
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT DISTINCT status FROM speaker_labellings").fetchall() == [("unknown",)]
    _enrol_host(capsys)  # a new host marks those for recomputation
    metadata = ingest().asset_materializations_for_node("speaker_labels")[0].metadata
    assert metadata["videos_labelled"].value == 2 and metadata["videos_unknown"].value == 1
    with psycopg.connect(warehouse_url) as conn:
        labellings = dict(conn.execute("SELECT video_id, status FROM speaker_labellings").fetchall())
        assert labellings == {"talkaudio01": "labelled", "talknoaudio": "unknown", "guestclip01": "labelled"}
        shares = dict(
            conn.execute(
                "SELECT s.video_id, ss.host_share FROM segments s LEFT JOIN segment_speakers ss USING (segment_id)"
            ).fetchall()
        )
        assert 0.4 <= shares["talkaudio01"] <= 0.8 and shares["talknoaudio"] is None
        assert shares["guestclip01"] == 0.0
        cue_speakers = conn.execute(
            "SELECT speaker FROM cue_speakers JOIN transcripts USING (transcript_id)"
            " WHERE video_id = 'talkaudio01' ORDER BY cue_index"
        ).fetchall()
        assert cue_speakers == [("Anthony",), ("other",), ("Anthony",)]
        turns = conn.execute(
            "SELECT count(*), min(model) FROM speaker_turns WHERE video_id = 'talkaudio01'"
        ).fetchone()
        assert turns[0] >= 3 and turns[1] == "resemblyzer"
    again = ingest().asset_materializations_for_node("speaker_labels")[0].metadata
    assert again["videos_labelled"].value == 0 and again["videos_unchanged"].value == 2

    status = main(["search", "nutrient dense food meat talk", "--json"])
    every = json.loads(capsys.readouterr().out)
    assert status == 0 and {"talkaudio01", "talknoaudio"} <= {h["video_id"] for h in every}
    by_video = {h["video_id"]: h for h in every}
    assert by_video["talknoaudio"]["host_share"] is None and by_video["talknoaudio"]["speaker"] is None
    assert by_video["talkaudio01"]["speaker"] == "Anthony" and by_video["talkaudio01"]["host_share"] >= 0.5
    status = main(["search", "nutrient dense food meat talk", "--speaker", "host", "--json"])
    host_only = json.loads(capsys.readouterr().out)
    assert status == 0 and [h["video_id"] for h in host_only] == ["talkaudio01"]
    _sql_consumers_read_who_speaks_and_filter_by_it(warehouse_url)

    _an_answer_attributes_the_guests_words_to_the_guest(warehouse_url)


def _says_who_spoke(messages: list[dict[str, str]]) -> str:
    """A stand-in chat model that follows the rule it is given: it quotes the first passage and names
    its speaker as the passage's header says."""
    header, text = re.search(r'\[1\] "[^"]*" \(([^)]*)\)\n([^\n]*)', messages[-1]["content"]).groups()
    who = "A guest said" if "a guest or caller, not Dr. Chaffee" in header else "Dr. Chaffee says"
    return f"{who}: {text} [1]"


def _an_answer_attributes_the_guests_words_to_the_guest(warehouse_url: str) -> None:
    from fastapi.testclient import TestClient

    from chaffee_assets.web.app import create_app
    from chaffee_assets.web.settings import WebSettings
    from chaffee_assets_tests.web_helpers import ChatStandIn

    model = ChatStandIn(reply=_says_who_spoke)
    try:
        settings = WebSettings(
            openai_api_key="sk-test", openai_base_url=model.base_url, rate_limit_per_minute=10_000
        )
        with TestClient(create_app(settings, database_url=warehouse_url)) as client:
            response = client.get("/api/answer", params={"q": "did grandmother eat oatmeal every morning"})
            hits = client.get("/api/search", params={"q": "grandmother oatmeal every morning"}).json()["hits"]
            host_only = client.get(
                "/api/search", params={"q": "grandmother oatmeal every morning", "speaker": "host"}
            ).json()["hits"]
            refused = client.get("/api/search", params={"q": "oatmeal", "speaker": "guest"})
            page = client.get("/", params={"q": "grandmother oatmeal every morning"}).text
            host_page = client.get(
                "/", params={"q": "grandmother oatmeal every morning", "speaker": "host"}
            ).text
    finally:
        model.close()
    assert response.status_code == 200, response.text
    body = response.json()
    (request,) = model.requests
    system, user = request["messages"]
    assert "Never attribute a guest's or caller's words to Dr. Chaffee" in system["content"]
    assert "spoken by a guest or caller, not Dr. Chaffee" in user["content"]
    assert body["answer"].startswith("A guest said: My grandmother ate oatmeal")
    assert body["citations"][0]["video_id"] == "guestclip01"
    assert (
        hits[0]["video_id"] == "guestclip01"
        and hits[0]["host_share"] == 0.0
        and hits[0]["speaker"] == "other"
    )
    assert {h["video_id"] for h in host_only} == {"talkaudio01"}
    assert refused.status_code == 400 and "speaker" in refused.text
    assert "Talk guestclip01" in page and "a guest or caller speaks here, not Dr Chaffee" in page
    assert "Talk guestclip01" not in host_page and "Talk talkaudio01" in host_page
    assert 'name="speaker" value="host" checked' in host_page
    # Under each labelled video's title, who speaks when: the guest's clip is all hatched turns.
    assert '<figure class="speaker-timeline">' in page and 'class="other-turn"' in page
    assert "Who speaks when: Dr Chaffee speaks 0% of the time; 1 moment marked." in page


def _sql_consumers_read_who_speaks_and_filter_by_it(warehouse_url: str) -> None:
    """The search function itself carries the speaker columns and the host filter, for SQL readers."""
    with psycopg.connect(warehouse_url) as conn:
        rows = conn.execute(
            "SELECT video_id, host_share, speaker FROM search_segments('nutrient dense food meat talk', mode => 'text')"
        ).fetchall()
        assert {"talkaudio01", "talknoaudio"} <= {video for video, _, _ in rows}
        assert all(
            share is None and speaker is None for video, share, speaker in rows if video == "talknoaudio"
        )
        host = conn.execute(
            "SELECT video_id, host_share FROM search_segments('nutrient dense food meat talk', mode => 'text',"
            " spoken_by => 'host')"
        ).fetchall()
        assert {video for video, _ in host} == {"talkaudio01"} and all(share >= 0.5 for _, share in host)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="spoken_by must be host"):
            conn.execute("SELECT * FROM search_segments('meat', mode => 'text', spoken_by => 'guest')")
