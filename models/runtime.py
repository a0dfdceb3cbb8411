"""ctypes binding of the MEGALODON runtime's C API (native/include/megalodon.h).

The shared library is taken from $MGL_LIB, else <repo>/build/Release/libmegalodon.so.
Failed calls raise MegalodonError(status_name, message).
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

DEFAULT_LIBRARY = Path(__file__).resolve().parent.parent / "build" / "Release" / "libmegalodon.so"

MGL_OK = 0
MGL_ERR_IO = 1
MGL_ERR_FORMAT = 2
MGL_ERR_UNSUPPORTED = 3
MGL_ERR_INVALID_ARG = 4
MGL_ERR_OUT_OF_MEMORY = 5
MGL_ERR_CANCELLED = 6
MGL_ERR_MISMATCH = 7
MGL_ERR_INTERNAL = 8

MGL_TOKENIZE_ADD_BOS = 1
MGL_TOKENIZE_PARSE_SPECIAL = 2
MGL_STATE_TSN_REFRESH = 1

STOP_REASONS = {0: "max_tokens", 1: "eos", 2: "string", 3: "callback"}


class MegalodonError(RuntimeError):
    """A failed C API call: `status` (mgl_status value), `status_name`, `message`."""

    def __init__(self, status_name: str, message: str, status: int | None = None):
        super().__init__(f"{status_name}: {message}")
        self.status_name = status_name
        self.message = message
        self.status = status


# ----------------------------------------------------------------------------------------------
# C structures


class ModelParams(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int), ("use_mmap", ctypes.c_int)]


class ModelInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "n_layers", "d_model", "cema_ndim", "n_attn_heads", "z_dim", "value_dim", "ffn_dim",
        "chunk_size", "norm_groups", "n_vocab", "n_predict_heads", "mtp_hidden_dim", "swiglu",
        "tied_embedding", "bos_token", "eos_token", "n_threads")] + [
        ("n_params", ctypes.c_int64), ("state_bytes", ctypes.c_int64), ("fingerprint", ctypes.c_uint64)]


class SamplingParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("min_p", ctypes.c_float), ("repeat_penalty", ctypes.c_float),
                ("repeat_last_n", ctypes.c_int32), ("seed", ctypes.c_uint64)]


MGL_MAX_DRAFT_HEADS = 16


class GenerateParams(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_int32), ("sampling", SamplingParams),
                ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t),
                ("stop_at_eos", ctypes.c_int), ("speculative", ctypes.c_int32), ("draft", ctypes.c_int32)]


class GenerateResultC(ctypes.Structure):
    _fields_ = [("n_tokens", ctypes.c_int32), ("stop_reason", ctypes.c_int),
                ("prompt_seconds", ctypes.c_double), ("generate_seconds", ctypes.c_double),
                ("forward_passes", ctypes.c_int32), ("draft_heads", ctypes.c_int32),
                ("tokens_per_forward", ctypes.c_double),
                ("drafted", ctypes.c_int32 * (MGL_MAX_DRAFT_HEADS - 1)),
                ("accepted", ctypes.c_int32 * (MGL_MAX_DRAFT_HEADS - 1)),
                ("windows", ctypes.c_int32 * MGL_MAX_DRAFT_HEADS)]


PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
TOKEN_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t,
                            ctypes.c_void_p)

_c_int32_p = ctypes.POINTER(ctypes.c_int32)
_c_float_p = ctypes.POINTER(ctypes.c_float)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)

_SIGNATURES = {
    "mgl_last_error": (ctypes.c_char_p, []),
    "mgl_status_name": (ctypes.c_char_p, [ctypes.c_int]),
    "mgl_version": (ctypes.c_char_p, []),
    "mgl_model_default_params": (ModelParams, []),
    "mgl_model_load": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(ctypes.c_void_p)]),
    "mgl_model_free": (None, [ctypes.c_void_p]),
    "mgl_model_set_threads": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "mgl_model_get_info": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ModelInfo)]),
    "mgl_model_info_json": (ctypes.c_char_p, [ctypes.c_void_p]),
    "mgl_tokenize": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
                                    _c_int32_p, ctypes.c_size_t, _c_size_p]),
    "mgl_detokenize": (ctypes.c_int, [ctypes.c_void_p, _c_int32_p, ctypes.c_size_t, ctypes.c_int,
                                      ctypes.c_char_p, ctypes.c_size_t, _c_size_p]),
    "mgl_token_piece": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int32]),
    "mgl_state_create": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]),
    "mgl_state_clone": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]),
    "mgl_state_reset": (None, [ctypes.c_void_p]),
    "mgl_state_free": (None, [ctypes.c_void_p]),
    "mgl_state_position": (ctypes.c_int64, [ctypes.c_void_p]),
    "mgl_state_flags": (ctypes.c_int, [ctypes.c_void_p]),
    "mgl_state_size": (ctypes.c_int64, [ctypes.c_void_p]),
    "mgl_state_save": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "mgl_state_load": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]),
    "mgl_state_logits": (_c_float_p, [ctypes.c_void_p, ctypes.c_int]),
    "mgl_ingest": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, _c_int32_p, ctypes.c_size_t,
                                  PROGRESS_FN, ctypes.c_void_p]),
    "mgl_eval": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, _c_int32_p, ctypes.c_size_t,
                                ctypes.c_size_t, ctypes.c_int, _c_float_p]),
    "mgl_score": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, _c_int32_p, ctypes.c_size_t,
                                 ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_int64),
                                 PROGRESS_FN, ctypes.c_void_p]),
    "mgl_sampling_default_params": (SamplingParams, []),
    "mgl_generate_default_params": (GenerateParams, []),
    "mgl_generate": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_void_p, _c_int32_p, ctypes.c_size_t,
                                    ctypes.POINTER(GenerateParams), TOKEN_FN, ctypes.c_void_p,
                                    ctypes.POINTER(GenerateResultC)]),
}

_library: ctypes.CDLL | None = None


def library_path() -> Path:
    return Path(os.environ.get("MGL_LIB") or DEFAULT_LIBRARY)


def load_library() -> ctypes.CDLL:
    """The runtime library, loaded once, with every function's signature declared."""
    global _library
    if _library is None:
        path = library_path()
        if not path.is_file():
            raise FileNotFoundError(f"MEGALODON runtime library not found at {path} "
                                    "(build target megalodon_shared or set MGL_LIB)")
        lib = ctypes.CDLL(str(path))
        missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
        if missing:
            raise OSError(f"{path} does not export {', '.join(missing)}")
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype = restype
            function.argtypes = argtypes
        _library = lib
    return _library


def version() -> str:
    return load_library().mgl_version().decode()


def _check(status: int) -> None:
    if status != MGL_OK:
        lib = load_library()
        name = (lib.mgl_status_name(status) or b"?").decode()
        message = (lib.mgl_last_error() or b"").decode("utf-8", "replace")
        raise MegalodonError(name, message, status)


def _token_array(tokens: Iterable[int]) -> np.ndarray:
    array = np.asarray(tokens if isinstance(tokens, np.ndarray) else list(tokens), dtype=np.int64)
    if array.ndim != 1:
        raise ValueError(f"tokens must be a flat sequence, got shape {array.shape}")
    if array.size and (array.min() < np.iinfo(np.int32).min or array.max() > np.iinfo(np.int32).max):
        raise ValueError("token ids must fit in int32")
    return np.ascontiguousarray(array, dtype=np.int32)


def _int32_ptr(array: np.ndarray):
    return array.ctypes.data_as(_c_int32_p)


class _Callback:
    """Wraps a Python progress function; an exception inside it cancels the call and is re-raised."""

    def __init__(self, progress: Callable[[int, int], bool] | None):
        self.progress = progress
        self.error: BaseException | None = None
        self.c_function = PROGRESS_FN(self._call) if progress is not None else PROGRESS_FN()

    def _call(self, done, total, _user):
        try:
            return 1 if self.progress(int(done), int(total)) else 0
        except BaseException as err:  # propagated after the C call returns
            self.error = err
            return 1

    def reraise(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class GenerateResult:
    tokens: list[int]
    text: str
    stop_reason: str
    prompt_seconds: float
    generate_seconds: float
    forward_passes: int = 0
    tokens_per_forward: float = 0.0
    draft_heads: int = 1  # heads used per step, head 1 included (1: plain decoding)
    drafted: list[int] = field(default_factory=list)   # per head 2..draft_heads
    accepted: list[int] = field(default_factory=list)  # accepted drafts, same order
    windows: list[int] = field(default_factory=list)   # forward passes by rows 1..draft_heads


class Model:
    """A loaded model file (mgl_model)."""

    def __init__(self, path: str | os.PathLike, n_threads: int = 0, use_mmap: bool = True):
        self._lib = load_library()
        params = self._lib.mgl_model_default_params()
        params.n_threads = n_threads
        params.use_mmap = 1 if use_mmap else 0
        handle = ctypes.c_void_p()
        _check(self._lib.mgl_model_load(os.fsencode(path), ctypes.byref(params), ctypes.byref(handle)))
        self._handle = handle
        self.path = os.fspath(path)
        self._info = self._read_info()

    # Lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._handle:
            self._lib.mgl_model_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._handle:
            raise MegalodonError("MGL_ERR_INVALID_ARG", "model is closed", MGL_ERR_INVALID_ARG)
        return self._handle

    # Information -------------------------------------------------------------------------------
    def _read_info(self) -> dict:
        info = ModelInfo()
        _check(self._lib.mgl_model_get_info(self.handle, ctypes.byref(info)))
        return {name: getattr(info, name) for name, _ in ModelInfo._fields_}

    def info(self) -> dict:
        self._info = self._read_info()
        return dict(self._info)

    def info_json(self) -> dict:
        return json.loads(self._lib.mgl_model_info_json(self.handle).decode())

    @property
    def n_vocab(self) -> int:
        return self._info["n_vocab"]

    def set_threads(self, n_threads: int) -> None:
        _check(self._lib.mgl_model_set_threads(self.handle, n_threads))

    # Tokenizer ---------------------------------------------------------------------------------
    def tokenize(self, text: str | bytes, add_bos: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = (MGL_TOKENIZE_ADD_BOS if add_bos else 0) | (MGL_TOKENIZE_PARSE_SPECIAL if parse_special else 0)
        count = ctypes.c_size_t()
        _check(self._lib.mgl_tokenize(self.handle, data, len(data), flags, None, 0, ctypes.byref(count)))
        out = np.zeros(max(count.value, 1), dtype=np.int32)
        _check(self._lib.mgl_tokenize(self.handle, data, len(data), flags, _int32_ptr(out), out.size,
                                      ctypes.byref(count)))
        return out[:count.value].tolist()

    def detokenize(self, tokens: Sequence[int], render_special: bool = False) -> bytes:
        """The bytes of the tokens (UTF-8 for whole sequences)."""
        array = _token_array(tokens)
        count = ctypes.c_size_t()
        _check(self._lib.mgl_detokenize(self.handle, _int32_ptr(array), array.size, int(render_special),
                                        None, 0, ctypes.byref(count)))
        buffer = ctypes.create_string_buffer(max(count.value, 1))
        _check(self._lib.mgl_detokenize(self.handle, _int32_ptr(array), array.size, int(render_special),
                                        buffer, len(buffer), ctypes.byref(count)))
        return buffer.raw[:count.value]

    def detokenize_text(self, tokens: Sequence[int], render_special: bool = False) -> str:
        return self.detokenize(tokens, render_special).decode("utf-8", "replace")

    def piece(self, token: int) -> str:
        raw = self._lib.mgl_token_piece(self.handle, int(token))
        if raw is None:
            raise MegalodonError("MGL_ERR_INVALID_ARG", f"no token {token}", MGL_ERR_INVALID_ARG)
        return raw.decode("utf-8", "surrogateescape")

    # Running -----------------------------------------------------------------------------------
    def new_state(self, refresh: bool = False) -> "State":
        return State(self, MGL_STATE_TSN_REFRESH if refresh else 0)

    def eval(self, state: "State", tokens: Sequence[int], n_rows: int | None = None,
             n_heads: int = 1) -> np.ndarray:
        """Consumes tokens; returns float32 logits [n_rows, n_heads, V] of the last n_rows positions."""
        array = _token_array(tokens)
        n_rows = array.size if n_rows is None else n_rows
        logits = np.zeros((max(n_rows, 1), n_heads, self.n_vocab), dtype=np.float32)
        _check(self._lib.mgl_eval(self.handle, state.handle, _int32_ptr(array), array.size, n_rows,
                                  n_heads, logits.ctypes.data_as(_c_float_p)))
        return logits[:n_rows]

    def ingest(self, state: "State", tokens: Sequence[int],
               progress: Callable[[int, int], bool] | None = None) -> None:
        """Consumes tokens without logits. progress(done, total) returning True cancels
        (MegalodonError MGL_ERR_CANCELLED; the state keeps every finished chunk)."""
        array = _token_array(tokens)
        callback = _Callback(progress)
        status = self._lib.mgl_ingest(self.handle, state.handle, _int32_ptr(array), array.size,
                                      callback.c_function, None)
        callback.reraise()
        _check(status)

    def score(self, state: "State", tokens: Sequence[int],
              progress: Callable[[int, int], bool] | None = None) -> tuple[float, int]:
        """(sum of negative log-likelihoods of tokens[1:], number of tokens scored)."""
        array = _token_array(tokens)
        callback = _Callback(progress)
        sum_nll = ctypes.c_double()
        n_scored = ctypes.c_int64()
        status = self._lib.mgl_score(self.handle, state.handle, _int32_ptr(array), array.size,
                                     ctypes.byref(sum_nll), ctypes.byref(n_scored), callback.c_function, None)
        callback.reraise()
        _check(status)
        return sum_nll.value, n_scored.value

    def generate(self, state: "State", prompt: Sequence[int], max_tokens: int, *,
                 temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 min_p: float | None = None, repeat_penalty: float | None = None,
                 repeat_last_n: int | None = None, seed: int | None = None, stop: Sequence[str] = (),
                 stop_at_eos: bool = True, speculative: bool = False, draft: int = 0,
                 on_token: Callable[[int, str], bool] | None = None) -> GenerateResult:
        """Feeds `prompt`, then samples up to max_tokens (library defaults for unset sampling
        options). on_token(token, text) returning True stops the generation. speculative: decode
        with the multi-token heads (draft: heads used, head 1 included; 0 = all)."""
        params = self._lib.mgl_generate_default_params()
        params.max_tokens = max_tokens
        params.speculative = 1 if speculative else 0
        params.draft = draft
        for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                            ("min_p", min_p), ("repeat_penalty", repeat_penalty),
                            ("repeat_last_n", repeat_last_n), ("seed", seed)):
            if value is not None:
                setattr(params.sampling, name, value)
        stop_strings = (ctypes.c_char_p * max(len(stop), 1))(*[s.encode("utf-8") for s in stop])
        params.stop = ctypes.cast(stop_strings, ctypes.POINTER(ctypes.c_char_p))
        params.n_stop = len(stop)
        params.stop_at_eos = 1 if stop_at_eos else 0

        tokens: list[int] = []
        pieces: list[bytes] = []
        errors: list[BaseException] = []

        def on_token_c(token, text, length, _user):
            tokens.append(int(token))
            chunk = ctypes.string_at(text, length) if length else b""
            pieces.append(chunk)
            if on_token is None:
                return 0
            try:
                return 1 if on_token(int(token), chunk.decode("utf-8", "replace")) else 0
            except BaseException as err:  # propagated after the C call returns
                errors.append(err)
                return 1

        callback = TOKEN_FN(on_token_c)
        array = _token_array(prompt)
        result = GenerateResultC()
        status = self._lib.mgl_generate(self.handle, state.handle, _int32_ptr(array), array.size,
                                        ctypes.byref(params), callback, None, ctypes.byref(result))
        if errors:
            raise errors[0]
        _check(status)
        if result.n_tokens != len(tokens):
            raise MegalodonError("MGL_ERR_INTERNAL", f"generate reported {result.n_tokens} tokens but "
                                 f"the callback saw {len(tokens)}", MGL_ERR_INTERNAL)
        n_drafts = max(result.draft_heads - 1, 0)
        return GenerateResult(tokens, b"".join(pieces).decode("utf-8", "replace"),
                              STOP_REASONS.get(result.stop_reason, str(result.stop_reason)),
                              result.prompt_seconds, result.generate_seconds, result.forward_passes,
                              result.tokens_per_forward, result.draft_heads,
                              list(result.drafted[:n_drafts]), list(result.accepted[:n_drafts]),
                              list(result.windows[:max(result.draft_heads, 1)]))


class State:
    """One sequence's state (mgl_state); keeps its model alive."""

    def __init__(self, model: Model, flags: int = 0, *, _handle: ctypes.c_void_p | None = None):
        self.model = model
        self._lib = model._lib
        if _handle is None:
            _handle = ctypes.c_void_p()
            _check(self._lib.mgl_state_create(model.handle, flags, ctypes.byref(_handle)))
        self._handle = _handle

    @classmethod
    def create(cls, model: Model, flags: int = 0) -> "State":
        return cls(model, flags)

    @classmethod
    def load(cls, model: Model, path: str | os.PathLike) -> "State":
        handle = ctypes.c_void_p()
        _check(model._lib.mgl_state_load(model.handle, os.fsencode(path), ctypes.byref(handle)))
        return cls(model, _handle=handle)

    def close(self) -> None:
        if self._handle:
            self._lib.mgl_state_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()

    @property
    def handle(self) -> ctypes.c_void_p:
        if not self._handle:
            raise MegalodonError("MGL_ERR_INVALID_ARG", "state is closed", MGL_ERR_INVALID_ARG)
        return self._handle

    def clone(self) -> "State":
        handle = ctypes.c_void_p()
        _check(self._lib.mgl_state_clone(self.handle, ctypes.byref(handle)))
        return State(self.model, _handle=handle)

    def reset(self) -> None:
        self._lib.mgl_state_reset(self.handle)

    @property
    def position(self) -> int:
        return int(self._lib.mgl_state_position(self.handle))

    @property
    def flags(self) -> int:
        return int(self._lib.mgl_state_flags(self.handle))

    @property
    def size(self) -> int:
        return int(self._lib.mgl_state_size(self.handle))

    def save(self, path: str | os.PathLike) -> None:
        _check(self._lib.mgl_state_save(self.handle, os.fsencode(path)))

    def logits(self, head: int = 0) -> np.ndarray | None:
        """Copy of the last position's logits for `head` (0 = next token), or None."""
        pointer = self._lib.mgl_state_logits(self.handle, head)
        if not pointer:
            return None
        return np.ctypeslib.as_array(pointer, shape=(self.model.n_vocab,)).copy()
