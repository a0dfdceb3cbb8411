"""Float64 reference of the MEGALODON runtime (design/megalodon.md sections 1-6, native/FORMAT.md).

Written for clarity, not speed: the recurrences (TimestepNorm, CEMA) step token by token in
float64 / complex128, attention works on one chunk segment at a time with the chunk's earlier keys
and values kept in the state. Weights are the GGUF file's values dequantized to float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .gguf import GGUFReader, round_to_bf16

# Whenever the position e reaches a multiple of REFRESH_EVERY_CHUNKS chunks, at least
# REFRESH_MIN_CHUNKS chunks in, the refresh mode recomputes the TimestepNorm statistics from the
# last REFRESH_WINDOW_CHUNKS chunks (megalodon.md 6.4).
REFRESH_EVERY_CHUNKS = 2
REFRESH_MIN_CHUNKS = 8
REFRESH_WINDOW_CHUNKS = 6


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


# ----------------------------------------------------------------------------------------------
# Building blocks (module-level so tests can check them against independent formulations)


def cema_coefficients(alpha: np.ndarray, delta: np.ndarray, theta: np.ndarray, gamma: np.ndarray):
    """p [D,N] real, q [D,N] complex, η [D,N] complex from the stored logits (megalodon.md 2.1)."""
    n_dim = alpha.shape[1]
    a = sigmoid(alpha)
    damping = sigmoid(delta)
    base_angle = sigmoid(theta) * (2.0 * math.pi / n_dim)           # φ_d
    angles = base_angle[:, None] * np.arange(1, n_dim + 1)           # θ_{d,n} = n·φ_d, n = 1..N
    q = (1.0 - a * damping) * np.exp(1j * angles)
    eta = (gamma[..., 0] + 1j * gamma[..., 1]) / math.sqrt(n_dim)
    return a, q, eta


def cema_steps(x: np.ndarray, h: np.ndarray, p: np.ndarray, q: np.ndarray, eta: np.ndarray,
               omega: np.ndarray):
    """Step recurrence over the rows of x [T, D] from state h [D, N]: returns (c [T, D], new h)."""
    c = np.empty_like(x)
    for t in range(x.shape[0]):
        h = q * h + p * x[t][:, None]
        c[t] = (eta * h).real.sum(axis=1) + omega * x[t]
    return c, h


def timestep_norm_stats(x: np.ndarray, count: int, mean: np.ndarray, var: np.ndarray, groups: int):
    """Welford merges of each row of x [T, D] into (count, mean[G], var[G]) (megalodon.md 3.2).
    Returns the updated statistics after every row: means [T, G], variances [T, G]."""
    rows = x.shape[0]
    xg = x.reshape(rows, groups, -1)
    row_mean = xg.mean(axis=2)
    row_var = ((xg - row_mean[..., None]) ** 2).mean(axis=2)
    means = np.empty((rows, groups))
    variances = np.empty((rows, groups))
    for t in range(rows):
        n_new = count + t + 1
        c1 = (count + t) / n_new
        c2 = 1.0 / n_new
        diff = row_mean[t] - mean
        mean = c1 * mean + c2 * row_mean[t]
        var = c1 * var + c2 * row_var[t] + c1 * c2 * diff * diff
        means[t] = mean
        variances[t] = var
    return means, variances


def timestep_norm_apply(x: np.ndarray, means: np.ndarray, variances: np.ndarray, weight: np.ndarray,
                        bias: np.ndarray, eps: float) -> np.ndarray:
    rows, groups = means.shape
    xg = x.reshape(rows, groups, -1)
    normed = (xg - means[..., None]) / np.sqrt(variances[..., None] + eps)
    return normed.reshape(x.shape) * weight + bias


def rms_norm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y if weight is None else y * weight


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + eps) * weight + bias


def rope_frequencies(head_dim: int, base: float, bf16: bool) -> np.ndarray:
    """θ_m = base^(-2m/d_z) as float32, optionally rounded to bfloat16 (megalodon.md 4.2)."""
    freqs = (float(base) ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)).astype(np.float32)
    if bf16:
        freqs = round_to_bf16(freqs)
    return freqs.astype(np.float64)


def apply_rope(x: np.ndarray, positions: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Rotates adjacent pairs (2m, 2m+1) of x [T, H, d] by positions[t]·θ_m."""
    angles = positions[:, None].astype(np.float64) * freqs[None, :]   # [T, d/2]
    cos = np.cos(angles)[:, None, :]
    sin = np.sin(angles)[:, None, :]
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------------------------
# Model


@dataclass(frozen=True)
class Config:
    n_layers: int
    d_model: int
    cema_ndim: int
    n_attn_heads: int
    z_dim: int
    value_dim: int
    ffn_dim: int
    chunk_size: int
    norm_groups: int
    norm_eps: float
    rope_base: float
    bf16_freqs: bool
    swiglu: bool
    scale_embedding: bool
    tied_embedding: bool
    n_predict_heads: int
    mtp_hidden_dim: int
    mtp_source: str
    n_vocab: int

    @staticmethod
    def from_reader(reader: GGUFReader) -> "Config":
        def key(name, default=None):
            value = reader.get(name, default)
            if value is None:
                raise ValueError(f"{reader.path}: missing key {name}")
            return value

        if key("general.architecture") != "megalodon":
            raise ValueError(f"{reader.path}: general.architecture is not megalodon")
        return Config(
            n_layers=int(key("megalodon.block_count")),
            d_model=int(key("megalodon.embedding_length")),
            cema_ndim=int(key("megalodon.cema_ndim")),
            n_attn_heads=int(key("megalodon.attention.head_count")),
            z_dim=int(key("megalodon.attention.z_dim")),
            value_dim=int(key("megalodon.attention.value_dim")),
            ffn_dim=int(key("megalodon.feed_forward_length")),
            chunk_size=int(key("megalodon.chunk_size")),
            norm_groups=int(key("megalodon.norm_groups")),
            norm_eps=float(key("megalodon.norm_eps")),
            rope_base=float(key("megalodon.rope.freq_base")),
            bf16_freqs=bool(key("megalodon.rope.bf16_freqs", True)),
            swiglu=bool(key("megalodon.swiglu")),
            scale_embedding=bool(key("megalodon.scale_embedding", False)),
            tied_embedding=bool(key("megalodon.tied_embedding", False)),
            n_predict_heads=int(key("megalodon.mtp.head_count", 1)),
            mtp_hidden_dim=int(key("megalodon.mtp.hidden_dim", 0)),
            mtp_source=str(key("megalodon.mtp.source", "trunk")),
            n_vocab=len(key("tokenizer.ggml.tokens")),
        )


@dataclass
class ReferenceState:
    """Everything that persists between calls for one sequence (megalodon.md 6.1)."""
    position: int
    tsn_count: int
    tsn_mean: np.ndarray            # [L + 1, G]; row L is the final norm
    tsn_var: np.ndarray             # [L + 1, G]
    cema_h: list[np.ndarray]        # per layer [D, N] complex128
    keys: list[np.ndarray]          # per layer [kv_len, Z], after RoPE
    values: list[np.ndarray]        # per layer [kv_len, E], after silu
    refresh: bool = False
    history: list[int] = field(default_factory=list)  # refresh mode: the last 6C token ids

    @property
    def kv_len(self) -> int:
        return self.keys[0].shape[0] if self.keys else 0

    def clone(self) -> "ReferenceState":
        return ReferenceState(self.position, self.tsn_count, self.tsn_mean.copy(), self.tsn_var.copy(),
                              [h.copy() for h in self.cema_h], [k.copy() for k in self.keys],
                              [v.copy() for v in self.values], self.refresh, list(self.history))


class ReferenceModel:
    """The whole model from a GGUF file, weights dequantized to float64."""

    def __init__(self, path):
        reader = GGUFReader(path)
        self.path = reader.path
        self.config = Config.from_reader(reader)
        self.tokens: list[str] = list(reader["tokenizer.ggml.tokens"])

        def weight(name):
            return reader.tensor(name).to_float64()

        cfg = self.config
        self.token_embd = weight("token_embd.weight")
        self.layers = []
        for i in range(cfg.n_layers):
            layer = {name: weight(f"blk.{i}.{name}") for name in (
                "tsn.weight", "tsn.bias", "cema.alpha", "cema.delta", "cema.theta", "cema.gamma",
                "cema.omega", "rms.weight", "attn_z.weight", "attn_z.bias", "attn_v.weight",
                "attn_v.bias", "attn_r.weight", "attn_r.bias", "attn_h1.weight", "attn_h1.bias",
                "attn_h2.weight", "attn_qk.scale", "attn_qk.bias", "ffn_norm.weight", "ffn_norm.bias",
                "ffn_gate.weight", "ffn_down.weight")}
            if cfg.swiglu:
                layer["ffn_up.weight"] = weight(f"blk.{i}.ffn_up.weight")
            layer["cema.p"], layer["cema.q"], layer["cema.eta"] = cema_coefficients(
                layer["cema.alpha"], layer["cema.delta"], layer["cema.theta"], layer["cema.gamma"])
            self.layers.append(layer)
        self.output_norm_weight = weight("output_norm.weight")
        self.output_norm_bias = weight("output_norm.bias")
        self.output = self.token_embd if cfg.tied_embedding else weight("output.weight")
        self.mtp_heads = [
            {name: weight(f"mtp.{j}.{name}.weight") for name in ("norm", "gate", "up", "down")}
            for j in range(2, cfg.n_predict_heads + 1)
        ]
        self.rope_freqs = rope_frequencies(cfg.z_dim // cfg.n_attn_heads, cfg.rope_base, cfg.bf16_freqs)

    def __getattr__(self, name):
        # Config fields read as model attributes (model.d_model, model.chunk_size, ...).
        config = self.__dict__.get("config")
        if config is not None and hasattr(config, name):
            return getattr(config, name)
        raise AttributeError(name)

    # State -------------------------------------------------------------------------------------
    def new_state(self, refresh: bool = False) -> ReferenceState:
        cfg = self.config
        return ReferenceState(
            position=0, tsn_count=0,
            tsn_mean=np.zeros((cfg.n_layers + 1, cfg.norm_groups)),
            tsn_var=np.ones((cfg.n_layers + 1, cfg.norm_groups)),
            cema_h=[np.zeros((cfg.d_model, cfg.cema_ndim), dtype=np.complex128) for _ in range(cfg.n_layers)],
            keys=[np.zeros((0, cfg.z_dim)) for _ in range(cfg.n_layers)],
            values=[np.zeros((0, cfg.value_dim)) for _ in range(cfg.n_layers)],
            refresh=refresh)

    # Public entry points -----------------------------------------------------------------------
    def forward(self, state: ReferenceState, tokens, n_heads: int | None = None) -> np.ndarray:
        """Consumes tokens; returns logits [len(tokens), n_heads, V] (all heads by default)."""
        n_heads = self.config.n_predict_heads if n_heads is None else n_heads
        if not 1 <= n_heads <= self.config.n_predict_heads:
            raise ValueError(f"n_heads must be in 1..{self.config.n_predict_heads}, got {n_heads}")
        return self._consume(state, tokens, n_heads)

    def ingest(self, state: ReferenceState, tokens) -> None:
        """Consumes tokens without computing logits (the state ends exactly as after forward)."""
        self._consume(state, tokens, 0)

    def score(self, state: ReferenceState, tokens) -> float:
        """Sum of the negative log-likelihoods of tokens[1:], each given everything before it."""
        tokens = list(tokens)
        logits = self.forward(state, tokens, n_heads=1)[:, 0]
        if len(tokens) < 2:
            return 0.0
        logp = log_softmax(logits[:-1])
        return float(-logp[np.arange(len(tokens) - 1), tokens[1:]].sum())

    # Internals ---------------------------------------------------------------------------------
    def _consume(self, state: ReferenceState, tokens, n_heads: int) -> np.ndarray:
        tokens = [int(t) for t in tokens]
        for t in tokens:
            if not 0 <= t < self.config.n_vocab:
                raise ValueError(f"token {t} out of range 0..{self.config.n_vocab - 1}")
        chunk = self.config.chunk_size
        pieces = []
        start = 0
        # Segments never cross a chunk boundary, so attention sees one chunk per segment and the
        # refresh points (multiples of 2C) fall between segments.
        while start < len(tokens):
            end = min(len(tokens), start + chunk - state.position % chunk)
            pieces.append(self._segment(state, tokens[start:end], n_heads))
            start = end
        if n_heads == 0:
            return np.zeros((len(tokens), 0, self.config.n_vocab))
        if not pieces:
            return np.zeros((0, n_heads, self.config.n_vocab))
        return np.concatenate(pieces, axis=0)

    def _segment(self, state: ReferenceState, tokens: list[int], n_heads: int):
        cfg = self.config
        x = self.token_embd[tokens]
        if cfg.scale_embedding:
            x = x * math.sqrt(cfg.d_model)
        trunk = x
        for index, layer in enumerate(self.layers):
            trunk = x  # input of the last block = output of block L-1 (the embedding if L == 1)
            x = self._block(index, layer, state, x)
        final = x
        means, variances = timestep_norm_stats(final, state.tsn_count, state.tsn_mean[cfg.n_layers],
                                               state.tsn_var[cfg.n_layers], cfg.norm_groups)
        state.tsn_mean[cfg.n_layers] = means[-1]
        state.tsn_var[cfg.n_layers] = variances[-1]
        state.tsn_count += len(tokens)
        state.position += len(tokens)
        if state.position % cfg.chunk_size == 0:
            for index in range(cfg.n_layers):
                state.keys[index] = state.keys[index][:0]
                state.values[index] = state.values[index][:0]
        if state.refresh:
            window = REFRESH_WINDOW_CHUNKS * cfg.chunk_size
            state.history = (state.history + tokens)[-window:]
            if (state.position % (REFRESH_EVERY_CHUNKS * cfg.chunk_size) == 0
                    and state.position >= REFRESH_MIN_CHUNKS * cfg.chunk_size):
                self._refresh(state)
        if n_heads == 0:
            return None
        source = final if cfg.mtp_source == "final" else trunk
        hidden = [final] + [self._mtp_head(head, source) for head in self.mtp_heads[:n_heads - 1]]
        logits = [timestep_norm_apply(h, means, variances, self.output_norm_weight, self.output_norm_bias,
                                      cfg.norm_eps) @ self.output.T for h in hidden]
        return np.stack(logits, axis=1)

    def _refresh(self, state: ReferenceState) -> None:
        """Replaces every TimestepNorm's statistics by those of a blank run over the last 6C tokens."""
        fresh = self.new_state(refresh=False)
        self.ingest(fresh, state.history)
        state.tsn_count = fresh.tsn_count
        state.tsn_mean = fresh.tsn_mean
        state.tsn_var = fresh.tsn_var

    def _mtp_head(self, head, z: np.ndarray) -> np.ndarray:
        r = rms_norm(z, head["norm"], self.config.norm_eps)
        return z + (silu(r @ head["gate"].T) * (r @ head["up"].T)) @ head["down"].T

    def _block(self, index: int, w, state: ReferenceState, x: np.ndarray) -> np.ndarray:
        cfg = self.config
        eps = cfg.norm_eps
        rows = x.shape[0]
        heads = cfg.n_attn_heads
        head_z = cfg.z_dim // heads
        head_v = cfg.value_dim // heads

        # TimestepNorm (shared count; this layer's mean/var).
        means, variances = timestep_norm_stats(x, state.tsn_count, state.tsn_mean[index],
                                               state.tsn_var[index], cfg.norm_groups)
        state.tsn_mean[index] = means[-1]
        state.tsn_var[index] = variances[-1]
        x_hat = timestep_norm_apply(x, means, variances, w["tsn.weight"], w["tsn.bias"], eps)

        # CEMA, then RMSNorm.
        c, state.cema_h[index] = cema_steps(x_hat, state.cema_h[index], w["cema.p"], w["cema.q"],
                                            w["cema.eta"], w["cema.omega"])
        m = rms_norm(c, w["rms.weight"], eps)

        # Shared Z, per-head normalisation, Q/K affine, RoPE at the position within the chunk.
        z = (m @ w["attn_z.weight"].T + w["attn_z.bias"]).reshape(rows, heads, head_z)
        z = rms_norm(z, None, eps)
        scale = w["attn_qk.scale"].reshape(2, heads, head_z) / math.sqrt(head_z)
        shift = w["attn_qk.bias"].reshape(2, heads, head_z)
        chunk_pos = state.position % cfg.chunk_size
        positions = chunk_pos + np.arange(rows)
        q = apply_rope(z * scale[0] + shift[0], positions, self.rope_freqs)
        k = apply_rope(z * scale[1] + shift[1], positions, self.rope_freqs)
        v = silu(x_hat @ w["attn_v.weight"].T + w["attn_v.bias"])
        gate = silu(m @ w["attn_r.weight"].T + w["attn_r.bias"])

        # Chunk-local causal attention over the chunk's earlier keys (state; emptied whenever the
        # position reaches a multiple of C) and these rows.
        all_k = np.concatenate([state.keys[index], k.reshape(rows, -1)], axis=0)
        all_v = np.concatenate([state.values[index], v], axis=0)
        state.keys[index] = all_k
        state.values[index] = all_v
        n_keys = all_k.shape[0]
        scores = np.einsum("thd,shd->hts", q, all_k.reshape(n_keys, heads, head_z))
        visible = np.arange(n_keys)[None, :] <= (n_keys - rows + np.arange(rows))[:, None]
        scores = np.where(visible[None], scores, -np.inf)
        probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = np.einsum("hts,shd->thd", probs, all_v.reshape(n_keys, heads, head_v)).reshape(rows, -1)

        y = x + m @ w["attn_h1.weight"].T + w["attn_h1.bias"] + (attn * gate) @ w["attn_h2.weight"].T
        u = layer_norm(y, w["ffn_norm.weight"], w["ffn_norm.bias"], eps)
        hidden = silu(u @ w["ffn_gate.weight"].T)
        if cfg.swiglu:
            hidden = hidden * (u @ w["ffn_up.weight"].T)
        return x + hidden @ w["ffn_down.weight"].T
