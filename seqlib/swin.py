"""Swin Transformer: attention inside local windows, shifted windows, patch
merging.

Liu et al. (2021), "Swin Transformer: Hierarchical Vision Transformer using
Shifted Windows". Self-attention is computed inside non-overlapping M×M windows
of the token grid (cost linear in the number of tokens, Sec. 3.2), every second
block shifts the grid by M/2 so that neighbouring windows exchange information
(the cyclic shift plus an attention mask keeps the batch of windows regular),
each window adds a learned relative position bias B gathered from a (2M−1)²
table (Eq. 4), and patch merging halves the grid while doubling the width,
giving the CNN-like pyramid C×H/4×W/4 → … → 8C×H/32×W/32 (Sec. 3.1). The
attention itself is the book's one
:class:`seqlib.attention.MultiHeadAttention`, and a Swin block is chapter 5's
:class:`seqlib.layers.Block`: only its mixer,
:class:`ShiftedWindowAttention` (shift, partition into windows, attend,
reverse, shift back), differs from the Transformer's. Shape letters: B batch,
H/W token grid, C width, M window size, N = M² tokens per window, nW windows
per image, h heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqlib.attention import MultiHeadAttention
from seqlib.layers import Block, ConvPatchEmbedding, FeedForward, init_weights
from seqlib.shapes import expect_shape


# --- pure tensor helpers -----------------------------------------------------
def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """Cut a token grid into non-overlapping windows, row-major inside and
    across windows.

    Args:
        x: (B, H, W, C) with H and W multiples of ``window``.
        window: M, the window side.

    Returns:
        (B·nW, M·M, C) with nW = (H/M)·(W/M); windows of image 0 first.

    Raises:
        ValueError: if ``x`` is not 4-D or H, W are not multiples of M.
    """
    dims = expect_shape(x, ("B", "H", "W", "C"), name="x")
    if window < 1 or dims["H"] % window or dims["W"] % window:
        raise ValueError(
            f"x: grid (H, W)=({dims['H']}, {dims['W']}) must be a multiple of "
            f"the window size M={window}"
        )
    return rearrange(
        x, "b (nh m1) (nw m2) c -> (b nh nw) (m1 m2) c", m1=window, m2=window
    )  # (B·nW, M², C)


def window_reverse(
    windows: torch.Tensor, window: int, height: int, width: int
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: put the windows back into the grid.

    Args:
        windows: (B·nW, M·M, C).
        window: M.
        height, width: H and W of the grid (multiples of M).

    Returns:
        (B, H, W, C).
    """
    if height % window or width % window:
        raise ValueError(
            f"grid ({height}, {width}) must be a multiple of the window size "
            f"M={window}"
        )
    nh, nw = height // window, width // window
    dims = expect_shape(windows, (None, window * window, "C"), name="windows")
    if windows.shape[0] % (nh * nw):
        raise ValueError(
            f"windows: expected a multiple of nW={nh * nw} windows on axis 0, "
            f"got shape {tuple(windows.shape)}"
        )
    return rearrange(
        windows,
        "(b nh nw) (m1 m2) c -> b (nh m1) (nw m2) c",
        nh=nh,
        nw=nw,
        m1=window,
        m2=window,
        c=dims["C"],
    )  # (B, H, W, C)


def relative_position_index(window: int) -> torch.Tensor:
    """Index of each (query, key) pair of an M×M window into the (2M−1)² bias
    table (Eq. 4).

    Token i at (y_i, x_i) and token j at (y_j, x_j) have a relative offset
    (y_i − y_j, x_i − x_j) in [−(M−1), M−1]²; shifting it by M−1 and reading it
    as a two-digit number in base 2M−1 gives a unique table row per offset.

    Returns:
        (M², M²) int64 with values in [0, (2M−1)²); entry [i, j] depends only
        on the offset of i relative to j, so index[i, j] + index[j, i] =
        2·index[c, c] for any token c (the table's centre, offset zero).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window), torch.arange(window), indexing="ij"
        )
    )  # (2, M, M)
    coords = coords.flatten(1)  # (2, M²)
    offsets = (
        coords[:, :, None] - coords[:, None, :] + (window - 1)
    )  # (2, M², M²) in [0, 2M−2]
    return offsets[0] * (2 * window - 1) + offsets[1]  # (M², M²)


def window_region_ids(
    height: int, width: int, window: int, shift: int
) -> torch.Tensor:
    """Label each token of the cyclically shifted grid with the image region it
    came from.

    After ``torch.roll(x, (−s, −s))`` the last windows of each row and column
    hold tokens from opposite borders of the image. Splitting each axis into
    [0, H−M), [H−M, H−s), [H−s, H) gives at most 9 regions; two tokens of a
    shifted window may attend to each other only when their labels agree.

    Returns:
        (H, W) int64 region labels in [0, 9).
    """
    labels = torch.zeros(height, width, dtype=torch.long)
    if shift == 0:
        return labels
    bands = lambda n: (  # noqa: E731
        slice(0, n - window),
        slice(n - window, n - shift),
        slice(n - shift, n),
    )
    for i, rows in enumerate(bands(height)):
        for j, cols in enumerate(bands(width)):
            labels[rows, cols] = 3 * i + j
    return labels


def shifted_window_mask(
    height: int, width: int, window: int, shift: int
) -> torch.Tensor:
    """The attention mask of the shifted windows (Sec. 3.2, "efficient batch
    computation").

    Args:
        height, width: the token grid (multiples of ``window``).
        window: M.
        shift: s, the cyclic shift (M // 2 in Swin; 0 gives an all-True mask).

    Returns:
        (nW, M², M²) bool, True where query i of a window may attend to key j,
        i.e. both came from the same region of the un-shifted image.
    """
    if not 0 <= shift < window:
        raise ValueError(f"shift must be in [0, M={window}), got {shift}")
    labels = window_region_ids(height, width, window, shift)  # (H, W)
    ids = window_partition(labels[None, :, :, None], window)[
        ..., 0
    ]  # (nW, M²)
    return ids[:, :, None] == ids[:, None, :]  # (nW, M², M²)


def cyclic_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Roll a (B, H, W, C) grid by −``shift`` on both spatial axes (undo with
    −``shift``)."""
    return torch.roll(x, shifts=(-shift, -shift), dims=(1, 2)) if shift else x


def msa_cost(height: int, width: int, dim: int) -> int:
    """Ω(MSA) = 4hwC² + 2(hw)²C multiply-adds of global multi-head
    self-attention (Eq. 1 of the paper).

    4hwC² for the query, key, value and output projections; (hw)²C for QKᵀ and
    again for the weighted sum.
    """
    n = height * width
    return 4 * n * dim**2 + 2 * n**2 * dim


def window_msa_cost(height: int, width: int, dim: int, window: int) -> int:
    """Ω(W-MSA) = 4hwC² + 2M²hwC: the same projections, but each token attends
    to only M² others (Eq. 2)."""
    n = height * width
    return 4 * n * dim**2 + 2 * window**2 * n * dim


# --- modules that do not depend on attention ---------------------------------
class PatchMerging(nn.Module):
    """Halve the grid and double the width: concat each 2×2 neighbourhood (4C),
    norm, Linear 4C→2C.

    An odd grid side is padded with zeros first, as in the official
    implementation.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B, ⌈H/2⌉, ⌈W/2⌉, 2C)."""
        expect_shape(x, ("B", "H", "W", self.dim), name="x")
        B, H, W, C = x.shape
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))  # (B, H', W', C) even
        x = rearrange(
            x, "b (h p1) (w p2) c -> b h w (p2 p1 c)", p1=2, p2=2
        )  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))  # (B, H/2, W/2, 2C)


# --- attention in windows ----------------------------------------------------
class WindowAttention(MultiHeadAttention):
    """Multi-head self-attention inside each M×M window plus a relative
    position bias (Eq. 4).

    softmax(QKᵀ/√d + B) V with B[i, j] = table[index[i, j]] per head: a learned
    (2M−1)²×h table indexed by :func:`relative_position_index`. It is the
    book's
    :class:`seqlib.attention.MultiHeadAttention`, called with ``attn_bias=B``;
    under
    :func:`seqlib.attention.record` it records its weights (B·nW, h, M², M²).
    """

    def __init__(
        self, dim: int, heads: int, window: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__(dim, heads, dropout=dropout)
        self.window = window
        self.bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, heads)
        )  # ((2M−1)², h)
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer(
            "bias_index", relative_position_index(window), persistent=False
        )  # (M², M²)

    def no_weight_decay(self) -> list[str]:
        """The relative position bias table is not decayed (see
        :func:`seqlib.layers.param_groups`)."""
        return ["bias_table"]

    def relative_bias(self) -> torch.Tensor:
        """B for every head: (h, M², M²)."""
        return rearrange(
            self.bias_table[self.bias_index], "t s h -> h t s"
        )  # (h, M², M²)

    def forward(
        self, windows: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend within each window.

        Args:
            windows: (B·nW, M², C) from :func:`window_partition`.
            mask: (nW, M², M²) bool from :func:`shifted_window_mask` (True =
                may attend), or None.

        Returns:
            (B·nW, M², C).
        """
        dims = expect_shape(
            windows, ("BnW", self.window**2, self.dim), name="windows"
        )
        attn_mask = None
        if mask is not None:
            expect_shape(
                mask, ("nW", self.window**2, self.window**2), name="mask"
            )
            if dims["BnW"] % mask.shape[0]:
                raise ValueError(
                    f"windows: expected a multiple of nW={mask.shape[0]} "
                    f"windows, got {dims['BnW']}"
                )
            attn_mask = mask.repeat(
                dims["BnW"] // mask.shape[0], 1, 1
            )  # (B·nW, M², M²): window index runs fastest
        return super().forward(
            windows, attn_mask=attn_mask, attn_bias=self.relative_bias()[None]
        )


class ShiftedWindowAttention(nn.Module):
    """Swin's mixer, a token grouping: cyclic shift → windows →
    :class:`WindowAttention` → reverse → shift back.

    With ``shift = 0`` this is W-MSA (regular windows), with ``shift > 0``
    SW-MSA. The shift mask of the ``grid`` is built once here and kept as a
    buffer (it moves with ``.to()`` but is not saved in the ``state_dict``: it
    follows from the sizes).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        window: int,
        grid: int,
        shift: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(
                f"shift must be in [0, window={window}), got {shift}"
            )
        self.window, self.shift, self.grid = window, shift, grid
        self.attn = WindowAttention(dim, heads, window, dropout=dropout)
        mask = (
            shifted_window_mask(grid, grid, window, shift) if shift else None
        )  # (nW, M², M²)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B, H, W, C), with H = W = ``grid``."""
        expect_shape(x, ("B", self.grid, self.grid, self.attn.dim), name="x")
        windows = window_partition(
            cyclic_shift(x, self.shift), self.window
        )  # (B·nW, M², C)
        out = self.attn(windows, mask=self.mask)  # (B·nW, M², C)
        return cyclic_shift(
            window_reverse(out, self.window, self.grid, self.grid), -self.shift
        )  # (B, H, W, C)


class SwinBlock(Block):
    """One Swin block (Eq. 3): chapter 5's :class:`~seqlib.layers.Block` with a
    (shifted) window mixer.

    ``x + SW-MSA(LN(x))`` then ``x + MLP(LN(x))``; dropout acts inside the
    attention and the MLP only, not on the residual branches (the official
    code's stochastic depth there is left out).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        window: int,
        grid: int,
        shift: int = 0,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            dim,
            ShiftedWindowAttention(
                dim,
                heads,
                window=window,
                grid=grid,
                shift=shift,
                dropout=dropout,
            ),
            FeedForward(
                dim, int(dim * mlp_ratio), dropout=dropout, activation="gelu"
            ),
        )

    @property
    def window(self) -> int:
        """M, the window side."""
        return self.mixer.window

    @property
    def shift(self) -> int:
        """The cyclic shift: 0 (W-MSA) or M // 2 (SW-MSA)."""
        return self.mixer.shift


class SwinStage(nn.Module):
    """``depth`` blocks at one resolution, alternating regular (W-MSA) and
    shifted (SW-MSA) windows.

    When the grid is no larger than the window, one window covers it: the
    window shrinks to the grid and nothing is shifted (as in the official
    code). ``shifted=False`` keeps every block's windows regular (an ablation:
    no token ever sees past its window).
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        heads: int,
        window: int,
        grid: int,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        shifted: bool = True,
    ) -> None:
        super().__init__()
        window = min(window, grid)
        shift = window // 2 if grid > window and shifted else 0
        self.grid, self.window = grid, window
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                heads,
                window=window,
                grid=grid,
                shift=shift if i % 2 else 0,
                mlp_ratio=mlp_ratio,
                dropout=dropout,
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, grid, grid, C) → same shape; each block's weights go to
        :func:`seqlib.attention.record`."""
        expect_shape(x, ("B", self.grid, self.grid, None), name="x")
        for block in self.blocks:
            x = block(x)
        return x


# --- the hierarchical model --------------------------------------------------
@dataclass(frozen=True)
class SwinConfig:
    """Sizes of a :class:`SwinTransformer`; stage i has width dim·2^i and grid
    ⌈(image/patch)/2^i⌉."""

    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 1
    num_classes: int = 10
    dim: int = 20
    depths: tuple[int, ...] = (2, 2, 2)
    heads: tuple[int, ...] = (2, 4, 8)
    window: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if len(self.depths) != len(self.heads):
            raise ValueError(
                "depths and heads need one entry per stage, got "
                f"{self.depths} and {self.heads}"
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size={self.image_size} must be a multiple of "
                f"patch_size={self.patch_size}"
            )


class SwinTransformer(nn.Module):
    """Patch embedding, stages of Swin blocks separated by patch merging, then
    norm, mean pool and head."""

    def __init__(self, config: SwinConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_embed = ConvPatchEmbedding(
            image_size=c.image_size,
            patch_size=c.patch_size,
            in_channels=c.in_channels,
            dim=c.dim,
        )
        self.embed_norm = nn.LayerNorm(c.dim)
        self.stages, self.merges = nn.ModuleList(), nn.ModuleList()
        grid, dim = c.image_size // c.patch_size, c.dim
        for i, (depth, heads) in enumerate(zip(c.depths, c.heads)):
            self.stages.append(
                SwinStage(
                    dim,
                    depth=depth,
                    heads=heads,
                    window=c.window,
                    grid=grid,
                    mlp_ratio=c.mlp_ratio,
                    dropout=c.dropout,
                )
            )
            if i < len(c.depths) - 1:
                self.merges.append(PatchMerging(dim))
                grid, dim = -(-grid // 2), 2 * dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c.num_classes)
        self.apply(init_weights)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The pyramid: one (B, C·2^i, H_i, W_i) feature map per stage,
        channels first like a CNN's."""
        x = self.patch_embed(images)  # (B, N, C)
        g = self.patch_embed.grid
        x = self.embed_norm(
            rearrange(x, "b (h w) c -> b h w c", h=g, w=g)
        )  # (B, H/P, W/P, C)
        maps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)  # (B, H_i, W_i, C_i)
            maps.append(rearrange(x, "b h w c -> b c h w"))
            if i < len(self.merges):
                x = self.merges[i](x)  # (B, H_i/2, W_i/2, 2C_i)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) → logits (B, classes)."""
        last = self.features(images)[-1]  # (B, C_last, H_last, W_last)
        tokens = self.norm(
            rearrange(last, "b c h w -> b h w c")
        )  # (B, H_last, W_last, C_last)
        pooled = tokens.mean(
            dim=(1, 2)
        )  # (B, C_last): the official order, norm every token then average
        return self.head(pooled)  # (B, classes)


def swin_tiny(**overrides) -> SwinTransformer:
    """Smoke size, for 32×32 inputs (Fashion-MNIST padded by 2 pixels), 0.16 M
    parameters.

    4×4 patches; grid 8 → 4 → 2, widths 20 → 40 → 80, M = 4. Stage 1 has 2×2
    windows and shifts them by 2; the later stages fit in one window.
    """
    return SwinTransformer(SwinConfig(**overrides))
