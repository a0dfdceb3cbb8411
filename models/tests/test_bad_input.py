"""Bad input through the C API: every case ends in a status and a message that names the file or
the offending value, never a crash. Parser fuzzing runs in a subprocess (fuzz_loaders.py), so a
crash shows up as a failed test rather than ending the test run."""

from __future__ import annotations

import ctypes
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from models import runtime
from models.gguf import GGUFReader
from models.tests.gguf_edit import rewrite_model, tensor_info_offsets

REPO = Path(__file__).resolve().parents[2]
MODEL = dict(n_layers=1, d_model=16, cema_ndim=2, n_attn_heads=1, z_dim=8, value_dim=16, ffn_dim=32,
             chunk_size=8, norm_groups=2, vocab_size=300, seed=41)
SAME_SHAPE_OTHER_WEIGHTS = dict(MODEL, seed=42)
OTHER_SHAPE = dict(MODEL, d_model=32, value_dim=32, seed=43)
STATE_TOKENS = 13  # not a multiple of the chunk size: the state file holds keys and values too


def expect_error(status_name: str, call, *mentions) -> runtime.MegalodonError:
    """Runs call(), which must fail with `status_name` and a message containing every mention."""
    with pytest.raises(runtime.MegalodonError) as caught:
        call()
    error = caught.value
    assert error.status_name == status_name, f"got {error.status_name}: {error.message}"
    for mention in mentions:
        assert str(mention) in error.message, f"message {error.message!r} does not mention {mention!r}"
    return error


def load(path) -> runtime.Model:
    return runtime.Model(path, n_threads=1)


@pytest.fixture(scope="module")
def model_path(model_file) -> Path:
    return Path(model_file(**MODEL))


@pytest.fixture(scope="module")
def model(model_path, runtime_library):
    with load(model_path) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def state_file(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("state") / "valid.state"
    state = model.new_state()
    model.ingest(state, list(range(1, STATE_TOKENS + 1)))
    state.save(path)
    state.close()
    return path


# ----------------------------------------------------------------------------------------------
# Model files


def test_truncated_model_file(model_path, tmp_path, runtime_library):
    data = model_path.read_bytes()
    reader = GGUFReader(model_path)
    data_end = max(t.offset + t.raw.nbytes for t in reader.tensors.values())  # the last bytes in use
    header_points = [1, 3, 4, 6, 8, 13, 16, 23, 24, 30]
    spread = np.linspace(31, data_end - 1, 10).astype(int).tolist()
    cuts = sorted(set(header_points + spread))
    assert len(cuts) == 20 and cuts[-1] < data_end <= len(data)
    for cut in cuts:
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        error = expect_error("MGL_ERR_FORMAT", lambda: load(path), path)
        assert any(word in error.message for word in ("truncated", "outside the file", "bad magic", "impossible",
                                                      "does not fit")), f"cut at {cut}: {error.message}"


def test_bad_magic(model_path, tmp_path, runtime_library):
    path = tmp_path / "magic.gguf"
    path.write_bytes(b"GGUX" + model_path.read_bytes()[4:])
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, "magic")


def test_unsupported_gguf_version(model_path, tmp_path, runtime_library):
    path = tmp_path / "version.gguf"
    data = bytearray(model_path.read_bytes())
    data[4:8] = struct.pack("<I", 7)
    path.write_bytes(data)
    expect_error("MGL_ERR_UNSUPPORTED", lambda: load(path), path, "version 7")


def test_wrong_architecture(model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "arch.gguf", keys={"general.architecture": ("str", "llama")})
    expect_error("MGL_ERR_UNSUPPORTED", lambda: load(path), path, "'llama'")


def test_missing_architecture(model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "noarch.gguf", drop_keys=("general.architecture",))
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, "general.architecture")


@pytest.mark.parametrize("tensor", ["blk.0.attn_z.weight", "token_embd.weight", "output_norm.bias"])
def test_missing_tensor(tensor, model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "missing.gguf", drop_tensors=(tensor,))
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, tensor)


def test_tensor_of_wrong_shape(model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "shape.gguf",
                         tensors={"blk.0.attn_v.weight": (np.zeros((16, 15), np.float32), "f32")})
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, "blk.0.attn_v.weight")


def test_vocabulary_and_embedding_disagree(model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "rows.gguf",
                         tensors={"token_embd.weight": (np.zeros((299, 16), np.float32), "f32")})
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, "token_embd.weight")


@pytest.mark.parametrize("key, value_type, value", [
    ("megalodon.embedding_length", "u32", 2 ** 31),
    ("megalodon.embedding_length", "u64", 2 ** 63),
    ("megalodon.block_count", "u32", 2 ** 32 - 1),
    ("megalodon.chunk_size", "u32", 2 ** 31),
    ("megalodon.feed_forward_length", "u64", 2 ** 40),
    ("megalodon.cema_ndim", "u32", 2 ** 31),
    ("megalodon.attention.z_dim", "u32", 2 ** 31),
    ("megalodon.mtp.head_count", "u32", 2 ** 31),
])
def test_huge_dimension_keys(key, value_type, value, model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "huge.gguf", keys={key: (value_type, value)})
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, key, value)


def test_dimension_key_of_wrong_type(model_path, tmp_path, runtime_library):
    path = rewrite_model(model_path, tmp_path / "type.gguf", keys={"megalodon.embedding_length": ("str", "16")})
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, "megalodon.embedding_length")


@pytest.mark.parametrize("offset", ["past_end", "overflow"])
def test_tensor_data_outside_the_file(offset, model_path, tmp_path, runtime_library):
    data = bytearray(model_path.read_bytes())
    name = "output_norm.weight"
    field = tensor_info_offsets(model_path)[name]
    bad = (len(data) + 4096) // 32 * 32 if offset == "past_end" else 2 ** 64 - 32
    data[field:field + 8] = struct.pack("<Q", bad)
    path = tmp_path / "outside.gguf"
    path.write_bytes(data)
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path, name, "outside the file")


def test_empty_file(tmp_path, runtime_library):
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    expect_error("MGL_ERR_FORMAT", lambda: load(path), path)


def test_directory_instead_of_a_file(tmp_path, runtime_library):
    expect_error("MGL_ERR_IO", lambda: load(tmp_path), tmp_path)


def test_missing_file(tmp_path, runtime_library):
    path = tmp_path / "does-not-exist.gguf"
    expect_error("MGL_ERR_IO", lambda: load(path), path)


def test_null_arguments(model, runtime_library):
    lib = runtime.load_library()
    handle = ctypes.c_void_p()
    params = lib.mgl_model_default_params()
    assert lib.mgl_model_load(None, ctypes.byref(params), ctypes.byref(handle)) == runtime.MGL_ERR_INVALID_ARG
    assert b"path" in lib.mgl_last_error()
    count = ctypes.c_size_t()
    assert lib.mgl_tokenize(model.handle, None, 5, 0, None, 0, ctypes.byref(count)) == runtime.MGL_ERR_INVALID_ARG
    assert b"text" in lib.mgl_last_error()
    assert lib.mgl_tokenize(None, b"x", 1, 0, None, 0, ctypes.byref(count)) == runtime.MGL_ERR_INVALID_ARG
    assert b"model" in lib.mgl_last_error()
    assert lib.mgl_token_piece(model.handle, -1) is None


# ----------------------------------------------------------------------------------------------
# State files


def test_state_of_another_model(model, state_file, model_file, tmp_path, runtime_library):
    for config in (SAME_SHAPE_OTHER_WEIGHTS, OTHER_SHAPE):
        with load(model_file(**config)) as other:
            error = expect_error("MGL_ERR_MISMATCH", lambda: runtime.State.load(other, state_file), state_file)
            assert f"{model.info()['fingerprint']:016x}" in error.message.lower()


def test_truncated_state(model, state_file, tmp_path):
    data = state_file.read_bytes()
    for cut in (0, 1, 8, 40, 80, len(data) // 2, len(data) - 9, len(data) - 1):
        path = tmp_path / f"cut{cut}.state"
        path.write_bytes(data[:cut])
        expect_error("MGL_ERR_FORMAT", lambda: runtime.State.load(model, path), path)


def test_bit_flipped_state(model, state_file, tmp_path):
    data = state_file.read_bytes()
    version_field = range(8, 12)  # a changed version is reported as unsupported instead
    positions = [p for p in np.linspace(0, len(data) - 1, 40).astype(int).tolist() if p not in version_field]
    for position in positions:
        for bit in (0, 7):
            flipped = bytearray(data)
            flipped[position] ^= 1 << bit
            path = tmp_path / "flipped.state"
            path.write_bytes(flipped)
            error = expect_error("MGL_ERR_FORMAT", lambda: runtime.State.load(model, path), path)
            assert error.message, f"byte {position} bit {bit}"


def test_state_of_unsupported_version(model, state_file, tmp_path):
    data = bytearray(state_file.read_bytes())
    data[8:12] = struct.pack("<I", 99)
    path = tmp_path / "version.state"
    path.write_bytes(data)
    expect_error("MGL_ERR_UNSUPPORTED", lambda: runtime.State.load(model, path), path, "version 99")


def test_state_file_that_is_missing_empty_or_a_directory(model, tmp_path):
    missing = tmp_path / "nothing.state"
    expect_error("MGL_ERR_IO", lambda: runtime.State.load(model, missing), missing)
    expect_error("MGL_ERR_IO", lambda: runtime.State.load(model, tmp_path), tmp_path)
    empty = tmp_path / "empty.state"
    empty.write_bytes(b"")
    expect_error("MGL_ERR_FORMAT", lambda: runtime.State.load(model, empty), empty)
    not_a_state = tmp_path / "model-as-state.state"
    not_a_state.write_bytes(Path(model.path).read_bytes())
    expect_error("MGL_ERR_FORMAT", lambda: runtime.State.load(model, not_a_state), not_a_state)


def test_save_into_missing_folder(model, tmp_path):
    state = model.new_state()
    path = tmp_path / "no" / "such" / "folder" / "x.state"
    expect_error("MGL_ERR_IO", lambda: state.save(path), path)
    assert not (tmp_path / "no").exists()


def test_failed_save_over_a_directory_leaves_it_alone(model, tmp_path):
    target = tmp_path / "target.state"
    target.mkdir()
    (target / "inside.txt").write_text("keep me")
    state = model.new_state()
    model.ingest(state, [1, 2, 3])
    expect_error("MGL_ERR_IO", lambda: state.save(target), target)
    assert target.is_dir() and (target / "inside.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.state"], "a temporary file was left behind"


def test_save_that_fails_midway_keeps_the_previous_file(model_path, state_file, tmp_path, runtime_library):
    """A file size limit smaller than the state makes the write fail part way (EFBIG): the save
    must report MGL_ERR_IO, leave the previous file at the target untouched and no temporary
    file behind. Runs in a subprocess because the limit applies to the whole process."""
    target = tmp_path / "kept.state"
    previous = state_file.read_bytes()
    target.write_bytes(previous)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from models import runtime
        model = runtime.Model({str(model_path)!r}, n_threads=1)
        state = model.new_state()
        model.ingest(state, list(range(1, 31)))
        assert state.size > {len(previous) // 2}
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, ({len(previous) // 2}, resource.RLIM_INFINITY))
        try:
            state.save({str(target)!r})
        except runtime.MegalodonError as error:
            print(error.status_name, error.message)
            sys.exit(0)
        sys.exit("the save succeeded despite the file size limit")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    status, message = result.stdout.split(" ", 1)
    assert status == "MGL_ERR_IO", result.stdout
    assert str(target) in message
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.state"], "a temporary file was left behind"


# ----------------------------------------------------------------------------------------------
# Tokens and empty input


@pytest.mark.parametrize("bad_token", [-1, 300, 2 ** 31 - 1, -(2 ** 31)])
def test_token_ids_out_of_range(bad_token, model):
    state = model.new_state()
    tokens = [5, bad_token, 7]
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.ingest(state, tokens), f"token {bad_token}", "[0, 300)")
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.eval(state, tokens), f"token {bad_token}")
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.score(state, tokens), f"token {bad_token}")
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.detokenize(tokens), f"token {bad_token}")
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.generate(state, tokens, 2), f"token {bad_token}")
    assert state.position == 0, "a rejected call must not consume any token"
    with pytest.raises(runtime.MegalodonError):
        model.piece(bad_token)


def test_empty_input(model):
    state = model.new_state()
    model.ingest(state, [])
    assert state.position == 0
    assert model.eval(state, [], n_rows=0).shape == (0, 1, model.n_vocab)
    assert state.position == 0 and state.logits() is None
    expect_error("MGL_ERR_INVALID_ARG", lambda: model.eval(state, [], n_rows=1), "n_rows = 1")
    assert model.tokenize(b"") == []
    assert model.tokenize(b"", add_bos=True) == [model.info()["bos_token"]]
    assert model.detokenize([]) == b""


# ----------------------------------------------------------------------------------------------
# Fuzzing


FUZZ_MODELS = {"gpt2": MODEL, "llama_two_heads": dict(MODEL, tokenizer="llama", vocab_size=400, n_predict_heads=2,
                                                      mtp_hidden=16, seed=44)}


@pytest.mark.parametrize("name", FUZZ_MODELS)
def test_fuzzed_model_and_state_files_never_crash(name, model_file, tmp_path, runtime_library):
    path = model_file(**FUZZ_MODELS[name])
    state_path = tmp_path / "fuzz.state"
    with load(path) as fuzzed_model:
        state = fuzzed_model.new_state()
        fuzzed_model.ingest(state, list(range(1, STATE_TOKENS + 1)))
        state.save(state_path)
        state.close()
    result = subprocess.run(
        [sys.executable, "-m", "models.tests.fuzz_loaders", "--model", str(path), "--state", str(state_path),
         "--iterations", "300", "--seed", str(list(FUZZ_MODELS).index(name))],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (f"fuzzing ended with {result.returncode} (a negative value is the signal "
                                    f"that killed it)\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert sum(summary["model"].values()) == 300 and sum(summary["state"].values()) == 300
    # Every changed state file must be rejected: the checksum covers all of it.
    assert "MGL_OK" not in summary["state"], summary
    # Most mutations hit the parsed header of the model and must be rejected.
    assert summary["model"].get("MGL_ERR_FORMAT", 0) > 150, summary
