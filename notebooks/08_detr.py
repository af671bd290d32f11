# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DETR: detection as set prediction
#
# A detector must say *what* is in an image and *where*. Before 2020 the answer
# went through hand-made machinery: thousands of anchor boxes or proposals, a
# rule that decides which of them count as positives for each object, box
# offsets regressed relative to the anchors, and non-maximum suppression (NMS)
# to delete the many near-duplicate boxes that result. DETR {cite}`carion2020end`
# replaces all of it with a Transformer that outputs a **set** of boxes directly,
# trained with a loss that is itself defined on sets.
#
# **Learning goals.** After this chapter you can
#
# - draw DETR's pipeline: CNN backbone, 2D positional encoding, Transformer encoder,
#   decoder with learned object queries, class and box heads;
# - write the matching cost, find the optimal one-to-one assignment (a linear
#   assignment problem, which DETR calls Hungarian matching), and compute the set loss
#   (cross-entropy with a down-weighted "no object" class, L1 and generalised IoU
#   {cite}`rezatofighi2019generalized`);
# - evaluate a detector with mAP@0.5 and COCO's mAP@[.5:.95];
# - read the encoder's self-attention from a point on an object, and the decoder's
#   cross-attention as "where each object query looks";
# - explain why one-to-one matching, not NMS, is what removes duplicate boxes in
#   principle, and measure how far a short run gets: far fewer duplicates than the same
#   network trained with a one-to-many assignment, yet still a gain from NMS;
# - explain why DETR is reported to need long training, and why one run without a
#   baseline cannot measure it.

# %%
# Setup: on Colab, installs seqlib (keeping Colab's own torch); locally the
# README's commands already did.
import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version

if importlib.util.find_spec("seqlib") is None:
    url = "https://github.com/attention-course/attention-book"
    repo = os.environ.get("SEQLIB_REPO", url)  # or your fork's URL
    # pin the installed torch (Colab's CUDA build), so that pip keeps it
    has_torch = importlib.util.find_spec("torch") is not None
    keep = [f"torch=={version('torch')}"] if has_torch else []
    pip = [sys.executable, "-m", "pip", "install", "-q", *keep]
    subprocess.run([*pip, f"seqlib @ git+{repo}"], check=True)

from seqlib.notebook import start

device = start("ch08")

# %%
import copy
import functools
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyBboxPatch, Rectangle
from scipy.optimize import linear_sum_assignment

from seqlib import boxes as bx
from seqlib import attention, claims, detr, layers, matcher, profiles, viz
from seqlib.data import SceneConfig, load_scenes
from seqlib.data.scenes import NOUNS
from seqlib.metrics import mean_average_precision
from seqlib.notebook import show
from seqlib.train import fit, seed_for

cfg = profiles.sizes("ch08")
print(cfg)

# %% [markdown]
# ## The pipeline
#
# DETR has four parts. A **CNN backbone** turns the $H\times W$ image into a
# $C\times H'\times W'$ feature map (here 48×48 pixels become a 6×6 grid). A 1×1
# convolution projects it to width $D$; the $N = H'W'$ cells become tokens, and a
# **2D sinusoidal positional encoding** (chapter 5: rows in half the channels, columns
# in the other half) tells the otherwise order-blind attention where each cell is.
# A **Transformer encoder** lets every cell attend to every other, so the features
# of one object can take the whole image into account. A **Transformer decoder**
# starts from $Q$ learned vectors, the **object queries**, lets them attend to each
# other (no causal mask: they form a set, not a sequence) and to the encoded
# image. Finally two small heads turn each query into a class among $C + 1$ (the
# extra one is $\varnothing$, "no object") and a box $(c_x, c_y, w, h) \in [0,1]^4$.
# $Q$ is an upper bound on the objects of one image; we use $Q = 10$ for at most 3.

# %% mystnb={"image": {"alt": "The DETR pipeline as boxes and arrows: image, CNN backbone, 1 by 1 convolution with 2D sine positions, Transformer encoder, whose memory feeds the Transformer decoder with its object queries, prediction heads and the set of predictions."}}
def pipeline_diagram():
    """DETR as boxes and arrows, with the sizes of this chapter's smoke
    model."""
    n_cells = (cfg.canvas // 2 ** len(cfg.channels)) ** 2
    side = cfg.canvas // 2 ** len(cfg.channels)
    columns = np.linspace(0.13, 0.87, 4)
    top, bottom = 0.74, 0.3  # the two rows of boxes
    width, height = 0.2, 0.2
    stages = [  # (x, y, text, colour)
        (columns[0], top, f"image\n1×{cfg.canvas}×{cfg.canvas}", "0.85"),
        (
            columns[1],
            top,
            f"CNN backbone\n{cfg.channels[-1]}×{side}×{side}",
            "#c6dbef",
        ),
        (
            columns[2],
            top,
            f"1×1 conv, flatten\n{n_cells} tokens × {cfg.dim}",
            "#c6dbef",
        ),
        (
            columns[3],
            top,
            f"Transformer\nencoder\n{cfg.enc_layers} blocks",
            "#fdd0a2",
        ),
        (
            columns[1],
            bottom,
            f"Transformer\ndecoder\n{cfg.dec_layers} blocks",
            "#fdd0a2",
        ),
        (
            columns[2],
            bottom,
            "heads (per query)\nclass: C+1\nbox: cx, cy, w, h",
            "#c7e9c0",
        ),
        (
            columns[3],
            bottom,
            f"set of {cfg.num_queries}\npredictions",
            "0.85",
        ),
    ]
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    for x, y, text, color in stages:
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0.01",
                fc=color,
                ec="k",
            )
        )
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(start, end, **style):
        ax.annotate(
            "", end, start, arrowprops=dict(arrowstyle="->", lw=1.5) | style
        )

    for a, b in zip(columns[:-1], columns[1:]):  # along the top row
        arrow((a + width / 2 + 0.01, top), (b - width / 2 - 0.01, top))
    for a, b in zip(columns[1:-1], columns[2:]):  # along the bottom row
        arrow((a + width / 2 + 0.01, bottom), (b - width / 2 - 0.01, bottom))
    # the encoder's output is the memory the decoder attends to
    arrow(
        (columns[3] - 0.03, top - height / 2 - 0.01),
        (columns[1] + 0.03, bottom + height / 2 + 0.01),
        ls="--",
    )
    ax.text(
        (columns[2] + columns[3]) / 2 - 0.02,
        (top + bottom) / 2 + 0.01,
        "memory\n(keys, values)",
        ha="left",
        va="center",
        fontsize=9,
    )
    mid = (columns[2] + columns[3]) / 2  # where the positions are added
    for x, y, text in (
        (mid, 0.98, "+ 2D sine positions"),
        (columns[0], bottom, f"{cfg.num_queries} object\nqueries"),
    ):
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="center",
            fontsize=9,
            bbox=dict(fc="#fcbba1", ec="k"),
        )
    arrow((mid, 0.94), (mid, top + 0.01), lw=1.2)
    arrow((columns[0] + 0.08, bottom), (columns[1] - width / 2 - 0.01, bottom))
    ax.text(
        0.5,
        0.04,
        "training: Hungarian matching to the ground truth, set loss",
        ha="center",
        fontsize=9,
        bbox=dict(fc="#fff7bc", ec="k"),
    )
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(
        "DETR: image → set of (class, box) predictions, no anchors, no NMS",
        fontsize=11,
    )
    ax.axis("off")
    return fig


pipeline_diagram()
plt.show()

# %% [markdown]
# ## The data: scenes of Fashion-MNIST items
#
# Chapter 4's generator ({py:mod}`seqlib.data.scenes`) pastes 1 to 3 Fashion-MNIST
# items of distinct classes at random places and sizes on a 48×48 canvas, without
# overlap, and records each item's class and tight box. The test scenes are built
# from Fashion-MNIST *test* items, so the detector sees unseen garments. We keep six
# classes that do not look alike (top, trouser, sandal, sneaker, bag, ankle boot);
# the class head still has the ten Fashion-MNIST classes plus $\varnothing$.

# %%
scene_cfg = SceneConfig(
    canvas=cfg.canvas,
    min_objects=cfg.min_objects,
    max_objects=cfg.max_objects,
    min_size=cfg.min_size,
    max_size=cfg.max_size,
    classes=cfg.classes,
    n_refs=1,
)
train_set = load_scenes(
    "train",
    profiles.dry_run_cap(cfg.n_train),
    config=scene_cfg,
    seed=seed_for(0),
    pool=cfg.pool,
)
test_set = load_scenes(
    "test",
    profiles.dry_run_cap(cfg.n_test, 128),  # a dry run: NMS and mAP on 128
    config=scene_cfg,
    seed=seed_for(1),
    pool=min(cfg.pool // 3, 10_000),  # Fashion-MNIST has 10 000 test items
)
train_targets = (
    train_set.detection_targets()
)  # per scene {"labels": (K,), "boxes": (K, 4) cxcywh in [0, 1]}
test_gt = [
    {"labels": lab, "boxes": b}
    for lab, b in zip(test_set.labels, test_set.boxes)
]  # pixel xyxy, for mAP
n_objects = np.array([len(lab) for lab in train_set.labels])
print(
    "train",
    tuple(train_set.images.shape),
    " test",
    tuple(test_set.images.shape),
)
print(
    "objects per scene:",
    {k: int((n_objects == k).sum()) for k in range(1, cfg.max_objects + 1)},
)
assert n_objects.max() <= cfg.num_queries and set(
    torch.cat(train_set.labels).tolist()
) <= set(cfg.classes)


# %% mystnb={"image": {"alt": "Six 48 by 48 training scenes, each with one to three Fashion-MNIST items and their green ground-truth boxes and class names."}}
def draw(ax, image, boxes=(), labels=(), scores=None, color="C1", title=""):
    """An image with pixel-corner boxes, class names and (optionally)
    scores."""
    ax.imshow(image[0], cmap="gray", vmin=0, vmax=1)
    for i, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = [float(v) for v in box]
        ax.add_patch(
            Rectangle(
                (x1 - 0.5, y1 - 0.5),
                x2 - x1,
                y2 - y1,
                fill=False,
                ec=color,
                lw=1.5,
            )
        )
        text = NOUNS[int(label)] + (
            "" if scores is None else f" {float(scores[i]):.2f}"
        )
        ax.text(x1 - 0.5, y1 - 1.5, text, color=color, fontsize=7, va="bottom")
    ax.set(title=title, xticks=[], yticks=[])


fig, axes = plt.subplots(1, 6, figsize=(6.8, 1.9))
for i, ax in enumerate(axes):
    draw(
        ax,
        train_set.images[i],
        train_set.boxes[i],
        train_set.labels[i],
        color="lime",
    )
    ax.set_title(f"scene {i}", fontsize=10)
fig.suptitle(
    "Training scenes with their ground-truth boxes (48×48 pixels)",
    fontsize=10,
)
plt.show()

# %% [markdown]
# ## Boxes and the generalised IoU
#
# Boxes are compared in two ways. The L1 distance between the $(c_x, c_y, w, h)$
# vectors is simple but scales with the box: the same 2-pixel error is a small
# miss on a large object and a large one on a small object. The intersection over
# union is scale-invariant but is 0 for every pair of disjoint boxes, far or near,
# so it gives no gradient there. The **generalised IoU** {cite}`rezatofighi2019generalized`
# subtracts the part of the smallest enclosing box $C$ that the two boxes leave empty:
#
# $$
# \mathrm{GIoU}(A, B) = \frac{|A\cap B|}{|A\cup B|} - \frac{|C \setminus (A\cup B)|}{|C|} \in (-1, 1] .
# $$ (eq-giou)
#
# It is 1 for equal boxes and tends to $-1$ as they move apart.
# {py:func}`seqlib.boxes.generalized_box_iou` computes it for all pairs at once:

# %%
show(
    bx.generalized_box_iou,
    "GIoU for all pairs: the IoU, minus the empty share of the enclosing box",
)

# %%
a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
b = torch.tensor(
    [[1.0, 1.0, 3.0, 3.0], [3.0, 0.0, 5.0, 2.0], [30.0, 0.0, 32.0, 2.0]]
)
g = bx.generalized_box_iou(a, b)[0]
print("IoU :", [round(v, 3) for v in bx.box_iou(a, b)[0][0].tolist()])
print("GIoU:", [round(v, 3) for v in g.tolist()])
assert (
    abs(g[0] - (1 / 7 - 2 / 9)) < 1e-6
    and abs(g[1] + 0.2) < 1e-6
    and g[2] < g[1] < 0
)  # farther = lower

# %% [markdown]
# ## Matching predictions to objects
#
# The model outputs $Q$ predictions $\hat y_i = (\hat p_i, \hat b_i)$ in no particular
# order; an image has $K \le Q$ objects $y_j = (c_j, b_j)$, padded to $Q$ with
# $\varnothing$. Which prediction should be trained towards which object? DETR picks
# the permutation $\sigma$ of the $Q$ predictions with the lowest total matching cost,
#
# $$
# \hat\sigma = \arg\min_{\sigma \in \mathfrak{S}_Q} \sum_{j=1}^{K} \mathcal{C}\big(y_j, \hat y_{\sigma(j)}\big),
# \qquad
# \mathcal{C}(y_j, \hat y_i) = -\lambda_{\mathrm{cls}}\,\hat p_i(c_j) + \lambda_{L1}\,\lVert b_j - \hat b_i\rVert_1
# - \lambda_{\mathrm{giou}}\,\mathrm{GIoU}(b_j, \hat b_i) ,
# $$ (eq-detr-match)
#
# with $\lambda_{\mathrm{cls}} = 1$, $\lambda_{L1} = 5$, $\lambda_{\mathrm{giou}} = 2$ as in
# the paper. This is a linear assignment problem: a minimum-cost matching in the
# bipartite graph of predictions and objects. Kuhn's Hungarian method
# {cite}`kuhn1955hungarian` solves it exactly (in $O(Q^3)$ in its later refined
# form), which is why DETR calls this step *Hungarian matching*. The solver we call,
# `scipy.optimize.linear_sum_assignment`, reaches the same optimum by a different
# algorithm: a shortest augmenting path method of the Jonker–Volgenant type
# {cite}`jonker1987shortest`, in the form Crouse describes for rectangular cost
# matrices {cite}`crouse2016implementing`. The problem is the same, and so is the
# minimum cost; only the route to it differs. The cost of every query of every
# image against every object of the batch is one tensor, cut into per-image
# blocks ({py:func}`seqlib.matcher.matching_cost`); the matching itself is
# {py:func}`seqlib.matcher.hungarian_match`:

# %%
show(
    matcher.matching_cost,
    "The batched cost: class, L1 and GIoU terms for every query against every "
    "object of the batch",
)
show(
    matcher.hungarian_match,
    "The matching: linear_sum_assignment on each image's block of the cost",
)

# %% [markdown]
# Once matched, the **Hungarian loss** trains every query: a matched query towards its
# object's class and box, every other query towards $\varnothing$,
#
# $$
# \mathcal{L} = \sum_{i=1}^{Q} \Big[ -w_{c_i} \log \hat p_{i}(c_{i}) \Big] \Big/ \sum_i w_{c_i}
# + \frac{1}{K}\sum_{j=1}^{K} \Big[\lambda_{L1}\lVert b_j - \hat b_{\hat\sigma(j)}\rVert_1
# + \lambda_{\mathrm{giou}}\big(1 - \mathrm{GIoU}(b_j, \hat b_{\hat\sigma(j)})\big)\Big] ,
# $$ (eq-detr-loss)
#
# where $c_i$ is the class of the object matched to query $i$ (or $\varnothing$) and the
# weight $w_\varnothing = 0.1$ keeps the many empty queries from drowning the few
# matched ones. Because each object is the target of *one* query, a second query that
# predicts the same object is told "no object": the loss itself penalises duplicates,
# which is why, in principle, DETR needs no NMS.
# {py:func}`seqlib.matcher.set_loss` computes it for given matches:

# %%
show(
    matcher.set_loss,
    "The Hungarian loss: weighted cross-entropy over all queries, L1 and GIoU "
    "over the matched ones",
)

# %% [markdown]
# ## The model
#
# {py:class}`seqlib.detr.DETR` reuses chapter 5's Transformer blocks (pre-norm,
# the book's one {py:class}`~seqlib.attention.MultiHeadAttention`): every
# encoder and decoder layer is chapter 5's {py:class}`seqlib.layers.Block`, and
# only its mixers say which tokens meet. In the encoder the mixer is global
# self-attention over the feature cells; in the decoder the object queries
# attend to each other (without a causal mask: they are a set) and then to the
# cells, `block(x, memory=memory, causal=False)`. As in the short reference
# implementation at the end of the DETR paper, the positional code is added once to the encoder input and
# the object queries are the decoder's input; the full model adds them to the queries
# and keys of every layer. Every decoder layer's output goes through the shared heads:
# those **auxiliary** predictions get their own matching and loss, which helps the
# deep decoder train (section 3.2 of the paper).

# %%
show(
    detr.DETR.encode,
    "The encoder side: backbone, 1×1 projection, 2D sine positions added, "
    "encoder blocks",
)
show(
    detr.DETR.decode,
    "The decoder side: the object queries through every decoder block, one "
    "normalised output per layer",
)

# %%
torch.manual_seed(seed_for(0))
model = detr.detr_tiny(
    10,
    num_queries=cfg.num_queries,
    channels=tuple(cfg.channels),
    dim=cfg.dim,
    heads=cfg.heads,
    ff_dim=cfg.ff_dim,
    enc_layers=cfg.enc_layers,
    dec_layers=cfg.dec_layers,
    dropout=cfg.dropout,
).to(device)
with attention.record(model) as maps:
    out = model(train_set.images[:4].to(device))
print("parameters:", layers.count_parameters(model))
print(
    "logits",
    tuple(out["logits"].shape),
    " boxes",
    tuple(out["boxes"].shape),
    " aux layers",
    len(out["aux"]),
    " grid",
    model.feature_size(cfg.canvas),
)
print("recorded attention:")
for name, w in zip(maps.names, maps):
    print(f"  {name}: {tuple(w.shape)}")
assert out["logits"].shape == (4, cfg.num_queries, 11) and out[
    "boxes"
].shape == (4, cfg.num_queries, 4)

# %% [markdown]
# Before training, the matcher already works on the model's (random) predictions.
# On a scene with three objects there are $10 \cdot 9 \cdot 8 = 720$ ways to assign
# them to distinct queries; the matcher must find the cheapest one:

# %%
import itertools

idx = next(i for i in range(len(train_set)) if len(train_set.labels[i]) == 3)
with torch.no_grad():
    o = model(train_set.images[idx : idx + 1].to(device))
    cost = matcher.matching_cost(
        o["logits"].cpu(), o["boxes"].cpu(), train_targets[idx : idx + 1]
    )[0]  # (Q, K)
((q_idx, t_idx),) = matcher.hungarian_match(cost[None], [3])
brute = min(
    itertools.permutations(range(cfg.num_queries), 3),
    key=lambda qs: sum(float(cost[q, j]) for j, q in enumerate(qs)),
)
hungarian_total = float(cost[q_idx, t_idx].sum())
brute_total = sum(float(cost[q, j]) for j, q in enumerate(brute))
print(
    "Hungarian equals brute force over all 720 assignments:",
    abs(hungarian_total - brute_total) < 1e-5,
)
assert abs(hungarian_total - brute_total) < 1e-5

# %% [markdown]
# ## Training
#
# We train with AdamW and DETR's gradient clipping (norm 0.1) on random mini-batches
# of training scenes, through the book's one training loop,
# {py:func}`train.fit <seqlib.train.fit>`, with
# {py:func}`detr.train_step <seqlib.detr.train_step>` as its step (the set loss
# of a batch). Every `eval_every` steps,
# one "epoch" of `fit`, we measure mAP@0.5 on the first `n_curve` test scenes, to
# see how the detector improves. The step also times the matcher (cost matrices
# and `linear_sum_assignment`, for the final and the auxiliary layers) and reports
# it as a step metric.

# %%
# NBVAL_IGNORE_OUTPUT
def curve_map(net, n):
    return mean_average_precision(
        detr.predict(net, test_set.images[:n].to(device)), test_gt[:n]
    ).map50


def evaluate(net):
    """The curve's point after each `eval_every` steps, and how long it took
    (not training time)."""
    start = time.perf_counter()
    return {
        "map50": curve_map(net, cfg.n_curve),
        "eval_seconds": time.perf_counter() - start,
    }


def report(epoch, record):
    history["step"].append((epoch + 1) * cfg.eval_every)
    history["loss"].append(record["loss"])
    history["map50"].append(record["map50"])
    print(
        f"step {history['step'][-1]:5d}  loss {record['loss']:.3f}  "
        f"mAP@0.5 (first {cfg.n_curve} test scenes) {record['map50']:.3f}"
    )


assert cfg.steps % cfg.eval_every == 0
optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
history = {
    "step": [0],
    "map50": [curve_map(model, cfg.n_curve)],
    "loss": [float("nan")],
}
start_time = time.perf_counter()
fit_history = fit(
    model,
    detr.random_batches(
        train_set.images,
        train_targets,
        batch_size=cfg.batch_size,
        seed=seed_for(0),
    ),
    detr.train_step,
    epochs=cfg.steps // cfg.eval_every,
    steps_per_epoch=cfg.eval_every,
    optimizer=optimizer,
    grad_clip=0.1,
    device=device,
    evaluate=evaluate,
    on_epoch=report,
    desc="DETR",
)
train_seconds = time.perf_counter() - start_time
# fit reports per-epoch means of the step metrics and each epoch's wall time
# (which includes the evaluation).
match_seconds = cfg.eval_every * sum(fit_history["match_seconds"])
step_seconds = sum(
    r["seconds"] - r["eval_seconds"] for r in fit_history.records
)
print(
    f"training: {train_seconds:.0f} s; matcher {match_seconds:.1f} s of "
    f"{step_seconds:.1f} s in training steps"
)

# %% [markdown]
# The matcher is cheap here: we assert that it takes less than half of a training
# step, and on seeds 0–2 it took about 6 % (a timing, so it varies a little from run
# to run; every claim of this chapter, with its value on each seed, is on the Claims
# page, {ref}`claims-ch08`).
# An exact assignment solver takes, in the worst case, time cubic in the size of the
# cost matrix, but $Q$ is small, and the real cost of a step is the forward and
# backward pass of the network.

# %%
# NBVAL_IGNORE_OUTPUT
match_share = match_seconds / step_seconds
print(
    f"matcher share of a training step: {100 * match_share:.1f} % "
    f"({1000 * match_seconds / cfg.steps:.1f} ms of "
    f"{1000 * step_seconds / cfg.steps:.1f} ms per step)"
)

# %%
# NBVAL_IGNORE_OUTPUT
claims.check(
    "ch08-matcher-share",
    "The Hungarian matcher takes less than half of a training step's time",
    match_share,
    "< 0.5",
)
print(
    "the matcher takes less than half of a training step:", match_share < 0.5
)

# %% [markdown]
# ## How good is it? mAP on unseen scenes
#
# Detectors are scored by **mean average precision**. For one class, rank all its
# detections over the test set by score; a detection is a true positive if it overlaps
# a not yet detected object of that class with IoU at least $t$, otherwise a false
# positive (a second box on the same object is a false positive). AP is the area
# under the resulting precision–recall curve, after each precision is replaced by the
# best precision at any higher recall; we use COCO's 101-point version (the mean of
# that envelope at recall $0, 0.01, \dots, 1$). mAP@0.5 averages AP over classes at
# $t = 0.5$; COCO's mAP@[.5:.95] {cite}`lin2014microsoft` also averages over
# $t = 0.5, 0.55, \dots, 0.95$ and so rewards precise boxes. Our implementation is
# checked against hand-computed cases in `tests/test_map.py`; it is
# {py:func}`seqlib.metrics.mean_average_precision`.
#
# To know what a number means we compare with two detectors that look at nothing:
# one that puts a box of the average training size and position with every class
# (scored by class frequency), and one that scatters 10 random boxes of
# training-like sizes with random classes and scores.

# %%
# NBVAL_IGNORE_OUTPUT
predictions = detr.predict(model, test_set.images.to(device))
result = mean_average_precision(predictions, test_gt)
print(
    f"DETR (smoke):   mAP@0.5 = {result.map50:.3f}   "
    f"mAP@0.75 = {result.map75:.3f}   mAP@[.5:.95] = {result.map:.3f}"
)
per_class = result.ap50_per_class.items()
print("AP@0.5 per class:")
print("  " + ", ".join(f"{NOUNS[c]} {v:.2f}" for c, v in per_class))

all_train_boxes = torch.cat(train_set.boxes)  # (ΣK, 4) pixel xyxy
all_train_labels = torch.cat(train_set.labels)
freq = {c: float((all_train_labels == c).float().mean()) for c in cfg.classes}
mean_box = all_train_boxes.mean(0)
constant = [
    {
        "boxes": mean_box.expand(len(freq), 4),
        "scores": torch.tensor(list(freq.values())),
        "labels": torch.tensor(list(freq)),
    }
    for _ in test_gt
]
gr = torch.Generator().manual_seed(seed_for(1))


def random_detections(n=cfg.num_queries):
    sizes = bx.box_xyxy_to_cxcywh(all_train_boxes)[
        torch.randint(0, len(all_train_boxes), (n,), generator=gr), 2:
    ]
    centres = sizes / 2 + torch.rand(n, 2, generator=gr) * (cfg.canvas - sizes)
    return {
        "boxes": bx.box_cxcywh_to_xyxy(torch.cat([centres, sizes], 1)),
        "scores": torch.rand(n, generator=gr),
        "labels": torch.tensor(cfg.classes)[
            torch.randint(0, len(cfg.classes), (n,), generator=gr)
        ],
    }


baselines = {
    "constant box": mean_average_precision(constant, test_gt),
    "random boxes": mean_average_precision(
        [random_detections() for _ in test_gt], test_gt
    ),
}
for name, res in baselines.items():
    print(
        f"{name:14s}: mAP@0.5 = {res.map50:.3f}   mAP@[.5:.95] = {res.map:.3f}"
    )

# %% [markdown]
# The floor we assert: mAP@0.5 above 0.30. On seeds 0–2 the smoke run reached 0.55 to
# 0.61 (the value printed above is this run's; {ref}`claims-ch08` lists each seed's).
# Both image-blind baselines score essentially zero (below 0.05 asserted, below 0.001 on
# seeds 0–2): objects cover a small part of the canvas and vary in size and place, so a
# box that ignores the image almost never reaches IoU 0.5. The short training amplifies
# tiny numerical differences between seeds and machines, so the floor keeps a wide
# margin while still demanding a detector that finds and places objects far better than
# chance.

# %%
# NBVAL_IGNORE_OUTPUT
best_baseline = max(res.map50 for res in baselines.values())
MAP50_FLOOR = 0.30
claims.check(
    "ch08-map50-floor",
    "After the smoke run DETR reaches mAP@0.5 above 0.30 on the unseen test "
    "scenes",
    result.map50,
    f"> {MAP50_FLOOR}",
    flagship=True,
)
claims.check(
    "ch08-baselines-blind",
    "Both image-blind baselines (constant box, random boxes) score mAP@0.5 "
    "below 0.05",
    best_baseline,
    "< 0.05",
    structural=True,
)
assert (
    result.map <= result.map50
)  # stricter IoU thresholds can only lose matches
print(
    f"mAP@0.5 above the floor {MAP50_FLOOR}, baselines below 0.05:",
    result.map50 > MAP50_FLOOR and best_baseline < 0.05,
)

# %% [markdown]
# The first line printed above also gives mAP@0.75. The two thresholds measure
# different things. At IoU 0.5 a box counts if it has found its object; at 0.75 it must
# also be placed tightly. A detection that counts at 0.5 but not at 0.75 has the right
# object and class but a loose box, so the gap between the two numbers measures
# localisation precision. COCO's mAP@[.5:.95] folds the same information into one
# number by averaging over thresholds up to 0.95.
#
# On our scenes the gap is large. On seeds 0–2 mAP@0.75 is only 0.31 to 0.42 times
# mAP@0.5 (we assert below 0.6). The next cell looks at the objects rather than the
# ranking: for each test object it takes the best IoU reached by any of the model's
# predictions of the right class, whatever their score. Of the objects found in this
# sense at IoU 0.5, 39 % to 45 % have no box at 0.75 (we assert more than a quarter,
# {ref}`claims-ch08`): DETR has found them and named them, but placed the box loosely.
# The tolerance is tighter than it sounds. For a 16-pixel square, a box shifted by
# one pixel in both directions still has IoU 0.78; two pixels bring it to 0.62, below
# 0.75 though well above 0.5, and three pixels to 0.49. So mAP@0.75 asks for boxes
# right to about a pixel, on objects that span only two or three of the 8-pixel
# feature cells. The measurement does not tell which part of the model limits the
# precision: the coarse $6\times 6$ grid and the short training are both candidates,
# and this chapter does not separate them.

# %%
square = torch.tensor([[16.0, 16.0, 32.0, 32.0]])
shifted = torch.stack(
    [square[0] + d for d in (1.0, 2.0, 3.0)]
)  # moved d pixels right and down
print("IoU of a 16-pixel square with itself moved 1, 2, 3 pixels diagonally:")
print([round(v, 2) for v in bx.box_iou(square, shifted)[0][0].tolist()])

# %%
# NBVAL_IGNORE_OUTPUT
best_iou = []  # per test object: the best IoU of any prediction of its class
for p, t in zip(predictions, test_gt):
    for box, label in zip(t["boxes"], t["labels"]):
        same_class = p["labels"].cpu() == label
        best_iou.append(
            float(bx.box_iou(box[None], p["boxes"].cpu()[same_class])[0].max())
            if same_class.any()
            else 0.0
        )
best_iou = np.array(best_iou)
found50, found75 = (
    float((best_iou >= 0.5).mean()),
    float((best_iou >= 0.75).mean()),
)
loose_share = (found50 - found75) / found50 if found50 else float("nan")
map_ratio = result.map75 / result.map50 if result.map50 else float("nan")
print(
    f"objects with a box of their class at IoU >= 0.5: {found50:.2f}, "
    f"at IoU >= 0.75: {found75:.2f};\n"
    f"found at 0.5 but not at 0.75: {loose_share:.2f}"
)
print(f"mAP@0.75 / mAP@0.5 = {map_ratio:.2f}")
claims.check(
    "ch08-map75-below-map50",
    "mAP@0.75 is less than 0.6 times mAP@0.5",
    map_ratio,
    "< 0.6",
)
loose = claims.check(
    "ch08-found-but-loose",
    "Of the test objects that have a box of their class at IoU 0.5 or "
    "more, more than a quarter have none at IoU 0.75",
    loose_share,
    "> 0.25",
)
print(
    "more than a quarter of the objects found at IoU 0.5 are missed at 0.75:",
    loose.held,
)

# %% [markdown]
# ### Predictions on unseen scenes
#
# Each panel shows the ground truth (green) and every prediction with score above 0.5
# (orange). There is no post-processing: these are the raw query outputs, thresholded.

# %% mystnb={"image": {"alt": "Eight unseen test scenes with green ground-truth boxes and the orange DETR boxes scoring above 0.5, which mostly sit on the objects, some objects with more than one box."}}
fig, axes = plt.subplots(2, 4, figsize=(6.8, 4.2))
for ax, i in zip(axes.flat, range(8)):
    p = predictions[i]
    keep = p["scores"] > 0.5
    draw(
        ax,
        test_set.images[i],
        test_set.boxes[i],
        test_set.labels[i],
        color="lime",
    )
    draw(
        ax,
        test_set.images[i],
        p["boxes"][keep].cpu(),
        p["labels"][keep].cpu(),
        p["scores"][keep].cpu(),
        color="orange",
    )
    ax.set_title(f"test scene {i}", fontsize=10)
fig.suptitle(
    "Unseen test scenes: ground truth (green) and DETR predictions\n"
    "with score > 0.5 (orange)",
    fontsize=10,
)
plt.show()

# %% [markdown]
# ## The matching on a real prediction
#
# Take one test scene and the trained model's ten predictions. The cost matrix of
# {eq}`eq-detr-match` has one row per query and one column per object; the
# matcher picks one cell per column, no two in the same row (white
# squares). The chosen queries are the ones whose boxes sit on the objects (we assert
# a mean IoU above 0.5 between each matched box and its object; it is 0.71 to 0.77 on
# seeds 0–2, {ref}`claims-ch08`); all the other queries are trained towards
# $\varnothing$ (each row label gives the query's probability of "no object").

# %% mystnb={"image": {"alt": "The matching cost of ten queries against the three objects of a test scene as an annotated heatmap, the chosen pairs outlined in white, and the scene with the matched queries' boxes next to the objects' boxes."}}
scene = next(i for i in range(len(test_set)) if len(test_set.labels[i]) == 3)
target = {
    "labels": test_set.labels[scene],
    "boxes": bx.box_xyxy_to_cxcywh(test_set.boxes[scene] / cfg.canvas),
}
model.eval()
with torch.no_grad(), attention.record(model) as maps:
    o = model(test_set.images[scene : scene + 1].to(device))
scene_maps = detr.attention_maps(
    maps
)  # "encoder": (1, h, N, N), "cross": (1, h, Q, N), one per layer
cost = matcher.matching_cost(o["logits"].cpu(), o["boxes"].cpu(), [target])[
    0
]  # (Q, K)
((q_idx, t_idx),) = matcher.hungarian_match(
    cost[None], [len(target["labels"])]
)
p_none = o["logits"][0].softmax(-1)[:, -1].cpu()  # (Q,)

fig, (ax0, ax1) = plt.subplots(
    1, 2, figsize=(6.8, 4), gridspec_kw=dict(width_ratios=[1.25, 1])
)
object_names = [NOUNS[int(c)] for c in target["labels"]]
viz.heatmap(
    cost,
    ax=ax0,
    x_labels=object_names,
    y_labels=[
        f"query {q}  p(∅)={p_none[q]:.2f}" for q in range(cfg.num_queries)
    ],
    xlabel="ground-truth object",
    colorbar_label="cost (lower = better)",
    annotate=True,
)
ax0.set_xticks(range(len(object_names)), object_names, rotation=0, fontsize=9)
ax0.set_title("Matching cost;\nchosen pairs in white", fontsize=10)
for q, t in zip(q_idx, t_idx):
    ax0.add_patch(
        Rectangle(
            (int(t) - 0.5, int(q) - 0.5), 1, 1, fill=False, ec="white", lw=3
        )
    )
pred_px = bx.box_cxcywh_to_xyxy(o["boxes"][0].cpu()) * cfg.canvas  # (Q, 4)
draw(
    ax1,
    test_set.images[scene],
    test_set.boxes[scene],
    test_set.labels[scene],
    color="lime",
)
for q, t in zip(q_idx.tolist(), t_idx.tolist()):
    x1, y1, x2, y2 = pred_px[q].tolist()
    ax1.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5),
            x2 - x1,
            y2 - y1,
            fill=False,
            ec="orange",
            lw=1.5,
            ls="--",
        )
    )
    ax1.text(
        x2 - 0.5,
        y2 + 0.5,
        f"q{q}",
        color="orange",
        fontsize=8,
        va="top",
        ha="right",
    )
ax1.set_title("matched queries (orange)\nand objects (green)", fontsize=10)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
unmatched = torch.ones(cfg.num_queries, dtype=torch.bool)
unmatched[q_idx] = False
print(
    "matched queries:",
    q_idx.tolist(),
    "-> objects",
    [NOUNS[int(test_set.labels[scene][t])] for t in t_idx],
)
print(
    "p(no object) of the matched queries:",
    [round(float(v), 3) for v in p_none[q_idx]],
)
print(
    "p(no object) of the other queries: "
    f"min {float(p_none[unmatched].min()):.3f}"
)
matched_iou = bx.box_iou(pred_px[q_idx], test_set.boxes[scene][t_idx])[
    0
].diagonal()  # (K,)
claims.check(
    "ch08-matched-boxes-on-objects",
    "On the shown test scene the boxes of the matched queries overlap their "
    "objects (mean IoU above 0.5)",
    matched_iou.mean(),
    "> 0.5",
)
print(
    "IoU of each matched query's box with its object:",
    [round(float(v), 2) for v in matched_iou],
)

# %%
assert sorted(t_idx.tolist()) == list(range(len(target["labels"]))) and len(
    set(q_idx.tolist())
) == len(t_idx)
print("every object has exactly one query:", True)

# %% [markdown]
# ## What the encoder attends to
#
# Before the queries read the image, the encoder's self-attention has let every feature
# cell look at every other. The DETR paper shows what this does with a few **reference
# points** on objects: for each, the last encoder layer's attention weights over all
# cells, drawn on the image (its Fig. 3). There the attention of a point on an object
# stays largely on that object: the encoder already separates the instances, which makes
# the decoder's job of extracting one object per query easier. We do the same on the
# scene above: one reference point per object (the feature cell that holds the object's
# centre), the weights averaged over heads, and the $6\times 6$ map upsampled bilinearly
# onto the $48\times 48$ image.

# %% mystnb={"image": {"alt": "A test scene with one reference point on each of its three objects, and for each point the last encoder layer's attention over the image, which is strongest on the point's own object."}}
import torch.nn.functional as F

Hf, Wf = model.feature_size(cfg.canvas)
cell = cfg.canvas / Hf  # pixels per feature cell
enc_attn = (
    scene_maps["encoder"][-1][0].mean(0).cpu()
)  # (N, N): last encoder layer, mean over heads


def centre_cell(box):
    """Row-major index of the feature cell that holds the centre of a
    pixel-corner box."""
    x1, y1, x2, y2 = box.tolist()
    return min(int((y1 + y2) / 2 // cell), Hf - 1) * Wf + min(
        int((x1 + x2) / 2 // cell), Wf - 1
    )


def cell_centre(n):
    """Pixel coordinates (x, y) of the centre of feature cell n, for
    plotting."""
    return (n % Wf + 0.5) * cell - 0.5, (n // Wf + 0.5) * cell - 0.5


refs = [centre_cell(b) for b in test_set.boxes[scene]]
fig, axes = plt.subplots(2, 2, figsize=(6.4, 5.6))
axes = axes.flat
draw(
    axes[0],
    test_set.images[scene],
    test_set.boxes[scene],
    test_set.labels[scene],
    color="lime",
)
axes[0].set_title("reference points", fontsize=10)
for k, n in enumerate(refs):
    axes[0].plot(*cell_centre(n), "o", ms=9, mfc=f"C{k}", mec="white")
    axes[0].text(
        *cell_centre(n),
        str(k + 1),
        color="white",
        fontsize=7,
        weight="bold",
        ha="center",
        va="center",
    )
for k, (ax, n) in enumerate(zip(axes[1:], refs)):
    heat = F.interpolate(
        enc_attn[n].view(1, 1, Hf, Wf),
        size=(cfg.canvas, cfg.canvas),
        mode="bilinear",
        align_corners=False,
    )[0, 0]  # (48, 48)
    ax.imshow(test_set.images[scene][0], cmap="gray", vmin=0, vmax=1)
    im = ax.imshow(heat, cmap="magma", alpha=0.6)
    x1, y1, x2, y2 = test_set.boxes[scene][k].tolist()
    ax.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5),
            x2 - x1,
            y2 - y1,
            fill=False,
            ec="lime",
            lw=1.2,
        )
    )
    ax.plot(*cell_centre(n), "o", ms=9, mfc=f"C{k}", mec="white")
    ax.set(xticks=[], yticks=[])
    ax.set_title(
        f"point {k + 1} ({NOUNS[int(test_set.labels[scene][k])]})",
        fontsize=10,
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="attention weight")
fig.suptitle(
    "Last encoder layer: self-attention of each reference point\n"
    "over the image (mean over heads)",
    fontsize=10,
)
plt.show()

# %% [markdown]
# One scene proves little, so the next cell repeats the measurement on every object of
# the test set. For the cell at each object's centre it sums the attention weights that
# fall on the cells of the object's own box (as for the decoder below: cells whose
# centre lies inside the box enlarged by half a cell), and compares that sum with the
# share of the $6\times 6$ grid those cells cover, which is what uniform attention would
# give. It does the same for the cells of the *other* objects in the scene. On seeds 0–2
# the attention inside the own object is 1.5 to 2.5 times its area share (we assert more
# than 1.2), and the attention on the other objects is only 0.59 to 0.76 times theirs
# (we assert below 1): the encoder's attention from a point on an object favours that
# object and avoids its neighbours ({ref}`claims-ch08`).

# %%
# NBVAL_IGNORE_OUTPUT
model.eval()
with torch.no_grad(), attention.record(model) as maps:
    model.encode(
        test_set.images.to(device)
    )  # the encoder alone: only its maps are recorded
enc_all = (
    detr.attention_maps(maps)["encoder"][-1].mean(1).cpu()
)  # (B, N, N): last encoder layer, mean over heads
row_centres, col_centres = [
    (torch.arange(s) + 0.5) * cell for s in (Hf, Wf)
]  # pixel centres of the cells


def box_cells(box):
    """(N,) mask of the cells whose centre lies in the pixel-corner box,
    enlarged by half a cell."""
    x1, y1, x2, y2 = box.tolist()
    rows = (row_centres >= y1 - cell / 2) & (row_centres <= y2 + cell / 2)
    cols = (col_centres >= x1 - cell / 2) & (col_centres <= x2 + cell / 2)
    return (rows[:, None] & cols[None, :]).flatten()


own, own_area, other, other_area = [], [], [], []
for b, image_boxes in enumerate(test_set.boxes):
    masks = [box_cells(box) for box in image_boxes]
    for k, box in enumerate(image_boxes):
        weights = enc_all[
            b, centre_cell(box)
        ]  # (N,) attention of the object's centre cell
        own.append(float(weights[masks[k]].sum()))
        own_area.append(float(masks[k].float().mean()))
        for j in range(len(image_boxes)):
            if j != k:
                elsewhere = (
                    masks[j] & ~masks[k]
                )  # the other object's cells, not shared with this one
                other.append(float(weights[elsewhere].sum()))
                other_area.append(float(elsewhere.float().mean()))
encoder_own_ratio = np.mean(own) / np.mean(own_area)
encoder_other_ratio = np.mean(other) / np.mean(other_area)
print(
    f"{len(own)} objects: attention inside the own box {np.mean(own):.2f} "
    f"vs area share {np.mean(own_area):.2f} (ratio {encoder_own_ratio:.1f})"
)
print(
    f"attention inside the other objects' boxes {np.mean(other):.2f} "
    f"vs their area share {np.mean(other_area):.2f}\n"
    f"(ratio {encoder_other_ratio:.2f})"
)
claims.check(
    "ch08-encoder-attention-own-object",
    "From the cell at an object's centre, the last encoder layer puts "
    "more than 1.2 times as much attention inside that object's box as the "
    "box's share of the grid",
    encoder_own_ratio,
    "> 1.2",
)
separates = claims.check(
    "ch08-encoder-attention-other-objects",
    "From the cell at an object's centre, the last "
    "encoder layer puts less attention inside the other objects' boxes "
    "than their share of the grid",
    encoder_other_ratio,
    "< 1",
)
print(
    "less attention on the other objects than their area share:",
    separates.held,
)

# %% [markdown]
# ## Where the object queries look
#
# The decoder's last cross-attention layer gives, for each query, weights over the
# $6\times 6$ encoded cells. Averaged over heads and drawn on the image, they show
# which part of the image a query reads before it writes its box. In the DETR paper
# the decoder attends to the *extremities* of objects (their edges), because the
# encoder has already separated the instances; on our coarse grid we can at least
# check that a query looks at its own object. The check after the figure sums each
# matched query's attention over the cells of its own object's box and compares it
# with the share of the image those cells cover: we assert more than 1.5 times that
# share, and on seeds 0–2 it is 2.9 to 4.5 times ({ref}`claims-ch08`).

# %% mystnb={"image": {"alt": "The last decoder layer's cross-attention of the four most confident queries drawn over the test scene, each with its predicted box, the attention falling on the predicted object."}}
attn = (
    scene_maps["cross"][-1][0].mean(0).cpu()
)  # (Q, N): the last decoder layer, averaged over heads
scores, labels = o["logits"][0].softmax(-1)[:, :-1].max(-1)
shown = scores.argsort(descending=True)[:4].cpu()
fig, axes = plt.subplots(2, 2, figsize=(6.4, 5.6))
for ax, q in zip(axes.flat, shown.tolist()):
    ax.imshow(test_set.images[scene][0], cmap="gray", vmin=0, vmax=1)
    heat = attn[q].view(Hf, Wf)
    im = ax.imshow(
        heat,
        cmap="magma",
        alpha=0.55,
        extent=(-0.5, cfg.canvas - 0.5, cfg.canvas - 0.5, -0.5),
    )
    x1, y1, x2, y2 = pred_px[q].tolist()
    ax.add_patch(
        Rectangle(
            (x1 - 0.5, y1 - 0.5),
            x2 - x1,
            y2 - y1,
            fill=False,
            ec="cyan",
            lw=1.5,
        )
    )
    ax.set(xticks=[], yticks=[])
    ax.set_title(
        f"query {q}: {NOUNS[int(labels[q])]} {float(scores[q]):.2f}",
        fontsize=10,
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="attention weight")
fig.suptitle(
    "Last decoder layer: cross-attention of the 4 most confident queries\n"
    "(mean over heads), predicted box in cyan",
    fontsize=10,
)
plt.show()

# %%
# NBVAL_IGNORE_OUTPUT
# Attention mass inside each matched query's own ground-truth box vs the box's
# share of the image.
cell = cfg.canvas / Hf
centres = (torch.arange(Hf) + 0.5) * cell
cy, cx = torch.meshgrid(centres, centres, indexing="ij")
inside_share, area_share = [], []
for q, t in zip(q_idx.tolist(), t_idx.tolist()):
    x1, y1, x2, y2 = test_set.boxes[scene][t].tolist()
    inside = (
        (cx >= x1 - cell / 2)
        & (cx <= x2 + cell / 2)
        & (cy >= y1 - cell / 2)
        & (cy <= y2 + cell / 2)
    ).flatten()
    inside_share.append(float(attn[q][inside].sum()))
    area_share.append(float(inside.float().mean()))
print(
    "attention inside own object (+half a cell):",
    [round(v, 2) for v in inside_share],
)
print(
    "area share of the object (+half a cell):   ",
    [round(v, 2) for v in area_share],
)

# %%
# NBVAL_IGNORE_OUTPUT
attention_ratio = np.mean(inside_share) / np.mean(area_share)
claims.check(
    "ch08-attention-in-box",
    "The matched queries put more than 1.5 times as much cross-attention "
    "inside their own object as the object's share of the image would give",
    attention_ratio,
    "> 1.5",
)
print(f"attention inside the own object / area share: {attention_ratio:.1f}")

# %% [markdown]
# ## Why DETR can do without NMS
#
# A detector trained with a *one-to-many* assignment, where every prediction
# learns the object it is closest to (as anchor-based detectors do), is taught to put
# several confident boxes on each object, and needs NMS to delete all but one. DETR's
# one-to-one matching instead tells every query but one "no object". To see the
# difference, we continue training a copy of our model for a few hundred steps with
# exactly the same loss, changing only the assignment: each query is matched to its
# cheapest object, with no competition between queries. We count the confident boxes
# (score above 0.5) on each test object and measure mAP@0.5 without and with NMS.

# %%
def one_to_many(cost, sizes):
    """Each query takes its cheapest object (several queries may share one): no
    "no object" target."""
    out = []
    for b, block in enumerate(
        cost.detach().cpu().split(list(sizes), dim=-1)
    ):  # (B, Q, K_b) each
        Q, K = block.shape[1:]
        if K == 0:
            out.append(
                (
                    torch.zeros(0, dtype=torch.long),
                    torch.zeros(0, dtype=torch.long),
                )
            )
        else:
            out.append((torch.arange(Q), block[b].argmin(-1)))
    return out


def nms(dets, iou_threshold=0.5):
    """Greedy non-maximum suppression per class: keep the best box, drop those
    overlapping it."""
    keep = []
    for i in dets["scores"].argsort(descending=True).tolist():
        if all(
            dets["labels"][j] != dets["labels"][i]
            or bx.box_iou(dets["boxes"][i : i + 1], dets["boxes"][j : j + 1])[
                0
            ].item()
            < iou_threshold
            for j in keep
        ):
            keep.append(i)
    return {k: v[keep] for k, v in dets.items()}


def duplicates_per_object(preds, gts, score=0.5, iou=0.5):
    """Mean number of confident predictions (score > 0.5) overlapping each
    object with IoU >= 0.5."""
    counts = []
    for p, t in zip(preds, gts):
        confident = p["boxes"][p["scores"] > score].cpu()  # (P, 4)
        counts += (
            (bx.box_iou(t["boxes"], confident)[0] >= iou).sum(1).tolist()
        )  # one count per object
    return float(np.mean(counts))


# %%
# NBVAL_IGNORE_OUTPUT
many = copy.deepcopy(model)
opt_many = torch.optim.AdamW(many.parameters(), lr=cfg.lr, weight_decay=1e-4)
fit(
    many,
    detr.random_batches(
        train_set.images,
        train_targets,
        batch_size=cfg.batch_size,
        seed=seed_for(1),
    ),
    functools.partial(detr.train_step, assign=one_to_many),
    epochs=1,
    steps_per_epoch=cfg.one_to_many_steps,
    optimizer=opt_many,
    grad_clip=0.1,
    device=device,
    desc="one-to-many",
)
preds_many = detr.predict(many, test_set.images.to(device))
rows = {}
for name, preds in (
    ("one-to-one (DETR)", predictions),
    ("one-to-many", preds_many),
):
    rows[name] = {
        "boxes per object": duplicates_per_object(preds, test_gt),
        "mAP@0.5": mean_average_precision(preds, test_gt).map50,
        "mAP@0.5 after NMS": mean_average_precision(
            [nms(p) for p in preds], test_gt
        ).map50,
    }
print(f"{'':18s}{'boxes per object':>17}{'mAP@0.5':>9}{'after NMS':>11}")
for name, row in rows.items():
    values = row.values()
    print(
        f"{name:18s}"
        + "".join(f"{v:>{w}.2f}" for v, w in zip(values, (17, 9, 11)))
    )

# %% [markdown]
# This is what the run measures, on each of seeds 0–2 ({ref}`claims-ch08`).
#
# - **Our DETR still benefits from NMS.** It is young (1000 steps): it still puts more
#   than one confident box on an object on average (1.2 to 1.8 boxes per object), and
#   NMS raises its mAP@0.5 by 0.06 to 0.14. So this short run does *not* show that DETR
#   needs no NMS. The paper sees the same in the first decoder layers of its fully
#   trained model, while in the last layers the gain vanishes and NMS even costs a
#   little AP by deleting true positives (its Fig. 4; we look at our layers below).
# - **One-to-one matching is what removes duplicates.** The same network, with the same
#   loss but without the one-to-one matching, puts 2.2 to 3.8 times as many confident
#   boxes on each object as DETR; without NMS its mAP@0.5 collapses (DETR's is 3.5 to
#   4.6 times higher) because every duplicate is a false positive, and NMS multiplies it
#   by 3.2 to 3.9.
#
# So the suppression comes from the matching, not from a post-processing step; how
# completely it works depends on how long DETR has trained.

# %%
# NBVAL_IGNORE_OUTPUT
one, many_row = rows["one-to-one (DETR)"], rows["one-to-many"]
duplicate_ratio = (
    many_row["boxes per object"] / one["boxes per object"]
    if one["boxes per object"]
    else float("nan")
)
claims.check(
    "ch08-one-to-many-duplicates",
    "Trained one-to-many, the same network puts more than 1.5 times as many "
    "confident boxes on each object as DETR",
    duplicate_ratio,
    "> 1.5",
    flagship=True,
)
claims.check(
    "ch08-no-nms-one-to-one-wins",
    "Without NMS, one-to-one matching scores more than twice the mAP@0.5 "
    "of the one-to-many model",
    one["mAP@0.5"] / max(many_row["mAP@0.5"], 1e-3),
    "> 2",
)
claims.check(
    "ch08-one-to-many-needs-nms",
    "NMS more than doubles the mAP@0.5 of the one-to-many model",
    many_row["mAP@0.5 after NMS"] / max(many_row["mAP@0.5"], 1e-3),
    "> 2",
)
claims.check(
    "ch08-detr-nms-gain",
    "After the smoke run's 1000 steps, NMS still raises DETR's mAP@0.5 by "
    "more than 0.03",
    one["mAP@0.5 after NMS"] - one["mAP@0.5"],
    "> 0.03",
)
claims.check(
    "ch08-detr-duplicates",
    "After the smoke run's 1000 steps, DETR still puts more than one "
    "confident box on an object on average",
    one["boxes per object"],
    "> 1",
)
for name, row in rows.items():
    gain = row["mAP@0.5 after NMS"] - row["mAP@0.5"]
    print(f"{name}: mAP@0.5 gain from NMS {gain:+.2f}")
print(
    f"confident boxes per object, one-to-many / one-to-one: "
    f"{duplicate_ratio:.1f}"
)

# %% mystnb={"image": {"alt": "Two test scenes with the confident boxes of the DETR model trained one-to-one and of the copy trained one-to-many, which stacks several boxes on each object."}}
fig, axes = plt.subplots(2, 2, figsize=(5.6, 5.8))
for k, i in enumerate((scene, scene + 1)):
    for ax, (name, preds) in zip(
        axes[k],
        (("one-to-one", predictions), ("one-to-many", preds_many)),
    ):
        p = preds[i]
        keep = p["scores"] > 0.5
        draw(
            ax,
            test_set.images[i],
            p["boxes"][keep].cpu(),
            p["labels"][keep].cpu(),
            color="orange",
        )
        ax.set_title(
            f"scene {i}, {name}:\n{int(keep.sum())} boxes", fontsize=10
        )
fig.suptitle(
    "Confident predictions (score > 0.5) without NMS:\n"
    "one-to-one matching vs one-to-many assignment",
    fontsize=10,
)
plt.show()

# %% [markdown]
# ### NMS decoder layer by layer
#
# The paper makes the point about NMS layer by layer (its Fig. 4): it applies the
# prediction heads to the output of every decoder layer and measures AP with and
# without NMS. In the first layers NMS helps a lot, since a single round of
# self-attention among the queries is not enough to agree on who takes which object;
# by the last layer the gain has vanished and NMS costs a little AP. Our model can be
# read out in the same way, because it is trained with the auxiliary losses
# (`aux_loss=True`, section 3.2 of the paper): the shared heads are trained on every
# decoder layer's output, so each layer's predictions are a detector's output in their
# own right, not an untrained read-out. The smoke model has only two decoder layers, so
# each curve below has two points.

# %% mystnb={"image": {"alt": "mAP at IoU 0.5 and mAP over IoU 0.5 to 0.95 of the predictions read from each decoder layer, without and with NMS; NMS raises both at both layers."}}
# NBVAL_IGNORE_OUTPUT
model.eval()
with torch.no_grad():
    o_all = model(test_set.images.to(device))
layer_heads = o_all["aux"] + [
    {"logits": o_all["logits"], "boxes": o_all["boxes"]}
]  # one per decoder layer
by_layer = {"without NMS": [], "with NMS": []}
for head in layer_heads:
    preds = detr.postprocess(head, image_size=cfg.canvas)
    by_layer["without NMS"].append(mean_average_precision(preds, test_gt))
    by_layer["with NMS"].append(
        mean_average_precision([nms(p) for p in preds], test_gt)
    )
assert (
    abs(by_layer["without NMS"][-1].map50 - result.map50) < 0.01
)  # the last layer is the model's output
print(f"{'':12s}{'layer':>6}{'mAP@0.5':>9}{'mAP@[.5:.95]':>14}")
for name, results in by_layer.items():
    for k, r in enumerate(results):
        print(f"{name:12s}{k + 1:>6}{r.map50:>9.3f}{r.map:>14.3f}")
nms_gain = [
    w.map50 - wo.map50
    for w, wo in zip(by_layer["with NMS"], by_layer["without NMS"])
]
print("mAP@0.5 gain from NMS by layer:", [round(v, 3) for v in nms_gain])

fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
fig.suptitle(
    "Prediction heads on each decoder layer's output, "
    "without and with NMS (IoU 0.5)"
)
layers = np.arange(1, len(layer_heads) + 1)
for ax, metric, label in zip(
    axes, ("map50", "map"), ("mAP@0.5", "mAP@[.5:.95]")
):
    for (name, results), style in zip(by_layer.items(), ("o-", "s--")):
        ax.plot(
            layers, [getattr(r, metric) for r in results], style, label=name
        )
    ax.set(
        xlabel="decoder layer",
        ylabel=label,
        xticks=layers,
        ylim=(0, None),
        title=f"{label} by decoder layer",
    )
    ax.legend(loc="lower right")
plt.show()

# %% [markdown]
# On seeds 0–2 ({ref}`claims-ch08`) NMS raises mAP@0.5 at both layers, by 0.06 to 0.13
# at the first and 0.06 to 0.14 at the last, and the last layer's gain is never more
# than 0.03 below the first's (last minus first is $-0.001$ to $+0.015$). The second
# layer's mAP@0.5 is also within 0.05 of the first's (they differ by 0.003 to 0.024). So
# the paper's pattern, where the later layers make NMS unnecessary, does not appear in
# this run: after 1000 steps and with two decoder layers, the second layer does not
# remove the duplicates that the first leaves. That fits the picture of the previous
# section: duplicate removal is something the matching *teaches*, and our short training
# has taught it only in part.

# %%
# NBVAL_IGNORE_OUTPUT
claims.check(
    "ch08-nms-gain-first-layer",
    "NMS raises the mAP@0.5 of the first decoder layer's predictions by more "
    "than 0.03",
    nms_gain[0],
    "> 0.03",
)
claims.check(
    "ch08-nms-gain-not-shrinking",
    "The mAP@0.5 gain from NMS at the last decoder layer is at most 0.03 "
    "below the gain at the first",
    nms_gain[-1] - nms_gain[0],
    "> -0.03",
)
layer_ap_change = (
    by_layer["without NMS"][-1].map50 - by_layer["without NMS"][0].map50
)
claims.check(
    "ch08-layers-similar-map",
    "Without NMS the last decoder layer's mAP@0.5 is within 0.05 of the first "
    "layer's",
    abs(layer_ap_change),
    "< 0.05",
)
print(
    f"NMS gain, last minus first layer: {nms_gain[-1] - nms_gain[0]:+.3f}\n"
    f"mAP@0.5 change from the first to the last layer: {layer_ap_change:+.3f}"
)

# %% [markdown]
# ## Long training, and what came after
#
# DETR is known for needing long training. The paper trains its models for 300 and
# 500 epochs on COCO, several times longer than the Faster R-CNN baselines it
# compares with, and reports that DETR is weaker on small objects
# {cite}`carion2020end`, which Zhu et al. trace to its attention over a single
# low-resolution feature map {cite}`zhu2021deformable`. The curves below cannot test
# the first point. What they show is how our run starts and that it has not
# finished: the mAP@0.5 on the curve's test scenes is still below 0.05 after the
# first 100 steps (below 0.03 on seeds 0–2) and still climbing when the smoke run
# stops (it gains 0.14 to 0.29 over the second half of training on seeds 0–2,
# {ref}`claims-ch08`). Whether that is slow *for a detector* would need a baseline
# trained for the same steps on the same scenes, such as an anchor-based detector
# with NMS, and this chapter has none. The usual explanations of DETR's long
# training point to its mechanism: the queries must first spread over the image, and
# the matching is unstable while predictions are poor (a query matched to one object
# at one step may be matched to another at the next).

# %% mystnb={"image": {"alt": "The training loss falling over the training steps, and mAP at IoU 0.5 on test scenes rising from zero and still climbing at the end, far above the image-blind baseline."}}
half = len(history["step"]) // 2
claims.check(
    "ch08-curve-slow-start",
    f"After the first {history['step'][1]} training steps mAP@0.5 on the "
    "curve's test scenes is still below 0.05",
    history["map50"][1],
    "< 0.05",
)
claims.check(
    "ch08-curve-still-rising",
    "mAP@0.5 on the curve's test scenes is higher at the end of training than "
    "halfway through",
    history["map50"][-1] - history["map50"][half],
    "> 0",
)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ax[0].plot(history["step"][1:], history["loss"][1:], "o-")
ax[0].set(
    title="Training loss (final + auxiliary layers)",
    xlabel="training step",
    ylabel="set loss",
)
ax[1].plot(history["step"], history["map50"], "o-", color="C2", label="DETR")
ax[1].axhline(
    best_baseline, color="0.5", ls="--", label="best image-blind baseline"
)
ax[1].set(
    title=f"mAP@0.5 on {cfg.n_curve} test scenes",
    xlabel="training step",
    ylabel="mAP@0.5",
    ylim=(0, 1),
)
ax[1].legend()
plt.show()

# %% [markdown]
# Later work attacked exactly these points. **Deformable DETR** {cite}`zhu2021deformable`
# replaces dense attention by a few sampled points around a reference point per query,
# over several feature scales: cheaper, better on small objects, and about ten times
# faster to train. **Conditional DETR** {cite}`meng2021conditional` and **DAB-DETR**
# {cite}`liu2022dab` give each query an explicit spatial part (a reference point, then
# an anchor box refined layer by layer), so a query knows where to look from the
# start. **DN-DETR** {cite}`li2022dn` adds noised copies of the ground-truth boxes as
# extra queries that must be denoised, which sidesteps the unstable matching early in
# training.
#
# **Going further: panoptic DETR.** The DETR paper also extends the model to
# panoptic segmentation, which labels every pixel either as part of a countable
# object ("things": a person, a car) or as amorphous background ("stuff": sky, road)
# {cite}`carion2020end`. A mask head sits on top of the decoder outputs. For each
# object embedding, a multi-head attention layer computes its attention maps over
# the encoder output, one small map per head; an FPN-style CNN upsamples these maps,
# adding backbone features of higher resolution, into one mask logit per object; and
# each pixel goes to the mask with the highest logit, a per-pixel argmax, so the
# masks never overlap. Things and stuff are handled in the same way: DETR is trained
# to predict boxes around both, with the same set loss, and the mask head learns a
# mask for every matched query.

# %% [markdown]
# ```{admonition} Going further: the full profile
# :class: tip
# `SEQLIB_PROFILE=full` uses 64×64 canvases with up to four objects of all ten
# classes, 30 000 training scenes, 20 queries and a wider 4+4-layer model, trained for
# 30 000 steps on a GPU (sizes in `seqlib/profiles.py`). Run it on Colab through the
# launch button, or locally with
# `SEQLIB_PROFILE=full jupyter nbconvert --to notebook --execute notebooks/08_detr.ipynb`.
# No full-profile run of this chapter has been recorded yet; when one is, its numbers
# will be on the {doc}`../book/results` page.
# ```

# %% [markdown]
# ## Exercises
#
# :::{exercise} Generalised IoU
# :label: ex08-giou
#
# Implement `giou(a, b)` for two sets of corner boxes `a` (N, 4) and `b` (M, 4),
# returning the (N, M) matrix of {eq}`eq-giou`, with tensor operations only (no
# loops, no seqlib, no torchvision). Check it by hand on two unit squares that touch at one
# edge (what is their GIoU?), then with the check cell. (depth: implement; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex08-giou
# :class: dropdown
# ```

# %% tags=["solution"]
def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise generalised IoU of corner boxes a (N, 4) and b (M, 4) -> (N,
    M)."""
    # BEGIN SOLUTION
    # HINT: broadcast a[:, None] against b[None]; clamp the overlap at 0
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # (N,)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # (M,)
    wh = (
        torch.minimum(a[:, None, 2:], b[None, :, 2:])
        - torch.maximum(a[:, None, :2], b[None, :, :2])
    ).clamp(min=0)  # (N, M, 2)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    hull_wh = torch.maximum(a[:, None, 2:], b[None, :, 2:]) - torch.minimum(
        a[:, None, :2], b[None, :, :2]
    )
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return inter / union - (hull - union) / hull
    # END SOLUTION


# %% [markdown] tags=["solution"]
# Two unit squares sharing an edge have intersection 0, union 2 and an enclosing
# box of area 2, so IoU = 0 and GIoU = 0 - 0/2 = 0: GIoU only becomes negative when
# the enclosing box has empty space.

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex08-giou" forbid=["seqlib", "torchvision"] tags=["check"]
from seqlib.exercises import check_close, check_shape

sq = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
check_close(
    giou(sq, torch.tensor([[1.0, 1.0, 3.0, 3.0]])),
    torch.tensor([[1 / 7 - 2 / 9]]),
    atol=1e-6,
    name="giou of two 2x2 squares overlapping in a 1x1 square (IoU 1/7 minus "
    "the empty 2/9 of the enclosing box)",
)
check_close(
    giou(sq, torch.tensor([[2.0, 0.0, 4.0, 2.0]])),
    torch.zeros(1, 1),
    atol=1e-6,
    name="giou of two squares touching at an edge",
)
check_close(
    giou(sq, torch.tensor([[3.0, 0.0, 5.0, 2.0]])),
    torch.tensor([[-0.2]]),
    atol=1e-6,
    name="giou of two disjoint squares (the intersection's width and height "
    "must be clamped at 0)",
)
check_close(
    giou(sq, torch.tensor([[3.0, 3.0, 5.0, 5.0]])),
    torch.tensor([[-17 / 25]]),
    atol=1e-6,
    name="giou of two squares apart in both directions (intersection 0, not "
    "a product of two negatives)",
)
gen = torch.Generator().manual_seed(seed_for(0))
corners = torch.rand(7, 2, generator=gen)
boxes_a = torch.cat(
    [corners, corners + torch.rand(7, 2, generator=gen) + 0.01], 1
)
corners = torch.rand(5, 2, generator=gen)
boxes_b = torch.cat(
    [corners, corners + torch.rand(5, 2, generator=gen) + 0.01], 1
)
check_shape(giou(boxes_a, boxes_b), (7, 5), name="giou(a, b)", letters="N, M")
check_close(
    giou(boxes_a, boxes_b),
    bx.generalized_box_iou(boxes_a, boxes_b),
    atol=1e-5,
    name="giou of random boxes",
)

# %% [markdown]
# :::{exercise} The matching cost of one image
# :label: ex08-cost
#
# Implement `image_cost(logits, boxes, labels, target_boxes)` for a single image:
# `logits` (Q, C+1), `boxes` (Q, 4) and `target_boxes` (K, 4) in normalised
# $(c_x, c_y, w, h)$, `labels` (K,). Return the (Q, K) cost of {eq}`eq-detr-match`
# with weights 1, 5 and 2. You may use
# {py:func}`seqlib.boxes.generalized_box_iou` and
# {py:func}`~seqlib.boxes.box_cxcywh_to_xyxy`, but not {py:mod}`seqlib.matcher`.
# The check compares your matrix with the batched one and the assignments that
# `linear_sum_assignment` finds on both. (depth: implement; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex08-cost
# :class: dropdown
# ```

# %% tags=["solution"]
def image_cost(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    target_boxes: torch.Tensor,
) -> torch.Tensor:
    """Matching cost (Q, K) of one image's Q predictions against its K
    objects."""
    # BEGIN SOLUTION
    # HINT: -softmax[:, labels] + 5 * cdist(p=1) - 2 * GIoU of the corners
    prob = logits.softmax(-1)  # (Q, C+1)
    l1 = torch.cdist(boxes, target_boxes, p=1)  # (Q, K)
    g = bx.generalized_box_iou(
        bx.box_cxcywh_to_xyxy(boxes), bx.box_cxcywh_to_xyxy(target_boxes)
    )  # (Q, K)
    return -prob[:, labels] + 5 * l1 - 2 * g
    # END SOLUTION


# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex08-cost" forbid=["seqlib.matcher"] tags=["check"]
from seqlib.exercises import check_close, check_true

gen = torch.Generator().manual_seed(seed_for(2))
probe_logits = torch.randn(
    3, 11, generator=gen
)  # Q = 3 queries, 10 classes + "no object"
probe_box = torch.tensor([[0.5, 0.4, 0.3, 0.2]])  # one object, cxcywh
check_close(
    image_cost(
        probe_logits, probe_box.expand(3, 4), torch.tensor([4]), probe_box
    ),
    -probe_logits.softmax(-1)[:, 4:5] - 2,
    atol=1e-5,
    name="cost when every predicted box equals the object's box (it should "
    "be -softmax(logits)[q, label] - 2: L1 is 0, GIoU is 1)",
)
probe_boxes = torch.tensor(
    [[0.5, 0.5, 0.2, 0.2], [0.3, 0.6, 0.4, 0.1], [0.7, 0.3, 0.1, 0.3]]
)
probe_targets = torch.tensor([[0.45, 0.5, 0.3, 0.2], [0.6, 0.4, 0.2, 0.4]])
check_close(
    image_cost(
        torch.zeros(3, 11), probe_boxes, torch.tensor([1, 2]), probe_targets
    ),
    -1 / 11
    + 5 * torch.cdist(probe_boxes, probe_targets, p=1)
    - 2
    * bx.generalized_box_iou(
        bx.box_cxcywh_to_xyxy(probe_boxes),
        bx.box_cxcywh_to_xyxy(probe_targets),
    ),
    atol=1e-5,
    name="cost with uniform class scores (it should be 5 · L1 of the "
    "(cx, cy, w, h) boxes - 2 · GIoU of their corners - 1/11)",
)

with torch.no_grad():
    o_check = model(test_set.images[:4].to(device))
tgts = [
    {
        "labels": test_set.labels[i],
        "boxes": bx.box_xyxy_to_cxcywh(test_set.boxes[i] / cfg.canvas),
    }
    for i in range(4)
]
batched = matcher.matching_cost(
    o_check["logits"].cpu(), o_check["boxes"].cpu(), tgts
)
columns = np.cumsum([0] + [len(t["labels"]) for t in tgts])
for i, t in enumerate(tgts):
    mine = image_cost(
        o_check["logits"][i].cpu(),
        o_check["boxes"][i].cpu(),
        t["labels"],
        t["boxes"],
    )
    check_close(
        mine,
        batched[i, :, columns[i] : columns[i + 1]],
        atol=1e-5,
        name=f"cost of test scene {i}",
    )
    yours = linear_sum_assignment(mine.numpy())[0].tolist()
    reference = matcher.hungarian_match(batched, np.diff(columns).tolist())[i][
        0
    ].tolist()
    check_true(
        yours == reference,
        f"the assignment on your cost of scene {i} should equal the batched "
        "matcher's",
    )

# %% [markdown]
# :::{exercise} How much weight for "no object"?
# :label: ex08-eos
#
# With $Q = 10$ queries and scenes of 1–3 objects (2 on average), what fraction of the
# cross-entropy terms have the target $\varnothing$? With $w_\varnothing = 0.1$, what
# share of the total class weight do they get? Give both for any $Q$, mean number of
# objects and $w_\varnothing$ as `no_object_shares(Q, objects, w)`, which returns the pair
# (fraction of terms, share of weight); the check tests it. Predict what the detector does with
# $w_\varnothing = 0$ and with $w_\varnothing = 1$, in terms of recall, false positives
# and mAP. (depth: derive; about 10 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex08-eos
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# On average 8 of 10 queries have target $\varnothing$: 80 % of the terms. With weight
# 0.1 they carry $8 \cdot 0.1 / (8 \cdot 0.1 + 2) \approx 29\,\%$ of the total weight, so
# the two matched queries dominate. What to expect (a prediction from the loss; the
# notebook does not train these variants): with $w_\varnothing = 0$ nothing ever teaches
# a query to say "no object": unmatched queries keep whatever class they drift to, every
# query fires with some confidence, and duplicates and false positives appear (mAP falls
# through precision). With $w_\varnothing = 1$ the easy answer "no object" is right 80 %
# of the time; the model becomes shy, scores of true objects drop and some objects are
# missed (recall falls). The paper's 0.1 balances the two.

# %% tags=["solution"]
def no_object_shares(Q: int, objects: float, w: float) -> tuple[float, float]:
    """(fraction of the class terms whose target is "no object", their share of
    the total class weight)."""
    # BEGIN SOLUTION
    # HINT: Q - objects terms weigh w each, the objects' terms 1 each
    empty = Q - objects
    return empty / Q, empty * w / (empty * w + objects)
    # END SOLUTION


# %% tags=["solution"]
print("Q = 10, 2 objects, w = 0.1:", no_object_shares(10, 2, 0.1))

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex08-eos" tags=["check"]
from seqlib.exercises import check_close

for Q_, counts, w_ in (
    (10, [1, 2, 3], 0.1),
    (10, [1, 2, 3], 1.0),
    (20, [2, 3, 4, 3], 0.5),
):
    targets_ = torch.cat(
        [torch.where(torch.arange(Q_) < k, 0, 10) for k in counts]
    )  # class 10 = "no object"
    weights_ = torch.where(
        targets_ == 10, w_, 1.0
    )  # cross-entropy class weights
    counted = (
        (targets_ == 10).float().mean(),
        weights_[targets_ == 10].sum() / weights_.sum(),
    )
    mean_objects = sum(counts) / len(counts)
    check_close(
        torch.tensor(
            no_object_shares(Q_, mean_objects, w_), dtype=torch.float32
        ),
        torch.stack(counted),
        atol=1e-4,
        name=f"no_object_shares({Q_}, {mean_objects}, {w_}) = "
        "(fraction of terms, share of weight)",
    )

# %% [markdown]
# :::{exercise} Auxiliary decoding losses
# :label: ex08-aux
#
# Train a second model with `aux_loss=False` (everything else as in this chapter,
# same seed and steps) and plot its mAP@0.5 curve next to the one above. Then explain
# why supervising every decoder layer can speed up training, and why the layers can
# share one set of heads. (depth: experiment; about 25 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex08-aux
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# Build the model with `detr.detr_tiny(10, ..., aux_loss=False)` and rerun the training
# cell. Without auxiliary losses only the last layer receives a direct signal; the
# gradient reaching the first decoder layer passes through the others, and the
# matching of the first layer's queries is never enforced. With them, each layer must
# already produce a usable set of boxes, so each layer's output is a refinement of the
# previous one's, which is what the shared heads (and the shared final norm) assume:
# all layers speak the same "language" of class and box. What to expect (a prediction:
# the notebook does not run this experiment): without auxiliary losses the curve
# should rise later, and on a budget as small as ours the difference may be only a
# few points of mAP, comparable to what another seed changes, so compare on two or
# three seeds (`SEQLIB_SEED`) before concluding.

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# :::{exercise} Does NMS help DETR?
# :label: ex08-nms
#
# Apply the `nms` function of this chapter to DETR's predictions with IoU thresholds
# 0.3, 0.5, 0.7 and 0.9, and report mAP@0.5 and mAP@[.5:.95] each time. When can NMS
# *hurt* a detector that has no duplicates? (depth: experiment; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex08-nms
# :class: dropdown
# ```

# %% tags=["solution"]
# NBVAL_IGNORE_OUTPUT
for thr in (0.3, 0.5, 0.7, 0.9):
    res = mean_average_precision([nms(p, thr) for p in predictions], test_gt)
    print(
        f"NMS at IoU {thr}: mAP@0.5 {res.map50:.3f}  "
        f"mAP@[.5:.95] {res.map:.3f}"
    )
print(
    f"no NMS:        mAP@0.5 {result.map50:.3f}  mAP@[.5:.95] {result.map:.3f}"
)

# %% [markdown] tags=["solution"]
# After our short training NMS still helps, because some duplicates survive: at
# threshold 0.5 it raises mAP@0.5 on each of seeds 0–2 (claim `ch08-detr-nms-gain`).
# A higher threshold suppresses only boxes that overlap more, so its gain should
# shrink towards zero as the threshold approaches 1; compare the rows printed
# above. For the last decoder layers of the fully trained DETR the paper finds that
# NMS no longer helps and even costs a little AP. NMS can only delete boxes, so it
# hurts when two *different* objects of the same class overlap more than the
# threshold (crowds), and, with a low threshold, when a confident wrong box
# suppresses a slightly less confident right one. Our scenes cannot show the first:
# their objects do not overlap and belong to distinct classes, and this NMS compares
# only boxes of the same class. What the rows above show is duplicate removal: the
# boxes NMS deletes here are duplicates, boxes of one class that overlap a
# higher-scored box of that class already kept, and of the two kinds of harm only
# the second can happen.

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```
