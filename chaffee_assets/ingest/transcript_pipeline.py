"""Deciding and obtaining one video's transcript: captions first, then speech recognition.

The order is the cost order. Captions are free; speech recognition costs GPU time or money, so it is
used only when captions are known not to exist (never because YouTube blocked us) and, for new
videos, only after the wait for auto captions is over.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from psycopg import Connection

from chaffee_assets.ingest import store
from chaffee_assets.ingest.cues import cues_within
from chaffee_assets.ingest.kept_audio import obtain_audio
from chaffee_assets.ingest.outcomes import FailureClass, TranscriptFailure
from chaffee_assets.ingest.sources import VideoSource
from chaffee_assets.ingest.videos import Video
from chaffee_assets.settings import settings
from chaffee_assets.transcription import registry


class SpeechRecognizer(Protocol):
    """What the pipeline needs of a transcription engine (local Whisper or OpenAI)."""

    engine: str

    def transcribe(self, audio: Path, *, video_id: str | None = None): ...


@dataclass(frozen=True, slots=True)
class TranscriptOutcome:
    """What happened to one video: `status` is 'written', 'kept' or a FailureClass value."""

    video_id: str
    status: str
    source: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TranscriptRules:
    caption_wait: timedelta = timedelta(hours=48)  # auto captions usually appear within hours
    force: bool = False  # replace the current transcript even when the new one is not better


def obtain_transcript(
    conn: Connection,
    video: Video,
    source: VideoSource,
    recognizer_for: Callable[[], SpeechRecognizer],
    *,
    now: datetime,
    rules: TranscriptRules = TranscriptRules(),
) -> TranscriptOutcome:
    """Write the best transcript obtainable for `video`, or record why there is none.

    Never raises for a per-video problem: every failure is classified, stored in
    `transcript_attempts`, and returned, so one bad video cannot fail its day.
    """
    current = store.current_transcript(conn, video.video_id)
    if (
        current is not None
        and not rules.force
        and registry.rank(current.source) >= registry.rank(registry.MANUAL_CAPTIONS)
    ):
        return TranscriptOutcome(video.video_id, "kept", current.source, "already has manual captions")
    try:
        if video.availability != "available":
            raise TranscriptFailure(
                FailureClass.UNAVAILABLE, f"video {video.video_id} is {video.availability}"
            )
        try:
            track = source.fetch_captions(video)
            if not track.cues:
                raise TranscriptFailure(
                    FailureClass.NO_CAPTIONS, f"the captions of {video.video_id} are empty"
                )
            cues = cues_within(track.cues, video.duration_s)
            if not cues:
                raise TranscriptFailure(
                    FailureClass.ERROR,
                    f"video {video.video_id}: every cue of {track.origin} starts after the video's end"
                    f" ({video.duration_s:.0f} s by its metadata); the captions or the duration are wrong",
                )
            if current is not None and not rules.force and not store.is_improvement(track.source, current):
                return TranscriptOutcome(
                    video.video_id, "kept", current.source, "current transcript is as good"
                )
            store.write_transcript(
                conn,
                video.video_id,
                cues,
                source=track.source,
                language=track.language,
                model=track.origin,
            )
            return TranscriptOutcome(video.video_id, "written", track.source)
        except TranscriptFailure as failure:
            if failure.failure_class is not FailureClass.NO_CAPTIONS:
                raise
            if current is not None and not rules.force:
                # Captions vanished but we already hold a transcript: keep it rather than pay again.
                return TranscriptOutcome(
                    video.video_id, "kept", current.source, "no captions now; kept current"
                )
            _require_caption_wait_over(video, now, rules.caption_wait)
            return _recognise_speech(conn, video, source, recognizer_for)
    except TranscriptFailure as failure:
        store.record_failure(conn, video.video_id, failure)
        return TranscriptOutcome(video.video_id, failure.failure_class.value, None, failure.message)
    except Exception as exc:  # a bug or an unexpected library error: keep the day going, say which video
        failure = TranscriptFailure(FailureClass.ERROR, f"{video.video_id}: {type(exc).__name__}: {exc}")
        if conn.info.transaction_status.name != "IDLE":
            conn.rollback()
        store.record_failure(conn, video.video_id, failure)
        return TranscriptOutcome(video.video_id, FailureClass.ERROR.value, None, failure.message)


def _require_caption_wait_over(video: Video, now: datetime, wait: timedelta) -> None:
    if video.published_at is None:
        return
    ready_at = video.published_at + wait
    if now < ready_at:
        raise TranscriptFailure(
            FailureClass.TOO_NEW,
            f"{video.video_id} was published {video.published_at:%Y-%m-%d %H:%M} UTC; waiting until "
            f"{ready_at:%Y-%m-%d %H:%M} UTC for auto captions before paying for speech recognition",
            retry_after=ready_at,
        )


def _recognise_speech(
    conn: Connection, video: Video, source: VideoSource, recognizer_for: Callable[[], SpeechRecognizer]
) -> TranscriptOutcome:
    recognizer = recognizer_for()
    with tempfile.TemporaryDirectory(prefix=f"chaffee-audio-{video.video_id.lstrip('-')}-") as tmp:
        audio = obtain_audio(source, video, Path(tmp), keep_dir=settings().audio_dir)
        result = recognizer.transcribe(audio, video_id=video.video_id)
    if not result.cues:
        raise TranscriptFailure(FailureClass.ERROR, f"{result.engine} heard no speech in {video.video_id}")
    store.write_transcript(
        conn,
        video.video_id,
        result.cues,
        source=result.engine,
        language=result.language,
        model=result.model,
        audio_seconds=result.audio_seconds,
        cost_usd=result.cost_usd,
    )
    return TranscriptOutcome(video.video_id, "written", result.engine)
