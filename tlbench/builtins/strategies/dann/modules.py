"""DANN's modules (torch): the gradient reversal, the discriminator, the joint model, the target
batches and the training step; imported by :func:`tlbench.builtins.strategies.dann.train`."""
from __future__ import annotations

import torch
from torch import nn

from tlbench.builtins.strategies.dann import DannOptions, lambda_schedule
from tlbench.contract.step import StepOutput, TrainStep
from tlbench.contract.values import take
from tlbench.modalities import modality


class GradientReversal(torch.autograd.Function):
    """Identity forward; the upstream gradient times ``-lambda`` backward. ``lambda`` is a tensor
    (a 0-d buffer), so that a compiled graph reads its value instead of specialising on it."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(lambd)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (lambd,) = ctx.saved_tensors
        return grad.neg() * lambd.to(grad.dtype), None


def grad_reverse(x: torch.Tensor, lambd: torch.Tensor | float) -> torch.Tensor:
    return GradientReversal.apply(x, torch.as_tensor(lambd, dtype=x.dtype, device=x.device))


class DomainDiscriminator(nn.Sequential):
    """``feature_dim -> hidden -> hidden -> 1`` (ReLU, dropout): the logit of "target domain"."""

    def __init__(self, feature_dim: int, hidden: int = 1024, dropout: float = 0.5):
        super().__init__(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, 1))


class Unlabelled:
    """Shuffled inputs of ``split`` (the target training split), epoch after epoch, in batches of
    any requested size, so that every target batch matches its source batch. Only the inputs are
    kept: the labels are never read."""

    def __init__(self, ctx, split: str = "target_train"):
        self.inputs = ctx.data[split].inputs
        self.size = len(ctx.data[split])
        self.device = ctx.device
        self.generator = ctx.generator
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def take(self, n: int):
        parts = []
        while n > 0:
            if self.position == len(self.order):
                self.order = torch.randperm(self.size, generator=self.generator).to(self.device)
                self.position = 0
            k = min(n, len(self.order) - self.position)
            parts.append(self.order[self.position:self.position + k])
            self.position += k
            n -= k
        return take(self.inputs, torch.cat(parts))


class DannModel(nn.Module):
    """Backbone, head and discriminator; ``forward`` gives class logits and the domain logit."""

    def __init__(self, classifier: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.backbone = classifier.backbone
        self.head = classifier.head
        self.discriminator = discriminator

    def forward(self, inputs) -> torch.Tensor:
        features = self.backbone.extract(inputs)
        return torch.cat([self.head(features), self.discriminator(features)], dim=1)


class DannStep(TrainStep):
    """One DANN step: a labelled source batch and an equally large unlabelled target batch in one
    forward pass (joined by the rule of the backbone's modality); loss = class cross-entropy +
    domain BCE behind the gradient reversal, whose weight ``lambda_p`` follows the paper's
    schedule: a 0-d buffer filled in :meth:`advance`, outside the graph, so that a compiled step
    is traced once."""

    def __init__(self, model: DannModel, target: "Unlabelled", options: DannOptions):
        super().__init__(model)
        self.target, self.options = target, options
        self.join = modality.get(model.backbone.modality).join
        self.register_buffer("lambd", torch.zeros((), device=next(model.parameters()).device), persistent=False)

    def advance(self, step: int, steps: int) -> None:
        self.lambd.fill_(lambda_schedule(step / steps, self.options.lambda_max, self.options.gamma))

    def forward(self, source, labels: torch.Tensor) -> StepOutput:
        model, n = self.model, len(labels)
        features = self.join(model.backbone, source, self.target.take(n))
        domains = torch.cat([torch.zeros(n, device=labels.device), torch.ones(n, device=labels.device)])
        class_loss = nn.functional.cross_entropy(model.head(features[:n]), labels)
        domain_logits = model.discriminator(grad_reverse(features, self.lambd)).squeeze(1)
        domain_loss = nn.functional.binary_cross_entropy_with_logits(domain_logits.float(), domains)
        # source and target images both train
        return StepOutput(class_loss + domain_loss, 2 * n, {"class_loss": class_loss, "domain_loss": domain_loss})
