"""Caption and transcript files a channel produces (VTT, SRT, YouTube json3/srv3, transcript JSON) read into cues.

The JSON shapes read here are those YouTube, yt-dlp, youtube-transcript-api and Whisper write for
one video. Collections of many videos' transcripts and chapter-merged transcripts come from
evaluation sets, not channels: `chaffee_assets.retrieval.transcript_sets` reads those, with the
public helpers at the end of this module.

Every parser ends in the same normalisation, so whatever the source, the cues that come out are
sorted by start, have stripped, non-empty text with tags removed, HTML entities decoded and
whitespace collapsed, and have float seconds with ``end >= start``.

Rules worth knowing:

- YouTube auto-caption VTT repeats each line as it rolls up the screen (a line first appears with
  inline word timings, then again as the top line of the next cues). Such files are detected and
  each line is emitted once, as one cue spanning the cue in which it first appeared.
- A cue longer than ``max(60 s, 5 s per word)`` cannot be speech (youtube-transcript-api has been
  seen to report a last duration of 359301 s). Its end is clamped to the time its words take at an
  ordinary speaking rate of 2.5 words per second, and never less than one second.
- No cue can start past ``MAX_MEDIA_SECONDS`` (a week): such a cue (a timestamp at hour 10^20) is
  dropped, and its end is clamped to the bound, so no impossible time reaches the warehouse.
- Text loses control characters and unpaired surrogates (PostgreSQL cannot store NUL; ESC would
  reach a terminal). A few stray NUL bytes in an otherwise UTF-8 file are dropped, not a reason
  to refuse the file; a cue whose timing line cannot be read is skipped when others can be.
- A caption file that parses but holds no text (``WEBVTT`` and nothing else, ``[]``) gives ``[]``:
  the caller treats that as "no captions". An empty (0-byte), binary, truncated or unrecognisable
  file raises :class:`CaptionError`, as does one whose every cue is unusable.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaffee_assets.ingest.cues import MAX_MEDIA_SECONDS, Cue
from chaffee_assets.ingest.validation import clean_text as clean_control_characters

FORMATS = ("vtt", "srt", "json3", "srv3", "json")

_SUFFIX_FORMATS = {
    ".vtt": "vtt",
    ".webvtt": "vtt",
    ".srt": "srt",
    ".json3": "json3",
    ".srv3": "srv3",
    ".xml": "srv3",
    ".json": "json",
}

# Above this a cue is not speech but a broken duration; see the module docstring.
_IMPLAUSIBLE_FLOOR_SECONDS = 60.0
_IMPLAUSIBLE_SECONDS_PER_WORD = 5.0
_SPEAKING_WORDS_PER_SECOND = 2.5
_MIN_CLAMPED_SECONDS = 1.0
# Stray NUL bytes (a flaky disk, a bad copy) are dropped when they are this rare and the rest is UTF-8.
_MAX_STRAY_NUL_FRACTION = 0.01


class CaptionError(ValueError):
    """A caption or transcript file that cannot be used; the message names the file and the problem."""

    def __init__(self, source_name: str, problem: str) -> None:
        self.source_name = source_name
        self.problem = problem
        super().__init__(f"{source_name}: {problem}")


# --------------------------------------------------------------------------- public API


def detect_format(path: Path) -> str:
    """The caption format of `path` ('vtt', 'srt', 'json3', 'srv3' or 'json'), from its suffix.

    A ``.json`` file holding YouTube's ``{"events": [...]}`` is reported as 'json3'.
    """
    path = Path(path)
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIX_FORMATS))
        raise CaptionError(
            str(path), f"unsupported caption file type {path.suffix or '(none)'!r}; expected {known}"
        )
    if fmt == "json" and _looks_like_json3(_read_bytes(path)):
        return "json3"
    return fmt


def parse_caption_file(path: Path) -> list[Cue]:
    """The cues of one video's caption or transcript file.

    Raises CaptionError for unreadable files, for metadata that is not captions, and for JSON that
    is no caption format (an evaluation set's collection: see the module docstring).
    """
    path = Path(path)
    fmt = detect_format(path)
    return parse_captions(_read_bytes(path), fmt, source_name=str(path))


def parse_captions(data: str | bytes, fmt: str, source_name: str = "<string>") -> list[Cue]:
    """The cues in `data`, which is caption text in format `fmt` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise CaptionError(
            source_name, f"unknown caption format {fmt!r}; expected one of {', '.join(FORMATS)}"
        )
    text = _decode(data, source_name)
    if fmt in ("vtt", "srt"):
        return _parse_cue_blocks(text, fmt, source_name)
    if fmt == "srv3":
        return _finish(_parse_timedtext_xml(text, source_name), source_name)
    document = _load_json(text, source_name)
    if fmt == "json3" and not _is_json3(document):
        raise CaptionError(source_name, 'is not YouTube json3 captions (no "events" list)')
    return _json_cues(document, source_name)


# --------------------------------------------------------------------------- reading and decoding


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CaptionError(str(path), f"cannot be read ({exc.strerror or exc})") from exc


def _decode(data: str | bytes, source_name: str) -> str:
    if isinstance(data, str):
        text = data
    else:
        if not data:
            raise CaptionError(source_name, "is empty (0 bytes)")
        text = _decode_bytes(data, source_name)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CaptionError(source_name, "holds only whitespace, no captions")
    return text


def _decode_bytes(data: bytes, source_name: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CaptionError(source_name, "has a UTF-16 byte-order mark but is not valid UTF-16") from exc
    if b"\x00" in data:
        without_nul = data.replace(b"\x00", b"")
        try:
            text = without_nul.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None
        if text is None or len(data) - len(without_nul) > _MAX_STRAY_NUL_FRACTION * len(data):
            raise CaptionError(source_name, "is binary data, not a caption file")
        return text
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    # Hand-made SRT files are often in a Windows code page; better text than a refusal.
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise CaptionError(source_name, "is neither UTF-8 nor Windows-1252 text") from exc


# --------------------------------------------------------------------------- text and times

# Hours are capped at 20 digits: enough to read (and then drop) any absurd time, never so many that
# int() refuses the string.
_TIMESTAMP = re.compile(r"^(?:(\d{1,20}):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?$")
_INLINE_TIMESTAMP = re.compile(r"<(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}>")
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_ASS_OVERRIDE = re.compile(r"\{\\[^{}]*\}")


def _parse_timestamp(value: str, source_name: str, where: str) -> float:
    """Seconds in a `[h:]mm:ss[.mmm]` timestamp; hours may exceed 24, the separator may be a comma."""
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise CaptionError(source_name, f"{where}: bad timestamp {value!r}")
    hours, minutes, seconds, fraction = match.groups()
    if int(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
        raise CaptionError(source_name, f"{where}: bad timestamp {value!r}")
    # Whole milliseconds, so 00:00:04.560 is 4.56 and not 4.5600000000000005.
    millis = (int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)) * 1000 + int(
        (fraction or "").ljust(3, "0")
    )
    return millis / 1000


def clean_text(raw: str) -> str:
    """Caption text as words: tags and inline timings removed, entities decoded, whitespace collapsed."""
    text = _INLINE_TIMESTAMP.sub("", raw)
    text = _TAG.sub("", text)
    text = _ASS_OVERRIDE.sub("", text)
    # Line breaks are kept here: the split below turns every whitespace run into one space anyway.
    return " ".join(clean_control_characters(html.unescape(text), multiline=True).split())


def _finish(cues: Iterable[Cue], source_name: str) -> list[Cue]:
    """The common normal form: text cleaned and non-empty, sane times, sorted by start."""
    finished = []
    beyond_any_video = 0
    for cue in cues:
        text = clean_text(cue.text)
        if not text:
            continue
        # Sources are millisecond-precise; rounding drops float noise such as 2.929 + 4.961.
        start = max(0.0, round(float(cue.start), 3))
        if start > MAX_MEDIA_SECONDS:
            beyond_any_video += 1
            continue
        end = min(max(start, round(float(cue.end), 3)), MAX_MEDIA_SECONDS)
        finished.append(Cue(start, round(_plausible_end(start, end, text), 3), text))
    if beyond_any_video and not finished:
        raise CaptionError(
            source_name,
            f"every cue starts more than {MAX_MEDIA_SECONDS / 86400:.0f} days into the video, which no"
            " video is; the file's times are broken",
        )
    finished.sort(key=lambda cue: cue.start)
    return finished


def _plausible_end(start: float, end: float, text: str) -> float:
    words = len(text.split())
    if end - start <= max(_IMPLAUSIBLE_FLOOR_SECONDS, _IMPLAUSIBLE_SECONDS_PER_WORD * words):
        return end
    return start + max(_MIN_CLAMPED_SECONDS, words / _SPEAKING_WORDS_PER_SECOND)


# --------------------------------------------------------------------------- VTT and SRT

_TIMING_LINE = re.compile(r"^\s*(\S+?)\s*-->\s*(\S+)")


@dataclass
class _RawCue:
    start: float
    end: float
    lines: list[str]


def _parse_cue_blocks(text: str, fmt: str, source_name: str) -> list[Cue]:
    raw_cues = _raw_cues(text, fmt, source_name)
    if _is_rolling(raw_cues):
        return _finish(_unroll(raw_cues), source_name)
    return _finish((Cue(raw.start, raw.end, " ".join(raw.lines)) for raw in raw_cues), source_name)


def _raw_cues(text: str, fmt: str, source_name: str) -> list[_RawCue]:
    """The timed blocks of a VTT or SRT file, with their payload lines as written.

    A cue's payload runs from its timing line to the next empty line or the next timing line
    (some youtube-dl output has no blank line between cues). Header, NOTE, STYLE and REGION
    blocks and cue identifiers (SRT counters) sit outside any payload and are skipped.
    """
    lines = text.split("\n")
    cues: list[_RawCue] = []
    current: _RawCue | None = None
    unreadable: CaptionError | None = None
    for number, line in enumerate(lines, start=1):
        if "-->" in line:
            try:
                current = _timing(line, source_name, f"line {number}")
            except CaptionError as exc:
                # Skip this cue's words (they cannot be placed in time), keep the rest of the file.
                unreadable = unreadable or exc
                current = None
                continue
            cues.append(current)
        elif line == "":
            current = None
        elif current is not None:
            current.lines.append(line)
    if not cues and unreadable is not None:
        raise unreadable
    if not cues and not _is_empty_webvtt(lines, fmt):
        raise CaptionError(
            source_name, f"is not {fmt.upper()} captions: no cue timing line ('start --> end') found"
        )
    return cues


def _timing(line: str, source_name: str, where: str) -> _RawCue:
    match = _TIMING_LINE.match(line)
    if match is None:
        raise CaptionError(source_name, f"{where}: bad cue timing line {line.strip()[:80]!r}")
    start = _parse_timestamp(match.group(1), source_name, where)
    end = _parse_timestamp(match.group(2), source_name, where)
    return _RawCue(start, end, [])


def _is_empty_webvtt(lines: list[str], fmt: str) -> bool:
    return fmt == "vtt" and lines[0].startswith("WEBVTT")


def _is_rolling(raw_cues: list[_RawCue]) -> bool:
    """Whether the file is YouTube auto captions that repeat each line as it rolls.

    Inline word timings are the modern signature; without them, a file where most cues begin
    with the previous cue's last line rolls too.
    """
    if any(_INLINE_TIMESTAMP.search(line) for raw in raw_cues for line in raw.lines):
        return True
    pairs = 0
    rolled = 0
    for previous, current in zip(raw_cues, raw_cues[1:], strict=False):
        before = [text for text in map(clean_text, previous.lines) if text]
        after = [text for text in map(clean_text, current.lines) if text]
        if before and after:
            pairs += 1
            rolled += after[0] == before[-1]
    return pairs >= 2 and rolled * 2 > pairs


def _unroll(raw_cues: list[_RawCue]) -> list[Cue]:
    """Each rolling line once, timed by the cue where it first appears.

    A line with inline word timings is being spoken in that cue, so it is always new; a line
    without them is new unless the previous cue showed it (a one-word line has no inline timing).
    """
    cues = []
    shown_before: set[str] = set()
    for raw in raw_cues:
        new_lines = []
        shown_now = set()
        for line in raw.lines:
            text = clean_text(line)
            if not text:
                continue
            shown_now.add(text)
            if _INLINE_TIMESTAMP.search(line) or text not in shown_before:
                new_lines.append(text)
        if new_lines:
            cues.append(Cue(raw.start, raw.end, " ".join(new_lines)))
        shown_before = shown_now
    return cues


# --------------------------------------------------------------------------- srv3 / timedtext XML


def _parse_timedtext_xml(text: str, source_name: str) -> list[Cue]:
    """YouTube srv3 (``<p t="ms" d="ms">``) and the older srv1 (``<text start="s" dur="s">``)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise CaptionError(source_name, f"is not valid timedtext XML ({exc})") from exc
    if root.tag not in ("timedtext", "transcript"):
        raise CaptionError(source_name, f"is not YouTube timedtext XML (root element <{root.tag}>)")
    cues = []
    for element in root.iter():
        if element.tag == "p":
            start = _number(element.get("t", "0"), source_name, "<p t>") / 1000
            duration = _number(element.get("d", "0"), source_name, "<p d>") / 1000
        elif element.tag == "text" and element.get("start") is not None:
            start = _number(element.get("start", "0"), source_name, "<text start>")
            duration = _number(element.get("dur", "0"), source_name, "<text dur>")
        else:
            continue
        cues.append(Cue(start, start + duration, "".join(element.itertext())))
    return cues


# --------------------------------------------------------------------------- JSON shapes


def _load_json(text: str, source_name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CaptionError(source_name, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except RecursionError as exc:
        raise CaptionError(source_name, "is JSON nested too deeply to be captions") from exc
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise CaptionError(source_name, f"is not usable JSON ({exc})") from exc


def _looks_like_json3(data: bytes) -> bool:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"events"' in head


def _json_cues(data: Any, source_name: str) -> list[Cue]:
    """Recognise the shape of a parsed caption JSON document and read its cues."""
    for recognises, read in _JSON_SHAPES:
        if recognises(data):
            return read(data, source_name)
    metadata = _metadata_kind(data)
    if metadata:
        raise CaptionError(source_name, f"is {metadata}, not captions or a transcript")
    raise CaptionError(
        source_name,
        f"is JSON but no caption format a channel produces ({_describe(data)}); an evaluation set's"
        " transcripts are read by chaffee_assets.retrieval.transcript_sets (or chaffee captions FILE)",
    )


def _describe(data: Any) -> str:
    if isinstance(data, dict):
        return "an object with keys " + ", ".join(sorted(map(str, data))[:6])
    if isinstance(data, list):
        first = data[0] if data else None
        inner = f" of objects with keys {', '.join(sorted(first)[:6])}" if isinstance(first, dict) else ""
        return f"a list of {len(data)}{inner}"
    return f"a JSON {type(data).__name__}"


def _metadata_kind(data: Any) -> str | None:
    if isinstance(data, dict) and ("extractor" in data or "formats" in data or "_type" in data):
        return "yt-dlp metadata (an .info.json)"
    if isinstance(data, list) and data and all(isinstance(item, dict) for item in data):
        keys = set(data[0])
        if {"id", "title"} <= keys and not keys & {"transcript", "transcripts", "text"}:
            return "a list of video metadata records"
    return None


def _dicts(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(item, dict) for item in data)


def _is_cue_list(data: Any) -> bool:
    """``[{text, start, duration|dur|end}]``; an empty list counts (a video with no captions).

    Rows without text (chapter markers) are allowed, but not a list where none has text: that is
    a chapter list of an evaluation set, whose words sit under another key.
    """
    return (
        _dicts(data)
        and all("start" in item and ({"duration", "dur", "end"} & set(item)) for item in data)
        and (not data or any("text" in item for item in data))
    )


def _is_json3(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("events"), list)


def _is_verbose_json(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("segments"), list)


def _is_timedtext_wrapper(data: Any) -> bool:
    return bool(data) and _dicts(data) and all(isinstance(item.get("data"), list) for item in data)


def _read_json3(data: Any, source_name: str) -> list[Cue]:
    """YouTube json3: events with millisecond times; segments carry the words."""
    cues = []
    for event in data["events"]:
        segs = event.get("segs") if isinstance(event, dict) else None
        if not segs:
            continue
        start = _number(event.get("tStartMs", 0), source_name, "tStartMs") / 1000
        duration = _number(event.get("dDurationMs", 0), source_name, "dDurationMs") / 1000
        text = "".join(str(seg.get("utf8", "")) for seg in segs if isinstance(seg, dict))
        cues.append(Cue(start, start + duration, text))
    return _finish(cues, source_name)


def _read_verbose_json(data: Any, source_name: str) -> list[Cue]:
    """OpenAI / Whisper verbose_json: ``{"text", "segments": [{start, end, text}]}``."""
    return cue_rows(data["segments"], source_name, "segments")


def _read_cue_list(data: Any, source_name: str) -> list[Cue]:
    return cue_rows(data, source_name, "transcript")


def _read_timedtext_wrapper(data: Any, source_name: str) -> list[Cue]:
    """``[{"data": [{start, dur, text}]}]``: string times; entries without text mark chapters."""
    entries = [entry for item in data for entry in item["data"]]
    return cue_rows(entries, source_name, "data")


_JSON_SHAPES: list[tuple[Callable[[Any], bool], Callable[[Any, str], list[Cue]]]] = [
    (_is_json3, _read_json3),
    (_is_verbose_json, _read_verbose_json),
    (_is_cue_list, _read_cue_list),
    (_is_timedtext_wrapper, _read_timedtext_wrapper),
]


# --------------------------------------------------------------------------- helpers for other readers


def load_json_file(path: Path) -> Any:
    """The parsed JSON document of a transcript file; CaptionError naming the file when it is not one."""
    source_name = str(path)
    return _load_json(_decode(_read_bytes(Path(path)), source_name), source_name)


def cue_rows(items: list[Mapping[str, Any]], source_name: str, where: str) -> list[Cue]:
    """``{start, duration|dur|end, text}`` rows; numbers may be strings; rows without text are skipped."""
    cues = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or "start" not in item:
            raise CaptionError(source_name, f"{where}[{index}] is not a cue (no start)")
        text = item.get("text")
        if not isinstance(text, str):
            continue  # chapter markers carry times only
        start = time_value(item["start"], source_name, f"{where}[{index}].start")
        if "end" in item:
            end = time_value(item["end"], source_name, f"{where}[{index}].end")
        else:
            length = item.get("duration", item.get("dur", 0))
            end = start + time_value(length, source_name, f"{where}[{index}].duration")
        cues.append(Cue(start, end, text))
    return _finish(cues, source_name)


def finish_cues(cues: Iterable[Cue], source_name: str) -> list[Cue]:
    """The common normal form every reader ends in (see the module docstring)."""
    return _finish(cues, source_name)


def time_value(value: Any, source_name: str, where: str) -> float:
    """Seconds from a JSON number, a numeric string, or a ``[h:]mm:ss[.f]`` string."""
    if isinstance(value, str) and ":" in value:
        return _parse_timestamp(value, source_name, where)
    return _number(value, source_name, where)


def _number(value: Any, source_name: str, where: str) -> float:
    if isinstance(value, bool):
        raise CaptionError(source_name, f"{where}: expected a number of seconds, got {value!r}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise CaptionError(source_name, f"{where}: {str(value)[:20]}… is too large to be a time") from exc
    except (TypeError, ValueError) as exc:
        raise CaptionError(source_name, f"{where}: expected a number, got {value!r}") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise CaptionError(source_name, f"{where}: expected a finite number, got {value!r}")
    return number
