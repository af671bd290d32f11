"""Vision Transformer: an image as a sequence of patch tokens.

Dosovitskiy et al. (2021), "An Image is Worth 16x16 Words". The image is cut
into N non-overlapping P×P patches, each flattened patch x_i is projected by
one matrix E, a learned class token is prepended and a learned position
embedding p added: Z = [z_cls, E x_1, …, E x_N] + p (Eq. 1). A stack of the
book's Transformer encoder blocks (chapter 5) processes Z at one resolution
and width throughout (an *isotropic* network), and a linear head reads the
class token. Attention rollout (Abnar & Zuidema, 2020) turns the per-layer
attention maps into one map of what the class token draws on. Shape letters:
B batch, C channels, H/W image size, P patch side, N = HW/P² patches, D width,
h heads, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqlib.positional import LearnedPositionalEncoding
from seqlib.shapes import expect_shape
from seqlib.train import History, fit, minibatches, seed_everything
from seqlib.transformer import TransformerEncoder


# --- patches ------------------------------------------------------------------------------------
def _check_divisible(height: int, width: int, patch: int) -> None:
    if patch < 1 or height % patch or width % patch:
        raise ValueError(f"image size (H, W)=({height}, {width}) must be a multiple of the patch size P={patch}")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Cut images into flattened, non-overlapping patches, row-major over the grid.

    Args:
        images: (B, C, H, W) with H and W multiples of ``patch``.
        patch: P, the patch side.

    Returns:
        (B, N, C·P·P) with N = (H/P)(W/P); each row is one patch flattened in
        (channel, row, column) order, the order of a Conv2d weight.
    """
    dims = expect_shape(images, ("B", "C", "H", "W"), name="images")
    _check_divisible(dims["H"], dims["W"], patch)
    return rearrange(images, "b c (gh p1) (gw p2) -> b (gh gw) (c p1 p2)", p1=patch, p2=patch)  # (B, N, CP²)


def unpatchify(patches: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C·P·P) → (B, C, H, W)."""
    _check_divisible(height, width, patch)
    expect_shape(patches, ("B", (height // patch) * (width // patch), None), name="patches")
    return rearrange(patches, "b (gh gw) (c p1 p2) -> b c (gh p1) (gw p2)",
                     gh=height // patch, p1=patch, p2=patch)  # (B, C, H, W)


class PatchEmbedding(nn.Module):
    """The projection E as a strided convolution: kernel = stride = P, one output per patch."""

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        _check_divisible(image_size, image_size, patch_size)
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.grid = image_size // patch_size
        self.num_patches = self.grid ** 2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, D)."""
        expect_shape(images, ("B", self.in_channels, self.image_size, self.image_size), name="images")
        return rearrange(self.proj(images), "b d gh gw -> b (gh gw) d")  # (B, N, D)


class UnfoldPatchEmbedding(nn.Module):
    """The projection E as written in the paper: flatten each patch, then one Linear layer."""

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        _check_divisible(image_size, image_size, patch_size)
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.proj = nn.Linear(in_channels * patch_size ** 2, dim)

    @classmethod
    def from_conv(cls, conv: PatchEmbedding) -> "UnfoldPatchEmbedding":
        """A copy of ``conv`` in unfold-then-Linear form, sharing its weights' values."""
        dim = conv.proj.out_channels
        unfold = cls(image_size=conv.image_size, patch_size=conv.patch_size, in_channels=conv.in_channels, dim=dim)
        with torch.no_grad():
            unfold.proj.weight.copy_(conv.proj.weight.reshape(dim, -1))  # (D, C·P·P)
            unfold.proj.bias.copy_(conv.proj.bias)
        return unfold

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, D)."""
        expect_shape(images, ("B", self.in_channels, self.image_size, self.image_size), name="images")
        return self.proj(patchify(images, self.patch_size))  # (B, N, D)


# --- what the attention maps say ------------------------------------------------------------------
def attention_rollout(attentions: Sequence[torch.Tensor], *, residual: bool = True) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): multiply the layers' attention maps.

    Each layer's map is averaged over heads; with ``residual`` the skip
    connection is modelled as ½(A + I) (rows still sum to 1). The rollout of
    layers 1..L is Ã_L ⋯ Ã_1: entry [i, j] says how much of input token j
    reaches output token i through every path.

    Args:
        attentions: L maps, each (B, h, N, N) (or (B, N, N)), rows summing to 1.
        residual: add the identity for the residual connection.

    Returns:
        (B, N, N) with rows summing to 1.
    """
    if not attentions:
        raise ValueError("attentions: expected at least one (B, h, N, N) map, got none")
    result = None
    for layer, attn in enumerate(attentions):
        if attn.dim() == 4:
            attn = attn.mean(dim=1)  # (B, N, N): fuse heads
        dims = expect_shape(attn, ("B", "N", "N"), name=f"attentions[{layer}]")
        if residual:
            attn = 0.5 * (attn + torch.eye(dims["N"], dtype=attn.dtype, device=attn.device))
        result = attn if result is None else attn @ result  # (B, N, N)
    return result


def position_similarity(pos_embedding: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every patch's position embedding with every other's.

    Args:
        pos_embedding: (N, D), one row per patch (class token removed).

    Returns:
        (N, N) in [−1, 1]; row i reshaped to the patch grid is the paper's Fig. 7 (centre) tile i.
    """
    expect_shape(pos_embedding, ("N", "D"), name="pos_embedding")
    unit = nn.functional.normalize(pos_embedding, dim=-1)  # (N, D)
    return unit @ unit.T  # (N, N)


# --- the model ------------------------------------------------------------------------------------
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
    """Patch embedding, class token, learned positions (Eq. 1), encoder blocks, linear head on z_cls."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = c = config
        self.patch_embed = PatchEmbedding(image_size=c.image_size, patch_size=c.patch_size,
                                          in_channels=c.in_channels, dim=c.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim))  # z_cls, learned
        self.pos = LearnedPositionalEncoding(self.patch_embed.num_patches + 1, c.dim)  # p: (N + 1, D) table
        self.drop = nn.Dropout(c.dropout)
        self.encoder = TransformerEncoder(c.depth, c.dim, c.heads, int(c.dim * c.mlp_ratio), dropout=c.dropout,
                                          activation="gelu", norm_first=True)
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
        return self.drop(self.pos(torch.cat([cls, tokens], dim=1)))  # (B, N + 1, D)

    def forward(self, images: torch.Tensor, *, return_attention: bool = False):
        """(B, C, H, W) → logits (B, classes); with ``return_attention`` also L maps (B, h, N+1, N+1)."""
        out = self.encoder(self.embed(images), return_attention=return_attention)
        z, maps = out if return_attention else (out, None)  # z: (B, N + 1, D)
        logits = self.head(z[:, 0])  # (B, classes): read the class token
        return (logits, maps) if return_attention else logits


def init_weights(module: nn.Module) -> None:
    """Truncated normal (std 0.02) for Linear weights and zero biases, as in ViT and Swin."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def vit_tiny(**overrides) -> ViT:
    """Fashion-MNIST size: 28×28×1, 7×7 patches (N = 16), D = 64, 4 blocks, 4 heads (0.14 M parameters)."""
    return ViT(ViTConfig(**overrides))


def vit_cifar(**overrides) -> ViT:
    """CIFAR-10 size for the full profile: 32×32×3, 4×4 patches (N = 64), D = 192, 9 blocks, 12 heads."""
    base = dict(image_size=32, patch_size=4, in_channels=3, dim=192, depth=9, heads=12, mlp_ratio=2.0, dropout=0.1)
    return ViT(ViTConfig(**{**base, **overrides}))


# --- the baseline the chapter compares with -------------------------------------------------------
def small_cnn(*, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (32, 64, 128)) -> nn.Sequential:
    """A plain CNN: per width a 3×3 conv, BatchNorm, ReLU and 2×2 max-pool; then global average pool and a head.

    Its locality (3×3 kernels) and weight sharing are the inductive biases a ViT lacks.
    """
    layers: list[nn.Module] = []
    for width in widths:
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        in_channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --- training an image classifier (chapters 6 and 7) ----------------------------------------------
def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, batch_size: int,
                     lr: float, weight_decay: float = 0.05, seed: int = 0,
                     augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     device: torch.device | None = None, desc: str = "train") -> History:
    """Train with AdamW, a one-cycle schedule (10 % warm-up, then cosine) and cross-entropy.

    Transformers trained from scratch need the warm-up and the weight decay; the
    CNN gets the same recipe, so the comparison is of architectures, not recipes.

    Args:
        model: maps (B, C, H, W) to logits (B, classes).
        images: (N, C, H, W); labels: (N,) int64.
        augment: applied to each training batch (e.g. :func:`seqlib.data.random_crop_flip`).

    Returns:
        The :class:`seqlib.train.History` (per-epoch ``loss``, ``acc`` and ``seconds``).
    """
    expect_shape(labels, (images.shape[0],), name="labels")
    seed_everything(seed)
    steps = epochs * -(-len(images) // batch_size)
    # weight decay on weight matrices only: not on biases, norms, tokens, position tables or Swin's bias tables
    no_decay = ("pos.", "token", "bias_table")
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() > 1 and not any(k in n for k in no_decay)]
    rest = [p for n, p in named if not (p.dim() > 1 and not any(k in n for k in no_decay))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)

    def step(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        x, y = batch
        logits = m(augment(x) if augment is not None else x)  # (B, classes)
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(-1) == y).float().mean().item()}

    return fit(model, minibatches(images, labels, batch_size=batch_size, seed=seed), step, epochs=epochs,
               optimizer=optimizer, scheduler=scheduler, device=device, desc=desc)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on (N, C, H, W) images, evaluated in batches in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum(int((model(x.to(device)).argmax(-1).cpu() == y).sum())
                  for x, y in zip(images.split(batch_size), labels.split(batch_size)))
    return correct / len(labels)
