"""Whether a hit is only near the question or answers it: the "weakly related" judgement (pure).

The cosine alone misjudges short questions: "how much salt on keto" against a window that says
"keto", "salt" and "half a teaspoon" scores 0.335 with all-MiniLM-L6-v2, under the model's floor
of 0.35, while nonsense and other topics score below 0.30. The ranking also knows which of the
question's words the window says, weighted by their rarity (IDF): a window that says most of the
question's weight is related even somewhat below the cosine floor. docs/retrieval.md, "Relevance",
has the calibration on answerable and unanswerable questions and both error rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# A window saying at least this share of the question's word weight is related down to
# `WORDS_MARGIN` below the model's cosine floor. Calibrated by bench/relevance_floor.py.
WORDS_SHARE = 0.6
WORDS_MARGIN = 0.1


def matched_share(said: Iterable[str], weights: Mapping[str, float]) -> float | None:
    """The share of the question's word weight (its lexemes' IDF) among the lexemes `said`;
    None when the question has no words to match (emoji, stop words only)."""
    total = sum(weights.values())
    if total <= 0:
        return None
    return sum(weights.get(lexeme, 0.0) for lexeme in set(said)) / total


def is_weak(similarity: float | None, share: float | None, floor: float | None) -> bool | None:
    """Whether a hit is only weakly related; None when it cannot be judged (no cosine, or a model
    whose floor was never measured)."""
    if similarity is None or floor is None:
        return None
    if similarity >= floor:
        return False
    return not (share is not None and share >= WORDS_SHARE and similarity >= floor - WORDS_MARGIN)
