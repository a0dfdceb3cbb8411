"""The PyTorch training model against the float64 numpy reference and the C runtime, on random
tiny configurations; the memory-efficient multi-token backward against plain autograd.

rel_err = max|got - expected| / max|expected| over all positions and heads.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import runtime  # noqa: E402
from models.export_gguf import official_tensors, write_gguf  # noqa: E402
from models.make_tiny import gpt2_vocab  # noqa: E402
from models.megalodon_torch import (Megalodon, MegalodonConfig, head_weights, multi_token_loss,  # noqa: E402
                                    timestep_norm_stats)
from models.reference import ReferenceModel, timestep_norm_stats as reference_tsn_stats  # noqa: E402

CONFIGS = {
    "two_layers_chunk8": dict(vocab_size=300, d_model=32, n_layers=2, cema_ndim=4, n_attn_heads=2, z_dim=16,
                              value_dim=32, ffn_dim=64, chunk_size=8, norm_groups=4, n_predict_heads=3),
    "odd_dims": dict(vocab_size=301, d_model=24, n_layers=3, cema_ndim=5, n_attn_heads=3, z_dim=18, value_dim=21,
                     ffn_dim=40, chunk_size=16, norm_groups=3, n_predict_heads=2, mtp_hidden_dim=30),
    "tied_plain_ffn_final_heads": dict(vocab_size=280, d_model=32, n_layers=2, cema_ndim=3, n_attn_heads=1,
                                       z_dim=8, value_dim=16, ffn_dim=48, chunk_size=8, norm_groups=2,
                                       swiglu=False, tied_embedding=True, scale_embedding=True,
                                       n_predict_heads=4, mtp_source="final", rope_base=1e5),
    "one_layer_f32_freqs": dict(vocab_size=260, d_model=16, n_layers=1, cema_ndim=2, n_attn_heads=2, z_dim=8,
                                value_dim=8, ffn_dim=32, chunk_size=32, norm_groups=4, bf16_freqs=False,
                                tied_embedding=False, n_predict_heads=2),
}
N_TOKENS = 37  # several chunks, the last one partial


def rel_err(got, expected) -> float:
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def randomized_model(cfg: MegalodonConfig, seed: int) -> Megalodon:
    """The released initialisation, then every parameter perturbed (norm scales, Q/K affine,
    imaginary η and the heads' W2 are zero at init and would hide mistakes)."""
    torch.manual_seed(seed)
    model = Megalodon(cfg)
    model.reset_parameters(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.3 if name.endswith(("gamma", "beta")) and "cema" not in name else 0.1
            if p.dim() >= 2 and "cema" not in name and p.shape[0] > 2:
                scale = 1.0 / np.sqrt(p.shape[1])
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return model


def export(model: Megalodon, path, seed: int) -> str:
    cfg = model.cfg.to_dict()
    sd = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    write_gguf(path, cfg, official_tensors(sd, cfg), gpt2_vocab(cfg["vocab_size"], np.random.default_rng(seed)), "f32")
    return str(path)


def tokens_for(cfg: MegalodonConfig, count: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, count).tolist()


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def exported(request, tmp_path_factory):
    seed = sorted(CONFIGS).index(request.param) + 11
    cfg = MegalodonConfig(**CONFIGS[request.param])
    model = randomized_model(cfg, seed)
    # The file holds float32 weights, norm scales as float32(w + 1): give the model exactly those.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith(("norm.weight", "rmsnorm.weight", "mega.gamma")):
                p.copy_((p.float() + 1.0) - 1.0)
    path = export(model, tmp_path_factory.mktemp("torch") / f"{request.param}.gguf", seed)
    return request.param, model, path


def test_float64_torch_equals_numpy_reference(exported):
    name, model, path = exported
    tokens = tokens_for(model.cfg, N_TOKENS, 3)
    with torch.no_grad():
        got = model.double()(torch.tensor([tokens])).numpy()[0]
    reference = ReferenceModel(path)
    expected = reference.forward(reference.new_state(), tokens)
    assert got.shape == expected.shape
    for head in range(got.shape[1]):
        assert rel_err(got[:, head], expected[:, head]) < 1e-9, (name, head)


def test_float32_torch_equals_numpy_reference(exported):
    name, model, path = exported
    tokens = tokens_for(model.cfg, N_TOKENS, 4)
    with torch.no_grad():
        got = model.float()(torch.tensor([tokens])).numpy()[0]
    reference = ReferenceModel(path)
    expected = reference.forward(reference.new_state(), tokens)
    for head in range(got.shape[1]):
        assert rel_err(got[:, head], expected[:, head]) <= 1e-4, (name, head)


def test_runtime_runs_the_exported_model_like_torch(exported, runtime_library):
    name, model, path = exported
    tokens = tokens_for(model.cfg, N_TOKENS, 5)
    n_heads = model.cfg.n_predict_heads
    with torch.no_grad():
        expected = model.float()(torch.tensor([tokens])).numpy()[0]
    with runtime.Model(path, n_threads=2) as rt:
        got = rt.eval(rt.new_state(), tokens, n_heads=n_heads)
    for head in range(n_heads):
        assert rel_err(got[:, head], expected[:, head]) <= 1e-4, (name, head)


def test_parallel_timestep_norm_equals_welford_steps():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 12)) * 3.0 + 5.0   # an offset mean: the shifted sums must cope
    mean, var = timestep_norm_stats(torch.tensor(x[None]), 3)
    ref_mean, ref_var = reference_tsn_stats(x, 0, np.zeros(3), np.ones(3), 3)
    assert rel_err(mean[0].numpy(), ref_mean) < 1e-12
    assert rel_err(var[0].numpy(), ref_var) < 1e-12


@pytest.mark.parametrize("source", ["trunk", "final"])
def test_memory_efficient_multi_token_backward_equals_plain_autograd(source):
    cfg = MegalodonConfig(vocab_size=97, d_model=16, n_layers=2, cema_ndim=3, n_attn_heads=2, z_dim=8,
                          value_dim=16, ffn_dim=32, chunk_size=8, norm_groups=4, n_predict_heads=3,
                          mtp_source=source)
    model = randomized_model(cfg, 7).double()
    tokens = torch.tensor(np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 29)))
    weights = head_weights(3, 0.3)

    stats = multi_token_loss(model, tokens, weights, token_chunk=13)
    efficient = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    n = len(weights)
    t = tokens.shape[1] - n
    logits = model(tokens[:, :t])
    loss = sum(w * torch.nn.functional.cross_entropy(logits[:, :, i].reshape(-1, cfg.vocab_size),
                                                     tokens[:, i + 1:i + 1 + t].reshape(-1))
               for i, w in enumerate(weights))
    loss.backward()
    assert abs(stats["loss"] - loss.item()) < 1e-9 * abs(loss.item())
    plain = {k: p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert sorted(plain) == sorted(efficient)
    for k in plain:
        denom = plain[k].abs().max().item()
        if denom == 0.0:
            assert efficient[k].abs().max().item() == 0.0, k
        else:
            assert (efficient[k] - plain[k]).abs().max().item() / denom < 1e-6, k
