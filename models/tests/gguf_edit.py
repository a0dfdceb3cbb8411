"""Copies of model files with chosen changes (metadata, tensors, vocabulary), for tests that need
variants the model generator does not make: other vocabularies, broken or unusual files."""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from models.gguf import (ARRAY, BOOL, FLOAT32, FLOAT64, INT8, INT16, INT32, INT64, STRING, UINT8, UINT16,
                         UINT32, UINT64, GGUFReader, GGUFWriter)

# Element types of the array keys FORMAT.md defines (GGUFReader returns arrays as plain lists).
ARRAY_ELEMENT_TYPES = {
    "tokenizer.ggml.tokens": "str",
    "tokenizer.ggml.merges": "str",
    "tokenizer.ggml.scores": "f32",
    "tokenizer.ggml.token_type": "i32",
}


def rewrite_model(src: str | os.PathLike, dst: str | os.PathLike, *, keys: dict[str, tuple[Any, Any]] | None = None,
                  drop_keys: tuple[str, ...] = (), tensors: dict[str, tuple[np.ndarray, str]] | None = None,
                  drop_tensors: tuple[str, ...] = ()) -> str:
    """Writes `src` to `dst` with metadata `keys` set (name -> (type, value); the type as
    GGUFWriter.add_value takes it, or "str[]", "f32[]", ... for arrays), `drop_keys` removed,
    `tensors` replaced or added (name -> (array in PyTorch order, tensor type)) and
    `drop_tensors` removed."""
    reader = GGUFReader(src)
    keys = keys or {}
    tensors = tensors or {}
    alignment = int(reader.get("general.alignment", 32))
    writer = GGUFWriter(alignment)
    for name, value in reader.keys.items():
        if name in keys or name in drop_keys or name == "general.alignment":
            continue
        if reader.key_types[name] == ARRAY:
            writer.add_array(name, value, ARRAY_ELEMENT_TYPES[name])
        else:
            writer.add_value(name, value, reader.key_types[name])
    for name, (kind, value) in keys.items():
        if isinstance(kind, str) and kind.endswith("[]"):
            writer.add_array(name, value, kind[:-2])
        else:
            writer.add_value(name, value, kind)
    for name, tensor in reader.tensors.items():
        if name in drop_tensors or name in tensors:
            continue
        writer.add_tensor(name, tensor.to_float64().astype(np.float32), tensor.type_name)
    for name, (array, type_name) in tensors.items():
        writer.add_tensor(name, array, type_name)
    writer.write(dst)
    return os.fspath(dst)


def with_vocabulary(src: str | os.PathLike, dst: str | os.PathLike, vocab_keys: dict[str, tuple[str, Any]],
                    seed: int = 0) -> str:
    """`src` with its tokenizer.* keys replaced by `vocab_keys`; the embedding (and the LM head,
    if untied) get fresh random rows for the new vocabulary size."""
    reader = GGUFReader(src)
    n_vocab = len(vocab_keys["tokenizer.ggml.tokens"][1])
    rng = np.random.default_rng(seed)
    tensors = {}
    for name in ("token_embd.weight", "output.weight"):
        if name in reader.tensors:
            old = reader.tensors[name]
            d_model = old.shape[1]
            rows = rng.standard_normal((n_vocab, d_model)).astype(np.float32) / np.float32(np.sqrt(d_model))
            tensors[name] = (rows, old.type_name)
    old_tokenizer_keys = tuple(k for k in reader.keys if k.startswith("tokenizer."))
    return rewrite_model(src, dst, keys=vocab_keys, drop_keys=old_tokenizer_keys, tensors=tensors)


def tokenizer_keys(path: str | os.PathLike) -> dict[str, tuple[str, Any]]:
    """The tokenizer.* metadata of a model, in the form rewrite_model takes."""
    reader = GGUFReader(path)
    out = {}
    for name, value in reader.keys.items():
        if not name.startswith("tokenizer."):
            continue
        if reader.key_types[name] == ARRAY:
            out[name] = (ARRAY_ELEMENT_TYPES[name] + "[]", list(value))
        else:
            out[name] = (reader.key_types[name], value)
    return out


# ----------------------------------------------------------------------------------------------
# Byte-level layout, for edits that a well-formed writer cannot make


def tensor_info_offsets(path: str | os.PathLike) -> dict[str, int]:
    """File position of each tensor's 64-bit data offset field in the tensor-info section."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 4 + 4
    n_tensors, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16

    def skip_string(p: int) -> int:
        (length,) = struct.unpack_from("<Q", data, p)
        return p + 8 + length

    sizes = {UINT8: 1, INT8: 1, BOOL: 1, UINT16: 2, INT16: 2, UINT32: 4, INT32: 4, FLOAT32: 4, UINT64: 8,
             INT64: 8, FLOAT64: 8}
    for _ in range(n_kv):
        pos = skip_string(pos)
        (vtype,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if vtype == ARRAY:
            etype, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            for _ in range(count):
                pos = skip_string(pos) if etype == STRING else pos + sizes[etype]
        else:
            pos = skip_string(pos) if vtype == STRING else pos + sizes[vtype]
    offsets = {}
    for _ in range(n_tensors):
        (length,) = struct.unpack_from("<Q", data, pos)
        name = data[pos + 8:pos + 8 + length].decode()
        pos += 8 + length
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4
        offsets[name] = pos
        pos += 8
    return offsets

