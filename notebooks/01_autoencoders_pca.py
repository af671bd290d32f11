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
# # Autoencoders and PCA
#
# Every model in this book has the same skeleton: an **encoder** turns the input
# into an internal representation and a **decoder** turns that representation into
# the output. Before the decoder produces a sentence or a caption, we study the
# simplest case, where it has to give back the input itself. That is an
# autoencoder, and its limits (one small vector must carry everything) are the
# reason attention exists.
#
# **Learning goals.** After this chapter you can
#
# - write an autoencoder as encoder → bottleneck → decoder and train it with the mean squared error;
# - build a deeper autoencoder whose decoder mirrors its encoder;
# - explain why an over-complete autoencoder can learn a useless copy, test what
#   its extra capacity does on inputs unlike its training data, and measure from
#   its weights whether it actually copies;
# - train a denoising autoencoder and say what the corruption buys;
# - prove, and check numerically with principal angles, that a linear autoencoder
#   trained with squared error finds the same subspace as PCA {cite}`baldi1989neural,bourlard1988auto`.

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

device = start("ch01")

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from seqlib import autoencoder as ae
from seqlib import claims, profiles, train, viz
from seqlib.data import FASHION_CLASSES, load_digits, load_fashion_mnist
from seqlib.notebook import show
from seqlib.train import seed_for

cfg = profiles.sizes("ch01")
print(cfg)

# %% [markdown]
# ## Encoder, bottleneck, decoder
#
# An autoencoder is a pair of functions: an encoder $f_\theta$ that maps an input
# $\mathbf{x} \in \mathbb{R}^D$ to a code $\mathbf{z} \in \mathbb{R}^K$, and a
# decoder $g_\phi$ that maps the code back to a reconstruction
# $\hat{\mathbf{x}} \in \mathbb{R}^D$. The target is the input itself, so training
# needs no labels: we minimise the mean squared error over the $N$ training examples
#
# $$
# \mathcal{L}(\theta, \phi) = \frac{1}{N D} \sum_{n=1}^{N} \big\lVert \mathbf{x}_n - g_\phi(f_\theta(\mathbf{x}_n)) \big\rVert_2^2 .
# $$ (eq-ae-mse)
#
# The code $\mathbf{z}$ is the **bottleneck**. When $K < D$ (under-complete) the
# network cannot simply copy its input; it has to find the few directions that
# explain most of the images. Deeper autoencoders stack layers in the encoder and
# mirror them in the decoder, so that the output has the input's width again. The
# seqlib version, {py:func}`seqlib.autoencoder.mlp_autoencoder`, builds both halves
# from one list of widths:

# %%
show(
    ae.mlp_autoencoder,
    "One list of widths, read forwards for the encoder and backwards for "
    "the decoder",
)

# %%
model = ae.mlp_autoencoder(784, k=8, hidden=(256, 64))
print(model)
x = torch.rand(5, 784)
print(
    "code:",
    tuple(model.encode(x).shape),
    " reconstruction:",
    tuple(model(x).shape),
)

# %% [markdown]
# ## The data: Fashion-MNIST
#
# Fashion-MNIST {cite}`xiao2017fashion` has 70 000 greyscale 28×28 images of ten
# kinds of clothing. We flatten each image to a vector of $D = 784$ pixels in
# $[0, 1]$. The smoke profile uses a subset so the chapter runs in about two
# minutes on a laptop CPU.

# %%
x_train_img, y_train = load_fashion_mnist("train", n=cfg.n_train)
x_test_img, y_test = load_fashion_mnist("test", n=cfg.n_test)
x_train, x_test = x_train_img.flatten(1), x_test_img.flatten(1)  # (N, 784)
print(
    "train", tuple(x_train.shape), x_train.dtype, " test", tuple(x_test.shape)
)
assert (
    x_train.shape == (cfg.n_train, 784)
    and 0.0 <= x_train.min()
    and x_train.max() <= 1.0
)

# %% mystnb={"image": {"alt": "Ten greyscale Fashion-MNIST test images in two rows of five, one per clothing class, each titled with its class name."}}
first_of_each = [int((y_test == c).nonzero()[0]) for c in range(10)]
viz.image_grid(
    x_test_img[first_of_each],
    ncols=5,
    titles=[FASHION_CLASSES[c] for c in range(10)],
    suptitle="One test image per Fashion-MNIST class",
)
plt.show()

# %% [markdown]
# ## PCA, the linear baseline
#
# Principal component analysis finds the $K$ orthonormal directions
# $U_K = [\mathbf{u}_1, \dots, \mathbf{u}_K]$ of largest variance: the top
# eigenvectors of the covariance $\Sigma = \frac{1}{N}\sum_n (\mathbf{x}_n - \boldsymbol\mu)(\mathbf{x}_n - \boldsymbol\mu)^\top$.
# Encoding is a projection, decoding the way back:
#
# $$
# \mathbf{z} = U_K^\top(\mathbf{x} - \boldsymbol\mu), \qquad \hat{\mathbf{x}} = \boldsymbol\mu + U_K \mathbf{z} .
# $$ (eq-pca)
#
# By the Eckart–Young theorem no rank-$K$ linear map reconstructs the training data
# with a smaller squared error. PCA is therefore a linear autoencoder with tied,
# orthonormal weights, and the best one there is. The eigenvalue spectrum shows how
# much variance each direction carries.

# %% mystnb={"image": {"alt": "The 40 largest eigenvalues of the Fashion-MNIST covariance on a log scale, falling steadily, with a dashed line between the 8th and 9th where the ratio of neighbouring eigenvalues is larger than further on."}}
k = cfg.k
pca_all = PCA(n_components=40).fit(x_train.numpy())
eig = pca_all.explained_variance_
gaps = eig[:-1] / eig[1:]

fig, ax = plt.subplots(figsize=(7, 3))
ax.semilogy(np.arange(1, 41), eig, "o-", ms=3)
ax.axvline(
    k + 0.5,
    color="C3",
    ls="--",
    label=f"K = {k}: $\\lambda_K/\\lambda_{{K+1}}$ = {gaps[k - 1]:.2f}",
)
ax.set(
    title="Eigenvalues of the Fashion-MNIST covariance",
    xlabel="component index",
    ylabel="variance (pixel intensity²)",
)
ax.legend()
plt.show()
print(
    f"eigenvalue ratio at K={k}: {gaps[k - 1]:.2f};  at K=16: {gaps[15]:.2f}"
)
assert 1.3 < gaps[k - 1] < 1.5 and gaps[15] < 1.15, (
    gaps
)  # the fixed data's spectrum, not a training result

# %% [markdown]
# We choose $K = 8$, where the spectrum has a clear gap
# ($\lambda_8/\lambda_9 \approx 1.4$). At $K = 16$ the 16th and 17th eigenvalues
# differ by only about ten percent; the top-16 *subspace* is then barely
# determined by the data, and the exercises ask you to find out what that does
# to a trained autoencoder.

# %%
pca = PCA(n_components=k).fit(x_train.numpy())


def pca_reconstruct(x: torch.Tensor) -> torch.Tensor:
    """Eq. (eq-pca) with sklearn's fitted PCA: (N, D) → (N, D)."""
    return torch.from_numpy(pca.inverse_transform(pca.transform(x.numpy())))


mse_pca_train = torch.mean((pca_reconstruct(x_train) - x_train) ** 2).item()
mse_pca_test = torch.mean((pca_reconstruct(x_test) - x_test) ** 2).item()
print(
    f"PCA, K={k}: train MSE {mse_pca_train:.4f}, test MSE {mse_pca_test:.4f}"
)

# %% [markdown]
# ## The homework: a linear autoencoder finds the PCA subspace
#
# Take the autoencoder of {eq}`eq-ae-mse` with one linear layer each way,
# $f(\mathbf{x}) = W_e\mathbf{x} + \mathbf{b}_e$ and $g(\mathbf{z}) = W_d\mathbf{z} + \mathbf{b}_d$,
# with $W_e \in \mathbb{R}^{K\times D}$ and $W_d \in \mathbb{R}^{D\times K}$. Its
# reconstruction $W_d W_e \mathbf{x} + W_d\mathbf{b}_e + \mathbf{b}_d$ is an affine map
# of rank at most $K$, so its error can never beat PCA's. Three facts finish the argument:
#
# 1. The optimal biases centre the data: $W_d\mathbf{b}_e + \mathbf{b}_d = (I - W_dW_e)\boldsymbol\mu$.
# 2. For centred data the loss is $\operatorname{tr}\big((I - W_dW_e)\,\Sigma\,(I - W_dW_e)^\top\big)$.
#    Its minimum over rank-$K$ products is reached when $W_dW_e = U_KU_K^\top$, the
#    orthogonal projection onto the top-$K$ eigenvectors (Eckart–Young).
# 3. Baldi and Hornik {cite}`baldi1989neural` showed that this loss has no bad
#    local minima: every local minimum is a global one, and every other critical
#    point is a saddle. Their theorem assumes that $\Sigma$ is invertible and that its
#    eigenvalues are all distinct (in their general setting, with target
#    $\mathbf{y}$, the eigenvalues of $\Sigma_{yx}\Sigma_{xx}^{-1}\Sigma_{xy}$, which is
#    $\Sigma$ itself when $\mathbf{y} = \mathbf{x}$). Gradient descent with a small
#    enough step stalls at a saddle only from a set of starting points of measure
#    zero, so from almost every random initialisation it ends at a global minimum.
#    That is not a guarantee for every start, and near a saddle progress can be slow.
#
# The solution is not unique: for any invertible $A \in \mathbb{R}^{K\times K}$,
# $W_d A$ and $A^{-1} W_e$ give the same product. So we should not expect the
# decoder's columns to *equal* the principal components; we should expect them to
# **span the same subspace**. The right tool to compare two subspaces is the set of
# **principal angles** between them: with orthonormal bases $Q_a$, $Q_b$ their
# cosines are the singular values of $Q_a^\top Q_b$. All angles are zero exactly
# when the subspaces coincide. {py:func}`seqlib.autoencoder.principal_angles`
# computes them:

# %%
show(
    ae.principal_angles,
    "Principal angles from two QR decompositions and one SVD",
)

# %% [markdown]
# Now train the linear autoencoder with Adam on the centred images. Centring is
# not needed in principle (the biases can learn $\boldsymbol\mu$), but it removes
# one large, slow direction from the optimisation. After every epoch we record the
# MSE ratio to PCA and the largest principal angle between $\operatorname{span}(W_d)$
# and $\operatorname{span}(U_K)$.

# %%
mu = x_train.mean(0)  # (784,)
xc_train, xc_test = x_train - mu, x_test - mu  # (N, 784)
pcs = torch.from_numpy(
    pca.components_.T.copy()
)  # (784, K), orthonormal columns


def mse_step(model, batch):
    (xb,) = batch
    return torch.mean((model(xb) - xb) ** 2)


def track_linear(model):
    mse = ae.reconstruction_mse(model, xc_train)
    angle = ae.principal_angles(model.decoder.weight, pcs).max().item()
    return {"mse_ratio": mse / mse_pca_train, "max_angle": angle}


# Random streams (seed_for): 0 initialises every model (re-seeded before each);
# 4, 1, 2, 3 order the minibatches of the linear, deep, over-complete and
# denoising AEs; 5 and 6 draw the test and training noise; 7 and 8 belong to
# the exercises.
train.seed_everything(seed_for(0))
linear = ae.linear_autoencoder(784, k)
opt = torch.optim.Adam(linear.parameters(), lr=cfg.linear_lr)
steps = cfg.linear_epochs * -(-len(x_train) // cfg.batch_size)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)


hist_linear = train.fit(
    linear,
    train.minibatches(xc_train, batch_size=cfg.batch_size, seed=seed_for(4)),
    mse_step,
    epochs=cfg.linear_epochs,
    optimizer=opt,
    scheduler=sched,
    device=torch.device("cpu"),
    evaluate=track_linear,
    desc="linear AE",
)
linear_seconds = sum(hist_linear["seconds"])  # fit times every epoch

# %% mystnb={"image": {"alt": "Two training curves of the linear autoencoder: its excess error over PCA falls quickly in the first epochs, while the largest principal angle to the PCA subspace stays large for longer before it falls below the 5 degree line."}}
# NBVAL_IGNORE_OUTPUT
first_close = next(
    (i for i, r in enumerate(hist_linear["mse_ratio"]) if r < 1.05),
    len(hist_linear["mse_ratio"]) - 1,  # never within 5%: the last epoch
)  # first epoch within 5%
claims.check(
    "ch01-linear-error-close-early",
    "The linear autoencoder's training error comes within 5% of PCA's in the "
    "first 8 epochs",
    first_close + 1,
    "<= 8",
)
claims.check(
    "ch01-linear-subspace-lags-error",
    "When its error first comes within 5% of PCA's, the linear autoencoder's "
    "subspace is still more than 20° away",
    hist_linear["max_angle"][first_close],
    "> 20",
)
fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
epochs = np.arange(1, len(hist_linear.records) + 1)
a1.semilogy(epochs, np.array(hist_linear["mse_ratio"]) - 1, "o-")
a1.set(
    title="Excess reconstruction error over PCA",
    xlabel="epoch",
    ylabel="MSE(AE) / MSE(PCA) − 1",
)
a2.plot(epochs, hist_linear["max_angle"], "o-", color="C1")
a2.axhline(5, color="C3", ls="--", label="5°")
a2.set(
    title="Largest principal angle to the PCA subspace",
    xlabel="epoch",
    ylabel="degrees",
)
a2.legend()
plt.show()
print(f"trained in {linear_seconds:.1f} s")
print(
    f"first within 5% of PCA's error after epoch {first_close + 1}, "
    "when the largest angle was still "
    f"{hist_linear['max_angle'][first_close]:.0f}°"
)

# %% [markdown]
# The error approaches PCA's long before the subspace does. On seeds 0–2 it comes
# within 5% of PCA's after 3 to 5 epochs, when the largest angle is still between
# 36° and 87° (the line under the plot gives this run's numbers). Turning the
# subspace between two directions of almost equal variance changes the error very
# little, so the loss pulls only weakly on those last directions; exercise
# {ref}`ex01-eigengap` makes this extreme. Here is the result at the end of
# training, on the training set, where PCA is provably optimal, and on held-out
# images:

# %%
angles = ae.principal_angles(linear.decoder.weight, pcs)
ratio_train = ae.reconstruction_mse(linear, xc_train) / mse_pca_train
ratio_test = ae.reconstruction_mse(linear, xc_test) / mse_pca_test
claims.check(
    "ch01-linear-ae-pca-angle",
    "The subspace a linear autoencoder learns is within 5° of the top-K "
    "principal subspace",
    angles.max().item(),
    "< 5",
    flagship=True,
)
claims.check(
    "ch01-linear-ae-pca-mse-ratio",
    "A linear autoencoder's training MSE is within 5% of PCA's, never below "
    "it",
    ratio_train,
    "in [1.0, 1.05]",
    flagship=True,
)
claims.check(
    "ch01-linear-ae-pca-test-ratio",
    "On held-out images the linear autoencoder's MSE is within 5% of PCA's",
    ratio_test,
    "in [0.95, 1.05]",
)
print(f"largest principal angle < 5°: {angles.max().item() < 5}")
print(
    f"MSE ratio AE/PCA on train in [1.00, 1.05]: {1.0 <= ratio_train <= 1.05}"
)

# %%
# NBVAL_IGNORE_OUTPUT
print(f"principal angles (degrees): {np.round(angles.numpy(), 2)}")
print(
    f"largest angle {angles.max().item():.2f}°, MSE ratio train "
    f"{ratio_train:.4f}, test {ratio_test:.4f}"
)

# %% [markdown]
# On seeds 0–2 the largest principal angle ends between 0.46° and 0.59°, and the
# MSE ratio to PCA is 1.00003–1.00004 on the training set and 1.00006–1.00009 on
# held-out images: the flagship result of this chapter, listed with its spread on
# the {ref}`claims-ch01` page.
#
# The decoder's columns span the PCA subspace, but they are not the principal
# components: they are not orthonormal (on seeds 0–2 each is about 5 to 6 long,
# not 1), and nothing orders them by variance. Projecting each principal component
# onto $\operatorname{span}(W_d)$ moves it by less than 0.01 (it is a unit vector),
# which is the picture of "same subspace, different basis":

# %% mystnb={"image": {"alt": "The eight principal components as images, next to their projections onto the decoder's span, which look the same, and the decoder's own columns, which are different mixtures of them."}}
wd = linear.decoder.weight.detach().double()  # (784, K)
q, _ = torch.linalg.qr(wd)  # orthonormal basis of span(W_d)
pcs_in_span = (
    q @ (q.T @ pcs.double())
).float()  # (784, K): projections of the PCs
residual = (
    (pcs - pcs_in_span).norm(dim=0).max().item()
)  # largest ||u_i - its projection||; ||u_i|| = 1
lengths = wd.norm(dim=0)  # (K,) lengths of the decoder's columns
claims.check(
    "ch01-pcs-in-decoder-span",
    "Projecting a principal component (a unit vector) onto the decoder's span "
    "moves it by less than 0.05",
    residual,
    "< 0.05",
)
claims.check(
    "ch01-decoder-not-orthonormal",
    "The linear autoencoder's decoder columns are far from unit length (the "
    "shortest is longer than 2)",
    lengths.min().item(),
    "> 2",
)
rows = [
    pcs.T.reshape(k, 1, 28, 28),
    pcs_in_span.T.reshape(k, 1, 28, 28),
    wd.T.float().reshape(k, 1, 28, 28),
]
rescaled = [
    (r - r.amin(dim=(1, 2, 3), keepdim=True))
    / (
        r.amax(dim=(1, 2, 3), keepdim=True)
        - r.amin(dim=(1, 2, 3), keepdim=True)
    )
    for r in rows
]
half = k // 2  # two blocks of K/2 columns, so that each image stays large
viz.reconstruction_rows(
    [r[:half] for r in rescaled] + [r[half:] for r in rescaled],
    [
        f"PCA $u_1$ to $u_{{{half}}}$",
        "projected\non span($W_d$)",
        f"decoder\ncolumns 1 to {half}",
        f"PCA $u_{{{half + 1}}}$ to $u_{{{k}}}$",
        "projected\non span($W_d$)",
        f"decoder\ncolumns {half + 1} to {k}",
    ],
    title="Principal components, their projections\n"
    "and the decoder's own basis",
)
plt.show()

# %% [markdown]
# ## A deeper, nonlinear autoencoder
#
# With ReLU layers the encoder can bend the data manifold before squeezing it, so
# at the same bottleneck width $K$ a deep autoencoder can beat every linear method.
# We train the mirrored 784–256–64–8 network of the beginning on the raw images
# (its sigmoid output stays in $[0, 1]$). On seeds 0–2 its test MSE ends 27–30%
# below PCA's at the same $K$.

# %%
train.seed_everything(seed_for(0))
deep = ae.mlp_autoencoder(784, k=k, hidden=(256, 64))
hist_deep = train.fit(
    deep,
    train.minibatches(x_train, batch_size=cfg.batch_size, seed=seed_for(1)),
    mse_step,
    epochs=cfg.deep_epochs,
    lr=cfg.lr,
    device=torch.device("cpu"),
    desc="deep AE",
)
deep_seconds = sum(hist_deep["seconds"])
mse_deep_test = ae.reconstruction_mse(deep, x_test)
mse_linear_test = ae.reconstruction_mse(linear, xc_test)

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'model (K=' + str(k) + ')':<22}{'test MSE':>10}{'train s':>9}")
print(f"{'PCA':<22}{mse_pca_test:>10.4f}{'':>9}")
print(f"{'linear AE':<22}{mse_linear_test:>10.4f}{linear_seconds:>9.1f}")
print(f"{'deep AE 256-64':<22}{mse_deep_test:>10.4f}{deep_seconds:>9.1f}")

# %%
claims.check(
    "ch01-deep-ae-beats-pca",
    "At the same K, the deep autoencoder's test MSE is at least 15% below "
    "PCA's (ratio deep/PCA)",
    mse_deep_test / mse_pca_test,
    "< 0.85",
)
print(
    "deep AE beats PCA at the same K on test images:",
    mse_deep_test < mse_pca_test,
)

# %% mystnb={"image": {"alt": "Six unseen test garments and their reconstructions from an 8-number code by PCA, the linear autoencoder and the deep autoencoder, whose images are the sharpest of the three."}}
# six of the ten classes, so that each image stays large enough to see
idx = [first_of_each[c] for c in (0, 1, 2, 5, 8, 9)]
viz.reconstruction_rows(
    [
        x_test_img[idx],
        pca_reconstruct(x_test[idx]).clamp(0, 1).reshape(-1, 1, 28, 28),
        (linear(xc_test[idx]) + mu)
        .detach()
        .clamp(0, 1)
        .reshape(-1, 1, 28, 28),
        deep(x_test[idx]).detach().reshape(-1, 1, 28, 28),
    ],
    ["original", f"PCA, K={k}", "linear AE", "deep AE"],
    title=f"Reconstructions from an {k}-number code (unseen test images)",
)
plt.show()

# %% [markdown]
# ## Under- and over-complete
#
# What if the bottleneck is *wider* than the input? Nothing then forces the network
# to find structure: it can route each pixel through its own hidden unit and copy.
# Such an over-complete autoencoder can reconstruct its training data well without
# having learned anything about it. Whether a trained one actually does copy is a
# question we can measure. We train a linear one, $784 \to 1024 \to 784$ (2048 wide
# in the full profile), so that
# its whole map is $W_dW_e\mathbf{x} + \text{bias}$ and copying means
# $W_dW_e = I$. A first test is to feed it images that look nothing like clothing:
# handwritten digits (scikit-learn's 8×8 digits, enlarged to 20×20 and padded to
# 28×28). A model whose code only has room for clothing should fail on them; a
# copier reproduces them. So does any model with enough capacity, though: the test
# measures how much the model can reproduce beyond its training data, not whether
# it copies. The weights will answer that question afterwards.

# %%
train.seed_everything(seed_for(0))
over = ae.Autoencoder(
    torch.nn.Linear(784, cfg.overcomplete_width),
    torch.nn.Linear(cfg.overcomplete_width, 784),
    d_in=784,
)
hist_over = train.fit(
    over,
    train.minibatches(x_train, batch_size=cfg.batch_size, seed=seed_for(2)),
    mse_step,
    epochs=cfg.overcomplete_epochs,
    lr=cfg.overcomplete_lr,
    device=torch.device("cpu"),
    desc="over-complete AE",
)
digits_small, _ = load_digits(n=500)  # (500, 1, 8, 8)
digits = F.pad(
    F.interpolate(digits_small, size=(20, 20), mode="bilinear"), (4, 4, 4, 4)
)  # (500, 1, 28, 28)
digits_flat = digits.flatten(1)  # (500, 784)
table = {
    f"linear AE, K={k} (under)": (
        ae.reconstruction_mse(linear, xc_test),
        ae.reconstruction_mse(linear, digits_flat - mu),
    ),
    f"deep AE, K={k} (under)": (
        mse_deep_test,
        ae.reconstruction_mse(deep, digits_flat),
    ),
    f"linear, K={cfg.overcomplete_width} (over)": (
        ae.reconstruction_mse(over, x_test),
        ae.reconstruction_mse(over, digits_flat),
    ),
}

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{'model':<26}{'MSE clothes':>12}{'MSE digits':>12}")
for name, (m_img, m_digits) in table.items():
    print(f"{name:<26}{m_img:>12.4f}{m_digits:>12.4f}")

# %%
m_over = table[f"linear, K={cfg.overcomplete_width} (over)"][1]
m_under = min(v[1] for name, v in table.items() if "under" in name)
claims.check(
    "ch01-overcomplete-copies-digits",
    "On unseen digits the over-complete autoencoder's MSE is at least 5 times "
    "lower than the best under-complete one's",
    m_under / m_over,
    "> 5",
)
claims.check(
    "ch01-undercomplete-fails-on-digits",
    "Both under-complete autoencoders reconstruct digits at least 20% worse "
    "than clothes (MSE ratio digits/clothes)",
    min(v[1] / v[0] for name, v in table.items() if "under" in name),
    "> 1.2",
)
print(
    "over-complete AE reproduces digits 5x better than under-complete ones:",
    m_over * 5 < m_under,
)

# %% mystnb={"image": {"alt": "Five handwritten digits, the deep under-complete autoencoder's reconstructions, which are blurred garment-like shapes, and the over-complete autoencoder's, which reproduce the digits."}}
sample = digits_flat[:5]
viz.reconstruction_rows(
    [
        sample.reshape(-1, 1, 28, 28),
        deep(sample).detach().reshape(-1, 1, 28, 28),
        over(sample).detach().clamp(0, 1).reshape(-1, 1, 28, 28),
    ],
    [
        "digit input",
        f"deep AE, K={k}",
        f"over-complete\nK={cfg.overcomplete_width}",
    ],
    title="Inputs unlike any training image:\n"
    "only the over-complete AE reproduces them",
)
plt.show()

# %% [markdown]
# The under-complete models turn each digit into something clothing-like (their
# code only has room for clothing), while the over-complete one hands the digit back.
# On seeds 0–2 both under-complete models reconstruct digits about 40% worse than
# clothes, while the over-complete model's error on digits is 9–11 times lower than
# the better under-complete model's. This shows capacity: the wide model can
# reproduce inputs unlike anything it was trained on. It does not by itself show
# that the model computes the identity map; a linear model of large enough rank
# that is not the identity, such as a PCA with many components, could pass the
# same test.
#
# ### Does it copy? Look at $W_dW_e$
#
# A copier has $W_dW_e = I$: it returns *every* vector unchanged, whether or not
# it looks like data. We measure, for a set of vectors $\mathbf{v}$, the fraction
# of their energy that the map gets wrong, $\lVert (W_dW_e - I)\mathbf{v}\rVert^2 /
# \lVert\mathbf{v}\rVert^2$ (0 for a copier), on three kinds of input: centred
# test images, random directions in $\mathbb{R}^{784}$, and each of the 784
# principal directions $\mathbf{u}_i$ of the training data. Random directions
# spread their energy evenly over all 784 principal directions, so they test the
# map everywhere, not only where clothing lives. As a practical version of the
# same test we also feed images of uniform random pixels.

# %%
# NBVAL_IGNORE_OUTPUT
gen_off = torch.Generator().manual_seed(
    seed_for(9)
)  # stream 9: the off-data inputs
with torch.no_grad():
    m_over_map = (
        over.decoder.weight @ over.encoder.weight
    ).double()  # (784, 784): W_d W_e
    eye = torch.eye(784, dtype=torch.float64)


def missed(vectors: torch.Tensor) -> torch.Tensor:
    """||(W_d W_e - I) v||^2 / ||v||^2 for each column v of ``vectors`` (784,
    M)."""
    return ((m_over_map - eye) @ vectors).pow(2).sum(0) / vectors.pow(2).sum(0)


centred = (x_test - mu).double().T  # (784, N): centred test images
missed_data = ((m_over_map - eye) @ centred).pow(2).sum() / centred.pow(
    2
).sum()
missed_random = missed(
    torch.randn(784, 1000, generator=gen_off, dtype=torch.float64)
).mean()
evals_train, evecs_train = torch.linalg.eigh(
    torch.cov((x_train - mu).double().T)
)  # ascending
evecs_train = evecs_train.flip(1)  # (784, 784): u_1 … u_784, by variance
missed_pcs = missed(evecs_train)  # (784,)
noise_images = torch.rand(
    2000, 784, generator=gen_off
)  # uniform pixels in [0, 1]
mse_over_noise = ae.reconstruction_mse(over, noise_images)
mse_over_test = ae.reconstruction_mse(over, x_test)
print("fraction of energy that W_d W_e gets wrong")
print(f"  centred test images             {missed_data.item():.3f}")
print(f"  random directions               {missed_random.item():.3f}")
print(f"  principal directions 1-50       {missed_pcs[:50].mean().item():.3f}")
print(
    f"  principal directions 501-784    {missed_pcs[500:].mean().item():.3f}"
)
n_copied = int((missed_pcs < 0.1).sum())
print(f"principal directions with less than 10% wrong: {n_copied} of 784")
print(
    f"over-complete AE: MSE on clothes {mse_over_test:.4f}, on uniform-noise "
    f"images {mse_over_noise:.4f}"
)

# %% mystnb={"image": {"alt": "For each of the 784 principal directions, ordered by variance, the fraction of its energy the over-complete map gets wrong: near 0 for the first hundred or so, rising to about 1 for the last few hundred, with the means for random directions and test images drawn as lines."}}
claims.check(
    "ch01-overcomplete-keeps-data",
    "The over-complete autoencoder's W_d W_e gets less than 10% of the energy "
    "of centred test images wrong",
    missed_data.item(),
    "< 0.1",
)
claims.check(
    "ch01-overcomplete-not-identity",
    "On random directions the over-complete autoencoder's W_d W_e gets more "
    "than half of the energy wrong: "
    "it is far from the identity",
    missed_random.item(),
    "> 0.5",
)
claims.check(
    "ch01-overcomplete-identity-only-on-top-pcs",
    "W_d W_e is close to the identity on the 50 leading principal directions "
    "and far from it on the last "
    "284 (mean fraction of energy wrong, last 284 minus first 50)",
    (missed_pcs[500:].mean() - missed_pcs[:50].mean()).item(),
    "> 0.5",
)
claims.check(
    "ch01-overcomplete-copies-some-directions",
    "The over-complete autoencoder's W_d W_e gets less than 10% wrong on more "
    "than 50 but fewer than 300 "
    "of the 784 principal directions (their number)",
    n_copied,
    "in [50, 300]",
)
claims.check(
    "ch01-overcomplete-fails-on-noise",
    "The over-complete autoencoder's MSE on uniform-noise images is more than "
    "5 times its MSE on clothes",
    mse_over_noise / mse_over_test,
    "> 5",
)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(
    np.arange(1, 785),
    missed_pcs.numpy(),
    ".",
    ms=2,
    label="principal direction $u_i$",
)
ax.axhline(
    missed_random.item(), color="C1", ls="--", label="random directions (mean)"
)
ax.axhline(missed_data.item(), color="C2", ls=":", label="centred test images")
ax.set(
    title="How far the over-complete AE is from copying",
    xlabel="principal direction index i (by variance)",
    ylabel=r"$\Vert(W_dW_e - I)v\Vert^2 / \Vert v\Vert^2$",
)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# It does not copy. On seeds 0–2 the map $W_dW_e$ gets only 5% of the
# energy of centred test images wrong, but 68–70% of the energy of random
# directions, and uniform-noise images come back with an error 15–16 times
# larger than clothes ({ref}`claims-ch01`). The plot says why. Along the leading
# principal directions of the training data $W_dW_e$ is the identity; it gets
# less than 10% wrong on 101–109 of the 784 directions. Along the last few
# hundred, where Fashion-MNIST has almost no variance, it is far from it: on the
# last 284 the fraction it gets wrong is on average 1.01–1.02 higher than on the
# first 50, where it is almost 0, as for a map that drops those directions.
# With the optimal bias the loss is
# $\frac{1}{N D}\sum_n\lVert (I - W_dW_e)(\mathbf{x}_n - \boldsymbol\mu)\rVert^2
# = \frac{1}{D}\sum_i \lambda_i \lVert (I - W_dW_e)\mathbf{u}_i\rVert^2$:
# an error along $\mathbf{u}_i$ costs in proportion to the variance $\lambda_i$
# there, so a direction the data hardly use barely pulls on the weights, and
# $W_dW_e$ stays there close to its small random start. What the network has
# learned in this chapter's budget is close to a projection onto the directions
# that carry clothing, about a hundred of them; digits mostly live in those
# directions too, which is why they come back well. The identity is a minimum of
# the loss, so a copier is possible, but the loss pulls towards it only weakly in
# the directions of small variance and not at all in a direction of none. Even
# this wide projection keeps far more than the data need. Two classic remedies
# keep a wide code useful: a penalty that makes the code sparse, and the one we
# turn to now, corrupting the input.

# %% [markdown]
# ## The denoising autoencoder
#
# A denoising autoencoder {cite}`vincent2008extracting` receives a corrupted input
# and is trained to output the **clean** $\mathbf{x}$. Our corruption adds Gaussian
# noise and clips the result back to $[0, 1]$, so that it is still an image:
# $\tilde{\mathbf{x}} = \operatorname{clip}(\mathbf{x} + \boldsymbol\epsilon, 0, 1)$,
# $\boldsymbol\epsilon \sim \mathcal{N}(0, \sigma^2 I)$, applied pixel by pixel. This is
# what {py:func}`seqlib.autoencoder.add_noise` does by default (`clip=False` gives the unclipped
# $\mathbf{x} + \boldsymbol\epsilon$). The loss is
#
# $$
# \mathcal{L}_{\text{DAE}} = \frac{1}{ND}\sum_n \big\lVert \mathbf{x}_n - g_\phi(f_\theta(\tilde{\mathbf{x}}_n)) \big\rVert_2^2 .
# $$ (eq-dae)
#
# Copying is now useless, because the copy would include the noise. We compare it
# with PCA and the plain deep autoencoder on noisy test images, always measuring
# the error against the clean image.

# %%
noise_std = cfg.noise_std
gen = torch.Generator().manual_seed(seed_for(5))
x_test_noisy = ae.add_noise(x_test, noise_std, generator=gen)  # (N, 784)
noise_gen = torch.Generator().manual_seed(seed_for(6))


def denoise_step(model, batch):
    (xb,) = batch
    return torch.mean(
        (model(ae.add_noise(xb, noise_std, generator=noise_gen)) - xb) ** 2
    )


train.seed_everything(
    seed_for(0)
)  # the deep AE's initial weights: a paired comparison
dae = ae.mlp_autoencoder(784, k=k, hidden=(256, 64))
hist_dae = train.fit(
    dae,
    train.minibatches(x_train, batch_size=cfg.batch_size, seed=seed_for(3)),
    denoise_step,
    epochs=cfg.deep_epochs,
    lr=cfg.lr,
    device=torch.device("cpu"),
    desc="denoising AE",
)
denoise = {
    "noisy input itself": torch.mean((x_test_noisy - x_test) ** 2).item(),
    f"PCA, K={k}": torch.mean(
        (pca_reconstruct(x_test_noisy) - x_test) ** 2
    ).item(),
    "deep AE (clean training)": ae.reconstruction_mse(
        deep, x_test_noisy, x_test
    ),
    "denoising AE": ae.reconstruction_mse(dae, x_test_noisy, x_test),
}

# %%
# NBVAL_IGNORE_OUTPUT
print(f"noise std {noise_std}: MSE to the clean test images")
for name, value in denoise.items():
    print(f"  {name:<26}{value:.4f}")
noise = (x_test_noisy - x_test).double()  # (N, 784): the clipped noise
noise_in_pca = (noise @ pcs.double()).pow(2).sum() / noise.pow(
    2
).sum()  # share inside span(U_K)
print(
    f"PCA's clean test MSE {mse_pca_test:.4f}; its noisy test MSE minus that: "
    f"{denoise[f'PCA, K={k}'] - mse_pca_test:.4f}"
)
print(
    f"share of the clipped noise's energy inside PCA's {k}-dim subspace: "
    f"{noise_in_pca.item():.3f}\n(white noise: K/D = {k / 784:.3f})"
)

# %%
claims.check(
    "ch01-dae-beats-pca",
    "On noisy test images the denoising autoencoder's error is at least 20% "
    "below PCA's (MSE ratio DAE/PCA)",
    denoise["denoising AE"] / denoise[f"PCA, K={k}"],
    "< 0.8",
    flagship=True,
)
claims.check(
    "ch01-clipped-noise-in-pca-subspace",
    "More than 5% of the clipped noise's energy lies inside PCA's "
    "K-dimensional subspace, five times the "
    "share K/D of white noise",
    noise_in_pca.item(),
    "> 0.05",
    structural=True,
)
claims.check(
    "ch01-pca-removes-noise",
    "PCA's projection removes more than half of the noisy input's error (MSE "
    "ratio PCA/noisy input)",
    denoise[f"PCA, K={k}"] / denoise["noisy input itself"],
    "< 0.5",
    structural=True,
)
claims.check(
    "ch01-clean-ae-worse-than-pca-on-noise",
    "On noisy images the deep autoencoder trained on clean images does worse "
    "than PCA (MSE ratio PCA/clean AE)",
    denoise[f"PCA, K={k}"] / denoise["deep AE (clean training)"],
    "< 0.85",
)
claims.check(
    "ch01-dae-beats-clean-ae",
    "On noisy images the denoising autoencoder's error is less than 60% of "
    "the clean-trained network's",
    denoise["denoising AE"] / denoise["deep AE (clean training)"],
    "< 0.6",
)
print(
    "denoising AE beats PCA on noisy images:",
    denoise["denoising AE"] < denoise[f"PCA, K={k}"],
)
print(
    "denoising AE beats the clean-trained AE:",
    denoise["denoising AE"] < denoise["deep AE (clean training)"],
)

# %% mystnb={"image": {"alt": "Six test garments, their noisy versions, and the reconstructions by PCA, the clean-trained deep autoencoder and the denoising autoencoder, whose outputs are the cleanest."}}
viz.reconstruction_rows(
    [
        x_test_img[idx],
        x_test_noisy[idx].reshape(-1, 1, 28, 28),
        pca_reconstruct(x_test_noisy[idx]).clamp(0, 1).reshape(-1, 1, 28, 28),
        deep(x_test_noisy[idx]).detach().reshape(-1, 1, 28, 28),
        dae(x_test_noisy[idx]).detach().reshape(-1, 1, 28, 28),
    ],
    [
        "clean",
        f"noisy, σ={noise_std}",
        f"PCA, K={k}",
        "deep AE",
        "denoising AE",
    ],
    title="Denoising unseen test images",
)
plt.show()

# %% [markdown]
# Clipping shapes every number in the table above. At $\sigma = 0.5$ the interval
# $[0, 1]$ is only two standard deviations wide, so clipping removes a good part
# of the noise on every pixel, and the most on pixels at 0 or 1. A black background
# pixel, and Fashion-MNIST images have many, can only get brighter: the half of the
# draws that would darken it are set back to 0, and its squared error is a bit
# under $\sigma^2/2$. That is why the noisy input's own error (about 0.12 above) is
# well below $\sigma^2 = 0.25$.
#
# Clipping also changes the shape of the noise, and with it the reason PCA helps.
# Unclipped white noise spreads evenly over all $D = 784$ directions, and a
# projection onto $K$ of them keeps the fraction $K/D$ of it: PCA's error would
# grow by only $(K/D)\sigma^2 \approx 0.003$ over its error on clean images. That
# argument holds for unclipped white noise only. Clipped noise is not white: its
# mean is positive on dark pixels and negative on bright ones, so it follows the
# layout of the image. PCA's error on a noisy image is exactly its error on the
# clean image plus the energy of the part of the noise that lies inside its
# $K$-dimensional subspace (the two parts are orthogonal); the lines under the
# table print both. On seeds 0–2 that part holds 12% (about an eighth) of the
# clipped noise's energy, not the $K/D \approx 1\%$ that white noise would leave
# ({ref}`claims-ch01`). Even so, the projection discards most of the noise: on
# seeds 0–2 PCA's error is about 35% of the noisy input's.
#
# The deep autoencoder trained on clean images does worse than PCA here (PCA's
# error is 59–71% of its own): it never saw a noisy input. The denoising
# autoencoder goes further: its error is 60–61% of
# PCA's and 36–43% of the clean-trained network's, a flagship result of the
# chapter ({ref}`claims-ch01`). It has learned what clothing looks like and fills
# in the shapes.
#
# ## What this chapter sets up
#
# The encoder–decoder is the frame of every model that follows. In the next
# chapter the encoder reads a *sentence* and the decoder writes a translation, and
# the bottleneck becomes a problem: one vector of fixed size has to carry a
# sentence of any length. Attention (chapter 3 onwards) is the way out.
#
# ```{admonition} Going further: the full profile
# :class: tip
# `SEQLIB_PROFILE=full` trains on all 60 000 images with longer schedules (sizes in
# {py:mod}`seqlib.profiles`). Run it on Colab with a GPU through the launch button, or
# locally with `SEQLIB_PROFILE=full jupyter nbconvert --to notebook --execute notebooks/01_autoencoders_pca.ipynb`.
# No full-profile run has been recorded yet; when one is, the
# {doc}`../book/results` page will list it.
# ```

# %% [markdown]
# ## Exercises
#
# :::{exercise} Non-uniqueness of the linear autoencoder
# :label: ex01-gauge
#
# Show that if $(W_e, W_d)$ minimises the loss of a linear autoencoder, so does
# $(A^{-1}W_e, W_dA)$ for every invertible $A \in \mathbb{R}^{K\times K}$. Which
# property of PCA's solution ($W_e = U_K^\top$, $W_d = U_K$) does a trained
# autoencoder therefore have no reason to share, and which does it share?
# (depth: derive; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex01-gauge
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# The reconstruction depends on the weights only through the product:
# $(W_dA)(A^{-1}W_e) = W_dW_e$, and the bias term $W_dA\,A^{-1}\mathbf{b}_e = W_d\mathbf{b}_e$
# is unchanged too, so the loss is identical. Hence a trained autoencoder has no
# reason to have orthonormal columns ($W_d^\top W_d = I$), tied weights
# ($W_e = W_d^\top$) or columns ordered by variance: any $A$ destroys those. What
# survives every $A$ is the column space of $W_d$ (and the row space of $W_e$),
# which at the optimum is $\operatorname{span}(U_K)$. That is why the chapter
# compares subspaces with principal angles instead of comparing weights.

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# :::{exercise} PCA reconstruction from the SVD
# :label: ex01-pca-svd
#
# Implement `pca_reconstruction(x, k)` with `torch.linalg.svd` only: no sklearn,
# no `seqlib` and no `torch.pca_lowrank`. Centre the data, take the top-$k$ right
# singular vectors and return the reconstruction of {eq}`eq-pca` for the same
# rows. Then run the check cell.
# (depth: implement; about 15 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex01-pca-svd
# :class: dropdown
# ```


# %% tags=["solution"]
def pca_reconstruction(x: torch.Tensor, k: int) -> torch.Tensor:
    """Reconstruct the rows of ``x`` (N, D) from their top-``k`` principal
    components."""
    # BEGIN SOLUTION
    # HINT: centre, take Vh[:k] of torch.linalg.svd, project, add the mean back
    mean = x.mean(0, keepdim=True)  # (1, D)
    _, _, vh = torch.linalg.svd(
        x - mean, full_matrices=False
    )  # vh: (min(N, D), D)
    basis = vh[:k]  # (k, D)
    return (x - mean) @ basis.T @ basis + mean  # (N, D)
    # END SOLUTION


# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex01-pca-svd" forbid=["sklearn", "seqlib", "torch.pca_lowrank", "torch.svd_lowrank"] tags=["check"]
from seqlib.exercises import check_close, check_shape, check_true

subset = x_train[:500]
for k_ in (8, 3):
    mine = pca_reconstruction(subset, k_)
    check_shape(
        mine, (500, 784), name=f"pca_reconstruction(x, {k_})", letters="N, D"
    )
    check_close(
        mine.mean(0),
        subset.mean(0),
        rtol=1e-3,
        atol=1e-4,
        name=f"column means of pca_reconstruction(x, {k_}) (centre with the "
        "column means, add them back)",
    )
    reference = PCA(n_components=k_, svd_solver="full").fit(subset.numpy())
    expected = reference.inverse_transform(reference.transform(subset.numpy()))
    mse_mine, mse_pca = (
        float(((mine - subset) ** 2).mean()),
        float(((expected - subset.numpy()) ** 2).mean()),
    )
    check_true(
        mse_mine <= mse_pca * 1.001 + 1e-7,
        f"pca_reconstruction(x, {k_}): mean squared error {mse_mine:.4g} is "
        f"above PCA's {mse_pca:.4g}; "
        f"centre with the column means and keep the {k_} directions with the "
        "largest singular values",
    )
    check_close(
        mine,
        expected,
        rtol=1e-3,
        atol=1e-4,
        name=f"pca_reconstruction(x, {k_})",
    )
check_shape(
    pca_reconstruction(subset[:10], 8),
    (10, 784),
    name="pca_reconstruction of 10 rows",
    letters="N, D",
)

# %% [markdown]
# :::{exercise} Principal angles by hand
# :label: ex01-angles
#
# Implement `largest_principal_angle(a, b)` that returns, in degrees, the largest
# principal angle between the column spaces of `a` (D×K) and `b` (D×K). Use a QR
# decomposition and a singular value decomposition, not `seqlib` and not
# `scipy.linalg.subspace_angles`. Check it on a case you can do by hand, then with
# the check cell. (depth: implement; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex01-angles
# :class: dropdown
# ```


# %% tags=["solution"]
def largest_principal_angle(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest principal angle, in degrees, between span(a) and span(b); a, b:
    (D, K)."""
    # BEGIN SOLUTION
    # HINT: QR both; the smallest singular value of Qa^T Qb is the cosine
    qa, _ = torch.linalg.qr(a.double())
    qb, _ = torch.linalg.qr(b.double())
    smallest_cosine = torch.linalg.svdvals(qa.T @ qb).min().clamp(-1, 1)
    return float(torch.rad2deg(torch.arccos(smallest_cosine)))
    # END SOLUTION


# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% exercise="ex01-angles" forbid=["seqlib", "scipy.linalg.subspace_angles"] tags=["check"]
from scipy.linalg import subspace_angles

from seqlib.exercises import check_close, check_true

e = torch.eye(3)
check_close(
    largest_principal_angle(e[:, :1], e[:, 1:2]),
    90.0,
    atol=1e-6,
    name="angle(x-axis, y-axis)",
)
tilted = torch.tensor([[1.0], [1.0], [0.0]])
check_close(
    largest_principal_angle(e[:, :1], tilted),
    45.0,
    atol=1e-6,
    name="angle(x-axis, x=y line)",
)
rng = torch.Generator().manual_seed(seed_for(8))
a, b = torch.randn(20, 4, generator=rng), torch.randn(20, 4, generator=rng)
check_close(
    largest_principal_angle(a, b),
    np.degrees(subspace_angles(a.numpy(), b.numpy())).max(),
    atol=1e-4,
    name="largest angle of random 4-D subspaces of R^20",
)
same = largest_principal_angle(a, a @ torch.randn(4, 4, generator=rng))
check_true(
    same < 1e-3,
    "a basis change (a @ M) spans the same subspace: the angle should be 0°, "
    f"got {same} "
    "(NaN? clamp the cosine to [-1, 1] before arccos)",
)

# %% [markdown]
# :::{exercise} When the subspace is not determined
# :label: ex01-eigengap
#
# Train the linear autoencoder with $K = 16$ instead of 8, for the same number of epochs.
# Report the MSE ratio to PCA and the principal angles. Why can the error be within
# one percent of PCA's while the largest angle is large? Relate your answer to the
# eigenvalue ratio $\lambda_{16}/\lambda_{17}$ printed above.
# (depth: experiment; about 20 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex01-eigengap
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# A subspace that differs from the top-16 one by a rotation between $\mathbf{u}_{16}$
# and $\mathbf{u}_{17}$ by an angle $\theta$ loses $(\lambda_{16} - \lambda_{17})\sin^2\theta$ of
# captured variance per image. With $\lambda_{16} \approx \lambda_{17}$ that cost is tiny, so
# the loss surface is almost flat along the rotation: the error is close to optimal
# long before the angle is small, and gradient descent turns the subspace at a rate
# proportional to the gap. In the run below, and on seeds 0–2
# ({ref}`claims-ch01`), the error ratio stays within 1% of PCA's (1.005–1.008)
# while the largest angle stays far above 5° (27°–54°); most angles are small
# (the median is about 1°).

# %% tags=["solution"]
# NBVAL_IGNORE_OUTPUT
train.seed_everything(seed_for(0))
pca16 = PCA(n_components=16).fit(x_train.numpy())
lin16 = ae.linear_autoencoder(784, 16)
hist16 = train.fit(
    lin16,
    train.minibatches(xc_train, batch_size=cfg.batch_size, seed=seed_for(7)),
    mse_step,
    epochs=cfg.linear_epochs,
    lr=cfg.lr,
    device=torch.device("cpu"),
    desc="K=16",
)
mse16_pca = np.mean(
    (
        pca16.inverse_transform(pca16.transform(x_train.numpy()))
        - x_train.numpy()
    )
    ** 2
)
angles16 = ae.principal_angles(
    lin16.decoder.weight, torch.from_numpy(pca16.components_.T.copy())
)
ratio16 = ae.reconstruction_mse(lin16, xc_train) / mse16_pca
claims.check(
    "ch01-k16-error-near-pca",
    "With K = 16 the linear autoencoder's training MSE is within 1% of PCA's",
    ratio16,
    "< 1.01",
)
claims.check(
    "ch01-k16-angle-large",
    "With K = 16 the largest principal angle to the PCA subspace stays far "
    "above 5° (above 10°)",
    angles16.max().item(),
    "> 10",
)
claims.check(
    "ch01-k16-most-angles-small",
    "With K = 16 the median principal angle is below 2°",
    angles16.median().item(),
    "< 2",
)
print(f"MSE ratio {ratio16:.3f}")
print("angles:", np.round(angles16.numpy(), 1))

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```

# %% [markdown]
# :::{exercise} How much noise can a denoising autoencoder remove?
# :label: ex01-noise
#
# Repeat the denoising comparison for $\sigma \in \{0.1, 0.3, 0.5, 0.8\}$ (train
# one denoising autoencoder per level). Plot the clean-target MSE of the noisy
# input, PCA and the denoising autoencoder against $\sigma$. How does the
# denoising autoencoder's advantage over PCA change with $\sigma$, and why?
# (depth: experiment; about 30 minutes)
# :::

# %% [markdown] tags=["solution"]
# ```{solution-start} ex01-noise
# :class: dropdown
# ```

# %% [markdown] tags=["solution"]
# For unclipped white noise (`ae.add_noise(..., clip=False)`) PCA keeps $K$ of
# $D$ directions, so it removes about $(D-K)/D$ of the noise whatever $\sigma$ is:
# its error is its fixed approximation error plus $\frac{K}{D}\sigma^2$. The
# chapter's noise is clipped, and then that formula does not hold. Clipped noise
# has a mean square below $\sigma^2$ per pixel that stays bounded (a clipped pixel
# is off by at most 1), and its mean follows the image, so a much larger share of it
# than $K/D$ falls inside PCA's subspace (about an eighth on seeds 0–2 at
# $\sigma = 0.5$). Expect PCA's error to grow with $\sigma$, but not like
# $\sigma^2$; a run with `clip=False` next to the clipped one shows the difference.
# The denoising autoencoder must *guess* the clean image from the corrupted one.
# This notebook measures only two points of the curve: at $\sigma = 0$ a
# denoising autoencoder is the plain deep one, whose error is 27–30% below PCA's,
# and at $\sigma = 0.5$ its error is 39–40% below PCA's (seeds 0–2). The rest is
# a prediction for you to test, not a measured result: as $\sigma$ grows the
# guess has less to go on and blurs towards an average garment, so the denoising
# autoencoder's error should rise towards that of a blurry mean image. PCA's
# error keeps rising too, and with clipping both should level off at large
# $\sigma$, where the noisy image tells little about the clean one; where the
# ratio of the two is smallest is what your plot will show. A sketch of the
# experiment (run it yourself; it takes a few minutes):
#
# ```python
# for std in [0.1, 0.3, 0.5, 0.8]:
#     gen = torch.Generator().manual_seed(seed_for(5))
#     noisy = ae.add_noise(x_test, std, generator=gen)
#     ...  # train a denoising AE with noise_std=std as above,
#     ...  # then record the three errors
# ```

# %% [markdown] tags=["solution"]
# ```{solution-end}
# ```
