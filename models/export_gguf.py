"""Our training checkpoints -> the runtime's GGUF (native/FORMAT.md).

    python3 models/export_gguf.py runs/default/checkpoint.pt models/default/folio-default.gguf --dtype q8_0

The model's parameters carry the released code's names and storage (megalodon_torch.py), so the
mapping here (`official_tensors`) is also what convert_official.py uses: norm scales and the Q/K
scales gain their +1, CEMA parameters lose their trailing singleton axes, matrices take the
requested type and everything else stays f32.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from models.gguf import GGUFWriter
else:
    from .gguf import GGUFWriter

MATRIX_TYPES = ("f32", "f16", "bf16", "q8_0")

# Config keys as megalodon_torch.MegalodonConfig names them -> GGUF metadata.
UINT_KEYS = {"n_layers": "block_count", "d_model": "embedding_length", "cema_ndim": "cema_ndim",
             "n_attn_heads": "attention.head_count", "z_dim": "attention.z_dim",
             "value_dim": "attention.value_dim", "ffn_dim": "feed_forward_length", "chunk_size": "chunk_size",
             "norm_groups": "norm_groups", "n_predict_heads": "mtp.head_count"}


def official_tensors(sd: dict[str, np.ndarray], cfg: dict) -> list[tuple[str, np.ndarray, bool]]:
    """(GGUF name, float32 array in PyTorch order, is_matrix) for a state dict with the released
    code's names (plus `mtp.{j}.*` heads). Raises KeyError naming a missing tensor."""
    def get(name: str) -> np.ndarray:
        if name not in sd:
            raise KeyError(f"missing tensor {name}")
        return np.asarray(sd[name], dtype=np.float32)

    out: list[tuple[str, np.ndarray, bool]] = [("token_embd.weight", get("embed.weight"), True)]
    d, n = cfg["d_model"], cfg["cema_ndim"]
    for i in range(cfg["n_layers"]):
        src, dst = f"layers.{i}.", f"blk.{i}."
        mega, ffn = src + "mega.", src + "nffn."
        out += [
            (dst + "tsn.weight", get(mega + "timenorm.weight") + 1.0, False),
            (dst + "tsn.bias", get(mega + "timenorm.bias"), False),
            (dst + "cema.alpha", get(mega + "cema.alpha").reshape(d, n), False),
            (dst + "cema.delta", get(mega + "cema.delta").reshape(d, n), False),
            (dst + "cema.theta", get(mega + "cema.theta").reshape(d), False),
            (dst + "cema.gamma", get(mega + "cema.gamma").reshape(d, n, 2), False),
            (dst + "cema.omega", get(mega + "cema.omega").reshape(d), False),
            (dst + "rms.weight", get(mega + "rmsnorm.weight") + 1.0, False),
        ]
        for ours, theirs in (("attn_z", "wz"), ("attn_v", "wv"), ("attn_r", "wr"), ("attn_h1", "wh1")):
            out += [(dst + ours + ".weight", get(mega + theirs + ".weight"), True),
                    (dst + ours + ".bias", get(mega + theirs + ".bias"), False)]
        out += [
            (dst + "attn_h2.weight", get(mega + "wh2.weight"), True),
            (dst + "attn_qk.scale", get(mega + "gamma") + 1.0, False),
            (dst + "attn_qk.bias", get(mega + "beta"), False),
            (dst + "ffn_norm.weight", get(ffn + "norm.weight") + 1.0, False),
            (dst + "ffn_norm.bias", get(ffn + "norm.bias"), False),
            (dst + "ffn_gate.weight", get(ffn + "fc1.weight"), True),
        ]
        if cfg["swiglu"]:
            out.append((dst + "ffn_up.weight", get(ffn + "fc3.weight"), True))
        out.append((dst + "ffn_down.weight", get(ffn + "fc2.weight"), True))
    out += [("output_norm.weight", get("output.final_norm.weight") + 1.0, False),
            ("output_norm.bias", get("output.final_norm.bias"), False)]
    if not cfg["tied_embedding"]:
        out.append(("output.weight", get("output.output.weight"), True))
    for j in range(2, cfg.get("n_predict_heads", 1) + 1):
        out += [(f"mtp.{j}.norm.weight", get(f"mtp.{j}.norm.weight") + 1.0, False),
                (f"mtp.{j}.gate.weight", get(f"mtp.{j}.gate.weight"), True),
                (f"mtp.{j}.up.weight", get(f"mtp.{j}.up.weight"), True),
                (f"mtp.{j}.down.weight", get(f"mtp.{j}.down.weight"), True)]
    return out


def write_gguf(path: str | Path, cfg: dict, tensors: list[tuple[str, np.ndarray, bool]], tokenizer_keys: dict,
               dtype: str = "f32", name: str = "megalodon", extra_keys: dict | None = None) -> list[str]:
    """Writes the model atomically; returns notes (e.g. matrices kept at f16 because their rows
    do not split into q8_0 blocks)."""
    if dtype not in MATRIX_TYPES:
        raise ValueError(f"dtype must be one of {MATRIX_TYPES}, got {dtype!r}")
    vocab = len(tokenizer_keys["tokenizer.ggml.tokens"][1])
    if vocab != cfg["vocab_size"]:
        raise ValueError(f"tokenizer has {vocab} tokens but the model's embedding has {cfg['vocab_size']} rows")
    writer = GGUFWriter()
    writer.add_string("general.architecture", "megalodon")
    writer.add_string("general.name", name)
    for ours, key in UINT_KEYS.items():
        writer.add_uint32(f"megalodon.{key}", int(cfg.get(ours, 1)))
    heads = int(cfg.get("n_predict_heads", 1))
    writer.add_uint32("megalodon.mtp.hidden_dim", int(cfg.get("mtp_hidden_dim", 0)) if heads > 1 else 0)
    writer.add_string("megalodon.mtp.source", cfg.get("mtp_source", "trunk"))
    writer.add_float32("megalodon.norm_eps", float(cfg["norm_eps"]))
    writer.add_float32("megalodon.rope.freq_base", float(cfg["rope_base"]))
    writer.add_bool("megalodon.rope.bf16_freqs", bool(cfg.get("bf16_freqs", True)))
    writer.add_bool("megalodon.swiglu", bool(cfg["swiglu"]))
    writer.add_bool("megalodon.scale_embedding", bool(cfg.get("scale_embedding", False)))
    writer.add_bool("megalodon.tied_embedding", bool(cfg["tied_embedding"]))
    for key, (kind, value) in {**tokenizer_keys, **(extra_keys or {})}.items():
        if kind.endswith("[]"):
            writer.add_array(key, value, kind[:-2])
        else:
            writer.add_value(key, value, kind)
    notes = []
    for tensor_name, array, is_matrix in tensors:
        kind = dtype if is_matrix else "f32"
        if kind == "q8_0" and array.shape[-1] % 32:
            kind = "f16"
            notes.append(f"{tensor_name}: rows of {array.shape[-1]} values do not split into q8_0 blocks; kept f16")
        writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32), kind)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    writer.write(tmp)
    tmp.replace(path)
    return notes


def export_checkpoint(checkpoint: str | Path, out: str | Path, dtype: str = "f32", name: str | None = None) -> list[str]:
    """A checkpoint written by train.py (config, model state dict, tokenizer keys) -> GGUF."""
    import torch  # only needed here: the mapping above works on numpy arrays

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    sd = {k: v.detach().float().numpy() for k, v in ckpt["model"].items()}
    keys = ckpt["tokenizer_keys"]
    extra = {"general.description": ("str", json.dumps(ckpt.get("summary", {}), sort_keys=True))} \
        if ckpt.get("summary") else None
    return write_gguf(out, cfg, official_tensors(sd, cfg), keys, dtype, name or ckpt.get("name", "megalodon"), extra)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Export a training checkpoint to GGUF.")
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    parser.add_argument("--dtype", choices=MATRIX_TYPES, default="q8_0", help="type of the weight matrices")
    parser.add_argument("--name", default=None, help="general.name (default: the checkpoint's)")
    args = parser.parse_args(argv)
    for note in export_checkpoint(args.checkpoint, args.out, args.dtype, args.name):
        print(note, file=sys.stderr)
    print(args.out)


if __name__ == "__main__":
    main()
