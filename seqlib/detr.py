"""DETR: end-to-end object detection as set prediction (Carion et al. 2020).

A CNN backbone turns the image into a ``C×H'×W'`` feature map; a 1×1
convolution projects it to width D and the ``N = H'W'`` cells become tokens, to
which the 2D sinusoidal positional encoding of
:func:`seqlib.positional.sinusoidal_encoding_2d` is added. A Transformer
encoder lets every cell attend to every other (global context); a decoder takes
Q learned **object queries**, lets them attend to each other (no causal mask:
they are a set) and cross-attend to the encoded image, and two heads turn each
query into a class among C + 1 (the last is "no object") and a box
``(cx, cy, w, h)`` in [0, 1] (a sigmoid). There are no anchors and no
non-maximum suppression: training matches the Q predictions one-to-one to the
objects (:mod:`seqlib.matcher`), so a second query on the same object learns to
say "no object". The encoder and decoder are seqlib's Transformer blocks
(:mod:`seqlib.transformer`): the book's one :class:`seqlib.layers.Block`, whose
mixers here are global self-attention over the cells and, in the decoder, the
queries' self-attention and their cross-attention to the cells. Attention maps
come from :func:`seqlib.attention.record` (:func:`attention_maps`), and
:func:`train_step` is a step function for :func:`seqlib.train.fit`. As in the
short reference implementation at the end of the paper, the positional code is
added once to the encoder input and the queries are the decoder input (the full
DETR adds both to the queries and keys of every layer). Every decoder layer's
output goes through the shared final norm and heads, giving the auxiliary
decoding losses of section 3.2. Shape letters: B batch, H/W image size, N =
H'W' feature cells, D width, Q queries, h heads, C classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from seqlib.attention import AttentionMaps
from seqlib.boxes import box_cxcywh_to_xyxy
from seqlib.matcher import SetLossWeights, Target, detr_loss
from seqlib.positional import sinusoidal_encoding_2d
from seqlib.shapes import expect_shape
from seqlib.transformer import TransformerDecoder, TransformerEncoder


@dataclass(frozen=True)
class DETRConfig:
    """Everything that defines a :class:`DETR`."""

    num_classes: int  # C real classes; index C is "no object"
    num_queries: int = 10  # Q, an upper bound on the objects of one image
    in_channels: int = 1
    channels: tuple[int, ...] = (
        16,
        32,
        64,
    )  # backbone stage widths; each stage halves H and W
    dim: int = 64
    heads: int = 4
    ff_dim: int = 128
    enc_layers: int = 2
    dec_layers: int = 2
    dropout: float = 0.0
    aux_loss: bool = True  # heads on every decoder layer (section 3.2)


class Backbone(nn.Module):
    """A small CNN: per stage, a strided 3×3 convolution then a plain one, each
    with batch norm and ReLU."""

    def __init__(self, in_channels: int, channels: Sequence[int]):
        super().__init__()
        layers, c_in = [], in_channels
        # downsampling first keeps the costly convolutions at low resolution
        for c in channels:
            layers += [
                nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
            ]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C, H / 2^stages, W / 2^stages)``."""
        return self.net(images)


class BoxHead(nn.Module):
    """Three-layer perceptron with ReLU, then a sigmoid: normalised
    ``(cx, cy, w, h)``."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Linear(dim, dim),
            nn.ReLU(),
            nn.Linear(dim, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Q, D) -> (B, Q, 4)`` in (0, 1)."""
        return self.net(x).sigmoid()


class DETR(nn.Module):
    """Backbone, Transformer encoder–decoder with object queries, class and box
    heads."""

    def __init__(self, config: DETRConfig):
        super().__init__()
        self.config = c = config
        self.backbone = Backbone(c.in_channels, c.channels)
        self.input_proj = nn.Conv2d(self.backbone.out_channels, c.dim, 1)
        kw = dict(dropout=c.dropout, activation="relu", norm_first=True)
        self.encoder = TransformerEncoder(
            c.enc_layers, c.dim, c.heads, c.ff_dim, **kw
        )
        self.decoder = TransformerDecoder(
            c.dec_layers, c.dim, c.heads, c.ff_dim, **kw
        )
        self.queries = nn.Embedding(
            c.num_queries, c.dim
        )  # the Q learned object queries
        self.class_head = nn.Linear(c.dim, c.num_classes + 1)
        self.box_head = BoxHead(c.dim)

    def feature_size(
        self, height: int, width: int | None = None
    ) -> tuple[int, int]:
        """The feature grid ``(H', W')`` of an image of ``height`` × ``width``
        pixels (``N = H'W'`` cells).

        Each backbone stage halves the size, rounding up (3×3 convolutions,
        stride 2, padding 1).
        """
        size = [height, height if width is None else width]
        for conv in (
            m for m in self.backbone.modules() if isinstance(m, nn.Conv2d)
        ):
            (k, _), (s, _), (p, _) = (
                conv.kernel_size,
                conv.stride,
                conv.padding,
            )
            size = [(n + 2 * p - k) // s + 1 for n in size]
        return size[0], size[1]

    def encode(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images ``(B, C_in, H, W)`` -> encoded cells ``(B, N, D)`` and the
        feature grid ``(H', W')``.

        Under :func:`seqlib.attention.record`, encoder layer i's self-attention
        ``(B, h, N, N)`` is recorded as ``encoder.blocks.i.mixers.attn`` (row:
        the attending cell, column: the cell attended to, both in row-major
        grid order).
        """
        expect_shape(
            images, ("B", self.config.in_channels, "H", "W"), name="images"
        )
        features = self.input_proj(self.backbone(images))  # (B, D, H', W')
        _, D, Hf, Wf = features.shape
        pos = sinusoidal_encoding_2d(Hf, Wf, D, normalize=True).to(
            features
        )  # (H', W', D)
        tokens = features.flatten(2).transpose(1, 2) + pos.view(
            1, Hf * Wf, D
        )  # (B, N, D)
        return self.encoder(tokens), (Hf, Wf)

    def decode(self, memory: torch.Tensor) -> list[torch.Tensor]:
        """Object queries attend to each other and to ``memory`` (B, N, D).

        Each decoder layer is a :class:`seqlib.layers.Block` with two mixers,
        the queries' self-attention (no causal mask: the queries are a set) and
        the cross-attention to the memory. Returns one ``(B, Q, D)`` output per
        layer, after the shared final norm. Under
        :func:`seqlib.attention.record`, layer i's cross-attention
        ``(B, h, Q, N)`` is ``decoder.blocks.i.mixers.cross_attn``.
        """
        x = self.queries.weight[None].expand(
            memory.shape[0], -1, -1
        )  # (B, Q, D)
        outputs = []
        for block in self.decoder.blocks:
            x = block(x, memory=memory, causal=False)  # (B, Q, D)
            outputs.append(self.decoder.norm(x))  # (B, Q, D)
        return outputs

    def forward(
        self, images: torch.Tensor
    ) -> dict[str, torch.Tensor | list[dict[str, torch.Tensor]]]:
        """Detect: ``images`` ``(B, C_in, H, W)`` ->

        ``{"logits": (B, Q, C+1), "boxes": (B, Q, 4)}`` of the last decoder
        layer and ``"aux"``: the same for every earlier decoder layer, in order
        (if ``aux_loss``). The attention maps come from
        :func:`seqlib.attention.record` (see
        :func:`attention_maps`).
        """
        memory, _ = self.encode(images)  # (B, N, D)
        heads = [
            {"logits": self.class_head(o), "boxes": self.box_head(o)}
            for o in self.decode(memory)
        ]
        result = dict(heads[-1])
        if self.config.aux_loss:
            result["aux"] = heads[:-1]
        return result


def attention_maps(maps: AttentionMaps) -> dict[str, list[torch.Tensor]]:
    """The maps a :func:`seqlib.attention.record` of a :class:`DETR` holds, by
    kind, one per layer.

    Returns:
        ``"encoder"``: self-attention among the cells ``(B, h, N, N)``;
        ``"queries"``: self-attention among the queries ``(B, h, Q, Q)``;
        ``"cross"``: the queries' attention to the cells ``(B, h, Q, N)``.
        Cells are in row-major order of the grid :meth:`DETR.feature_size`. A
        kind that did not run (e.g. only
        :meth:`DETR.encode` was recorded) has an empty list.
    """
    patterns = {
        "encoder": "encoder.blocks.*.mixers.attn",
        "queries": "decoder.blocks.*.mixers.self_attn",
        "cross": "decoder.blocks.*.mixers.cross_attn",
    }
    return {
        kind: maps.select(pattern, required=False)
        for kind, pattern in patterns.items()
    }


def postprocess(
    outputs: dict, *, image_size: int
) -> list[dict[str, torch.Tensor]]:
    """Turn the Q predictions of each image into scored detections in pixel
    corners.

    The score of a query is its highest real-class probability (softmax over C
    + 1, "no object" dropped), as in DETR's evaluation: every query is a
    detection and the ranking by score does the rest; there is no NMS.

    Returns:
        Per image a dict
        ``{"boxes": (Q, 4) xyxy pixels, "scores": (Q,), "labels": (Q,)}``.
    """
    prob = outputs["logits"].softmax(-1)[..., :-1]  # (B, Q, C)
    scores, labels = prob.max(-1)  # (B, Q) each
    boxes = box_cxcywh_to_xyxy(outputs["boxes"]) * image_size  # (B, Q, 4)
    return [
        {"boxes": b, "scores": s, "labels": c}
        for b, s, c in zip(boxes, scores, labels)
    ]


def train_step(
    model: DETR,
    batch: tuple[torch.Tensor, Sequence[Target]],
    *,
    weights: SetLossWeights = SetLossWeights(),
    assign=None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The step function of :func:`seqlib.train.fit`: the set loss (with
    auxiliary losses) of one batch.

    ``batch`` is ``(images (B, C_in, H, W), targets)``. Train with
    ``fit(..., grad_clip=0.1)``, DETR's gradient clipping. ``assign`` replaces
    the Hungarian matcher (e.g. a one-to-many assignment). Returns the loss and
    the floats ``ce``, ``l1``, ``giou`` and ``match_seconds`` (time in the
    matcher).
    """
    images, targets = batch
    kw = {} if assign is None else {"assign": assign}
    out = detr_loss(model(images), targets, weights=weights, **kw)
    return out["loss"], {
        k: float(out[k]) for k in ("ce", "l1", "giou", "match_seconds")
    }


def random_batches(
    images: torch.Tensor,
    targets: Sequence[Target],
    *,
    batch_size: int,
    seed: int,
) -> Callable[[], Iterator[tuple[torch.Tensor, list[Target]]]]:
    """Endless random mini-batches (drawn with replacement) for
    :func:`seqlib.train.fit`.

    Each call returns an iterator that continues the same seeded stream, so
    ``fit(..., steps_per_epoch=n)`` draws the batches of one long run in order.
    """
    generator = torch.Generator().manual_seed(seed)

    def stream() -> Iterator[tuple[torch.Tensor, list[Target]]]:
        while True:
            idx = torch.randint(
                0, len(images), (batch_size,), generator=generator
            )  # (B,)
            yield images[idx], [targets[i] for i in idx]

    return stream


@torch.no_grad()
def predict(
    model: DETR, images: torch.Tensor, *, batch_size: int = 128
) -> list[dict[str, torch.Tensor]]:
    """Detections (:func:`postprocess`) for ``images`` (B, C_in, H, W), in
    evaluation mode."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        out += postprocess(
            model(images[i : i + batch_size]), image_size=images.shape[-1]
        )
    return out


def detr_tiny(num_classes: int, **overrides) -> DETR:
    """The smoke-profile model: 3-stage CNN, D=64, 4 heads, 2+2 blocks, 10
    queries (about 0.3 M parameters)."""
    return DETR(DETRConfig(num_classes, **overrides))
