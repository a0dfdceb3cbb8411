"""Trains the default model's tokenizer: a GPT-2 style byte-level BPE (the runtime's "gpt2"
tokenizer) with the HF `tokenizers` library, and turns it into GGUF tokenizer metadata.

    .venv/bin/python models/train_tokenizer.py models/data/out/train.txt \\
        --out models/data/out/tokenizer.json --vocab-size 4096 \\
        --eval models/data/out/heldout_book.txt models/data/out/heldout_code.txt

The vocabulary is the 256 byte symbols, the learned merges, and "<|endoftext|>" as the last id
(both BOS and EOS). Pieces are in GPT-2's byte-to-unicode spelling, as HF ByteLevel writes them,
so the GGUF token ids are the HF ids. Input files are split into documents on the corpus
separator ("\\n<|endoftext|>\\n", models/data/build_corpus.py) and no merge crosses a document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

END_OF_TEXT = "<|endoftext|>"
DOC_SEPARATOR = f"\n{END_OF_TEXT}\n"
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED = 1, 3, 4


def read_documents(paths: Iterable[str | Path]) -> Iterator[str]:
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        yield from (doc for doc in text.split(DOC_SEPARATOR) if doc)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE of exactly `vocab_size` ids trained on `texts` (one document each)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 258:
        raise ValueError(f"vocab_size must leave room for the 256 bytes, a merge and {END_OF_TEXT}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    # The trainer would put special tokens first; adding it after training makes it the last id.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=min_frequency,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[], show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    learned = tokenizer.get_vocab_size()
    if learned != vocab_size - 1:
        raise ValueError(f"the text supports only {learned} tokens before {END_OF_TEXT}, "
                         f"not {vocab_size - 1}: give more text or a smaller vocabulary")
    tokenizer.add_special_tokens([END_OF_TEXT])
    assert tokenizer.token_to_id(END_OF_TEXT) == vocab_size - 1
    return tokenizer


def _require(condition: bool, path, what: str) -> None:
    if not condition:
        raise ValueError(f"{path}: {what}; the runtime's gpt2 tokenizer cannot reproduce it")


def gguf_tokenizer_keys(tokenizer_json_path: str | Path) -> dict:
    """GGUF tokenizer metadata {key: (type, value)} (native/FORMAT.md 1.1, tokenizer.ggml.model
    "gpt2") for an HF byte-level BPE tokenizer.json; token ids are the HF ids."""
    path = Path(tokenizer_json_path)
    spec = json.loads(path.read_text(encoding="utf-8"))
    model = spec["model"]
    pre = spec.get("pre_tokenizer") or {}
    _require(model.get("type") == "BPE", path, "the model is not BPE")
    _require(pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space"),
             path, "the pre-tokenizer is not ByteLevel with the GPT-2 regex and no prefix space")
    _require(spec.get("normalizer") is None, path, "it has a normalizer")
    _require(not model.get("dropout") and not model.get("continuing_subword_prefix")
             and not model.get("end_of_word_suffix") and not model.get("byte_fallback")
             and not model.get("ignore_merges"), path, "its BPE options are not GPT-2's")

    ids = dict(model["vocab"])
    added = {token["content"]: token for token in spec.get("added_tokens", [])}
    for content, token in added.items():
        ids[content] = token["id"]
    tokens = [""] * len(ids)
    for piece, token_id in ids.items():
        _require(0 <= token_id < len(ids) and not tokens[token_id], path, "its ids are not 0..n-1, once each")
        tokens[token_id] = piece
    types = [TOKEN_NORMAL] * len(tokens)
    for content, token in added.items():
        types[token["id"]] = TOKEN_CONTROL if token.get("special") else TOKEN_USER_DEFINED

    merges = []
    for merge in model["merges"]:  # "a b" strings in older files, [a, b] pairs in newer ones
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        _require(" " not in left + right, path, "a merge part contains a space")
        merges.append(f"{left} {right}")

    _require(END_OF_TEXT in ids, path, f"it has no {END_OF_TEXT}")
    end_of_text = ids[END_OF_TEXT]
    return {
        "tokenizer.ggml.model": ("str", "gpt2"),
        "tokenizer.ggml.pre": ("str", "gpt2"),
        "tokenizer.ggml.tokens": ("str[]", tokens),
        "tokenizer.ggml.token_type": ("i32[]", types),
        "tokenizer.ggml.merges": ("str[]", merges),
        "tokenizer.ggml.bos_token_id": ("u32", end_of_text),
        "tokenizer.ggml.eos_token_id": ("u32", end_of_text),
        "tokenizer.ggml.add_bos_token": ("bool", False),
    }


def bytes_per_token(tokenizer, path: str | Path) -> tuple[int, int]:
    """(bytes, tokens) of a corpus file's documents, the separators not counted."""
    docs = list(read_documents([path]))
    encoded = tokenizer.encode_batch(docs)
    return sum(len(doc.encode("utf-8")) for doc in docs), sum(len(e.ids) for e in encoded)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the byte-level BPE tokenizer.")
    parser.add_argument("inputs", nargs="*", type=Path,
                        default=[Path(__file__).resolve().parent / "data" / "out" / "train.txt"],
                        help="corpus files (default models/data/out/train.txt)")
    parser.add_argument("--out", type=Path, required=True, help="tokenizer.json to write")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--min-frequency", type=int, default=2)
    parser.add_argument("--eval", nargs="*", type=Path, default=[], help="files to report bytes/token on")
    args = parser.parse_args(argv)

    started = time.monotonic()
    tokenizer = train_tokenizer(read_documents(args.inputs), args.vocab_size, args.min_frequency)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(args.out))
    gguf_tokenizer_keys(args.out)  # fails loudly if the runtime could not load it
    print(f"wrote {args.out}: {tokenizer.get_vocab_size()} tokens in {time.monotonic() - started:.1f} s")
    for path in args.eval:
        n_bytes, n_tokens = bytes_per_token(tokenizer, path)
        print(f"{path}: {n_bytes} bytes, {n_tokens} tokens, {n_bytes / max(n_tokens, 1):.3f} bytes/token")


if __name__ == "__main__":
    sys.exit(main())
