"""Wrong solutions for chapter 1's implement exercises (see tests/test_exercise_checks.py)."""

# x_train stands in for Fashion-MNIST: 600 images of 784 pixels with a decaying
# spectrum (so the top-k subspace is well determined) and a non-zero mean.
CONTEXT = """
_g = torch.Generator().manual_seed(0)
x_train = (torch.randn(600, 784, generator=_g) * 0.9 ** torch.arange(784.0)
           @ torch.linalg.qr(torch.randn(784, 784, generator=_g))[0] + 0.3).float()
"""

WRONG = {
    "ex01-pca-svd": [
        (
            "shortcut through sklearn",
            "def pca_reconstruction(x, k):\n"
            "    p = PCA(n_components=k).fit(x.numpy())\n"
            "    return torch.from_numpy(p.inverse_transform(p.transform(x.numpy())))\n",
            r"shortcut.*sklearn",
        ),
        (
            "shortcut through torch.pca_lowrank",
            "def pca_reconstruction(x, k):\n"
            "    mean = x.mean(0, keepdim=True)\n"
            "    _, _, v = torch.pca_lowrank(x, q=k, center=True)\n"
            "    return (x - mean) @ v @ v.T + mean\n",
            r"shortcut.*pca_lowrank",
        ),
        (
            "forgets to centre the data",
            "def pca_reconstruction(x, k):\n"
            "    _, _, vh = torch.linalg.svd(x, full_matrices=False)\n"
            "    return x @ vh[:k].T @ vh[:k]\n",
            r"above PCA's.*centre with the column means",
        ),
        (
            "centres with the scalar mean instead of the column means",
            "def pca_reconstruction(x, k):\n"
            "    mean = x.mean()\n"
            "    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)\n"
            "    return (x - mean) @ vh[:k].T @ vh[:k] + mean\n",
            r"column means of pca_reconstruction",
        ),
        (
            "forgets to add the mean back",
            "def pca_reconstruction(x, k):\n"
            "    mean = x.mean(0, keepdim=True)\n"
            "    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)\n"
            "    return (x - mean) @ vh[:k].T @ vh[:k]\n",
            r"column means of pca_reconstruction",
        ),
        (
            "keeps the smallest directions (eigh sorts eigenvalues in ascending order)",
            "def pca_reconstruction(x, k):\n"
            "    mean = x.mean(0, keepdim=True)\n"
            "    _, vecs = torch.linalg.eigh((x - mean).T @ (x - mean))\n"
            "    basis = vecs[:, :k]\n"
            "    return (x - mean) @ basis @ basis.T + mean\n",
            r"above PCA's.*largest singular values",
        ),
    ],
    "ex01-angles": [
        (
            "shortcut through seqlib",
            "def largest_principal_angle(a, b):\n    return float(ae.principal_angles(a, b).max())\n",
            r"shortcut.*seqlib",
        ),
        (
            "shortcut through scipy",
            "from scipy.linalg import subspace_angles as sa\n"
            "def largest_principal_angle(a, b):\n    return float(np.degrees(sa(a.numpy(), b.numpy())).max())\n",
            r"shortcut.*subspace_angles",
        ),
        (
            "returns radians",
            "def largest_principal_angle(a, b):\n"
            "    qa, _ = torch.linalg.qr(a.double())\n    qb, _ = torch.linalg.qr(b.double())\n"
            "    return float(torch.arccos(torch.linalg.svdvals(qa.T @ qb).min().clamp(-1, 1)))\n",
            r"angle\(x-axis, y-axis\): values differ: got 1\.57",
        ),
        (
            "skips the orthonormalisation",
            "def largest_principal_angle(a, b):\n"
            "    c = torch.linalg.svdvals(a.double().T @ b.double()).min().clamp(-1, 1)\n"
            "    return float(torch.rad2deg(torch.arccos(c)))\n",
            r"angle\(x-axis, x=y line\): values differ",
        ),
        (
            "takes the largest cosine (the smallest angle)",
            "def largest_principal_angle(a, b):\n"
            "    qa, _ = torch.linalg.qr(a.double())\n    qb, _ = torch.linalg.qr(b.double())\n"
            "    return float(torch.rad2deg(torch.arccos(torch.linalg.svdvals(qa.T @ qb).max().clamp(-1, 1))))\n",
            r"largest angle of random 4-D subspaces",
        ),
    ],
}
