"""The formulas against independent computations (docs/algorithms.md §3.2, §4.3)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from incop_core.consistency.signals import connectivity_matrix, gradient_flow, information_flow
from incop_core.pruning.masks import Mask
from incop_core.pruning.schedules.sap import SapConfig, pq_index, sap_prune_count


@pytest.mark.parametrize("p,q", [(0.5, 1.0), (1.0, 2.0), (0.5, 2.0)])
def test_pq_index_is_zero_for_a_flat_vector(p, q):
    assert pq_index(torch.full((100,), 0.3), p, q) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("p,q", [(0.5, 1.0), (1.0, 2.0)])
def test_pq_index_of_a_one_hot_vector(p, q):
    d = 50
    w = torch.zeros(d)
    w[7] = -2.5
    assert pq_index(w, p, q) == pytest.approx(1 - d ** (1 / q - 1 / p), rel=1e-9)


def test_pq_index_on_a_hand_vector():
    # ||(3,4)||_1 = 7, ||(3,4)||_2 = 5, d = 2
    assert pq_index(torch.tensor([3.0, -4.0]), 1.0, 2.0) == pytest.approx(1 - 2 ** -0.5 * 7 / 5, rel=1e-12)
    assert pq_index(torch.zeros(0), 0.5, 1.0) == 0.0


@pytest.mark.parametrize("p,q,expected", [(0.5, 1.0, 0.15), (1.0, 2.0, 0.36)])
def test_sap_prunes_the_documented_share_of_gaussian_weights(p, q, expected):
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    share = sap_prune_count(w, SapConfig(p=p, q=q)) / w.numel()
    assert share == pytest.approx(expected, abs=0.01)


def test_sap_count_follows_the_closed_form():
    w = torch.randn(1000, generator=torch.Generator().manual_seed(1))
    cfg = SapConfig(p=1.0, q=2.0, eta_r=0.1, gamma=0.8, beta=0.5)
    pqi = 1 - 1000 ** -0.5 * w.abs().sum().item() / w.norm().item()
    r = math.ceil(1000 * 1.1 ** (-2) * (1 - pqi) ** 2)
    assert sap_prune_count(w, cfg) == math.floor(1000 * min(max(0.8 * (1 - r / 1000), 0), 0.5))


def test_connectivity_matrix_equals_numpy_pearson():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 5))
    b = a[:, :3] * 0.5 + rng.normal(size=(300, 3))
    expected = np.corrcoef(a.T, b.T)[:5, 5:]
    got = connectivity_matrix(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=False)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(4, 3, bias=False)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)

    def forward(self, x):
        h = self.relu(self.conv(x)).mean(dim=(2, 3))
        return self.fc2(self.relu2(self.fc1(h)))


def _probe(n=64, batch=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 6, 6, generator=gen), torch.randint(0, 2, (n,), generator=gen)
    return lambda: ((x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)), x, y


def test_information_flow_equals_numpy_on_the_hooked_activations():
    torch.manual_seed(0)
    model, (probe, x, _) = Toy(), _probe()
    with torch.no_grad():
        conv = model.conv(x).mean(dim=(2, 3))
        fc1 = model.fc1(model.relu(model.conv(x)).mean(dim=(2, 3)))
        fc2 = model(x)
    acts = [t.double().numpy() for t in (conv, fc1, fc2)]
    expected = [np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:].mean() for a, b in zip(acts, acts[1:])]
    np.testing.assert_allclose(information_flow(model, probe), expected, atol=1e-9)


def test_gradient_flow_equals_hand_computed_gradients():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    mask = Mask({"0.weight": torch.tensor([[1, 0, 1, 1], [1, 1, 1, 0], [0, 1, 1, 1]]), "2.weight": torch.ones(2, 3)})
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(32, 4, generator=gen), torch.randint(0, 2, (32,), generator=gen)
    probe = lambda: ((x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8))  # noqa: E731
    w1, w2 = model[0].weight.detach().double().numpy(), model[2].weight.detach().double().numpy()
    m1 = mask.tensors["0.weight"].double().numpy()
    norms = []
    for i in range(0, 32, 8):
        xb, yb = x[i:i + 8].double().numpy(), y[i:i + 8].numpy()
        pre = xb @ w1.T
        h = np.maximum(pre, 0)
        logits = h @ w2.T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dlogits = (p - np.eye(2)[yb]) / len(yb)
        dw2 = dlogits.T @ h
        dw1 = ((dlogits @ w2) * (pre > 0)).T @ xb
        norms.append([np.linalg.norm(dw1 * m1), np.linalg.norm(dw2)])
    np.testing.assert_allclose(gradient_flow(model, probe, mask), np.mean(norms, axis=0), rtol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # probes leave no gradients behind
