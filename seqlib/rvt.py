"""Recurrent Vision Transformer: multi-axis attention per frame, a ConvLSTM across frames.

Gehrig & Scaramuzza (2023), "Recurrent Vision Transformers for Object Detection
with Event Cameras". Each stage downsamples the frame with a strided convolution,
mixes tokens with *block* attention (multi-head self-attention inside
non-overlapping P×P windows, Swin's :func:`~seqlib.swin.window_partition`) and
*grid* attention (the same attention over a G×G grid of tokens spread H/G apart
across the whole map, as in MaxViT, Tu et al. 2022), each followed by an MLP,
and ends with a 1×1 ConvLSTM: an LSTM cell applied at every position whose hidden
and cell states are carried from one frame to the next. Two attention layers
therefore reach every token of the map, and the LSTM gives the stage a memory.
:func:`frame_window` builds the input of the stateless baseline that sees the
last k frames at once instead.
The attention is the book's one :class:`seqlib.attention.MultiHeadAttention`.
Shape letters: B batch, F frames, C channels, H/W map size, P block side,
G grid side, N tokens per window (P² or G²), h heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqlib.attention import MultiHeadAttention
from seqlib.shapes import expect_shape
from seqlib.swin import window_partition, window_reverse
from seqlib.transformer import FeedForward

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, H, W, C)


# --- the grid partition (the block partition is seqlib.swin.window_partition) -----------------
def grid_partition(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Group tokens into G×G grids dilated over the whole map (MaxViT's grid attention).

    Token ``(i, j)`` joins group ``(i mod H/G, j mod W/G)``: each group holds G×G
    tokens spaced ``H/G`` rows and ``W/G`` columns apart, so it spans the map.

    Args:
        x: (B, H, W, C) with H and W multiples of ``grid``.
        grid: G, the grid side.

    Returns:
        (B·nG, G·G, C) with nG = (H/G)·(W/G) groups per image, row-major inside a group.
    """
    dims = expect_shape(x, ("B", "H", "W", "C"), name="x")
    if grid < 1 or dims["H"] % grid or dims["W"] % grid:
        raise ValueError(f"x: map (H, W)=({dims['H']}, {dims['W']}) must be a multiple of the grid size G={grid}")
    return rearrange(x, "b (g1 h) (g2 w) c -> (b h w) (g1 g2) c", g1=grid, g2=grid)  # (B·nG, G², C)


def grid_reverse(groups: torch.Tensor, grid: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`grid_partition`: (B·nG, G·G, C) → (B, H, W, C)."""
    if grid < 1 or height % grid or width % grid:
        raise ValueError(f"map ({height}, {width}) must be a multiple of the grid size G={grid}")
    dims = expect_shape(groups, (None, grid * grid, "C"), name="groups")
    h, w = height // grid, width // grid
    if groups.shape[0] % (h * w):
        raise ValueError(f"groups: expected a multiple of nG={h * w} groups on axis 0, got shape {tuple(groups.shape)}")
    return rearrange(groups, "(b h w) (g1 g2) c -> b (g1 h) (g2 w) c", h=h, w=w, g1=grid, g2=grid,
                     c=dims["C"])  # (B, H, W, C)


def attention_to_map(weights: torch.Tensor, query: tuple[int, int], *, mode: str, size: int,
                     height: int, width: int, image: int = 0) -> torch.Tensor:
    """Scatter one query's attention weights back onto the (H, W) map, averaged over heads.

    Args:
        weights: (B·n, h, N, N) from a ``mode`` ("block" or "grid") :class:`PartitionAttention`.
        query: (row, column) of the query token.
        size: P or G of that layer; height, width: H and W of the map; image: which of the B.

    Returns:
        (H, W): the weights the query gives each token, zero outside its window or grid group.
    """
    ids = torch.arange(height * width, dtype=weights.dtype).view(1, height, width, 1)  # (1, H, W, 1)
    part, reverse = (window_partition, window_reverse) if mode == "block" else (grid_partition, grid_reverse)
    slots = part(ids, size)[..., 0]  # (n, N): token id in each slot
    n = slots.shape[0]
    window, slot = map(int, (slots == query[0] * width + query[1]).nonzero()[0])
    row = weights[image * n + window, :, slot].mean(0)  # (N,) mean over heads
    scattered = torch.zeros(n, slots.shape[1], 1, dtype=weights.dtype)
    scattered[window, :, 0] = row
    return reverse(scattered, size, height, width)[0, :, :, 0]  # (H, W)


# --- attention inside a partition ----------------------------------------------------------------
class PartitionAttention(nn.Module):
    """Multi-head self-attention inside blocks (``mode="block"``) or grids (``mode="grid"``).

    Pre-norm and residual: ``x + reverse(MHSA(partition(LN(x))))``, then ``x + MLP(LN(x))``.
    """

    def __init__(self, dim: int, heads: int, size: int, *, mode: str = "block", mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if mode not in ("block", "grid"):
            raise ValueError(f"mode must be 'block' or 'grid', got {mode!r}")
        self.dim, self.size, self.mode = dim, size, mode
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), activation="gelu")

    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B·n, N, C) windows of this layer's kind."""
        return window_partition(x, self.size) if self.mode == "block" else grid_partition(x, self.size)

    def reverse(self, windows: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B·n, N, C) → (B, H, W, C)."""
        if self.mode == "block":
            return window_reverse(windows, self.size, height, width)
        return grid_reverse(windows, self.size, height, width)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):
        """(B, H, W, C) → (B, H, W, C); with ``return_attention`` also the weights (B·n, h, N, N)."""
        expect_shape(x, ("B", "H", "W", self.dim), name="x")
        _, H, W, _ = x.shape
        out = self.attn(self.partition(self.norm1(x)), return_attention=return_attention)  # (B·n, N, C)
        out, weights = out if return_attention else (out, None)
        x = x + self.reverse(out, H, W)  # (B, H, W, C)
        x = x + self.mlp(self.norm2(x))  # (B, H, W, C)
        return (x, weights) if return_attention else x


class MultiAxisAttention(nn.Module):
    """Block attention then grid attention (RVT Sec. 3.2, MaxViT): local detail, then global reach."""

    def __init__(self, dim: int, heads: int, *, block: int, grid: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.block = PartitionAttention(dim, heads, block, mode="block", mlp_ratio=mlp_ratio)
        self.grid = PartitionAttention(dim, heads, grid, mode="grid", mlp_ratio=mlp_ratio)

    def forward(self, x: torch.Tensor, *, return_attention: bool = False):
        """(B, H, W, C) → (B, H, W, C); with ``return_attention`` also ``{"block": w, "grid": w}``."""
        if not return_attention:
            return self.grid(self.block(x))
        x, wb = self.block(x, return_attention=True)
        x, wg = self.grid(x, return_attention=True)
        return x, {"block": wb, "grid": wg}


# --- memory -------------------------------------------------------------------------------------
class ConvLSTM1x1(nn.Module):
    """An LSTM cell at every position (a ConvLSTM with 1×1 kernels, RVT Sec. 3.3).

    ``i, f, o, g = split(W [x; h_prev])``; ``c = σ(f)·c_prev + σ(i)·tanh(g)``;
    ``h = σ(o)·tanh(c)`` (Hochreiter & Schmidhuber 1997). A 1×1 convolution on a
    channels-last map is a linear layer on the channel axis.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.to_gates = nn.Linear(2 * dim, 4 * dim)
        with torch.no_grad():  # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
            self.to_gates.bias[dim:2 * dim].fill_(1.0)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        """``x`` (B, H, W, C) and ``(h, c)`` (zeros when None) → the new ``(h, c)``."""
        expect_shape(x, ("B", "H", "W", self.dim), name="x")
        if state is None:
            state = (torch.zeros_like(x), torch.zeros_like(x))
        h, c = state
        expect_shape(h, tuple(x.shape), name="h")
        i, f, o, g = self.to_gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)  # 4 × (B, H, W, C)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class RVTStage(nn.Module):
    """Strided-conv downsampling, ``depth`` multi-axis attention blocks, then the ConvLSTM."""

    def __init__(self, in_channels: int, dim: int, *, stride: int, heads: int, block: int, grid: int,
                 depth: int = 1, mlp_ratio: float = 2.0, lstm: bool = True) -> None:
        super().__init__()
        # overlapping kernel 2s−1 with padding s−1 maps H to ceil(H/s), as RVT's downsampling
        kernel = 2 * stride - 1
        self.in_channels, self.dim = in_channels, dim
        self.down = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=stride - 1)
        self.norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(MultiAxisAttention(dim, heads, block=block, grid=grid, mlp_ratio=mlp_ratio)
                                    for _ in range(depth))
        self.lstm = ConvLSTM1x1(dim) if lstm else None

    def forward(self, x: torch.Tensor, state: State | None = None, *, return_attention: bool = False):
        """One frame through the stage.

        Args:
            x: (B, C_in, H, W) frame or previous stage's map.
            state: the ConvLSTM's ``(h, c)`` from the previous frame, or None (zeros).
            return_attention: also return one ``{"block", "grid"}`` dict per block.

        Returns:
            ``(out, state)``: out (B, dim, H/s, W/s), the new state (None without LSTM);
            plus the attention list if asked.
        """
        expect_shape(x, ("B", self.in_channels, "H", "W"), name="x")
        x = self.norm(rearrange(self.down(x), "b c h w -> b h w c"))  # (B, H/s, W/s, C)
        maps = []
        for block in self.blocks:
            x = block(x, return_attention=return_attention)
            if return_attention:
                x, w = x
                maps.append(w)
        if self.lstm is not None:
            state = self.lstm(x, state)
            x = state[0]  # the hidden state is the stage's output
        out = rearrange(x, "b h w c -> b c h w")  # (B, C, H/s, W/s)
        return (out, state, maps) if return_attention else (out, state)


# --- the model ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RVTConfig:
    """Sizes of a small RVT backbone plus a classification head on the last stage."""

    image_size: int = 32
    in_channels: int = 2
    dims: tuple[int, ...] = (16, 32)
    strides: tuple[int, ...] = (4, 2)
    heads: tuple[int, ...] = (2, 2)
    block: int = 4
    grid: int = 4
    depth: int = 1
    mlp_ratio: float = 2.0
    num_classes: int = 4
    lstm: bool = True

    def __post_init__(self) -> None:
        if not len(self.dims) == len(self.strides) == len(self.heads):
            raise ValueError(f"dims, strides and heads need one entry per stage, got {self.dims}, "
                             f"{self.strides}, {self.heads}")
        size = self.image_size
        for s in self.strides:
            size = -(-size // s)
            for what, p in (("block", self.block), ("grid", self.grid)):
                if size % min(p, size):
                    raise ValueError(f"a {size}×{size} map is not a multiple of the {what} size {p}")


class RVT(nn.Module):
    """Stages of :class:`RVTStage`; the LSTM states are carried across calls until :meth:`reset`.

    ``step(frame)`` is the streaming use (one frame per call, as an event camera
    delivers them); ``forward(clip)`` resets and runs a whole clip, returning the
    logits after the last frame.
    """

    def __init__(self, config: RVTConfig) -> None:
        super().__init__()
        self.config = config
        chans, size, stages = (config.in_channels, *config.dims), config.image_size, []
        for i, (s, h) in enumerate(zip(config.strides, config.heads)):
            size = -(-size // s)
            stages.append(RVTStage(chans[i], chans[i + 1], stride=s, heads=h, block=min(config.block, size),
                                   grid=min(config.grid, size), depth=config.depth, mlp_ratio=config.mlp_ratio,
                                   lstm=config.lstm))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(config.dims[-1], config.num_classes)
        self.states: list[State | None] = [None] * len(stages)

    def reset(self) -> None:
        """Forget everything: the next frame starts from zero LSTM states."""
        self.states = [None] * len(self.stages)

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """One frame (B, C, H, W) → logits (B, classes), updating the carried states."""
        expect_shape(frame, ("B", self.config.in_channels, self.config.image_size, self.config.image_size),
                     name="frame")
        x = frame
        for i, stage in enumerate(self.stages):
            x, self.states[i] = stage(x, self.states[i])  # (B, C_i, H_i, W_i)
        return self.head(x.mean(dim=(2, 3)))  # (B, classes)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """A clip (B, F, C, H, W) from reset states → logits after the last frame (B, classes)."""
        expect_shape(clip, ("B", "F", self.config.in_channels, self.config.image_size, self.config.image_size),
                     name="clip")
        self.reset()
        for t in range(clip.shape[1]):
            logits = self.step(clip[:, t])
        self.reset()  # do not keep the graph of this clip alive
        return logits


def frame_window(clip: torch.Tensor, k: int) -> torch.Tensor:
    """The last ``k`` frames of each clip stacked along the channel axis, oldest first.

    The input of a feed-forward baseline that sees a fixed window of ``k`` frames
    at once and carries no state: an :class:`RVT` with ``lstm=False`` and
    ``in_channels = k·C`` reads it as a one-frame clip. Frames before the clip's
    start (when ``k`` > F) are zeros.

    Args:
        clip: (B, F, C, H, W).
        k: the window length, at least 1.

    Returns:
        (B, k·C, H, W): channels ``[(k-1)·C, k·C)`` hold the last frame, ``[0, C)`` frame F-k.
    """
    dims = expect_shape(clip, ("B", "F", "C", "H", "W"), name="clip")
    if k < 1:
        raise ValueError(f"the window length k must be at least 1, got {k}")
    missing = max(0, k - dims["F"])
    pad = clip.new_zeros(dims["B"], missing, dims["C"], dims["H"], dims["W"])
    window = torch.cat([pad, clip[:, dims["F"] - (k - missing):]], dim=1)  # (B, k, C, H, W)
    return rearrange(window, "b k c h w -> b (k c) h w")  # (B, k·C, H, W)


def rvt_tiny(**overrides) -> RVT:
    """The smoke-profile model: 32×32 event frames, two stages (8×8 then 4×4 maps)."""
    return RVT(RVTConfig(**overrides))
