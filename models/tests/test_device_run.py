"""models/device_run.py end to end on the CPU: the corpus packed, a smoke training run through the
`train` command, its weights back in parts under the size limit, joined and exported, and the
runtime computing what the returned (bfloat16) weights compute."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from models import device_run, runtime, train  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig  # noqa: E402

SMOKE = ["--preset", "smoke", "--steps", "12", "--batch", "4", "--seq-len", "64", "--eval-every", "6"]


def test_packed_trained_returned_in_parts_and_unpacked(tmp_path, monkeypatch, runtime_library):
    corpus = train.smoke_corpus(tmp_path)
    packed = device_run.pack(corpus, tmp_path / "device" / "corpus.tar.xz")
    out = tmp_path / "OUT"
    out.mkdir()
    monkeypatch.setattr(device_run, "PART_BYTES", 64 << 10)  # several parts from a small model
    assert device_run.train(5.0, SMOKE, out, packed) == 0
    parts = sorted(out.glob("weights.pt.part*"))
    assert len(parts) > 1 and all(p.stat().st_size <= 64 << 10 for p in parts)
    assert json.loads((out / "summary.json").read_text())["steps"] == 12
    assert len((out / "log.jsonl").read_text().splitlines()) == 12

    run = tmp_path / "run"
    gguf = device_run.unpack(out, run, dtype="f32")
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    assert "optimizer" not in checkpoint and checkpoint["summary"]["steps"] == 12
    model = Megalodon(MegalodonConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    # The weights are the run's, rounded to bfloat16: every value is representable in bfloat16.
    weight = checkpoint["model"]["embed.weight"]
    assert torch.equal(weight, weight.to(torch.bfloat16).float())
    tokens = np.random.default_rng(0).integers(0, model.cfg.vocab_size, 40).tolist()
    with torch.no_grad():
        expected = model(torch.tensor([tokens]))[0].numpy()
    with runtime.Model(gguf) as rt:
        got = rt.eval(rt.new_state(), tokens, n_heads=model.cfg.n_predict_heads)
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4


def test_too_many_parts_and_missing_parts_are_errors(tmp_path, monkeypatch):
    model = Megalodon(MegalodonConfig(**{**train.PRESETS["smoke"], "vocab_size": 512}))
    torch.save({"arch": "megalodon", "config": model.cfg.to_dict(), "model": model.state_dict(), "optimizer": {}},
               tmp_path / "checkpoint.pt")
    monkeypatch.setattr(device_run, "PART_BYTES", 1 << 10)
    with pytest.raises(SystemExit, match="do not come back in 6 files"):
        device_run.slim_parts(tmp_path / "checkpoint.pt", tmp_path)
    monkeypatch.setattr(device_run, "PART_BYTES", 1 << 30)
    size = device_run.slim_parts(tmp_path / "checkpoint.pt", tmp_path)[0].stat().st_size
    monkeypatch.setattr(device_run, "PART_BYTES", size // 3 + 1)
    parts = device_run.slim_parts(tmp_path / "checkpoint.pt", tmp_path)
    assert len(parts) == 3 and sum(p.stat().st_size for p in parts) == size
    parts[0].unlink()
    with pytest.raises(SystemExit, match="are not 0"):
        device_run.unpack(tmp_path, tmp_path / "run")
    with pytest.raises(SystemExit, match="no weights.pt.part"):
        device_run.unpack(tmp_path / "run", tmp_path / "run2")
