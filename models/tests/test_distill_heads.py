"""Post-hoc self-distillation of the extra heads (models/distill_heads.py) on a tiny random
checkpoint: the trunk and head 1 come out bit-identical (in PyTorch and through the runtime), the
distillation loss goes down, and a 4th head on the final hidden state exports and runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import distill_heads, runtime  # noqa: E402
from models.export_gguf import export_checkpoint  # noqa: E402
from models.make_tiny import gpt2_vocab  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig  # noqa: E402

CONFIG = dict(vocab_size=300, d_model=32, n_layers=2, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32,
              ffn_dim=64, chunk_size=16, norm_groups=4, n_predict_heads=3, mtp_hidden_dim=32)
SETTINGS = ["--seq-len", "48", "--batch", "4", "--cache-tokens", "3072", "--lr", "3e-3", "--warmup", "5",
            "--eval-windows", "4", "--eval-every", "1000", "--export-dtype", "f32"]


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    """A train.py-style checkpoint of a random model (trained-looking scales: weights perturbed
    from the initialisation, heads' W2 non-zero) with corpus and held-out tokens beside it."""
    folder = tmp_path_factory.mktemp("base")
    cfg = MegalodonConfig(**CONFIG)
    model = Megalodon(cfg)
    model.reset_parameters(3)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "cema" not in name:
                p.add_(torch.randn(p.shape, generator=gen) * (1.0 / np.sqrt(p.shape[-1]) if p.dim() > 1 else 0.1))
    rng = np.random.default_rng(5)
    # Repetitive text (random phrases repeated) gives the heads something predictable to learn.
    phrases = rng.integers(0, cfg.vocab_size - 1, (40, 6))
    corpus = phrases[rng.integers(0, 40, 3000)].reshape(-1).astype(np.uint16)
    np.save(folder / "train_tokens.npy", corpus)
    for name in ("book", "code"):
        np.save(folder / f"heldout_{name}_tokens.npy", phrases[rng.integers(0, 40, 100)].reshape(-1).astype(np.uint16))
    path = folder / "checkpoint.pt"
    torch.save({"arch": "megalodon", "config": cfg.to_dict(), "model": model.state_dict(),
                "tokenizer_keys": gpt2_vocab(cfg.vocab_size, rng), "name": "tiny", "summary": {"steps": 1}}, path)
    return path


@pytest.fixture(scope="module")
def distilled(base_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("distilled")
    summary = distill_heads.main(["--checkpoint", str(base_checkpoint), "--out", str(out), "--steps", "40",
                                  *SETTINGS])
    return out, summary


def load_model(path) -> Megalodon:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Megalodon(MegalodonConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def test_trunk_and_head_1_unchanged_and_loss_decreases(base_checkpoint, distilled):
    out, summary = distilled
    before = torch.load(base_checkpoint, weights_only=False)["model"]
    after = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    assert sorted(before) == sorted(after)
    for name, value in before.items():
        if name.startswith("mtp."):
            assert not torch.equal(value, after[name]), f"{name} did not train"
        else:
            assert torch.equal(value, after[name]), f"{name} changed"
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 41))
    early, late = np.mean([r["loss"] for r in log[:5]]), np.mean([r["loss"] for r in log[-5:]])
    assert late < 0.8 * early, (early, late)
    for name in ("book", "code", "book_greedy", "code_greedy"):
        assert set(summary["self_agreement_after"][name]) == {"agree_2", "agree_3", "kl_2", "kl_3"}
        assert summary["self_agreement_after"][name]["kl_2"] < summary["self_agreement_before"][name]["kl_2"]


def test_exported_head_1_logits_equal_the_original_through_the_runtime(base_checkpoint, distilled, tmp_path,
                                                                         runtime_library):
    out, _ = distilled
    original = tmp_path / "original.gguf"
    export_checkpoint(base_checkpoint, original, "f32")
    tokens = np.random.default_rng(6).integers(0, CONFIG["vocab_size"], 70).tolist()
    with runtime.Model(original, n_threads=1) as rt:
        expected = rt.eval(rt.new_state(), tokens)
    with runtime.Model(out / "model.gguf", n_threads=1) as rt:
        got = rt.eval(rt.new_state(), tokens)
        heads = rt.eval(rt.new_state(), tokens, n_heads=3)
    assert np.array_equal(got, expected)
    # The distilled heads run in the runtime as in PyTorch.
    with torch.no_grad():
        torch_heads = load_model(out / "checkpoint.pt")(torch.tensor([tokens]))[0].numpy()
    assert np.abs(heads - torch_heads).max() <= 1e-4 * np.abs(torch_heads).max()


def test_a_fourth_head_on_the_final_state_exports_and_runs(base_checkpoint, tmp_path, runtime_library):
    out = tmp_path / "four"
    summary = distill_heads.main(["--checkpoint", str(base_checkpoint), "--out", str(out), "--heads", "4",
                                  "--source", "final", "--generate", "16", "--ce-weight", "0.1", "--steps", "8",
                                  *SETTINGS])
    assert summary["heads"] == 4 and "agree_4" in summary["self_agreement_after"]["book"]
    model = load_model(out / "checkpoint.pt")
    assert model.cfg.n_predict_heads == 4 and model.cfg.mtp_source == "final"
    tokens = np.random.default_rng(7).integers(0, CONFIG["vocab_size"], 40).tolist()
    with torch.no_grad():
        expected = model(torch.tensor([tokens]))[0].numpy()
    with runtime.Model(out / "model.gguf", n_threads=1) as rt:
        info = rt.info_json()["config"]
        assert info["n_predict_heads"] == 4 and info["mtp_source"] == "final"
        got = rt.eval(rt.new_state(), tokens, n_heads=4)
        result = rt.generate(rt.new_state(), tokens[:10], 12, temperature=0.0, stop_at_eos=False, speculative=True)
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    assert result.draft_heads == 4 and len(result.tokens) == 12


def test_an_interrupted_run_resumes_where_it_stopped(base_checkpoint, tmp_path):
    out = tmp_path / "resumed"
    distill_heads.main(["--checkpoint", str(base_checkpoint), "--out", str(out), "--steps", "6", *SETTINGS])
    summary = distill_heads.main(["--out", str(out), "--resume", "--steps", "10", *SETTINGS])
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11)) and summary["steps"] == 10


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        distill_heads.main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint\n")
    with pytest.raises(SystemExit, match="is not a readable checkpoint"):
        distill_heads.main(["--checkpoint", str(garbage), "--out", str(tmp_path / "out")])
    other = tmp_path / "other.pt"
    torch.save({"weights": [1, 2, 3]}, other)
    with pytest.raises(SystemExit, match="is not a train.py checkpoint"):
        distill_heads.main(["--checkpoint", str(other), "--out", str(tmp_path / "out")])
