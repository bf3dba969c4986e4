"""Cut a transcript's cues into overlapping retrieval segments (pure: no model, no database)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from chaffee_assets.ingest.cues import Cue

TokenCounter = Callable[[str], int]
_PIECES = re.compile(r"[^\W_]+|[^\w\s]|_")


@dataclass(frozen=True, slots=True)
class SegmentParams:
    """How segments are cut. The defaults were chosen by measurement (docs/retrieval.md).

    - `window_s`: a segment grows cue by cue until it spans this many seconds or reaches the
      token cap, whichever comes first. At conversational speed (about 3 words a second) the cap
      binds first, so segments are as long as the model can read: longer units scored better
      than 30 s and 45 s ones.
    - `stride_s`: the next segment starts on the first cue at least this far after the previous
      start, so consecutive segments overlap by about half and an answer that straddles a
      boundary lies whole inside one of them. 30 s scored better than 20 s and 45 s.
    - `max_tokens`: a hard cap in word pieces of the reference tokenizer (the default model's),
      counting its special tokens: all-MiniLM-L6-v2 reads 256 and silently drops the rest.
      Segments are cut once, for every model: a model that reads fewer pieces embeds a segment in
      parts (`Embedder.encode_passages`), and the retrieval models worth using read 512.
      `reserve_tokens` keeps room for a model's passage prompt ("passage: ", "search_document: ").
    """

    window_s: float = 60.0
    stride_s: float = 30.0
    max_tokens: int = 256
    reserve_tokens: int = 32
    special_tokens: int = 2  # [CLS] and [SEP]

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.stride_s <= 0:
            raise ValueError("window_s and stride_s must be positive")
        if self.stride_s > self.window_s:
            raise ValueError("stride_s larger than window_s would leave gaps between segments")
        if self.text_budget < 8:
            raise ValueError("max_tokens leaves no room for text after the prefix and special tokens")

    @property
    def text_budget(self) -> int:
        return self.max_tokens - self.reserve_tokens - self.special_tokens


@dataclass(frozen=True, slots=True)
class Segment:
    """A retrieval unit: consecutive cues joined, starting on the first cue's start."""

    ordinal: int
    start_s: float
    end_s: float
    text: str


@cache
def reference_token_counter() -> TokenCounter:
    """Word pieces under the default model's tokenizer (no special tokens): what segments fit.

    The Rust `tokenizers` library on the packaged tokenizer file, so cutting segments needs
    neither the model nor PyTorch.
    """
    from tokenizers import Tokenizer

    from chaffee_assets.retrieval.embedder import default_model_path

    tokenizer = Tokenizer.from_file(str(default_model_path() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def approximate_token_count(text: str) -> int:
    """A conservative stand-in for a WordPiece count when no tokenizer is at hand.

    WordPiece splits off every punctuation mark and cuts rare words into pieces of a few letters;
    counting one piece per mark and per started three letters overcounts ordinary speech, so
    segments cut with it stay inside the model's limit.
    """
    return sum(1 if not tok[0].isalnum() else -(-len(tok) // 3) for tok in _PIECES.findall(text))


def _clean(cues: Sequence[Cue]) -> list[Cue]:
    """Drop empty cues and the repeats rolling auto captions leave behind."""
    kept: list[Cue] = []
    for cue in sorted(cues, key=lambda c: (c.start, c.end)):
        text = " ".join(cue.text.split())
        if not text:
            continue
        if kept and kept[-1].text == text:
            # A rolled line repeated: extend the kept cue instead of saying it twice.
            kept[-1] = Cue(kept[-1].start, max(kept[-1].end, cue.end), text)
            continue
        kept.append(Cue(cue.start, max(cue.end, cue.start), text))
    return kept


def _split_long_cue(cue: Cue, budget: int, count: TokenCounter) -> list[Cue]:
    """A single cue over the budget (a long Whisper segment): split its words, timing pro rata."""
    words = cue.text.split()
    pieces: list[list[str]] = [[]]
    used = 0
    for word in words:
        n = count(word)
        if pieces[-1] and used + n > budget:
            pieces.append([])
            used = 0
        pieces[-1].append(word)
        used += n
    duration = max(cue.end - cue.start, 0.0)
    out, done = [], 0
    for piece in pieces:
        start = cue.start + duration * done / len(words)
        done += len(piece)
        out.append(Cue(start, cue.start + duration * done / len(words), " ".join(piece)))
    return out


def segment_cues(
    cues: Sequence[Cue],
    params: SegmentParams | None = None,
    count_tokens: TokenCounter = approximate_token_count,
) -> list[Segment]:
    """Cut cues into segments that start on cue boundaries, overlap, and fit the token budget.

    `count_tokens` counts word pieces without special tokens (the embedder's tokenizer in
    production). WordPiece splits on whitespace first, so the sum of per-cue counts equals the
    count of the joined text, and each cue is tokenised once.
    """
    params = params or SegmentParams()
    budget = params.text_budget
    units: list[tuple[Cue, int]] = []
    for cue in _clean(cues):
        n = count_tokens(cue.text)
        if n > budget:
            units.extend(
                (part, count_tokens(part.text)) for part in _split_long_cue(cue, budget, count_tokens)
            )
        else:
            units.append((cue, n))

    segments: list[Segment] = []
    first = 0
    while first < len(units):
        last, used = first, 0
        while last < len(units):
            cue, n = units[last]
            if used + n > budget:
                break
            used += n
            last += 1
            if cue.end - units[first][0].start >= params.window_s:
                break
        last = max(last, first + 1)  # a single word over the budget still makes progress
        members = [cue for cue, _ in units[first:last]]
        segments.append(
            Segment(
                ordinal=len(segments),
                start_s=members[0].start,
                end_s=max(c.end for c in members),
                text=" ".join(c.text for c in members),
            )
        )
        if last >= len(units):
            break
        # Next start: the first cue at least `stride_s` after this start, but never past the
        # cue that ended this segment (a token-capped segment may be shorter than the stride).
        nxt = first + 1
        while nxt < last and units[nxt][0].start - units[first][0].start < params.stride_s:
            nxt += 1
        first = min(nxt, last)
    return segments
