"""convert_official.py on randomly initialised state dicts with the released code's names (one
file and two model-parallel shards), a hand-encoded SentencePiece model, and the runtime."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import runtime  # noqa: E402
from models.convert_official import COLUMN_PARALLEL, QK_AFFINE, ROW_PARALLEL, convert, sentencepiece_keys  # noqa: E402
from models.megalodon_torch import Megalodon, MegalodonConfig  # noqa: E402

CFG = dict(vocab_size=300, d_model=32, n_layers=2, cema_ndim=4, n_attn_heads=2, z_dim=16, value_dim=32,
           ffn_dim=64, chunk_size=8, norm_groups=4, tied_embedding=False, rope_base=1e5)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


def sentencepiece_model(pieces: list[tuple[str, float, int]]) -> bytes:
    body = b""
    for piece, score, kind in pieces:
        body += field(1, 2, field(1, 2, piece.encode()) + field(2, 5, struct.pack("<f", score)) + field(3, 0, varint(kind)))
    return body + field(3, 2, field(3, 0, varint(1)))   # normalizer_spec.add_dummy_prefix = true


def vocabulary(size: int) -> list[tuple[str, float, int]]:
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    # Every merge's parts are pieces too, as in a trained SentencePiece BPE.
    words = ["\u2581t", "\u2581th", "\u2581the", "\u2581a", "\u2581o", "\u2581of", "\u2581"] + list("abcdefghijklmnopqrstuvwxyz")
    pieces += [(w, -float(i), 1) for i, w in enumerate(words)]
    i = 0
    while len(pieces) < size:
        pieces.append((f"\u2581w{i}", -100.0 - i, 1))
        i += 1
    return pieces


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(folder, torch model) of a random official-layout checkpoint."""
    folder = tmp_path_factory.mktemp("official")
    model = Megalodon(MegalodonConfig(**CFG))
    model.reset_parameters(3)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    sd = dict(model.state_dict())
    # Buffers the released code keeps and the converter must tolerate.
    sd["rope.freqs"] = torch.zeros(CFG["z_dim"] // CFG["n_attn_heads"] // 2)
    for i in range(CFG["n_layers"]):
        sd[f"layers.{i}.mega.timenorm.prior_count"] = torch.tensor(0)
        sd[f"layers.{i}.mega.timenorm.prior_mean"] = torch.zeros(CFG["norm_groups"])
        sd[f"layers.{i}.mega.timenorm.prior_logv"] = torch.zeros(CFG["norm_groups"])
    torch.save(sd, folder / "consolidated.pth")
    config = {"model": {"model_dim": CFG["d_model"], "num_layers": CFG["n_layers"], "num_heads": CFG["n_attn_heads"],
                        "z_dim": CFG["z_dim"], "value_dim": CFG["value_dim"], "ffn_hidden_dim": CFG["ffn_dim"],
                        "chunk_size": CFG["chunk_size"], "norm_num_groups": CFG["norm_groups"], "norm_eps": 1e-5,
                        "rope_base": CFG["rope_base"], "swiglu": True, "share_emb": False, "scale_emb": False}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.model").write_bytes(sentencepiece_model(vocabulary(CFG["vocab_size"])))
    return folder, model


def shard(sd: dict, parts: int) -> list[dict]:
    """Splits a state dict the way model parallelism does (megalodon.md 8.3)."""
    shards = [{} for _ in range(parts)]
    for name, value in sd.items():
        if name == "embed.weight" or ROW_PARALLEL.search(name) or QK_AFFINE.search(name):
            pieces = torch.chunk(value, parts, dim=1)
        elif COLUMN_PARALLEL.search(name) or ".cema." in name or name.endswith(
                ("timenorm.weight", "timenorm.bias", "final_norm.weight", "final_norm.bias", "prior_mean", "prior_logv")):
            pieces = torch.chunk(value, parts, dim=0)
        else:
            pieces = [value] * parts
        for s, piece in zip(shards, pieces):
            s[name] = piece.clone()
    return shards


def expected_logits(model: Megalodon, tokens: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([tokens]))[0, :, 0].numpy()


def rel_err(got, expected) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def test_sentencepiece_model_is_read_without_the_library(official):
    folder, _ = official
    keys = sentencepiece_keys(folder / "tokenizer.model")
    tokens = keys["tokenizer.ggml.tokens"][1]
    assert len(tokens) == CFG["vocab_size"] and tokens[3] == "<0x00>" and tokens[261] == "\u2581the"
    assert keys["tokenizer.ggml.token_type"][1][:4] == [2, 3, 3, 6]
    assert keys["tokenizer.ggml.bos_token_id"] == ("u32", 1) and keys["tokenizer.ggml.eos_token_id"] == ("u32", 2)
    assert keys["tokenizer.ggml.scores"][1][260] == -1.0


def test_converted_checkpoint_runs_in_the_runtime_like_torch(official, tmp_path, runtime_library):
    folder, model = official
    out = tmp_path / "converted.gguf"
    convert(folder, out, sentencepiece_keys(folder / "tokenizer.model"), "f32")
    tokens = np.random.default_rng(0).integers(0, CFG["vocab_size"], 29).tolist()
    with runtime.Model(out) as rt:
        got = rt.eval(rt.new_state(), tokens)[:, 0]
        assert rt.tokenize("the a of") == [261, 262, 264]
    assert rel_err(got, expected_logits(model, tokens)) <= 1e-4


def test_model_parallel_shards_merge_back(official, tmp_path, runtime_library):
    folder, model = official
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / "config.json").write_text((folder / "config.json").read_text())
    for rank, part in enumerate(shard(torch.load(folder / "consolidated.pth"), 2)):
        torch.save(part, sharded / f"consolidated.{rank:02d}.pth")
    out = tmp_path / "from_shards.gguf"
    convert(sharded, out, sentencepiece_keys(folder / "tokenizer.model"), "f32")
    tokens = np.random.default_rng(1).integers(0, CFG["vocab_size"], 21).tolist()
    with runtime.Model(out) as rt:
        got = rt.eval(rt.new_state(), tokens)[:, 0]
    assert rel_err(got, expected_logits(model, tokens)) <= 1e-4


def test_missing_tensor_is_named(official, tmp_path):
    folder, _ = official
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    sd = torch.load(folder / "consolidated.pth")
    del sd["layers.1.mega.wh2.weight"]
    torch.save(sd, broken / "consolidated.pth")
    with pytest.raises(KeyError, match="layers.1.mega.wh2.weight"):
        convert(broken, tmp_path / "x.gguf", sentencepiece_keys(folder / "tokenizer.model"))
    assert not (tmp_path / "x.gguf").exists()
