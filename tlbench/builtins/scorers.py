"""The built-in transferability scorers (pure functions in :mod:`tlbench.analysis.scores`)."""
from __future__ import annotations

import numpy as np

import tlbench
from tlbench.analysis import scores

KNN_K = 5


def _logme(features, labels, source_logits=None) -> float:
    return scores.log_maximum_evidence(features, labels)


def _leep(features, labels, source_logits) -> float:
    return scores.log_expected_empirical_prediction(source_logits, labels)


def _nce(features, labels, source_logits) -> float:
    return scores.negative_conditional_entropy(np.asarray(source_logits).argmax(axis=1), labels)


def _hscore(features, labels, source_logits=None) -> float:
    n, d = features.shape
    if d >= n - 1:
        # the centred features then span every direction, so cov(f)^+ cov(E[f|y]) is a projection
        # and the H-score is C - 1 for any backbone: a rank by it would be noise
        raise ValueError(f"{d} feature dimensions for {n} examples: the H-score is then always "
                         f"C - 1 = {len(np.unique(labels)) - 1} and cannot rank backbones")
    return scores.h_score(features, labels)


def _knn(features, labels, source_logits=None) -> float:
    return scores.knn_accuracy(features, labels, k=KNN_K)


@tlbench.hookimpl
def tlbench_scorers():
    return [
        tlbench.ScorerPlugin("logme", "LogME: maximum Bayesian evidence of a linear model on the features, "
                             "per example (You et al., ICML 2021)", _logme),
        tlbench.ScorerPlugin("leep", "LEEP: log-likelihood of the expected empirical predictor from the "
                             "source head's softmax (Nguyen et al., ICML 2020)", _leep, needs_source_logits=True),
        tlbench.ScorerPlugin("nce", "NCE: negative conditional entropy of the labels given the source head's "
                             "argmax class (Tran et al., ICCV 2019)", _nce, needs_source_logits=True),
        tlbench.ScorerPlugin("hscore", "H-score: tr(cov(f)^-1 cov(E[f|y])) (Bao et al., ICIP 2019)", _hscore),
        tlbench.ScorerPlugin("knn", f"leave-one-out {KNN_K}-nearest-neighbour accuracy on the features "
                             "(baseline)", _knn),
    ]
