"""Copies of model files with chosen changes (metadata, tensors, vocabulary), for tests that need
variants the model generator does not make: other vocabularies, broken or unusual files."""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from models.gguf import (ARRAY, ARRAY_ELEMENT_TYPES, BOOL, FLOAT32, FLOAT64, INT8, INT16, INT32, INT64, STRING,
                         UINT8, UINT16, UINT32, UINT64, GGUFReader, rewrite_model)

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

