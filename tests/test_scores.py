"""Transferability scores: values worked out by hand, behaviour, and numbers of the reference code."""
import math

import numpy as np
import pytest

from tlbench.analysis import scores as S
from tlbench.plugins.loading import plugin_manager


def _reference_input():
    """The fixed input the reference numbers below were computed on."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 8))
    y = rng.integers(0, 3, 60)
    f[:, 0] += y
    wide = rng.normal(size=(20, 50))
    wide_y = rng.integers(0, 3, 20)
    logits = rng.normal(size=(60, 5))
    return f, y, wide, wide_y, logits


# Numbers printed by the algorithms of TLlib's tllib/ranking (logme.py, leep.py, nce.py, hscore.py;
# github.com/thuml/Transfer-Learning-Library) run on _reference_input(); LEEP was given
# softmax(logits), NCE argmax(logits).
REFERENCE = {"logme": -0.7554340583663257, "logme_wide": -0.8394707515669633,
             "leep": -1.0598470941778972, "nce": -1.0115593390386746, "hscore": 0.7160030689188901}


def test_reference_values():
    f, y, wide, wide_y, logits = _reference_input()
    assert S.log_maximum_evidence(f, y) == pytest.approx(REFERENCE["logme"], abs=1e-9)
    # D > N: our thin-SVD path against the reference's D×D eigendecomposition
    assert S.log_maximum_evidence(wide, wide_y) == pytest.approx(REFERENCE["logme_wide"], abs=1e-9)
    assert S.log_expected_empirical_prediction(logits, y) == pytest.approx(REFERENCE["leep"], abs=1e-12)
    assert S.negative_conditional_entropy(logits.argmax(1), y) == pytest.approx(REFERENCE["nce"], abs=1e-12)
    assert S.h_score(f, y) == pytest.approx(REFERENCE["hscore"], abs=1e-9)


def test_nce_by_hand():
    # P(y, z): (0,0) = 1/4, (1,0) = 1/4, (1,1) = 1/2.  H(Y|Z) = 1/2 · ln 2 (z = 0) + 1/2 · 0 (z = 1).
    assert S.negative_conditional_entropy([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(-0.5 * math.log(2))
    # z determines y (whatever the names of the classes): no uncertainty left
    assert S.negative_conditional_entropy([7, 7, 3, 3], [1, 1, 0, 0]) == 0.0
    # z independent of y: H(Y|Z) = H(Y) = ln 2
    assert S.negative_conditional_entropy([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(-math.log(2))


def test_leep_by_hand():
    # θ = (.8, .2) for the two y = 0 examples, (.2, .8) for the two y = 1 ones.
    # joint P(y, z) = [[.4, .1], [.1, .4]], P(z) = (.5, .5), P(y|z=0) = (.8, .2), P(y|z=1) = (.2, .8);
    # every example's expected empirical prediction of its own label is .8·.8 + .2·.2 = .68.
    theta = np.array([[.8, .2], [.8, .2], [.2, .8], [.2, .8]])
    y = np.array([0, 0, 1, 1])
    assert S.log_expected_empirical_prediction(theta, y, probabilities=True) == pytest.approx(math.log(.68))
    # the same through logits (softmax(log θ) = θ)
    assert S.log_expected_empirical_prediction(np.log(theta), y) == pytest.approx(math.log(.68))


def test_leep_higher_when_source_predictions_determine_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 200)
    informative = 6.0 * np.eye(10)[2 * y + rng.integers(0, 2, 200)]   # source class 2y or 2y+1
    noise = rng.normal(size=(200, 10))
    leep_informative = S.log_expected_empirical_prediction(informative, y)
    assert leep_informative > S.log_expected_empirical_prediction(noise, y) + 0.5
    assert leep_informative > math.log(0.9)   # nearly certain
    assert S.negative_conditional_entropy(informative.argmax(1), y) == 0.0


def test_h_score_closed_form():
    # 1-D: H = var(E[f|y]) / var(f). f = 0,1,2,3 with classes {0,1},{2,3}: class means .5, 2.5;
    # sample variances 5/3 and 4/3 -> 0.8.
    f = np.array([[0.], [1.], [2.], [3.]])
    assert S.h_score(f, [0, 0, 1, 1]) == pytest.approx(0.8)
    # features equal to their class means: all variance is between classes, H = dimension of the means' span
    assert S.h_score(np.array([[0.], [0.], [2.], [2.]]), [0, 0, 1, 1]) == pytest.approx(1.0)
    # invariant to an invertible linear map of the features
    rng = np.random.default_rng(2)
    f, y = rng.normal(size=(80, 4)), rng.integers(0, 3, 80)
    a = rng.normal(size=(4, 4)) + 3 * np.eye(4)
    assert S.h_score(f @ a, y) == pytest.approx(S.h_score(f, y), rel=1e-8)


def test_logme_prefers_features_linear_in_labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 150)
    onehot = np.eye(3)[y]
    linear = onehot @ rng.normal(size=(3, 16)) + 0.05 * rng.normal(size=(150, 16))
    noise = rng.normal(size=(150, 16))
    assert S.log_maximum_evidence(linear, y) > S.log_maximum_evidence(noise, y) + 0.5
    # wide features (D > N) work and keep the order
    wide_linear = onehot @ rng.normal(size=(3, 300)) + 0.05 * rng.normal(size=(150, 300))
    wide_noise = rng.normal(size=(150, 300))
    assert np.isfinite(S.log_maximum_evidence(wide_noise, y))
    assert S.log_maximum_evidence(wide_linear, y) > S.log_maximum_evidence(wide_noise, y)


def test_knn_accuracy():
    # separated clusters: every leave-one-out neighbour has the right label
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1, 2], 20)
    clusters = 10 * np.eye(3)[y] + 0.1 * rng.normal(size=(60, 3))
    assert S.knn_accuracy(clusters, y, k=5) == 1.0
    # by hand, k = 1, points 0, 1, 10, 11, 13: only 13 (label 0) has a neighbour of the other class (11)
    points = np.array([[0.], [1.], [10.], [11.], [13.]])
    assert S.knn_accuracy(points, [0, 0, 1, 1, 0], k=1) == pytest.approx(0.8)
    # duplicates: each example still leaves itself out (its twin votes)
    twins = np.array([[0.], [0.], [5.], [5.]])
    assert S.knn_accuracy(twins, [0, 0, 1, 1], k=1) == 1.0
    assert S.knn_accuracy(twins, [0, 1, 0, 1], k=1) == 0.0
    # random features, random labels: about chance
    noise_acc = S.knn_accuracy(rng.normal(size=(300, 5)), rng.integers(0, 3, 300))
    assert 0.2 < noise_acc < 0.5


def test_labels_must_be_class_indices():
    with pytest.raises(ValueError, match="non-negative integers"):
        S.h_score(np.zeros((3, 2)), [0.5, 1, 0])
    with pytest.raises(ValueError, match="non-negative integers"):
        S.negative_conditional_entropy([0, 1], [-1, 0])


def test_builtin_scorer_plugins():
    pm, _ = plugin_manager()
    records = {r.name: r for batch in pm.hook.tlbench_scorers() for r in batch}
    assert {"logme", "leep", "nce", "hscore", "knn"} <= set(records)
    assert {n for n, r in records.items() if r.needs_source_logits} >= {"leep", "nce"}
    f, y, _, _, logits = _reference_input()
    assert records["logme"].score(f, y, None) == pytest.approx(REFERENCE["logme"], abs=1e-9)
    assert records["hscore"].score(f, y, None) == pytest.approx(REFERENCE["hscore"], abs=1e-9)
    assert records["leep"].score(f, y, logits) == pytest.approx(REFERENCE["leep"], abs=1e-12)
    assert records["nce"].score(f, y, logits) == pytest.approx(REFERENCE["nce"], abs=1e-12)
    assert 0 <= records["knn"].score(f, y, None) <= 1
    assert all(r.higher_is_better for r in records.values())


def test_h_score_saturates_when_features_outnumber_examples():
    """With D >= N - 1 the H-score is C - 1 whatever the features: the plugin refuses to rank by it."""
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], 10)
    wide_noise = rng.normal(size=(30, 40))
    assert S.h_score(wide_noise, y) == pytest.approx(2.0, abs=1e-6)
    pm, _ = plugin_manager()
    hscore = next(r for batch in pm.hook.tlbench_scorers() for r in batch if r.name == "hscore")
    with pytest.raises(ValueError, match="always C - 1 = 2"):
        hscore.score(wide_noise, y, None)
