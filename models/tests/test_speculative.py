"""Self-speculative decoding through the ctypes binding: greedy output and the saved state are the
same as plain decoding's (random heads, and heads that repeat head 1 so that long windows are
kept), the statistics add up, speculative sampling follows plain sampling's distribution, and bad
draft widths are errors. The exhaustive sweeps are in native/tests/test_speculative.cpp."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from models import runtime

BASE = dict(n_layers=2, d_model=32, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32, ffn_dim=64,
            chunk_size=8, norm_groups=4, vocab_size=384)
RANDOM_HEADS = dict(BASE, n_predict_heads=4, seed=61)
# The final norm's bias dominates and the extra heads repeat head 1: drafts "the same token again",
# which the near-constant output mostly confirms.
AGREEING_HEADS = dict(BASE, n_predict_heads=4, mtp_source="final", mtp_down_scale=0.0, output_norm_scale=0.1,
                      output_bias_std=1.0, seed=62)


def state_bytes(state: runtime.State, path) -> bytes:
    state.save(path)
    return path.read_bytes()


def run_pair(model: runtime.Model, prompt, tmp_path, **options):
    """(plain, speculative) results of the same generation, each with its saved state."""
    results = []
    for speculative in (False, True):
        state = model.new_state()
        result = model.generate(state, prompt, speculative=speculative, **options)
        results.append((result, state_bytes(state, tmp_path / f"s{int(speculative)}.state"), state.logits(0)))
    return results


@pytest.mark.parametrize("config", [RANDOM_HEADS, AGREEING_HEADS], ids=["random_heads", "agreeing_heads"])
def test_greedy_speculative_output_and_state_equal_plain(runtime_model, config, tmp_path):
    model = runtime_model(**config)
    rng = np.random.default_rng(config["seed"])
    drafted = accepted = 0
    for case in range(40):
        prompt = rng.integers(0, model.n_vocab, int(rng.integers(1, 20))).tolist()
        options = dict(max_tokens=int(rng.integers(1, 40)), temperature=0.0,
                       stop_at_eos=bool(case % 3), draft=int(rng.integers(0, 5)))
        if case % 5 == 0:
            options.update(repeat_penalty=1.3, repeat_last_n=8)
        (plain, plain_state, plain_logits), (spec, spec_state, spec_logits) = run_pair(model, prompt, tmp_path,
                                                                                       **options)
        assert spec.tokens == plain.tokens, (prompt, options)
        assert spec.text == plain.text and spec.stop_reason == plain.stop_reason
        assert spec_state == plain_state, "the states after both runs differ"
        assert np.array_equal(spec_logits, plain_logits)
        drafted += sum(spec.drafted)
        accepted += sum(spec.accepted)
    if config is AGREEING_HEADS:
        assert accepted > 0.5 * drafted
    else:
        assert accepted < 0.5 * drafted


def test_stop_string_inside_an_accepted_window(runtime_model, tmp_path):
    model = runtime_model(**AGREEING_HEADS)
    prompt = [7, 8, 9]
    full = model.generate(model.new_state(), prompt, 40, temperature=0.0, stop_at_eos=False)
    stop = full.text[5:8]
    (plain, plain_state, _), (spec, spec_state, _) = run_pair(model, prompt, tmp_path, max_tokens=40,
                                                              temperature=0.0, stop=[stop], stop_at_eos=False)
    assert plain.stop_reason == "string"
    assert spec.tokens == plain.tokens and spec.text == plain.text and spec_state == plain_state


def test_statistics(runtime_model):
    model = runtime_model(**AGREEING_HEADS)
    result = model.generate(model.new_state(), [3, 4, 5], 60, temperature=0.0, stop_at_eos=False,
                            speculative=True)
    assert result.draft_heads == 4
    assert len(result.drafted) == len(result.accepted) == 3
    assert result.forward_passes + sum(result.accepted) == len(result.tokens) == 60
    assert result.tokens_per_forward == pytest.approx(60 / result.forward_passes)
    assert result.tokens_per_forward > 1.5
    assert all(a <= d for a, d in zip(result.accepted, result.drafted))
    plain = model.generate(model.new_state(), [3, 4, 5], 60, temperature=0.0, stop_at_eos=False)
    assert plain.forward_passes == 60 and plain.draft_heads == 1 and plain.drafted == []
    narrow = model.generate(model.new_state(), [3, 4, 5], 60, temperature=0.0, stop_at_eos=False,
                            speculative=True, draft=2)
    assert narrow.draft_heads == 2 and narrow.tokens == plain.tokens


def test_draft_wider_than_the_model_is_an_error(runtime_model):
    model = runtime_model(**RANDOM_HEADS)
    for draft, mention in ((5, "the model has 4 prediction heads"), (17, "outside [0, 16]"), (-1, "draft = -1")):
        state = model.new_state()
        with pytest.raises(runtime.MegalodonError) as caught:
            model.generate(state, [1, 2], 4, speculative=True, draft=draft)
        assert caught.value.status_name == "MGL_ERR_INVALID_ARG"
        assert mention in caught.value.message
        assert state.position == 0
    # Off: the width is not looked at.
    assert len(model.generate(model.new_state(), [1, 2], 4, draft=99).tokens) == 4


def test_sampling_distribution_matches_plain(runtime_model):
    """Two-sample chi-square over the first two tokens (cells with fewer than 10 draws pooled),
    deterministic seeds, threshold at a false-alarm rate of about 1e-6."""
    model = runtime_model(**dict(AGREEING_HEADS, vocab_size=272, output_norm_scale=0.8, output_bias_std=3.0,
                                 mtp_down_scale=0.5, seed=63))
    options = dict(temperature=0.9, top_k=40, top_p=0.95, min_p=0.01, repeat_penalty=1.2, repeat_last_n=8,
                   stop_at_eos=False)
    runs = 4000
    counts = []
    accepted = drafted = 0
    for speculative, seed0 in ((False, 10_000), (True, 0)):
        outcomes = Counter()
        for r in range(runs):
            result = model.generate(model.new_state(), [5, 77, 140], 2, seed=seed0 + r, speculative=speculative,
                                    **options)
            outcomes[tuple(result.tokens)] += 1
            drafted += sum(result.drafted)
            accepted += sum(result.accepted)
        counts.append(outcomes)
    assert 0.05 < accepted / drafted < 0.95
    for view in (slice(0, 2), slice(1, 2)):
        a, b = (Counter() for _ in range(2))
        for source, target in ((counts[0], a), (counts[1], b)):
            for key, n in source.items():
                target[key[view]] += n
        stat, cells, pooled = 0.0, 0, [0, 0]
        for key in set(a) | set(b):
            x, y = a[key], b[key]
            if x + y >= 10:
                stat += (x - y) ** 2 / (x + y)
                cells += 1
            else:
                pooled[0] += x
                pooled[1] += y
        if sum(pooled):
            stat += (pooled[0] - pooled[1]) ** 2 / sum(pooled)
            cells += 1
        dof = cells - 1
        assert dof >= 3
        h = 2 / (9 * dof)
        limit = dof * (1 - h + 4.75 * np.sqrt(h)) ** 3
        assert stat < limit, f"chi-square {stat:.1f} over {dof} degrees of freedom (limit {limit:.1f})"
