"""The whole training pipeline on a tiny corpus: corpus build, tokenizer, training with the
multi-token loss, an interrupted run resumed, export, and the runtime running the result."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from models import runtime  # noqa: E402
from models import train  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig  # noqa: E402


def test_smoke_run_interrupted_resumed_exported_and_run(tmp_path, runtime_library):
    out = tmp_path / "run"
    first = train.main(["--smoke", "--out", str(out), "--max-minutes", "0.0001", "--export-dtype", "f32"])
    assert not first["completed_schedule"] and first["steps"] >= 1
    summary = train.main(["--smoke", "--out", str(out), "--resume", "--export-dtype", "f32"])
    assert summary["completed_schedule"] and summary["steps"] == 30

    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 31))      # each step once across the two runs
    early = np.mean([r["ce_1"] for r in log[:5]])
    late = np.mean([r["ce_1"] for r in log[-5:]])
    assert late < early - 0.3, (early, late)

    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    model = Megalodon(MegalodonConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    tokens = np.random.default_rng(0).integers(0, model.cfg.vocab_size, 50).tolist()
    with torch.no_grad():
        expected = model(torch.tensor([tokens]))[0].numpy()
    with runtime.Model(out / "model.gguf") as rt:
        got = rt.eval(rt.new_state(), tokens, n_heads=model.cfg.n_predict_heads)
        text = "def parse(line):\n    return line.split()\n"
        assert rt.detokenize_text(rt.tokenize(text)) == text
    assert np.abs(got - expected).max() / np.abs(expected).max() <= 1e-4
