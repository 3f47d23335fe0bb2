"""What adapting a pretrained backbone cost it: forgetting on held-out reference tasks and the drift
of its source-task predictions (issue 24).

A cell's *adapted backbone* is the backbone inside the model its strategy predicted with
(``ctx.predict``, held in ``ctx.deployed``). On each reference task (``[forgetting] reference``) a
linear probe (:class:`tlbench.train.strategies.Probe`, as the ``linear_probe`` strategy fits it at
C = 1) is fitted once on the pretrained backbone's features and once on the adapted one's, with the
same examples; forgetting is the first probe's test accuracy minus the
second's, per example paired (both predictions are stored as evidence: ``reference0:<task>`` and
``reference:<task>``). A strategy that predicted from frozen features without deploying a model
(the linear probe) left the backbone untouched: its adapted features *are* the pretrained ones,
so its forgetting is exactly zero. Where the backbone keeps its pretrained source head (ImageNet
classifiers), the source predictions of both networks on the reference test examples give
``source_agreement`` (top-1 agreement) and ``source_kl`` (mean KL divergence, pretrained ‖ adapted).
"""
from __future__ import annotations

import torch
from torch import nn

from tlbench.contract import evidence as evidence_mod
from tlbench.contract.backbone import Backbone, TaskModel
from tlbench.train.context import Features
from tlbench.train.strategies import Probe

__all__ = ["adapted_backbone", "forgetting", "source_drift"]


def adapted_backbone(model: nn.Module | None) -> Backbone | None:
    """The backbone of the :class:`Classifier` inside a deployed model (a peft wrapper, a
    batch-norm freezer, ...), or None when there is none to find."""
    if model is None:
        return None
    return next((m.backbone for m in model.modules() if isinstance(m, TaskModel)), None)


def forgetting(pretrained: Features, adapted: Features, labels: dict[str, torch.Tensor],
               num_classes: int) -> tuple[evidence_mod.SplitEvidence, evidence_mod.SplitEvidence]:
    """(pretrained, adapted) probe evidence on the reference ``test`` split: each probe fitted on its
    features of the ``train`` split. Identical features give identical evidence."""
    def probe(features: Features) -> evidence_mod.SplitEvidence:
        fitted = Probe.fit(features.splits["train"], labels["train"])
        return evidence_mod.from_logits(fitted.logits(features.splits["test"], num_classes), labels["test"])
    before = probe(pretrained)
    return before, (before if adapted is pretrained else probe(adapted))


def source_drift(pretrained: torch.Tensor, adapted: torch.Tensor) -> tuple[float, float]:
    """(top-1 agreement, mean KL(pretrained ‖ adapted)) of two networks' source-task logits."""
    p, q = torch.log_softmax(pretrained.double(), 1), torch.log_softmax(adapted.double(), 1)
    agreement = (pretrained.argmax(1) == adapted.argmax(1)).double().mean().item()
    kl = (p.exp() * (p - q)).sum(1).mean().item()
    return agreement, max(kl, 0.0)
