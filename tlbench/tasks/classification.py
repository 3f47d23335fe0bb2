"""Classification: one class per example, a linear head on the pooled features, cross-entropy,
scored by accuracy (right or wrong per example) with macro-F1 of the test split."""
from __future__ import annotations

from tlbench.tasks.task import Evaluation, Task, register


def _model(backbone, num_classes: int):
    from tlbench.contract.backbone import Classifier

    return Classifier(backbone, num_classes)


def _step(model, train):
    from tlbench.contract.step import ClassificationStep

    return ClassificationStep(model, train.label_smoothing)


def _evaluate(logits, split, num_classes: int) -> Evaluation:
    """Accuracy, the per-example evidence (prediction and probabilities) and macro-F1."""
    from sklearn.metrics import f1_score

    from tlbench.contract.evidence import from_logits

    labels = split.labels.cpu()
    predicted = logits.argmax(1)
    return Evaluation((predicted == labels).float().mean().item(), from_logits(logits, labels),
                      {"macro_f1": f1_score(labels, predicted, average="macro")})


def accuracy(model, split, batch_size: int, autocast, num_classes: int) -> float:
    """Accuracy of ``model``'s first ``num_classes`` outputs on ``split``, counted on the device
    and read once (one host sync); the model's train mode is restored."""
    import torch

    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    with torch.no_grad():
        for inputs, labels in split.batches(batch_size):
            with autocast():
                logits = model(inputs)
            correct += (logits[:, :num_classes].argmax(1) == labels).sum()
    model.train(was_training)
    return correct.item() / len(split)


def _example(n: int, size: int, num_classes: int):
    """``n`` random images, their classes in turn ``0, 1, ..., num_classes - 1, 0, ...``."""
    import torch

    from tlbench.contract.values import Split
    from tlbench.modalities.modality import get

    return Split(get("image").example(n, size), torch.arange(n) % num_classes)


def _check_targets(split, num_classes: int) -> None:
    """A classification split's truth is its labels: it has no ``targets``."""
    if split.targets is not None:
        raise ValueError(f"a classification split has no targets (its labels are the truth); got a tensor of "
                         f"shape {tuple(split.targets.shape)}: declare the dataset's task")


CLASSIFICATION = register(Task(
    "classification", "one class per example", "acc", "accuracy", "accuracy: the share of examples whose class is right",
    _model, _step, _evaluate, {"macro_f1": "macro-averaged F1 over the classes (sklearn)"}, accuracy,
    example=_example, check_targets=_check_targets))
