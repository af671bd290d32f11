"""ViViT: a video as tokens, and four ways to let them attend across space and
time.

Arnab et al. (2021), "ViViT: A Video Vision Transformer". A clip of F frames is
tokenised either by *uniform frame sampling* (every frame cut into ViT patches,
n_t = F) or by *tubelet embedding* (a 3D convolution over t×P×P blocks, n_t =
F/t), giving a grid of n_t × n_s tokens. Four encoders differ in which tokens a
token may attend to: (1) spatio-temporal attention over all n_t·n_s tokens; (2)
a factorised encoder, a spatial Transformer per frame and then a temporal one
over frame summaries; (3) factorised self-attention, spatial then temporal
attention inside each block; (4) factorised dot-product attention, half of the
heads over space and half over time. Every variant uses the book's
:class:`~seqlib.attention.MultiHeadAttention`, and every block is chapter 5's
:class:`~seqlib.layers.Block`: models 3 and 4 differ only in their mixers,
token groupings by frame (space) and by place (time). Attention maps come from
:func:`seqlib.attention.record`. A tubelet embedding can be
*inflated* from a trained ViT's 2D patch embedding (central-frame or averaged
initialisation, section 3.4). Spatial and temporal positions are learned and
separate, so a model can be built without temporal positions (the arrow of
time). Shape letters: B batch, F frames, C channels, H/W frame size, t tubelet
frames, P patch side, n_t temporal and n_s spatial token counts, N = n_t·n_s, D
width, h heads, d head width, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqlib import attention
from seqlib.attention import MultiHeadAttention, scaled_dot_product_attention
from seqlib.layers import Block, ConvPatchEmbedding, FeedForward, init_weights
from seqlib.shapes import expect_shape
from seqlib.transformer import TransformerEncoder
from seqlib.vit import ViT

VARIANTS = (
    "joint",
    "factorised_encoder",
    "factorised_self_attention",
    "factorised_dot_product",
)


# --- tokenisation ------------------------------------------------------------
def tubelet_grid(
    size: int, kernel: int, stride: int | None = None, padding: int = 0
) -> int:
    """Tokens along one axis of a convolution:
    ``floor((size + 2·padding − kernel) / stride) + 1``.

    The report's OrganMNIST3D arithmetic: ``tubelet_grid(28, 8) == 3`` (the
    last 4 voxels are dropped).
    """
    stride = kernel if stride is None else stride
    if kernel < 1 or stride < 1 or padding < 0 or size + 2 * padding < kernel:
        raise ValueError(
            "need kernel, stride >= 1 and size + 2·padding >= kernel, got "
            f"size={size}, kernel={kernel}, stride={stride}, padding={padding}"
        )
    return (size + 2 * padding - kernel) // stride + 1


def uniform_frame_indices(num_frames: int, n: int) -> torch.Tensor:
    """``n`` frame indices spread evenly over a clip of ``num_frames`` (first
    and last included)."""
    if not 1 <= n <= num_frames:
        raise ValueError(
            f"need 1 <= n <= num_frames, got n={n}, num_frames={num_frames}"
        )
    return torch.linspace(0, num_frames - 1, n).round().long()  # (n,)


class FrameEmbedding(nn.Module):
    """Uniform frame sampling: ViT's 2D patch embedding applied to every frame
    on its own."""

    def __init__(
        self, *, image_size: int, patch_size: int, in_channels: int, dim: int
    ) -> None:
        super().__init__()
        self.patch = ConvPatchEmbedding(
            image_size=image_size,
            patch_size=patch_size,
            in_channels=in_channels,
            dim=dim,
        )
        self.frames_per_token = 1
        self.spatial_tokens = self.patch.num_patches

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) → (B, n_t = F, n_s, D)."""
        B = expect_shape(
            video, ("B", "F", self.patch.in_channels, None, None), name="video"
        )["B"]
        tokens = self.patch(
            rearrange(video, "b f c h w -> (b f) c h w")
        )  # (B·F, n_s, D)
        return rearrange(
            tokens, "(b f) n d -> b f n d", b=B
        )  # (B, n_t, n_s, D)


class TubeletEmbedding(nn.Module):
    """Tubelet embedding: a Conv3d whose kernel spans ``t`` frames and ``P×P``
    pixels.

    With ``stride`` equal to the kernel (the default) tubelets do not overlap;
    sizes that are not multiples of the kernel drop the remainder, as a
    convolution does.
    """

    def __init__(
        self,
        *,
        frames: int,
        image_size: int,
        tubelet: tuple[int, int],
        in_channels: int,
        dim: int,
        stride: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        t, p = tubelet
        st, sp = stride if stride is not None else tubelet
        self.frames, self.image_size, self.in_channels = (
            frames,
            image_size,
            in_channels,
        )
        self.frames_per_token = t
        self.grid = (
            tubelet_grid(frames, t, st),
            tubelet_grid(image_size, p, sp),
        )  # (n_t, tokens per side)
        self.spatial_tokens = self.grid[1] ** 2
        self.proj = nn.Conv3d(
            in_channels, dim, kernel_size=(t, p, p), stride=(st, sp, sp)
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) → (B, n_t, n_s, D)."""
        expect_shape(
            video,
            (
                "B",
                self.frames,
                self.in_channels,
                self.image_size,
                self.image_size,
            ),
            name="video",
        )
        out = self.proj(
            rearrange(video, "b f c h w -> b c f h w")
        )  # (B, D, n_t, n_h, n_w)
        return rearrange(
            out, "b d nt nh nw -> b nt (nh nw) d"
        )  # (B, n_t, n_s, D)

    @classmethod
    def inflate(
        cls,
        patch: ConvPatchEmbedding,
        *,
        frames: int,
        t: int,
        method: str = "average",
    ) -> "TubeletEmbedding":
        """A tubelet embedding initialised from a trained 2D patch embedding
        (see :func:`inflate_weight`)."""
        conv = patch.proj
        tube = cls(
            frames=frames,
            image_size=patch.image_size,
            tubelet=(t, patch.patch_size),
            in_channels=patch.in_channels,
            dim=conv.out_channels,
        )
        with torch.no_grad():
            tube.proj.weight.copy_(
                inflate_weight(conv.weight, t, method=method)
            )
            tube.proj.bias.copy_(conv.bias)
        return tube


def inflate_weight(
    weight: torch.Tensor, t: int, *, method: str = "average"
) -> torch.Tensor:
    """Inflate a Conv2d kernel (D, C, P, P) to a Conv3d kernel (D, C, t, P, P)
    (ViViT, section 3.4).

    ``"average"`` repeats the 2D filter over the t frames and divides by t, so
    a static clip gives exactly the 2D embedding of its frame; ``"central"``
    puts the filter on the middle frame ``t // 2`` and zeros elsewhere, so the
    model starts as frame sampling and learns temporal filters from there.
    """
    expect_shape(weight, ("D", "C", "P", "P"), name="2D kernel")
    if t < 1:
        raise ValueError(f"t must be >= 1, got {t}")
    if method == "average":
        return weight[:, :, None].repeat(1, 1, t, 1, 1) / t  # (D, C, t, P, P)
    if method == "central":
        out = weight.new_zeros(
            weight.shape[0], weight.shape[1], t, *weight.shape[2:]
        )  # (D, C, t, P, P)
        out[:, :, t // 2] = weight
        return out
    raise ValueError(f"method must be 'average' or 'central', got {method!r}")


# --- the factorised blocks ---------------------------------------------------
_GROUPS = {
    "space": (
        "b t s d -> (b t) s d",
        "(b t) s d -> b t s d",
    ),  # one group per frame: n_s tokens
    "time": ("b t s d -> (b s) t d", "(b s) t d -> b t s d"),
}  # one group per place: n_t tokens


def _check_axis(axis: str) -> None:
    if axis not in _GROUPS:
        raise ValueError(f"axis must be 'space' or 'time', got {axis!r}")


def group_tokens(x: torch.Tensor, axis: str) -> torch.Tensor:
    """Model 3's token grouping of (B, n_t, n_s, D).

    ``"space"``: one group per frame, (B·n_t, n_s, D); ``"time"``: one group
    per place, (B·n_s, n_t, D).
    """
    _check_axis(axis)
    expect_shape(x, ("B", "n_t", "n_s", "D"), name="x")
    return rearrange(x, _GROUPS[axis][0])


def ungroup_tokens(
    groups: torch.Tensor, axis: str, batch: int
) -> torch.Tensor:
    """Inverse of :func:`group_tokens`: back to (B, n_t, n_s, D) for a batch of
    ``batch`` clips."""
    _check_axis(axis)
    return rearrange(groups, _GROUPS[axis][1], b=batch)


class AxisAttention(nn.Module):
    """Model 3's mixer: self-attention within each frame (``"space"``) or at
    each place (``"time"``).

    A pure token grouping around the book's :class:`MultiHeadAttention`
    (``self.attn``):
    :func:`group_tokens`, attention, :func:`ungroup_tokens`. Under
    :func:`seqlib.attention.record` the weights are (B·n_t, h, n_s, n_s) or
    (B·n_s, h, n_t, n_t).
    """

    def __init__(
        self, dim: int, heads: int, axis: str, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        _check_axis(axis)
        self.axis = axis
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_t, n_s, D) → (B, n_t, n_s, D)."""
        return ungroup_tokens(
            self.attn(group_tokens(x, self.axis)), self.axis, x.shape[0]
        )


class FactorisedSelfAttentionBlock(Block):
    """Model 3: spatial self-attention, then temporal self-attention, then the
    MLP (pre-norm residuals).

    A :class:`~seqlib.layers.Block` with two mixers,
    ``{"space": ..., "time": ...}``."""

    def __init__(
        self, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__(
            dim,
            {
                "space": AxisAttention(dim, heads, "space", dropout=dropout),
                "time": AxisAttention(dim, heads, "time", dropout=dropout),
            },
            FeedForward(dim, ff_dim, dropout=dropout, activation="gelu"),
            dropout=dropout,
        )


class FactorisedDotProductAttention(nn.Module):
    """Model 4: one multi-head attention whose first h/2 heads attend in space
    and the rest in time.

    The projections are those of a :class:`MultiHeadAttention` (``self.attn``);
    only the key sets differ per head group, so the cost is that of model 3 at
    the parameters of model 1. Under :func:`seqlib.attention.record` it reports
    two tensors, tagged ``"space"`` (B, h/2, n_t, n_s, n_s) and ``"time"`` (B,
    h/2, n_s, n_t, n_t).
    """

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if heads < 2 or heads % 2:
            raise ValueError(
                "factorised dot-product attention needs an even number of "
                f"heads >= 2, got {heads}"
            )
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_t, n_s, D) → (B, n_t, n_s, D)."""
        a, half = self.attn, self.attn.heads // 2
        q, k, v = (
            rearrange(f(x), "b t s (h d) -> b h t s d", h=a.heads)
            for f in (a.to_q, a.to_k, a.to_v)
        )
        p = a.dropout if self.training else 0.0
        explicit = attention.recording()
        kw = dict(dropout_p=p, fast=a.fast, return_attention=explicit)
        space = scaled_dot_product_attention(
            q[:, :half], k[:, :half], v[:, :half], **kw
        )  # (B, h/2, n_t, n_s, d)
        qt, kt, vt = (
            rearrange(z[:, half:], "b h t s d -> b h s t d") for z in (q, k, v)
        )  # (B, h/2, n_s, n_t, d)
        time = scaled_dot_product_attention(
            qt, kt, vt, **kw
        )  # (B, h/2, n_s, n_t, d)
        if explicit:
            (space, w_s), (time, w_t) = space, time
            attention.report(self, w_s, "space")
            attention.report(self, w_t, "time")
        heads = torch.cat(
            [space, rearrange(time, "b h s t d -> b h t s d")], dim=1
        )  # (B, h, n_t, n_s, d)
        return a.proj(
            rearrange(heads, "b h t s d -> b t s (h d)")
        )  # (B, n_t, n_s, D)


class FactorisedDotProductBlock(Block):
    """An encoder block (a :class:`~seqlib.layers.Block`) whose mixer is
    :class:`FactorisedDotProductAttention`."""

    def __init__(
        self, dim: int, heads: int, ff_dim: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__(
            dim,
            FactorisedDotProductAttention(dim, heads, dropout=dropout),
            FeedForward(dim, ff_dim, dropout=dropout, activation="gelu"),
            dropout=dropout,
        )


# --- the model ---------------------------------------------------------------
@dataclass(frozen=True)
class ViViTConfig:
    """Sizes of a :class:`ViViT`. ``tubelet_frames=1`` with
    ``embedding="frame"`` is uniform frame sampling."""

    frames: int = 8
    image_size: int = 28
    in_channels: int = 1
    num_classes: int = 2
    variant: str = "joint"
    embedding: str = "frame"  # "frame" or "tubelet"
    tubelet_frames: int = 2  # t, for the tubelet embedding
    patch_size: int = 7
    dim: int = 32
    depth: int = 2  # blocks (model 2: of the spatial encoder)
    temporal_depth: int = 1  # model 2 only: blocks of the temporal encoder
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    temporal_position: bool = (
        True  # False: the model cannot know which frame a token came from
    )


class ViViT(nn.Module):
    """Tokens + separate spatial and temporal positions → one of the four
    encoders → mean pool → head.

    The clip is summarised by the mean of the final tokens (the report's
    pooling), never by a class token, so without temporal positions every
    variant is exactly invariant to the order of the frames (tested).
    """

    def __init__(self, config: ViViTConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.variant not in VARIANTS:
            raise ValueError(
                f"variant must be one of {VARIANTS}, got {c.variant!r}"
            )
        if c.embedding == "frame":
            self.embed = FrameEmbedding(
                image_size=c.image_size,
                patch_size=c.patch_size,
                in_channels=c.in_channels,
                dim=c.dim,
            )
        elif c.embedding == "tubelet":
            self.embed = TubeletEmbedding(
                frames=c.frames,
                image_size=c.image_size,
                in_channels=c.in_channels,
                tubelet=(c.tubelet_frames, c.patch_size),
                dim=c.dim,
            )
        else:
            raise ValueError(
                f"embedding must be 'frame' or 'tubelet', got {c.embedding!r}"
            )
        self.nt, self.ns = token_grid(c)
        # learned, separable positions (kept out of weight decay by
        # no_weight_decay)
        self.pos = nn.ParameterDict(
            {"space": nn.Parameter(torch.randn(self.ns, c.dim) * 0.02)}
        )  # (n_s, D)
        if c.temporal_position:
            self.pos["time"] = nn.Parameter(
                torch.randn(self.nt, c.dim) * 0.02
            )  # (n_t, D)
        ff = int(c.dim * c.mlp_ratio)
        kw = dict(dropout=c.dropout, activation="gelu", norm_first=True)
        if c.variant in ("joint", "factorised_encoder"):
            self.encoder = TransformerEncoder(
                c.depth, c.dim, c.heads, ff, **kw
            )
        if c.variant == "factorised_encoder":
            self.temporal_encoder = TransformerEncoder(
                c.temporal_depth, c.dim, c.heads, ff, **kw
            )
        block = {
            "factorised_self_attention": FactorisedSelfAttentionBlock,
            "factorised_dot_product": FactorisedDotProductBlock,
        }.get(c.variant)
        if block is not None:
            self.blocks = nn.ModuleList(
                block(c.dim, c.heads, ff, dropout=c.dropout)
                for _ in range(c.depth)
            )
            self.norm = nn.LayerNorm(c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)

    def tokens(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) → embedded tokens plus positions, (B, n_t, n_s,
        D)."""
        x = self.embed(video) + self.pos["space"]  # (B, n_t, n_s, D)
        if "time" in self.pos:
            x = (
                x + self.pos["time"][:, None, :]
            )  # (B, n_t, n_s, D): one code per time step, shared over space
        return self.drop(x)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, F, C, H, W) → logits (B, classes); attention weights go to
        :func:`seqlib.attention.record`.

        Recorded names: ``encoder.blocks.{i}.mixers.attn`` (models 1, 2; model
        2 adds ``temporal_encoder.blocks.{i}.mixers.attn``),
        ``blocks.{i}.mixers.space.attn`` and ``blocks.{i}.mixers.time.attn``
        (model 3), ``blocks.{i}.mixers.attn:space`` and
        ``blocks.{i}.mixers.attn:time`` (model 4).
        """
        x = self.tokens(video)  # (B, n_t, n_s, D)
        v = self.config.variant
        if v == "joint":
            pooled = self.encoder(rearrange(x, "b t s d -> b (t s) d")).mean(
                1
            )  # (B, N, D) -> (B, D)
        elif v == "factorised_encoder":
            z = self.encoder(
                rearrange(x, "b t s d -> (b t) s d")
            )  # (B·n_t, n_s, D)
            frames = rearrange(
                z.mean(1), "(b t) d -> b t d", b=x.shape[0]
            )  # (B, n_t, D): one summary per step
            pooled = self.temporal_encoder(frames).mean(1)  # (B, D)
        else:
            for block in self.blocks:
                x = block(x)  # (B, n_t, n_s, D)
            pooled = self.norm(x).mean(dim=(1, 2))  # (B, D)
        return self.head(pooled)  # (B, classes)

    def no_weight_decay(self) -> list[str]:
        """The spatial and temporal position tables are not decayed (see
        :func:`seqlib.layers.param_groups`)."""
        return ["pos.*"]


def token_grid(config: ViViTConfig) -> tuple[int, int]:
    """``(n_t, n_s)`` for a config: temporal and spatial token counts of its
    embedding."""
    c = config
    t = 1 if c.embedding == "frame" else c.tubelet_frames
    return tubelet_grid(c.frames, t), tubelet_grid(
        c.image_size, c.patch_size
    ) ** 2


def attention_cost(config: ViViTConfig) -> int:
    """Score-matrix entries (query–key pairs) one clip computes, summed over
    heads and blocks.

    Joint: h·L·N² with N = n_t·n_s. Factorised encoder: h·(L·n_t·n_s² +
    L_t·n_t²). Factorised self-attention: h·L·(n_t·n_s² + n_s·n_t²). Factorised
    dot-product: the same split over the two head halves, (h/2)·L·(n_t·n_s² +
    n_s·n_t²).
    """
    c = config
    nt, ns = token_grid(c)
    h, L = c.heads, c.depth
    if c.variant == "joint":
        return h * L * (nt * ns) ** 2
    if c.variant == "factorised_encoder":
        return h * (L * nt * ns**2 + c.temporal_depth * nt**2)
    if c.variant == "factorised_self_attention":
        return h * L * (nt * ns**2 + ns * nt**2)
    if c.variant == "factorised_dot_product":
        return h // 2 * L * (nt * ns**2 + ns * nt**2)
    raise ValueError(f"variant must be one of {VARIANTS}, got {c.variant!r}")


def vivit_tiny(**overrides) -> ViViT:
    """Smoke size: 8 frames of 28×28, 7×7 patches, D = 32, 2 blocks, 4 heads
    (about 20 k parameters)."""
    return ViViT(ViViTConfig(**overrides))


def vivit_organmnist3d(**overrides) -> ViViT:
    """The report's OrganMNIST3D setup: 28³ volumes, 8×8×8 tubelets (27
    tokens), D = 128, 8 blocks, 8 heads."""
    base = dict(
        frames=28,
        image_size=28,
        in_channels=1,
        num_classes=11,
        variant="joint",
        embedding="tubelet",
        tubelet_frames=8,
        patch_size=8,
        dim=128,
        depth=8,
        heads=8,
        mlp_ratio=4.0,
        dropout=0.1,
    )
    return ViViT(ViViTConfig(**{**base, **overrides}))


# --- initialisation from an image model --------------------------------------
def init_from_vit(
    model: ViViT, vit: ViT, *, method: str = "average"
) -> list[str]:
    """Initialise ``model`` from a trained ViT of the same width (ViViT,
    section 3.4).

    Copies the patch embedding (inflated to tubelets with ``method`` when the
    model uses them), the spatial position table (the ViT's rows without the
    class token) and, for models 1 and 2, the ViT's encoder blocks into the
    (spatial) encoder. Temporal parts stay as initialised. Returns the names of
    what was copied.
    """
    c, v = model.config, vit.config
    if (c.dim, c.patch_size, c.image_size, c.in_channels) != (
        v.dim,
        v.patch_size,
        v.image_size,
        v.in_channels,
    ):
        raise ValueError(
            "ViT and ViViT must share width, patch, image size and channels: "
            f"ViT {(v.dim, v.patch_size, v.image_size, v.in_channels)}, ViViT "
            f"{(c.dim, c.patch_size, c.image_size, c.in_channels)} "
            "(dim, patch, image, channels)"
        )
    copied = ["embedding", "pos.space"]
    with torch.no_grad():
        if c.embedding == "frame":
            model.embed.patch.load_state_dict(vit.patch_embed.state_dict())
        else:
            model.embed.proj.weight.copy_(
                inflate_weight(
                    vit.patch_embed.proj.weight,
                    c.tubelet_frames,
                    method=method,
                )
            )
            model.embed.proj.bias.copy_(vit.patch_embed.proj.bias)
        model.pos["space"].copy_(
            vit.pos.table[1:]
        )  # (n_s, D): drop the class token's row
    if (
        c.variant in ("joint", "factorised_encoder")
        and c.depth == v.depth
        and c.heads == v.heads
        and int(c.dim * c.mlp_ratio) == int(v.dim * v.mlp_ratio)
    ):
        model.encoder.load_state_dict(vit.encoder.state_dict())
        copied.append("encoder")
    return copied
