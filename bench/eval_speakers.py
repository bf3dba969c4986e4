"""Who-said-it evaluation: the labeller against the reference on seeded recordings of real speech.

    PYTHONPATH=$PWD .venv/bin/python bench/eval_speakers.py [--shared ../shared] [--seed 7] [--rows]
        [--hosts 2033 ...] [--no-ami | --only-ami] [--params '{"edge_s": 0}'] [--model campplus]

Composes monologue / interview / live Q&A / no-host recordings from LibriSpeech speakers (every
test-other speaker in turn as the host, enrolled from utterances not in the recordings) and takes the
AMI pairs (a recurring speaker enrolled from one meeting, looked for in another). Each recording is
written as MP3 and both labellers decode it themselves, so the speed (minutes of audio per CPU-minute
of this process, all threads) includes decoding. Prints a table per kind and the speed of each.
The reference is always Resemblyzer's windows at one threshold; `--model` picks the labeller's voice
model (its thresholds in that model's scale, `LabelParams.for_model`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from chaffee_assets.speakers.encoder import DEFAULT_SPEAKER_MODEL, FRAME_S, load_encoder
from chaffee_assets.speakers.evaluation import (
    ZERO,
    Case,
    Score,
    ami_cases,
    librispeech_cases,
    predicted_host,
    reference_label,
    score,
)
from chaffee_assets.speakers.labelling import (
    LabelParams,
    SpeakerInputError,
    label_samples,
    profile_from_samples,
)
from chaffee_assets.transcription.audio import decode, encode_mp3

REFERENCE_THRESHOLD = 0.75


def run(cases: list[Case], params: LabelParams, reference_threshold: float, folder: Path, model: str) -> dict:
    encoder, reference_encoder = load_encoder(model), load_encoder(DEFAULT_SPEAKER_MODEL)
    totals: dict[tuple[str, str], Score] = defaultdict(lambda: ZERO)
    per_recording = []
    cpu = {"ours": 0.0, "reference": 0.0}
    audio_s = 0.0
    for case in cases:
        try:
            profile = profile_from_samples("host", True, case.enrolment, encoder, min_speech_s=4.0)
            reference_profile = profile_from_samples(
                "host", True, case.enrolment, reference_encoder, min_speech_s=4.0
            )
        except SpeakerInputError as exc:
            print(f"skipped {case.condition}: {exc}")
            continue
        for recording in case.recordings:
            path = encode_mp3(
                (recording.samples * 32767).astype(np.int16), folder / f"{recording.name}.mp3", bitrate=64_000
            )
            audio_s += recording.duration_s
            total = int(round(recording.duration_s / FRAME_S))
            started = time.process_time()
            ours = label_samples(decode(path), [profile], encoder, params)
            cpu["ours"] += time.process_time() - started
            started = time.process_time()
            reference = reference_label(
                decode(path), reference_profile, reference_encoder, reference_threshold
            )
            cpu["reference"] += time.process_time() - started
            row = {"recording": recording.name, "kind": recording.kind, "condition": case.condition}
            for system, labelling in (("ours", ours), ("reference", reference)):
                result = score(recording, predicted_host(labelling.turns, "host", total))
                totals[(system, recording.kind)] += result
                row[system] = round(result.agreement, 4)
                row[f"{system}_false_host"] = round(result.false_host_rate, 4)
            per_recording.append(row)
    return {"totals": totals, "rows": per_recording, "cpu": cpu, "audio_s": audio_s}


def report(title: str, result: dict) -> None:
    totals = result["totals"]
    print(f"\n## {title}\n")
    print(
        "| kind | voiced s | ours: agreement | ours: other called host | reference: agreement | reference: other called host |"
    )
    print("|---|---|---|---|---|---|")
    kinds = sorted({kind for _, kind in totals})
    composed = {"ours": ZERO, "reference": ZERO}
    for kind in kinds:
        ours, ref = totals[("ours", kind)], totals[("reference", kind)]
        if kind != "ami":
            composed["ours"] += ours
            composed["reference"] += ref
        print(
            f"| {kind} | {ours.voiced_s:.0f} | {ours.agreement:.3f} | {ours.false_host_rate:.2%} "
            f"| {ref.agreement:.3f} | {ref.false_host_rate:.2%} |"
        )
    if composed["ours"].voiced_s:
        o, r = composed["ours"], composed["reference"]
        print(
            f"| all composed | {o.voiced_s:.0f} | {o.agreement:.3f} | {o.false_host_rate:.2%} | {r.agreement:.3f} | {r.false_host_rate:.2%} |"
        )
    minutes = result["audio_s"] / 60
    print(
        f"\nspeed, audio minutes per CPU-minute (decoding included): ours {minutes / (result['cpu']['ours'] / 60):.1f}, "
        f"reference {minutes / (result['cpu']['reference'] / 60):.1f} ({minutes:.1f} audio minutes)"
    )
    worst = sorted((r for r in result["rows"] if r["kind"] == "monologue"), key=lambda r: r["ours"])[:1]
    if worst:
        print(f"worst monologue: {worst[0]['recording']} {worst[0]['ours']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hosts", nargs="*", help="LibriSpeech test-other speakers to use as hosts (default: all)"
    )
    parser.add_argument("--no-ami", action="store_true", help="only the composed LibriSpeech recordings")
    parser.add_argument("--only-ami", action="store_true", help="only the AMI pairs")
    parser.add_argument("--reference-threshold", type=float, default=REFERENCE_THRESHOLD)
    parser.add_argument(
        "--params", type=json.loads, default={}, help='labeller settings as JSON, e.g. {"hop_s": 0.8}'
    )
    parser.add_argument("--rows", action="store_true", help="print every recording's scores")
    parser.add_argument("--model", default=DEFAULT_SPEAKER_MODEL, help="the labeller's voice model")
    args = parser.parse_args()
    root = args.shared / "realdata" / "speakers"
    params = replace(LabelParams.for_model(args.model), **args.params)
    cases = [] if args.only_ami else librispeech_cases(root / "librispeech", args.seed, args.hosts)
    if not args.no_ami:
        cases += ami_cases(root / "ami")
    with tempfile.TemporaryDirectory(prefix="chaffee-speakers-eval-") as folder:
        result = run(cases, params, args.reference_threshold, Path(folder), args.model)
    report(f"{args.model}, seed {args.seed}, hosts {args.hosts or 'all'}, {params}", result)
    if args.rows:
        for row in result["rows"]:
            print(row)


if __name__ == "__main__":
    main()
