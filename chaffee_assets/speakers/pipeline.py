"""Label the speakers of a day's videos: fetch each video's audio, label it, write it; unknown when no audio."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from chaffee_assets.ingest.kept_audio import obtain_audio
from chaffee_assets.ingest.outcomes import TranscriptFailure
from chaffee_assets.ingest.sources import VideoSource
from chaffee_assets.ingest.videos import Video
from chaffee_assets.speakers import store
from chaffee_assets.speakers.encoder import VoiceEncoder
from chaffee_assets.speakers.labelling import LabelParams, SpeakerInputError, label_samples
from chaffee_assets.transcription.audio import UndecodableAudio, decode

NO_HOST = "no host enrolled: run `chaffee speakers enroll NAME AUDIO… --host`"


def no_host_message(conn: psycopg.Connection, model: str) -> str:
    """Why no video can be labelled: no host at all, or a host enrolled under another voice model."""
    other = store.host_of_another_model(conn, model)
    if other is None:
        return NO_HOST
    name, his_model = other
    return (
        f"no host enrolled for voice model {model}: {name}'s profile was made with {his_model}; "
        f"enrol him again with this model (`chaffee speakers enroll {name} AUDIO… --host`)"
    )


@dataclass
class LabelReport:
    labelled: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unknown: dict[str, str] = field(default_factory=dict)  # video id -> why
    host_shares: dict[str, float | None] = field(default_factory=dict)


def _up_to_date(conn: psycopg.Connection, video_id: str, model: str, profiles: list[str]) -> bool:
    row = conn.execute(
        "SELECT status, model, profiles FROM speaker_labellings WHERE video_id = %s", (video_id,)
    ).fetchone()
    return row is not None and row[0] == "labelled" and row[1] == model and sorted(row[2]) == sorted(profiles)


def label_videos(
    conn: psycopg.Connection,
    source: VideoSource,
    videos: Iterable[Video],
    encoder: Callable[[], VoiceEncoder],
    model: str,
    *,
    force: bool = False,
    params: LabelParams | None = None,
    keep_dir: Path | None = None,
) -> LabelReport:
    """Label each video with the stored profiles of `model`; skip one already labelled with the same
    model and profiles. `encoder` loads the model, only when a video needs it. `keep_dir`: where
    audio is kept between steps (speech recognition's download is reused; none is kept without it)."""
    report = LabelReport()
    profiles = store.load_profiles(conn, model)
    names = [p.name for p in profiles]
    has_host = any(p.is_host for p in profiles)
    why_no_host = "" if has_host else no_host_message(conn, model)
    for video in videos:
        if not has_host:
            store.write_unknown(conn, video.video_id, why_no_host)
            report.unknown[video.video_id] = why_no_host
            continue
        if not force and _up_to_date(conn, video.video_id, model, names):
            report.unchanged.append(video.video_id)
            continue
        with tempfile.TemporaryDirectory(prefix="chaffee-speakers-") as folder:
            try:
                audio = obtain_audio(source, video, Path(folder), keep_dir=keep_dir, smallest=True)
                labelling = label_samples(decode(audio), profiles, encoder(), params)
            except (TranscriptFailure, UndecodableAudio, SpeakerInputError) as exc:
                why = f"video {video.video_id}: {exc}"
                store.write_unknown(conn, video.video_id, why)
                report.unknown[video.video_id] = why
                continue
            store.write_labelling(conn, video.video_id, labelling, names, audio.name)
        report.labelled.append(video.video_id)
        report.host_shares[video.video_id] = labelling.host_share
    return report
