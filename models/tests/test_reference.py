"""The float64 reference against independent formulations, and the GGUF writer/reader round trip."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from models import gguf
from models.make_tiny import gpt2_byte_to_unicode
from models.reference import (cema_coefficients, cema_steps, log_softmax, timestep_norm_apply,
                              timestep_norm_stats)

SMALL = dict(n_layers=3, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=24, ffn_dim=48,
             chunk_size=8, norm_groups=4, vocab_size=300, n_predict_heads=3, seed=11)


# ----------------------------------------------------------------------------------------------
# GGUF


def test_gguf_round_trip_keys_and_tensors(tmp_path):
    writer = gguf.GGUFWriter()
    scalars = {"k.u8": (200, "u8"), "k.i8": (-100, "i8"), "k.u16": (60000, "u16"), "k.i16": (-30000, "i16"),
               "k.u32": (4_000_000_000, "u32"), "k.i32": (-2_000_000_000, "i32"), "k.f32": (1.5, "f32"),
               "k.bool": (True, "bool"), "k.str": ("héllo ▁wörld", "str"), "k.u64": (2**63 + 5, "u64"),
               "k.i64": (-(2**62), "i64"), "k.f64": (math.pi, "f64")}
    for key, (value, kind) in scalars.items():
        writer.add_value(key, value, kind)
    writer.add_array("a.str", ["a", "", "Ġthe", "<0x0A>"], "str")
    writer.add_array("a.i32", [1, -2, 3], "i32")
    writer.add_array("a.f32", [0.5, -0.25], "f32")
    writer.add_array("a.bool", [True, False], "bool")
    writer.add_array("a.empty", [], "u32")
    rng = np.random.default_rng(0)
    vector = rng.standard_normal(7).astype(np.float32)
    matrix = rng.standard_normal((5, 3)).astype(np.float32)
    cube = rng.standard_normal((2, 3, 4)).astype(np.float32)
    halfs = rng.standard_normal((3, 8)).astype(np.float32)
    quant = (rng.standard_normal((4, 64)) * 3).astype(np.float32)
    quant[1, 32:] = 0.0  # an all-zero block
    writer.add_tensor("t.vector", vector)
    writer.add_tensor("t.matrix", matrix)
    writer.add_tensor("t.cube", cube)
    writer.add_tensor("t.f16", halfs, "f16")
    writer.add_tensor("t.bf16", halfs, "bf16")
    writer.add_tensor("t.q8", quant, "q8_0")
    path = tmp_path / "round.gguf"
    writer.write(path)
    assert os.listdir(tmp_path) == ["round.gguf"]  # no temporary file left behind

    reader = gguf.GGUFReader(path)
    for key, (value, kind) in scalars.items():
        assert reader[key] == (np.float32(value) if kind == "f32" else value), key
    assert reader["a.str"] == ["a", "", "Ġthe", "<0x0A>"]
    assert reader["a.i32"] == [1, -2, 3]
    assert reader["a.f32"] == [0.5, -0.25]
    assert reader["a.bool"] == [True, False]
    assert reader["a.empty"] == []
    assert reader.key_types["k.u8"] == gguf.UINT8 and reader.key_types["a.str"] == gguf.ARRAY

    for name, expected in (("t.vector", vector), ("t.matrix", matrix), ("t.cube", cube)):
        tensor = reader.tensor(name)
        assert tensor.type_name == "f32" and tensor.shape == expected.shape
        np.testing.assert_array_equal(tensor.to_float64(), expected)
        assert tensor.offset % 32 == 0
        # Stored bytes are exactly the C-contiguous PyTorch-order tensor.
        with open(path, "rb") as f:
            f.seek(tensor.offset)
            assert f.read(expected.nbytes) == expected.tobytes()
    np.testing.assert_array_equal(reader.tensor("t.f16").to_float64(), halfs.astype(np.float16))
    assert reader.tensor("t.f16").type_name == "f16"

    bf16 = reader.tensor("t.bf16").to_float64()
    assert reader.tensor("t.bf16").type_name == "bf16"
    # Round to nearest: within half a bf16 ulp (7 stored mantissa bits), and exactly representable.
    ulp = 2.0 ** (np.floor(np.log2(np.abs(halfs))) - 7)
    assert np.all(np.abs(bf16 - halfs) <= ulp / 2)
    np.testing.assert_array_equal(gguf.round_to_bf16(bf16.astype(np.float32)), bf16)

    q8 = reader.tensor("t.q8")
    assert q8.type_name == "q8_0" and q8.shape == (4, 64)
    values = q8.to_float64()
    blocks = quant.reshape(-1, 32)
    steps = np.abs(blocks).max(axis=1) / 127
    assert np.all(np.abs(values.reshape(-1, 32) - blocks) <= (steps[:, None] / 2) * 1.002 + 1e-7)
    np.testing.assert_array_equal(values[1, 32:], 0.0)
    block_max = np.abs(q8.raw["q"].astype(int)).max(axis=1)  # blocks of 32 in row-major order
    np.testing.assert_array_equal(block_max, [127, 127, 127, 0, 127, 127, 127, 127])


def test_bf16_rounds_ties_to_even():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)
    cases = np.array([one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + ulp / 8, -(one + ulp / 2)], np.float32)
    np.testing.assert_array_equal(gguf.round_to_bf16(cases), [1.0, 1 + 2 * ulp, 1 + ulp, -1.0])
    assert np.isnan(gguf.round_to_bf16(np.array([np.nan], np.float32)))[0]


def test_q8_0_rejects_bad_row_length_and_reader_rejects_truncation(tmp_path):
    writer = gguf.GGUFWriter()
    with pytest.raises(ValueError, match="multiple of 32"):
        writer.add_tensor("bad", np.zeros((2, 30), np.float32), "q8_0")
    writer.add_string("general.architecture", "megalodon")
    writer.add_tensor("t", np.ones((4, 32), np.float32))
    path = tmp_path / "t.gguf"
    writer.write(path)
    data = path.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[:-16])
    with pytest.raises(gguf.GGUFError, match="outside the file"):
        gguf.GGUFReader(tmp_path / "cut.gguf")
    (tmp_path / "magic.gguf").write_bytes(b"GGUX" + data[4:])
    with pytest.raises(gguf.GGUFError, match="bad magic"):
        gguf.GGUFReader(tmp_path / "magic.gguf")
    (tmp_path / "header.gguf").write_bytes(data[:40])
    with pytest.raises(gguf.GGUFError, match="truncated"):
        gguf.GGUFReader(tmp_path / "header.gguf")


def test_random_model_file_layout(model_file):
    path = model_file(**SMALL, tokenizer="gpt2")
    reader = gguf.GGUFReader(path)
    tokens = reader["tokenizer.ggml.tokens"]
    assert len(tokens) == SMALL["vocab_size"] == len(set(tokens))
    byte_map = gpt2_byte_to_unicode()
    assert tokens[:256] == [byte_map[b] for b in range(256)]
    assert tokens[-1] == "<|endoftext|>" and reader["tokenizer.ggml.token_type"][-1] == 3
    merges = reader["tokenizer.ggml.merges"]
    assert len(merges) == SMALL["vocab_size"] - 257
    # Every merge joins two pieces that exist before it into the next token.
    known = set(tokens[:256])
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ")
        assert left in known and right in known and left + right == tokens[256 + rank]
        known.add(left + right)
    assert reader.tensor("token_embd.weight").shape == (SMALL["vocab_size"], SMALL["d_model"])
    assert reader.tensor("blk.2.attn_h2.weight").shape == (SMALL["d_model"], SMALL["value_dim"])
    assert reader.tensor("blk.0.cema.gamma").shape == (SMALL["d_model"], SMALL["cema_ndim"], 2)
    assert reader.tensor("mtp.3.down.weight").shape == (SMALL["d_model"], 2 * SMALL["d_model"])

    llama = gguf.GGUFReader(model_file(**dict(SMALL, vocab_size=400), tokenizer="llama"))
    pieces = llama["tokenizer.ggml.tokens"]
    assert pieces[:3] == ["<unk>", "<s>", "</s>"] and pieces[3] == "<0x00>" and pieces[258] == "<0xFF>"
    assert llama["tokenizer.ggml.token_type"][:4] == [2, 3, 3, 6]
    scores = llama["tokenizer.ggml.scores"][259:]
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert "\u2581the" in pieces and "\u2581" in pieces


# ----------------------------------------------------------------------------------------------
# CEMA


def random_cema(rng, dim=6, n_dim=5):
    alpha = rng.normal(0, 0.5, (dim, n_dim))
    delta = rng.normal(0, 0.5, (dim, n_dim))
    theta = rng.normal(0, 1.0, dim)
    gamma = rng.normal(0, 1.0, (dim, n_dim, 2))
    omega = rng.normal(0, 0.3, dim)
    return (*cema_coefficients(alpha, delta, theta, gamma), omega), (alpha, delta, theta, gamma)


def cema_fft(x, h_init, p, q, eta, omega):
    """Convolution form (megalodon.md 2.3): FFT convolution + h_init bias + closed-form final state."""
    length = x.shape[0]
    log_q = np.log(np.abs(q)) + 1j * np.angle(q)
    powers = np.exp(np.arange(length + 1)[:, None, None] * log_q[None])      # q^j, j = 0..L
    kernel = (eta * p * powers[:length]).real.sum(axis=2)                     # [L, D]
    padded = 2 * (1 << max(0, (length - 1).bit_length()))
    conv = np.fft.irfft(np.fft.rfft(x, padded, axis=0) * np.fft.rfft(kernel, padded, axis=0), padded, axis=0)
    bias = (eta * powers[1:] * h_init).real.sum(axis=2)                       # Re Σ η q^{t+1} h_init
    c = conv[:length] + bias + omega * x
    weights = powers[length - 1 - np.arange(length)]                           # q^{L-1-j}
    h_final = powers[length] * h_init + p * (weights * x[:, :, None]).sum(axis=0)
    return c, h_final


@pytest.mark.parametrize("length", [1, 31, 32, 100])
def test_cema_recurrence_equals_convolution_form(length):
    rng = np.random.default_rng(length)
    (p, q, eta, omega), _ = random_cema(rng)
    x = rng.standard_normal((length, 6))
    h_init = rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))
    c_step, h_step = cema_steps(x, h_init, p, q, eta, omega)
    c_fft, h_fft = cema_fft(x, h_init, p, q, eta, omega)
    scale = np.abs(c_fft).max()
    assert np.abs(c_step - c_fft).max() <= 1e-12 * scale
    assert np.abs(h_step - h_fft).max() <= 1e-12 * np.abs(h_fft).max()
    # Splitting the sequence and carrying h reproduces the unsplit result.
    for split in sorted({0, length // 3, length - 1, length}):
        c1, h1 = cema_fft(x[:split], h_init, p, q, eta, omega) if split else (x[:0], h_init)
        c2, h2 = cema_steps(x[split:], h1, p, q, eta, omega)
        assert np.abs(np.concatenate([c1, c2]) - c_step).max() <= 1e-12 * scale
        assert np.abs(h2 - h_step).max() <= 1e-12 * np.abs(h_step).max()


def test_cema_coefficients_follow_the_parameterisation():
    rng = np.random.default_rng(5)
    (p, q, eta, _), (alpha, delta, theta, gamma) = random_cema(rng, dim=3, n_dim=4)
    a = 1 / (1 + np.exp(-alpha))
    d = 1 / (1 + np.exp(-delta))
    np.testing.assert_allclose(p, a, rtol=1e-14)
    np.testing.assert_allclose(np.abs(q), 1 - a * d, rtol=1e-14)
    # Angles n·σ(theta)·2π/N for n = 1..N: consecutive ratios of q/|q| are the base rotation.
    base = 2 * np.pi / 4 / (1 + np.exp(-theta))
    np.testing.assert_allclose(np.angle(q[:, 0]), base, rtol=1e-13)
    np.testing.assert_allclose(q[:, 3] / np.abs(q[:, 3]), np.exp(4j * base), atol=1e-13)
    np.testing.assert_allclose(eta, (gamma[..., 0] + 1j * gamma[..., 1]) / 2, rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# TimestepNorm


def tsn_brute_force(x, groups, weight, bias, eps):
    """Paper eq. 4: cumulative mean / population variance over all rows so far and the group."""
    rows = x.shape[0]
    out = np.empty_like(x)
    for t in range(rows):
        seen = x[:t + 1].reshape(t + 1, groups, -1)
        mean = seen.mean(axis=(0, 2))
        var = ((seen - mean[None, :, None]) ** 2).mean(axis=(0, 2))
        out[t] = ((x[t].reshape(groups, -1) - mean[:, None]) / np.sqrt(var[:, None] + eps)).reshape(-1)
    return out * weight + bias


def test_timestep_norm_streaming_equals_brute_force():
    rng = np.random.default_rng(2)
    groups, dim = 3, 12
    x = rng.standard_normal((40, dim)) * rng.uniform(0.5, 3, dim) + rng.standard_normal(dim)
    weight, bias = rng.standard_normal(dim), rng.standard_normal(dim)
    expected = tsn_brute_force(x, groups, weight, bias, 1e-5)
    for cuts in ([0, 40], [0, 1, 40], [0, 1, 2, 17, 18, 40], list(range(41))):
        count, mean, var = 0, np.zeros(groups), np.ones(groups)
        pieces = []
        for start, end in zip(cuts, cuts[1:]):
            means, variances = timestep_norm_stats(x[start:end], count, mean, var, groups)
            pieces.append(timestep_norm_apply(x[start:end], means, variances, weight, bias, 1e-5))
            count, mean, var = end, means[-1], variances[-1]
        assert np.abs(np.concatenate(pieces) - expected).max() <= 1e-11


def test_timestep_norm_first_step_uses_within_group_variance():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 8))
    means, variances = timestep_norm_stats(x, 0, np.zeros(2), np.ones(2), 2)
    groups = x.reshape(2, 4)
    np.testing.assert_allclose(means[0], groups.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(variances[0], groups.var(axis=1), rtol=1e-14)
    assert np.all(variances[0] > 0.05)


# ----------------------------------------------------------------------------------------------
# Whole model


def rope_table(positions, head_dim, freqs):
    angles = positions[:, None] * freqs[None, :]
    return np.cos(angles), np.sin(angles)


def whole_sequence_logits(model, tokens):
    """Non-streaming formulation over the whole sequence: brute-force TimestepNorm, CEMA by FFT,
    attention as one masked matrix (same chunk, causal), positions = absolute index mod C."""
    cfg = model.config
    eps = cfg.norm_eps
    length = len(tokens)
    heads, head_z = cfg.n_attn_heads, cfg.z_dim // cfg.n_attn_heads
    head_v = cfg.value_dim // heads

    def silu(v):
        return v / (1 + np.exp(-v))

    def rms(v, w=1.0):
        return v / np.sqrt((v * v).mean(axis=-1, keepdims=True) + eps) * w

    def sublayer_norm(v, w, b):
        mu = v.mean(axis=-1, keepdims=True)
        return (v - mu) / np.sqrt(((v - mu) ** 2).mean(axis=-1, keepdims=True) + eps) * w + b

    index = np.arange(length)
    visible = (index[None, :] <= index[:, None]) & (index[None, :] // cfg.chunk_size == index[:, None] // cfg.chunk_size)
    cos, sin = rope_table((index % cfg.chunk_size).astype(float), head_z, model.rope_freqs)

    def rotate(v):  # v [T, H, d]
        out = np.empty_like(v)
        out[..., 0::2] = v[..., 0::2] * cos[:, None] - v[..., 1::2] * sin[:, None]
        out[..., 1::2] = v[..., 0::2] * sin[:, None] + v[..., 1::2] * cos[:, None]
        return out

    x = model.token_embd[tokens] * (math.sqrt(cfg.d_model) if cfg.scale_embedding else 1.0)
    trunk = x
    for w in model.layers:
        trunk = x
        x_hat = tsn_brute_force(x, cfg.norm_groups, w["tsn.weight"], w["tsn.bias"], eps)
        p, q, eta = cema_coefficients(w["cema.alpha"], w["cema.delta"], w["cema.theta"], w["cema.gamma"])
        c, _ = cema_fft(x_hat, np.zeros_like(q), p, q, eta, w["cema.omega"])
        m = rms(c, w["rms.weight"])
        z = rms((m @ w["attn_z.weight"].T + w["attn_z.bias"]).reshape(length, heads, head_z))
        scale = w["attn_qk.scale"].reshape(2, heads, head_z) / math.sqrt(head_z)
        shift = w["attn_qk.bias"].reshape(2, heads, head_z)
        queries, keys = rotate(z * scale[0] + shift[0]), rotate(z * scale[1] + shift[1])
        values = silu(x_hat @ w["attn_v.weight"].T + w["attn_v.bias"]).reshape(length, heads, head_v)
        scores = np.where(visible[None], np.einsum("ihd,jhd->hij", queries, keys), -np.inf)
        attn = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn /= attn.sum(axis=-1, keepdims=True)
        o = np.einsum("hij,jhd->ihd", attn, values).reshape(length, -1)
        gate = silu(m @ w["attn_r.weight"].T + w["attn_r.bias"])
        y = x + m @ w["attn_h1.weight"].T + w["attn_h1.bias"] + (o * gate) @ w["attn_h2.weight"].T
        u = sublayer_norm(y, w["ffn_norm.weight"], w["ffn_norm.bias"])
        hidden = silu(u @ w["ffn_gate.weight"].T)
        if cfg.swiglu:
            hidden *= u @ w["ffn_up.weight"].T
        x = x + hidden @ w["ffn_down.weight"].T
    source = x if cfg.mtp_source == "final" else trunk
    outputs = [x]
    for head in model.mtp_heads:
        r = rms(source, head["norm"])
        outputs.append(source + (silu(r @ head["gate"].T) * (r @ head["up"].T)) @ head["down"].T)
    # Final norm statistics come from the head-1 stream only; every head is normalised with them.
    groups = cfg.norm_groups
    seen = x.reshape(length, groups, -1)
    counts = (index + 1)[:, None]
    mean = np.cumsum(seen.sum(axis=2), axis=0) / (counts * seen.shape[2])
    var = np.array([((seen[:t + 1] - mean[t][None, :, None]) ** 2).mean(axis=(0, 2)) for t in range(length)])
    logits = []
    for h in outputs:
        normed = (h.reshape(length, groups, -1) - mean[..., None]) / np.sqrt(var[..., None] + eps)
        logits.append((normed.reshape(length, -1) * model.output_norm_weight + model.output_norm_bias)
                      @ model.output.T)
    return np.stack(logits, axis=1)


WHOLE_MODEL_CONFIGS = {
    "three_layers": dict(SMALL),
    "one_layer_trunk_is_embedding": dict(SMALL, n_layers=1, n_predict_heads=2),
    "odd_dims": dict(SMALL, d_model=24, norm_groups=3, cema_ndim=5, n_attn_heads=3, z_dim=18, value_dim=21,
                     ffn_dim=40, mtp_hidden=30, rope_base=1e5, bf16_freqs=False, chunk_size=5),
    "plain_ffn_tied_scaled_final": dict(SMALL, swiglu=False, tied=True, scale_embedding=True,
                                        mtp_source="final", n_predict_heads=4),
}


@pytest.mark.parametrize("name", WHOLE_MODEL_CONFIGS)
def test_reference_streaming_equals_whole_sequence_formulation(name, reference_model):
    model = reference_model(**WHOLE_MODEL_CONFIGS[name])
    tokens = np.random.default_rng(7).integers(0, model.n_vocab, 27).tolist()
    expected = whole_sequence_logits(model, tokens)
    scale = np.abs(expected).max()
    one_call = model.forward(model.new_state(), tokens)
    assert np.abs(one_call - expected).max() <= 1e-10 * scale
    # Token by token, and in uneven pieces that start and end inside chunks.
    state = model.new_state()
    stepped = np.concatenate([model.forward(state, [t]) for t in tokens])
    assert np.abs(stepped - expected).max() <= 1e-10 * scale
    state = model.new_state()
    cuts = [0, 3, 4, 13, 16, 27]
    pieces = np.concatenate([model.forward(state, tokens[a:b]) for a, b in zip(cuts, cuts[1:])])
    assert np.abs(pieces - expected).max() <= 1e-10 * scale
    assert state.position == state.tsn_count == 27
    assert state.kv_len == 27 % model.chunk_size


def test_state_clone_ingest_and_head_subsets(reference_model):
    model = reference_model(**SMALL)
    tokens = np.random.default_rng(8).integers(0, model.n_vocab, 21).tolist()
    full = model.forward(model.new_state(), tokens)
    state = model.new_state()
    model.ingest(state, tokens[:10])
    fork = state.clone()
    head1 = model.forward(state, tokens[10:], n_heads=1)
    np.testing.assert_allclose(head1[:, 0], full[10:, 0], rtol=0, atol=1e-12)
    rest = model.forward(fork, tokens[10:])
    np.testing.assert_allclose(rest, full[10:], rtol=0, atol=1e-12)
    for a, b in ((state.tsn_mean, fork.tsn_mean), (state.tsn_var, fork.tsn_var)):
        np.testing.assert_array_equal(a, b)
    # The extra heads differ from head 1 (the comparison above is not vacuous).
    assert np.abs(full[:, 1] - full[:, 0]).max() > 0.1


def test_score_is_the_sum_of_next_token_nll(reference_model):
    model = reference_model(**SMALL)
    tokens = np.random.default_rng(9).integers(0, model.n_vocab, 15).tolist()
    logits = model.forward(model.new_state(), tokens, n_heads=1)[:, 0]
    expected = sum(-log_softmax(logits[i])[tokens[i + 1]] for i in range(14))
    assert abs(model.score(model.new_state(), tokens) - expected) < 1e-10
    assert model.score(model.new_state(), tokens[:1]) == 0.0


def test_refresh_mode_replaces_only_the_normalisation_statistics(reference_model):
    chunk = 4
    model = reference_model(**dict(SMALL, chunk_size=chunk, n_layers=2, seed=12))
    tokens = np.random.default_rng(10).integers(0, model.n_vocab, 60).tolist()
    plain, refreshed = model.new_state(), model.new_state(refresh=True)
    plain_logits = model.forward(plain, tokens[:31])
    np.testing.assert_array_equal(model.forward(refreshed, tokens[:31]), plain_logits)
    model.forward(plain, tokens[31:32])
    model.forward(refreshed, tokens[31:32])
    # At e = 8C the statistics are those of a blank run over the last 6C tokens ...
    window = model.new_state()
    model.ingest(window, tokens[32 - 6 * chunk:32])
    assert refreshed.tsn_count == window.tsn_count == 6 * chunk and refreshed.position == 32
    np.testing.assert_allclose(refreshed.tsn_mean, window.tsn_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(refreshed.tsn_var, window.tsn_var, rtol=0, atol=1e-12)
    assert np.abs(refreshed.tsn_var - plain.tsn_var).max() > 1e-3
    # ... while CEMA states and keys/values come from the full history.
    for a, b in zip(refreshed.cema_h + refreshed.keys, plain.cema_h + plain.keys):
        np.testing.assert_array_equal(a, b)
    # Refreshes happen at 32, 40, 48, 56 whatever the call boundaries: 28 counted after 60 tokens.
    one_call = model.new_state(refresh=True)
    expected = model.forward(one_call, tokens)
    assert one_call.tsn_count == 6 * chunk + 4 and one_call.position == 60
    stepped = model.new_state(refresh=True)
    got = np.concatenate([model.forward(stepped, tokens[a:b]) for a, b in zip([0, 7, 33, 41, 59], [7, 33, 41, 59, 60])])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert np.abs(expected[40:] - model.forward(model.new_state(), tokens)[40:]).max() > 1e-3


def test_bf16_frequency_rounding_changes_rotations(reference_model):
    exact = reference_model(**dict(SMALL, bf16_freqs=False, z_dim=32))
    rounded = reference_model(**dict(SMALL, bf16_freqs=True, z_dim=32))
    head_z = 16
    expected = 10000.0 ** (-np.arange(0, head_z, 2) / head_z)
    np.testing.assert_allclose(exact.rope_freqs, expected, rtol=1e-7)
    assert np.all(np.abs(rounded.rope_freqs - expected) <= expected * 2.0 ** -8)
    assert np.abs(rounded.rope_freqs - exact.rope_freqs).max() > 0
    # bf16 values: 8 significant bits.
    bits = rounded.rope_freqs.astype(np.float32).view(np.uint32)
    assert np.all((bits & 0xFFFF) == 0)

