"""A LLaMA-shaped transformer (pre-RMSNorm, RoPE, SwiGLU, full causal attention through
`scaled_dot_product_attention`): the baseline MEGALODON is compared with at equal parameters,
data and steps."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    vocab_size: int
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_dim: int = 704
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    tied_embedding: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def rotate(x: torch.Tensor, base: float) -> torch.Tensor:
    """RoPE on adjacent pairs of x [B, H, T, d] at absolute positions."""
    t, d = x.shape[-2], x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        d = cfg.d_model
        self.cfg = cfg
        self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ffn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.gate = nn.Linear(d, cfg.ffn_dim, bias=False)
        self.up = nn.Linear(d, cfg.ffn_dim, bias=False)
        self.down = nn.Linear(cfg.ffn_dim, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.cfg.n_heads
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k = rotate(q, self.cfg.rope_base), rotate(k, self.cfg.rope_base)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(o.transpose(1, 2).reshape(b, t, d))
        u = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(u)) * self.up(u))


class TransformerLM(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.output = None if cfg.tied_embedding else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        std = 1.0 / math.sqrt(self.cfg.d_model)
        nn.init.trunc_normal_(self.embed.weight, 0.0, std, -3 * std, 3 * std, generator=gen)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, 1.0 / math.sqrt(3 * module.in_features), generator=gen)
        # Residual branches start small, as usual for pre-norm stacks.
        for layer in self.layers:
            layer.proj.weight.mul_(1.0 / math.sqrt(2 * self.cfg.n_layers))
            layer.down.weight.mul_(1.0 / math.sqrt(2 * self.cfg.n_layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] of the next token."""
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        weight = self.embed.weight if self.output is None else self.output.weight
        return self.norm(x) @ weight.to(x.dtype).t()
