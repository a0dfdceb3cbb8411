"""Training on a lent GPU machine within the device tool's limits (toolchain.md): what travels in is
at most 64 MiB, a command runs at most 10 minutes, and at most 8 files of 16 MiB each come back.

    python3 models/device_run.py pack [--corpus models/data/out]       # here: build/device/corpus.tar.xz
    # on the device, carrying build/device (its python3 has PyTorch):
    python3 models/device_run.py train --minutes 8 -- --preset base --steps 4000 --batch 32 --seq-len 1024
    python3 models/device_run.py unpack FILES_AT runs/gpu              # here: the run folder, model.gguf

`pack` compresses the corpus (train.txt, heldout_*.txt, tokenizer.json; about 4:1). `train`
unpacks it on the device, runs models/train.py with the options after `--` (--max-minutes from
--minutes), and writes to $OUT what the run needs here: its weights as bfloat16 in parts under
16 MiB (an fp32 checkpoint with the optimizer state is 12 bytes per parameter and cannot come
back), log.jsonl and summary.json. `unpack` joins the parts into RUN/checkpoint.pt (train.py's
format, without the optimizer state) and exports RUN/model.gguf (q8_0), so model_card.py and
distill_heads.py take the run as they take one trained here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACK = REPO / "build" / "device" / "corpus.tar.xz"
CORPUS_FILES = ("train.txt", "tokenizer.json")
PART_BYTES = 15 << 20  # under the 16 MiB a returned file may have
MAX_PARTS = 6          # with log.jsonl and summary.json: the 8 files that may come back
WEIGHTS = "weights.pt.part"


def pack(corpus: Path, out: Path = PACK) -> Path:
    missing = [name for name in CORPUS_FILES if not (corpus / name).is_file()]
    if missing:
        raise SystemExit(f"device_run.py: {corpus} has no {', '.join(missing)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=6) as tar:
        for path in sorted(corpus.iterdir()):
            if path.name in CORPUS_FILES or (path.name.startswith("heldout_") and path.suffix == ".txt"):
                tar.add(path, arcname=path.name)
    os.replace(tmp, out)
    return out


def slim_parts(checkpoint_path: Path, out: Path) -> list[Path]:
    """The checkpoint's weights as bfloat16, without the optimizer state, in parts under 16 MiB."""
    import torch
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    slim = {key: checkpoint[key] for key in ("arch", "config", "run", "step", "tokens_seen", "elapsed_s",
                                             "tokenizer_keys", "name", "parameters", "summary") if key in checkpoint}
    slim["model"] = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    data = buffer.getvalue()
    parts = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    if len(parts) > MAX_PARTS:
        raise SystemExit(f"device_run.py: {len(data) / 2**20:.0f} MiB of bfloat16 weights do not come back in "
                         f"{MAX_PARTS} files of {PART_BYTES >> 20} MiB: train a smaller model")
    for stale in out.glob(f"{WEIGHTS}*"):
        stale.unlink()
    paths = []
    for n, part in enumerate(parts):
        path = out / f"{WEIGHTS}{n}"
        path.write_bytes(part)
        paths.append(path)
    return paths


def train(minutes: float, train_args: list[str], out: Path, pack_path: Path = PACK) -> int:
    """Unpacks the corpus, runs train.py, and writes the weight parts, log and summary to `out`."""
    if not out.is_dir():
        raise SystemExit(f"device_run.py train: {out} (the folder that comes back) does not exist")
    if not pack_path.is_file():
        raise SystemExit(f"device_run.py train: no {pack_path} (run `pack` here and carry build/device)")
    work = Path(tempfile.mkdtemp(prefix="device-run-"))
    corpus, run = work / "corpus", work / "run"
    with tarfile.open(pack_path, "r:xz") as tar:
        try:
            tar.extractall(corpus, filter="data")
        except TypeError:  # a Python without extraction filters; the archive is our own
            tar.extractall(corpus)
    command = [sys.executable, str(REPO / "models" / "train.py"), "--corpus", str(corpus), "--out", str(run),
               "--max-minutes", str(minutes), *train_args]
    print(" ".join(command), file=sys.stderr, flush=True)
    status = subprocess.run(command).returncode
    for name in ("log.jsonl", "summary.json"):
        if (run / name).exists():
            shutil.copyfile(run / name, out / name)
    if (run / "checkpoint.pt").exists():
        parts = slim_parts(run / "checkpoint.pt", out)
        print(f"weights: {len(parts)} parts in {out}", file=sys.stderr)
    if (run / "summary.json").exists():  # the short table the reply's tail holds
        summary = json.loads((run / "summary.json").read_text())
        print(json.dumps({k: summary.get(k) for k in ("steps", "tokens_seen", "train_seconds", "device",
                                                          "completed_schedule")}))
    return status


def unpack(files_at: Path, run: Path, dtype: str = "q8_0") -> Path:
    import torch
    from models.export_gguf import export_checkpoint
    parts = sorted(files_at.glob(f"{WEIGHTS}*"), key=lambda p: int(p.name[len(WEIGHTS):]))
    if not parts:
        raise SystemExit(f"device_run.py unpack: no {WEIGHTS}* in {files_at}")
    if [int(p.name[len(WEIGHTS):]) for p in parts] != list(range(len(parts))):
        raise SystemExit(f"device_run.py unpack: weight parts in {files_at} are not 0..{len(parts) - 1}")
    data = b"".join(p.read_bytes() for p in parts)
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    checkpoint["model"] = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    run.mkdir(parents=True, exist_ok=True)
    tmp = run / "checkpoint.pt.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, run / "checkpoint.pt")
    for name in ("log.jsonl", "summary.json"):
        if (files_at / name).exists():
            shutil.copyfile(files_at / name, run / name)
    for note in export_checkpoint(run / "checkpoint.pt", run / "model.gguf", dtype):
        print(note, file=sys.stderr)
    return run / "model.gguf"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="compress the corpus into build/device/corpus.tar.xz")
    p.add_argument("--corpus", type=Path, default=REPO / "models" / "data" / "out")
    p.add_argument("--out", type=Path, default=PACK)
    p = sub.add_parser("train", help="on the device: train, then write the weights to $OUT")
    p.add_argument("--minutes", type=float, default=8.0, help="training time (train.py --max-minutes)")
    p.add_argument("train_args", nargs=argparse.REMAINDER, help="-- then train.py's options")
    p = sub.add_parser("unpack", help="join the returned weights into RUN and export RUN/model.gguf")
    p.add_argument("files_at", type=Path)
    p.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    if args.command == "pack":
        path = pack(args.corpus, args.out)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB); carry build/device")
        return 0
    if args.command == "train":
        extra = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
        if not os.environ.get("OUT"):
            parser.error("train: $OUT (the folder that comes back) is not set")
        return train(args.minutes, extra, Path(os.environ["OUT"]))
    print(f"wrote {unpack(args.files_at, args.run)}")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(REPO))
    sys.exit(main())
