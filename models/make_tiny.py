"""Random MEGALODON models in GGUF form, for tests and benchmarks.

    python3 -m models.make_tiny /tmp/tiny.gguf --d-model 64 --layers 2 --vocab 512
    python3 models/make_tiny.py /tmp/tiny.gguf --tokenizer llama --heads-mtp 3

Weights are random with sensible scales (the model computes well-conditioned, varied logits);
the tokenizer vocabulary is generated too: byte-level BPE ("gpt2") or SentencePiece BPE with
byte fallback ("llama"), with merges learned from a small built-in text so tokenization of
ordinary text looks realistic.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from models.gguf import GGUFWriter
else:
    from .gguf import GGUFWriter

SAMPLE_TEXT = """\
The quick brown fox jumps over the lazy dog. A model that reads a long document keeps a small
state: the moving average of what it has seen, the running statistics of its activations, and
the keys and values of the current chunk. When the chunk is full, the keys are dropped and the
next chunk starts fresh, while the moving average carries the memory forward.

In 1998 there were 3 cats, 14 dogs and 159 birds in the garden; by 2024 the numbers had changed.
"Where is the station?" she asked. "It's two streets north, then left at the bakery," he said.
Don't forget: the meeting starts at 10:30 and ends at 12:00 -- please be on time!

def tokenize(text):
    return [piece for piece in text.split() if piece]

Numbers such as 3.14159, 2.71828 and 1.41421 appear in many texts about mathematics and physics.
The café served crème brûlée; naïve visitors paid 12 € for it. Über alles, the weather was fine.
Streaming inference processes one token after another, and the output of every step depends on
everything that came before it. Training, evaluation and generation all share the same model.
"""

# The GPT-2 pre-tokenizer pattern, with \p{L} / \p{N} spelled with Python's re classes.
_GPT2_SPLIT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")

LLAMA_SPACE = "\u2581"  # ▁
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_BYTE = 1, 2, 3, 6
MAX_RANDOM_PIECE_CHARS = 12


def gpt2_byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def learn_merges(words: Counter, limit: int) -> list[tuple[str, str]]:
    """BPE training: repeatedly merges the most frequent adjacent pair (seen at least twice).
    `words` maps symbol tuples to counts. Ties go to the pair seen first, for determinism."""
    words = Counter(words)
    merges: list[tuple[str, str]] = []
    while len(merges) < limit:
        pairs: Counter = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best, count = max(pairs.items(), key=lambda item: item[1])
        if count < 2:
            break
        merges.append(best)
        merged = Counter()
        for symbols, n in words.items():
            out = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def random_merges(rng: np.random.Generator, pieces: list[str], taken: set[str], count: int):
    """`count` merges of two existing pieces into a new piece not in `taken` (updated). Both
    parts are at most half the maximum length, so new pieces stay short."""
    half = MAX_RANDOM_PIECE_CHARS // 2
    parts = [p for p in pieces if len(p) <= half]
    merges: list[tuple[str, str]] = []
    while len(merges) < count:
        # Draw in batches (indices refer to the parts present now; the list only grows).
        for i, j in rng.integers(len(parts), size=(2 * (count - len(merges)) + 16, 2)):
            left, right = parts[i], parts[j]
            joined = left + right
            if joined in taken:
                continue
            taken.add(joined)
            merges.append((left, right))
            if len(joined) <= half:
                parts.append(joined)
            if len(merges) == count:
                break
    return merges


def gpt2_vocab(vocab_size: int, rng: np.random.Generator) -> dict:
    """256 byte symbols, vocab_size - 257 merges, then <|endoftext|> (control, EOS)."""
    n_merges = vocab_size - 257
    if n_merges < 0:
        raise ValueError(f"a gpt2 vocabulary needs at least 257 tokens, got {vocab_size}")
    byte_map = gpt2_byte_to_unicode()
    tokens = [byte_map[b] for b in range(256)]
    words = Counter(tuple(byte_map[b] for b in word.encode("utf-8"))
                    for word in _GPT2_SPLIT.findall(SAMPLE_TEXT))
    merges = learn_merges(words, n_merges)
    taken = set(tokens)
    for left, right in merges:
        taken.add(left + right)
    merges += random_merges(rng, tokens + [a + b for a, b in merges], taken, n_merges - len(merges))
    tokens += [a + b for a, b in merges]
    tokens.append("<|endoftext|>")
    eos = len(tokens) - 1
    return {
        "tokenizer.ggml.model": ("str", "gpt2"),
        "tokenizer.ggml.pre": ("str", "gpt2"),
        "tokenizer.ggml.tokens": ("str[]", tokens),
        "tokenizer.ggml.token_type": ("i32[]", [TOKEN_NORMAL] * eos + [TOKEN_CONTROL]),
        "tokenizer.ggml.merges": ("str[]", [f"{a} {b}" for a, b in merges]),
        "tokenizer.ggml.bos_token_id": ("u32", eos),
        "tokenizer.ggml.eos_token_id": ("u32", eos),
        "tokenizer.ggml.add_bos_token": ("bool", False),
    }


def llama_vocab(vocab_size: int, rng: np.random.Generator) -> dict:
    """<unk>, <s>, </s>, 256 byte tokens, merged pieces (score = -rank), then single characters."""
    specials = [("<unk>", TOKEN_UNKNOWN), ("<s>", TOKEN_CONTROL), ("</s>", TOKEN_CONTROL)]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    sample_chars = sorted(set(SAMPLE_TEXT) - set(" \n\t"))
    chars = [LLAMA_SPACE] + [c for c in sample_chars if c != LLAMA_SPACE]
    n_merges = vocab_size - len(specials) - len(byte_tokens) - len(chars)
    if n_merges < 0:
        raise ValueError(f"a llama vocabulary needs at least {vocab_size - n_merges} tokens, got {vocab_size}")
    words = Counter(tuple(LLAMA_SPACE + word) for word in SAMPLE_TEXT.split())
    merges = learn_merges(words, n_merges)
    taken = {t for t, _ in specials} | set(byte_tokens) | set(chars) | {a + b for a, b in merges}
    merges += random_merges(rng, chars + [a + b for a, b in merges], taken, n_merges - len(merges))
    merged = [a + b for a, b in merges]
    tokens = [t for t, _ in specials] + byte_tokens + merged + chars
    types = [k for _, k in specials] + [TOKEN_BYTE] * 256 + [TOKEN_NORMAL] * (len(merged) + len(chars))
    scores = [0.0] * (len(specials) + 256) + [float(-rank) for rank in range(len(merged) + len(chars))]
    return {
        "tokenizer.ggml.model": ("str", "llama"),
        "tokenizer.ggml.tokens": ("str[]", tokens),
        "tokenizer.ggml.scores": ("f32[]", scores),
        "tokenizer.ggml.token_type": ("i32[]", types),
        "tokenizer.ggml.unknown_token_id": ("u32", 0),
        "tokenizer.ggml.bos_token_id": ("u32", 1),
        "tokenizer.ggml.eos_token_id": ("u32", 2),
        "tokenizer.ggml.add_bos_token": ("bool", True),
        "tokenizer.ggml.add_space_prefix": ("bool", True),
    }


def make_random_model(path, *, n_layers: int = 2, d_model: int = 64, cema_ndim: int = 4,
                      n_attn_heads: int = 2, z_dim: int = 32, value_dim: int = 64, ffn_dim: int = 128,
                      chunk_size: int = 16, norm_groups: int = 4, vocab_size: int = 512,
                      swiglu: bool = True, n_predict_heads: int = 1, mtp_hidden: int | None = None,
                      mtp_source: str = "trunk", tied: bool = False, scale_embedding: bool = False,
                      rope_base: float = 10000.0, bf16_freqs: bool = True, norm_eps: float = 1e-5,
                      dtype: str = "f32", tokenizer: str = "gpt2", seed: int = 0,
                      tokenizer_keys: dict | None = None, output_norm_scale: float = 1.0,
                      output_bias_std: float = 0.05, mtp_down_scale: float = 1.0) -> str:
    """Writes a random model to `path` and returns the path. `dtype` applies to the matrices
    (embedding, projections, FFN, heads); norms, biases and CEMA parameters stay f32.
    `tokenizer_keys` ({key: (type, value)}, as gpt2_vocab returns) replaces the generated
    vocabulary; `vocab_size` then becomes its token count.

    output_norm_scale / output_bias_std scale the final norm's weight and bias: a small weight
    and a large bias give every position nearly the same peaked distribution. mtp_down_scale
    scales the extra heads' down projections: 0 with mtp_source "final" makes every extra head
    repeat head 1 (heads that agree with head 1 whenever the output repeats itself). None of
    them changes the random draws, so the other weights stay the same."""
    if d_model % norm_groups:
        raise ValueError(f"d_model {d_model} is not a multiple of norm_groups {norm_groups}")
    if z_dim % n_attn_heads or value_dim % n_attn_heads or (z_dim // n_attn_heads) % 2:
        raise ValueError("z_dim and value_dim must split evenly over the heads, with an even head z dim")
    if mtp_source not in ("trunk", "final"):
        raise ValueError(f"mtp_source must be 'trunk' or 'final', got {mtp_source!r}")
    if n_predict_heads < 1:
        raise ValueError("n_predict_heads must be at least 1")
    mtp_hidden = 2 * d_model if mtp_hidden is None else mtp_hidden
    if dtype == "q8_0":
        inner = [d_model, value_dim, ffn_dim] + ([mtp_hidden] if n_predict_heads > 1 else [])
        if any(n % 32 for n in inner):
            raise ValueError(f"q8_0 needs d_model, value_dim, ffn_dim and mtp_hidden to be multiples of 32, got {inner}")

    rng = np.random.default_rng(seed)

    def normal(shape, std):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    def matrix(rows, cols):
        return normal((rows, cols), 1.0 / math.sqrt(cols))

    def scale(n):
        return 1.0 + normal(n, 0.1)

    vocab_builders = {"gpt2": gpt2_vocab, "llama": llama_vocab}
    if tokenizer_keys is not None:
        vocab = tokenizer_keys
        vocab_size = len(vocab["tokenizer.ggml.tokens"][1])
    elif tokenizer not in vocab_builders:
        raise ValueError(f"tokenizer must be 'gpt2' or 'llama', got {tokenizer!r}")
    else:
        vocab = vocab_builders[tokenizer](vocab_size, rng)

    writer = GGUFWriter()
    writer.add_string("general.architecture", "megalodon")
    writer.add_string("general.name", f"random-{n_layers}x{d_model}-seed{seed}")
    for key, value in (("block_count", n_layers), ("embedding_length", d_model), ("cema_ndim", cema_ndim),
                       ("attention.head_count", n_attn_heads), ("attention.z_dim", z_dim),
                       ("attention.value_dim", value_dim), ("feed_forward_length", ffn_dim),
                       ("chunk_size", chunk_size), ("norm_groups", norm_groups),
                       ("mtp.head_count", n_predict_heads), ("mtp.hidden_dim", mtp_hidden if n_predict_heads > 1 else 0)):
        writer.add_uint32(f"megalodon.{key}", value)
    writer.add_float32("megalodon.norm_eps", norm_eps)
    writer.add_float32("megalodon.rope.freq_base", rope_base)
    writer.add_bool("megalodon.rope.bf16_freqs", bf16_freqs)
    writer.add_bool("megalodon.swiglu", swiglu)
    writer.add_bool("megalodon.scale_embedding", scale_embedding)
    writer.add_bool("megalodon.tied_embedding", tied)
    writer.add_string("megalodon.mtp.source", mtp_source)
    for key, (kind, value) in vocab.items():
        if kind.endswith("[]"):
            writer.add_array(key, value, kind[:-2])
        else:
            writer.add_value(key, value, kind)

    # Embedding rows of RMS 1/√D; with ×√D (scale_embedding) they have unit RMS.
    writer.add_tensor("token_embd.weight", normal((vocab_size, d_model), 1.0 / math.sqrt(d_model)), dtype)
    # CEMA base-angle fractions f_k = exp(-k ln D / D), k = 1..D, in a random order (megalodon.md 2.1).
    k = np.arange(1, d_model + 1, dtype=np.float64)
    for i in range(n_layers):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.tsn.weight", scale(d_model))
        writer.add_tensor(f"{blk}.tsn.bias", normal(d_model, 0.05))
        writer.add_tensor(f"{blk}.cema.alpha", normal((d_model, cema_ndim), 0.2))
        writer.add_tensor(f"{blk}.cema.delta", normal((d_model, cema_ndim), 0.2))
        fractions = np.exp(-k * math.log(d_model) / d_model)[rng.permutation(d_model)]
        writer.add_tensor(f"{blk}.cema.theta", np.log(fractions / (1.0 - fractions)))
        # Real parts N(0, 1) as initialised; imaginary parts non-zero as in a trained model.
        gamma = np.stack([normal((d_model, cema_ndim), 1.0), normal((d_model, cema_ndim), 0.5)], axis=-1)
        writer.add_tensor(f"{blk}.cema.gamma", gamma)
        writer.add_tensor(f"{blk}.cema.omega", np.clip(normal(d_model, 0.25), -1.0, 1.0))
        writer.add_tensor(f"{blk}.rms.weight", scale(d_model))
        writer.add_tensor(f"{blk}.attn_z.weight", matrix(z_dim, d_model), dtype)
        writer.add_tensor(f"{blk}.attn_z.bias", normal(z_dim, 0.02))
        writer.add_tensor(f"{blk}.attn_v.weight", matrix(value_dim, d_model), dtype)
        writer.add_tensor(f"{blk}.attn_v.bias", normal(value_dim, 0.02))
        writer.add_tensor(f"{blk}.attn_r.weight", matrix(value_dim, d_model), dtype)
        writer.add_tensor(f"{blk}.attn_r.bias", normal(value_dim, 0.02))
        writer.add_tensor(f"{blk}.attn_h1.weight", matrix(d_model, d_model), dtype)
        writer.add_tensor(f"{blk}.attn_h1.bias", normal(d_model, 0.02))
        writer.add_tensor(f"{blk}.attn_h2.weight", matrix(d_model, value_dim), dtype)
        # Effective Q/K scales around 2 make q·k span about ±4: peaked attention.
        writer.add_tensor(f"{blk}.attn_qk.scale", 2.0 + normal((2, z_dim), 0.3))
        writer.add_tensor(f"{blk}.attn_qk.bias", normal((2, z_dim), 0.05))
        writer.add_tensor(f"{blk}.ffn_norm.weight", scale(d_model))
        writer.add_tensor(f"{blk}.ffn_norm.bias", normal(d_model, 0.05))
        writer.add_tensor(f"{blk}.ffn_gate.weight", matrix(ffn_dim, d_model), dtype)
        if swiglu:
            writer.add_tensor(f"{blk}.ffn_up.weight", matrix(ffn_dim, d_model), dtype)
        writer.add_tensor(f"{blk}.ffn_down.weight", matrix(d_model, ffn_dim), dtype)
    writer.add_tensor("output_norm.weight", scale(d_model) * np.float32(output_norm_scale))
    writer.add_tensor("output_norm.bias", normal(d_model, output_bias_std))
    if not tied:
        writer.add_tensor("output.weight", matrix(vocab_size, d_model), dtype)
    for j in range(2, n_predict_heads + 1):
        writer.add_tensor(f"mtp.{j}.norm.weight", scale(d_model))
        writer.add_tensor(f"mtp.{j}.gate.weight", matrix(mtp_hidden, d_model), dtype)
        writer.add_tensor(f"mtp.{j}.up.weight", matrix(mtp_hidden, d_model), dtype)
        writer.add_tensor(f"mtp.{j}.down.weight", matrix(d_model, mtp_hidden) * np.float32(mtp_down_scale), dtype)
    writer.write(path)
    return str(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write a random MEGALODON model (GGUF).")
    parser.add_argument("out", help="output .gguf path")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--cema-ndim", type=int, default=4)
    parser.add_argument("--attn-heads", type=int, default=2)
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--value-dim", type=int, default=64)
    parser.add_argument("--ffn", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--no-swiglu", action="store_true", help="plain silu FFN (no ffn_up)")
    parser.add_argument("--heads-mtp", type=int, default=1, help="prediction heads, next-token head included")
    parser.add_argument("--mtp-hidden", type=int, default=None, help="hidden size of heads 2..n (default 2·D)")
    parser.add_argument("--mtp-source", choices=("trunk", "final"), default="trunk")
    parser.add_argument("--tied", action="store_true", help="LM head tied to the embedding")
    parser.add_argument("--scale-embedding", action="store_true", help="multiply embeddings by √D")
    parser.add_argument("--rope-base", type=float, default=10000.0)
    parser.add_argument("--no-bf16-freqs", action="store_true", help="keep RoPE frequencies in float32")
    parser.add_argument("--dtype", choices=("f32", "f16", "bf16", "q8_0"), default="f32")
    parser.add_argument("--tokenizer", choices=("gpt2", "llama"), default="gpt2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-norm-scale", type=float, default=1.0, help="scale of the final norm's weight")
    parser.add_argument("--output-bias-std", type=float, default=0.05, help="std of the final norm's bias")
    parser.add_argument("--mtp-down-scale", type=float, default=1.0,
                        help="scale of the extra heads' down projections (0 with --mtp-source final: "
                             "every head repeats head 1)")
    args = parser.parse_args(argv)
    make_random_model(
        args.out, n_layers=args.layers, d_model=args.d_model, cema_ndim=args.cema_ndim,
        n_attn_heads=args.attn_heads, z_dim=args.z_dim, value_dim=args.value_dim, ffn_dim=args.ffn,
        chunk_size=args.chunk, norm_groups=args.groups, vocab_size=args.vocab, swiglu=not args.no_swiglu,
        n_predict_heads=args.heads_mtp, mtp_hidden=args.mtp_hidden, mtp_source=args.mtp_source,
        tied=args.tied, scale_embedding=args.scale_embedding, rope_base=args.rope_base,
        bf16_freqs=not args.no_bf16_freqs, dtype=args.dtype, tokenizer=args.tokenizer, seed=args.seed,
        output_norm_scale=args.output_norm_scale, output_bias_std=args.output_bias_std,
        mtp_down_scale=args.mtp_down_scale)


if __name__ == "__main__":
    main()
