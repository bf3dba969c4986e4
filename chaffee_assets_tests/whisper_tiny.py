"""Builds a tiny, random-weight Whisper model in CTranslate2 format, offline, for faster-whisper tests.

The architecture, vocabulary layout and files are Whisper's own (multilingual: 51,865 tokens, 80 mel
bins), so loading, feature extraction, VAD, language detection, batching and timestamp plumbing in
faster-whisper are exercised for real; only the weights are random, so the text is nonsense.
The tokenizer is built here rather than fetched: a byte-level BPE vocabulary of Whisper's size plus
Whisper's special tokens at Whisper's ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Whisper's language tokens in Whisper's order (ids 50259…50357 in the multilingual vocabulary).
WHISPER_LANGUAGES = [
    "en",
    "zh",
    "de",
    "es",
    "ru",
    "ko",
    "fr",
    "ja",
    "pt",
    "tr",
    "pl",
    "ca",
    "nl",
    "ar",
    "sv",
    "it",
    "id",
    "hi",
    "fi",
    "vi",
    "he",
    "uk",
    "el",
    "ms",
    "cs",
    "ro",
    "da",
    "hu",
    "ta",
    "no",
    "th",
    "ur",
    "hr",
    "bg",
    "lt",
    "la",
    "mi",
    "ml",
    "cy",
    "sk",
    "te",
    "fa",
    "lv",
    "bn",
    "sr",
    "az",
    "sl",
    "kn",
    "et",
    "mk",
    "br",
    "eu",
    "is",
    "hy",
    "ne",
    "mn",
    "bs",
    "kk",
    "sq",
    "sw",
    "gl",
    "mr",
    "pa",
    "si",
    "km",
    "sn",
    "yo",
    "so",
    "af",
    "oc",
    "ka",
    "be",
    "tg",
    "sd",
    "gu",
    "am",
    "yi",
    "lo",
    "uz",
    "fo",
    "ht",
    "ps",
    "tk",
    "nn",
    "mt",
    "sa",
    "lb",
    "my",
    "bo",
    "tl",
    "mg",
    "as",
    "tt",
    "haw",
    "ln",
    "ha",
    "ba",
    "jw",
    "su",
]
BASE_VOCAB_SIZE = 50257  # GPT-2's byte-level BPE size; Whisper's specials follow it
TIMESTAMP_COUNT = 1501  # <|0.00|> … <|30.00|> in 0.02 s steps


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (what byte-level BPE tokens are made of)."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def whisper_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]], list[str]]:
    """The token → id map, the BPE merges and the special tokens (in id order, after the base vocab)."""
    byte_chars = sorted(_bytes_to_unicode().values())
    vocab: dict[str, int] = {char: i for i, char in enumerate(byte_chars)}
    merges: list[tuple[str, str]] = []
    # Two-character merges fill the base vocabulary to GPT-2's size; with random weights the model's
    # choice among them is arbitrary anyway, and every one decodes to real bytes.
    for first in byte_chars:
        for second in byte_chars:
            if len(vocab) >= BASE_VOCAB_SIZE:
                break
            vocab[first + second] = len(vocab)
            merges.append((first, second))
    specials = ["<|endoftext|>", "<|startoftranscript|>"]
    specials += [f"<|{code}|>" for code in WHISPER_LANGUAGES]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>"]
    specials += ["<|notimestamps|>"] + [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMP_COUNT)]
    return vocab, merges, specials


def _write_tokenizer(directory: Path) -> int:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab, merges, specials = whisper_vocabulary()
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in specials])
    tokenizer.save(str(directory / "tokenizer.json"))
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    assert tokenizer.token_to_id("<|endoftext|>") == 50257, "Whisper's eot id"
    assert tokenizer.token_to_id("<|notimestamps|>") == 50363, "Whisper's notimestamps id"
    return size


def build_tiny_whisper(target: Path, *, d_model: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Write a CTranslate2 Whisper model directory under `target`; returns its path.

    Needs torch and transformers (the build only; loading it needs neither).
    """
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )

    hf_dir = target / "hf"
    ct2_dir = target / "ct2"
    hf_dir.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tokenizer(hf_dir)
    assert vocab_size == 51865, vocab_size  # ctranslate2 treats >= 51865 as multilingual
    specials = whisper_vocabulary()[2]
    fast = PreTrainedTokenizerFast(
        tokenizer_file=str(hf_dir / "tokenizer.json"),
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    fast.save_pretrained(hf_dir)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(hf_dir)

    torch.manual_seed(seed)
    eot, sot = 50257, 50258
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=d_model * 2,
        decoder_ffn_dim=d_model * 2,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
    )
    model = WhisperForConditionalGeneration(config).eval()
    generation = GenerationConfig(
        decoder_start_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        suppress_tokens=[],
        begin_suppress_tokens=[220, eot],
    )
    # The converter reads the language ids from here (Whisper's own generation_config has it too).
    generation.lang_to_id = {f"<|{code}|>": 50259 + i for i, code in enumerate(WHISPER_LANGUAGES)}
    model.generation_config = generation
    model.save_pretrained(hf_dir)

    TransformersConverter(
        str(hf_dir), copy_files=["tokenizer.json", "preprocessor_config.json"], load_as_float16=False
    ).convert(str(ct2_dir), quantization="float32", force=True)
    (target / "BUILD.json").write_text(json.dumps({"d_model": d_model, "layers": layers, "seed": seed}))
    return ct2_dir


@pytest.fixture(scope="session")
def tiny_whisper_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's CTranslate2 folder, built once per test session (a few seconds)."""
    root = tmp_path_factory.getbasetemp() / "tiny-whisper"
    ct2 = root / "ct2"
    # Test modules import this fixture separately; the folder on disk makes it one build per session.
    if not (ct2 / "model.bin").is_file():
        build_tiny_whisper(root)
    return ct2


if __name__ == "__main__":
    import sys

    print(build_tiny_whisper(Path(sys.argv[1])))
