import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from seqlib import autoencoder as ae
from seqlib import train


def test_shapes_and_mirrored_layers():
    model = ae.mlp_autoencoder(20, k=3, hidden=(12, 6))
    x = torch.rand(5, 20)
    assert model.encode(x).shape == (5, 3) and model(x).shape == (5, 20)
    enc = [
        m.out_features for m in model.encoder if isinstance(m, torch.nn.Linear)
    ]
    dec = [
        m.out_features for m in model.decoder if isinstance(m, torch.nn.Linear)
    ]
    assert enc == [12, 6, 3] and dec == [6, 12, 20]
    assert 0 <= model(x).min() and model(x).max() <= 1
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 20\)"):
        model(torch.rand(5, 21))


def test_principal_angles_match_scipy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 4, generator=g), torch.randn(30, 3, generator=g)
    ours = ae.principal_angles(a, b).numpy()
    ref = np.sort(
        np.degrees(subspace_angles(a.double().numpy(), b.double().numpy()))
    )
    np.testing.assert_allclose(ours, ref, atol=1e-8)
    assert np.all(np.diff(ours) >= 0)


def test_principal_angles_ignore_the_basis():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(10, 3, generator=g)
    assert (
        ae.principal_angles(a, a @ torch.randn(3, 3, generator=g)).max() < 1e-5
    )
    with pytest.raises(
        ValueError,
        match=r"b: expected shape \(D, \?\)=\(10, None\), got \(9, 3\)",
    ):
        ae.principal_angles(a, torch.randn(9, 3))


def test_linear_autoencoder_reaches_the_pca_subspace():
    # Data with a clear spectral gap: 3 strong directions in R^12.
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(12, 12, generator=g))[0]
    scales = torch.tensor([3.0, 2.5, 2.0] + [0.2] * 9)
    x = (torch.randn(2000, 12, generator=g) * scales) @ basis.T + 1.0
    pca = PCA(3).fit(x.numpy())
    train.seed_everything(0)
    model = ae.linear_autoencoder(12, 3)
    train.fit(
        model,
        train.minibatches(x - x.mean(0), batch_size=100),
        lambda m, b: torch.mean((m(b[0]) - b[0]) ** 2),
        epochs=40,
        lr=1e-2,
        device=torch.device("cpu"),
    )
    angle = ae.principal_angles(
        model.decoder.weight, torch.from_numpy(pca.components_.T.copy())
    ).max()
    assert angle < 2.0
    mse_pca = np.mean(
        (pca.inverse_transform(pca.transform(x.numpy())) - x.numpy()) ** 2
    )
    assert (
        1.0 - 1e-3
        <= ae.reconstruction_mse(model, x - x.mean(0)) / mse_pca
        < 1.02
    )


def test_add_noise_is_reproducible_and_clipped():
    x = torch.full((2, 5), 0.5)
    a = ae.add_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    b = ae.add_noise(x, 0.3, generator=torch.Generator().manual_seed(0))
    assert (
        torch.equal(a, b)
        and a.min() >= 0
        and a.max() <= 1
        and not torch.equal(a, x)
    )
    assert torch.equal(ae.add_noise(x, 0.0), x)
    with pytest.raises(ValueError, match="std must be >= 0"):
        ae.add_noise(x, -1.0)


def test_reconstruction_mse_against_a_target():
    ident = torch.nn.Identity()
    x = torch.zeros(3, 4)
    assert ae.reconstruction_mse(ident, x) == 0.0
    assert ae.reconstruction_mse(ident, x, torch.ones(3, 4)) == pytest.approx(
        1.0
    )
    with pytest.raises(ValueError, match="target: expected shape"):
        ae.reconstruction_mse(ident, x, torch.ones(3, 5))
