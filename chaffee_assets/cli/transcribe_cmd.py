"""`chaffee transcribe AUDIO_FILE`: speech recognition on one file (a Zoom recording, a podcast).

Uses the same engines and settings as the pipeline; OpenAI calls are checked against the daily budget
and written to the spend ledger like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chaffee_assets.transcription import registry


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transcribe",
        help="transcribe one audio file and print timestamped segments",
        description=__doc__,
    )
    parser.add_argument(
        "audio_file", metavar="AUDIO_FILE", type=Path, help="audio or video file to transcribe"
    )
    parser.add_argument(
        "--engine",
        choices=registry.engine_spellings(),
        default=registry.LOCAL_WHISPER,
        help="; ".join(f"{e.name}: {e.description}" for e in registry.engines())
        + " ('local' is short for local_whisper; the paid engine counts against CHAFFEE_DAILY_BUDGET_USD)",
    )
    parser.add_argument(
        "--model",
        help="local: a model name (large-v3, small, …) or a folder of CTranslate2 files; "
        "openai: the API model (default whisper-1)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default=None,
        help="local engine only: where to run (default CHAFFEE_WHISPER_DEVICE, else auto)",
    )
    parser.add_argument(
        "--compute-type",
        help="local engine only: CTranslate2 compute type, e.g. float16, int8_float16, int8",
    )
    parser.add_argument(
        "--language",
        default="en",
        help="spoken language code (default en); 'auto' detects it",
    )
    parser.add_argument("--json", action="store_true", help='print a JSON list of {"start", "end", "text"}')
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Transcribe and print; errors are one `error: …` line on stderr and exit status 2."""
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.error_text import one_line
    from chaffee_assets.ingest.outcomes import TranscriptFailure
    from chaffee_assets.warehouse import WarehouseError

    try:
        transcription = _transcribe(args)
    except (TranscriptFailure, WarehouseError, ValueError) as exc:
        # WarehouseError: the spend ledger is unreachable, so no paid call was made.
        # A failure of the generic class reads "error: …" already; the line says "error:" once.
        shown = exc.message if isinstance(exc, TranscriptFailure) and exc.failure_class == "error" else exc
        print(f"error: {printable(one_line(shown))}", file=sys.stderr)
        return 2
    if args.json:
        json.dump([cue.as_dict() for cue in transcription.cues], sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        for cue in transcription.cues:
            print(f"[{_clock(cue.start)} → {_clock(cue.end)}] {printable(cue.text)}")
    print(
        f"{len(transcription.cues)} segments, {transcription.audio_seconds:.1f} s of audio, "
        f"{transcription.engine} {transcription.model}, ${transcription.cost_usd:.4f}",
        file=sys.stderr,
    )
    return 0


def _transcribe(args: argparse.Namespace):
    from chaffee_assets.defs.transcription_resources import engine_resource_outside_dagster

    audio: Path = args.audio_file
    if not audio.is_file():
        raise ValueError(f"no such audio file: {audio}")
    language = None if args.language in ("auto", "") else args.language
    engine = registry.normalise_engine(args.engine)
    update: dict[str, object] = {"language": language}
    if args.model:
        update["model"] = args.model
    with engine_resource_outside_dagster(engine) as resource:
        if engine == registry.OPENAI:
            transcriber = resource.model_copy(update=update).transcriber(connect=_ledger_connection)
            return transcriber.transcribe(audio)
        if args.device:
            update["device"] = args.device
        if args.compute_type:
            update["compute_type"] = args.compute_type
        with resource.model_copy(update=update).transcriber() as transcriber:
            return transcriber.transcribe(audio)


def _ledger_connection():
    from chaffee_assets.warehouse import connect
    from chaffee_assets.warehouse.migrate import ensure_schema

    return connect(ensure_schema(), autocommit=True)


def _clock(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:05.2f}"
