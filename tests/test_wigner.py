"""Wigner-d by Risbo's recurrence (C++), against `spherical` and identities."""

import numpy as np
import pytest

import sphcnn_kernels as sk
from references import spherical_wigner_d


def test_standard_convention():
    beta = 0.731
    d = sk.wigner_d(1, beta)
    np.testing.assert_allclose(d[1, 2, 1], -np.sin(beta) / np.sqrt(2), rtol=1e-15)  # d^1_{1,0}
    np.testing.assert_allclose(d[1, 2, 2], (1 + np.cos(beta)) / 2, rtol=1e-15)  # d^1_{1,1}
    np.testing.assert_allclose(d[0, 1, 1], 1.0, rtol=0)


@pytest.mark.parametrize("beta", [0.0, 0.3, np.pi / 2, 2.1, np.pi])
def test_agrees_with_spherical(beta):
    ell_max = 32
    np.testing.assert_allclose(sk.wigner_d(ell_max, beta), spherical_wigner_d(ell_max, beta), atol=1e-12)


def test_half_pi_agrees_with_spherical():
    np.testing.assert_allclose(sk.wigner_d_half_pi(32), spherical_wigner_d(32, np.pi / 2), atol=1e-12)


def test_layout_zero_outside_degree():
    d = sk.wigner_d(6, 1.1)
    ell = np.arange(7)[:, None, None]
    m = np.arange(-6, 7)
    outside = (np.abs(m)[None, :, None] > ell) | (np.abs(m)[None, None, :] > ell)
    assert np.all(d[np.broadcast_to(outside, d.shape)] == 0)


def test_ell_min_returns_top_degrees():
    full = sk.wigner_d(20, 0.4)
    top = sk.wigner_d(20, 0.4, ell_min=15)
    assert top.shape == (6, 41, 41)
    np.testing.assert_array_equal(top, full[15:])


@pytest.mark.parametrize("which", ["beta", "half_pi"])
def test_orthogonal_at_degree_1024(which):
    d = sk.wigner_d(1024, 0.9, ell_min=1024)[0] if which == "beta" else sk.wigner_d_half_pi(1024, ell_min=1024)[0]
    np.testing.assert_allclose(d @ d.T, np.eye(2049), atol=1e-12)


def test_degree_1023_agrees_with_column_recurrence():
    # Two independent algorithms at high degree: Risbo's recurrence over j (whole
    # matrices) and the three-term recurrence over l (columns d^l_{m,-s}).
    ell, beta = 1023, 1.3
    d = sk.wigner_d(ell, beta, ell_min=ell)[0]
    for s in (0, 1, -2):
        y = sk.spin_spherical_harmonics(ell, s, np.array([beta]), np.array([0.0]))[0, ell]  # (2 ell + 1,)
        column = (-1) ** s * y.real / np.sqrt((2 * ell + 1) / (4 * np.pi))
        np.testing.assert_allclose(column, d[:, ell - s], atol=1e-12)


def test_delta_factorization_of_d():
    # d^l_{m,m'}(beta) = i^(m - m') sum_k Delta_{k,m} Delta_{k,m'} exp(-i k beta), Delta = d(pi/2)
    ell_max, beta = 12, 0.77
    delta = sk.wigner_d_half_pi(ell_max)
    m = np.arange(-ell_max, ell_max + 1)
    rebuilt = np.einsum("lkm,k,lkn->lmn", delta, np.exp(-1j * m * beta), delta) * 1j ** (m[:, None] - m[None, :])
    np.testing.assert_allclose(rebuilt, sk.wigner_d(ell_max, beta), atol=1e-14)


@pytest.mark.parametrize(
    "args,match",
    [
        ((-1, 0.3), "'ell_max'"),
        ((2.5, 0.3), "'ell_max'"),
        ((4, 0.3, 5), "'ell_min'"),
        ((4, 0.3, -1), "'ell_min'"),
        ((4, "x"), "'beta'"),
        ((4, float("nan")), "'beta'"),
        ((5000, 0.1), "GiB"),
    ],
)
def test_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        sk.wigner_d(*args)


def test_half_pi_bad_arguments():
    with pytest.raises(ValueError, match="'ell_max'"):
        sk.wigner_d_half_pi(-3)
