"""Generated scenes: Fashion-MNIST items on a canvas, with boxes, labels and
captions.

Each scene is a square grey canvas holding 1–4 Fashion-MNIST items of distinct
classes, each rescaled to a random size and pasted at a random place so that no
two items overlap. Every item comes with its class label and its tight bounding
box, in pixel corners ``(x1, y1, x2, y2)`` (half-open: pixels ``x1 <= x < x2``)
and in DETR's normalised ``(cx, cy, w, h)`` (Carion et al. 2020). Several
reference captions per scene come from a small grammar with spatial relations,
``a sneaker above a bag and a shirt left of the bag``; every relation a caption
states holds for the boxes (:func:`relations`), so a caption can be checked
against the layout. Scenes are deterministic given the seed. Chapter 4 captions
them (Xu et al. 2015's Show, Attend and Tell on a task where attention can be
measured); chapter 8 detects their objects. Shape letters: N scenes, K objects
in a scene, H = W canvas size, S item size.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from seqlib.boxes import box_xyxy_to_cxcywh
from seqlib.data.fashion_mnist import load_fashion_mnist
from seqlib.shapes import expect_shape

# One short singular noun per Fashion-MNIST class (same order as
# FASHION_CLASSES).
NOUNS = (
    "top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)
RELATIONS = {
    "left": ("left", "of"),
    "right": ("right", "of"),
    "above": ("above",),
    "below": ("below",),
}
INK = 0.15  # an item pixel brighter than this belongs to its tight box


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn: canvas size, object count and size ranges,
    references per scene."""

    canvas: int = 64
    min_objects: int = 1
    max_objects: int = 4
    min_size: int = 18  # side of the rescaled 28x28 item, in pixels
    max_size: int = 26
    gap: int = 2  # minimum free pixels between two tight boxes
    # references per scene (fewer if the layout allows fewer distinct captions)
    n_refs: int = 5
    classes: tuple[int, ...] = tuple(
        range(10)
    )  # Fashion-MNIST classes that may appear

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects <= len(NOUNS):
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {len(NOUNS)}, "
                f"got {self.min_objects}, {self.max_objects}"
            )
        if len(set(self.classes)) < self.max_objects or not set(
            self.classes
        ) <= set(range(len(NOUNS))):
            raise ValueError(
                f"classes must be >= max_objects={self.max_objects} distinct "
                f"ids in 0..9, got {self.classes}"
            )
        if not 4 <= self.min_size <= self.max_size <= self.canvas:
            raise ValueError(
                "need 4 <= min_size <= max_size <= canvas, got "
                f"{self.min_size}, {self.max_size}, {self.canvas}"
            )


@dataclass(frozen=True)
class Scene:
    """One scene: the image, its K objects and its reference captions."""

    image: torch.Tensor  # (1, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (K,) int64 Fashion-MNIST classes, distinct
    boxes: torch.Tensor  # (K, 4) float32 pixel corners x1, y1, x2, y2
    captions: tuple[tuple[str, ...], ...]  # the references, token tuples

    @property
    def boxes_cxcywh(self) -> torch.Tensor:
        """(K, 4) boxes as normalised centre x, centre y, width, height in [0,
        1]."""
        return normalised_cxcywh(self.boxes, self.image.shape[-1])

    @property
    def nouns(self) -> tuple[str, ...]:
        """The noun of each object, in the order of ``labels``."""
        return tuple(NOUNS[int(c)] for c in self.labels)


@dataclass(frozen=True)
class SceneData:
    """A list of scenes stored as tensors and lists (objects per scene
    vary)."""

    images: torch.Tensor  # (N, 1, H, W)
    labels: list[torch.Tensor]  # N tensors (K_i,)
    boxes: list[torch.Tensor]  # N tensors (K_i, 4), pixel xyxy
    captions: list[tuple[tuple[str, ...], ...]]
    config: SceneConfig = field(default_factory=SceneConfig)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Scene:
        return Scene(
            self.images[i], self.labels[i], self.boxes[i], self.captions[i]
        )

    def detection_targets(self) -> list[dict[str, torch.Tensor]]:
        """DETR-style targets: per scene
        ``{"labels": (K,), "boxes": (K, 4) normalised cxcywh}``."""
        size = self.images.shape[-1]
        return [
            {"labels": lab, "boxes": normalised_cxcywh(box, size)}
            for lab, box in zip(self.labels, self.boxes)
        ]


# --- boxes -------------------------------------------------------------------
def normalised_cxcywh(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel corners (K, 4) -> DETR's normalised ``(cx, cy, w, h)`` (K, 4) on a
    ``size`` x ``size`` canvas."""
    expect_shape(boxes, (None, 4), name="boxes (K, 4)")
    return box_xyxy_to_cxcywh(boxes / size)  # (K, 4)


def relations(a: Sequence[float], b: Sequence[float]) -> list[str]:
    """Every relation ``r`` for which "a r b" is true: a's box lies wholly on
    that side of b's.

    ``a`` and ``b`` are pixel boxes ``(x1, y1, x2, y2)``; ``"above"`` means a
    smaller y (image rows grow downwards). Two boxes that do not overlap have
    at least one.
    """
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    out = []
    if ax2 <= bx1:
        out.append("left")
    if ax1 >= bx2:
        out.append("right")
    if ay2 <= by1:
        out.append("above")
    if ay1 >= by2:
        out.append("below")
    return out


def _separated(a: Sequence[int], b: Sequence[int], gap: int) -> bool:
    return (
        a[2] + gap <= b[0]
        or b[2] + gap <= a[0]
        or a[3] + gap <= b[1]
        or b[3] + gap <= a[1]
    )


# --- captions ----------------------------------------------------------------
def caption(
    nouns: Sequence[str], boxes: Sequence[Sequence[float]], rng: random.Random
) -> tuple[str, ...]:
    """One caption: the objects in a random order, each after the first related
    to an earlier one.

    ``a o1 REL a o2 and a o3 REL the o1 ...``: the first clause introduces two
    objects, every later clause one more, related to a random earlier object by
    a relation that holds (:func:`relations`). One object gives ``a o1``.
    """
    order = list(range(len(nouns)))
    rng.shuffle(order)
    tokens = ["a", nouns[order[0]]]
    for k, i in enumerate(order[1:], start=1):
        j = order[0] if k == 1 else order[rng.randrange(k)]
        rel = rng.choice(relations(boxes[i], boxes[j]))
        if (
            k == 1
        ):  # "a X REL a Y": here X = order[1] is related to Y = order[0]
            tokens = ["a", nouns[i], *RELATIONS[rel], "a", nouns[j]]
        else:
            tokens += ["and", "a", nouns[i], *RELATIONS[rel], "the", nouns[j]]
    return tuple(tokens)


def parse_caption(
    tokens: Sequence[str],
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Read a caption of the grammar back: the nouns it introduces and its
    (noun, relation, noun) triples.

    Tolerant of model output: a clause that does not follow the grammar is
    skipped.
    """
    words = {w: r for r, w_ in RELATIONS.items() for w in w_[:1]}
    introduced, triples = [], []
    clauses, cur = [], []
    for tok in tokens:
        if tok == "and":
            clauses.append(cur)
            cur = []
        else:
            cur.append(tok)
    clauses.append(cur)
    for clause in clauses:
        nouns = [t for t in clause if t in NOUNS]
        rel = next((words[t] for t in clause if t in words), None)
        introduced += [
            clause[i + 1]
            for i, t in enumerate(clause[:-1])
            if t == "a" and clause[i + 1] in NOUNS
        ]
        if rel is not None and len(nouns) == 2:
            triples.append((nouns[0], rel, nouns[1]))
    return introduced, triples


def relation_accuracy(tokens: Sequence[str], scene: Scene) -> tuple[int, int]:
    """(true, stated) relation triples of a caption about ``scene``; unknown
    nouns count as false."""
    box = dict(zip(scene.nouns, scene.boxes.tolist()))
    _, triples = parse_caption(tokens)
    ok = sum(
        a in box and b in box and rel in relations(box[a], box[b])
        for a, rel, b in triples
    )
    return ok, len(triples)


# --- scenes ------------------------------------------------------------------
def _place(
    rng: random.Random, ink: list[tuple[int, int, int, int]], cfg: SceneConfig
) -> list | None:
    """Sizes and top-left corners for items whose (estimated) ink boxes stay
    ``gap`` apart.

    ``ink`` holds each item's 28x28 ink box; at size ``s`` it scales by
    ``s / 28`` (rounded outwards). Returns ``[(x, y, s), ...]`` or None after
    200 failed draws."""
    placed, boxes = [], []
    for _ in range(200):
        if len(placed) == len(ink):
            return placed
        s = rng.randint(cfg.min_size, cfg.max_size)
        x, y = rng.randint(0, cfg.canvas - s), rng.randint(0, cfg.canvas - s)
        ix1, iy1, ix2, iy2 = ink[len(placed)]
        box = (
            x + ix1 * s // 28,
            y + iy1 * s // 28,
            x + -(-ix2 * s // 28),
            y + -(-iy2 * s // 28),
        )
        if all(_separated(box, other, cfg.gap) for other in boxes):
            placed.append((x, y, s))
            boxes.append(box)
    return None


def _resized(item: torch.Tensor, s: int) -> torch.Tensor:
    """A (1, 28, 28) item rescaled to (1, s, s)."""
    return F.interpolate(
        item[None],
        size=(s, s),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0].clamp(0, 1)


def _tight_box(item: torch.Tensor) -> tuple[int, int, int, int]:
    """Half-open pixel box of the ink (> INK) of a (1, s, s) item; the whole
    item if it has none."""
    ys, xs = torch.nonzero(item[0] > INK, as_tuple=True)
    if len(xs) == 0:
        return 0, 0, item.shape[-1], item.shape[-1]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def make_scenes(
    n: int,
    items: torch.Tensor,
    item_labels: torch.Tensor,
    *,
    config: SceneConfig = SceneConfig(),
    seed: int = 0,
) -> SceneData:
    """Draw ``n`` scenes from a pool of items.

    Args:
        n: number of scenes.
        items: (M, 1, 28, 28) Fashion-MNIST images in [0, 1], the pool.
        item_labels: (M,) their classes.
        config: canvas and object settings.
        seed: the scenes are a function of (pool, config, seed) only.

    Returns:
        A :class:`SceneData` with images (N, 1, H, W).
    """
    dims = expect_shape(items, ("M", 1, 28, 28), name="items")
    expect_shape(item_labels, (dims["M"],), name="item_labels")
    rng, cfg = random.Random(seed), config
    by_class = {
        c: torch.nonzero(item_labels == c).flatten().tolist()
        for c in range(len(NOUNS))
    }
    classes = [c for c in cfg.classes if by_class[c]]
    if len(classes) < cfg.max_objects:
        raise ValueError(
            f"the item pool has {len(classes)} classes, need "
            f"{cfg.max_objects} distinct ones"
        )
    images = torch.zeros(n, 1, cfg.canvas, cfg.canvas)  # (N, 1, H, W)
    labels, boxes, captions = [], [], []
    for i in range(n):
        while True:
            k = rng.randint(cfg.min_objects, cfg.max_objects)
            chosen = rng.sample(classes, k)
            picks = [items[rng.choice(by_class[c])] for c in chosen]
            placed = _place(rng, [_tight_box(p) for p in picks], cfg)
            if placed is None:
                continue
            smalls = [
                _resized(p, s) for p, (_, _, s) in zip(picks, placed)
            ]  # (1, S, S) each
            scene_boxes = [
                [x + b[0], y + b[1], x + b[2], y + b[3]]
                for (x, y, _), b in zip(placed, map(_tight_box, smalls))
            ]
            if all(
                _separated(a, b, 0)
                for j, a in enumerate(scene_boxes)
                for b in scene_boxes[:j]
            ):
                # the exact ink boxes do not overlap (the estimate can be off
                # by a pixel)
                break
        for small, (x, y, s) in zip(smalls, placed):
            region = images[i, :, y : y + s, x : x + s]
            torch.maximum(region, small, out=region)
        nouns = [NOUNS[c] for c in chosen]
        refs = list(
            dict.fromkeys(
                caption(nouns, scene_boxes, rng) for _ in range(4 * cfg.n_refs)
            )
        )
        labels.append(torch.tensor(chosen, dtype=torch.long))
        boxes.append(torch.tensor(scene_boxes, dtype=torch.float32))
        captions.append(tuple(refs[: cfg.n_refs]))
    return SceneData(images, labels, boxes, captions, cfg)


def load_scenes(
    split: str = "train",
    n: int = 1000,
    *,
    config: SceneConfig = SceneConfig(),
    seed: int = 0,
    pool: int = 10000,
) -> SceneData:
    """Scenes built from Fashion-MNIST's ``split`` (test scenes use unseen test
    items).

    Args:
        split: ``"train"`` or ``"test"``: which Fashion-MNIST split supplies
            the items.
        n: number of scenes.
        config: canvas and object settings.
        seed: generator seed.
        pool: how many of the split's items to draw from (the first ``pool``).
    """
    items, item_labels = load_fashion_mnist(split, n=pool)
    return make_scenes(n, items, item_labels, config=config, seed=seed)
