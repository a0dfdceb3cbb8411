#!/usr/bin/env python3
"""Benchmark of the MEGALODON runtime on the reference configuration.

1. Ingest speed: `megalodon bench` on a random model of the reference configuration (f32 and
   q8_0 weights), compared with numpy/OpenBLAS float32 matmuls of the same per-token GEMM
   shapes (rows = chunk size) at the same thread counts. Both are converted to effective
   GFLOP/s with the model's per-token GEMM FLOPs (weight matrices of every block; the
   chunk-local attention products and the element-wise work are not counted).
2. Memory: ingests of about 10k and 1M tokens of generated text (chunk multiples), with the
   peak resident memory of each run and the sizes of the saved states, which must be equal.

    python3 bench/runtime_bench.py [--tokens 4096] [--threads 1,2] [--skip-long]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.make_tiny import make_random_model  # noqa: E402

CLI = REPO / "build" / "Release" / "megalodon"

# d_model 512, 12 layers, vocab 32000, chunk 1024, 4 prediction heads, Z 256, E 1024,
# SwiGLU FFN 1024; CEMA N = 16, 32 TimestepNorm groups and one attention head as in the
# released small presets (megalodon.md 7.1).
REFERENCE = dict(n_layers=12, d_model=512, vocab_size=32000, chunk_size=1024, n_predict_heads=4, z_dim=256,
                 value_dim=1024, ffn_dim=1024, swiglu=True, cema_ndim=16, norm_groups=32, n_attn_heads=1)

# Timed in a fresh interpreter so that the BLAS thread count is set before numpy loads.
BLAS_TIMER = r"""
import json, sys, time
import numpy as np
shapes, rows, reps = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
total = 0.0
for n_in, n_out in shapes:
    x = rng.standard_normal((rows, n_in), dtype=np.float32)
    w = rng.standard_normal((n_in, n_out), dtype=np.float32)
    out = np.empty((rows, n_out), dtype=np.float32)
    for _ in range(2):
        np.matmul(x, w, out=out)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        np.matmul(x, w, out=out)
        times.append(time.perf_counter() - start)
    total += sorted(times)[len(times) // 2]
print(json.dumps(total))
"""


def layer_gemm_shapes(cfg: dict) -> list[tuple[int, int]]:
    """(inputs, outputs) of every weight matrix one block applies to each token."""
    d, z, e, f = cfg["d_model"], cfg["z_dim"], cfg["value_dim"], cfg["ffn_dim"]
    shapes = [(d, z), (d, e), (d, e), (d, d), (e, d), (d, f), (f, d)]  # W_z, W_v, W_r, W_h1, W_h2, fc1, fc2
    if cfg["swiglu"]:
        shapes.append((d, f))  # fc3
    return shapes


def gemm_flops_per_token(cfg: dict) -> int:
    return 2 * cfg["n_layers"] * sum(i * o for i, o in layer_gemm_shapes(cfg))


def blas_tokens_per_second(cfg: dict, threads: int, reps: int) -> float:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    arg = json.dumps([layer_gemm_shapes(cfg), cfg["chunk_size"], reps])
    out = subprocess.run([sys.executable, "-c", BLAS_TIMER, arg], env=env, check=True, capture_output=True, text=True)
    seconds_per_chunk = float(out.stdout) * cfg["n_layers"]
    return cfg["chunk_size"] / seconds_per_chunk


def run_cli(*args: str) -> dict:
    """Runs the CLI with --json (progress lines pass through to stderr) and parses its output."""
    out = subprocess.run([str(CLI), *args, "--json"], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        raise SystemExit(f"megalodon {' '.join(args)} failed with status {out.returncode}")
    return json.loads(out.stdout)


def write_text(path: Path, n_bytes: int, seed: int) -> None:
    """Plain English-like text: sentences of common words, paragraphs of a few sentences."""
    words = ("the of and to in a is that for it as was with be by on not he this are or his from at which but "
             "have an they you were her she there been one all we their has would when if so no more other "
             "time could into them some than then its only new two may first any these people like over "
             "state model chunk memory document reader page chapter line moving average stream").split()
    rng = random.Random(seed)
    parts, size = [], 0
    while size < n_bytes:
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18))).capitalize() + "."
        sentence += "\n\n" if rng.random() < 0.15 else " "
        parts.append(sentence)
        size += len(sentence)
    path.write_text("".join(parts), encoding="utf-8")


def ingest_exact(model: Path, folder: Path, name: str, n_tokens: int, threads: int) -> dict:
    """Ingests exactly n_tokens of generated text (growing the text until it is long enough)."""
    n_bytes = n_tokens * 6
    for attempt in range(4):
        text = folder / f"{name}.txt"
        write_text(text, n_bytes, seed=len(name))
        state = folder / f"{name}.state"
        result = run_cli("ingest", str(model), str(text), "--save", str(state), "--limit", str(n_tokens),
                         "--threads", str(threads))
        if result["tokens"] == n_tokens:
            result["state_file_bytes"] = state.stat().st_size
            return result
        n_bytes *= 2
    raise SystemExit(f"could not generate {n_tokens} tokens of text")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=4096, help="tokens per `megalodon bench` ingest run")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (default 1,2)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each BLAS matmul (median taken)")
    parser.add_argument("--short", type=int, default=10 * 1024, help="tokens of the short ingest")
    parser.add_argument("--long", type=int, default=1024 * 1024, help="tokens of the long ingest")
    parser.add_argument("--skip-long", action="store_true", help="skip the 10k/1M ingest comparison")
    args = parser.parse_args()
    if not CLI.exists():
        raise SystemExit(f"{CLI} not found: build the runtime first (npm install)")
    threads = [int(t) for t in args.threads.split(",")]
    cfg = REFERENCE
    flops = gemm_flops_per_token(cfg)

    with tempfile.TemporaryDirectory(prefix="megalodon-bench-") as tmp:
        folder = Path(tmp)
        models = {}
        for dtype in ("f32", "q8_0"):
            print(f"writing the {dtype} reference model ...", file=sys.stderr)
            models[dtype] = Path(make_random_model(folder / f"reference-{dtype}.gguf", dtype=dtype, **cfg))

        blas = {t: blas_tokens_per_second(cfg, t, args.reps) for t in threads}
        runtime = {}
        for dtype, model in models.items():
            print(f"megalodon bench ({dtype}) ...", file=sys.stderr)
            runtime[dtype] = run_cli("bench", str(model), "--tokens", str(args.tokens), "--threads", args.threads,
                                     "--decode-tokens", "16")

        first = runtime["f32"]
        print(f"\n{CLI.name}: {runtime['f32']['version']}")
        print(f"reference model: {first['n_params'] / 1e6:.1f} M parameters, chunk {cfg['chunk_size']}, "
              f"state {first['state_bytes'] / 2**20:.2f} MiB")
        print(f"GEMM work per ingested token: {flops / 1e6:.1f} MFLOP ({cfg['n_layers']} blocks x "
              f"{len(layer_gemm_shapes(cfg))} weight matrices; attention products not counted)")
        print(f"numpy float32 matmul: {cfg['chunk_size']} rows per GEMM, median of {args.reps}\n")
        header = f"{'weights':8} {'threads':>7} {'ingest tok/s':>13} {'GFLOP/s':>8} {'BLAS GFLOP/s':>13} " \
                 f"{'of BLAS':>8} {'decode tok/s':>13}"
        print(header)
        print("-" * len(header))
        for dtype in models:
            for run in runtime[dtype]["runs"]:
                t = run["threads"]
                rate = run["ingest_tokens_per_second"]
                gflops = rate * flops / 1e9
                blas_gflops = blas[t] * flops / 1e9
                print(f"{dtype:8} {t:>7} {rate:>13.0f} {gflops:>8.1f} {blas_gflops:>13.1f} "
                      f"{gflops / blas_gflops:>8.0%} {run['decode_tokens_per_second']:>13.1f}")
        print(f"peak RSS of `megalodon bench`: f32 {runtime['f32']['peak_rss_bytes'] / 2**20:.0f} MiB, "
              f"q8_0 {runtime['q8_0']['peak_rss_bytes'] / 2**20:.0f} MiB")

        if args.skip_long:
            return
        top = max(threads)
        runs = {}
        for name, n in (("short", args.short), ("long", args.long)):
            print(f"\ningesting {n} tokens with the f32 model ...", file=sys.stderr)
            runs[name] = ingest_exact(models["f32"], folder, name, n, top)
        print(f"\nlong-document ingest, f32 weights, {top} threads (token counts are chunk multiples)\n")
        header = f"{'tokens':>9} {'seconds':>9} {'tok/s':>8} {'peak RSS MiB':>13} {'state file bytes':>17}"
        print(header)
        print("-" * len(header))
        for r in runs.values():
            print(f"{r['tokens']:>9} {r['seconds']:>9.1f} {r['tokens_per_second']:>8.0f} "
                  f"{r['peak_rss_bytes'] / 2**20:>13.1f} {r['state_file_bytes']:>17}")
        ratio = runs["long"]["peak_rss_bytes"] / runs["short"]["peak_rss_bytes"]
        same = runs["long"]["state_file_bytes"] == runs["short"]["state_file_bytes"]
        print(f"peak RSS ratio ({runs['long']['tokens']} / {runs['short']['tokens']} tokens): {ratio:.3f} "
              f"(input text and token buffers included)")
        print(f"state files equal in size: {'yes' if same else 'NO'}")
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
