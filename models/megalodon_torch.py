"""MEGALODON with multi-token prediction heads in PyTorch, for training (design: megalodon.md,
multi-token.md sections 1-2).

Parameter names and storage follow the released code (`layers.{i}.mega.*`, `layers.{i}.nffn.*`,
`output.*`; norm scales and the Q/K scales kept as w with effective value w + 1), so one
conversion (gguf_export.py) serves both our checkpoints and official ones. The prediction heads
2..n are `mtp.{j}.*`.

Training path: every sequence starts from an empty state (the usual LM setting). TimestepNorm
statistics come from a parallel prefix (cumulative sums over shifted data), CEMA from an FFT
convolution with its kernel materialised over the whole sequence, attention per chunk through
`scaled_dot_product_attention`. The float64 reference in reference.py is the independent check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MegalodonConfig:
    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    cema_ndim: int = 16
    n_attn_heads: int = 1
    z_dim: int = 128
    value_dim: int = 512
    ffn_dim: int = 512
    chunk_size: int = 256
    norm_groups: int = 32
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    bf16_freqs: bool = True
    swiglu: bool = True
    scale_embedding: bool = False
    tied_embedding: bool = True
    n_predict_heads: int = 1          # head 1 (next token) included
    mtp_hidden_dim: int = 0           # SwiGLU width of heads 2..n (default 2 * d_model)
    mtp_source: str = "trunk"         # heads 2..n read block L-1 ("trunk") or block L ("final")

    def __post_init__(self):
        if self.mtp_hidden_dim == 0:
            self.mtp_hidden_dim = 2 * self.d_model
        if self.d_model % self.norm_groups or self.z_dim % self.n_attn_heads or self.value_dim % self.n_attn_heads:
            raise ValueError("d_model must divide into norm_groups, z_dim and value_dim into heads")
        if (self.z_dim // self.n_attn_heads) % 2:
            raise ValueError("the per-head z dimension must be even (RoPE pairs)")
        if self.mtp_source not in ("trunk", "final"):
            raise ValueError("mtp_source must be 'trunk' or 'final'")

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# Functional pieces


def timestep_norm_stats(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cumulative group mean and population variance over all timesteps so far, from an empty
    state: x [B, T, D] -> (mean, var) [B, T, G]. Sums run over data shifted by the first
    timestep's group mean, which keeps the closed form well conditioned for training lengths."""
    b, t, d = x.shape
    xg = x.reshape(b, t, groups, d // groups)
    row_mean = xg.mean(dim=-1)
    row_var = xg.var(dim=-1, unbiased=False)
    shift = row_mean[:, :1].detach()
    count = torch.arange(1, t + 1, device=x.device, dtype=x.dtype)[None, :, None]
    centred = row_mean - shift
    mean_c = centred.cumsum(dim=1) / count
    second = (row_var + centred * centred).cumsum(dim=1) / count
    var = (second - mean_c * mean_c).clamp_min(0.0)
    return mean_c + shift, var


def timestep_norm_apply(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor, eps: float) -> torch.Tensor:
    b, t, d = x.shape
    groups = mean.shape[-1]
    xg = x.reshape(b, t, groups, d // groups)
    normed = (xg - mean[..., None]) * torch.rsqrt(var[..., None] + eps)
    return normed.reshape(b, t, d) * (weight + 1.0) + bias


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    y = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    return y if weight is None else y * (weight + 1.0)


def rope_frequencies(head_dim: int, base: float, bf16: bool) -> torch.Tensor:
    """θ_m = base^(-2m/d_z) in fp32, rounded to bf16 when the model was trained that way (4.2)."""
    freqs = (base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)).float()
    if bf16:
        freqs = freqs.to(torch.bfloat16).float()
    return freqs


def apply_rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Rotates adjacent pairs of x [..., C, d] by (position in chunk)·θ_m; angles in fp32."""
    c = x.shape[-2]
    dtype = torch.promote_types(x.dtype, torch.float32)
    angles = torch.arange(c, device=x.device, dtype=dtype)[:, None] * freqs.to(x.device, dtype)[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class CEMA(nn.Module):
    """Complex exponential moving average (megalodon.md 2), stored as the released code stores it."""

    def __init__(self, d_model: int, ndim: int):
        super().__init__()
        self.ndim = ndim
        self.alpha = nn.Parameter(torch.empty(d_model, ndim, 1))
        self.delta = nn.Parameter(torch.empty(d_model, ndim, 1))
        self.theta = nn.Parameter(torch.empty(d_model, 1, 1))
        self.gamma = nn.Parameter(torch.empty(d_model, ndim, 2))
        self.omega = nn.Parameter(torch.empty(d_model, 1))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        d = self.alpha.shape[0]
        self.alpha.normal_(0.0, 0.2, generator=generator)
        self.delta.normal_(0.0, 0.2, generator=generator)
        freqs = torch.exp(-torch.arange(1, d + 1, dtype=torch.float64) * math.log(d) / d)
        freqs = freqs[torch.randperm(d, generator=generator)]
        self.theta.copy_(torch.logit(freqs).float().view(d, 1, 1))
        self.gamma.zero_()
        self.gamma[..., 0].normal_(0.0, 1.0, generator=generator)
        nn.init.trunc_normal_(self.omega, 0.0, 0.25, -1.0, 1.0, generator=generator)

    def kernel(self, length: int) -> torch.Tensor:
        """k[d, j] = Σ_n Re(η p q^j), j < length, in fp32 (or the parameters' dtype if wider)."""
        dtype = torch.promote_types(self.alpha.dtype, torch.float32)
        alpha, delta = torch.sigmoid(self.alpha.to(dtype)[..., 0]), torch.sigmoid(self.delta.to(dtype)[..., 0])
        base_angle = torch.sigmoid(self.theta.to(dtype)[:, 0, 0]) * (2.0 * math.pi / self.ndim)
        angles = base_angle[:, None] * torch.arange(1, self.ndim + 1, device=alpha.device, dtype=dtype)
        log_mag = torch.log1p(-alpha * delta)                                     # log|q| [D, N]
        eta = self.gamma.to(dtype) / math.sqrt(self.ndim)
        j = torch.arange(length, device=alpha.device, dtype=dtype)
        mag = torch.exp(log_mag[..., None] * j)                                   # [D, N, T]
        phase = angles[..., None] * j
        wave = eta[..., 0, None] * torch.cos(phase) - eta[..., 1, None] * torch.sin(phase)
        return (alpha[..., None] * mag * wave).sum(dim=1)                         # [D, T]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] from an empty state -> c [B, T, D] (causal convolution by FFT)."""
        t = x.shape[1]
        k = self.kernel(t)
        n = 2 * t
        xt = x.transpose(1, 2).to(k.dtype)
        y = torch.fft.irfft(torch.fft.rfft(xt, n=n) * torch.fft.rfft(k, n=n), n=n)[..., :t]
        return (y.transpose(1, 2) + self.omega.to(k.dtype)[:, 0] * x).to(x.dtype)


class TimestepNorm(nn.Module):
    def __init__(self, d_model: int, groups: int, eps: float):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.zeros(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def stats(self, x: torch.Tensor):
        return timestep_norm_stats(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, self.groups)

    def apply(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        return timestep_norm_apply(wide, mean, var, self.weight, self.bias, self.eps).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.stats(x)
        return self.apply(x, mean, var)


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class MovingAverageGatedAttention(nn.Module):
    """TimestepNorm -> CEMA -> RMSNorm -> normalized chunk-local attention (megalodon.md 1.2, 4)."""

    def __init__(self, cfg: MegalodonConfig):
        super().__init__()
        d, z, e = cfg.d_model, cfg.z_dim, cfg.value_dim
        self.cfg = cfg
        self.timenorm = TimestepNorm(d, cfg.norm_groups, cfg.norm_eps)
        self.cema = CEMA(d, cfg.cema_ndim)
        self.rmsnorm = RMSNorm(d, cfg.norm_eps)
        self.wz = nn.Linear(d, z)
        self.wv = nn.Linear(d, e)
        self.wr = nn.Linear(d, e)
        self.wh1 = nn.Linear(d, d)
        self.wh2 = nn.Linear(e, d, bias=False)
        self.gamma = nn.Parameter(torch.zeros(2, z))
        self.beta = nn.Parameter(torch.zeros(2, z))
        self.register_buffer("rope_freqs", rope_frequencies(z // cfg.n_attn_heads, cfg.rope_base, cfg.bf16_freqs),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        h, c = cfg.n_attn_heads, cfg.chunk_size
        dz, dv = cfg.z_dim // h, cfg.value_dim // h
        x_hat = self.timenorm(x)
        m = self.rmsnorm(self.cema(x_hat))
        z = rms_norm(self.wz(m).view(b, t, h, dz), None, cfg.norm_eps)
        scale = ((self.gamma + 1.0) / math.sqrt(dz)).view(2, h, dz)
        shift = self.beta.view(2, h, dz)
        q = z * scale[0] + shift[0]
        k = z * scale[1] + shift[1]
        v = F.silu(self.wv(x_hat)).view(b, t, h, dv)
        gate = F.silu(self.wr(m))

        # Chunks aligned to position 0; a short last chunk is padded at its end (causality keeps
        # the padding invisible to real positions).
        chunk = min(c, t)
        n_chunks = -(-t // chunk)
        pad = n_chunks * chunk - t

        def chunked(a: torch.Tensor) -> torch.Tensor:
            if pad:
                a = F.pad(a, (0, 0, 0, 0, 0, pad))
            return a.view(b, n_chunks, chunk, h, -1).transpose(2, 3)      # [B, K, H, C, d]

        qc = apply_rope(chunked(q), self.rope_freqs)
        kc = apply_rope(chunked(k), self.rope_freqs)
        vc = chunked(v)
        o = F.scaled_dot_product_attention(qc, kc, vc, is_causal=True, scale=1.0)
        o = o.transpose(2, 3).reshape(b, n_chunks * chunk, h * dv)[:, :t]
        return x + self.wh1(m) + self.wh2(o * gate)


class NormalizedFeedForward(nn.Module):
    def __init__(self, cfg: MegalodonConfig):
        super().__init__()
        d, f = cfg.d_model, cfg.ffn_dim
        self.swiglu = cfg.swiglu
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        nn.init.zeros_(self.norm.weight)
        self.fc1 = nn.Linear(d, f, bias=False)
        self.fc3 = nn.Linear(d, f, bias=False) if cfg.swiglu else None
        self.fc2 = nn.Linear(f, d, bias=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        u = F.layer_norm(y, y.shape[-1:], self.norm.weight + 1.0, self.norm.bias, self.norm.eps)
        hidden = F.silu(self.fc1(u))
        if self.fc3 is not None:
            hidden = hidden * self.fc3(u)
        return self.fc2(hidden)


class MegalodonBlock(nn.Module):
    def __init__(self, cfg: MegalodonConfig):
        super().__init__()
        self.mega = MovingAverageGatedAttention(cfg)
        self.nffn = NormalizedFeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.nffn(self.mega(x))   # two-hop residual: the FFN adds to the block input


class PredictionHead(nn.Module):
    """Head j >= 2: h = z + W2 (silu(W1 r) * W3 r), r = RMSNorm(z); position-wise, stateless."""

    def __init__(self, d_model: int, hidden: int, eps: float):
        super().__init__()
        self.norm = RMSNorm(d_model, eps)
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        r = self.norm(z)
        return z + self.down(F.silu(self.gate(r)) * self.up(r))


class Output(nn.Module):
    def __init__(self, cfg: MegalodonConfig):
        super().__init__()
        self.final_norm = TimestepNorm(cfg.d_model, cfg.norm_groups, cfg.norm_eps)
        self.output = None if cfg.tied_embedding else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)


class Megalodon(nn.Module):
    def __init__(self, cfg: MegalodonConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(MegalodonBlock(cfg) for _ in range(cfg.n_layers))
        self.output = Output(cfg)
        self.mtp = nn.ModuleDict({str(j): PredictionHead(cfg.d_model, cfg.mtp_hidden_dim, cfg.norm_eps)
                                  for j in range(2, cfg.n_predict_heads + 1)})

    # Initialisation of the released code (megalodon.md 1.4), heads per multi-token.md 1.3.
    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)

        def he(linear: nn.Linear) -> None:
            linear.weight.normal_(0.0, 1.0 / math.sqrt(3 * linear.in_features), generator=gen)
            if linear.bias is not None:
                linear.bias.zero_()

        std = 1.0 / math.sqrt(self.cfg.d_model)
        nn.init.trunc_normal_(self.embed.weight, 0.0, std, -3 * std, 3 * std, generator=gen)
        if self.output.output is not None:
            nn.init.trunc_normal_(self.output.output.weight, 0.0, std, -3 * std, 3 * std, generator=gen)
        for module in self.modules():
            if isinstance(module, CEMA):
                module.reset_parameters(gen)
            elif isinstance(module, nn.Linear):
                he(module)
            elif isinstance(module, (TimestepNorm, RMSNorm, nn.LayerNorm)):
                module.weight.zero_()
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
            elif isinstance(module, MovingAverageGatedAttention):
                module.gamma.zero_()
                module.beta.zero_()
        for head in self.mtp.values():
            head.down.weight.zero_()

    @property
    def unembedding(self) -> torch.Tensor:
        return self.embed.weight if self.output.output is None else self.output.output.weight

    def trunk(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] -> (source of heads 2..n, output of block L), both [B, T, D]."""
        x = self.embed(tokens)
        if self.cfg.scale_embedding:
            x = x * math.sqrt(self.cfg.d_model)
        before_last = x
        for layer in self.layers:
            before_last = x
            x = layer(x)
        source = x if self.cfg.mtp_source == "final" else before_last
        return source, x

    def head_hidden(self, head: int, source: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
        return final if head == 1 else self.mtp[str(head)](source)

    def logits(self, hidden: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        """Final TimestepNorm with the statistics of head 1's stream, then the unembedding."""
        normed = self.output.final_norm.apply(hidden, mean, var)
        return normed @ self.unembedding.to(normed.dtype).t()

    def forward(self, tokens: torch.Tensor, n_heads: int | None = None) -> torch.Tensor:
        """Logits of heads 1..n_heads: [B, T, n_heads, V] (from an empty state)."""
        n_heads = self.cfg.n_predict_heads if n_heads is None else n_heads
        source, final = self.trunk(tokens)
        mean, var = self.output.final_norm.stats(final)
        return torch.stack([self.logits(self.head_hidden(j, source, final), mean, var)
                            for j in range(1, n_heads + 1)], dim=2)


# ----------------------------------------------------------------------------------------------
# Multi-token loss


def head_weights(n_heads: int, extra_weight: float) -> list[float]:
    """w_1 = 1; heads 2..n share `extra_weight` (λ) with a 0.8 decay (multi-token.md 6.2 J)."""
    if n_heads <= 1:
        return [1.0]
    return [1.0] + [extra_weight / (n_heads - 1) * 0.8 ** (i - 2) for i in range(2, n_heads + 1)]


def multi_token_loss(model: Megalodon, tokens: torch.Tensor, weights: list[float], token_chunk: int = 8192,
                     backward: bool = True) -> dict:
    """Loss Σ_i w_i · mean_t CE(head_i(z_t), x_{t+i}) for tokens [B, T + n] (n = len(weights)):
    the first T tokens are the input, every head has a target at each of the T positions. With backward=True it runs the memory-efficient backward of multi-token.md
    2.2: the trunk forward once, then each head's forward and backward on its own (its logits in
    chunks of `token_chunk` positions), gradients accumulated at the trunk outputs, and a single
    trunk backward at the end. Returns per-head mean CE and top-1 accuracy, and the total loss."""
    n = len(weights)
    inputs = tokens[:, :tokens.shape[1] - n]
    t = inputs.shape[1]
    source, final = model.trunk(inputs)
    grad_enabled = backward and torch.is_grad_enabled()
    if grad_enabled:
        source_leaf = source.detach().requires_grad_(True)
        final_leaf = final.detach().requires_grad_(True)
    else:
        source_leaf, final_leaf = source, final
    mean, var = model.output.final_norm.stats(final_leaf)
    stats: dict = {"loss": 0.0}
    for i in range(n, 0, -1):                      # the head furthest from the trunk first
        hidden = model.head_hidden(i, source_leaf, final_leaf)
        normed = model.output.final_norm.apply(hidden, mean, var)
        normed_leaf = normed.detach().requires_grad_(True) if grad_enabled else normed
        target = tokens[:, i:i + t].reshape(-1)
        flat = normed_leaf.reshape(-1, normed.shape[-1])
        total, correct = 0.0, 0
        for s in range(0, flat.shape[0], token_chunk):
            logits = flat[s:s + token_chunk] @ model.unembedding.to(flat.dtype).t()
            if logits.dtype in (torch.float16, torch.bfloat16):
                logits = logits.float()   # cross-entropy in fp32 under autocast
            ce = F.cross_entropy(logits, target[s:s + token_chunk], reduction="sum")
            if grad_enabled:
                (ce * (weights[i - 1] / target.numel())).backward()
            total += float(ce.detach())
            correct += int((logits.detach().argmax(dim=-1) == target[s:s + token_chunk]).sum())
        if grad_enabled:
            normed.backward(normed_leaf.grad, retain_graph=i > 1)
        stats[f"ce_{i}"] = total / target.numel()
        stats[f"acc_{i}"] = correct / target.numel()
        stats["loss"] += weights[i - 1] * stats[f"ce_{i}"]
    if grad_enabled:
        grads = [(final, final_leaf.grad)]
        if source_leaf.grad is not None and source is not final:
            grads.append((source, source_leaf.grad))
        elif source_leaf.grad is not None:
            grads[0] = (final, final_leaf.grad + source_leaf.grad)
        torch.autograd.backward([g[0] for g in grads], [g[1] for g in grads])
    return stats


def count_parameters(model: nn.Module) -> dict:
    cfg = model.cfg
    total = sum(p.numel() for p in model.parameters())
    embedding = model.embed.weight.numel() + (0 if model.output.output is None else model.output.output.weight.numel())
    heads = sum(p.numel() for p in model.mtp.parameters())
    return {"total": total, "embedding": embedding, "heads": heads, "non_embedding": total - embedding,
            "trunk_non_embedding": total - embedding - heads, "vocab": cfg.vocab_size}
