"""A copy of a MEGALODON model with wider feed-forward layers that computes the same function.

    python3 models/widen_ffn.py MODEL OUT --ffn 16384

The added units have zero weights in and out (ffn_gate and ffn_up get zero rows, ffn_down zero
columns), so every hidden state, logit and greedy token is the original's while the file, and the
weight bytes a decode step reads, grow to those of a larger model. That measures decoding, and
speculative decoding with the model's real heads and their real acceptance, where a step is bound
by memory bandwidth as it is for models of hundreds of megabytes (bench/speculative_bench.py
--widen-ffn).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from models.gguf import Q8_0_BLOCK, UINT32, GGUFReader, rewrite_model
else:
    from .gguf import Q8_0_BLOCK, UINT32, GGUFReader, rewrite_model

FFN_KEY = "megalodon.feed_forward_length"


def widen_ffn(src: str | os.PathLike, dst: str | os.PathLike, width: int) -> str:
    """Writes `src` with feed_forward_length `width` (at least the current one; a multiple of 32
    where the FFN weights are q8_0) to `dst`, atomically."""
    reader = GGUFReader(src)
    if reader.get("general.architecture") != "megalodon" or FFN_KEY not in reader.keys:
        raise ValueError(f"{src}: not a MEGALODON model (no {FFN_KEY})")
    current = int(reader[FFN_KEY])
    if width < current:
        raise ValueError(f"{src}: --ffn {width} is below the model's feed-forward width {current}")
    tensors = {}
    for name, tensor in reader.tensors.items():
        if name.endswith((".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight")):
            if tensor.type_name == "q8_0" and width % Q8_0_BLOCK:
                raise ValueError(f"{src}: {name} is q8_0, so the width must be a multiple of {Q8_0_BLOCK}, got {width}")
            old = tensor.to_float64().astype(np.float32)
            if name.endswith(".ffn_down.weight"):  # [D, F]: zero columns
                new = np.zeros((old.shape[0], width), np.float32)
                new[:, :current] = old
            else:  # [F, D]: zero rows
                new = np.zeros((width, old.shape[1]), np.float32)
                new[:current] = old
            tensors[name] = (new, tensor.type_name)
    return rewrite_model(src, dst, keys={FFN_KEY: (UINT32, width)}, tensors=tensors)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="GGUF model file")
    parser.add_argument("out", help="output GGUF path")
    parser.add_argument("--ffn", type=int, required=True, help="new feed-forward width")
    args = parser.parse_args(argv)
    try:
        widen_ffn(args.model, args.out, args.ffn)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
