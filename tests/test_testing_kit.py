"""The conformance kit (tlbench.testing): the built-in plugins pass it, and it catches plugins that
break the contracts, naming the plugin and the check."""
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import Field
from test_executors import ray_cluster  # noqa: F401 (the module's Ray instance, for the ray executor)
from torch import nn

import tlbench
from tlbench.analysis import scores
from tlbench import testing
from tlbench.builtins.backbones import tiny_cnn
from tlbench.builtins.backbones.tiny_cnn.model import TinyCNN
from tlbench.builtins.datasets import digits
from tlbench.builtins.executors import inprocess
from tlbench.builtins.strategies import finetune
from tlbench.plugins.executors import Retry
from tlbench.plugins.loading import plugin_manager
from tlbench.plugins.host import Host
from tlbench.plugins.registry import KINDS
from tlbench.testing import (check_backbone_plugin, check_dataset_plugin, check_executor_plugin,
                             check_scorer_plugin, check_strategy_plugin, parametrize_plugin_checks, plugin_checks)
from tlbench.run.worker import run_cell

PM, INFOS = plugin_manager()
REGISTRY = Host(PM).registry
BUILTIN_PLUGINS = {info.name for info in INFOS if info.distribution == "tlbench"}
BUILTINS = {(kind, name): record for kind in KINDS
            for name, record in REGISTRY.records[kind].items() if REGISTRY.sources[kind][name] in BUILTIN_PLUGINS}

#: options for built-ins whose defaults need something (a required field, real weights)
OPTIONS = {"timm": {"model": "resnet18", "weights": "none", "input_size": 32},
           "mnist": {"image_size": 8}, "mnist2digits": {"image_size": 8},  # 70,000 images: keep them small
           "digits-printed2hand": {"per_class": 10},
           **{name: {"max_per_class": 20} for name in ("sms_spam", "trec", "bbc_news", "vader_shift")},
           # executors on the CPU, one worker of one thread: the kit compares them with inprocess there
           "inprocess": {"device": "cpu"}, "local": {"devices": ["cpu"], "workers": 1, "threads": 1},
           "ray": {"workers": 1, "threads": 1, "num_gpus_per_cell": 0}}
#: built-ins not run here, and why
SKIPPED = {
    **{name: "needs the dataset files (download = true needs internet access)"
       for name in ("cifar10", "cifar100", "flowers102", "oxford_pets", "dtd", "eurosat")},
    "imagefolder": "needs a folder of images: test_imagefolder_conforms makes one",
    **{name: "needs files of the user's: tests/test_dense_datasets.py checks it on files it writes"
       for name in ("coco_detection", "mask_folder")},
    **{name: "needs a file of the user's: tests/test_text_datasets.py checks it on files it writes"
       for name in ("textfile", "textfile_shift", "hf_text", "hf_text_shift")},
    "simulated": "runs on known_truth inputs only: tests/test_known_truth.py runs the kit's strategy checks there",
}
CHECKED = [(record, OPTIONS.get(name)) for (kind, name), record in sorted(BUILTINS.items()) if name not in SKIPPED]


@parametrize_plugin_checks(CHECKED)
def test_builtin_plugins_conform(record, check, request):
    if isinstance(record, tlbench.ExecutorPlugin) and record.name == "ray":
        request.getfixturevalue("ray_cluster")  # skipped where Ray is not installed
    check(record)


@pytest.mark.parametrize("name", sorted(SKIPPED))
def test_skipped_builtins(name):
    assert any(n == name for _, n in BUILTINS), f"{name} is no longer a built-in: drop it from SKIPPED"
    pytest.skip(SKIPPED[name])


def test_every_builtin_is_checked_or_skipped_with_a_reason():
    assert {name for _, name in BUILTINS} == {r.name for r, _ in CHECKED} | set(SKIPPED)
    assert {"digits", "tiny_cnn", "finetune", "linear_probe", "lora", "dann", "scratch", "inprocess", "local", "ray",
            "logme", "leep", "nce", "hscore", "knn"} <= {r.name for r, _ in CHECKED}


def test_imagefolder_conforms(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    check_dataset_plugin(REGISTRY.get("dataset", "imagefolder"), {"root": str(tmp_path), "image_size": 8})


def test_ids_name_plugin_and_check():
    mark = parametrize_plugin_checks([REGISTRY.get("dataset", "digits"), (REGISTRY.get("strategy", "finetune"),
                                                                          {"lr": 1e-2})])
    ids = mark.kwargs["ids"]
    assert ids[:3] == ["digits-options_documented", "digits-deterministic_load", "digits-splits_shaped"]
    assert "finetune-reads_only_train_labels" in ids and "finetune-outputs_on_a_dense_cell" in ids
    assert len(ids) == len(set(ids)) == 9
    assert [c.options for r, c in mark.args[1] if r.name == "finetune"][0] == {"lr": 1e-2}


# ---- the kit catches broken plugins --------------------------------------------------------------

def strategy(run, name="broken", **kwargs):
    return tlbench.StrategyPlugin(name, "a broken strategy", finetune.FinetuneOptions, run, **kwargs)


def peeks_at_validation(ctx, options):
    """Fine-tunes, then nudges its validation logits towards the *validation labels* (a leak that
    would win any selection on validation)."""
    outcome = finetune.run(ctx, options)
    hint = nn.functional.one_hot(ctx.data["val"].labels.cpu(), ctx.num_classes).float()
    logits = {**outcome.logits, "val": outcome.logits["val"] + hint}
    return tlbench.Outcome(logits, outcome.trainable_params, outcome.total_params)


def trains_on_target_labels(ctx, options):
    """An 'adaptation' method that quietly trains on labelled target data."""
    model = ctx.classifier()
    ctx.fit(model, options.lr, split="target_train")
    return tlbench.Outcome(ctx.predict(model), 1, 1)


def test_leaking_validation_labels_is_caught():
    with pytest.raises(AssertionError, match=r"broken: check reads_only_train_labels failed: the labels of "
                                             r"\[.*'val'.*\] \(which the strategy must not use\) changed"):
        check_strategy_plugin(strategy(peeks_at_validation))


def test_training_on_target_labels_is_caught_unless_oracle():
    with pytest.raises(AssertionError, match="reads_only_train_labels failed"):
        check_strategy_plugin(strategy(trains_on_target_labels, needs_target_domain=True, role="adaptation"))
    check_strategy_plugin(strategy(trains_on_target_labels, needs_target_domain=True, role="oracle",
                                   select_on="target_val"))


def test_a_false_finetunes_pretrained_declaration_is_caught():
    def new_classifier(ctx, options):
        """Predicts with a classifier of another width: nothing for wise_ft or soup to mix."""
        model = tlbench.Classifier(ctx.backbone(), ctx.num_classes + 1)
        logits = {k: v[:, :ctx.num_classes] for k, v in ctx.predict(model).items()}
        return tlbench.Outcome(logits, 1, 1)
    # no declaration: the check does not apply
    assert "predicts_with_its_classifier" not in {c.name for c in plugin_checks(strategy(new_classifier))}
    declared = strategy(new_classifier, finetunes_pretrained=True)
    check = next(c for c in plugin_checks(declared) if c.name == "predicts_with_its_classifier")
    with pytest.raises(AssertionError, match="predicts_with_its_classifier failed: declares finetunes_pretrained "
                                             "but its Classifier's parameters differ"):
        check(declared)


def test_nondeterminism_is_caught():
    def noisy(ctx, options):
        outcome = finetune.run(ctx, options)
        noise = torch.Generator().manual_seed(torch.seed())  # not from ctx.seed
        return tlbench.Outcome({k: v + torch.randn(v.shape, generator=noise) for k, v in outcome.logits.items()},
                               outcome.trainable_params, outcome.total_params)
    with pytest.raises(AssertionError, match="broken: check deterministic failed: two runs with the same seed"):
        check_strategy_plugin(strategy(noisy))
    leak_check = next(c for c in plugin_checks(strategy(noisy)) if c.name == "reads_only_train_labels")
    with pytest.raises(AssertionError, match="reads_only_train_labels failed: cannot tell: two runs with the same"):
        leak_check(strategy(noisy))  # a random strategy is not mistaken for a leaking one


def test_missing_and_misshapen_logits_are_caught():
    def only_test(ctx, options):
        return tlbench.Outcome({"test": torch.zeros(len(ctx.data["test"]), ctx.num_classes)}, 0, 1)

    def wrong_width(ctx, options):
        return tlbench.Outcome({k: torch.zeros(len(ctx.data[k]), 3) for k in ctx.eval_splits}, 0, 1)
    with pytest.raises(AssertionError, match=r"logits_for_eval_splits failed: logits for \['test'\], expected"):
        check_strategy_plugin(strategy(only_test))
    with pytest.raises(AssertionError, match=r"logits\['val'\] has shape \(\d+, 3\), expected \(\d+, 10\)"):
        check_strategy_plugin(strategy(wrong_width))


class LooseOptions(tlbench.Options):
    size: int = Field(8, ge=16)  # no description, and a default its own constraint rejects


def test_undocumented_options_and_invalid_defaults_are_caught():
    record = tlbench.DatasetPlugin("loose", "x", LooseOptions, digits.load)
    with pytest.raises(AssertionError, match=r"loose: check options_documented failed: options without a "
                                             r"description .*\['size'\]"):
        plugin_checks(record)[0](record)

    class Documented(tlbench.Options):
        size: int = Field(8, ge=16, description="side")
    record = tlbench.DatasetPlugin("loose", "x", Documented, digits.load)
    with pytest.raises(AssertionError, match="a default value does not validate"):
        plugin_checks(record)[0](record)


def test_broken_datasets_are_caught():
    state = {"calls": 0}

    def shuffled(options):
        state["calls"] += 1
        loaded = digits.load(digits.DigitsOptions(image_size=8))
        split = loaded.source["all"]
        order = torch.randperm(len(split), generator=torch.Generator().manual_seed(state["calls"]))
        return tlbench.LoadedDataset(loaded.classes, {"all": split.subset(order)})

    def float_images(options):
        loaded = digits.load(digits.DigitsOptions(image_size=8))
        split = loaded.source["all"]
        return tlbench.LoadedDataset(loaded.classes, {"train": tlbench.Split(split.inputs.float(), split.labels),
                                                      "test": split})

    def labels_out_of_range(options):
        loaded = digits.load(digits.DigitsOptions(image_size=8))
        return tlbench.LoadedDataset(loaded.classes[:5], loaded.source)

    def odd_splits(options):
        loaded = digits.load(digits.DigitsOptions(image_size=8))
        return tlbench.LoadedDataset(loaded.classes, {"train": loaded.source["all"], "val": loaded.source["all"]})

    cases = {shuffled: "deterministic_load failed: source split 'all': inputs differ between loads",
             float_images: r"splits_shaped failed: source split 'train': images must be a uint8 N×C×H×W",
             labels_out_of_range: r"labels must lie in \[0, 5\), found \[0, 9\]",
             odd_splits: r"source splits \['train', 'val'\]: give all \| train\+test \| train\+val\+test"}
    for load, message in cases.items():
        with pytest.raises(AssertionError, match=message):
            check_dataset_plugin(tlbench.DatasetPlugin(load.__name__, "x", digits.DigitsOptions, load))


def test_broken_backbones_are_caught():
    def wider_when_random(options, pretrained):
        return tiny_cnn.build(tiny_cnn.TinyCNNOptions(width=8 if pretrained else 16), pretrained)

    class Unblocked(TinyCNN):
        def __init__(self):
            super().__init__(4, 8)
            self.extra = nn.Linear(16, 16)  # trainable, in no block

        def blocks(self):
            return list(self.stages)

    class WrongDim(TinyCNN):
        def forward(self, x):
            return super().forward(x)[:, :3]

    cases = {wider_when_random: "same_architecture failed: shapes differ",
             (lambda options, pretrained: Unblocked()): r"blocks_cover_parameters failed: .*\['extra.weight'",
             (lambda options, pretrained: WrongDim(4, 8)): r"extract_shape failed: extract gave \(2, 3\), expected \(2, 16\)"}
    for build, message in cases.items():
        with pytest.raises(AssertionError, match=message):
            check_backbone_plugin(tlbench.BackbonePlugin("bad", "x", tiny_cnn.TinyCNNOptions, build))


def test_every_kind_has_checks_and_other_objects_are_refused():
    assert {kind.__name__ for kind in testing.CHECKS} == {f"{kind.capitalize()}Plugin" for kind in KINDS} | {"Task"}
    with pytest.raises(TypeError, match="no conformance checks for dict"):
        plugin_checks({"name": "x"})


def test_a_backbone_of_another_modality_than_its_record_is_caught():
    record = tlbench.BackbonePlugin("bad", "x", tiny_cnn.TinyCNNOptions, tiny_cnn.build, modality="text")
    with pytest.raises(AssertionError, match=r"bad: check extract_shape failed: the built backbone's modality is "
                                             r"'image', its record's 'text'"):
        check_backbone_plugin(record)


# ---- executors and scorers -----------------------------------------------------------------------

def executor(run, name="broken"):
    return tlbench.ExecutorPlugin(name, "a broken executor", inprocess.InprocessOptions, run)


def drops_the_last_cell(session, options):
    specs = []
    while (spec := session.next()) is not None:
        specs.append(spec)
    for spec in specs[:-1]:
        session.done(spec, run_cell(spec, "cpu"))


def stops_after_one_cell(session, options):
    spec = session.next()
    session.done(spec, run_cell(spec, "cpu"))


def swaps_the_records(session, options):
    specs = [session.next(), session.next()]
    records = [run_cell(spec, "cpu") for spec in specs]
    for spec, record in zip(specs, reversed(records)):
        session.done(spec, record)


def test_broken_executors_are_caught():
    cases = {drops_the_last_cell: "cells handed out but never handed back",
             stops_after_one_cell: "run returned before asking for 1 of 2 cells",
             swaps_the_records: r"the record handed back for cell \w+ is cell \w+'s"}
    for run, message in cases.items():
        with pytest.raises(AssertionError, match=f"broken: check same_records_as_inprocess failed: {message}"):
            check_executor_plugin(executor(run))


def test_an_executor_that_hangs_is_caught(monkeypatch):
    monkeypatch.setattr(testing, "EXECUTOR_TIMEOUT", 1.0)
    release = threading.Event()

    def hangs(session, options):
        session.next()
        release.wait()
    try:
        with pytest.raises(AssertionError, match="broken: check same_records_as_inprocess failed: run did not "
                                                 "return within 1 s"):
            check_executor_plugin(executor(hangs))
    finally:
        release.set()


def test_an_executor_that_gives_up_at_a_workers_first_death_is_caught(monkeypatch):
    monkeypatch.setattr(Retry, "ATTEMPTS", 1)  # local then records the cell as failed at once
    local = REGISTRY.get("executor", "local")
    check = next(c for c in plugin_checks(local, OPTIONS["local"]) if c.name == "dead_worker_retried_once")
    with pytest.raises(AssertionError, match=r"local: check dead_worker_retried_once failed: the cell whose worker "
                                             r"died ran 1 time\(s\) in 1 process\(es\); expected twice"):
        check(local)


def scorer(score, name="broken", **kwargs):
    return tlbench.ScorerPlugin(name, "a broken scorer", score, **kwargs)


def test_broken_scorers_are_caught():
    def centres_in_place(features, labels, source_logits):
        features -= features.mean(0)
        return scores.knn_accuracy(features, labels)

    cases = {(lambda f, y, z: float("nan")): "finite_score failed: score returned nan",
             (lambda f, y, z: 1): "finite_score failed: score returned int, not a float",
             (lambda f, y, z: float(np.random.default_rng().random())): "deterministic_score failed: two calls gave",
             centres_in_place: "deterministic_score failed: score wrote into its inputs",
             (lambda f, y, z: float(f[0, 0])): "order_invariant failed",
             (lambda f, y, z: -scores.knn_accuracy(f, y)): r"ranks_separated_first failed: separated data scored "
                                                            r"-1.0, random data -0.225 \(higher_is_better=True\)"}
    for score, message in cases.items():
        with pytest.raises(AssertionError, match=f"broken: check {message}"):
            check_scorer_plugin(scorer(score))


def test_a_scorer_is_given_source_logits_only_when_its_record_declares_it_needs_them():
    leep = lambda f, y, z: scores.log_expected_empirical_prediction(z, y)  # noqa: E731
    check_scorer_plugin(scorer(leep, needs_source_logits=True))
    with pytest.raises(AssertionError, match="finite_score raised"):
        check_scorer_plugin(scorer(leep))
    check_scorer_plugin(scorer(lambda f, y, z: -scores.knn_accuracy(f, y), higher_is_better=False))
