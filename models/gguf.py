"""GGUF v3 reader and writer for MEGALODON model files (native/FORMAT.md section 1).

Tensors are exchanged as numpy arrays in PyTorch order ([out, in] for a matrix); on disk the
dimensions are reversed (ne[0] is the contiguous axis), which leaves the bytes unchanged.
"""

from __future__ import annotations

import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
DEFAULT_ALIGNMENT = 32

# Metadata value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)

_SCALAR_FORMATS = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i",
    FLOAT32: "<f", BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}
_VALUE_TYPE_NAMES = {
    "u8": UINT8, "i8": INT8, "u16": UINT16, "i16": INT16, "u32": UINT32, "i32": INT32,
    "f32": FLOAT32, "bool": BOOL, "str": STRING, "u64": UINT64, "i64": INT64, "f64": FLOAT64,
}

# Tensor types: GGUF type id, elements per block, bytes per block.
TENSOR_TYPES = {"f32": (0, 1, 4), "f16": (1, 1, 2), "q8_0": (8, 32, 34), "bf16": (30, 1, 2)}
_TENSOR_TYPE_BY_ID = {type_id: name for name, (type_id, _, _) in TENSOR_TYPES.items()}
Q8_0_BLOCK = 32
_Q8_0_DTYPE = np.dtype([("d", "<f2"), ("q", "i1", (Q8_0_BLOCK,))])


class GGUFError(ValueError):
    """Malformed GGUF input (names the file and the field)."""


# ----------------------------------------------------------------------------------------------
# Element conversions


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns of float32 values, rounded to nearest, ties to even."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = ((bits.astype(np.uint64) + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    # NaN must stay NaN (rounding could carry its mantissa into the exponent): keep a quiet NaN.
    nan = np.isnan(x)
    if np.any(nan):
        rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
    return rounded


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), returned as float32."""
    return bf16_bits_to_float32(float32_to_bf16_bits(np.asarray(x, dtype=np.float32)))


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """q8_0 blocks of `x` along its last axis (length a multiple of 32): d = max|x|/127 as f16,
    q = round(x/d) as int8 (q = 0 when d = 0). Returns a structured array of blocks."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] % Q8_0_BLOCK != 0:
        raise ValueError(f"q8_0 needs the last dimension to be a multiple of 32, got {x.shape}")
    blocks = x.reshape(-1, Q8_0_BLOCK)
    d = np.abs(blocks).max(axis=1) / 127.0
    inv_d = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
    scaled = blocks * inv_d[:, None]
    q = np.clip(np.trunc(scaled + np.copysign(0.5, scaled)), -127, 127).astype(np.int8)  # half away from 0
    out = np.empty(blocks.shape[0], dtype=_Q8_0_DTYPE)
    out["d"] = d.astype(np.float16)
    out["q"] = q
    return out


def dequantize_q8_0(blocks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    values = blocks["d"].astype(np.float64)[:, None] * blocks["q"].astype(np.float64)
    return values.reshape(shape)


# ----------------------------------------------------------------------------------------------
# Writer


@dataclass
class _PendingTensor:
    name: str
    shape: tuple[int, ...]  # PyTorch order
    type_name: str
    payload: bytes


class GGUFWriter:
    """Collects metadata and tensors, then writes one GGUF v3 file."""

    def __init__(self, alignment: int = DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment % 8 != 0:
            raise ValueError(f"alignment must be a positive multiple of 8, got {alignment}")
        self.alignment = alignment
        self._kv: dict[str, tuple[int, Any, int | None]] = {}
        self._tensors: dict[str, _PendingTensor] = {}
        if alignment != DEFAULT_ALIGNMENT:
            self.add_uint32("general.alignment", alignment)

    # Metadata ----------------------------------------------------------------------------------
    def add_value(self, key: str, value: Any, value_type: int | str) -> None:
        vtype = _VALUE_TYPE_NAMES[value_type] if isinstance(value_type, str) else value_type
        if vtype == ARRAY or (vtype not in _SCALAR_FORMATS and vtype != STRING):
            raise ValueError(f"{key}: {value_type!r} is not a scalar value type")
        self._kv[key] = (vtype, value, None)

    def add_array(self, key: str, values: Iterable[Any], elem_type: int | str) -> None:
        etype = _VALUE_TYPE_NAMES[elem_type] if isinstance(elem_type, str) else elem_type
        if etype == ARRAY:
            raise ValueError(f"{key}: nested arrays are not supported")
        self._kv[key] = (ARRAY, list(values), etype)

    def add_string(self, key: str, value: str) -> None:
        self.add_value(key, value, STRING)

    def add_bool(self, key: str, value: bool) -> None:
        self.add_value(key, bool(value), BOOL)

    def add_uint32(self, key: str, value: int) -> None:
        self.add_value(key, int(value), UINT32)

    def add_int32(self, key: str, value: int) -> None:
        self.add_value(key, int(value), INT32)

    def add_uint64(self, key: str, value: int) -> None:
        self.add_value(key, int(value), UINT64)

    def add_float32(self, key: str, value: float) -> None:
        self.add_value(key, float(value), FLOAT32)

    # Tensors -----------------------------------------------------------------------------------
    def add_tensor(self, name: str, array: np.ndarray, dtype: str = "f32") -> None:
        """Adds a tensor given in PyTorch order, converted to `dtype` (f32, f16, bf16, q8_0)."""
        if dtype not in TENSOR_TYPES:
            raise ValueError(f"{name}: unknown tensor type {dtype!r}")
        if name in self._tensors:
            raise ValueError(f"duplicate tensor {name}")
        array = np.asarray(array)
        if array.ndim == 0 or array.ndim > 4:
            raise ValueError(f"{name}: GGUF tensors have 1 to 4 dimensions, got shape {array.shape}")
        if dtype == "f32":
            payload = np.ascontiguousarray(array, dtype="<f4").tobytes()
        elif dtype == "f16":
            payload = np.ascontiguousarray(array, dtype=np.float32).astype("<f2").tobytes()
        elif dtype == "bf16":
            payload = float32_to_bf16_bits(array).astype("<u2").tobytes()
        else:
            payload = quantize_q8_0(array).tobytes()
        self._tensors[name] = _PendingTensor(name, tuple(int(n) for n in array.shape), dtype, payload)

    # Output ------------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike) -> None:
        """Writes the file atomically: a temporary file in the same folder, then a rename."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp_path = tempfile.mkstemp(prefix=".gguf-", suffix=".tmp", dir=folder)
        try:
            # mkstemp creates the file private; give it the permissions of an ordinary file.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
            with os.fdopen(fd, "wb") as out:
                self._write_to(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_path, path)
        except BaseException:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
            raise

    def _write_to(self, out) -> None:
        header = bytearray()
        header += GGUF_MAGIC
        header += struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))
        for key, (vtype, value, etype) in self._kv.items():
            header += _pack_string(key)
            header += struct.pack("<I", vtype)
            if vtype == ARRAY:
                header += struct.pack("<IQ", etype, len(value))
                for item in value:
                    header += _pack_scalar(etype, item, key)
            else:
                header += _pack_scalar(vtype, value, key)
        offset = 0
        for tensor in self._tensors.values():
            header += _pack_string(tensor.name)
            header += struct.pack("<I", len(tensor.shape))
            for n in reversed(tensor.shape):
                header += struct.pack("<Q", n)
            header += struct.pack("<IQ", TENSOR_TYPES[tensor.type_name][0], offset)
            offset += _aligned(len(tensor.payload), self.alignment)
        header += b"\0" * (_aligned(len(header), self.alignment) - len(header))
        out.write(header)
        for tensor in self._tensors.values():
            out.write(tensor.payload)
            out.write(b"\0" * (_aligned(len(tensor.payload), self.alignment) - len(tensor.payload)))


def _aligned(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _pack_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _pack_scalar(vtype: int, value: Any, key: str) -> bytes:
    if vtype == STRING:
        if not isinstance(value, str):
            raise TypeError(f"{key}: expected a string, got {type(value).__name__}")
        return _pack_string(value)
    try:
        return struct.pack(_SCALAR_FORMATS[vtype], value)
    except struct.error as err:
        raise ValueError(f"{key}: value {value!r} does not fit value type {vtype}: {err}") from None


# ----------------------------------------------------------------------------------------------
# Reader


@dataclass
class GGUFTensor:
    name: str
    type_name: str            # f32, f16, bf16 or q8_0
    shape: tuple[int, ...]    # PyTorch order
    offset: int               # absolute file offset of the data
    raw: np.ndarray           # stored elements (q8_0: structured blocks)

    def to_float64(self) -> np.ndarray:
        """Dequantized values in PyTorch order."""
        if self.type_name == "q8_0":
            return dequantize_q8_0(self.raw, self.shape)
        if self.type_name == "bf16":
            return bf16_bits_to_float32(self.raw).astype(np.float64).reshape(self.shape)
        return self.raw.astype(np.float64).reshape(self.shape)


class GGUFReader:
    """Parses a GGUF v3 file: `keys` (name -> value; arrays as lists) and `tensors`."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
        self._pos = 0
        self.keys: dict[str, Any] = {}
        self.key_types: dict[str, int] = {}
        self.tensors: dict[str, GGUFTensor] = {}
        self._parse()

    def __getitem__(self, key: str) -> Any:
        return self.keys[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.keys.get(key, default)

    def tensor(self, name: str) -> GGUFTensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise GGUFError(f"{self.path}: missing tensor {name}") from None

    # Parsing -----------------------------------------------------------------------------------
    def _take(self, n: int, what: str) -> bytes:
        if self._pos + n > len(self._data):
            raise GGUFError(f"{self.path}: truncated while reading {what}")
        chunk = self._data[self._pos:self._pos + n].tobytes()
        self._pos += n
        return chunk

    def _unpack(self, fmt: str, what: str):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt), what))

    def _string(self, what: str) -> str:
        (length,) = self._unpack("<Q", what)
        return self._take(length, what).decode("utf-8")

    def _value(self, vtype: int, what: str) -> Any:
        if vtype == STRING:
            return self._string(what)
        if vtype in _SCALAR_FORMATS:
            return self._unpack(_SCALAR_FORMATS[vtype], what)[0]
        raise GGUFError(f"{self.path}: {what}: unknown value type {vtype}")

    def _parse(self) -> None:
        if self._take(4, "magic") != GGUF_MAGIC:
            raise GGUFError(f"{self.path}: not a GGUF file (bad magic)")
        version, n_tensors, n_kv = self._unpack("<IQQ", "header")
        if version != GGUF_VERSION:
            raise GGUFError(f"{self.path}: GGUF version {version}, expected {GGUF_VERSION}")
        for _ in range(n_kv):
            key = self._string("key name")
            (vtype,) = self._unpack("<I", key)
            if vtype == ARRAY:
                etype, count = self._unpack("<IQ", key)
                if etype in _SCALAR_FORMATS and etype != BOOL:
                    fmt = _SCALAR_FORMATS[etype]
                    values = np.frombuffer(self._take(struct.calcsize(fmt) * count, key), dtype=fmt)
                    self.keys[key] = values.tolist()
                else:
                    self.keys[key] = [self._value(etype, key) for _ in range(count)]
            else:
                self.keys[key] = self._value(vtype, key)
            self.key_types[key] = vtype
        alignment = int(self.keys.get("general.alignment", DEFAULT_ALIGNMENT))
        infos = []
        for _ in range(n_tensors):
            name = self._string("tensor name")
            (n_dims,) = self._unpack("<I", name)
            if not 1 <= n_dims <= 4:
                raise GGUFError(f"{self.path}: tensor {name}: {n_dims} dimensions")
            ne = self._unpack(f"<{n_dims}Q", name)
            type_id, offset = self._unpack("<IQ", name)
            if type_id not in _TENSOR_TYPE_BY_ID:
                raise GGUFError(f"{self.path}: tensor {name}: unsupported type id {type_id}")
            infos.append((name, tuple(reversed(ne)), _TENSOR_TYPE_BY_ID[type_id], offset))
        data_start = _aligned(self._pos, alignment)
        for name, shape, type_name, offset in infos:
            if offset % alignment != 0:
                raise GGUFError(f"{self.path}: tensor {name}: offset {offset} is not aligned")
            count = int(np.prod(shape))
            _, block_elems, block_bytes = TENSOR_TYPES[type_name]
            if count % block_elems != 0:
                raise GGUFError(f"{self.path}: tensor {name}: {count} elements do not fill {type_name} blocks")
            start = data_start + offset
            end = start + count // block_elems * block_bytes
            if end > len(self._data):
                raise GGUFError(f"{self.path}: tensor {name}: data lies outside the file")
            element_dtype = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2"),
                             "bf16": np.dtype("<u2"), "q8_0": _Q8_0_DTYPE}[type_name]
            raw = np.frombuffer(self._data, dtype=element_dtype, count=count // block_elems, offset=start)
            self.tensors[name] = GGUFTensor(name=name, type_name=type_name, shape=shape, offset=start, raw=raw)


# ----------------------------------------------------------------------------------------------
# Copies with changes


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
    `drop_tensors` removed (the copy is written atomically)."""
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
    # A replaced tensor keeps its place in the file; re-quantizing a q8_0 tensor gives back its blocks.
    for name, tensor in reader.tensors.items():
        if name in tensors:
            writer.add_tensor(name, *tensors[name])
        elif name not in drop_tensors:
            writer.add_tensor(name, tensor.to_float64().astype(np.float32), tensor.type_name)
    for name, (array, type_name) in tensors.items():
        if name not in reader.tensors:
            writer.add_tensor(name, array, type_name)
    writer.write(dst)
    return os.fspath(dst)
