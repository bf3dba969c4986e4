"""What the project knows about embedding models it may be pointed at: prompts and relevance floors.

Any sentence-transformers model works by name or path. Models trained with instructions read a
question and a passage differently ("query: …" / "passage: …"); a model that declares its prompts
in its own configuration (`config_sentence_transformers.json`, `prompts`) is used with those.
Older releases of the popular retrieval models do not declare them, so their published prompts are
listed here and used when the model's configuration is silent.

`min_similarity` is the cosine below which a hit is reported as weakly related. It depends on the
model (instruction-tuned models put everything above 0.7), so it is known only for the models it
was measured on; for the rest it is unset and hits are not judged by similarity.

`int8_parity` says the model's int8 graph was measured within the parity rule on every evaluation
condition (docs/retrieval.md, "Embedding backends"): only then does `auto` embed its segments in
int8. Quantisation error depends on the model, so an unmeasured one keeps the float graph.
"""

from __future__ import annotations

from dataclasses import dataclass

BGE_QUERY = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True, slots=True)
class ModelCard:
    query_prompt: str = ""
    passage_prompt: str = ""
    min_similarity: float | None = None
    int8_parity: bool = False


# Keyed by the model's bare name (the part after the last "/"), lower case.
KNOWN_MODELS: dict[str, ModelCard] = {
    # Measured on the evaluation sets (docs/retrieval.md, "Relevance"): real questions' best hit is
    # at or above 0.48 in 99 of 100 cases; off-topic and nonsense queries stay below 0.35.
    # Its int8 graph: hybrid Recall@5 and MRR@10 within 0.003 of fp32 on every condition.
    "all-minilm-l6-v2": ModelCard(min_similarity=0.35, int8_parity=True),
    "bge-small-en-v1.5": ModelCard(query_prompt=BGE_QUERY),
    "bge-base-en-v1.5": ModelCard(query_prompt=BGE_QUERY),
    "bge-large-en-v1.5": ModelCard(query_prompt=BGE_QUERY),
    "snowflake-arctic-embed-s": ModelCard(query_prompt=BGE_QUERY),
    "snowflake-arctic-embed-m": ModelCard(query_prompt=BGE_QUERY),
    "e5-small-v2": ModelCard(query_prompt="query: ", passage_prompt="passage: "),
    "e5-base-v2": ModelCard(query_prompt="query: ", passage_prompt="passage: "),
    "e5-large-v2": ModelCard(query_prompt="query: ", passage_prompt="passage: "),
    "multilingual-e5-small": ModelCard(query_prompt="query: ", passage_prompt="passage: "),
    "multilingual-e5-base": ModelCard(query_prompt="query: ", passage_prompt="passage: "),
    "nomic-embed-text-v1.5": ModelCard(query_prompt="search_query: ", passage_prompt="search_document: "),
    "nomic-embed-text-v1": ModelCard(query_prompt="search_query: ", passage_prompt="search_document: "),
}


def model_card(model_name: str) -> ModelCard:
    """The known card of a model by its canonical name, or an empty one."""
    return KNOWN_MODELS.get(model_name.rsplit("/", 1)[-1].lower(), ModelCard())
