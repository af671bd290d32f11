"""Recurrent Vision Transformer: multi-axis attention per frame, a ConvLSTM
across frames.

Gehrig & Scaramuzza (2023), "Recurrent Vision Transformers for Object Detection
with Event Cameras". Each stage downsamples the frame with a strided
convolution, mixes tokens with *block* attention (multi-head self-attention
inside non-overlapping P×P windows, Swin's
:func:`~seqlib.swin.window_partition`) and *grid* attention (the same attention
over a G×G grid of tokens spread H/G apart across the whole map, as in MaxViT,
Tu et al. 2022), and ends with a 1×1 ConvLSTM: an LSTM cell applied at every
position whose hidden and cell states are carried from one frame to the next.
Two attention layers therefore reach every token of the map, and the LSTM gives
the stage a memory.

Each attention layer is chapter 5's :class:`seqlib.layers.Block` (attention,
then an MLP, each pre-norm and residual) whose mixer,
:class:`PartitionAttention`, is the book's one
:class:`seqlib.attention.MultiHeadAttention` around a pure token grouping:
partition, attend inside each group, reverse. The LSTM states are passed in and
returned (:meth:`RVT.step`), never kept on the module.
:func:`frame_window` builds the input of the stateless baseline that sees the
last k frames at once instead.
Shape letters: B batch, F frames, C channels, H/W map size, P block side,
G grid side, N tokens per window (P² or G²), h heads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqlib.attention import AttentionMaps, MultiHeadAttention
from seqlib.layers import Block, FeedForward
from seqlib.shapes import expect_shape
from seqlib.swin import window_partition, window_reverse

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, H, W, C)


# --- the grid partition ------------------------------------------------------
# (the block partition is seqlib.swin.window_partition)
def grid_partition(x: torch.Tensor, grid: int) -> torch.Tensor:
    """Group tokens into G×G grids dilated over the whole map (MaxViT's grid
    attention).

    Token ``(i, j)`` joins group ``(i mod H/G, j mod W/G)``: each group holds
    G×G tokens spaced ``H/G`` rows and ``W/G`` columns apart, so it spans the
    map.

    Args:
        x: (B, H, W, C) with H and W multiples of ``grid``.
        grid: G, the grid side.

    Returns:
        (B·nG, G·G, C) with nG = (H/G)·(W/G) groups per image, row-major inside
        a group.
    """
    dims = expect_shape(x, ("B", "H", "W", "C"), name="x")
    if grid < 1 or dims["H"] % grid or dims["W"] % grid:
        raise ValueError(
            f"x: map (H, W)=({dims['H']}, {dims['W']}) must be a multiple of "
            f"the grid size G={grid}"
        )
    return rearrange(
        x, "b (g1 h) (g2 w) c -> (b h w) (g1 g2) c", g1=grid, g2=grid
    )  # (B·nG, G², C)


def grid_reverse(
    groups: torch.Tensor, grid: int, height: int, width: int
) -> torch.Tensor:
    """Inverse of :func:`grid_partition`: (B·nG, G·G, C) → (B, H, W, C)."""
    if grid < 1 or height % grid or width % grid:
        raise ValueError(
            f"map ({height}, {width}) must be a multiple of the grid size "
            f"G={grid}"
        )
    dims = expect_shape(groups, (None, grid * grid, "C"), name="groups")
    h, w = height // grid, width // grid
    if groups.shape[0] % (h * w):
        raise ValueError(
            f"groups: expected a multiple of nG={h * w} groups on axis 0, got "
            f"shape {tuple(groups.shape)}"
        )
    return rearrange(
        groups,
        "(b h w) (g1 g2) c -> b (g1 h) (g2 w) c",
        h=h,
        w=w,
        g1=grid,
        g2=grid,
        c=dims["C"],
    )  # (B, H, W, C)


PARTITIONS = {
    "block": (window_partition, window_reverse),
    "grid": (grid_partition, grid_reverse),
}
"""The two token groupings of RVT: mode -> (partition, reverse), pure functions
of the map."""


def attention_to_map(
    weights: torch.Tensor,
    query: tuple[int, int],
    *,
    mode: str,
    size: int,
    height: int,
    width: int,
    image: int = 0,
) -> torch.Tensor:
    """Scatter one query's attention weights back onto the (H, W) map, averaged
    over heads.

    Args:
        weights: (B·n, h, N, N) from a ``mode`` ("block" or "grid")
            :class:`PartitionAttention`.
        query: (row, column) of the query token.
        size: P or G of that layer; height, width: H and W of the map; image:
            which of the B.

    Returns:
        (H, W): the weights the query gives each token, zero outside its window
        or grid group.
    """
    ids = torch.arange(height * width, dtype=weights.dtype).view(
        1, height, width, 1
    )  # (1, H, W, 1)
    part, reverse = PARTITIONS[mode]
    slots = part(ids, size)[..., 0]  # (n, N): token id in each slot
    n = slots.shape[0]
    window, slot = map(
        int, (slots == query[0] * width + query[1]).nonzero()[0]
    )
    row = weights[image * n + window, :, slot].mean(0)  # (N,) mean over heads
    scattered = torch.zeros(n, slots.shape[1], 1, dtype=weights.dtype)
    scattered[window, :, 0] = row
    return reverse(scattered, size, height, width)[0, :, :, 0]  # (H, W)


# --- attention inside a partition --------------------------------------------
class PartitionAttention(MultiHeadAttention):
    """The mixer of RVT: multi-head self-attention inside blocks
    (``mode="block"``) or grids (``mode="grid"``).

    A pure token grouping around the book's one attention layer: partition the
    (B, H, W, C) map into groups of N tokens, attend inside each group, put the
    tokens back. In a :class:`seqlib.layers.Block` (see
    :func:`partition_block`) it is the residual sub-layer
    ``x + reverse(MHSA(partition(LN(x))))``. Under
    :func:`seqlib.attention.record` the weights (B·n, h, N, N) are recorded.
    """

    def __init__(
        self, dim: int, heads: int, size: int, *, mode: str = "block"
    ) -> None:
        if mode not in PARTITIONS:
            raise ValueError(f"mode must be 'block' or 'grid', got {mode!r}")
        super().__init__(dim, heads)
        self.size, self.mode = size, mode

    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B·n, N, C) groups of this layer's kind."""
        return PARTITIONS[self.mode][0](x, self.size)

    def reverse(
        self, groups: torch.Tensor, height: int, width: int
    ) -> torch.Tensor:
        """(B·n, N, C) → (B, H, W, C)."""
        return PARTITIONS[self.mode][1](groups, self.size, height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(B, H, W, C) → (B, H, W, C): attention inside each group only."""
        dims = expect_shape(x, ("B", "H", "W", self.dim), name="x")
        return self.reverse(
            super().forward(self.partition(x)), dims["H"], dims["W"]
        )  # (B·n, N, C) → (B, H, W, C)


def partition_block(
    dim: int,
    heads: int,
    size: int,
    *,
    mode: str = "block",
    mlp_ratio: float = 2.0,
) -> Block:
    """Chapter 5's :class:`~seqlib.layers.Block` with a
    :class:`PartitionAttention` mixer and a GELU MLP."""
    return Block(
        dim,
        PartitionAttention(dim, heads, size, mode=mode),
        FeedForward(dim, int(dim * mlp_ratio), activation="gelu"),
    )


class MultiAxisAttention(nn.Module):
    """Block attention then grid attention (RVT Sec. 3.2, MaxViT): local
    detail, then global reach.

    Two :class:`~seqlib.layers.Block`; their weights are recorded as
    ``"{prefix}.block.mixers.attn"`` and ``"{prefix}.grid.mixers.attn"``.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        block: int,
        grid: int,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.block = partition_block(
            dim, heads, block, mode="block", mlp_ratio=mlp_ratio
        )
        self.grid = partition_block(
            dim, heads, grid, mode="grid", mlp_ratio=mlp_ratio
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) → (B, H, W, C)."""
        return self.grid(self.block(x))


# --- memory ------------------------------------------------------------------
class ConvLSTM1x1(nn.Module):
    """An LSTM cell at every position (a ConvLSTM with 1×1 kernels, RVT Sec.
    3.3).

    ``i, f, o, g = split(W [x; h_prev])``; ``c = σ(f)·c_prev + σ(i)·tanh(g)``;
    ``h = σ(o)·tanh(c)`` (Hochreiter & Schmidhuber 1997). A 1×1 convolution on
    a channels-last map is a linear layer on the channel axis.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.to_gates = nn.Linear(2 * dim, 4 * dim)
        with (
            torch.no_grad()
        ):  # forget-gate bias 1: remember by default (Jozefowicz et al. 2015)
            self.to_gates.bias[dim : 2 * dim].fill_(1.0)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        """``x`` (B, H, W, C) and ``(h, c)`` (zeros when None) → the new
        ``(h, c)``."""
        expect_shape(x, ("B", "H", "W", self.dim), name="x")
        if state is None:
            state = (torch.zeros_like(x), torch.zeros_like(x))
        h, c = state
        expect_shape(h, tuple(x.shape), name="h")
        i, f, o, g = self.to_gates(torch.cat([x, h], dim=-1)).chunk(
            4, dim=-1
        )  # 4 × (B, H, W, C)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class RVTStage(nn.Module):
    """Strided-conv downsampling, ``depth`` multi-axis attention blocks, then
    the ConvLSTM."""

    def __init__(
        self,
        in_channels: int,
        dim: int,
        *,
        stride: int,
        heads: int,
        block: int,
        grid: int,
        depth: int = 1,
        mlp_ratio: float = 2.0,
        lstm: bool = True,
    ) -> None:
        super().__init__()
        # overlapping kernel 2s−1 with padding s−1 maps H to ceil(H/s), as
        # RVT's downsampling
        kernel = 2 * stride - 1
        self.in_channels, self.dim = in_channels, dim
        self.down = nn.Conv2d(
            in_channels, dim, kernel, stride=stride, padding=stride - 1
        )
        self.norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(
            MultiAxisAttention(
                dim, heads, block=block, grid=grid, mlp_ratio=mlp_ratio
            )
            for _ in range(depth)
        )
        self.lstm = ConvLSTM1x1(dim) if lstm else None

    def forward(
        self, x: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State | None]:
        """One frame through the stage.

        Args:
            x: (B, C_in, H, W) frame or previous stage's map.
            state: the ConvLSTM's ``(h, c)`` from the previous frame, or None
                (zeros).

        Returns:
            ``(out, state)``: out (B, dim, H/s, W/s) and the new state (None
            without LSTM).
        """
        expect_shape(x, ("B", self.in_channels, "H", "W"), name="x")
        x = self.norm(
            rearrange(self.down(x), "b c h w -> b h w c")
        )  # (B, H/s, W/s, C)
        for block in self.blocks:
            x = block(x)  # (B, H/s, W/s, C)
        if self.lstm is not None:
            state = self.lstm(x, state)
            x = state[0]  # the hidden state is the stage's output
        return rearrange(x, "b h w c -> b c h w"), state  # (B, C, H/s, W/s)


# --- the model ---------------------------------------------------------------
@dataclass(frozen=True)
class RVTConfig:
    """Sizes of a small RVT backbone plus a classification head on the last
    stage."""

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
            raise ValueError(
                "dims, strides and heads need one entry per stage, got "
                f"{self.dims}, {self.strides}, {self.heads}"
            )
        size = self.image_size
        for s in self.strides:
            size = -(-size // s)
            for what, p in (("block", self.block), ("grid", self.grid)):
                if size % min(p, size):
                    raise ValueError(
                        f"a {size}×{size} map is not a multiple of the {what} "
                        f"size {p}"
                    )


States = list[
    State | None
]  # one ConvLSTM state per stage; None = zeros (or a stage without LSTM)


class RVT(nn.Module):
    """Stages of :class:`RVTStage` and a linear head on the last stage's mean.

    The recurrent state is explicit: :meth:`step` takes the per-stage LSTM
    states and returns the new ones, so the module itself holds no state
    (``.to()`` and ``state_dict`` see only parameters). ``step(frame, states)``
    is the streaming use (one frame per call, as an event camera delivers them;
    pass
    :meth:`initial_state` or None at a sequence boundary); ``forward(clip)``
    runs a whole clip from zero states and returns the logits after the last
    frame. Recorded attention: ``"stages.{i}.blocks.{j}.block.mixers.attn"``
    and ``"stages.{i}.blocks.{j}.grid.mixers.attn"``, once per frame.
    """

    def __init__(self, config: RVTConfig) -> None:
        super().__init__()
        self.config = config
        chans, size, stages = (
            (config.in_channels, *config.dims),
            config.image_size,
            [],
        )
        for i, (s, h) in enumerate(zip(config.strides, config.heads)):
            size = -(-size // s)
            stages.append(
                RVTStage(
                    chans[i],
                    chans[i + 1],
                    stride=s,
                    heads=h,
                    block=min(config.block, size),
                    grid=min(config.grid, size),
                    depth=config.depth,
                    mlp_ratio=config.mlp_ratio,
                    lstm=config.lstm,
                )
            )
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(config.dims[-1], config.num_classes)

    def initial_state(self) -> States:
        """The states before the first frame: zeros, written as None for every
        stage."""
        return [None] * len(self.stages)

    def step(
        self, frame: torch.Tensor, states: States | None = None
    ) -> tuple[torch.Tensor, States]:
        """One frame (B, C, H, W) and the states after the previous frame →
        logits (B, classes), new states."""
        expect_shape(
            frame,
            (
                "B",
                self.config.in_channels,
                self.config.image_size,
                self.config.image_size,
            ),
            name="frame",
        )
        states = self.initial_state() if states is None else list(states)
        if len(states) != len(self.stages):
            raise ValueError(
                f"states: expected one entry per stage ({len(self.stages)}), "
                f"got {len(states)}"
            )
        x = frame
        for i, stage in enumerate(self.stages):
            x, states[i] = stage(x, states[i])  # (B, C_i, H_i, W_i)
        return self.head(x.mean(dim=(2, 3))), states  # (B, classes)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """A clip (B, F, C, H, W) from zero states → logits after the last
        frame (B, classes)."""
        expect_shape(
            clip,
            (
                "B",
                "F",
                self.config.in_channels,
                self.config.image_size,
                self.config.image_size,
            ),
            name="clip",
        )
        states = self.initial_state()
        for t in range(clip.shape[1]):
            logits, states = self.step(clip[:, t], states)
        return logits


def recorded_attention(
    maps: AttentionMaps, *, stage: int = 0, block: int = 0
) -> dict[str, list[torch.Tensor]]:
    """The block and grid attention of one multi-axis block, from
    :func:`seqlib.attention.record` on an :class:`RVT`.

    Returns ``{"block": [...], "grid": [...]}``, one (B·n, h, N, N) tensor per
    frame that ran inside the ``record`` block, in frame order (for
    :func:`attention_to_map`).
    """
    return {
        mode: maps.select(f"*stages.{stage}.blocks.{block}.{mode}.mixers.attn")
        for mode in PARTITIONS
    }


def frame_window(clip: torch.Tensor, k: int) -> torch.Tensor:
    """The last ``k`` frames of each clip stacked along the channel axis,
    oldest first.

    The input of a feed-forward baseline that sees a fixed window of ``k``
    frames at once and carries no state: an :class:`RVT` with ``lstm=False``
    and ``in_channels = k·C`` reads it as a one-frame clip. Frames before the
    clip's start (when ``k`` > F) are zeros.

    Args:
        clip: (B, F, C, H, W).
        k: the window length, at least 1.

    Returns:
        (B, k·C, H, W): channels ``[(k-1)·C, k·C)`` hold the last frame,
        ``[0, C)`` frame F-k.
    """
    dims = expect_shape(clip, ("B", "F", "C", "H", "W"), name="clip")
    if k < 1:
        raise ValueError(f"the window length k must be at least 1, got {k}")
    missing = max(0, k - dims["F"])
    pad = clip.new_zeros(dims["B"], missing, dims["C"], dims["H"], dims["W"])
    window = torch.cat(
        [pad, clip[:, dims["F"] - (k - missing) :]], dim=1
    )  # (B, k, C, H, W)
    return rearrange(window, "b k c h w -> b (k c) h w")  # (B, k·C, H, W)


def rvt_tiny(**overrides) -> RVT:
    """The smoke-profile model: 32×32 event frames, two stages (8×8 then 4×4
    maps)."""
    return RVT(RVTConfig(**overrides))
