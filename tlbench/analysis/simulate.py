"""Known-truth evidence: which test examples a strategy gets right, simulated with a truth we set.

The one generator of simulated right/wrong evidence in tlbench: the unit tests of the statistics
use :func:`correct_matrix`, and the built-in ``known_truth`` dataset and ``simulated`` strategy
(:mod:`tlbench.builtins.known_truth`) use :func:`cell_correct`, so that a whole suite with a
known truth runs through ``tlbench run``, the store and the report (``bench/known_truth.py``).
Pure numpy (and scipy's normal quantile); no torch.

**The model.** A row (one task: one test set) has ``N`` examples; example ``i`` has a difficulty
``z_i ~ N(0, 1)``, shared by every strategy and seed of the row. Strategy ``k`` (true accuracy
``p_k``) trained with seed ``s`` has a seed effect ``a_ks ~ N(0, seed_sd²)`` in accuracy units,
and gets example ``i`` right when

    sqrt(ρ) · z_i + sqrt(1 − ρ) · e_ksi  <  Φ⁻¹(clip(p_k + a_ks, 0.001, 0.999)),   e_ksi ~ N(0, 1)

with ``ρ = agreement``. The left side is standard normal, so P(right | seed) = p_k + a_ks exactly
(up to the clip), and the truth of strategy k — its accuracy expected over seeds and over test
sets drawn from the same population — is ``p_k`` (:func:`true_accuracy` gives it with the clip
accounted for, which matters only within about 3 · seed_sd of 0 or 1). ``agreement`` ∈ [0, 1) is
the correlation of the latent scores of any two (strategy, seed) pairs on one example: at 0
errors fall independently, near 1 every strategy and seed fails on the same hard examples.

**Independence.** The seed effects ``a`` and the noise ``e`` of different strategies are
independent (so are those of different seeds); what strategies share is the row's difficulty
``z`` only. Two strategies with the same true accuracy are therefore equal in truth, and any
"told apart" between them is a false alarm. Seeds are crossed with strategies the way a suite
runs them (strategy ``a`` seed 0 and strategy ``b`` seed 0 share nothing but ``z``).

**Cell by cell.** The plugin makes one cell (one strategy, one seed) at a time, in any order and
in any process, so every random draw of :func:`cell_correct` comes from its own stream, seeded
from stable 64-bit digests (blake2b, never Python's salted ``hash``):

- ``z`` of (row, split),
- ``a`` of (row, strategy name, seed) — the same seed effect on the validation and the test split
  (a lucky seed is lucky on both, so selection on validation sees it),
- ``e`` of (row, strategy name, seed, split).

A row is named by an int or a string (``3`` and ``"3"`` are different rows; :func:`row_digest`);
a strategy by its name (the suite's label). Different rows are independent truths.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np

#: accuracies are clipped to this range before the normal quantile (the threshold stays finite)
CLIP = (1e-3, 1 - 1e-3)
#: split codes of the streams (and of the known_truth dataset's inputs)
SPLITS = {"train": 0, "val": 1, "test": 2}
# stream tags: which draw a stream is for, so that no two streams share a seed
_Z, _A, _E, _WRONG, _LABELS = 1, 2, 3, 4, 5


def digest(text: str) -> int:
    """A stable 64-bit integer of ``text`` (blake2b): the same in every process and Python."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def row_digest(row: int | str) -> int:
    """The 64-bit identity of a row: a digest of its JSON text (so ``3`` and ``"3"`` differ)."""
    if isinstance(row, bool) or not isinstance(row, (int, str)):
        raise TypeError(f"a row is named by an int or a string, not {type(row).__name__}")
    return digest("row:" + json.dumps(row))


def strategy_digest(name: str) -> int:
    return digest("strategy:" + name)


def _rng(*words: int) -> np.random.Generator:
    return np.random.default_rng([int(w) for w in words])


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return SPLITS[split]


def _check(accuracy, seed_sd, agreement) -> None:
    accuracy, seed_sd = np.asarray(accuracy, float), np.asarray(seed_sd, float)
    if np.any((accuracy < 0) | (accuracy > 1)):
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
    if np.any(seed_sd < 0):
        raise ValueError(f"seed_sd must be >= 0, got {seed_sd}")
    if not 0 <= agreement < 1:
        raise ValueError(f"agreement must be in [0, 1), got {agreement}")


def decide(accuracy: np.ndarray, seed_effect: np.ndarray, z: np.ndarray, noise: np.ndarray,
           agreement: float) -> np.ndarray:
    """The model's one rule, shared by both generators: right where ``sqrt(agreement) · z +
    sqrt(1 − agreement) · noise < Φ⁻¹(clip(accuracy + seed_effect))`` (arrays broadcast; the
    threshold over the last axis of ``z`` and ``noise``)."""
    from scipy.special import ndtri  # imported here: half a second, and the known_truth plugin is listed without it

    threshold = ndtri(np.clip(np.asarray(accuracy, float) + seed_effect, *CLIP))
    latent = np.sqrt(agreement) * z + np.sqrt(1 - agreement) * noise
    return latent < np.asarray(threshold)[..., None]


def correct_matrix(accuracies: Sequence[float] | np.ndarray, seeds: int, n_examples: int,
                   seed_sd: float | Sequence[float], agreement: float,
                   rng: np.random.Generator) -> np.ndarray:
    """One simulated row: ``K × S × N`` booleans, strategy k (true accuracy ``accuracies[k]``)
    with seed s right on test example i, under the model of this module (``seed_sd`` a number or
    one per strategy). All draws from ``rng``: for simulations of many rows at once; the plugin
    uses :func:`cell_correct`, which follows the same model from per-cell streams."""
    p = np.asarray(accuracies, float)
    sd = np.broadcast_to(np.asarray(seed_sd, float), p.shape)
    _check(p, sd, agreement)
    k = len(p)
    z = rng.standard_normal(n_examples)                        # difficulty, shared by all
    a = rng.standard_normal((k, seeds)) * sd[:, None]           # seed effects, in accuracy units
    e = rng.standard_normal((k, seeds, n_examples))            # each cell's own view of each example
    return decide(p[:, None], a, z, e, agreement)


def seed_effect(row: int | str, strategy: str, seed: int, seed_sd: float) -> float:
    """``a`` of (row, strategy, seed): the seed's shift of the strategy's accuracy (a standard
    normal draw times ``seed_sd``, so the same draw at every ``seed_sd``)."""
    return _seed_effect(row_digest(row), strategy_digest(strategy), seed, seed_sd)


def _seed_effect(row: int, strategy: int, seed: int, seed_sd: float) -> float:
    return float(seed_sd * _rng(_A, row, strategy, seed).standard_normal())


def difficulty(row: int | str, n_examples: int, split: str = "test") -> np.ndarray:
    """``z`` of (row, split): the examples' difficulty, shared by every strategy and seed."""
    return _difficulty(row_digest(row), n_examples, _split_code(split))


def _difficulty(row: int, n_examples: int, split: int) -> np.ndarray:
    return _rng(_Z, row, split).standard_normal(n_examples)


def cell_correct(row: int | str, strategy: str, seed: int, accuracy: float, seed_sd: float,
                 agreement: float, n_examples: int, split: str = "test") -> np.ndarray:
    """Which of a row's ``n_examples`` examples of ``split`` (``val`` or ``test``) the strategy
    named ``strategy`` with true accuracy ``accuracy`` gets right with ``seed``: booleans,
    example by example in the split's order.

    The model of this module (see its docstring) for one cell: P(right | seed) = accuracy +
    a, a ~ N(0, seed_sd²) drawn from (row, strategy, seed); the examples' difficulty z drawn from
    (row, split) and shared by every strategy and seed; the cell's own noise from (row, strategy,
    seed, split). Seed effects and noise of different strategies are independent. The same
    arguments give the same vector in any process; a different ``row`` is an independent truth."""
    return cell_correct_by_digest(row_digest(row), strategy, seed, accuracy, seed_sd, agreement, n_examples,
                                  split)


def cell_correct_by_digest(row_id: int, strategy: str, seed: int, accuracy: float, seed_sd: float,
                           agreement: float, n_examples: int, split: str = "test") -> np.ndarray:
    """:func:`cell_correct` of the row whose :func:`row_digest` is ``row_id`` (what the
    known_truth dataset writes into its inputs, and the simulated strategy reads back)."""
    _check(accuracy, seed_sd, agreement)
    code, name = _split_code(split), strategy_digest(strategy)
    z = _difficulty(row_id, n_examples, code)
    a = _seed_effect(row_id, name, seed, seed_sd)
    e = _rng(_E, row_id, name, seed, code).standard_normal(n_examples)
    return decide(accuracy, a, z, e, agreement)


def wrong_offsets(row_id: int, strategy: str, seed: int, n_examples: int, classes: int,
                  split: str = "test") -> np.ndarray:
    """Where a cell is wrong it predicts ``(label + offset) % classes``: offsets uniform in
    ``1 .. classes − 1``, from their own stream of (row_id = :func:`row_digest`, strategy, seed,
    split)."""
    rng = _rng(_WRONG, row_id, strategy_digest(strategy), seed, _split_code(split))
    return rng.integers(1, max(classes, 2), n_examples)


def labels(row_id: int, n_examples: int, classes: int, split: str) -> np.ndarray:
    """The known_truth dataset's labels of a split: as balanced as ``n_examples`` allows
    (``i % classes``), shuffled by (row_id = :func:`row_digest`, split)."""
    return _rng(_LABELS, row_id, _split_code(split)).permutation(np.arange(n_examples) % classes)


def row_matrix(row: int | str, accuracies: dict[str, float], seeds: Sequence[int], n_examples: int,
               seed_sd: float, agreement: float, split: str = "test") -> np.ndarray:
    """``K × S × N``: :func:`cell_correct` of every strategy (in the order of ``accuracies``,
    name -> true accuracy) and seed of one row, cell by cell as the plugin makes them."""
    return np.stack([np.stack([cell_correct(row, name, s, p, seed_sd, agreement, n_examples, split)
                               for s in seeds]) for name, p in accuracies.items()])


def true_accuracy(accuracy: float, seed_sd: float) -> float:
    """The truth of a strategy: its accuracy expected over seeds and test sets,
    E[clip(accuracy + a, 0.001, 0.999)] with a ~ N(0, seed_sd²) (closed form). Equal to
    ``accuracy`` unless it lies within a few ``seed_sd`` of the clip."""
    from scipy.special import ndtr

    lo, hi = CLIP
    if seed_sd == 0:
        return float(np.clip(accuracy, lo, hi))
    alpha, beta = (lo - accuracy) / seed_sd, (hi - accuracy) / seed_sd
    phi = lambda x: np.exp(-x * x / 2) / np.sqrt(2 * np.pi)  # noqa: E731
    return float(lo * ndtr(alpha) + hi * (1 - ndtr(beta)) + accuracy * (ndtr(beta) - ndtr(alpha))
                 + seed_sd * (phi(alpha) - phi(beta)))
