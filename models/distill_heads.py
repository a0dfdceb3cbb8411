"""Post-hoc self-distillation of the multi-token heads on a frozen trunk (multi-token.md 6.2 P).

    python3 models/distill_heads.py --checkpoint runs/default/checkpoint.pt --out runs/distill \\
        --source final --heads 4 --generate 256 --ce-weight 0.1 --max-minutes 35 --steps 100000
    python3 models/distill_heads.py --out runs/distill --resume --max-minutes 50 --steps 100000   # continue

Only heads 2..n learn (their norm weight and W1/W2/W3); the trunk, the final norm and the
unembedding are frozen, so head 1's logits stay bit-identical. Head i at position t is trained
towards head 1's distribution at t+i-1, which is what greedy verification accepts:
KL(stopgrad(p_1(.|x<=t+i-1)) || q_i(.|z_t)), optionally plus a small cross-entropy on the window's
token x_{t+i} (--ce-weight).

Because the trunk is frozen, its hidden states for the training windows are computed once (float16,
under --cache) and the heads train over them for as many epochs as the time allows; the teacher
comes from the cached final hidden state through the frozen final norm and unembedding. A window is
seq-len corpus tokens, or (--generate G) a corpus prompt, BOS first, continued by G tokens of the
model's own greedy decoding through the runtime: the prefixes and next tokens that speculative
decoding actually sees.

OUT gets checkpoint.pt (train.py's format plus the distillation state; written atomically),
log.jsonl, model.gguf (same tokenizer and metadata as the checkpoint's export) and summary.json
with the teacher-forced self-agreement per head (argmax q_i at t == argmax p_1 at t+i-1) of the
checkpoint's own heads (before) and of the distilled ones (after), on the held-out book and code
tokens and on greedy continuations of held-out prompts (`*_greedy`: the text that speculative
decoding drafts; it predicts acceptance far better).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.export_gguf import export_checkpoint  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig, count_parameters  # noqa: E402
from models.train import save_atomic, validation_windows  # noqa: E402

HELD_OUT = ("book", "code")
CACHE_VERSION = 1


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path("runs/default/checkpoint.pt"),
                   help="train.py checkpoint whose trunk is frozen")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint, log, model.gguf, summary)")
    p.add_argument("--tokens", type=Path, help="training tokens .npy (default: train_tokens.npy next to the checkpoint)")
    p.add_argument("--heldout", type=Path, help="folder with heldout_{book,code}_tokens.npy (default: the checkpoint's)")
    p.add_argument("--cache", type=Path, help="hidden-state cache folder (default OUT/cache); runs with the same "
                   "checkpoint and data settings can share one")
    p.add_argument("--heads", type=int, default=0, help="heads including head 1 (0: the checkpoint's)")
    p.add_argument("--source", choices=("trunk", "final"), help="hidden state the heads read (default: the checkpoint's)")
    p.add_argument("--init", choices=("copy", "fresh"), default="copy",
                   help="heads the checkpoint has: copied, or re-initialised (W2 = 0) like new heads")
    p.add_argument("--head-hidden", type=int, default=0,
                   help="SwiGLU width of heads 2..n (0: the checkpoint's); heads of another width start fresh")
    p.add_argument("--ce-weight", type=float, default=0.0, help="weight of the cross-entropy on the window's token")
    p.add_argument("--generate", type=int, default=0,
                   help="tokens of each window that the model's greedy decoding writes after a corpus prompt")
    p.add_argument("--repeat-penalty", type=float, default=1.0,
                   help="repetition penalty of the greedy continuations (1: off); heads then learn to draft "
                        "for decoding that uses it, as the app's answers do (1.3)")
    p.add_argument("--repeat-last-n", type=int, default=128, help="window of --repeat-penalty")
    p.add_argument("--cache-tokens", type=int, default=1_000_000, help="tokens of training windows to cache")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="training time budget; the schedule decays over whichever of steps and time runs out first")
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--eval-windows", type=int, default=16, help="held-out windows per text for self-agreement")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch and the runtime)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export-dtype", default="q8_0", choices=("f32", "f16", "bf16", "q8_0"))
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    args = p.parse_args(argv)
    if not (args.repeat_penalty > 0 and math.isfinite(args.repeat_penalty)):
        p.error(f"--repeat-penalty must be a finite number above 0 (1: off), got {args.repeat_penalty}")
    return args


# ----------------------------------------------------------------------------------------------
# Models


def frozen_trunk(base: dict) -> Megalodon:
    """The checkpoint's trunk without extra heads, reading both hidden states (block L-1, block L)."""
    cfg = MegalodonConfig(**{**base["config"], "n_predict_heads": 1, "mtp_source": "trunk"})
    model = Megalodon(cfg)
    state = {k: v for k, v in base["model"].items() if not k.startswith("mtp.")}
    model.load_state_dict(state)
    model.requires_grad_(False)
    return model.eval()


def student_model(base: dict, heads: int, source: str, init: str, seed: int, head_hidden: int = 0) -> Megalodon:
    """The checkpoint's model with `heads` heads of width `head_hidden` (0: the checkpoint's) reading
    `source`: trunk and head 1 loaded from the checkpoint, heads 2..n copied (init copy, where the
    checkpoint has them in that width) or initialised with W2 = 0 (multi-token.md 1.3). Only the
    heads' parameters require gradients."""
    cfg = MegalodonConfig(**{**base["config"], "n_predict_heads": heads, "mtp_source": source,
                             "mtp_hidden_dim": head_hidden or base["config"]["mtp_hidden_dim"]})
    model = Megalodon(cfg)
    model.reset_parameters(seed)
    own = model.state_dict()

    def copied(head: str) -> bool:
        names = [k for k in own if k.startswith(f"mtp.{head}.")]
        return init == "copy" and all(k in base["model"] and base["model"][k].shape == own[k].shape for k in names)

    kept = {k: v for k, v in base["model"].items() if not k.startswith("mtp.") or (k in own and copied(k.split(".")[1]))}
    missing, unexpected = model.load_state_dict(kept, strict=False)
    assert not unexpected and all(k.startswith("mtp.") for k in missing), (missing, unexpected)
    model.requires_grad_(False)
    model.mtp.requires_grad_(True)
    return model


# ----------------------------------------------------------------------------------------------
# Hidden-state cache


def runtime_model(path: Path, threads: int):
    """The runtime on `path`; the native library may be mid-rebuild, so loading retries a few times."""
    from models import runtime
    for attempt in range(4):
        try:
            return runtime.Model(path, n_threads=threads)
        except OSError as err:
            if attempt == 3:
                raise
            print(f"runtime load failed ({err}); retrying in a minute", file=sys.stderr)
            time.sleep(60)


def continuation_penalty(args) -> dict:
    """The generate() options of --repeat-penalty (none when it is off)."""
    if args.repeat_penalty == 1.0:
        return {}
    return dict(repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n)


def greedy_continued(windows: np.ndarray, generate: int, args) -> np.ndarray:
    """The windows with their last `generate` tokens replaced by the greedy continuation (through
    the runtime, on the checkpoint's export) of a prompt of the rest that starts with BOS, as
    speculative_bench.py's prompts do."""
    gguf = args.out / "base.gguf"
    export_checkpoint(args.checkpoint, gguf, args.export_dtype)
    model = runtime_model(gguf, args.threads)
    bos = model.info()["bos_token"]
    prompt_len = windows.shape[1] - generate
    continued = np.array(windows, dtype=np.int64)
    started = time.time()
    for n, window in enumerate(continued):
        prompt = ([bos] + window[:prompt_len - 1].tolist()) if bos >= 0 else window[:prompt_len].tolist()
        result = model.generate(model.new_state(), prompt, generate, temperature=0.0, stop_at_eos=False,
                                **continuation_penalty(args))
        window[:] = prompt + result.tokens
        if (n + 1) % 200 == 0:
            print(f"generated {n + 1}/{len(continued)} windows, {time.time() - started:.0f} s", file=sys.stderr)
    model.close()
    return continued


def training_windows(train_tokens: np.ndarray, args) -> np.ndarray:
    """[N, seq_len] token windows at random corpus offsets, the last --generate tokens of each
    written by the model's greedy decoding."""
    n_windows = max(1, args.cache_tokens // args.seq_len)
    rng = np.random.default_rng(args.seed)
    starts = rng.integers(0, len(train_tokens) - args.seq_len, n_windows)
    windows = np.stack([np.asarray(train_tokens[s:s + args.seq_len], dtype=np.int64) for s in starts])
    return greedy_continued(windows, args.generate, args) if args.generate > 0 else windows


def cache_fingerprint(args) -> dict:
    stat = args.checkpoint.stat()
    tokens = args.tokens.stat()
    return {"version": CACHE_VERSION, "checkpoint": str(args.checkpoint.resolve()), "checkpoint_size": stat.st_size,
            "checkpoint_mtime": stat.st_mtime, "tokens": str(args.tokens.resolve()), "tokens_size": tokens.st_size,
            "cache_tokens": args.cache_tokens, "seq_len": args.seq_len, "generate": args.generate,
            "seed": args.seed, "generate_dtype": args.export_dtype if args.generate > 0 else None,
            **({"repeat_penalty": args.repeat_penalty, "repeat_last_n": args.repeat_last_n}
               if args.generate > 0 and args.repeat_penalty != 1.0 else {})}


def build_cache(base: dict, args, cache: Path) -> dict[str, np.ndarray]:
    """tokens [N, T], trunk/final hidden states [N, T, D] (float16) and the final norm's
    statistics mean/var [N, T, G] (float32), memory-mapped from `cache`; built when missing or
    made from other settings (meta.json, written last, records them)."""
    meta_path = cache / "meta.json"
    fingerprint = cache_fingerprint(args)
    names = ("tokens", "trunk", "final", "mean", "var")
    if meta_path.exists() and json.loads(meta_path.read_text()) == fingerprint:
        return {name: np.load(cache / f"{name}.npy", mmap_mode="r") for name in names}
    cache.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    started = time.time()
    train_tokens = np.load(args.tokens, mmap_mode="r")
    windows = training_windows(train_tokens, args)
    model = frozen_trunk(base)
    n, t, d, groups = len(windows), args.seq_len, model.cfg.d_model, model.cfg.norm_groups
    shapes = {"tokens": ((n, t), np.uint16 if model.cfg.vocab_size <= 65536 else np.int32),
              "trunk": ((n, t, d), np.float16), "final": ((n, t, d), np.float16),
              "mean": ((n, t, groups), np.float32), "var": ((n, t, groups), np.float32)}
    arrays = {name: np.lib.format.open_memmap(cache / f"{name}.tmp.npy", "w+", dtype, shape)
              for name, (shape, dtype) in shapes.items()}
    arrays["tokens"][:] = windows
    with torch.no_grad():
        for s in range(0, n, 8):
            trunk, final = model.trunk(torch.from_numpy(windows[s:s + 8]))
            mean, var = model.output.final_norm.stats(final)
            for name, value in (("trunk", trunk), ("final", final), ("mean", mean), ("var", var)):
                arrays[name][s:s + 8] = value.numpy()
            if (s // 8 + 1) % 50 == 0:
                print(f"cached {s + 8}/{n} windows, {time.time() - started:.0f} s", file=sys.stderr)
    for name, array in arrays.items():
        array.flush()
        (cache / f"{name}.tmp.npy").replace(cache / f"{name}.npy")
    meta_path.write_text(json.dumps(fingerprint, indent=2) + "\n")
    print(f"cache of {n} windows built in {time.time() - started:.0f} s", file=sys.stderr)
    return {name: np.load(cache / f"{name}.npy", mmap_mode="r") for name in names}


# ----------------------------------------------------------------------------------------------
# Training and evaluation


def distill_step(model: Megalodon, batch: dict[str, torch.Tensor], ce_weight: float) -> dict:
    """Loss Σ_i mean_t [KL(p_1(t+i-1) || q_i(t)) + ce_weight · CE(q_i(t), x_{t+i})] over positions
    t <= T-1-i (so both the teacher and the token are inside the window); runs the backward.
    The KL's gradient is that of the soft-target cross-entropy (the teacher's entropy is a
    constant), which PyTorch computes fused."""
    source, final, mean, var, tokens = (batch[k] for k in ("source", "final", "mean", "var", "tokens"))
    t = tokens.shape[1]
    with torch.no_grad():
        teacher_logits = model.logits(final, mean, var)
        log_norm = torch.logsumexp(teacher_logits, dim=-1, keepdim=True)
        teacher = (teacher_logits - log_norm).exp_()
        entropy = log_norm[..., 0] - (teacher * teacher_logits).sum(dim=-1)
        teacher_argmax = teacher_logits.argmax(dim=-1)
    stats: dict = {"loss": 0.0}
    for i in range(2, model.cfg.n_predict_heads + 1):
        n = t - i
        window = slice(i - 1, i - 1 + n)
        logits = model.logits(model.mtp[str(i)](source[:, :n]), mean[:, :n], var[:, :n]).reshape(-1, teacher.shape[-1])
        soft = F.cross_entropy(logits, teacher[:, window].reshape(logits.shape))
        loss = soft
        stats[f"kl_{i}"] = float(soft.detach()) - float(entropy[:, window].mean())
        stats["loss"] += stats[f"kl_{i}"]
        if ce_weight:
            ce = F.cross_entropy(logits, tokens[:, i:i + n].reshape(-1))
            loss = loss + ce_weight * ce
            stats[f"ce_{i}"] = float(ce.detach())
            stats["loss"] += ce_weight * stats[f"ce_{i}"]
        loss.backward()
        stats[f"agree_{i}"] = float((logits.detach().argmax(dim=-1) == teacher_argmax[:, window].reshape(-1))
                                    .float().mean())
    return stats


@torch.no_grad()
def self_agreement(model: Megalodon, windows: torch.Tensor, start: int = 0) -> dict:
    """Teacher-forced agreement per head i >= 2: argmax q_i at t == argmax p_1 at t+i-1 (fp32, a
    full forward from an empty state per window), and the mean KL, over positions t >= start."""
    agree: dict[int, list[float]] = {}
    kl: dict[int, list[float]] = {}
    for s in range(0, len(windows), 4):
        source, final = model.trunk(windows[s:s + 4])
        mean, var = model.output.final_norm.stats(final)
        teacher = F.log_softmax(model.logits(final, mean, var), dim=-1)
        t = windows.shape[1]
        for i in range(2, model.cfg.n_predict_heads + 1):
            n = t - i + 1
            log_q = F.log_softmax(model.logits(model.mtp[str(i)](source[:, start:n]), mean[:, start:n],
                                               var[:, start:n]), dim=-1)
            log_p = teacher[:, start + i - 1:]
            agree.setdefault(i, []).append(float((log_q.argmax(-1) == log_p.argmax(-1)).float().mean()))
            kl.setdefault(i, []).append(float((log_p.exp() * (log_p - log_q)).sum(-1).mean()))
    return {f"agree_{i}": round(float(np.mean(agree[i])), 4) for i in agree} | \
           {f"kl_{i}": round(float(np.mean(kl[i])), 4) for i in kl}


def lr_at(step: int, elapsed: float, args) -> float:
    """Linear warm-up, then cosine decay to 0.1x over the steps or the minutes, whichever ends first."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, args.steps - args.warmup)
    if args.max_minutes:
        progress = max(progress, elapsed / (args.max_minutes * 60))
    return args.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def load_checkpoint(path: Path, what: str) -> dict:
    """A train.py / distill_heads.py checkpoint, or a one-line error naming the file."""
    if not path.is_file():
        raise SystemExit(f"distill_heads.py: {what} {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # pickle, zip and torch errors alike: the file is not a checkpoint
        raise SystemExit(f"distill_heads.py: {what} {path} is not a readable checkpoint ({error})") from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
        raise SystemExit(f"distill_heads.py: {what} {path} is not a train.py checkpoint (no config and model)")
    return checkpoint


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = args.out / "checkpoint.pt"
    resumed = load_checkpoint(checkpoint_path, "the run's checkpoint") \
        if args.resume and checkpoint_path.exists() else None
    if resumed:  # the run's own settings, as train.py's resume does; time and steps may be extended
        saved = resumed["distill"]["args"]
        for key, value in saved.items():
            if key not in ("resume", "max_minutes", "steps", "eval_every", "save_every", "threads"):
                setattr(args, key, Path(value) if key in ("checkpoint", "out", "tokens", "heldout", "cache") and value
                        else value)
    base = load_checkpoint(args.checkpoint, "--checkpoint")
    args.tokens = args.tokens or args.checkpoint.parent / "train_tokens.npy"
    args.heldout = args.heldout or args.checkpoint.parent
    args.cache = args.cache or args.out / "cache"
    args.heads = args.heads or base["config"].get("n_predict_heads", 1)
    args.source = args.source or base["config"].get("mtp_source", "trunk")
    if args.heads < 2:
        raise SystemExit("distill_heads.py: --heads must be at least 2 (head 1 plus an extra head)")
    if args.generate >= args.seq_len:
        raise SystemExit("distill_heads.py: --generate must leave a prompt (less than --seq-len)")

    model = student_model(base, args.heads, args.source, args.init, args.seed, args.head_hidden)
    # Held-out sets as (windows, first position scored): the corpus text teacher-forced, and the
    # same windows' first halves continued greedily, scored where the drafts are of generated text.
    held_out = {}
    for name in HELD_OUT:
        if (path := args.heldout / f"heldout_{name}_tokens.npy").exists():
            windows = validation_windows(np.load(path, mmap_mode="r"), args.seq_len, args.eval_windows).numpy()
            half = args.seq_len // 2
            held_out[name] = (torch.from_numpy(windows), 0)
            held_out[f"{name}_greedy"] = (torch.from_numpy(greedy_continued(windows, half, args)), half - 1)
    cache = build_cache(base, args, args.cache)
    n_windows = len(cache["tokens"])

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)
    rng = np.random.default_rng(args.seed + 1)
    step, elapsed, before = 0, 0.0, None
    if resumed:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["distill"]["optimizer"])
        rng.bit_generator.state = resumed["distill"]["data_rng"]
        step, elapsed, before = resumed["distill"]["step"], resumed["distill"]["elapsed_s"], resumed["distill"]["before"]
    else:
        original = Megalodon(MegalodonConfig(**base["config"]))
        original.load_state_dict(base["model"])
        before = {name: self_agreement(original.eval(), *w) for name, w in held_out.items()}
        print(f"self-agreement of the checkpoint's heads: {json.dumps(before)}", file=sys.stderr)
    run_args = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}

    def save() -> None:
        save_atomic({"arch": "megalodon", "config": model.cfg.to_dict(), "model": model.state_dict(),
                     "tokenizer_keys": base["tokenizer_keys"], "name": base.get("name", "megalodon"),
                     "parameters": count_parameters(model), "summary": base.get("summary", {}),
                     "distill": {"args": run_args, "optimizer": optimizer.state_dict(),
                                 "data_rng": rng.bit_generator.state, "step": step, "elapsed_s": elapsed,
                                 "before": before}}, checkpoint_path)

    log = (args.out / "log.jsonl").open("a", encoding="utf-8")
    started = time.time() - elapsed
    model.train()
    while step < args.steps:
        lr = lr_at(step, elapsed, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = np.sort(rng.integers(0, n_windows, args.batch))
        batch = {"source": torch.from_numpy(cache[args.source][idx]).float(),
                 "final": torch.from_numpy(cache["final"][idx]).float(),
                 "mean": torch.from_numpy(cache["mean"][idx]), "var": torch.from_numpy(cache["var"][idx]),
                 "tokens": torch.from_numpy(cache["tokens"][idx].astype(np.int64))}
        stats = distill_step(model, batch, args.ce_weight)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.time() - started
        record = {"step": step, "lr": lr, "elapsed_s": round(elapsed, 1), **{k: round(v, 5) for k, v in stats.items()}}
        out_of_time = bool(args.max_minutes) and elapsed > args.max_minutes * 60
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            model.eval()
            for name, windows in held_out.items():
                record.update({f"val_{name}_{k}": v for k, v in self_agreement(model, *windows).items()})
            model.train()
        log.write(json.dumps(record) + "\n")
        log.flush()
        if step % 20 == 0 or any(k.startswith("val_") for k in record):
            print(" ".join(f"{k}={v}" for k, v in record.items() if not k.startswith("ce_")), file=sys.stderr)
        if step % args.save_every == 0 or step == args.steps or out_of_time:
            save()
        if out_of_time:
            print(f"stopping after {args.max_minutes} minutes at step {step}", file=sys.stderr)
            break
    log.close()
    save()
    model.eval()
    after = {name: self_agreement(model, *w) for name, w in held_out.items()}
    notes = export_checkpoint(checkpoint_path, args.out / "model.gguf", args.export_dtype)
    summary = {"checkpoint": str(args.checkpoint), "heads": args.heads, "source": args.source, "init": args.init,
               "head_hidden": model.cfg.mtp_hidden_dim,
               "ce_weight": args.ce_weight, "generate": args.generate, "repeat_penalty": args.repeat_penalty,
               "repeat_last_n": args.repeat_last_n, "cache_windows": n_windows,
               "seq_len": args.seq_len, "batch": args.batch, "steps": step, "train_minutes": round(elapsed / 60, 2),
               "positions_trained": step * args.batch * args.seq_len, "lr": args.lr, "seed": args.seed,
               "self_agreement_before": before, "self_agreement_after": after,
               "model": str(args.out / "model.gguf"), "export_notes": notes, "cache": str(args.cache)}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"self-agreement after: {json.dumps(after)}\nwrote {args.out / 'model.gguf'}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
