"""A checkpoint of the released MEGALODON code -> the runtime's GGUF (megalodon.md section 8).

    python3 models/convert_official.py CHECKPOINT_DIR out.gguf --tokenizer tokenizer.model [--dtype q8_0]
    python3 models/convert_official.py CHECKPOINT_DIR out.gguf --tokenizer-from other.gguf

CHECKPOINT_DIR holds config.json (`model` -> the ModelConf fields) and consolidated.pth, or
consolidated.00.pth ... for model-parallel shards, which are merged back (8.3). Shapes the
config does not give (layers, N, Z, E, F, vocabulary) are read off the tensors. The tokenizer is
the SentencePiece model the checkpoint was trained with (read here without the sentencepiece
package) or the tokenizer of an existing GGUF.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from models.export_gguf import MATRIX_TYPES, official_tensors, write_gguf
    from models.gguf import GGUFReader
else:
    from .export_gguf import MATRIX_TYPES, official_tensors, write_gguf
    from .gguf import GGUFReader

# Tensors split along a dimension in model-parallel checkpoints (megalodon.md 8.3).
COLUMN_PARALLEL = re.compile(r"\.(mega\.(wz|wv|wr|wh1)|nffn\.(fc1|fc3))\.(weight|bias)$")
ROW_PARALLEL = re.compile(r"(\.mega\.wh2|\.nffn\.fc2)\.weight$|^output\.output\.weight$")
ALONG_D = re.compile(r"\.mega\.(cema\.\w+|timenorm\.(weight|bias))$|^output\.final_norm\.(weight|bias)$")
ALONG_G = re.compile(r"(timenorm|final_norm)\.prior_(mean|logv)$")
QK_AFFINE = re.compile(r"\.mega\.(gamma|beta)$")
IGNORED = re.compile(r"rope\.freqs$|prior_(count|mean|logv)$")


def merge_shards(shards: list[dict]) -> dict:
    """Concatenates model-parallel shards back into one state dict."""
    if len(shards) == 1:
        return shards[0]
    merged = {}
    for name, first in shards[0].items():
        parts = [s[name] for s in shards]
        if name == "embed.weight":
            dim = 1
        elif COLUMN_PARALLEL.search(name) or ALONG_D.search(name) or ALONG_G.search(name):
            dim = 0
        elif ROW_PARALLEL.search(name) or QK_AFFINE.search(name):
            dim = 1
        else:
            merged[name] = first      # replicated (rmsnorm, nffn.norm, buffers)
            continue
        merged[name] = np.concatenate(parts, axis=dim)
    return merged


def load_checkpoint(folder: Path) -> tuple[dict, dict]:
    import torch

    config_path = folder / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{folder}: no config.json")
    config = json.loads(config_path.read_text())
    files = sorted(folder.glob("consolidated.*.pth")) or [folder / "consolidated.pth"]
    if not files[0].exists():
        raise FileNotFoundError(f"{folder}: no consolidated.pth or consolidated.XX.pth")
    shards = []
    for f in files:
        sd = torch.load(f, map_location="cpu", weights_only=True)
        sd = sd.get("model", sd) if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict) else sd
        shards.append({k: v.float().numpy() for k, v in sd.items()})
    return config.get("model", config), merge_shards(shards)


def model_config(conf: dict, sd: dict) -> dict:
    """Our config dict from ModelConf fields, with shapes read from the tensors."""
    def need(*names):
        for n in names:
            if conf.get(n) is not None:
                return conf[n]
        raise KeyError(f"config.json: missing {' / '.join(names)}")

    layers = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k)))
    vocab, d = sd["embed.weight"].shape
    cfg = {
        "vocab_size": int(vocab), "d_model": int(d), "n_layers": layers,
        "cema_ndim": int(sd["layers.0.mega.cema.alpha"].shape[1]),
        "n_attn_heads": int(need("num_heads", "n_heads")),
        "z_dim": int(sd["layers.0.mega.wz.weight"].shape[0]),
        "value_dim": int(sd["layers.0.mega.wv.weight"].shape[0]),
        "ffn_dim": int(sd["layers.0.nffn.fc1.weight"].shape[0]),
        "chunk_size": int(need("chunk_size")),
        "norm_groups": int(need("norm_num_groups", "norm_groups")),
        "norm_eps": float(conf.get("norm_eps") or 1e-5),
        "rope_base": float(conf.get("rope_base") or 10000.0),
        "bf16_freqs": True,
        "swiglu": "layers.0.nffn.fc3.weight" in sd,
        "scale_embedding": bool(conf.get("scale_emb", False)),
        "tied_embedding": bool(conf.get("share_emb", False)) or "output.output.weight" not in sd,
        "n_predict_heads": 1,
    }
    if d != conf.get("model_dim", d):
        raise ValueError(f"config.json says model_dim {conf['model_dim']} but embed.weight has {d} columns")
    for k in sd:
        if k.endswith("prior_count") and np.any(sd[k] != 0):
            raise ValueError(f"{k} = {sd[k]}: learned TimestepNorm priors are not supported")
    if "layers.0.nffn.alpha" in sd:
        raise ValueError("rescale_nffn checkpoints (nffn.alpha) are not supported")
    return cfg


# ----------------------------------------------------------------------------------------------
# SentencePiece model (protobuf ModelProto): pieces = field 1 {piece 1, score 2, type 3},
# normalizer_spec = field 3 {add_dummy_prefix 3}.


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated SentencePiece model")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes):
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def sentencepiece_keys(path: Path) -> dict:
    data = Path(path).read_bytes()
    tokens, scores, types = [], [], []
    add_prefix = True
    for field, _, value in _fields(data):
        if field == 1:
            piece, score, kind = "", 0.0, 1
            for f, _, v in _fields(value):
                if f == 1:
                    piece = v.decode("utf-8")
                elif f == 2:
                    score = struct.unpack("<f", v)[0]
                elif f == 3:
                    kind = v
            tokens.append(piece)
            scores.append(score)
            types.append(kind)
        elif field == 3:
            for f, _, v in _fields(value):
                if f == 3:
                    add_prefix = bool(v)
    if not tokens:
        raise ValueError(f"{path}: no pieces (not a SentencePiece model?)")

    def find(piece, kind):
        for i, (t, k) in enumerate(zip(tokens, types)):
            if k == kind and (piece is None or t == piece):
                return i
        return None

    keys = {"tokenizer.ggml.model": ("str", "llama"), "tokenizer.ggml.tokens": ("str[]", tokens),
            "tokenizer.ggml.scores": ("f32[]", scores), "tokenizer.ggml.token_type": ("i32[]", types),
            "tokenizer.ggml.add_bos_token": ("bool", True), "tokenizer.ggml.add_space_prefix": ("bool", add_prefix)}
    for key, piece, kind in (("unknown", None, 2), ("bos", "<s>", 3), ("eos", "</s>", 3)):
        index = find(piece, kind)
        if index is not None:
            keys[f"tokenizer.ggml.{key}_token_id"] = ("u32", index)
    return keys


ARRAY_TYPES = {"tokenizer.ggml.tokens": "str[]", "tokenizer.ggml.merges": "str[]", "tokenizer.ggml.scores": "f32[]",
               "tokenizer.ggml.token_type": "i32[]"}


def gguf_tokenizer(path: Path) -> dict:
    reader = GGUFReader(path)
    keys = {}
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre"):
        if reader.get(key) is not None:
            keys[key] = ("str", reader[key])
    for key, kind in ARRAY_TYPES.items():
        if reader.get(key) is not None:
            keys[key] = (kind, list(reader[key]))
    for key in ("bos", "eos", "unknown", "padding"):
        if reader.get(f"tokenizer.ggml.{key}_token_id") is not None:
            keys[f"tokenizer.ggml.{key}_token_id"] = ("u32", int(reader[f"tokenizer.ggml.{key}_token_id"]))
    for key in ("add_bos_token", "add_space_prefix"):
        if reader.get(f"tokenizer.ggml.{key}") is not None:
            keys[f"tokenizer.ggml.{key}"] = ("bool", bool(reader[f"tokenizer.ggml.{key}"]))
    return keys


def convert(folder: Path, out: Path, tokenizer_keys: dict, dtype: str = "f32", name: str = "megalodon-official") -> list[str]:
    conf, sd = load_checkpoint(folder)
    cfg = model_config(conf, sd)
    unknown = [k for k in sd if not (IGNORED.search(k) or k.startswith(("embed.", "layers.", "output.")))]
    notes = [f"ignored unknown tensor {k}" for k in unknown]
    return notes + write_gguf(out, cfg, official_tensors(sd, cfg), tokenizer_keys, dtype, name)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Convert an official MEGALODON checkpoint to GGUF.")
    p.add_argument("checkpoint", type=Path, help="folder with config.json and consolidated*.pth")
    p.add_argument("out", type=Path)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer", type=Path, help="SentencePiece tokenizer.model")
    source.add_argument("--tokenizer-from", type=Path, help="take the tokenizer of this GGUF")
    p.add_argument("--dtype", choices=MATRIX_TYPES, default="bf16")
    p.add_argument("--name", default="megalodon-official")
    args = p.parse_args(argv)
    keys = sentencepiece_keys(args.tokenizer) if args.tokenizer else gguf_tokenizer(args.tokenizer_from)
    for note in convert(args.checkpoint, args.out, keys, args.dtype, args.name):
        print(note, file=sys.stderr)
    print(args.out)


if __name__ == "__main__":
    main()
