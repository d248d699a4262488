"""Specification of FeatureReducer: the encoders' z-scoring and PCA, in memory or incremental."""

import numpy as np
import pytest
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainldm.features import FeatureReducer
from brainldm.ridge import standardize_columns


def _planted(n_images=120, n_features=40, rank=5, seed=0):
    """Features of rank ``rank`` plus a little noise, 3 trials per image, float32."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n_images, rank)) @ rng.standard_normal((rank, n_features))
    images += 0.01 * rng.standard_normal(images.shape)
    images = (images * rng.uniform(0.5, 5, n_features) + rng.normal(size=n_features)).astype(
        np.float32
    )
    trials = np.repeat(np.arange(n_images), 3)
    return images[trials], trials


def test_the_reduction_is_standardize_columns_then_a_seeded_pca_on_one_row_per_image():
    # The computation the encoders have always made, to the last digit: z-scoring with
    # the training rows' float64 statistics, then PCA(random_state=0) on each image's first row.
    X, trials = _planted()
    reducer = FeatureReducer(n_components=4).fit(X, groups=trials)
    standardized, mean, scale = standardize_columns(X)
    first = np.sort(np.unique(trials, return_index=True)[1])
    pca = PCA(4, svd_solver="auto", random_state=0).fit(standardized[first])
    np.testing.assert_array_equal(reducer.transform(X), pca.transform(standardized))
    np.testing.assert_array_equal(reducer.mean_, mean)
    np.testing.assert_array_equal(reducer.scale_, scale)
    assert reducer.pca_.n_samples_ == 120 and reducer.transform(X).dtype == np.float32
    np.testing.assert_array_equal(reducer.fit_transform(X, groups=trials), reducer.transform(X))


def test_it_equals_a_standard_scaler_and_a_pca():
    X, _ = _planted()
    X = X.astype(np.float64)
    reducer = FeatureReducer(n_components=6).fit(X)
    reference = make_pipeline(StandardScaler(), PCA(6, random_state=0)).fit(X)
    np.testing.assert_allclose(reducer.transform(X), reference.transform(X), atol=1e-8)
    assert FeatureReducer(n_components=None).fit(X).transform(X) == pytest.approx(
        StandardScaler().fit_transform(X), abs=1e-12
    )


def test_the_incremental_path_agrees_with_the_in_memory_one():
    X, trials = _planted(n_images=300)
    memory = FeatureReducer(n_components=5, incremental=False).fit(X, groups=trials)
    incremental = FeatureReducer(n_components=5, incremental=True, batch_size=64)
    incremental.fit(X, groups=trials)
    assert isinstance(incremental.pca_, IncrementalPCA)
    expected, got = memory.transform(X), incremental.transform(X)
    # Each component is found up to its sign.
    got *= np.sign(np.sum(got * expected, axis=0))
    np.testing.assert_allclose(got, expected, atol=2e-3 * np.abs(expected).max())
    np.testing.assert_allclose(incremental.mean_, memory.mean_, rtol=1e-5)
    np.testing.assert_allclose(incremental.scale_, memory.scale_, rtol=1e-4)


def test_the_incremental_path_reads_a_memmap_in_batches(tmp_path):
    X, trials = _planted(n_images=200)
    mapped = np.lib.format.open_memmap(tmp_path / "X.npy", "w+", np.float32, X.shape)
    mapped[:] = X
    reducer = FeatureReducer(n_components=5, incremental=True, batch_size=50)
    scores = reducer.fit(mapped, groups=trials).transform(mapped)
    np.testing.assert_allclose(scores, reducer.transform(X), rtol=1e-6)
    assert scores.shape == (600, 5) and scores.dtype == np.float32


def test_too_many_components_are_capped_with_a_warning():
    X, trials = _planted(n_images=10, n_features=40)
    with pytest.warns(UserWarning, match=r"\(10 images, 40 features\): keeping 10"):
        reducer = FeatureReducer(n_components=30).fit(X, groups=trials)
    assert reducer.n_components_ == 10


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, "n_components"),
        ({"incremental": "yes"}, "'incremental' parameter of FeatureReducer must be"),
    ],
)
def test_bad_parameters_are_refused(params, match):
    X, _ = _planted(n_images=10)
    with pytest.raises(ValueError, match=match):
        FeatureReducer(**params).fit(X)


@parametrize_with_checks([FeatureReducer(n_components=2)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)
