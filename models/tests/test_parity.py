"""The C runtime (through its C API) against the float64 reference on random models.

rel_err = max|runtime - reference| / max|reference|, per prediction head, over all compared rows.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from models import runtime
from models.gguf import GGUFReader
from models.reference import REFRESH_WINDOW_CHUNKS, log_softmax

TOLERANCE = {"f32": 1e-4, "f16": 1e-3, "bf16": 1e-3, "q8_0": 3e-2}

CONFIGS = {
    "one_layer": dict(n_layers=1, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32, ffn_dim=64,
                      chunk_size=16, norm_groups=4, vocab_size=300, seed=1),
    "three_layers_chunk8": dict(n_layers=3, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32,
                                ffn_dim=64, chunk_size=8, norm_groups=4, vocab_size=400, n_predict_heads=3,
                                tokenizer="llama", seed=2),
    "odd_dims": dict(n_layers=2, d_model=24, norm_groups=3, cema_ndim=5, n_attn_heads=3, z_dim=18, value_dim=21,
                     ffn_dim=40, chunk_size=8, vocab_size=300, n_predict_heads=2, mtp_hidden=30, seed=3),
    "plain_ffn_tied_scaled_final": dict(n_layers=2, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16,
                                        value_dim=32, ffn_dim=64, chunk_size=8, norm_groups=4, vocab_size=350,
                                        swiglu=False, tied=True, scale_embedding=True, mtp_source="final",
                                        n_predict_heads=4, tokenizer="llama", seed=4),
    "one_layer_heads_from_embedding": dict(n_layers=1, d_model=32, cema_ndim=3, n_attn_heads=1, z_dim=8,
                                           value_dim=16, ffn_dim=48, chunk_size=8, norm_groups=2,
                                           vocab_size=280, n_predict_heads=2, seed=5),
    "rope_1e5_bf16": dict(n_layers=2, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=32, value_dim=32,
                          ffn_dim=64, chunk_size=32, norm_groups=4, vocab_size=300, rope_base=1e5,
                          bf16_freqs=True, seed=6),
    "rope_1e5_f32": dict(n_layers=2, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=32, value_dim=32,
                         ffn_dim=64, chunk_size=32, norm_groups=4, vocab_size=300, rope_base=1e5,
                         bf16_freqs=False, seed=6),
}
N_TOKENS = 40

QUANT_BASE = dict(n_layers=2, d_model=64, cema_ndim=4, n_attn_heads=2, z_dim=32, value_dim=64, ffn_dim=128,
                  chunk_size=16, norm_groups=4, vocab_size=320, n_predict_heads=2, mtp_hidden=64, seed=7)

STREAM = CONFIGS["three_layers_chunk8"]  # 3 heads, 8-token chunks: 30 tokens cross three boundaries
STREAM_TOKENS = 30
REFRESH = dict(n_layers=2, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32, ffn_dim=64,
               chunk_size=4, norm_groups=4, vocab_size=300, n_predict_heads=2, seed=8)


def random_tokens(n_vocab: int, count: int, seed: int) -> list[int]:
    return np.random.default_rng(seed).integers(0, n_vocab, count).tolist()


def rel_err(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - expected).max() / np.abs(expected).max())


def assert_logits_close(got: np.ndarray, expected: np.ndarray, tolerance: float, what: str) -> None:
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, expected {expected.shape}"
    errors = [rel_err(got[:, head], expected[:, head]) for head in range(expected.shape[1])]
    worst = int(np.argmax(errors))
    if errors[worst] > tolerance:
        row = int(np.abs(got[:, worst] - expected[:, worst]).max(axis=1).argmax())
        pytest.fail(f"{what}: head {worst + 1} rel_err {errors[worst]:.3g} > {tolerance:g} "
                    f"(all heads: {', '.join(f'{e:.2g}' for e in errors)}; worst row {row})")


# ----------------------------------------------------------------------------------------------
# State file (FORMAT.md section 2)

STATE_HEADER = struct.Struct("<8sIIQ7IIqqII")


def fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def parse_state_file(path) -> dict:
    data = Path(path).read_bytes()
    (magic, version, flags, fingerprint, n_layers, d_model, cema_ndim, norm_groups, chunk_size, z_dim,
     value_dim, reserved, position, tsn_count, kv_len, history_len) = STATE_HEADER.unpack_from(data, 0)
    offset = STATE_HEADER.size

    def take(dtype, count):
        nonlocal offset
        array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += array.nbytes
        return array

    layers = []
    for _ in range(n_layers):
        mean, var = take("<f4", norm_groups), take("<f4", norm_groups)
        pairs = take("<f4", 2 * d_model * cema_ndim).reshape(d_model, cema_ndim, 2)
        keys = take("<f4", kv_len * z_dim).reshape(kv_len, z_dim)
        values = take("<f4", kv_len * value_dim).reshape(kv_len, value_dim)
        layers.append(dict(mean=mean, var=var, cema_h=pairs[..., 0] + 1j * pairs[..., 1], keys=keys, values=values))
    final_mean, final_var = take("<f4", norm_groups), take("<f4", norm_groups)
    history = take("<i4", history_len)
    (checksum,) = struct.unpack_from("<Q", data, offset)
    assert offset + 8 == len(data), f"state file has {len(data) - offset - 8} unexpected trailing bytes"
    return dict(magic=magic, version=version, flags=flags, fingerprint=fingerprint,
                dims=(n_layers, d_model, cema_ndim, norm_groups, chunk_size, z_dim, value_dim),
                reserved=reserved, position=position, tsn_count=tsn_count, kv_len=kv_len, layers=layers,
                final_mean=final_mean, final_var=final_var, history=history.tolist(), checksum=checksum,
                checksum_ok=checksum == fnv1a64(data[:offset]), size=len(data))


def expected_state_bytes(ref, kv_len: int = 0, history_len: int = 0) -> int:
    per_layer = 8 * ref.norm_groups + 8 * ref.d_model * ref.cema_ndim + 4 * kv_len * (ref.z_dim + ref.value_dim)
    return STATE_HEADER.size + ref.n_layers * per_layer + 8 * ref.norm_groups + 4 * history_len + 8


def assert_state_matches(saved: dict, ref, state, tolerance: float) -> None:
    """A parsed runtime state file against a reference state."""
    assert saved["magic"] == b"MGLSTATE" and saved["version"] == 1 and saved["reserved"] == 0
    assert saved["checksum_ok"], "state file checksum is not FNV-1a 64 of the preceding bytes"
    assert saved["dims"] == (ref.n_layers, ref.d_model, ref.cema_ndim, ref.norm_groups, ref.chunk_size,
                             ref.z_dim, ref.value_dim)
    assert saved["position"] == state.position
    assert saved["tsn_count"] == state.tsn_count
    assert saved["kv_len"] == state.kv_len == state.position % ref.chunk_size

    def close(got, expected, what):
        assert np.shape(got) == np.shape(expected), f"state {what}: shape {np.shape(got)} vs {np.shape(expected)}"
        if np.size(expected):
            err = np.abs(np.asarray(got, np.complex128) - expected).max() / np.abs(expected).max()
            assert err <= tolerance, f"state {what}: rel_err {err:.3g} > {tolerance:g}"

    for index, layer in enumerate(saved["layers"]):
        close(layer["mean"], state.tsn_mean[index], f"layer {index} TSN mean")
        close(layer["var"], state.tsn_var[index], f"layer {index} TSN variance")
        close(layer["cema_h"], state.cema_h[index], f"layer {index} CEMA h")
        close(layer["keys"], state.keys[index], f"layer {index} K")
        close(layer["values"], state.values[index], f"layer {index} V")
    close(saved["final_mean"], state.tsn_mean[ref.n_layers], "final-norm mean")
    close(saved["final_var"], state.tsn_var[ref.n_layers], "final-norm variance")


# ----------------------------------------------------------------------------------------------
# Logits of every head at every position


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_match_reference(name, runtime_model, reference_model):
    config = CONFIGS[name]
    model, ref = runtime_model(**config), reference_model(**config)
    tokens = random_tokens(ref.n_vocab, N_TOKENS, seed=100)
    expected = ref.forward(ref.new_state(), tokens)
    got = model.eval(model.new_state(), tokens, n_heads=ref.n_predict_heads)
    assert_logits_close(got, expected, TOLERANCE["f32"], name)


@pytest.mark.parametrize("dtype", ["f16", "bf16", "q8_0"])
def test_quantized_weights_match_reference_on_dequantized_weights(dtype, runtime_model, reference_model):
    config = dict(QUANT_BASE, dtype=dtype)
    model, ref = runtime_model(**config), reference_model(**config)
    tokens = random_tokens(ref.n_vocab, N_TOKENS, seed=101)
    expected = ref.forward(ref.new_state(), tokens)
    got = model.eval(model.new_state(), tokens, n_heads=ref.n_predict_heads)
    assert_logits_close(got, expected, TOLERANCE[dtype], dtype)
    if dtype != "q8_0":
        # The weights really are rounded: the f32 model's logits differ by more than the tolerance
        # of f32 parity, so this comparison is not the f32 one in disguise.
        f32_ref = reference_model(**QUANT_BASE)
        f32_logits = f32_ref.forward(f32_ref.new_state(), tokens)
        assert rel_err(f32_logits[:, 0], expected[:, 0]) > TOLERANCE["f32"]


@pytest.mark.parametrize("name", ["one_layer", "three_layers_chunk8", "plain_ffn_tied_scaled_final"])
def test_model_info_and_vocabulary(name, runtime_model, model_file, reference_model):
    config = CONFIGS[name]
    model, ref = runtime_model(**config), reference_model(**config)
    info = model.info()
    expected = dict(n_layers=ref.n_layers, d_model=ref.d_model, cema_ndim=ref.cema_ndim,
                    n_attn_heads=ref.n_attn_heads, z_dim=ref.z_dim, value_dim=ref.value_dim,
                    ffn_dim=ref.ffn_dim, chunk_size=ref.chunk_size, norm_groups=ref.norm_groups,
                    n_vocab=ref.n_vocab, n_predict_heads=ref.n_predict_heads,
                    swiglu=int(ref.swiglu), tied_embedding=int(ref.tied_embedding))
    assert {key: info[key] for key in expected} == expected
    reader = GGUFReader(model_file(**config))
    assert info["n_params"] == sum(int(np.prod(t.shape)) for t in reader.tensors.values())
    assert info["state_bytes"] == expected_state_bytes(ref)
    assert info["eos_token"] == reader["tokenizer.ggml.eos_token_id"]
    assert [model.piece(i) for i in range(ref.n_vocab)] == ref.tokens
    assert isinstance(model.info_json(), dict)


# ----------------------------------------------------------------------------------------------
# Streaming: every way of feeding the tokens gives the same logits and the same continuation


@pytest.fixture(scope="module")
def stream_case(runtime_model, reference_model):
    model, ref = runtime_model(**STREAM), reference_model(**STREAM)
    tokens = random_tokens(ref.n_vocab, STREAM_TOKENS, seed=102)
    expected = ref.forward(ref.new_state(), tokens)
    return model, ref, tokens, expected


def eval_pieces(model, state, tokens, cuts, n_heads):
    return np.concatenate([model.eval(state, tokens[a:b], n_heads=n_heads) for a, b in zip(cuts, cuts[1:])])


def test_streaming_splits_match_reference(stream_case, tmp_path):
    model, ref, tokens, expected = stream_case
    heads = ref.n_predict_heads
    tol = TOLERANCE["f32"]
    assert_logits_close(model.eval(model.new_state(), tokens, n_heads=heads), expected, tol, "one call")
    state = model.new_state()
    stepped = np.concatenate([model.eval(state, [t], n_heads=heads) for t in tokens])
    assert_logits_close(stepped, expected, tol, "token by token")
    rng = np.random.default_rng(5)
    for trial in range(3):
        cuts = [0] + sorted(rng.choice(np.arange(1, STREAM_TOKENS), size=5, replace=False).tolist()) + [STREAM_TOKENS]
        got = eval_pieces(model, model.new_state(), tokens, cuts, heads)
        assert_logits_close(got, expected, tol, f"split at {cuts[1:-1]}")
    for cut in (5, 8, 13):  # inside a chunk, at a boundary, inside the next
        first = model.new_state()
        model.eval(first, tokens[:cut], n_heads=1)
        path = tmp_path / f"state{cut}.bin"
        first.save(path)
        loaded = runtime.State.load(model, path)
        assert loaded.position == cut
        assert_logits_close(model.eval(loaded, tokens[cut:], n_heads=heads), expected[cut:], tol,
                            f"save/load at {cut}")
        ingested = model.new_state()
        model.ingest(ingested, tokens[:cut])
        assert ingested.position == cut
        assert_logits_close(model.eval(ingested, tokens[cut:], n_heads=heads), expected[cut:], tol,
                            f"ingest {cut} then eval")
        clone = first.clone()
        assert_logits_close(model.eval(clone, tokens[cut:], n_heads=heads), expected[cut:], tol,
                            f"clone at {cut}")


def test_last_rows_and_state_logits(stream_case):
    model, ref, tokens, expected = stream_case
    state = model.new_state()
    got = model.eval(state, tokens, n_rows=3, n_heads=2)
    assert_logits_close(got, expected[-3:, :2], TOLERANCE["f32"], "last 3 rows")
    # The state's last-position logits cover every head, also those not requested.
    for head in range(ref.n_predict_heads):
        last = state.logits(head)
        assert last is not None and last.shape == (ref.n_vocab,)
        assert rel_err(last, expected[-1, head]) <= TOLERANCE["f32"], f"state logits of head {head + 1}"
    assert model.new_state().logits(0) is None


def reference_greedy(ref, prompt, count):
    """Greedy continuation with the smallest top-2 margin seen before each choice."""
    state = ref.new_state()
    logits = ref.forward(state, prompt, n_heads=1)[-1, 0]
    out, margins = [], []
    for _ in range(count):
        top2 = np.sort(logits)[-2:]
        margins.append(top2[1] - top2[0])
        out.append(int(np.argmax(logits)))
        logits = ref.forward(state, out[-1:], n_heads=1)[-1, 0]
    return out, margins


def test_greedy_continuations_agree(stream_case, tmp_path):
    model, ref, tokens, _ = stream_case
    prompt = tokens[:21]
    count = 20

    def generate(state, rest):
        result = model.generate(state, rest, count, temperature=0.0, stop_at_eos=False)
        assert result.stop_reason == "max_tokens"
        assert state.position == len(prompt) + count
        return result.tokens

    runs = {}
    state = model.new_state()
    model.eval(state, prompt)
    runs["eval then generate"] = generate(state, [])
    runs["generate with prompt"] = generate(model.new_state(), prompt)
    state = model.new_state()
    for t in prompt[:-1]:
        model.eval(state, [t])
    runs["token by token"] = generate(state, prompt[-1:])
    state = model.new_state()
    model.ingest(state, prompt[:-1])
    runs["ingest"] = generate(state, prompt[-1:])
    state = model.new_state()
    model.eval(state, prompt[:16])
    state.save(tmp_path / "s.bin")
    runs["save/load"] = generate(runtime.State.load(model, tmp_path / "s.bin"), prompt[16:])
    first = runs["eval then generate"]
    assert len(first) == count
    for name, generated in runs.items():
        assert generated == first, f"greedy continuation differs for {name}: {generated} vs {first}"
    expected, margins = reference_greedy(ref, prompt, count)
    for i, (a, b) in enumerate(zip(first, expected)):
        if a != b:
            assert margins[i] < 1e-3, f"greedy token {i}: runtime {a}, reference {b} (margin {margins[i]:.3g})"
            break


def test_saved_state_matches_reference_state(stream_case, tmp_path):
    model, ref, tokens, _ = stream_case
    for count in (13, 16, STREAM_TOKENS):
        state = model.new_state()
        model.eval(state, tokens[:count])
        assert state.position == count
        path = tmp_path / f"state{count}.bin"
        state.save(path)
        saved = parse_state_file(path)
        ref_state = ref.new_state()
        ref.ingest(ref_state, tokens[:count])
        assert saved["flags"] == 0 and saved["history"] == []
        assert saved["fingerprint"] == model.info()["fingerprint"]
        assert saved["size"] == state.size == expected_state_bytes(ref, kv_len=count % ref.chunk_size)
        assert_state_matches(saved, ref, ref_state, TOLERANCE["f32"])


def test_state_errors(stream_case, runtime_model, tmp_path):
    model, ref, tokens, _ = stream_case
    state = model.new_state()
    model.eval(state, tokens[:10])
    path = tmp_path / "state.bin"
    state.save(path)
    other = runtime_model(**CONFIGS["one_layer"])
    with pytest.raises(runtime.MegalodonError) as err:
        runtime.State.load(other, path)
    assert err.value.status == runtime.MGL_ERR_MISMATCH
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    (tmp_path / "corrupt.bin").write_bytes(bytes(data))
    with pytest.raises(runtime.MegalodonError) as err:
        runtime.State.load(model, tmp_path / "corrupt.bin")
    assert err.value.status == runtime.MGL_ERR_FORMAT
    (tmp_path / "short.bin").write_bytes(path.read_bytes()[:50])
    with pytest.raises(runtime.MegalodonError) as err:
        runtime.State.load(model, tmp_path / "short.bin")
    assert err.value.status == runtime.MGL_ERR_FORMAT
    with pytest.raises(runtime.MegalodonError) as err:
        model.eval(model.new_state(), [0, ref.n_vocab])
    assert err.value.status == runtime.MGL_ERR_INVALID_ARG and err.value.message
    with pytest.raises(runtime.MegalodonError) as err:
        model.eval(model.new_state(), [0, 1], n_heads=ref.n_predict_heads + 1)
    assert err.value.status == runtime.MGL_ERR_INVALID_ARG
    with pytest.raises(runtime.MegalodonError) as err:
        runtime.Model(tmp_path / "missing.gguf")
    assert err.value.status == runtime.MGL_ERR_IO


def test_reset_returns_to_a_blank_state(stream_case):
    model, ref, tokens, expected = stream_case
    state = model.new_state()
    model.eval(state, tokens[:11])
    state.reset()
    assert state.position == 0
    assert_logits_close(model.eval(state, tokens, n_heads=ref.n_predict_heads), expected, TOLERANCE["f32"],
                        "after reset")


# ----------------------------------------------------------------------------------------------
# Ingest progress / cancellation, score


def test_ingest_progress_and_cancel(stream_case):
    model, ref, tokens, expected = stream_case
    chunk = ref.chunk_size
    calls = []

    def record(done, total):
        calls.append((done, total))
        return False

    state = model.new_state()
    model.ingest(state, tokens[:-1], progress=record)
    assert state.position == len(tokens) - 1
    assert calls and calls[-1] == (len(tokens) - 1, len(tokens) - 1)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)

    state = model.new_state()
    model.eval(state, tokens[:3])  # start inside a chunk
    with pytest.raises(runtime.MegalodonError) as err:
        model.ingest(state, tokens[3:-1], progress=lambda done, total: True)
    assert err.value.status == runtime.MGL_ERR_CANCELLED
    stopped = state.position
    assert 3 <= stopped < len(tokens) - 1 and (stopped == 3 or stopped % chunk == 0)
    model.ingest(state, tokens[stopped:-1])
    assert_logits_close(model.eval(state, tokens[-1:], n_heads=ref.n_predict_heads), expected[-1:],
                        TOLERANCE["f32"], f"continue after a cancel at {stopped}")

    def fail(done, total):
        raise KeyError("from the progress callback")

    with pytest.raises(KeyError):
        model.ingest(model.new_state(), tokens, progress=fail)


def test_score_matches_reference_nll(stream_case):
    model, ref, tokens, expected = stream_case
    reference_nll = ref.score(ref.new_state(), tokens)
    assert abs(reference_nll + sum(log_softmax(expected[i, 0])[tokens[i + 1]] for i in range(len(tokens) - 1))) < 1e-9
    state = model.new_state()
    total, scored = model.score(state, tokens)
    assert scored == len(tokens) - 1 and state.position == len(tokens)
    assert abs(total - reference_nll) <= 1e-4 * abs(reference_nll), (total, reference_nll)
    # Scoring continues from the state: the first token is conditioned on what came before.
    state = model.new_state()
    model.eval(state, tokens[:10])
    total, scored = model.score(state, tokens[10:])
    ref_state = ref.new_state()
    ref.ingest(ref_state, tokens[:10])
    assert scored == len(tokens) - 11
    assert abs(total - ref.score(ref_state, tokens[10:])) <= 1e-4 * abs(total)


# ----------------------------------------------------------------------------------------------
# TimestepNorm refresh mode


def test_refresh_mode_matches_reference(runtime_model, reference_model, tmp_path):
    model, ref = runtime_model(**REFRESH), reference_model(**REFRESH)
    chunk = ref.chunk_size
    tokens = random_tokens(ref.n_vocab, 60, seed=103)
    ref_state = ref.new_state(refresh=True)
    expected = ref.forward(ref_state, tokens)
    plain = ref.forward(ref.new_state(), tokens)
    assert rel_err(plain[40:, 0], expected[40:, 0]) > 100 * TOLERANCE["f32"]  # the refresh matters

    state = model.new_state(refresh=True)
    assert state.flags == runtime.MGL_STATE_TSN_REFRESH
    assert_logits_close(model.eval(state, tokens, n_heads=2), expected, TOLERANCE["f32"], "refresh, one call")
    stepped = model.new_state(refresh=True)
    got = eval_pieces(model, stepped, tokens, [0, 7, 32, 33, 41, 59, 60], 2)
    assert_logits_close(got, expected, TOLERANCE["f32"], "refresh, split calls")
    ingested = model.new_state(refresh=True)
    model.ingest(ingested, tokens[:50])
    assert_logits_close(model.eval(ingested, tokens[50:], n_heads=2), expected[50:], TOLERANCE["f32"],
                        "refresh, ingest then eval")

    path = tmp_path / "refresh.bin"
    state.save(path)
    saved = parse_state_file(path)
    assert saved["flags"] == runtime.MGL_STATE_TSN_REFRESH
    assert saved["tsn_count"] == ref_state.tsn_count == REFRESH_WINDOW_CHUNKS * chunk + 60 % (2 * chunk)
    assert saved["history"] == tokens[-len(saved["history"]):]
    assert len(saved["history"]) == REFRESH_WINDOW_CHUNKS * chunk
    assert_state_matches(saved, ref, ref_state, TOLERANCE["f32"])
    # A loaded refresh-mode state keeps refreshing exactly like the reference.
    more = random_tokens(ref.n_vocab, 12, seed=104)
    loaded = runtime.State.load(model, path)
    assert loaded.flags == runtime.MGL_STATE_TSN_REFRESH
    assert_logits_close(model.eval(loaded, more, n_heads=2), ref.forward(ref_state, more), TOLERANCE["f32"],
                        "refresh after save/load")
