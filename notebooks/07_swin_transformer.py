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
# # The Swin Transformer
#
# The ViT of chapter 6 has two properties that make it awkward as a general
# vision backbone. It is **isotropic**: every block sees the same $N$ tokens at
# the same width, whereas detection and segmentation want a pyramid of feature
# maps, fine and cheap at the bottom, coarse and rich at the top, like a CNN's.
# And global attention over $N = hw$ tokens costs time and memory that grow with
# $(hw)^2$, which rules out small patches on large images: a 224×224 image cut
# into 4×4 patches gives a 56×56 grid and an attention matrix with
# $56^4 \approx 9.8$ million entries per head and layer. Liu et al.'s Swin
# Transformer {cite}`liu2021swin` fixes both: attention is computed inside small
# $M\times M$ windows, consecutive blocks **shift** the windows so information
# crosses their borders, positions enter as a learned **relative bias**, and
# **patch merging** halves the grid between stages. This chapter builds each
# piece, draws it, measures its cost against the paper's formulas, and trains a
# small Swin beside a ViT of similar size.
#
# **Learning goals.** After this chapter you can
#
# - partition a token grid into windows and back, and say what each window's
#   attention can and cannot see;
# - derive $\Omega(\text{MSA}) = 4hwC^2 + 2(hw)^2C$ and
#   $\Omega(\text{W-MSA}) = 4hwC^2 + 2M^2hwC$, measure how the time and memory
#   of each grow with the number of tokens, and say which part of a timing
#   a formula predicts and which part it does not;
# - explain the cyclic shift and build the attention mask that keeps it correct;
# - index a $(2M-1)^2$ table of relative position biases;
# - follow the stages $C\times\frac H4\times\frac W4 \to 2C\times\frac H8\times\frac W8
#   \to 4C\times\frac H{16}\times\frac W{16} \to 8C\times\frac H{32}\times\frac W{32}$.

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

device = start("ch07")

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import ListedColormap

from seqlib import attention, claims, layers, profiles, swin, train, vit
from seqlib.attention import MultiHeadAttention
from seqlib.data import (
    CIFAR10_CLASSES,
    FASHION_CLASSES,
    load_cifar10,
    load_fashion_mnist,
    random_crop_flip,
)
from seqlib.notebook import show
from seqlib.train import seed_for

cfg = profiles.sizes("ch07")
print(cfg)

# %% [markdown]
# ## A hierarchy of stages
#
# Swin starts like ViT, with a patch embedding, but with 4×4 patches. The first
# stage works on the $\frac H4 \times \frac W4$ grid at width $C$. Between stages
# a **patch merging** layer concatenates each 2×2 group of neighbouring tokens
# ($4C$ numbers), normalises them and projects them to $2C$: the grid halves, the
# width doubles, exactly as a strided convolution would do in a CNN.

# %%
show(
    swin.PatchMerging,
    "Patch merging: each 2×2 group of tokens concatenated, normalised and "
    "projected from 4C to 2C",
)

# %% [markdown]
# Swin-T, the smallest model of the paper ($C = 96$, depths 2, 2, 6, 2,
# $M = 7$), built from this module, has the four feature maps of the paper on a
# 224×224 image, and exactly the 28,288,354 parameters of the official model.
# Its classification head follows the official order too: the final LayerNorm
# is applied to every token of the last stage, then the tokens are averaged,
# then the linear head maps the average to class scores. The order matters even
# though the parameters would be the same either way: each token is normalised
# with its own mean and variance, so the average of the normalised tokens is
# not the normalised average.

# %%
torch.manual_seed(seed_for(0))
swin_t = swin.SwinTransformer(
    swin.SwinConfig(
        image_size=224,
        patch_size=4,
        in_channels=3,
        num_classes=1000,
        dim=96,
        depths=(2, 2, 6, 2),
        heads=(3, 6, 12, 24),
        window=7,
        mlp_ratio=4.0,
    )
)
with torch.no_grad():
    pyramid = swin_t.features(torch.rand(1, 3, 224, 224))
for i, fmap in enumerate(pyramid, start=1):
    print(
        f"stage {i}: {tuple(fmap.shape[1:])}  = {fmap.shape[1] // 96}C x "
        f"H/{224 // fmap.shape[2]} x W/{224 // fmap.shape[3]}"
    )
print(f"parameters: {layers.count_parameters(swin_t):,}")
assert [tuple(f.shape[1:]) for f in pyramid] == [
    (96, 56, 56),
    (192, 28, 28),
    (384, 14, 14),
    (768, 7, 7),
]
assert layers.count_parameters(swin_t) == 28_288_354
del swin_t, pyramid

# %% [markdown]
# ## Attention inside windows
#
# Inside a stage, the grid of $h \times w$ tokens is cut into non-overlapping
# windows of $M\times M$ tokens, and self-attention runs in each window
# separately. This is the image version of chapter 3's choice between global and
# local attention. ViT's attention is global: each output position attends to
# all $hw$ positions of the grid. Window attention is local: each output position
# attends only to a neighbourhood, the $M\times M$ window that contains it. Unlike
# Luong's window, which is centred on a predicted position, Swin's windows are
# fixed tiles: a token at a window's edge sees nothing beyond it in that block,
# which the shifted windows below address. The windows of all images form one
# batch, so the attention layer is the chapter-5
# {py:class}`~seqlib.attention.MultiHeadAttention` applied to
# $B \cdot \frac{hw}{M^2}$ short sequences of $M^2$ tokens. Two small pure
# functions of {py:mod}`seqlib.swin` do the regrouping,
# {py:func}`~seqlib.swin.window_partition` and
# {py:func}`~seqlib.swin.window_reverse`:

# %%
show(
    swin.window_partition,
    "The grid cut into windows: one rearrange, after checking that M divides "
    "H and W",
)
show(
    swin.window_reverse,
    "The inverse: the windows put back into the (B, H, W, C) grid",
)

# %%
x = torch.randn(2, 8, 8, 16)  # (B, H, W, C)
windows = swin.window_partition(x, 4)  # (B·nW, M², C)
print("grid", tuple(x.shape), "-> windows", tuple(windows.shape))
identity = torch.equal(swin.window_reverse(windows, 4, 8, 8), x)
print("window_reverse(window_partition(x)) == x:", identity)
assert identity and windows.shape == (2 * 4, 16, 16)

# %% [markdown]
# ### What it costs
#
# Count multiply-adds for one layer on an $h\times w$ grid of width $C$. The
# projections to queries, keys, values and the output are four $C\times C$
# matrices applied to $hw$ tokens: $4hwC^2$. Global attention then forms
# $QK^\top$, $(hw)^2$ dot products of length $C$, and the weighted sum of the
# values, another $(hw)^2C$. In windows, each token meets only the $M^2$ tokens of
# its own window, so $(hw)^2$ becomes $M^2\,hw$:
#
# $$
# \Omega(\text{MSA}) = 4hwC^2 + 2(hw)^2C, \qquad
# \Omega(\text{W-MSA}) = 4hwC^2 + 2M^2hwC .
# $$ (eq-swin-cost)
#
# For a fixed window size the second is **linear** in the number of tokens; the
# total size of all attention matrices drops from $(hw)^2$ to
# $M^4 \cdot \frac{hw}{M^2} = M^2hw$. At Swin-T's first stage ($hw = 56^2$,
# $C = 96$, $M = 7$) that is about 14 times fewer operations:

# %%
show(swin.msa_cost)
print(
    "56x56 grid, C=96, M=7: "
    f"global {swin.msa_cost(56, 56, 96) / 1e9:.2f} G multiply-adds, "
    f"windows {swin.window_msa_cost(56, 56, 96, 7) / 1e9:.2f} G"
)

# %% [markdown]
# Now measure it. We time one global attention layer and one window attention
# layer (including the partition and its reverse) on grids of
# $M\times M$ up to $8M\times 8M$ tokens, and record the memory each materialises
# for its attention weights (the tensors that
# {py:func}`attention.record <seqlib.attention.record>` collects).
# On a GPU the notebook also reads the peak memory the allocator saw. The
# multiply-adds and the memory are exact and the same on every machine; the
# times are not, so they get a table of their own.

# %%
M, C_b, h_b = cfg.bench_window, cfg.bench_dim, cfg.bench_heads
torch.manual_seed(seed_for(0))
global_attn = MultiHeadAttention(C_b, h_b).to(device).eval()
window_attn = swin.WindowAttention(C_b, h_b, M).to(device).eval()


def run_global(tokens, side):
    return global_attn(tokens)  # (B, hw, C)


def run_window(tokens, side):
    grid_x = tokens.view(-1, side, side, C_b)  # (B, h, w, C)
    out = window_attn(swin.window_partition(grid_x, M))  # (B·nW, M², C)
    return swin.window_reverse(out, M, side, side)  # (B, h, w, C)


def peak_bytes(fn, *args):
    """Peak GPU memory of one call beyond what was allocated before it (CUDA
    only)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn(*args)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


# a dry run times the two smallest grids only: on a CPU the largest global
# attention matrices take minutes
bench_grids = cfg.bench_grids[:2] if profiles.dry_run() else cfg.bench_grids
bench = []
with torch.no_grad():
    for k in bench_grids:
        side = k * M
        tokens = torch.randn(
            cfg.bench_batch, side * side, C_b, device=device
        )  # (B, hw, C)
        one = tokens[:1]  # memory: one image
        with attention.record() as recorded:
            global_attn(one)
            window_attn(swin.window_partition(one.view(1, side, side, C_b), M))
        w_global, w_window = recorded  # (1, h, hw, hw), (nW, h, M², M²)
        timing_global = train.benchmark(
            lambda: run_global(tokens, side),
            repeats=cfg.bench_repeats,
            device=device,
        )
        timing_window = train.benchmark(
            lambda: run_window(tokens, side),
            repeats=cfg.bench_repeats,
            device=device,
        )
        bench.append(
            {
                "side": side,
                "hw": side * side,
                "timing_global": timing_global,
                "timing_window": timing_window,
                # the claims compare the fastest repeat of each: the least
                # disturbed by other processes on a shared machine, where a
                # median still carries their load
                "t_global": timing_global.min,
                "t_window": timing_window.min,
                "mem_global": w_global.numel() * w_global.element_size(),
                "mem_window": w_window.numel() * w_window.element_size(),
                "peak_global": peak_bytes(run_global, tokens, side),
                "peak_window": peak_bytes(run_window, tokens, side),
                "omega_global": swin.msa_cost(side, side, C_b),
                "omega_window": swin.window_msa_cost(side, side, C_b, M),
            }
        )
        del w_global, w_window
hw = np.array([b["hw"] for b in bench])
t_global, t_window = (
    np.array([b["t_global"] for b in bench]),
    np.array([b["t_window"] for b in bench]),
)
ratio = t_global / t_window

# %%
print(
    f"C = {C_b}, heads = {h_b}, M = {M}; multiply-adds Ω (millions) and MB "
    "of\nattention weights per image"
)
print(
    f"{'grid':>8}{'tokens':>8}{'Ω MSA (M)':>11}{'Ω W-MSA (M)':>13}"
    f"{'Ω ratio':>9}{'MB global':>11}{'MB window':>11}"
)
for b in bench:
    print(
        f"{b['side']:>4}x{b['side']:<3}{b['hw']:>8}"
        f"{b['omega_global'] / 1e6:>11.1f}{b['omega_window'] / 1e6:>13.1f}"
        f"{b['omega_global'] / b['omega_window']:>9.1f}"
        f"{b['mem_global'] / 2**20:>11.2f}{b['mem_window'] / 2**20:>11.2f}"
    )

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"device: {device}; time for a batch of {cfg.bench_batch}: median of "
    f"{cfg.bench_repeats} runs and their\nspread (max − min) / median; the "
    "ratio is of the fastest runs (these numbers\ndiffer from machine to "
    "machine and from run to run)"
)
print(
    f"{'grid':>8}{'tokens':>8}{'global ms':>11}{'spread':>8}"
    f"{'window ms':>11}{'spread':>8}{'ratio':>7}"
)
for b, r in zip(bench, ratio):
    tg, tw = b["timing_global"], b["timing_window"]
    print(
        f"{b['side']:>4}x{b['side']:<3}{b['hw']:>8}"
        f"{1e3 * tg.median:>11.2f}{tg.spread:>8.0%}"
        f"{1e3 * tw.median:>11.2f}{tw.spread:>8.0%}{r:>7.1f}"
    )
if device.type == "cuda":
    print(
        "peak GPU MB, global:",
        [round(b["peak_global"] / 2**20, 1) for b in bench],
    )
    print(
        "peak GPU MB, window:",
        [round(b["peak_window"] / 2**20, 1) for b in bench],
    )

# %% [markdown]
# To lay the formulas over the measurements, convert multiply-adds to seconds
# with **one** throughput, fitted to the largest global measurement, and use it
# for both curves. The memory panel needs no fit: the weights are
# $h\,(hw)^2$ and $h\,M^2hw$ floats of 4 bytes.

# %% mystnb={"image": {"alt": "Log-log plots of the time and of the attention-weight memory of one global and one window attention layer against the number of tokens, with the cost formulas overlaid, and the ratio of their times growing with the number of tokens."}}
# NBVAL_IGNORE_OUTPUT
omega_g = np.array([b["omega_global"] for b in bench], dtype=float)
omega_w = np.array([b["omega_window"] for b in bench], dtype=float)
per_second = omega_g[-1] / t_global[-1]  # multiply-adds per second
fig, axes = plt.subplot_mosaic(
    [["time", "memory"], ["ratio", "ratio"]], figsize=(7, 6.6)
)
ax = axes["time"]
ax.loglog(hw, 1e3 * t_global, "o", color="C3", label="global MSA, measured")
ax.loglog(hw, 1e3 * t_window, "s", color="C0", label="window W-MSA, measured")
ax.loglog(
    hw,
    1e3 * omega_g / per_second,
    "-",
    color="C3",
    alpha=0.6,
    label="Ω(MSA) / throughput",
)
ax.loglog(
    hw,
    1e3 * omega_w / per_second,
    "-",
    color="C0",
    alpha=0.6,
    label="Ω(W-MSA) / throughput",
)
ax.set(
    title=f"Time of one layer (C={C_b}, M={M})",
    xlabel="tokens hw",
    ylabel="time (ms)",
)
ax.legend(fontsize=8, loc="upper left")
ax = axes["memory"]
mem_g = np.array([b["mem_global"] for b in bench]) / 2**20
mem_w = np.array([b["mem_window"] for b in bench]) / 2**20
ax.loglog(hw, mem_g, "o-", color="C3", label="global: h·(hw)² floats")
ax.loglog(hw, mem_w, "s-", color="C0", label="windows: h·M²·hw floats")
ax.set(title="Attention weights", xlabel="tokens hw", ylabel="MiB")
ax.legend(fontsize=8, loc="upper left")
ax = axes["ratio"]
ax.semilogx(hw, ratio, "o-", color="C2", label="measured time ratio")
ax.semilogx(hw, omega_g / omega_w, "--", color="k", label="Ω(MSA) / Ω(W-MSA)")
ax.set(
    title="Global attention's time over window attention's",
    xlabel="tokens hw",
    ylabel="ratio",
)
ax.legend(fontsize=8, loc="upper left")
plt.show()

# %%
exact_memory = bool(
    np.allclose(mem_g / mem_g[0], (hw / hw[0]) ** 2)
    and np.allclose(mem_w / mem_w[0], hw / hw[0])
)
print("attention memory: global grows as (hw)^2, windows as hw:", exact_memory)
assert exact_memory
# time ∝ (hw)^k between the smallest and the largest grid: the effective
# exponent k of each layer
span = np.log(hw[-1] / hw[0])
k_global, k_window = (
    np.log(t_global[-1] / t_global[0]) / span,
    np.log(t_window[-1] / t_window[0]) / span,
)
faster = claims.check(
    "ch07-window-faster",
    f"On the largest grid ({hw[-1]} tokens) window attention is more than "
    "3 times faster than global attention",
    ratio[-1],
    "> 3",
    flagship=True,
)
claims.check(
    "ch07-window-overhead",
    f"On the smallest grid (one window of {hw[0]} tokens) window attention is "
    "slower than global attention: partition, reverse and bias cost extra "
    "time",
    ratio[0],
    "< 1",
)
grows = claims.check(
    "ch07-ratio-grows",
    "The time ratio global/window on the largest grid is more than 5 times "
    "the ratio on the smallest",
    ratio[-1] / ratio[0],
    "> 5",
)
claims.check(
    "ch07-global-exponent",
    "Global attention's time grows faster than the number of tokens: "
    "time ∝ (hw)^k with k above 1.3 between the smallest and the largest grid",
    k_global,
    "> 1.3",
)
claims.check(
    "ch07-window-exponent",
    "Window attention's time grows no faster than about linearly: "
    "time ∝ (hw)^k with k below 1.3 between the smallest and the largest grid",
    k_window,
    "< 1.3",
)
print(
    "window attention is faster on the largest grid, and the ratio grows "
    "with hw:",
    faster.held and grows.held,
)

# %% [markdown]
# The memory panel is exact, on any machine: a quadratic and a linear law. The
# times are measurements, and they say less than the formulas. At the smallest
# grid there is one window and the two layers do the same arithmetic, yet window
# attention is the slower one (it took 1.7–1.8 times as long in the three runs
# of seeds 0–2 on one CPU, {ref}`claims-ch07`): the partition, its reverse and
# the gathered bias cost time that {eq}`eq-swin-cost` does not count. Such
# fixed costs dominate both layers on small grids and flatten both curves there.
# Summarised as time $\propto (hw)^k$ between the smallest and the largest grid,
# the same three runs gave $k$ = 1.49 for global attention, well above 1
# but short of the 2 of its formula, and $k$ = 0.62–0.63 for window attention,
# below 1 because of those fixed costs. Window time is therefore "linear" only
# in a loose sense: its per-token cost is not constant from grid to grid. Its
# attention weights, $h\,M^2hw$ floats, grow with the grid too, and a working
# set that outgrows a CPU cache costs more per element, so between two
# neighbouring grids its time can grow faster than the number of tokens. What
# held on every run is the shape of the comparison: on the largest grid window
# attention was 20–21 times faster, and the ratio global/window there was
# 35–37 times its value on the smallest grid. Over the whole range the ratio
# grows with the number of tokens, as {eq}`eq-swin-cost` predicts, though
# not always from one grid to the next, since every time is a single noisy
# measurement. Expect other factors on your machine, and on a GPU, where layers
# this small mostly measure kernel-launch overheads.
#
# ## Shifted windows
#
# Windows make attention cheap but blind: a token never sees anything outside its
# window, however many blocks are stacked. Swin therefore alternates two
# partitions. Block $l$ uses the regular windows; block $l+1$ displaces them by
# $\lfloor M/2 \rfloor$ tokens in both directions, so each new window straddles
# four old ones and information flows across the old borders.
#
# The displaced partition has more, and smaller, windows at the image border
# (nine instead of four in the figure). Rather than pad them, Swin **rolls** the
# grid cyclically by $-\lfloor M/2\rfloor$ along both axes: the displaced windows
# become a regular partition again and the batch keeps its shape. The price is
# that the last row and column of windows now contain tokens from opposite sides
# of the image; a mask forbids attention between them, and the roll is undone
# afterwards.

# %% mystnb={"image": {"alt": "Three 8 by 8 token grids: four regular 4 by 4 windows, the windows displaced by 2 tokens into nine pieces, and the grid rolled by minus 2 so that the nine pieces again form four windows."}}
H = W = 8
M_demo, s_demo = 4, 2
rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
regular_ids = (rows // M_demo) * (W // M_demo) + cols // M_demo
shifted_ids = (
    ((rows - s_demo) // M_demo + 1) * 3 + (cols - s_demo) // M_demo + 1
)  # 3×3 displaced windows
labels = swin.window_region_ids(
    H, W, M_demo, s_demo
).numpy()  # regions after the roll
cmap9 = ListedColormap(plt.get_cmap("tab10").colors[:9])


def draw_grid(ax, ids, title, lines=()):
    ax.imshow(ids, cmap=cmap9, vmin=-0.5, vmax=8.5)
    for r in range(H):
        for c in range(W):
            ax.text(
                c,
                r,
                f"{r * W + c}",
                ha="center",
                va="center",
                fontsize=7,
                color="white",
            )
    for pos in lines:
        ax.axhline(pos - 0.5, color="k", lw=2.5)
        ax.axvline(pos - 0.5, color="k", lw=2.5)
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=10)


fig, axes = plt.subplots(1, 3, figsize=(6.8, 3.3))
draw_grid(
    axes[0],
    regular_ids,
    f"block l:\n4 windows of {M_demo}×{M_demo}",
    lines=(4,),
)
draw_grid(
    axes[1],
    shifted_ids,
    f"block l+1: windows\ndisplaced by {s_demo} (9 pieces)",
    lines=(2, 6),
)
rolled_labels = np.roll(np.roll(shifted_ids, -s_demo, 0), -s_demo, 1)
draw_grid(
    axes[2],
    rolled_labels,
    f"after rolling by −{s_demo}:\n4 windows again",
    lines=(4,),
)
for r in range(H):
    for c in range(W):
        axes[2].texts[r * W + c].set_text(
            f"{((r + s_demo) % H) * W + (c + s_demo) % W}"
        )
fig.suptitle(
    "Token numbers are positions in the original image;\n"
    "colours are the windows of block l+1 (right two)",
    fontsize=10,
)
plt.show()

# %% [markdown]
# In the right panel the bottom-right window holds tokens 54, 55, 62, 63 from the
# bottom-right corner of the image, 48, 49, 56, 57 from the bottom-left,
# 6, 7, 14, 15 from the top-right and 0, 1, 8, 9 from the top-left: four pieces
# that are not neighbours in the image. The mask allows attention only between
# tokens of the same piece:

# %%
show(
    swin.window_region_ids,
    "Each token of the rolled grid labelled with the image region it came "
    "from (at most 9)",
)
show(
    swin.shifted_window_mask,
    "The mask: two tokens of a window may attend when their region labels "
    "agree",
)

# %% mystnb={"image": {"alt": "Four 16 by 16 attention masks of the shifted windows: the first allows every pair, the second is a checkerboard, the third two diagonal blocks, and the fourth allows a quarter of the pairs."}}
allowed = swin.shifted_window_mask(H, W, M_demo, s_demo)  # (nW, M², M²)
fig, axes = plt.subplots(1, 4, figsize=(6.8, 2.9))
for w, ax in enumerate(axes):
    ax.imshow(allowed[w].numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(
        f"window {w}\n{int(allowed[w].sum())} of {M_demo**4} pairs",
        fontsize=10,
    )
    ax.set(xlabel="key token", xticks=[0, 5, 10, 15], yticks=[0, 5, 10, 15])
axes[0].set_ylabel("query token in window")
fig.suptitle(
    "Shifted-window attention masks (white = may attend, black = blocked)",
    fontsize=10,
)
plt.show()
print("allowed pairs per window:", allowed.sum((1, 2)).tolist())
assert allowed[0].all() and allowed.sum((1, 2)).tolist() == [256, 128, 128, 64]

# %% [markdown]
# Window 0 lies inside the image and needs no mask. Windows 1 and 2 each join two
# pieces, so half of their pairs are allowed: in window 2 the pieces are the top
# and bottom halves (two 8×8 blocks, since tokens are numbered row by row), in
# window 1 the left and right halves, which interleave in row-major order and give
# the checkerboard. Window 3 joins four pieces. The mixer that uses the mask
# builds it once, from the grid it is made for, and keeps it as a buffer; it
# rolls the grid, cuts it into windows, attends, puts the windows back and rolls
# back. The Swin block is chapter 5's {py:class}`seqlib.layers.Block`; only
# the mixer (the token grouping) differs: shifted windows instead of all tokens.

# %%
show(
    swin.ShiftedWindowAttention,
    "The mixer: roll, partition, attend with the mask, reverse, roll back",
)
show(
    swin.SwinBlock,
    "The block: chapter 5's Block with the shifted-window mixer and an MLP",
)

# %% [markdown]
# ## Relative position bias
#
# ViT adds an absolute position embedding to its input. Swin adds nothing to the
# tokens; instead, each attention score gets a learned bias that depends only on
# the **relative** position of query and key inside the window
# {cite}`liu2021swin,shaw2018self`:
#
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{SoftMax}\!\left(\frac{QK^\top}{\sqrt d} + B\right)V,
# \qquad Q, K, V \in \mathbb{R}^{M^2\times d},\; B \in \mathbb{R}^{M^2\times M^2}.
# $$ (eq-swin-bias)
#
# Two tokens of an $M\times M$ window are between $-(M-1)$ and $M-1$ rows apart,
# and the same for columns: only $(2M-1)^2$ different offsets exist. So $B$ is
# gathered from a small learned table $\hat B \in \mathbb{R}^{(2M-1)\times(2M-1)}$
# per head, through a fixed index. The same offset gets the same bias in every
# window and every image, which builds translation invariance back in.

# %%
show(
    swin.relative_position_index,
    "The fixed index: each (query, key) offset read as a number in base 2M−1",
)

# %% mystnb={"image": {"alt": "A 9 by 9 table of the bias-table row used for each query and key of a 3 by 3 window; the diagonal is 12 and equal offsets share a row."}}
index3 = swin.relative_position_index(3)  # (9, 9)
fig, ax = plt.subplots(figsize=(5.2, 4.4))
im = ax.imshow(index3.numpy(), cmap="viridis")
for (i, j), v in np.ndenumerate(index3.numpy()):
    ax.text(
        j,
        i,
        str(v),
        ha="center",
        va="center",
        fontsize=8,
        color="w" if v < 12 else "k",
    )
fig.colorbar(im, ax=ax, label="row of the bias table")
ax.set(
    title="relative_position_index(3): table row for each (query, key)",
    xlabel="key token j (row-major in the 3×3 window)",
    ylabel="query token i",
)
plt.show()
print(
    "values in [0, 25):",
    int(index3.min()) == 0 and int(index3.max()) == 24,
    " diagonal is the centre row 12:",
    bool((index3.diagonal() == 12).all()),
)
assert int(index3.max()) == (2 * 3 - 1) ** 2 - 1 and torch.equal(
    index3 + index3.T, torch.full_like(index3, 24)
)

# %% [markdown]
# The window attention layer is the book's one `MultiHeadAttention` with the
# table and its index added; it passes the gathered bias as `attn_bias`:

# %%
show(
    swin.WindowAttention,
    "Window attention: the bias table and its index, gathered into B and "
    "passed to MultiHeadAttention with the mask",
)

# %% [markdown]
# ## Swin against ViT on Fashion-MNIST
#
# A small Swin for 32×32 inputs (Fashion-MNIST padded by two black pixels on
# each side): 4×4 patches give an 8×8 grid, windows of $M = 4$ (four windows,
# shifted by 2 in every second block), then 4×4 and 2×2 grids that fit in one
# window, widths 20 → 40 → 80. Beside it, chapter 6's ViT (7×7 patches, 16
# tokens, $D = 64$), trained here with the same recipe. Swin can afford four times
# as many tokens at the first stage because its attention is local.

# %%
if cfg.dataset == "cifar10":
    x_train, y_train = load_cifar10("train", n=cfg.n_train)
    x_test, y_test = load_cifar10("test", n=cfg.n_test)
    class_names = CIFAR10_CLASSES
else:
    x_train, y_train = load_fashion_mnist("train", n=cfg.n_train)
    # all 10,000 test images, whatever the profile: evaluation is cheap, and
    # the difference we compare is a few points, too small for 1,000
    x_test, y_test = load_fashion_mnist("test")
    class_names = FASHION_CLASSES
C_in, H_img, W_img = x_train.shape[1:]
pad = (32 - H_img) // 2  # 2 for Fashion-MNIST, 0 for CIFAR-10


def to_32(images: torch.Tensor) -> torch.Tensor:
    """Pad (B, C, 28, 28) to (B, C, 32, 32) with background; CIFAR-10 is
    already 32×32."""
    return F.pad(images, (pad, pad, pad, pad)) if pad else images


augment = (lambda x: random_crop_flip(x, padding=4)) if cfg.augment else None
models = {
    "ViT": (
        lambda: vit.ViT(
            vit.ViTConfig(
                image_size=H_img,
                patch_size=cfg.vit_patch,
                in_channels=C_in,
                num_classes=len(class_names),
                dim=cfg.vit_dim,
                depth=cfg.vit_depth,
                heads=cfg.vit_heads,
                mlp_ratio=cfg.mlp_ratio,
                dropout=cfg.dropout,
            )
        ),
        lambda x: x,
    ),
    "Swin": (
        lambda: swin.SwinTransformer(
            swin.SwinConfig(
                image_size=32,
                patch_size=cfg.swin_patch,
                in_channels=C_in,
                num_classes=len(class_names),
                dim=cfg.swin_dim,
                depths=cfg.swin_depths,
                heads=cfg.swin_heads,
                window=cfg.window,
                mlp_ratio=cfg.mlp_ratio,
                dropout=cfg.dropout,
            )
        ),
        to_32,
    ),
}
swin_model = models["Swin"][0]()
with torch.no_grad():
    stage_shapes = [
        tuple(f.shape[1:]) for f in swin_model.features(to_32(x_test[:2]))
    ]
print("Swin stages (C, H, W):", stage_shapes)
print(
    "windows per stage:",
    [s.window for s in swin_model.stages],
    " shifts:",
    [[b.shift for b in s.blocks] for s in swin_model.stages],
)
assert all(
    b[0] == 2 * a[0] and b[1] == -(-a[1] // 2)
    for a, b in zip(stage_shapes, stage_shapes[1:])
)

# %%
results = {}
for name, (make, prepare) in models.items():
    torch.manual_seed(seed_for(0))
    model = make()
    hist = train.train_classifier(
        model,
        prepare(x_train),
        y_train,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=seed_for(0),
        augment=augment,
        device=device,
        desc=name,
    )
    results[name] = {
        "model": model,
        "params": layers.count_parameters(model),
        "seconds": sum(hist["seconds"]),
        "acc": train.accuracy(model, prepare(x_test), y_test),
        "train_acc": hist.last("acc"),
    }

# %%
# NBVAL_IGNORE_OUTPUT
print(
    f"{'model':<6}{'params':>10}{'test acc':>10}{'train acc':>11}"
    f"{'seconds':>9}   ({len(x_train)} training images)"
)
for name, r in results.items():
    print(
        f"{name:<6}{r['params']:>10,}{r['acc']:>10.3f}"
        f"{r['train_acc']:>11.3f}{r['seconds']:>9.1f}"
    )
if profiles.current_profile() == "full":  # against profiles.TARGETS["ch07"]
    profiles.report_target("ch07", results["Swin"]["acc"])

# %%
size_ratio = results["Swin"]["params"] / results["ViT"]["params"]
print(
    f"Swin has {size_ratio:.3f} times the ViT's parameters (within 25 %):",
    abs(size_ratio - 1) < 0.25,
)
assert abs(size_ratio - 1) < 0.25
learn = claims.check(
    "ch07-both-learn",
    "Both models learn the task: test accuracy above 0.6",
    min(r["acc"] for r in results.values()),
    "> 0.6",
)
beats = claims.check(
    "ch07-swin-beats-vit",
    f"With {len(x_train)} training images the small Swin is more accurate "
    "than the ViT of chapter 6, by more than 0.02",
    results["Swin"]["acc"] - results["ViT"]["acc"],
    "> 0.02",
    flagship=True,
)
print("both learn the task (test accuracy > 0.6):", learn.held)
print("Swin is more accurate than the ViT:", beats.held)

# %% [markdown]
# On seeds 0–2 the small Swin is more accurate than the ViT by 0.04–0.06
# ({ref}`claims-ch07`; the ViT is chapter 6's, trained with the same data, seed
# and recipe). It is not a contest of exact equals: Swin has 12 % more
# parameters and four times as many tokens at its first stage. What Swin is
# designed for is not mainly accuracy on 28×28 images but the *shape* of its
# computation: fine 4×4-pixel tokens at a cost that grows only linearly with
# their number (in multiply-adds, {eq}`eq-swin-cost`), and a pyramid of
# feature maps that detection and segmentation heads can use, which is why Swin
# replaced CNN backbones in many dense-prediction systems.
#
# Finally, what did the relative position bias learn? Each head of the first
# stage's first block has a $(2M-1)\times(2M-1)$ table; the centre is offset
# $(0, 0)$, the query itself.

# %% mystnb={"image": {"alt": "Heatmaps of the learned relative position bias of each head of the trained Swin's first block, indexed by row and column offset between query and key."}}
swin_trained = results["Swin"]["model"].cpu()
table = (
    swin_trained.stages[0].blocks[0].mixer.attn.bias_table.detach()
)  # ((2M−1)², h)
Mw = swin_trained.stages[0].window
fig, axes = plt.subplots(
    1, table.shape[1], figsize=(3.5 * table.shape[1], 3.4)
)
for head, ax in enumerate(np.atleast_1d(axes)):
    im = ax.imshow(
        table[:, head].view(2 * Mw - 1, 2 * Mw - 1).numpy(),
        cmap="coolwarm",
        extent=(-(Mw - 1) - 0.5, Mw - 0.5, Mw - 0.5, -(Mw - 1) - 0.5),
    )
    fig.colorbar(im, ax=ax, fraction=0.046, label="bias added to the score")
    ax.set(
        title=f"head {head + 1}",
        xlabel="column offset (query − key)",
        xticks=range(-(Mw - 1), Mw),
        yticks=range(-(Mw - 1), Mw),
    )
    if head == 0:
        ax.set_ylabel("row offset (query − key)")
fig.suptitle(
    "Learned relative position bias, stage 1, block 1 (trained Swin)",
    fontsize=11,
)
plt.show()

# %% [markdown]
# ### Global and local attention on an image
#
# Chapter 3 compared global attention, where the decoder weighs every source
# word, with local attention, which looks only inside a window. The same choice,
# drawn on an image with the two trained models: for one query token (the cyan
# square, around the red cross), the colour shows its attention weights,
# averaged over heads. The ViT's first layer may weigh every patch of the image.
# Swin's first block weighs only the $M \times M$ tokens of the query's window,
# and its second block those of the displaced window; every other token gets
# exactly zero, which the cell checks. Stacking blocks is what lets Swin's
# information travel further, one window at a time.

# %% mystnb={"image": {"alt": "A test image with a query pixel, and that query token's attention weights: spread over the whole image in the ViT's first layer, confined to one window in Swin's first block and to the displaced window in its second."}}
def window_weights_on_grid(
    weights: torch.Tensor,
    query: tuple[int, int],
    grid: int,
    window: int,
    shift: int,
) -> np.ndarray:
    """One query token's window-attention weights (mean over heads) placed on
    the (grid, grid) token grid.

    ``weights`` (nW, h, M², M²) come from a (shifted) window block and
    ``query`` is the token's (row, column) in image coordinates. A shifted
    block attends on the grid rolled by −shift, so positions are rolled there
    and back.
    """
    r, c = (
        (query[0] - shift) % grid,
        (query[1] - shift) % grid,
    )  # on the rolled grid
    w = weights[(r // window) * (grid // window) + c // window].mean(
        0
    )  # (M², M²) of the query's window
    out = np.zeros((grid, grid))
    r0, c0 = r // window * window, c // window * window
    for j, value in enumerate(w[(r % window) * window + c % window].tolist()):
        out[
            (r0 + j // window + shift) % grid, (c0 + j % window + shift) % grid
        ] = value
    return out


def on_pixels(
    token_map: np.ndarray, patch: int, offset: int, size: int
) -> np.ndarray:
    """Blow a token map up to pixels (each token covers patch×patch) and crop
    ``offset`` of padding."""
    return np.kron(token_map, np.ones((patch, patch)))[
        offset : offset + size, offset : offset + size
    ]


vit_trained = results["ViT"]["model"].cpu().eval()
image = x_test[3:4]  # (1, C, H, W)
pixel = (
    H_img * 5 // 8,
    H_img * 3 // 8,
)  # the query: the token holding this pixel
with torch.no_grad():
    vit_maps = vit.attention_maps(vit_trained, image)  # L × (1, h, N+1, N+1)
    g = swin_trained.patch_embed.grid
    tokens = swin_trained.embed_norm(
        swin_trained.patch_embed(to_32(image)).reshape(1, g, g, -1)
    )  # (1, g, g, C)
    with attention.record(swin_trained) as recorded:
        swin_trained.stages[0](tokens)
    swin_maps = recorded.select(
        "stages.0.blocks.*"
    )  # per block: (nW, h, M², M²)
gv = vit_trained.grid
pv, ps = H_img // gv, 32 // g  # pixels per token side
q_vit = (
    1 + (pixel[0] // pv) * gv + pixel[1] // pv
)  # position 0 is the class token
q_swin = ((pixel[0] + pad) // ps, (pixel[1] + pad) // ps)
panels = [
    (
        "ViT, layer 1:\nglobal",
        on_pixels(
            vit_maps[0][0].mean(0)[q_vit, 1:].view(gv, gv).numpy(),
            pv,
            0,
            H_img,
        ),
        pv,
        (pixel[0] // pv * pv, pixel[1] // pv * pv),
    )
]
for b, name in enumerate(["window", "shifted window"]):
    block = swin_trained.stages[0].blocks[b]
    on_grid = window_weights_on_grid(
        swin_maps[b], q_swin, g, block.window, block.shift
    )
    assert (
        np.count_nonzero(on_grid) <= block.window**2
        and abs(on_grid.sum() - 1) < 1e-4
    )
    panels.append(
        (
            f"Swin, block {b + 1}:\n{name}",
            on_pixels(on_grid, ps, pad, H_img),
            ps,
            (q_swin[0] * ps - pad, q_swin[1] * ps - pad),
        )
    )
shown = image[0].permute(1, 2, 0).squeeze(-1).numpy()
fig, axes = plt.subplots(1, 4, figsize=(6.8, 2.8))
axes[0].imshow(shown, cmap="gray")
axes[0].plot(pixel[1], pixel[0], "r+", ms=12, mew=2)
axes[0].set(xticks=[], yticks=[])
axes[0].set_title("test image and\nquery pixel", fontsize=10)
for ax, (title, weights, patch, (top, left)) in zip(axes[1:], panels):
    ax.imshow(shown, cmap="gray")
    ax.imshow(np.ma.masked_equal(weights, 0), cmap="magma", alpha=0.75, vmin=0)
    ax.add_patch(
        plt.Rectangle(
            (left - 0.5, top - 0.5), patch, patch, fill=False, ec="cyan", lw=2
        )
    )
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=10)
fig.suptitle(
    "Where one query token looks: its attention weights\n"
    "(colour, mean over heads); uncoloured = weight 0",
    fontsize=10,
)
fig.tight_layout()
plt.show()

# %% [markdown]
# ```{admonition} Going further: the full profile
# :class: tip
# `SEQLIB_PROFILE=full` trains on CIFAR-10 {cite}`krizhevsky2009learning` with random
# crops and flips: a Swin with 2×2 patches, $C = 36$, depths 2, 2, 6, 2, windows of
# 4 (grids 16 → 8 → 4 → 2, 2.67 M parameters) against the 2.70 M-parameter ViT of
# chapter 6, 100 epochs each. The two models are matched in size: Swin has 0.99
# times the ViT's parameters (the cell below builds both, without training, and
# counts them). The profile also times attention on
# grids up to $16M \times 16M$ tokens at $C = 96$ with peak GPU memory. Reference
# points from the literature are 80–90 % for small vision Transformers trained
# from scratch on CIFAR-10 with augmentation. No full-profile run has been
# recorded yet: when one is, its numbers, with device and date, will be on the
# {doc}`../book/results` page, and nothing in this chapter's prose comes from
# such a run.
# ```

# %%
full = profiles.sizes("ch07", "full")
full_models = {
    "ViT": vit.ViT(
        vit.ViTConfig(
            image_size=32,
            patch_size=full.vit_patch,
            in_channels=3,
            num_classes=10,
            dim=full.vit_dim,
            depth=full.vit_depth,
            heads=full.vit_heads,
            mlp_ratio=full.mlp_ratio,
            dropout=full.dropout,
        )
    ),
    "Swin": swin.SwinTransformer(
        swin.SwinConfig(
            image_size=32,
            patch_size=full.swin_patch,
            in_channels=3,
            num_classes=10,
            dim=full.swin_dim,
            depths=full.swin_depths,
            heads=full.swin_heads,
            window=full.window,
            mlp_ratio=full.mlp_ratio,
            dropout=full.dropout,
        )
    ),
}
full_params = {
    name: layers.count_parameters(m) for name, m in full_models.items()
}
full_ratio = full_params["Swin"] / full_params["ViT"]
print(
    "full profile, CIFAR-10:",
    {name: f"{n:,}" for name, n in full_params.items()},
)
print(
    f"Swin/ViT = {full_ratio:.3f} (within 25 %: {abs(full_ratio - 1) < 0.25})"
)
assert abs(full_ratio - 1) < 0.25
del full_models

# %% [markdown]
# ## Exercises
#
# :::{exercise} Window partition with reshape and permute
# :label: ex07-partition
#
# Implement `partition(x, M)` that turns a (B, H, W, C) grid into
# (B·(H/M)·(W/M), M·M, C) windows with `view`/`reshape` and `permute` only (no
# einops, no seqlib), windows of image 0 first, row-major within and across
# windows. (depth: implement; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex07-partition
# :class: dropdown
# ```

# %% tags=["solution"]
def partition(x: torch.Tensor, M: int) -> torch.Tensor:
    """(B, H, W, C) -> (B·nW, M·M, C), as seqlib.swin.window_partition."""
    # BEGIN SOLUTION
    # HINT: view as (B, H/M, M, W/M, M, C); move the window axes next to B
    B, H, W, C = x.shape
    x = x.view(B, H // M, M, W // M, M, C)  # (B, nh, M, nw, M, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, M * M, C)  # (B·nW, M², C)
    # END SOLUTION


# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex07-partition" forbid=["seqlib", "einops"] tags=["check"]
from seqlib.exercises import check_close, check_shape, check_true

coords = torch.stack(
    torch.meshgrid(torch.arange(8), torch.arange(12), indexing="ij"), -1
)[None]  # (1, 8, 12, 2)
where = partition(coords, 4)  # (6, 16, 2): (row, column) of each token
check_shape(
    where, (6, 16, 2), name="partition of an 8×12 grid", letters="nW, M², C"
)
check_true(
    bool((where // 4 == (where // 4)[:, :1]).all()),
    "each window should hold one 4×4 square of neighbouring tokens: view as "
    "(B, H/M, M, W/M, M, C) and bring the two window axes (H/M, W/M) "
    "together before the two in-window axes",
)
check_true(
    torch.equal(
        where[:, 0] // 4,
        torch.tensor([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]),
    ),
    "the windows should come in row-major order: window 1 is to the right "
    "of window 0, not below it",
)
check_true(
    torch.equal(where[0], coords[0, :4, :4].reshape(16, 2)),
    "inside a window the tokens should be in row-major order: token 1 is "
    "to the right of token 0",
)
grid_x = torch.randn(
    2, 8, 12, 3, generator=torch.Generator().manual_seed(seed_for(0))
)
mine = partition(grid_x, 4)
check_shape(mine, (12, 16, 3), name="partition(x, 4)", letters="B·nW, M², C")
check_close(
    mine[:6],
    partition(grid_x[:1], 4),
    name="the first 6 windows (they should all come from image 0)",
)
check_close(
    mine,
    swin.window_partition(grid_x, 4),
    name="partition vs seqlib.swin.window_partition",
)

# %% [markdown]
# :::{exercise} The mask from coordinates
# :label: ex07-mask
#
# Build the shifted-window mask a second way. Take the original (row, column)
# of every token, roll the grid by $-s$, partition it into windows, and allow the
# pair (i, j) of a window exactly when the two tokens were less than $M$ apart
# in both directions in the original image (tokens that wrapped around are far
# apart). Implement `mask_from_coordinates(H, W, M, s)` returning a bool
# (nW, M², M²) tensor; you may use
# {py:func}`swin.window_partition <seqlib.swin.window_partition>` and
# `torch.roll`, but not `swin.shifted_window_mask`, `swin.window_region_ids` or
# the Swin modules that build the mask.
# (depth: implement; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex07-mask
# :class: dropdown
# ```

# %% tags=["solution"]
def mask_from_coordinates(H: int, W: int, M: int, s: int) -> torch.Tensor:
    """(nW, M², M²) bool: True where two tokens of a shifted window were
    neighbours in the image."""
    # BEGIN SOLUTION
    # HINT: roll and partition (1, H, W, 2) coordinates; compare |Δ| with M
    rows, cols = torch.meshgrid(
        torch.arange(H), torch.arange(W), indexing="ij"
    )
    coords = torch.stack([rows, cols], dim=-1)[None]  # (1, H, W, 2)
    rolled = torch.roll(coords, shifts=(-s, -s), dims=(1, 2))
    win = swin.window_partition(rolled, M)  # (nW, M², 2)
    delta = (win[:, :, None, :] - win[:, None, :, :]).abs()  # (nW, M², M², 2)
    return (delta < M).all(-1)
    # END SOLUTION


# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex07-mask" forbid=["seqlib.swin.shifted_window_mask", "seqlib.swin.window_region_ids", "seqlib.swin.ShiftedWindowAttention", "seqlib.swin.SwinBlock", "seqlib.swin.SwinStage", "seqlib.swin.SwinTransformer"] tags=["check"]
from seqlib.exercises import check_shape, check_true

for H_, W_, M_, s_ in ((8, 8, 4, 2), (12, 8, 4, 2), (14, 14, 7, 3)):
    mine = mask_from_coordinates(H_, W_, M_, s_)
    what = f"mask_from_coordinates({H_}, {W_}, {M_}, {s_})"
    check_shape(
        mine, (H_ * W_ // M_**2, M_**2, M_**2), name=what, letters="nW, M², M²"
    )
    check_true(
        mine.dtype == torch.bool,
        f"{what}: expected a bool tensor, got {mine.dtype}",
    )
    check_true(
        bool(mine[0].all()),
        f"{what}: window 0 holds tokens that were neighbours before the "
        "shift, so every pair in it should be allowed (roll the coordinates "
        "by -s, as the grid is rolled)",
    )
    check_true(
        not bool(mine[-1, 0, M_ - 1]),
        f"{what}: in the last window tokens 0 and {M_ - 1} share a row but "
        "came from opposite sides of the image, so the pair should be masked "
        "(allow a pair only when the two tokens are close in rows and in "
        "columns)",
    )
    check_true(
        torch.equal(mine, swin.shifted_window_mask(H_, W_, M_, s_)),
        f"{what} differs from seqlib.swin.shifted_window_mask",
    )

# %% [markdown]
# :::{exercise} Where the two costs cross
# :label: ex07-cost
#
# Using {eq}`eq-swin-cost`: (a) show that the ratio
# $\Omega(\text{MSA})/\Omega(\text{W-MSA})$ depends on $hw$, $C$ and $M$ only
# through $(4C + 2hw)/(4C + 2M^2)$; (b) for Swin-T's first stage ($C = 96$,
# $M = 7$) find the grid side $\sqrt{hw}$ at which global attention costs twice as
# much as window attention, and give it as `crossover_side(C, M)` (the side
# $\sqrt{hw}$, a float, for any $C$ and $M$; the check tests it against the chapter's
# cost functions); (c) explain why the ratio is 1 when $hw = M^2$.
# (depth: derive; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex07-cost
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# (a) Divide both costs by $hwC$: $\Omega(\text{MSA})/(hwC) = 4C + 2hw$ and
# $\Omega(\text{W-MSA})/(hwC) = 4C + 2M^2$. (b) Ratio 2 means
# $4C + 2hw = 2(4C + 2M^2)$, i.e. $hw = 2C + 2M^2 = 192 + 98 = 290$, a grid of about
# 17×17 tokens: Swin-T's 56×56 first stage is far beyond it. (c) With $hw = M^2$
# the only window is the whole grid, so both layers compute the same thing.

# %% tags=["solution"]
def crossover_side(C: int, M: int) -> float:
    """Grid side sqrt(hw) at which global attention costs twice as much as
    window attention."""
    # BEGIN SOLUTION
    # HINT: divide both costs by hwC, set the ratio to 2, solve for hw
    return float(np.sqrt(2 * C + 2 * M**2))
    # END SOLUTION


# %% tags=["solution"]
C_, M_ = 96, 7
hw_star = 2 * C_ + 2 * M_**2
side = int(np.ceil(np.sqrt(hw_star)))
print(f"hw* = {hw_star}, grid side about {np.sqrt(hw_star):.1f}")
assert swin.msa_cost(side, side, C_) >= 2 * swin.window_msa_cost(
    side, side, C_, M_
)
assert swin.msa_cost(side - 1, side - 1, C_) < 2 * swin.window_msa_cost(
    side - 1, side - 1, C_, M_
)

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex07-cost" tags=["check"]
from seqlib.exercises import check_close

for C_, M_ in ((96, 7), (64, 4), (128, 8)):
    lo, hi = (
        float(M_),
        1e4,
    )  # bisection on the chapter's own costs: ratio 1 at M, huge at 1e4
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (
            (mid, hi)
            if swin.msa_cost(mid, mid, C_)
            < 2 * swin.window_msa_cost(mid, mid, C_, M_)
            else (lo, mid)
        )
    check_close(
        float(crossover_side(C_, M_)),
        lo,
        rtol=1e-4,
        atol=1e-6,
        name=f"crossover_side({C_}, {M_}), the side where Ω(MSA) = 2 Ω(W-MSA)",
    )

# %% [markdown]
# :::{exercise} How far can a token see?
# :label: ex07-receptive
#
# In a stack of Swin blocks at one resolution, with windows of $M$ and shifts of
# $M/2$ in every second block, how many tokens away can information travel after
# $k$ blocks? Check your answer experimentally: change one token of an input grid
# and record which outputs change after 1, 2, 3 and 4 blocks of an untrained
# {py:class}`swin.SwinStage <seqlib.swin.SwinStage>`. What would happen without
# the shift? (depth: experiment; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex07-receptive
# :class: dropdown
# ```

# %% tags=["solution"]
torch.manual_seed(seed_for(0))
side_r, M_r = 16, 4
reach = {}
for shifted in (True, False):
    stage = swin.SwinStage(
        8, depth=4, heads=2, window=M_r, grid=side_r, shifted=shifted
    ).eval()
    grid_in = torch.randn(1, side_r, side_r, 8)
    poked = grid_in.clone()
    poked[0, 5, 5] += torch.randn(8)
    reached = []
    with torch.no_grad():
        a, b = grid_in, poked
        for block in stage.blocks:
            a, b = block(a), block(b)
            changed = ((a - b).abs().sum(-1)[0] > 1e-6).nonzero()
            reached.append(int((changed - torch.tensor([5, 5])).abs().max()))
    reach["with shift" if shifted else "without shift"] = reached
print("largest row/column distance reached after 1..4 blocks:")
for name, reached in reach.items():
    print(f"  {name}: {reached}")
assert (
    reach["without shift"] == [reach["without shift"][0]] * 4
    and reach["with shift"][-1] > reach["without shift"][-1]
)
assert reach["with shift"] == [
    2,
    4,
    6,
    8,
]  # M/2 = 2 tokens further with every block

# %% [markdown] tags=["solution"]
# Without the shift the change never leaves its window (here at most 2 rows or
# columns away, since token (5, 5) sits in the window covering rows and columns
# 4–7). With the shift each shifted block can carry it about $M/2$ further into
# the neighbouring window and each regular block across the rest of a window, so the
# reach grows linearly with depth, like the receptive field of a stack of
# convolutions; patch merging then doubles the distance each token stands for.

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```
