"""The pieces every architecture shares: the block, the MLP, patch embeddings,
initialisation.

The book's thesis in one class: :class:`Block`. Every model from chapter 5 on
(the Transformer, ViT, Swin, DETR, ViViT, RVT, TLB) is a stack of the same
pre-norm residual block, ``x + mixer(LN(x))`` then ``x + mlp(LN(x))``. What
changes from chapter to chapter is only the *mixer*: which tokens attend to
which. The Transformer's encoder mixes all tokens (global self-attention), its
decoder adds a causal mask and a second mixer against the encoder's memory,
Swin mixes inside (shifted) windows, RVT inside blocks and grids, ViViT in
space and then in time, TLB within a chunk and against the latents. Each of
those mixers is a pure *token grouping* (a partition of the tokens and its
inverse) around the one attention layer of :mod:`seqlib.attention`.

Also here: the position-wise :class:`FeedForward`, the two forms of ViT's patch
projection under distinct names, the truncated-normal initialisation of ViT and
Swin, parameter counting, the weight-decay split, and the small CNN baseline.
Shape letters: B batch, N tokens, D width, C channels, H/W image size, P patch
side.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Mapping, Sequence

import torch
from einops import rearrange
from torch import nn

from seqlib.shapes import expect_shape

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


# --- the block ---------------------------------------------------------------
class FeedForward(nn.Module):
    """Position-wise ``W_2 drop(act(W_1 x + b_1)) + b_2``, applied to every
    token alike."""

    def __init__(
        self,
        dim: int,
        ff_dim: int,
        *,
        dropout: float = 0.0,
        activation: str = "relu",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got "
                f"{activation!r}"
            )
        self.net = nn.Sequential(
            nn.Linear(dim, ff_dim),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(ff_dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., D) -> (..., D)``."""
        return self.net(x)


class Block(nn.Module):
    """The one residual block: each mixer, then the MLP, as
    ``x + drop(f(LN(x)))``.

    Args:
        dim: the token width D (the layer norms' size).
        mixer: the module that mixes tokens, called as
            ``mixer(LN(x), **context)`` with the keyword arguments given to
            :meth:`forward` (a mask, the encoder's memory, the keys and values
            of the other stream, ...); it is stored as ``mixers["attn"]``. A
            dict of named mixers gives one residual sub-layer each, in order
            (the Transformer decoder's ``"self_attn"`` then ``"cross_attn"``;
            ViViT's ``"space"`` then ``"time"``).
        mlp: the position-wise network of the last sub-layer, or None (no MLP).
        dropout: dropout on each sub-layer's output before it joins the
            residual.
        norm_first: pre-norm ``x + f(LN(x))`` (True, the book's default) or the
            original post-norm ``LN(x + f(x))`` of Vaswani et al. (False).

    The input is ``(..., D)``: tokens ``(B, N, D)``, a map ``(B, H, W, D)`` or
    a video grid ``(B, n_t, n_s, D)``; the mixer decides which of them meet.
    """

    def __init__(
        self,
        dim: int,
        mixer: nn.Module | Mapping[str, nn.Module],
        mlp: nn.Module | None = None,
        *,
        dropout: float = 0.0,
        norm_first: bool = True,
    ):
        super().__init__()
        mixers = (
            {"attn": mixer} if isinstance(mixer, nn.Module) else dict(mixer)
        )
        if not mixers:
            raise ValueError("Block needs at least one mixer")
        # Registration order (mixers, mlp, norms) fixes the order of
        # parameters(), which gradient-norm clipping sums over.
        self.mixers = nn.ModuleDict(mixers)
        self.mlp = mlp
        n = len(mixers) + (mlp is not None)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(n))
        self.drops = nn.ModuleList(nn.Dropout(dropout) for _ in range(n))
        self.dim, self.norm_first = dim, norm_first

    @property
    def mixer(self) -> nn.Module:
        """The first (usually the only) mixer."""
        return next(iter(self.mixers.values()))

    def _residual(self, x: torch.Tensor, i: int, f) -> torch.Tensor:
        if self.norm_first:
            return x + self.drops[i](f(self.norms[i](x)))
        return self.norms[i](x + self.drops[i](f(x)))

    def forward(self, x: torch.Tensor, **context) -> torch.Tensor:
        """``(..., D) -> (..., D)``; ``context`` goes to every mixer."""
        if x.shape[-1] != self.dim:
            raise ValueError(
                f"Block: expected tokens of width D={self.dim} on the last "
                f"axis, got shape {tuple(x.shape)}"
            )
        for i, mixer in enumerate(self.mixers.values()):
            x = self._residual(x, i, lambda y, m=mixer: m(y, **context))
        if self.mlp is not None:
            x = self._residual(x, len(self.mixers), self.mlp)
        return x


# --- patch embeddings --------------------------------------------------------
def _check_divisible(height: int, width: int, patch: int) -> None:
    if patch < 1 or height % patch or width % patch:
        raise ValueError(
            f"image size (H, W)=({height}, {width}) must be a multiple of the "
            f"patch size P={patch}"
        )


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into flattened, non-overlapping patches, row-major over the
    grid.

    Args:
        images: (B, C, H, W) with H and W multiples of ``patch``.
        patch: P, the patch side.

    Returns:
        (B, N, C·P·P) with N = (H/P)(W/P); each row is one patch flattened in
        (channel, row, column) order, the order of a Conv2d weight.
    """
    dims = expect_shape(images, ("B", "C", "H", "W"), name="images")
    _check_divisible(dims["H"], dims["W"], patch)
    return rearrange(
        images,
        "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)",
        p1=patch,
        p2=patch,
    )  # (B, N, CP²)


def unpatchify(
    patches: torch.Tensor, patch: int, height: int, width: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C·P·P) → (B, C, H, W)."""
    _check_divisible(height, width, patch)
    expect_shape(
        patches,
        ("B", (height // patch) * (width // patch), None),
        name="patches",
    )
    return rearrange(
        patches,
        "b (gh gw) (c p1 p2) -> b c (gh p1) (gw p2)",
        gh=height // patch,
        p1=patch,
        p2=patch,
    )  # (B, C, H, W)


class ConvPatchEmbedding(nn.Module):
    """ViT's projection E as a strided convolution: kernel = stride = P, one
    output per patch."""

    def __init__(
        self, *, image_size: int, patch_size: int, in_channels: int, dim: int
    ) -> None:
        super().__init__()
        _check_divisible(image_size, image_size, patch_size)
        self.image_size, self.patch_size, self.in_channels = (
            image_size,
            patch_size,
            in_channels,
        )
        self.grid = image_size // patch_size
        self.num_patches = self.grid**2
        self.proj = nn.Conv2d(
            in_channels, dim, kernel_size=patch_size, stride=patch_size
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, D)."""
        expect_shape(
            images,
            ("B", self.in_channels, self.image_size, self.image_size),
            name="images",
        )
        return rearrange(
            self.proj(images), "b d gh gw -> b (gh gw) d"
        )  # (B, N, D)


class UnfoldPatchEmbedding(nn.Module):
    """ViT's projection E as written in the paper: flatten each patch, then one
    Linear layer."""

    def __init__(
        self, *, image_size: int, patch_size: int, in_channels: int, dim: int
    ) -> None:
        super().__init__()
        _check_divisible(image_size, image_size, patch_size)
        self.image_size, self.patch_size, self.in_channels = (
            image_size,
            patch_size,
            in_channels,
        )
        self.proj = nn.Linear(in_channels * patch_size**2, dim)

    @classmethod
    def from_conv(cls, conv: ConvPatchEmbedding) -> "UnfoldPatchEmbedding":
        """A copy of ``conv`` in unfold-then-Linear form, sharing its weights'
        values."""
        dim = conv.proj.out_channels
        unfold = cls(
            image_size=conv.image_size,
            patch_size=conv.patch_size,
            in_channels=conv.in_channels,
            dim=dim,
        )
        with torch.no_grad():
            unfold.proj.weight.copy_(
                conv.proj.weight.reshape(dim, -1)
            )  # (D, C·P·P)
            unfold.proj.bias.copy_(conv.proj.bias)
        return unfold

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, D)."""
        expect_shape(
            images,
            ("B", self.in_channels, self.image_size, self.image_size),
            name="images",
        )
        return self.proj(patchify(images, self.patch_size))  # (B, N, D)


# --- initialisation, counting, weight decay ----------------------------------
def init_weights(module: nn.Module) -> None:
    """Truncated normal (std 0.02) for Linear weights and zero biases, as in
    ViT and Swin."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """Names of the parameters that weight decay must skip.

    timm's convention: a module may define ``no_weight_decay()``, returning
    names or glob patterns relative to itself (``"cls_token"``, ``"pos.*"``).
    Every parameter with fewer than two dimensions (biases, norm scales) is
    skipped too.
    """
    patterns = []
    for prefix, module in model.named_modules():
        hook = getattr(module, "no_weight_decay", None)
        if callable(hook):
            patterns += [f"{prefix}.{p}" if prefix else p for p in hook()]
    return {
        name
        for name, p in model.named_parameters()
        if p.dim() < 2 or any(fnmatch(name, pattern) for pattern in patterns)
    }


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: weight matrices with ``weight_decay``, the rest (see
    :func:`no_weight_decay_names`) without."""
    skip = no_weight_decay_names(model)
    named = list(model.named_parameters())
    return [
        {
            "params": [p for n, p in named if n not in skip],
            "weight_decay": weight_decay,
        },
        {"params": [p for n, p in named if n in skip], "weight_decay": 0.0},
    ]


# --- the CNN baseline --------------------------------------------------------
def small_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    widths: Sequence[int] = (32, 64, 128),
) -> nn.Sequential:
    """A plain CNN: per width a 3×3 conv, BatchNorm, ReLU and 2×2 max-pool;
    then global average pool and a head.

    Its locality (3×3 kernels) and weight sharing are the inductive biases a
    ViT lacks.
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers += [
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        in_channels = width
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(in_channels, num_classes),
    ]
    return nn.Sequential(*layers)
