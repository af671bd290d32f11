"""Vision Transformer: an image as a sequence of patch tokens.

Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words". The image is cut
into N non-overlapping P×P patches, each flattened patch x_i is projected by
one matrix E (:class:`seqlib.layers.ConvPatchEmbedding`), a learned class
token is prepended and a learned position embedding p added:
Z = [z_cls, E x_1, …, E x_N] + p (Eq. 1). A stack of the book's Transformer
encoder blocks (chapter 5's :class:`seqlib.layers.Block` with global
self-attention as its mixer) processes Z at one resolution and width
throughout (an *isotropic* network), and a linear head reads the class token.
Attention rollout (Abnar & Zuidema, 2020) turns the per-layer attention maps,
recorded by :func:`attention_maps`, into one map of what the class token draws
on. The patch helpers (``patchify``, ``unpatchify``, the two patch embeddings)
live in :mod:`seqlib.layers`, training in :mod:`seqlib.train`. Shape letters:
B batch, C channels, H/W image size, P patch side, N = HW/P² patches, D width,
h heads, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from seqlib import attention
from seqlib.layers import ConvPatchEmbedding, init_weights
from seqlib.positional import LearnedPositionalEncoding
from seqlib.shapes import expect_shape
from seqlib.transformer import TransformerEncoder


# --- what the attention maps say ---------------------------------------------
def attention_rollout(
    attentions: Sequence[torch.Tensor], *, residual: bool = True
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): multiply the layers' attention
    maps.

    Each layer's map is averaged over heads; with ``residual`` the skip
    connection is modelled as ½(A + I) (rows still sum to 1). The rollout of
    layers 1..L is Ã_L ⋯ Ã_1: entry [i, j] says how much of input token j
    reaches output token i through every path.

    Args:
        attentions: L maps, each (B, h, N, N) (or (B, N, N)), rows summing to
            1.
        residual: add the identity for the residual connection.

    Returns:
        (B, N, N) with rows summing to 1.
    """
    if not attentions:
        raise ValueError(
            "attentions: expected at least one (B, h, N, N) map, got none"
        )
    result = None
    for layer, attn in enumerate(attentions):
        if attn.dim() == 4:
            attn = attn.mean(dim=1)  # (B, N, N): fuse heads
        dims = expect_shape(attn, ("B", "N", "N"), name=f"attentions[{layer}]")
        if residual:
            attn = 0.5 * (
                attn
                + torch.eye(dims["N"], dtype=attn.dtype, device=attn.device)
            )
        result = attn if result is None else attn @ result  # (B, N, N)
    return result


def position_similarity(pos_embedding: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every patch's position embedding with every
    other's.

    Args:
        pos_embedding: (N, D), one row per patch (class token removed).

    Returns:
        (N, N) in [−1, 1]; row i reshaped to the patch grid is the paper's Fig.
        7 (centre) tile i.
    """
    expect_shape(pos_embedding, ("N", "D"), name="pos_embedding")
    unit = nn.functional.normalize(pos_embedding, dim=-1)  # (N, D)
    return unit @ unit.T  # (N, N)


# --- the model ---------------------------------------------------------------
@dataclass(frozen=True)
class ViTConfig:
    """Sizes of a :class:`ViT`."""

    image_size: int = 28
    patch_size: int = 7
    in_channels: int = 1
    num_classes: int = 10
    dim: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0


class ViT(nn.Module):
    """Patch embedding, class token, learned positions (Eq. 1), encoder blocks,
    linear head on z_cls."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_embed = ConvPatchEmbedding(
            image_size=c.image_size,
            patch_size=c.patch_size,
            in_channels=c.in_channels,
            dim=c.dim,
        )
        self.cls_token = nn.Parameter(
            torch.zeros(1, 1, c.dim)
        )  # z_cls, learned
        self.pos = LearnedPositionalEncoding(
            self.patch_embed.num_patches + 1, c.dim
        )  # p: (N + 1, D) table
        self.drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(
            c.depth,
            c.dim,
            c.heads,
            int(c.dim * c.mlp_ratio),
            dropout=c.dropout,
            activation="gelu",
            norm_first=True,
        )
        self.head = nn.Linear(c.dim, c.num_classes)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    @property
    def grid(self) -> int:
        """Patches per side, H/P."""
        return self.patch_embed.grid

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Z = [z_cls, E x_1, …, E x_N] + p: (B, C, H, W) → (B, N + 1, D)."""
        tokens = self.patch_embed(images)  # (B, N, D)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, D)
        return self.drop(
            self.pos(torch.cat([cls, tokens], dim=1))
        )  # (B, N + 1, D)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → logits (B, classes); the L attention maps come from
        :func:`attention_maps`."""
        z = self.encoder(self.embed(images))  # (B, N + 1, D)
        return self.head(z[:, 0])  # (B, classes): read the class token

    def no_weight_decay(self) -> list[str]:
        """What weight decay skips: the class token and the position table (see
        :func:`seqlib.layers.param_groups`)."""
        return ["cls_token", "pos.*"]


def vit_tiny(**overrides) -> ViT:
    """Fashion-MNIST size: 28×28×1, 7×7 patches (N = 16), D = 64, 4 blocks, 4
    heads (0.14 M parameters)."""
    return ViT(ViTConfig(**overrides))


def attention_maps(model: ViT, images: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model`` on ``images`` under :func:`seqlib.attention.record` and
    return its L attention maps.

    Each map is (B, h, N + 1, N + 1), first block first (row and column 0 are
    the class token); the input to :func:`attention_rollout`. Wrap the call in
    ``torch.no_grad()`` when the maps are only looked at.
    """
    with attention.record(model) as maps:
        model(images)
    return maps.select("encoder.blocks.*")
