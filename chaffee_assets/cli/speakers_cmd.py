"""`chaffee speakers enroll|list|label`: voice profiles in the warehouse, and who speaks when in a recording."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chaffee_assets.cli.main import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "speakers", help="enrol voice profiles and label who speaks when", description=__doc__
    )
    verbs = parser.add_subparsers(dest="speakers_command", metavar="VERB", required=True)
    enroll = verbs.add_parser(
        "enroll",
        help="make (or replace) a profile from recordings of one person",
        description="Make a voice profile from one or more recordings of one person (any format ffmpeg "
        "reads; at least 8 s of speech in all) and store it in the warehouse. Re-enrolling a name "
        "replaces its profile and marks the videos labelled with it for recomputation.",
    )
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("audio", metavar="AUDIO", nargs="+", type=Path)
    enroll.add_argument("--host", action="store_true", help="this person is the host (exactly one is)")
    enroll.set_defaults(handler=_enroll)
    listing = verbs.add_parser("list", help="show the enrolled profiles")
    listing.set_defaults(handler=_list)
    label = verbs.add_parser(
        "label",
        help="print who speaks when in a recording",
        description="Label a recording with the enrolled profiles: each voiced stretch is an enrolled "
        "name or `other`; silence has no turn.",
    )
    label.add_argument("audio", metavar="AUDIO", type=Path)
    label.add_argument(
        "--json",
        action="store_true",
        help='print {"turns": [{"start_s", "end_s", "speaker", "confidence"}], "host_share"}',
    )
    label.set_defaults(handler=_label)


def _samples(path: Path):
    from chaffee_assets.transcription.audio import UndecodableAudio, decode

    if not path.is_file():
        raise UserError(f"no such audio file: {path}")
    try:
        return decode(path)
    except UndecodableAudio as exc:
        raise UserError(f"cannot read {path} as audio (is it a media file ffmpeg reads?): {exc}") from exc


def _encoder():
    from chaffee_assets.settings import settings
    from chaffee_assets.speakers.encoder import SpeakerModelUnavailable, load_encoder

    config = settings()
    try:
        return load_encoder(config.speaker_model, config.speaker_device)
    except SpeakerModelUnavailable as exc:
        raise UserError(str(exc)) from exc


def _connection():
    from chaffee_assets.warehouse import connect
    from chaffee_assets.warehouse.migrate import ensure_schema

    return connect(ensure_schema())


def _enroll(args: argparse.Namespace) -> int:
    from chaffee_assets.speakers.labelling import SpeakerInputError, profile_from_samples
    from chaffee_assets.speakers.store import save_profile

    name = args.name.strip()
    if not name or name.lower() == "other":
        raise UserError(
            f"{args.name!r} cannot name a profile: choose a person's name ('other' means anyone not enrolled)"
        )
    recordings = [_samples(path) for path in args.audio]
    try:
        profile = profile_from_samples(name, args.host, recordings, _encoder())
    except SpeakerInputError as exc:
        raise UserError(str(exc)) from exc
    with _connection() as conn:
        stale = save_profile(conn, profile, [str(path) for path in args.audio])
    role = "host" if profile.is_host else "speaker"
    print(
        f"enrolled {name} ({role}) from {profile.speech_s:.1f} s of speech with {profile.model}"
        + (f"; {stale} labelled videos marked for recomputation" if stale else "")
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from chaffee_assets.cli.terminal import printable
    from chaffee_assets.speakers.store import profile_rows

    with _connection() as conn:
        rows = profile_rows(conn)
    if not rows:
        print("no voice profiles: enrol the host with `chaffee speakers enroll NAME AUDIO… --host`")
        return 0
    for name, is_host, model, speech_s, sources, enrolled_at in rows:
        print(
            f"{printable(name)}{' (host)' if is_host else ''}  {model}  {speech_s:.1f} s of speech from "
            f"{len(sources)} recording{'s' if len(sources) != 1 else ''}  enrolled {enrolled_at:%Y-%m-%d %H:%M}"
        )
    if not any(row[1] for row in rows):
        print(
            "no host enrolled: labels carry no host share until one is (`chaffee speakers enroll NAME AUDIO… --host`)"
        )
    return 0


def _label(args: argparse.Namespace) -> int:
    from chaffee_assets.speakers.labelling import SpeakerInputError, label_samples
    from chaffee_assets.speakers.store import host_of_another_model, load_profiles

    samples = _samples(args.audio)
    encoder = _encoder()
    with _connection() as conn:
        profiles = load_profiles(conn, encoder.name)
        host_elsewhere = host_of_another_model(conn, encoder.name)
    # Profiles are made by one voice model and only that model can compare with them.
    elsewhere = (
        f" ({host_elsewhere[0]}'s profile was made with {host_elsewhere[1]}: enrol him again with "
        f"CHAFFEE_SPEAKER_MODEL={encoder.name})"
        if host_elsewhere
        else ""
    )
    if not profiles:
        raise UserError(
            f"no voice profiles for model {encoder.name}{elsewhere}: enrol the host first with "
            "`chaffee speakers enroll NAME AUDIO… --host`"
        )
    if not any(p.is_host for p in profiles):
        print(f"warning: no host enrolled{elsewhere}: host_share is null", file=sys.stderr)
    try:
        labelling = label_samples(samples, profiles, encoder)
    except SpeakerInputError as exc:
        raise UserError(f"{args.audio}: {exc}") from exc
    if args.json:
        json.dump(labelling.as_json(), sys.stdout)
        sys.stdout.write("\n")
        return 0
    for turn in labelling.turns:
        print(f"{_clock(turn.start_s)} – {_clock(turn.end_s)}  {turn.speaker}  ({turn.confidence:.2f})")
    share = labelling.host_share
    print(
        f"host share: {'unknown' if share is None else f'{share:.0%}'} of {labelling.voiced_s:.1f} s of speech"
    )
    return 0


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes) // 60:d}:{int(minutes) % 60:02d}:{rest:04.1f}"
