"""models/widen_ffn.py: the widened copy has the wider feed-forward tensors and computes what the
original computes (float64 reference and runtime, every head), and bad widths are errors."""

from __future__ import annotations

import numpy as np
import pytest

from models import runtime
from models.gguf import GGUFReader
from models.reference import ReferenceModel
from models.widen_ffn import main as widen_main
from models.widen_ffn import widen_ffn

CONFIG = dict(n_layers=2, d_model=64, cema_ndim=4, n_attn_heads=2, z_dim=32, value_dim=64, ffn_dim=96,
              chunk_size=16, norm_groups=4, vocab_size=384, n_predict_heads=3, mtp_source="final", seed=23)


@pytest.mark.parametrize("dtype,swiglu", [("q8_0", True), ("f32", True), ("f32", False)])
def test_widened_model_computes_the_same(model_file, runtime_library, tmp_path, dtype, swiglu):
    src = model_file(**CONFIG, dtype=dtype, swiglu=swiglu)
    dst = widen_ffn(src, tmp_path / "wide.gguf", 640)
    reader = GGUFReader(dst)
    assert reader["megalodon.feed_forward_length"] == 640
    assert reader.tensor("blk.1.ffn_gate.weight").shape == (640, 64)
    assert reader.tensor("blk.1.ffn_down.weight").shape == (64, 640)
    assert ("blk.0.ffn_up.weight" in reader.tensors) == swiglu
    original = GGUFReader(src)
    for name, tensor in original.tensors.items():  # everything else is copied as it is
        if ".ffn_" not in name:
            assert reader.tensor(name).raw.tobytes() == tensor.raw.tobytes(), name

    tokens = np.random.default_rng(5).integers(0, 384, 40).tolist()  # crosses chunk boundaries
    references = [ReferenceModel(path) for path in (src, dst)]
    ref_logits = [model.forward(model.new_state(), tokens) for model in references]
    np.testing.assert_allclose(ref_logits[1], ref_logits[0], rtol=0, atol=1e-12)
    with runtime.Model(src, n_threads=2) as small, runtime.Model(dst, n_threads=2) as wide:
        a = small.eval(small.new_state(), tokens, n_heads=3)
        b = wide.eval(wide.new_state(), tokens, n_heads=3)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
        assert np.array_equal(b.argmax(-1), a.argmax(-1))
        plain = small.generate(small.new_state(), tokens[:12], 24, temperature=0.0, stop_at_eos=False)
        spec = wide.generate(wide.new_state(), tokens[:12], 24, temperature=0.0, stop_at_eos=False,
                             speculative=True)
        assert spec.tokens == plain.tokens


def test_bad_widths_are_errors(model_file, tmp_path, capsys):
    q8 = model_file(**CONFIG, dtype="q8_0")
    with pytest.raises(ValueError, match="below the model's feed-forward width 96"):
        widen_ffn(q8, tmp_path / "narrow.gguf", 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        widen_ffn(q8, tmp_path / "odd.gguf", 100)
    with pytest.raises(SystemExit):
        widen_main([q8, str(tmp_path / "odd.gguf"), "--ffn", "100"])
    assert "multiple of 32" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
