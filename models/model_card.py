"""Evaluates a trained run with the runtime and writes the model card of models/default/.

    python3 models/model_card.py --run runs/default --baseline runs/baseline \
        --corpus models/data/out --out models/default

Measures, all with the C runtime on the exported GGUF (what the app ships):
- held-out perplexity on the held-out prose and code texts;
- perplexity of a long held-out book after reading 1k ... 256k tokens of it, next to the same
  windows read from an empty state (the gain is what the streaming state remembers);
- per-head acceptance: teacher-forced self-agreement a_i = P[argmax head_i(t) = argmax head_1(t+i-1)]
  on held-out text and on the model's own greedy continuations (what speculative decoding sees);
- ingest and decode speed at 1 and 2 threads;
and, from the training logs, MEGALODON against the transformer baseline (same parameters, data,
steps and validation windows), with the loss curves as a PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models import runtime  # noqa: E402

CONTEXTS = (1024, 4096, 16384, 65536, 262144)
WINDOW = 2048


def read_log(run: Path) -> list[dict]:
    with (run / "log.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def held_out_ppl(model: runtime.Model, tokens: np.ndarray, limit: int = 65536) -> dict:
    tokens = np.asarray(tokens[:limit], dtype=np.int64).tolist()
    nll, n = model.score(model.new_state(), tokens)
    return {"tokens": n, "mean_nll": nll / n, "ppl": math.exp(nll / n)}


def ppl_by_context(model: runtime.Model, book: np.ndarray) -> list[dict]:
    """Window [N, N + WINDOW) of the book scored after streaming its first N tokens, and from an
    empty state; N in CONTEXTS (those the book is long enough for)."""
    book = np.asarray(book, dtype=np.int64)
    rows = []
    state = model.new_state()
    done = 0
    for n in CONTEXTS:
        if n + WINDOW > len(book):
            break
        model.ingest(state, book[done:n].tolist())
        done = n
        window = book[n:n + WINDOW].tolist()
        nll_read, count = model.score(state.clone(), window)
        nll_fresh, _ = model.score(model.new_state(), window)
        rows.append({"read_tokens": n, "ppl_with_state": math.exp(nll_read / count),
                     "ppl_from_empty_state": math.exp(nll_fresh / count)})
    return rows


def self_agreement(model: runtime.Model, tokens: list[int], n_heads: int) -> list[float]:
    """a_i for i = 2..n over one teacher-forced pass."""
    logits = model.eval(model.new_state(), tokens, n_heads=n_heads)
    top = logits.argmax(axis=-1)                      # [T, heads]
    rates = []
    for i in range(2, n_heads + 1):
        draft = top[: len(tokens) - (i - 1), i - 1]   # head i at t predicts x_{t+i}
        verify = top[i - 1:, 0]                        # head 1 at t+i-1 predicts x_{t+i}
        rates.append(float((draft == verify).mean()))
    return rates


def greedy_text(model: runtime.Model, prompts: list[list[int]], length: int) -> list[list[int]]:
    out = []
    for prompt in prompts:
        result = model.generate(model.new_state(), prompt, length, temperature=0.0, stop_at_eos=False)
        out.append(prompt + result.tokens)
    return out


def speed(path: Path, tokens: list[int]) -> list[dict]:
    rows = []
    for threads in (1, 2):
        with runtime.Model(path, n_threads=threads) as model:
            state = model.new_state()
            start = time.perf_counter()
            model.ingest(state, tokens)
            ingest = len(tokens) / (time.perf_counter() - start)
            result = model.generate(state, [], 128, temperature=0.0, stop_at_eos=False)
            decode = len(result.tokens) / max(result.generate_seconds, 1e-9)
        rows.append({"threads": threads, "ingest_tokens_per_s": ingest, "decode_tokens_per_s": decode})
    return rows


def plot(logs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    colours = {"MEGALODON": "tab:blue", "transformer": "tab:orange"}
    for name, log in logs.items():
        steps = [r["tokens"] / 1e6 for r in log]
        ce = np.array([r["ce_1"] for r in log])
        smooth = np.convolve(ce, np.ones(25) / 25, mode="valid") if len(ce) > 50 else ce
        ax.plot(steps[len(steps) - len(smooth):], smooth, color=colours.get(name), label=f"{name} train")
        val = [(r["tokens"] / 1e6, r["val_prose_ce_1"]) for r in log if "val_prose_ce_1" in r]
        if val:
            ax.plot(*zip(*val), "o--", color=colours.get(name), label=f"{name} held-out prose")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("next-token cross-entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--baseline", type=Path, help="transformer baseline run folder")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model-name", default="folio-default.gguf")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train import load_tokenizer, tokenize_file

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / args.model_name
    shutil.copyfile(args.run / "model.gguf", model_path)
    summary = json.loads((args.run / "summary.json").read_text())
    tokenizer = load_tokenizer(args.corpus / "tokenizer.json")
    texts = {name: tokenize_file(tokenizer, args.corpus / f"heldout_{name}.txt", args.run / f"heldout_{name}_tokens.npy")
             for name in ("prose", "code", "book")}
    card: dict = {"training": summary, "file_bytes": model_path.stat().st_size}
    with runtime.Model(model_path, n_threads=2) as model:
        info = model.info_json()
        n_heads = int(info.get("config", info).get("n_predict_heads", 1)) if isinstance(info, dict) else 1
        card["info"] = info
        card["held_out"] = {name: held_out_ppl(model, texts[name]) for name in ("prose", "code")}
        card["book_tokens"] = int(len(texts["book"]))
        card["ppl_by_context"] = ppl_by_context(model, texts["book"])
        agreement = {}
        for name in ("prose", "code"):
            agreement[name] = self_agreement(model, np.asarray(texts[name][:4096]).tolist(), n_heads)
        prompts = [np.asarray(texts[name][s:s + 64]).tolist() for name in ("prose", "code") for s in (0, 5000, 20000)]
        generated = greedy_text(model, prompts, 192)
        rates = np.array([self_agreement(model, g, n_heads) for g in generated])
        agreement["own_greedy_text"] = rates.mean(axis=0).tolist() if len(rates) else []
        card["head_agreement"] = agreement
    card["speed"] = speed(model_path, np.asarray(texts["book"][:32768]).tolist())
    logs = {"MEGALODON": read_log(args.run)}
    if args.baseline and (args.baseline / "log.jsonl").exists():
        logs["transformer"] = read_log(args.baseline)
        base = json.loads((args.baseline / "summary.json").read_text())
        last = {name: [r for r in log if "val_prose_ce_1" in r][-1] for name, log in logs.items()}
        card["baseline"] = {"transformer": base,
                            "val": {name: {k: v for k, v in r.items() if k.startswith("val_")} for name, r in last.items()}}
    plot(logs, args.out / "loss_curve.png")
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: card[k] for k in ("held_out", "ppl_by_context", "head_agreement", "speed")}, indent=2))
    return card


if __name__ == "__main__":
    main()
