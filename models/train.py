"""Trains MEGALODON with multi-token heads (or the transformer baseline) on a token corpus.

    python3 models/train.py --corpus models/data/out --out runs/default --preset default --steps 3000
    python3 models/train.py --corpus models/data/out --out runs/default --resume      # continue
    python3 models/train.py --smoke --out /tmp/smoke                                  # whole pipeline, 1 min

The corpus folder is what models/data/build_corpus.py writes (train.txt, heldout_*.txt) plus the
tokenizer (tokenizer.json, from models/train_tokenizer.py). Tokens are cached next to the run.
Every `--save-every` steps and at the end the run writes checkpoint.pt atomically (model,
optimizer, data position, RNG), appends to log.jsonl, and finally exports model.gguf.
On a CUDA device the forward runs under bf16 autocast; on the CPU in fp32.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.export_gguf import export_checkpoint  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig, count_parameters, head_weights, multi_token_loss  # noqa: E402
from models.transformer_baseline import TransformerConfig, TransformerLM  # noqa: E402

SEPARATOR = "\n<|endoftext|>\n"
EOT = "<|endoftext|>"

PRESETS = {
    # The default model: small enough to ingest at thousands of tokens/s on two laptop cores.
    # Sized for what two CPU cores can train in an hour (compute-optimal there is ~1-3M parameters).
    "default": dict(d_model=192, n_layers=4, cema_ndim=16, n_attn_heads=2, z_dim=96, value_dim=384,
                    ffn_dim=512, chunk_size=256, norm_groups=16, n_predict_heads=3, mtp_hidden_dim=192,
                    tied_embedding=True),
    # A larger recipe for a GPU (about 30M parameters with a 16k vocabulary).
    "base": dict(d_model=512, n_layers=8, cema_ndim=16, n_attn_heads=4, z_dim=256, value_dim=1024,
                 ffn_dim=1024, chunk_size=512, norm_groups=32, n_predict_heads=4, mtp_hidden_dim=512,
                 tied_embedding=True),
    "smoke": dict(d_model=32, n_layers=2, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32, ffn_dim=64,
                  chunk_size=32, norm_groups=4, n_predict_heads=3, mtp_hidden_dim=32, tied_embedding=True),
}


# ----------------------------------------------------------------------------------------------
# Data


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(path))


def tokenize_file(tokenizer, text_path: Path, cache: Path) -> np.ndarray:
    """Token ids of a text file whose documents are joined by SEPARATOR, each document followed
    by the end-of-text token. Cached as .npy (rebuilt when the text or tokenizer is newer)."""
    if cache.exists() and cache.stat().st_mtime >= text_path.stat().st_mtime:
        return np.load(cache, mmap_mode="r")
    eot = tokenizer.token_to_id(EOT)
    text = text_path.read_text(encoding="utf-8")
    docs = [d for d in text.split(SEPARATOR) if d.strip()]
    ids: list[int] = []
    for start in range(0, len(docs), 256):
        for enc in tokenizer.encode_batch(docs[start:start + 256], add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eot)
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 65536 else np.int32
    array = np.asarray(ids, dtype=dtype)
    tmp = cache.with_name(cache.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, cache)
    return array


class Batches:
    """Random windows of `length` tokens; the generator state is part of the checkpoint."""

    def __init__(self, tokens: np.ndarray, batch: int, length: int, seed: int):
        if len(tokens) <= length:
            raise ValueError(f"the corpus has {len(tokens)} tokens, fewer than one window of {length}")
        self.tokens, self.batch, self.length = tokens, batch, length
        self.rng = np.random.default_rng(seed)

    def next(self) -> torch.Tensor:
        starts = self.rng.integers(0, len(self.tokens) - self.length, self.batch)
        return torch.from_numpy(np.stack([np.asarray(self.tokens[s:s + self.length], dtype=np.int64)
                                          for s in starts]))


def validation_windows(tokens: np.ndarray, length: int, count: int) -> torch.Tensor:
    """Evenly spaced windows over a held-out text (the same ones for every model)."""
    count = max(1, min(count, len(tokens) // length))
    starts = np.linspace(0, len(tokens) - length - 1, count).astype(np.int64)
    return torch.from_numpy(np.stack([np.asarray(tokens[s:s + length], dtype=np.int64) for s in starts]))


# ----------------------------------------------------------------------------------------------
# Models


def build_model(arch: str, cfg_dict: dict):
    if arch == "megalodon":
        model = Megalodon(MegalodonConfig(**cfg_dict))
    elif arch == "transformer":
        model = TransformerLM(TransformerConfig(**cfg_dict))
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    return model


def matched_transformer(mega_cfg: MegalodonConfig) -> dict:
    """A transformer config with as many parameters as the MEGALODON trunk (heads 2..n
    excluded): same width, depth and vocabulary, FFN width solved for the count."""
    reference = Megalodon(MegalodonConfig(**{**mega_cfg.to_dict(), "n_predict_heads": 1}))
    target = sum(p.numel() for p in reference.parameters())
    d, layers = mega_cfg.d_model, mega_cfg.n_layers
    fixed = mega_cfg.vocab_size * d + d + layers * (4 * d * d + 2 * d)
    ffn = max(8, round((target - fixed) / (layers * 3 * d) / 8) * 8)
    heads = max(1, d // 64)
    return TransformerConfig(vocab_size=mega_cfg.vocab_size, d_model=d, n_layers=layers, n_heads=heads,
                             ffn_dim=ffn, rope_base=mega_cfg.rope_base).to_dict()


def loss_step(arch: str, model, batch: torch.Tensor, weights: list[float], backward: bool = True) -> dict:
    if arch == "megalodon":
        return multi_token_loss(model, batch, weights, backward=backward)
    logits = model(batch[:, :-1])
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
    if backward:
        ce.backward()
    acc = (logits.argmax(-1) == batch[:, 1:]).float().mean().item()
    return {"loss": ce.item(), "ce_1": ce.item(), "acc_1": acc}


@torch.no_grad()
def evaluate(arch: str, model, windows: torch.Tensor, n_heads: int, device, autocast) -> dict:
    model.eval()
    totals: dict[str, float] = {}
    for i in range(0, len(windows), 4):
        with autocast():
            stats = loss_step(arch, model, windows[i:i + 4].to(device), [1.0] * n_heads, backward=False)
        for k, v in stats.items():
            totals[k] = totals.get(k, 0.0) + v * len(windows[i:i + 4])
    model.train()
    return {k: v / len(windows) for k, v in totals.items() if k != "loss"}


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, help="folder with train.txt, heldout_*.txt and tokenizer.json")
    p.add_argument("--tokenizer", type=Path, help="tokenizer.json (default: CORPUS/tokenizer.json)")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log, model.gguf)")
    p.add_argument("--arch", choices=("megalodon", "transformer"), default="megalodon")
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--config", type=json.loads, default={}, help="JSON overrides of the preset")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--extra-heads-weight", type=float, default=0.3,
                   help="λ of heads 2..n for the first 70%% of steps (0.1 after; multi-token.md 6.2 J)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (and save) after this long; 0 = no limit")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dtype", default="q8_0", choices=("f32", "f16", "bf16", "q8_0"))
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--smoke", action="store_true", help="tiny corpus, tiny model, a few steps: the whole pipeline")
    return p.parse_args(argv)


def smoke_corpus(out: Path) -> Path:
    """A tiny corpus and tokenizer under OUT/corpus (seconds), through the real scripts."""
    import subprocess
    root = Path(__file__).resolve().parent
    corpus = out / "corpus"
    if not (corpus / "tokenizer.json").exists():
        subprocess.run([sys.executable, str(root / "data" / "build_corpus.py"), "--smoke", "--out", str(corpus)],
                       check=True)
        subprocess.run([sys.executable, str(root / "train_tokenizer.py"), str(corpus / "train.txt"),
                        "--vocab-size", "512", "--out", str(corpus / "tokenizer.json")], check=True)
    return corpus


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.smoke:
        args.corpus = smoke_corpus(args.out)
        args.preset, args.steps, args.batch, args.seq_len = "smoke", 30, 4, 64
        args.eval_every = args.save_every = 15
        args.warmup = 5
    if args.corpus is None:
        raise SystemExit("train.py: --corpus is required (or --smoke)")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    tokenizer_path = args.tokenizer or args.corpus / "tokenizer.json"
    tokenizer = load_tokenizer(tokenizer_path)
    from models.train_tokenizer import gguf_tokenizer_keys
    tokenizer_keys = gguf_tokenizer_keys(tokenizer_path)
    train_tokens = tokenize_file(tokenizer, args.corpus / "train.txt", args.out / "train_tokens.npy")
    held_out = {}
    for name in ("prose", "code"):
        path = args.corpus / f"heldout_{name}.txt"
        if path.exists():
            held_out[name] = tokenize_file(tokenizer, path, args.out / f"heldout_{name}_tokens.npy")

    checkpoint_path = args.out / "checkpoint.pt"
    if args.resume and checkpoint_path.exists():
        ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        arch, cfg_dict, run = ckpt["arch"], ckpt["config"], ckpt["run"]
    else:
        ckpt = None
        arch = args.arch
        mega_cfg = MegalodonConfig(**{**PRESETS[args.preset], **args.config, "vocab_size": tokenizer.get_vocab_size()})
        cfg_dict = mega_cfg.to_dict() if arch == "megalodon" else matched_transformer(mega_cfg)
        run = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    n_heads = cfg_dict.get("n_predict_heads", 1) if arch == "megalodon" else 1
    model = build_model(arch, cfg_dict)
    if ckpt:
        model.load_state_dict(ckpt["model"])
    else:
        model.reset_parameters(run["seed"])
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=run["lr"], betas=(0.9, 0.95),
                                  weight_decay=run["weight_decay"])
    batches = Batches(train_tokens, run["batch"], run["seq_len"] + n_heads, run["seed"])
    step, tokens_seen, elapsed = 0, 0, 0.0
    if ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
        batches.rng.bit_generator.state = ckpt["data_rng"]
        step, tokens_seen, elapsed = ckpt["step"], ckpt["tokens_seen"], ckpt["elapsed_s"]
    valid = {name: validation_windows(t, run["seq_len"] + n_heads, 32 if not args.smoke else 4)
             for name, t in held_out.items()}
    params = count_parameters(model) if arch == "megalodon" else {
        "total": sum(p.numel() for p in model.parameters())}
    print(f"{arch}: {params['total'] / 1e6:.2f}M parameters, {len(train_tokens) / 1e6:.1f}M training tokens, "
          f"device {device}, threads {torch.get_num_threads()}", file=sys.stderr)

    def checkpoint(summary: dict | None = None) -> None:
        save_atomic({"arch": arch, "config": cfg_dict, "run": run, "model": model.state_dict(),
                     "optimizer": optimizer.state_dict(), "data_rng": batches.rng.bit_generator.state,
                     "step": step, "tokens_seen": tokens_seen, "elapsed_s": elapsed,
                     "tokenizer_keys": tokenizer_keys, "name": f"folio-{arch}-{cfg_dict['d_model']}x{cfg_dict['n_layers']}",
                     "parameters": params, "summary": summary or {}}, checkpoint_path)

    log = (args.out / "log.jsonl").open("a", encoding="utf-8")
    started = time.time() - elapsed
    total_steps = run["steps"]
    while step < total_steps:
        lr = lr_at(step, total_steps, run["lr"], run["warmup"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        lam = run["extra_heads_weight"] if step < 0.7 * total_steps else min(0.1, run["extra_heads_weight"])
        batch = batches.next().to(device)
        with autocast():
            stats = loss_step(arch, model, batch, head_weights(n_heads, lam))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += run["batch"] * run["seq_len"]
        elapsed = time.time() - started
        record = {"step": step, "tokens": tokens_seen, "lr": lr, "elapsed_s": round(elapsed, 1),
                  **{k: round(v, 5) for k, v in stats.items()}}
        if step % run["eval_every"] == 0 or step == total_steps:
            for name, windows in valid.items():
                for k, v in evaluate(arch, model, windows, n_heads, device, autocast).items():
                    record[f"val_{name}_{k}"] = round(v, 5)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if step % 10 == 0 or "val_prose_ce_1" in record:
            print(" ".join(f"{k}={v}" for k, v in record.items() if k in ("step", "elapsed_s", "loss", "ce_1")
                           or k.startswith("val_") and k.endswith("ce_1")), file=sys.stderr)
        out_of_time = args.max_minutes and elapsed > args.max_minutes * 60
        if step % run["save_every"] == 0 or step == total_steps or out_of_time:
            checkpoint()
        if out_of_time:
            print(f"stopping after {args.max_minutes} minutes at step {step}; --resume continues", file=sys.stderr)
            break
    log.close()
    summary = {"arch": arch, "steps": step, "batch": run["batch"], "seq_len": run["seq_len"], "tokens_seen": tokens_seen, "train_seconds": round(elapsed, 1),
               "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
               "parameters": params}
    summary["completed_schedule"] = step == total_steps
    checkpoint(summary)
    if arch == "megalodon":
        for note in export_checkpoint(checkpoint_path, args.out / "model.gguf", args.export_dtype):
            print(note, file=sys.stderr)
        print(f"wrote {args.out / 'model.gguf'}", file=sys.stderr)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


if __name__ == "__main__":
    main()
