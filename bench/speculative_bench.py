#!/usr/bin/env python3
"""Decode speed of plain vs self-speculative decoding (the model's multi-token heads) on held-out
text: for each text file and thread count, greedy continuations of prompts taken from the text,
once plainly and once speculatively per draft setting from the same prompt, with decode tokens/s,
the speedup, tokens per forward pass, the cost of a forward pass in plain steps, the acceptance of
each extra head and the mix of window lengths. Greedy speculative output must equal the plain
output; any difference is counted and makes the exit status 1.

    python3 bench/speculative_bench.py [MODEL] [--text FILE ...] [--threads 1,2] [--prompts 32]
        [--prompt-tokens 256] [--max-tokens 256] [--drafts 0,2,3,4] [--repeat-penalty 1.3]
        [--widen-ffn 16384] [--json]

MODEL defaults to models/default/folio-default.gguf; any GGUF of the runtime works. The texts
default to models/data/out/heldout_book.txt and heldout_code.txt (those that exist).
--widen-ffn F measures a copy of the model whose feed-forward layers have F units, the added ones
with zero weights (models/widen_ffn.py): the same tokens, logits and acceptance from a model large
enough that a decode step is bound by memory bandwidth, as it is for models of hundreds of MB.
Acceptance per head j is cumulative: accepted / drafted, where a draft counts as accepted only
when every draft before it in its window was accepted too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models import runtime  # noqa: E402
from models.widen_ffn import widen_ffn  # noqa: E402

DEFAULT_MODEL = REPO / "models" / "default" / "folio-default.gguf"
DEFAULT_TEXTS = [REPO / "models" / "data" / "out" / "heldout_book.txt",
                 REPO / "models" / "data" / "out" / "heldout_code.txt"]
MAX_TEXT_BYTES = 4 << 20  # prompts come from the start of long files


def prompts_from(model: runtime.Model, path: Path, count: int, length: int) -> list[list[int]]:
    """`count` prompts of `length` tokens at evenly spaced places of the text (BOS first when the
    model has one)."""
    with open(path, "rb") as f:
        text = f.read(MAX_TEXT_BYTES).decode("utf-8", "replace")
    tokens = model.tokenize(text)
    bos = model.info()["bos_token"]
    if len(tokens) < length + 1:
        raise SystemExit(f"{path}: {len(tokens)} tokens, fewer than --prompt-tokens {length}")
    span = len(tokens) - length
    starts = [span * i // max(count, 1) for i in range(count)]
    return [([bos] if bos >= 0 else []) + tokens[s:s + length] for s in starts]


def measure(model: runtime.Model, prompts: list[list[int]], max_tokens: int, drafts: list[int],
            penalty: dict) -> list[dict]:
    """Totals over the prompts of one plain and one speculative greedy run per draft setting each
    (interleaved per prompt, so that a slow phase of a shared machine hits all of them)."""
    options = dict(temperature=0.0, stop_at_eos=False, **penalty)
    plain_tokens, plain_seconds = 0, 0.0
    totals = [dict(draft=d, spec_tokens=0, spec_seconds=0.0, forward_passes=0, mismatches=0, draft_heads=1,
                   drafted=[], accepted=[], windows=[]) for d in drafts]
    for prompt in prompts:
        plain = model.generate(model.new_state(), prompt, max_tokens, **options)
        plain_tokens += len(plain.tokens)
        plain_seconds += plain.generate_seconds
        for t in totals:
            spec = model.generate(model.new_state(), prompt, max_tokens, speculative=True, draft=t["draft"], **options)
            t["spec_tokens"] += len(spec.tokens)
            t["spec_seconds"] += spec.generate_seconds
            t["forward_passes"] += spec.forward_passes
            t["mismatches"] += int(spec.tokens != plain.tokens)
            t["draft_heads"] = spec.draft_heads
            for key in ("drafted", "accepted", "windows"):
                values = getattr(spec, key)
                t[key] = [a + b for a, b in zip(t[key] or [0] * len(values), values)]
    plain_rate = plain_tokens / plain_seconds if plain_seconds > 0 else 0.0
    for t in totals:
        spec_rate = t["spec_tokens"] / t["spec_seconds"] if t["spec_seconds"] > 0 else 0.0
        step_seconds = plain_seconds / plain_tokens if plain_tokens else 0.0
        t.update(
            plain_tokens=plain_tokens, plain_seconds=plain_seconds,
            plain_tokens_per_second=plain_rate, speculative_tokens_per_second=spec_rate,
            speedup=spec_rate / plain_rate if plain_rate > 0 else 0.0,
            tokens_per_forward=t["spec_tokens"] / t["forward_passes"] if t["forward_passes"] else 0.0,
            # Seconds of one speculative forward pass (a window) in plain decoding steps.
            forward_cost=(t["spec_seconds"] / t["forward_passes"]) / step_seconds
            if t["forward_passes"] and step_seconds > 0 else 0.0,
            acceptance_per_head=[a / d if d else 0.0 for a, d in zip(t["accepted"], t["drafted"])])
    return totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL), help="GGUF model file")
    parser.add_argument("--text", action="append", help="held-out text file (repeatable)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    # Enough tokens per setting (8k) that a shared machine's slow moments average out.
    parser.add_argument("--prompts", type=int, default=32, help="prompts per text file")
    parser.add_argument("--prompt-tokens", type=int, default=256, help="tokens per prompt")
    parser.add_argument("--max-tokens", type=int, default=256, help="tokens generated per prompt")
    parser.add_argument("--drafts", default="0,2,3,4",
                        help="comma-separated draft settings: heads per step, head 1 included "
                             "(0: the runtime chooses each window's length)")
    parser.add_argument("--repeat-penalty", type=float, default=1.0,
                        help="repetition penalty of the greedy runs (1: off; the app's answers use 1.3)")
    parser.add_argument("--repeat-last-n", type=int, default=128, help="window of the repetition penalty")
    parser.add_argument("--widen-ffn", type=int, default=0, metavar="F",
                        help="measure the model with its feed-forward layers widened to F units of zero weights "
                             "(the same function at a memory-bound size)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not (args.repeat_penalty > 0 and math.isfinite(args.repeat_penalty)):
        parser.error(f"--repeat-penalty must be a finite number above 0 (1: off), got {args.repeat_penalty}")

    model_path = Path(args.model)
    if not model_path.is_file():
        parser.error(f"no model at {model_path} (give a GGUF path)")
    texts = [Path(t) for t in args.text] if args.text else [t for t in DEFAULT_TEXTS if t.is_file()]
    if not texts:
        parser.error("no held-out text found: give --text FILE")
    threads = [int(t) for t in args.threads.split(",") if t]
    penalty = ({} if args.repeat_penalty == 1.0
               else dict(repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n))
    drafts = [int(d) for d in args.drafts.split(",") if d]

    with tempfile.TemporaryDirectory(prefix="speculative-bench-") as folder:
        widened = None
        if args.widen_ffn:
            widened = Path(folder) / "widened.gguf"
            try:
                widen_ffn(model_path, widened, args.widen_ffn)
            except ValueError as error:
                parser.error(str(error))
        return report(args, model_path, widened, texts, threads, drafts, penalty)


def report(args, model_path: Path, widened: Path | None, texts: list[Path], threads: list[int], drafts: list[int],
           penalty: dict) -> int:
    """Runs the measurements and prints them; 1 when a speculative output differs from plain."""
    model = runtime.Model(widened or model_path, n_threads=threads[0])
    info = model.info()
    if info["n_predict_heads"] < 2:
        print(f"note: {model_path} has no extra prediction heads; speculative decoding is plain decoding",
              file=sys.stderr)
    results = []
    for text in texts:
        prompts = prompts_from(model, text, args.prompts, args.prompt_tokens)
        for n in threads:
            model.set_threads(n)
            # One short warm-up run so that page faults and caches do not count against the first.
            model.generate(model.new_state(), prompts[0][:16], 4, temperature=0.0)
            results += [dict(text=text.name, threads=n, **r)
                        for r in measure(model, prompts, args.max_tokens, [d for d in drafts if d <= info["n_predict_heads"]],
                                         penalty)]
    model.close()

    mismatches = sum(r["mismatches"] for r in results)
    if args.json:
        print(json.dumps(dict(model=str(model_path), widen_ffn=args.widen_ffn or None, n_params=info["n_params"],
                              n_predict_heads=info["n_predict_heads"], prompts=args.prompts,
                              prompt_tokens=args.prompt_tokens, max_tokens=args.max_tokens, results=results),
                         indent=2))
    else:
        size = f"{(widened or model_path).stat().st_size / 1e6:.1f} MB"
        widening = f", feed-forward widened to {args.widen_ffn} units of zero weights" if widened else ""
        print(f"model: {model_path}{widening} ({info['n_params'] / 1e6:.1f} M parameters, {size}, "
              f"{info['n_predict_heads']} heads), {runtime.version()}")
        rule = (f", repetition penalty {args.repeat_penalty} over the last {args.repeat_last_n} tokens"
                if penalty else "")
        print(f"{args.prompts} prompts of {args.prompt_tokens} tokens per text, {args.max_tokens} greedy tokens each{rule}\n")
        heads = max((r["draft_heads"] for r in results), default=1)
        head_columns = "".join(f"  {'head ' + str(j + 2):>7}" for j in range(heads - 1))
        print(f"{'text':<20} {'threads':>7} {'draft':>5} {'plain tok/s':>11} {'spec tok/s':>10} {'speedup':>7} "
              f"{'tok/fwd':>7} {'fwd cost':>8}{head_columns}  windows by rows")
        for r in results:
            acceptance = "".join(f"  {100 * a:>6.1f}%" for a in r["acceptance_per_head"])
            acceptance += " " * 9 * (heads - 1 - len(r["acceptance_per_head"]))
            passes = max(r["forward_passes"], 1)
            mix = " ".join(f"{rows + 1}:{100 * n / passes:.0f}%" for rows, n in enumerate(r["windows"]) if n)
            print(f"{r['text'][:20]:<20} {r['threads']:>7} {r['draft'] or 'auto':>5} "
                  f"{r['plain_tokens_per_second']:>11.1f} {r['speculative_tokens_per_second']:>10.1f} "
                  f"{r['speedup']:>6.2f}x {r['tokens_per_forward']:>7.2f} {r['forward_cost']:>7.2f}x{acceptance}  {mix}")
        print("\ndraft auto: the runtime picks each window's length (1 = a plain step) from measured speed")
        print("fwd cost: seconds of one speculative forward pass in plain decoding steps; the speedup is "
              "tok/fwd / fwd cost")
        print("\nacceptance per head: cumulative (a draft counts when every draft before it was accepted too)")
        if mismatches:
            print(f"\nERROR: {mismatches} speculative outputs differ from plain greedy decoding")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
