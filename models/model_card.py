"""Evaluates a trained run with the runtime and writes the model card of models/default/.

    python3 models/model_card.py --run runs/default --baseline runs/baseline \
        --corpus models/data/out --out models/default [--heads-run runs/distill]

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
            model.ingest(state, tokens[:-1])
            ingest = (len(tokens) - 1) / (time.perf_counter() - start)
            decode, speculative = 0.0, 0.0
            for _ in range(3):  # best of three; the runtime learns its window lengths in the first
                branch = state.clone()
                result = model.generate(branch, tokens[-1:], 256, temperature=0.0, stop_at_eos=False)
                decode = max(decode, len(result.tokens) / max(result.generate_seconds, 1e-9))
                branch = state.clone()
                result = model.generate(branch, tokens[-1:], 256, temperature=0.0, stop_at_eos=False, speculative=True)
                speculative = max(speculative, len(result.tokens) / max(result.generate_seconds, 1e-9))
        rows.append({"threads": threads, "ingest_tokens_per_s": ingest, "decode_tokens_per_s": decode,
                     "speculative_decode_tokens_per_s": speculative})
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


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_card(card: dict, model_name: str) -> str:
    """The model card (README.md) from the measured numbers in card.json."""
    t = card["training"]
    params = t["parameters"]
    info = card["info"]
    cfg = info.get("config", info) if isinstance(info, dict) else {}
    heads = len(card["head_agreement"]["prose"]) + 1
    sources = card.get("corpus", {})
    source_rows = []
    for src in sources if isinstance(sources, list) else []:
        splits = src.get("splits", {})
        source_rows.append([src["name"], ", ".join(src.get("packages", [])), src.get("licence", ""),
                            f"{splits.get('train', {}).get('bytes', 0) / 1e6:.1f}",
                            ", ".join(k for k in splits if k != "train") or "-"])
    ctx_rows = [[f"{r['read_tokens']:,}", f"{r['ppl_with_state']:.2f}", f"{r['ppl_from_empty_state']:.2f}",
                 f"{100 * (1 - r['ppl_with_state'] / r['ppl_from_empty_state']):.1f}%"] for r in card["ppl_by_context"]]
    agree = card["head_agreement"]
    agree_rows = [[f"head {i + 2}", f"{agree['prose'][i]:.3f}", f"{agree['code'][i]:.3f}",
                   f"{agree['own_greedy_text'][i]:.3f}"] for i in range(heads - 1)]
    speed_rows = [[r["threads"], f"{r['ingest_tokens_per_s']:,.0f}", f"{r['decode_tokens_per_s']:,.0f}",
                   f"{r['speculative_decode_tokens_per_s']:,.0f}" if "speculative_decode_tokens_per_s" in r else "-"]
                  for r in card["speed"]]
    base = card.get("baseline")
    base_text = "No baseline run was given."
    if base:
        val = base["val"]
        rows = []
        for name in ("MEGALODON", "transformer"):
            v = val.get(name, {})
            rows.append([name, f"{v.get('val_prose_ce_1', float('nan')):.3f}", f"{math.exp(v.get('val_prose_ce_1', float('nan'))):.1f}",
                         f"{v.get('val_code_ce_1', float('nan')):.3f}", f"{math.exp(v.get('val_code_ce_1', float('nan'))):.1f}"])
        bt = base["transformer"]
        base_text = (f"Transformer baseline: {bt['parameters']['total'] / 1e6:.2f}M parameters (LLaMA-shaped: RMSNorm, RoPE, "
                     f"SwiGLU, full causal attention), the same corpus, tokenizer, batch, sequence length ({t.get('seq_len', 512)}), "
                     f"learning-rate schedule and {bt['steps']} steps; its training took {bt['train_seconds'] / 60:.0f} min on {bt['device']}. "
                     "Held-out cross-entropy of the next-token head on the same 32 windows of each held-out text:\n\n"
                     + _table(["model", "prose CE (nats)", "prose ppl", "code CE (nats)", "code ppl"], rows))
    held = card["held_out"]
    device = str(t.get("device", "?"))
    if device.startswith("cpu x"):  # train.py's "cpu xN": N threads of the CPU
        cores = int(device[5:]) if device[5:].isdigit() else 0
        device = f"{'one' if cores == 1 else cores} CPU core{'' if cores == 1 else 's'}"
    distill = card.get("heads_distillation")
    heads_source = "the final hidden state" if cfg.get("mtp_source") == "final" else "the trunk"
    distill_text = ""
    if distill:
        what = (f"{distill['generate']}-token greedy continuations of the model itself after corpus prompts"
                if distill.get("generate") else f"{distill.get('seq_len', 512)}-token corpus windows")
        ce = f" plus {distill['ce_weight']} x cross-entropy on the text" if distill.get("ce_weight") else ""
        distill_text = (f"\n- Heads 2..{heads}: re-trained after that by self-distillation on the frozen trunk "
                        f"(models/distill_heads.py, multi-token.md 6.2 P): reading {heads_source}, each head learns "
                        f"head 1's distribution at the position it drafts (KL{ce}) over {what}; "
                        f"{distill['steps']} steps, {distill['positions_trained'] / 1e6:.1f}M positions, "
                        f"{distill['train_minutes']:.0f} minutes on one CPU core. Head 1 (the model's next-token "
                        "output) is bit-identical to the jointly trained one.")
    return f"""# Folio default model

`{model_name}`: the MEGALODON model that ships with Folio, so the app works offline out of the box.
It is small on purpose: it was trained on {device}, and it reads {card['speed'][-1]['ingest_tokens_per_s']:,.0f}
tokens/s on two cores. Expect it to recall and point at passages, not to write fluent answers;
load a larger model (models/README.md) for that.

## Configuration

{_table(["", "value"], [
    ["parameters", f"{params['total'] / 1e6:.2f}M ({params['trunk_non_embedding'] / 1e6:.2f}M trunk without embedding, {params['embedding'] / 1e6:.2f}M tied embedding, {params['heads'] / 1e6:.2f}M in heads 2..{heads})"],
    ["layers / d_model", f"{cfg.get('n_layers', '?')} / {cfg.get('d_model', '?')}"],
    ["CEMA dims / attention heads / z / value", f"{cfg.get('cema_ndim', '?')} / {cfg.get('n_attn_heads', '?')} / {cfg.get('z_dim', '?')} / {cfg.get('value_dim', '?')}"],
    ["FFN", f"SwiGLU {cfg.get('ffn_dim', '?')}"],
    ["attention chunk / TimestepNorm groups", f"{cfg.get('chunk_size', '?')} / {cfg.get('norm_groups', '?')}"],
    ["prediction heads", f"{heads} (head 1 = next token; heads 2..{heads} position-wise SwiGLU on {heads_source}, for self-speculative decoding)"],
    ["vocabulary", f"{cfg.get('n_vocab', cfg.get('vocab_size', '?'))} byte-level BPE tokens trained on the corpus (models/train_tokenizer.py); `<|endoftext|>` is the last id"],
    ["weights", f"q8_0 matrices, f32 norms and CEMA parameters; file {card['file_bytes'] / 2**20:.1f} MiB"],
    ["state", f"{info.get('state_bytes', info.get('stateBytes', '?'))} bytes at a chunk boundary, whatever the length of the text"],
])}

Why these sizes: two CPU cores give about 10^14 training FLOPs an hour, for which the
compute-optimal model is a few million parameters; a 4096-token vocabulary keeps the tied
embedding at a quarter of the model (a 32k vocabulary would be three times the trunk).

## Training

- Data: {t['tokens_seen'] / 1e6:.1f}M tokens seen ({t['steps']} steps of {t.get('batch', 4)} x {t.get('seq_len', 512)} tokens) from the
  corpus below; AdamW (0.9, 0.95), weight decay 0.1, peak learning rate 3e-3 with warm-up and cosine decay,
  gradient clipping 1.0; joint multi-token loss CE_1 + 0.3 (then 0.1 for the last 30%) x the decayed
  extra heads (multi-token.md 6.2 J), with the memory-efficient per-head backward.
- Hardware and time: {device} (PyTorch CPU build), {t['train_seconds'] / 60:.0f} minutes ({'complete schedule' if t.get('completed_schedule') else 'stopped at the time limit before the schedule ended'}).
  The GPU recipe (`--preset base`, bf16 autocast) is in models/README.md.{distill_text}
- Reproduce: `sh models/run_python.sh models/data/build_corpus.py --out models/data/out`, then
  `models/train_tokenizer.py`, `models/train.py --preset default`{', `models/distill_heads.py`' if distill else ''} and `models/model_card.py` as in models/README.md.

![loss curves](loss_curve.png)

### Corpus (models/data/build_corpus.py)

{_table(["source", "Debian package", "licence", "train MB", "held out"], source_rows) if source_rows else "See models/data/out/manifest.json."}

## Held-out evaluation (runtime, q8_0 file)

Held-out prose (a whole GNU manual not trained on): perplexity {held['prose']['ppl']:.2f} over {held['prose']['tokens']:,} tokens.
Held-out code (whole Python packages not trained on): perplexity {held['code']['ppl']:.2f} over {held['code']['tokens']:,} tokens.

### Perplexity after reading more of a long book

The held-out King James Bible ({card['book_tokens']:,} tokens). For each N the model streams the first N
tokens, then scores the next 2,048; the same window is also scored from an empty state.

{_table(["tokens read", "ppl with the streamed state", "ppl from an empty state", "gain"], ctx_rows)}

### Multi-token heads

Teacher-forced self-agreement a_i = P[argmax head_i(t) = argmax head_1(t+i-1)], the rate at which
speculative decoding would accept head i's draft, on held-out text and on the model's own greedy
continuations (what decoding actually sees):

{_table(["head", "held-out prose", "held-out code", "own greedy text"], agree_rows)}

## Comparison with a transformer

{base_text}

## Speed (runtime, this file)

{_table(["threads", "ingest tokens/s", "decode tokens/s", "speculative decode tokens/s"], speed_rows)}

Greedy decoding of 256 tokens after 32,767 tokens of the held-out book, best of three; speculative
decoding with the runtime choosing each window's length (bench/speculative_bench.py has the
details per draft length and text).
"""


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--baseline", type=Path, help="transformer baseline run folder")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--tokenizer", type=Path, help="tokenizer.json of the run (default: CORPUS/tokenizer.json)")
    p.add_argument("--model-name", default="folio-default.gguf")
    p.add_argument("--heads-run", type=Path,
                   help="models/distill_heads.py run folder: ship its model.gguf (the run's trunk with the "
                        "distilled heads) and describe the distillation")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train import load_tokenizer, tokenize_file

    for folder in [args.run] + ([args.heads_run] if args.heads_run else []):
        for name in ("model.gguf", "summary.json"):
            if not (folder / name).is_file():
                raise SystemExit(f"model_card.py: {folder / name} does not exist (give a finished run folder)")
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / args.model_name
    shutil.copyfile((args.heads_run or args.run) / "model.gguf", model_path)
    summary = json.loads((args.run / "summary.json").read_text())
    tokenizer = load_tokenizer(args.tokenizer or args.corpus / "tokenizer.json")
    texts = {name: tokenize_file(tokenizer, args.corpus / f"heldout_{name}.txt", args.run / f"heldout_{name}_tokens.npy")
             for name in ("prose", "code", "book")}
    card: dict = {"training": summary, "file_bytes": model_path.stat().st_size}
    if args.heads_run:
        distill = json.loads((args.heads_run / "summary.json").read_text())
        card["heads_distillation"] = {k: v for k, v in distill.items() if not k.startswith("self_agreement")}
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
        prompts = [np.asarray(texts[name][s:s + 64]).tolist() for name in ("prose", "code") for s in (0, 5000, 20000)
                   if s + 64 <= len(texts[name])]
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
    card["corpus"] = json.loads((args.corpus / "manifest.json").read_text()).get("sources", {})
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    notes = args.out / "NOTES.md"  # the interpretation, written by hand, kept across regenerations
    readme = render_card(card, args.model_name) + ("\n" + notes.read_text(encoding="utf-8") if notes.exists() else "")
    (args.out / "README.md").write_text(readme, encoding="utf-8")
    print(json.dumps({k: card[k] for k in ("held_out", "ppl_by_context", "head_agreement", "speed")}, indent=2))
    return card


if __name__ == "__main__":
    main()
