"""A video's audio for a step that needs it: downloaded into the step's own folder and deleted with
it, or, where the operator asks (`CHAFFEE_AUDIO_DIR`), kept in one folder and reused by the next step.

Speech recognition downloads the best audio; labelling who speaks then reads that same file instead
of downloading again. Without the setting nothing is kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from chaffee_assets.ingest.library import AUDIO_EXTENSIONS
from chaffee_assets.ingest.sources import VideoSource
from chaffee_assets.ingest.videos import Video

# What a library folder holds beside a video, which covers yt-dlp's audio-only streams too, and
# the video file yt-dlp's last fallback (`best`) writes when a video has no audio-only stream.
AUDIO_SUFFIXES = frozenset({f".{ext}" for ext in AUDIO_EXTENSIONS} | {".mp4"})


def kept_audio(keep_dir: Path, video_id: str) -> Path | None:
    """The audio kept for `video_id` in `keep_dir`, if any (a partial download is not audio)."""
    if not keep_dir.is_dir():
        return None
    for path in sorted(keep_dir.iterdir()):
        if path.stem == video_id and path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
            return path
    return None


def obtain_audio(
    source: VideoSource, video: Video, work_dir: Path, *, keep_dir: Path | None, smallest: bool = False
) -> Path:
    """The video's audio: the kept file when there is one, else fetched into `work_dir` (which the
    caller deletes) and, with `keep_dir`, copied there for the steps after."""
    if keep_dir is not None and (found := kept_audio(keep_dir, video.video_id)) is not None:
        return found
    fetched = source.fetch_audio(video, work_dir, smallest=smallest)
    if keep_dir is None:
        return fetched
    keep_dir.mkdir(parents=True, exist_ok=True)
    kept = keep_dir / f"{video.video_id}{fetched.suffix}"
    # Written whole beside, then renamed: a run killed mid-copy leaves no half file under the name.
    partial = kept.with_name(kept.name + ".part")
    shutil.copyfile(fetched, partial)
    partial.replace(kept)
    return kept
