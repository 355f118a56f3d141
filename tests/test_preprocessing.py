import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from dl_course import data
from dl_course.preprocessing import covariance, fit_preprocessing, mean_squared_change


@pytest.fixture(scope="module")
def pixels():
    return data.load_digits()[0]


def correlated(n=500, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


def test_centering_and_standardization_agree_with_scikit_learn(pixels):
    centered = fit_preprocessing(pixels, "center").transform(pixels)
    np.testing.assert_allclose(centered.mean(axis=0), 0.0, atol=1e-12)
    ours = fit_preprocessing(pixels, "standardize").transform(pixels)
    theirs = StandardScaler().fit_transform(pixels)  # scale 1 for constant pixels too
    np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_pca_whitening_agrees_with_scikit_learn_up_to_sign_and_ddof():
    X = correlated()
    ours = fit_preprocessing(X, "pca").transform(X)
    theirs = PCA(whiten=True).fit_transform(X) * np.sqrt(len(X) / (len(X) - 1))  # n - 1 there
    signs = np.sign(np.sum(ours * theirs, axis=0))
    np.testing.assert_allclose(ours, theirs * signs, atol=1e-8)


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitened_training_data_have_identity_covariance(method):
    X = correlated()
    Z = fit_preprocessing(X, method).transform(X)
    np.testing.assert_allclose(covariance(Z), np.eye(5), atol=1e-10)


def test_degenerate_directions_are_dropped(pixels):
    pca = fit_preprocessing(pixels, "pca")
    zca = fit_preprocessing(pixels, "zca")
    k = np.linalg.matrix_rank(pixels - pixels.mean(axis=0))
    assert len(pca.eigenvalues) == k < 64  # some pixels are 0 in every image
    np.testing.assert_allclose(covariance(pca.transform(pixels)), np.eye(k), atol=1e-8)
    # ZCA: identity on the span of the data, zero across it (a projection of rank k)
    cov = covariance(zca.transform(pixels))
    np.testing.assert_allclose(cov @ cov, cov, atol=1e-8)
    assert np.trace(cov) == pytest.approx(k)
    np.testing.assert_allclose(zca.matrix, zca.matrix.T, atol=1e-12)  # ZCA is symmetric


def test_zca_moves_the_data_least_among_whitenings():
    X = correlated(d=4)
    zca = fit_preprocessing(X, "zca").transform(X)
    best = mean_squared_change(X, zca)
    rng = np.random.default_rng(1)
    for _ in range(50):  # every whitening is an orthogonal matrix times ZCA
        Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        assert mean_squared_change(X, zca @ Q.T) > best
    pca = fit_preprocessing(X, "pca").transform(X)
    assert mean_squared_change(X, pca) > best
    # the closed form: k + tr C - 2 tr C^(1/2)
    values = np.linalg.eigvalsh(covariance(X))
    assert best == pytest.approx(4 + values.sum() - 2 * np.sqrt(values).sum())


def test_eps_softens_the_scaling():
    X = correlated()
    Z = fit_preprocessing(X, "zca", eps=1.0).transform(X)
    values = np.linalg.eigvalsh(covariance(Z))
    assert np.all(values < 1.0)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((np.ones(5),), {}, ValueError, "X must be 2-D"),
        ((np.ones((1, 3)),), {}, ValueError, "at least 2 rows"),
        ((np.ones((4, 3)), "white"), {}, ValueError, "method must be one of"),
        ((np.ones((4, 3)),), {"eps": -1.0}, ValueError, "eps must be >= 0"),
        ((np.ones((4, 3)),), {"tol": "a"}, TypeError, "tol must be a real number"),
    ],
)
def test_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        fit_preprocessing(*args, **kwargs)


def test_transform_checks_the_width():
    fitted = fit_preprocessing(correlated(), "center")
    with pytest.raises(ValueError, match="X must have 5 columns"):
        fitted.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="same shape"):
        mean_squared_change(np.ones((3, 2)), np.ones((3, 3)))
