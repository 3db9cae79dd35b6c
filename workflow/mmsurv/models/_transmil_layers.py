"""TransMIL building blocks shared by `transmil` and `dualtrans`: Nyström attention, PPEG, encoder.

Follows TransMIL (Shao et al. 2021, github szc19990412/TransMIL `models/TransMIL.py`) and the
Nyström attention of lucidrains/nystrom-attention (`nystrom_attention.py`) that TransMIL and CMTA
(`models/cmta/util.py`, a vendored copy) use. The attention is written here instead of depending
on the `nystrom-attention` package: that package is one small file that pulls in `einops`, has no
tests and offers no hook for the checks we run on it (exactness when landmarks = tokens, square
padding); the maths is the same, written with plain reshapes, except two marked "design:" points.

Memory is linear in the number of tokens n: the largest tensors are (heads, n, m) with m the
number of landmarks; no (n, n) matrix is ever formed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PPEG",
    "NystromAttention",
    "TransLayer",
    "TransMILEncoder",
    "fold_copies",
    "iterative_pinv",
    "pad_to_square",
]


def iterative_pinv(x: torch.Tensor, iters: int = 6) -> torch.Tensor:
    """Pseudo-inverse of (B, ..., m, m) by the Razavi et al. iteration, as in Nyströmformer.

    Cheap and GPU-friendly instead of an SVD; 6 iterations is what the Nyströmformer paper and
    TransMIL use. The start is Z0 = Xᵀ / (max col-sum · max row-sum).
    """
    if x.ndim < 3:
        raise ValueError(f"iterative_pinv expects (B, ..., m, m), got {tuple(x.shape)}")
    abs_x = x.abs()
    # design: the reference takes both maxima over the whole tensor, i.e. across the batch too;
    # we take them per batch element (still across heads), which is identical for the batch of
    # one that TransMIL and CMTA use and keeps batched cases independent of each other.
    dims = tuple(range(1, x.ndim - 1))
    col_max = abs_x.sum(-1).amax(dim=dims, keepdim=True).unsqueeze(-1)  # (B, 1, ..., 1)
    row_max = abs_x.sum(-2).amax(dim=dims, keepdim=True).unsqueeze(-1)
    z = x.transpose(-1, -2) / (col_max * row_max)
    eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
    return z


class NystromAttention(nn.Module):
    """Multi-head self-attention approximated with m landmarks (Xiong et al. 2021): O(n·m) memory.

    softmax(QKᵀ)V ≈ softmax(Q K̃ᵀ) · pinv(softmax(Q̃ K̃ᵀ)) · softmax(Q̃ Kᵀ) V, with Q̃, K̃ the means of m
    consecutive segments of Q, K; plus a depthwise convolution of V along the sequence (residual).
    """

    def __init__(
        self,
        dim: int,
        *,
        heads: int = 8,
        dim_head: int = 64,
        num_landmarks: int = 256,
        pinv_iterations: int = 6,
        residual: bool = True,
        residual_conv_kernel: int = 33,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_landmarks < 1:
            raise ValueError(f"num_landmarks must be >= 1, got {num_landmarks}")
        self.heads, self.dim_head = heads, dim_head
        self.num_landmarks, self.pinv_iterations = num_landmarks, pinv_iterations
        self.scale = dim_head**-0.5
        inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.res_conv: nn.Conv2d | None = None
        if residual:
            k = residual_conv_kernel
            self.res_conv = nn.Conv2d(
                heads, heads, (k, 1), padding=(k // 2, 0), groups=heads, bias=False
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, dim) → (B, n, dim)."""
        return self.attend(x)[0]

    def attend(
        self, x: torch.Tensor, query: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """forward's output and, for token index `query`, its row of the attention matrix.

        The row is the query's row of the Nyström approximation softmax(Q K̃ᵀ) · pinv · softmax(Q̃
        Kᵀ) that forward applies to V, per head: (B, heads, n) over the n input tokens (the zero
        pad tokens dropped). It costs O(n·m) like forward; the residual convolution of V is not
        attention and is not in it. Rows sum to ≈ 1 (exactly when the pinv is exact), and entries
        can be slightly negative (the approximation is not a softmax).
        """
        b, n, _ = x.shape
        m, h = self.num_landmarks, self.heads
        # design (as the reference): zero tokens are prepended until n is a multiple of m and no
        # mask is applied. to_qkv has no bias, so their keys and values are 0: they add nothing
        # to the outputs but take softmax mass (noticeable only for sequences shorter than m).
        pad = (-n) % m
        if pad:
            x = F.pad(x, (0, 0, pad, 0))
        n_pad = n + pad
        q, k, v = (
            self.to_qkv(x).view(b, n_pad, 3, h, self.dim_head).permute(2, 0, 3, 1, 4).unbind(0)
        )  # each (B, h, n_pad, d_h)
        q = q * self.scale
        seg = n_pad // m
        q_land = q.reshape(b, h, m, seg, self.dim_head).mean(3)  # (B, h, m, d_h)
        k_land = k.reshape(b, h, m, seg, self.dim_head).mean(3)
        attn1 = torch.softmax(q @ k_land.transpose(-1, -2), dim=-1)  # (B, h, n_pad, m)
        attn2 = torch.softmax(q_land @ k_land.transpose(-1, -2), dim=-1)  # (B, h, m, m)
        attn3 = torch.softmax(q_land @ k.transpose(-1, -2), dim=-1)  # (B, h, m, n_pad)
        # design: the reference's product (attn1 @ pinv) @ (attn3 @ v), associated right to left:
        # n·m·d_h instead of n·m² multiply-adds (d_h < m in TransMIL: 64 vs 256).
        pinv = iterative_pinv(attn2, self.pinv_iterations)
        out = attn1 @ (pinv @ (attn3 @ v))
        row = None
        if query is not None:
            if not -n <= query < n:
                raise IndexError(f"query={query} out of range for {n} tokens")
            i = pad + query % n
            row = ((attn1[:, :, i : i + 1] @ pinv) @ attn3).squeeze(2)[..., pad:]  # (B, h, n)
        if self.res_conv is not None:
            out = out + self.res_conv(v)
        out = out.transpose(1, 2).reshape(b, n_pad, h * self.dim_head)
        return self.to_out(out)[:, -n:], row


class TransLayer(nn.Module):
    """Pre-norm residual Nyström attention block of TransMIL: x + Attn(LayerNorm(x))."""

    def __init__(
        self, dim: int = 512, dropout: float = 0.1, num_landmarks: int | None = None
    ) -> None:
        super().__init__()
        if dim % 8 or dim < 16:
            raise ValueError(f"TransLayer dim must be a multiple of 8 and >= 16, got {dim}")
        self.norm = nn.LayerNorm(dim)
        # TransMIL's settings: 8 heads of dim/8, dim/2 landmarks, 6 pinv iterations, residual.
        # design: `num_landmarks` can be lowered (config model_kwargs): the (m × m) pseudo-inverse
        # is a fixed ~0.6 s per case on a CPU at m = 256, whatever the bag size.
        self.attn = NystromAttention(
            dim,
            heads=8,
            dim_head=dim // 8,
            num_landmarks=dim // 2 if num_landmarks is None else num_landmarks,
            pinv_iterations=6,
            residual=True,
            dropout=dropout,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, dim) → (B, n, dim)."""
        return x + self.attn(self.norm(x))

    def attend(self, x: torch.Tensor, query: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """forward's output and the attention row of token `query` (NystromAttention.attend)."""
        out, row = self.attn.attend(self.norm(x), query)
        return x + out, row


def pad_to_square(tokens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Append copies of the first tokens so that (n, d) becomes (side², d), side = ⌈√n⌉.

    side² − n ≤ n for every n ≥ 1, so copying the first side² − n tokens always suffices.
    """
    n = tokens.shape[0]
    side = math.isqrt(n - 1) + 1 if n > 0 else 0
    extra = side * side - n
    if extra:
        tokens = torch.cat([tokens, tokens[:extra]], dim=0)
    return tokens, side


class PPEG(nn.Module):
    """Pyramid position encoding generator: identity + depthwise 7/5/3 convs on the H×H grid."""

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.proj7 = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.proj5 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.proj3 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        """(B, 1 + side², C) → same shape; the class token (position 0) passes through."""
        b, n, c = x.shape
        if n != 1 + side * side:
            raise ValueError(f"PPEG expects 1 + {side}² tokens, got {n}")
        cls, feat = x[:, :1], x[:, 1:]
        grid = feat.transpose(1, 2).reshape(b, c, side, side)
        grid = grid + self.proj7(grid) + self.proj5(grid) + self.proj3(grid)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


class TransMILEncoder(nn.Module):
    """[pad to square] → class token → TransLayer → [PPEG] → TransLayer → LayerNorm.

    With `ppeg=True` this is TransMIL's body (and CMTA's `Transformer_P`); with `ppeg=False` it is
    CMTA's `Transformer_G` (no square padding, no position encoding) for the few gene tokens.
    """

    def __init__(
        self,
        dim: int = 512,
        *,
        ppeg: bool = True,
        dropout: float = 0.1,
        cls_std: float = 1.0,
        num_landmarks: int | None = None,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * cls_std)
        self.layer1 = TransLayer(dim, dropout, num_landmarks)
        self.pos_layer = PPEG(dim) if ppeg else None
        self.layer2 = TransLayer(dim, dropout, num_landmarks)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, dim) tokens → class token (1, dim) and the others (n', dim), n' = ⌈√n⌉² or n."""
        cls, others, _ = self.encode(tokens)
        return cls, others

    def encode(
        self, tokens: torch.Tensor, *, cls_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """forward's outputs and, if asked, the class token's attention over the n' tokens.

        The attention is the class token's row of layer2's (last layer's) Nyström attention,
        averaged over heads and without the class token's own column: (n',) over forward's
        tokens (with PPEG, the n input tokens then the square-padding copies; see fold_copies).
        """
        side = 0
        if self.pos_layer is not None:
            tokens, side = pad_to_square(tokens)
        h = torch.cat([self.cls_token, tokens.unsqueeze(0)], dim=1)  # (1, 1 + n', dim)
        h = self.layer1(h)
        if self.pos_layer is not None:
            h = self.pos_layer(h, side)
        row = None
        if cls_attention:  # the same layer, its class-token attention row kept
            h, row = self.layer2.attend(h, 0)
        else:
            h = self.layer2(h)
        h = self.norm(h).squeeze(0)
        scores = None if row is None else row[0].mean(0)[1:]
        return h[:1], h[1:], scores


def fold_copies(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Map (n',) scores over pad_to_square's tokens back to the n inputs, copies added in.

    pad_to_square appends copies of the first n' − n tokens, so token n + i is input i again.
    """
    if scores.ndim != 1 or not n <= scores.shape[0] <= 2 * n:
        raise ValueError(
            f"fold_copies: need (n', ) scores with n <= n' <= 2n, n={n}, got {tuple(scores.shape)}"
        )
    out = scores[:n].clone()
    extra = scores.shape[0] - n
    out[:extra] += scores[n:]
    return out
