"""`chaffee captions FILE`: show the cues a caption or transcript file parses into."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from chaffee_assets.cli.terminal import printable
from chaffee_assets.ingest.captions import CaptionError, parse_caption_file
from chaffee_assets.ingest.cues import Cue
from chaffee_assets.retrieval.transcript_sets import parse_chapter_file, parse_transcript_collection

# A bad file is a usage problem, not a crash: the same status argparse uses for bad arguments.
EXIT_BAD_FILE = 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `captions` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "captions",
        help="show the timed text in a caption or transcript file (VTT, SRT, json3, srv3, JSON)",
        description=(
            "Parse a caption or transcript file and print its cues, one per line as "
            "[start → end] text, or as JSON with --json. Files holding several videos' "
            "transcripts need --video ID."
        ),
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the caption or transcript file")
    parser.add_argument(
        "--json", action="store_true", help='print a JSON list of {"start", "end", "text"} (seconds)'
    )
    parser.add_argument("--video", metavar="ID", help="the video to show from a multi-video transcript file")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the file's cues; a file that cannot be used prints `error: …` and returns 2."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        cues = load_cues(args.file, args.video)
    except CaptionError as exc:
        print(f"error: {printable(exc)}", file=err)
        return EXIT_BAD_FILE
    if args.json:
        json.dump([cue.as_dict() for cue in cues], out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        for cue in cues:
            print(format_cue(cue), file=out)
    return 0


def load_cues(path: Path, video_id: str | None) -> list[Cue]:
    """One video's cues: the whole file, or the video `video_id` of a multi-video file.

    Caption formats a channel produces are read first; a JSON file that is none of them is tried
    as an evaluation set's transcripts (a chapter list, or a collection that needs --video).
    """
    if video_id is None:
        try:
            return parse_caption_file(path)
        except CaptionError as not_captions:
            if path.suffix.lower() != ".json":
                raise
            return _evaluation_set_transcript(path, not_captions)
    try:
        transcripts = parse_transcript_collection(path)
    except CaptionError:
        parse_caption_file(path)  # a file that is unusable either way reports its own problem
        raise CaptionError(str(path), "holds one video's captions; run without --video") from None
    if video_id not in transcripts:
        known = ", ".join(sorted(transcripts)[:5]) + (", …" if len(transcripts) > 5 else "")
        raise CaptionError(str(path), f"has no video {video_id!r} (it holds {len(transcripts)}: {known})")
    return transcripts[video_id]


def _evaluation_set_transcript(path: Path, not_captions: CaptionError) -> list[Cue]:
    try:
        return parse_chapter_file(path)
    except CaptionError:
        pass
    try:
        transcripts = parse_transcript_collection(path)
    except CaptionError:
        raise not_captions from None
    ids = sorted(transcripts)
    shown = ", ".join(ids[:3]) + (", …" if len(ids) > 3 else "")
    raise CaptionError(
        str(path), f"holds {len(ids)} videos' transcripts ({shown}); pick one with --video ID"
    ) from None


def format_cue(cue: Cue) -> str:
    return f"[{format_time(cue.start)} → {format_time(cue.end)}] {printable(cue.text)}"


def format_time(seconds: float) -> str:
    """`mm:ss.s`, or `h:mm:ss.s` from an hour on, truncated so a time never reads later than it is."""
    tenths = round(seconds * 1000) // 100
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    clock = f"{minutes:02d}:{rest // 10:02d}.{rest % 10}"
    return f"{hours}:{clock}" if hours else clock
