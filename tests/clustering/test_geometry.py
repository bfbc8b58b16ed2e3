"""Geometric measures against hand-computed values; bounded-memory estimates for big clusters."""

import numpy as np
import pytest

from clustering import geometry as G

X = np.array([[0.0], [2.0], [10.0], [11.0]])
LABELS = np.array([0, 0, 1, 1])


def test_values_by_hand():
    clusters, cents = G.cluster_centroids(X, LABELS)
    assert clusters.tolist() == [0, 1]
    np.testing.assert_allclose(cents, [[1.0], [10.5]])
    np.testing.assert_allclose(G.cluster_diameters(X, LABELS), [2.0, 1.0])
    np.testing.assert_allclose(G.dispersion(X, LABELS), [1.0, 0.5])
    np.testing.assert_allclose(G.separation(X, LABELS), [9.0, 8.5])  # centroid 1 -> 10; 10.5 -> 2
    np.testing.assert_allclose(G.centroid_to_centroid(cents), [9.5, 9.5])
    geo = G.cluster_geometry(X, LABELS)
    np.testing.assert_allclose(geo.snr_diameter_separation, [2 / 9, 1 / 8.5])
    np.testing.assert_allclose(geo.snr_dispersion_centroid, [1 / 9.5, 0.5 / 9.5])
    rows = geo.table()
    assert rows[1] == pytest.approx({"cluster": 1, "size": 2, "diameter": 1.0, "dispersion": 0.5, "separation": 8.5,
                                     "centroid_to_centroid": 9.5, "snr_diameter_separation": 1 / 8.5,
                                     "snr_dispersion_centroid": 0.5 / 9.5})  # fmt: skip
    assert geo.summary()["median_diameter"] == pytest.approx(1.5)


def test_noise_counts_as_outside_and_singletons():
    Xn = np.vstack([X, [[5.0]], [[100.0]]])
    labels = np.array([0, 0, 1, 1, -1, 2])
    np.testing.assert_allclose(G.separation(Xn, labels)[:2], [4.0, 5.5])  # the noise point at 5 is nearest
    np.testing.assert_allclose(G.cluster_diameters(Xn, labels), [2.0, 1.0, 0.0])
    assert np.isnan(G.centroid_to_centroid(np.zeros((1, 3))))[0]
    with pytest.raises(ValueError, match="all labels are -1"):
        G.cluster_geometry(X, -np.ones(4, int))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 1\)"):
        G.cluster_diameters(X, LABELS[:3])


def test_quantile_and_sampling():
    rng = np.random.default_rng(0)
    Xb = rng.standard_normal((600, 8))
    labels = np.zeros(600, int)
    exact = G.cluster_diameters(Xb, labels)[0]
    from scipy.spatial.distance import pdist

    d = pdist(Xb)
    assert exact == pytest.approx(d.max())
    assert G.cluster_diameters(Xb, labels, quantile=0.5)[0] == pytest.approx(np.quantile(d, 0.5))
    sampled = G.cluster_diameters(Xb, labels, max_points=100)[0]
    assert 0.5 * exact < sampled <= exact + 1e-9
    median = G.cluster_diameters(Xb, labels, quantile=0.5, max_points=200)[0]
    assert median == pytest.approx(np.quantile(d, 0.5), rel=0.05)
    with pytest.raises(ValueError, match=r"quantile must be in \[0, 1\]"):
        G.cluster_diameters(Xb, labels, quantile=2)
