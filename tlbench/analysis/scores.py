"""Transferability scores: how well a frozen backbone should transfer to a labelled target task,
estimated from its features (or its source-task predictions) before any fine-tuning.

Every score is a pure function of NumPy arrays (no model, no training loop), higher is better:

* :func:`log_maximum_evidence` (LogME; You et al., ICML 2021)
* :func:`log_expected_empirical_prediction` (LEEP; Nguyen et al., ICML 2020)
* :func:`negative_conditional_entropy` (NCE; Tran et al., ICCV 2019)
* :func:`h_score` (H-score; Bao et al., ICIP 2019)
* :func:`knn_accuracy` (leave-one-out k-nearest-neighbour accuracy: the plain baseline)

``labels`` are ints in ``[0, C)``. The maths follows the papers and the reference implementations
(LogME's fixed-point evidence maximisation as in the authors' code and TLlib's ``tllib.ranking``).
"""
from __future__ import annotations

import numpy as np

__all__ = ["log_maximum_evidence", "log_expected_empirical_prediction", "negative_conditional_entropy",
           "h_score", "knn_accuracy", "softmax"]


def _labels(labels) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    integral = np.issubdtype(y.dtype, np.integer) or bool(np.all(y == np.round(y)))
    if not integral or (y.size and y.min() < 0):
        raise ValueError("labels must be non-negative integers")
    return y.astype(np.int64)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- LogME

def log_maximum_evidence(features: np.ndarray, labels: np.ndarray, max_iter: int = 11,
                         tol: float = 0.01) -> float:
    """LogME: the maximum log evidence of a Bayesian linear model ``y = F w + noise`` (prior
    ``w ~ N(0, α⁻¹ I)``, noise precision ``β``), per example, averaged over the one-vs-rest 0/1
    targets of each class.

    ``α`` and ``β`` are found by the MacKay fixed point of the paper's Algorithm 1 (``γ = Σ βs/(α+βs)``,
    ``α = γ / mᵀm``, ``β = (N-γ) / ‖y - Fm‖²``), at most ``max_iter`` steps, stopped when ``α/β``
    changes by less than ``tol`` (relative), as in the reference code. Works on the thin SVD of
    ``F``, so ``D > N`` (wide features, few examples) costs no ``D×D`` matrix.
    """
    f = np.asarray(features, dtype=np.float64)
    y = _labels(labels)
    n, d = f.shape
    u, sigma, _ = np.linalg.svd(f, full_matrices=False)   # F = U diag(σ) Wᵀ, k = min(N, D)
    s = sigma ** 2                                         # the nonzero eigenvalues of FᵀF
    extra = d - len(s)                                     # eigenvalues of FᵀF that are exactly 0
    evidences = []
    for c in range(int(y.max()) + 1):
        t = (y == c).astype(np.float64)
        proj = u.T @ t                                     # Uᵀy
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        for _ in range(max_iter):
            gamma = (s / (s + lam)).sum()
            coef = beta * sigma * proj / (alpha + beta * s)   # m = W coef
            alpha_de = (coef * coef).sum()                    # mᵀm
            alpha = gamma / alpha_de
            beta_de = ((t - u @ (sigma * coef)) ** 2).sum()   # ‖y - Fm‖²
            beta = (n - gamma) / beta_de
            new_lam = alpha / beta
            if abs(new_lam - lam) / lam < tol:
                break
            lam = new_lam
        log_det = np.log(alpha + beta * s).sum() + extra * np.log(alpha)
        evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * log_det
                    - beta / 2.0 * beta_de - alpha / 2.0 * alpha_de - n / 2.0 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


# ---------------------------------------------------------------------------- LEEP

def log_expected_empirical_prediction(source_logits: np.ndarray, labels: np.ndarray,
                                      probabilities: bool = False) -> float:
    """LEEP: the mean log-likelihood of the target labels under the "expected empirical predictor"
    ``p(y|x) = Σ_z P̂(y|z) θ(x)_z``, where ``θ(x)`` is the source model's predicted distribution over
    its source classes ``z`` and ``P̂(y|z)`` the empirical conditional from the joint
    ``P̂(y, z) = 1/N Σ_{i: y_i = y} θ(x_i)_z``.

    ``source_logits`` are softmaxed first (``probabilities=True``: they already are probabilities).
    Source classes that receive no probability mass at all are left out (they cannot occur in the sum).
    """
    theta = np.asarray(source_logits, dtype=np.float64) if probabilities else softmax(source_logits)
    y = _labels(labels)
    n = len(y)
    onehot = np.zeros((n, int(y.max()) + 1))
    onehot[np.arange(n), y] = 1.0
    joint = onehot.T @ theta / n                            # C_t × Z
    p_z = joint.sum(axis=0)
    used = p_z > 0
    conditional = joint[:, used] / p_z[used]                # P̂(y | z), C_t × Z'
    eep = theta[:, used] @ conditional.T                    # N × C_t
    return float(np.mean(np.log(eep[np.arange(n), y])))


# ---------------------------------------------------------------------------- NCE

def negative_conditional_entropy(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE: ``-H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z)`` of the target labels ``Y`` given the source
    model's predicted (argmax) source labels ``Z``; 0 when ``Z`` determines ``Y``."""
    z = _labels(source_labels)
    y = _labels(labels)
    if len(z) != len(y):
        raise ValueError(f"{len(z)} source labels for {len(y)} labels")
    _, z = np.unique(z, return_inverse=True)
    joint = np.zeros((int(y.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    p_z = joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log((joint / p_z)[nonzero])))


# ---------------------------------------------------------------------------- H-score

def h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: ``tr(cov(f)⁻¹ cov(E[f | y]))``, the features' between-class covariance measured in
    the metric of their total covariance (a pseudo-inverse, as in the reference code). Both covariances
    use the same ``N-1`` normalisation, so it does not matter."""
    f = np.asarray(features, dtype=np.float64)
    y = _labels(labels)
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    cov_f = np.atleast_2d(np.cov(f, rowvar=False))
    cov_g = np.atleast_2d(np.cov(g, rowvar=False))
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


# ---------------------------------------------------------------------------- k-NN

def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour vote (Euclidean distance) on the features:
    each example is classified by its ``k`` nearest *other* examples; a tied vote goes to the tied class
    with the nearest member. ``k`` is capped at ``N - 1``."""
    from sklearn.neighbors import NearestNeighbors

    f = np.asarray(features, dtype=np.float64)
    y = _labels(labels)
    n = len(y)
    if n < 2:
        raise ValueError("k-NN accuracy needs at least 2 examples")
    k = max(1, min(int(k), n - 1))
    _, index = NearestNeighbors(n_neighbors=k + 1).fit(f).kneighbors(f)
    # drop each example itself (with duplicates it need not come first), keep the k nearest others
    others = np.array([[j for j in row if j != i][:k] for i, row in enumerate(index)])
    neighbour_labels = y[others]                            # N × k, nearest first
    num_classes = int(y.max()) + 1
    votes = np.zeros((n, num_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbour_labels.ravel()), 1.0)
    # tie-break: among classes with the most votes, the one whose first member is nearest
    first = np.full((n, num_classes), k, dtype=np.float64)
    for rank in range(k - 1, -1, -1):
        first[np.arange(n), neighbour_labels[:, rank]] = rank
    predicted = np.argmax(votes - first / (k + 1), axis=1)
    return float(np.mean(predicted == y))
