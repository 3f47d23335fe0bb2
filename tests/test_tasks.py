"""The task seam: detection and segmentation scores against known truth, per-example evidence of a
number, the metric names a dense task stores, the paired statistics on skewed per-image scores
simulated against a known truth, the conformance kit on tasks, and tasks through the command line."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize
from scipy.stats import norm

import tlbench
from tlbench import testing
from tlbench.analysis import stats as S
from tlbench.analysis.selection import example_values
from tlbench.contract.evidence import ExampleScores, SplitEvidence, from_bytes, from_logits, to_bytes
from tlbench.contract.values import Split
from tlbench.tasks.detection.metrics import evaluate as evaluate_detection
from tlbench.tasks.segmentation.metrics import evaluate as evaluate_segmentation
from tlbench.tasks.task import get, scored

from test_suite_errors import assert_user_error

# ------------------------------------------------------------------------------------------------
# Detection's scores


def detection_split(*boxes: list[tuple]) -> Split:
    """One 64-px image per argument, with its ``(class, x1, y1, x2, y2)`` boxes (none: no object)."""
    most = max(1, *(len(b) for b in boxes))
    targets = torch.full((len(boxes), most, 5), -1.0)
    for i, rows in enumerate(boxes):
        if rows:
            targets[i, :len(rows)] = torch.tensor(rows, dtype=torch.float)
    return Split(torch.zeros(len(boxes), 3, 64, 64, dtype=torch.uint8), torch.zeros(len(boxes), dtype=torch.long),
                 targets)


def detections(*found: list[tuple]) -> torch.Tensor:
    """One image's ``(x1, y1, x2, y2, score, class)`` rows per argument, padded as the Detector pads."""
    out = torch.zeros(len(found), 4, 6)
    out[..., 5] = -1
    for i, rows in enumerate(found):
        if rows:
            out[i, :len(rows)] = torch.tensor(rows, dtype=torch.float)
    return out


BOX = (10.0, 10.0, 30.0, 30.0)


def test_perfect_detections_score_one_per_image_and_in_the_split():
    split = detection_split([(0, *BOX)], [(1, 5, 5, 25, 45), (0, 40, 40, 60, 60)])
    result = evaluate_detection(detections([(*BOX, 0.9, 0)], [(5, 5, 25, 45, 0.9, 1), (40, 40, 60, 60, 0.8, 0)]),
                                split, 2)
    assert result.score == pytest.approx(1.0) and result.metrics == pytest.approx({"map": 1.0, "map50": 1.0})
    assert result.evidence.index.tolist() == [0, 1] and result.evidence.values.tolist() == pytest.approx([1, 1])


def test_a_box_shifted_by_a_known_amount_scores_the_thresholds_its_iou_passes():
    # shifted 4 px right: IoU 16·20 / (24·20) = 2/3, a hit at IoU 0.50, 0.55, 0.60, 0.65: 4 of 10 thresholds
    result = evaluate_detection(detections([(14, 10, 34, 30, 0.9, 0)]), detection_split([(0, *BOX)]), 1)
    assert result.score == pytest.approx(0.4, abs=1e-3) and result.metrics["map50"] == pytest.approx(1.0)
    far = evaluate_detection(detections([(18, 10, 38, 30, 0.9, 0)]), detection_split([(0, *BOX)]), 1)
    assert far.score < result.score  # IoU 12/28 < 0.5


def test_the_wrong_class_scores_zero():
    result = evaluate_detection(detections([(*BOX, 0.9, 1)]), detection_split([(0, *BOX)]), 2)
    assert result.score == 0.0 and result.metrics["map"] == 0.0


def test_an_image_without_objects_is_left_out_of_the_evidence_but_its_false_positives_count_in_the_map():
    split = detection_split([(0, *BOX)], [])
    clean = evaluate_detection(detections([(*BOX, 0.9, 0)], []), split, 1)
    noisy = evaluate_detection(detections([(*BOX, 0.9, 0)], [(*BOX, 0.95, 0)]), split, 1)
    for result in (clean, noisy):
        assert result.evidence.index.tolist() == [0] and result.score == pytest.approx(1.0)
    assert clean.metrics["map"] == pytest.approx(1.0) and noisy.metrics["map"] < 0.6


# ------------------------------------------------------------------------------------------------
# Segmentation's scores


def one_hot_logits(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(masks, num_classes).permute(0, 3, 1, 2).float() * 10


def segmentation(masks: torch.Tensor) -> Split:
    return Split(torch.zeros(len(masks), 3, *masks.shape[1:], dtype=torch.uint8),
                 torch.zeros(len(masks), dtype=torch.long), masks)


def test_perfect_masks_score_one():
    masks = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 0]]])
    result = evaluate_segmentation(one_hot_logits(masks, 3), segmentation(masks), 3)
    assert result.score == pytest.approx(1.0)
    assert result.metrics == pytest.approx({"miou": 1.0, "pixel_acc": 1.0})


def test_a_hand_computed_mask_and_unlabelled_pixels():
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    truth[:, :, :2] = 1                          # class 1: the left half, 8 pixels
    predicted = torch.zeros(1, 4, 4, dtype=torch.long)
    predicted[:, :, :3] = 1                      # class 1 predicted on 12 pixels
    result = evaluate_segmentation(one_hot_logits(predicted, 2), segmentation(truth), 2)
    # class 1: 8 / 12; class 0: 4 / 8; the image's IoU is their mean
    assert result.score == pytest.approx((8 / 12 + 4 / 8) / 2)
    assert result.metrics["pixel_acc"] == pytest.approx(12 / 16)
    spurious = predicted.clone()
    spurious[:, 3, 3] = 2                        # a class the image has not: it takes a background pixel
    result = evaluate_segmentation(one_hot_logits(spurious, 3), segmentation(truth), 3)
    assert result.score == pytest.approx((8 / 12 + 3 / 8) / 2)  # no term of its own: background loses it
    truth[:, :, 2] = 255                         # the wrongly predicted column unlabelled: ignored
    result = evaluate_segmentation(one_hot_logits(predicted, 2), segmentation(truth), 2)
    assert result.score == pytest.approx(1.0) and result.metrics["pixel_acc"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# Per-example evidence of a number, and the names a dense task stores


def test_example_scores_round_trip_beside_split_evidence_and_are_read_by_metric():
    scores = ExampleScores(np.array([0, 2, 5], dtype=np.int32), np.array([0.0, 0.25, 1.0], dtype=np.float32))
    labels = torch.tensor([0, 1, 1])
    evidence = {"test": scores, "val": from_logits(torch.tensor([[2.0, 0], [0, 1], [3, 0]]), labels)}
    back = from_bytes(to_bytes(evidence))
    assert isinstance(back["test"], ExampleScores) and isinstance(back["val"], SplitEvidence)
    assert back["test"].index.tolist() == [0, 2, 5] and back["test"].values.tolist() == [0.0, 0.25, 1.0]
    assert back["val"].values.tolist() == [1.0, 1.0, 0.0]
    index, values = example_values("test_ap", back, has_target_domain=False)
    assert index.tolist() == [0, 2, 5] and values.tolist() == [0.0, 0.25, 1.0]
    assert example_values("test_macro_f1", back, has_target_domain=False) is None


def test_scored_names_a_dense_tasks_metrics():
    task = get("detection")
    split = detection_split([(0, *BOX)], [(0, 40, 40, 60, 60)])
    found = detections([(*BOX, 0.9, 0)], [(40, 40, 60, 60, 0.9, 0)])
    plain, evidence = scored(task, {"val": found, "test": found}, {"val": split, "test": split}, "val", 1)
    assert set(plain) == {"val_ap", "test_ap", "test_map", "test_map50"} and set(evidence) == {"val", "test"}
    splits = ("val", "test", "target_val", "target_test", "ood:blur")
    shifted, evidence = scored(task, dict.fromkeys(splits, found), dict.fromkeys(splits, split), "val", 1,
                               {"test": [3, 7]})
    assert set(shifted) == {"val_ap", "test_ap", "test_map", "test_map50", "source_test_ap", "target_val_ap",
                            "ood_ap:blur"}
    assert set(evidence) == set(splits) and evidence["test"].index.tolist() == [3, 7]


# ------------------------------------------------------------------------------------------------
# The paired statistics on per-image scores, simulated against a known truth

SEEDS, IMAGES, SEED_SD, IMAGE_SD, NOISE_SD = 5, 150, 0.03, 0.3, 0.15
SPREAD = math.sqrt(SEED_SD ** 2 + IMAGE_SD ** 2 + NOISE_SD ** 2)


def expected_score(level: float) -> float:
    """The true mean of ``clip(level + a + b + e, 0, 1)`` (normal seed, image and noise effects)."""
    return integrate.quad(lambda t: norm.sf(t, level, SPREAD), 0, 1)[0]


def skewed_row(levels: list[float], rng) -> dict[str, S.Scores]:
    """Per-image scores in [0, 1] of strategies at ``levels``: ``clip(level + a[seed] + b[image] +
    e, 0, 1)``, the image effect shared, the seed effect each strategy's own (SD 0.03): at level
    0.25 a quarter of them are 0, as an AP is where nothing was found."""
    image = rng.normal(0, IMAGE_SD, IMAGES)
    index = np.arange(IMAGES)
    return {f"s{k}": S.Scores.from_examples({s: (index, np.clip(level + rng.normal(0, SEED_SD) + image
                                                                + rng.normal(0, NOISE_SD, IMAGES), 0, 1))
                                             for s in range(SEEDS)})
            for k, level in enumerate(levels)}


def test_paired_comparison_of_skewed_per_image_scores_against_a_known_truth():
    rng, reps, level = np.random.default_rng(25), 300, 0.25
    truth = expected_score(level)
    apart = covered = zeros = 0
    for _ in range(reps):
        row = skewed_row([level, level], rng)
        zeros += np.mean(row["s0"].values == 0)
        apart += any(c.told_apart for c in S.compare_row(row).comparisons)
        floor = S.row_floor(row.values())
        covered += sum(truth in S.mean_interval(scores, floor=floor) for scores in row.values())
    assert zeros / reps > 0.2  # skewed: a quarter of the scores are 0
    assert apart / reps <= 0.07, f"equal strategies told apart in {apart / reps:.1%} of rows"
    assert covered / (2 * reps) >= 0.90, f"the interval covered the true mean {truth:.3f} in {covered / (2 * reps):.1%}"
    # a true difference of 0.08 in the mean score
    better = optimize.brentq(lambda x: expected_score(x) - truth - 0.08, level, level + 0.5)
    found = sum(S.compare_row(skewed_row([level, better], rng)).pair("s0", "s1").told_apart for _ in range(reps))
    assert found / reps >= 0.85, f"a difference of 0.08 found in {found / reps:.1%} of rows"  # measured: 94-95%


# ------------------------------------------------------------------------------------------------
# The conformance kit on tasks


@pytest.mark.parametrize("name", ["classification", "detection", "segmentation"])
def test_the_builtin_tasks_pass_the_kit(name):
    testing.check_task_plugin(get(name))


def test_task_checks_are_parametrized_with_ids():
    mark = testing.parametrize_plugin_checks([get("segmentation")])
    assert mark.kwargs["ids"] == ["segmentation-task_documented", "segmentation-model_has_backbone_and_head",
                                  "segmentation-step_trains_the_head", "segmentation-outputs_concatenate",
                                  "segmentation-evaluation_is_mean_of_evidence"]


def broken(name: str = "segmentation", **changes) -> tlbench.Task:
    from dataclasses import replace

    return replace(get(name), name="broken", **changes)


def test_a_score_that_is_not_the_mean_of_its_evidence_is_caught():
    task = get("segmentation")

    def inflated(outputs, split, num_classes):
        result = task.evaluate(outputs, split, num_classes)
        return tlbench.Evaluation(result.score + 0.1, result.evidence, result.metrics)
    with pytest.raises(AssertionError, match="broken: check evaluation_is_mean_of_evidence failed: score .* is "
                                             "not the mean of the evidence's values"):
        testing.check_task_plugin(broken(evaluate=inflated))


def test_undeclared_metrics_and_a_missing_example_are_caught():
    with pytest.raises(AssertionError, match=r"metrics \['miou', 'pixel_acc'\], declared \['miou'\]"):
        testing.check_task_plugin(broken(metrics={"miou": "mean IoU"}))
    with pytest.raises(AssertionError, match="declares no example"):
        testing.check_task_plugin(broken(example=None))


def test_a_head_the_step_does_not_train_is_caught():
    from tlbench.contract.step import PixelCrossEntropyStep

    class Detached(PixelCrossEntropyStep):
        def forward(self, inputs, truth):
            out = super().forward(inputs, truth)
            return type(out)(out.loss.detach().requires_grad_(), out.examples)
    with pytest.raises(AssertionError, match="no gradient on the head"):
        testing.check_task_plugin(broken(step=lambda model, train: Detached(model)))


@pytest.mark.parametrize("name, targets, message", [
    ("detection", torch.zeros(6, 5), "N×M×5"),
    ("detection", torch.tensor([[[3.0, 0, 0, 4, 4]]]).expand(6, 1, 5), r"classes must be integers in \[-1, 3\)"),
    ("detection", torch.tensor([[[0.0, 5, 0, 4, 4]]]).expand(6, 1, 5), "x1 >= x2 or y1 >= y2"),
    ("segmentation", torch.zeros(6, 8, 8, dtype=torch.long), r"\(8, 8\) per image, the images \(32, 32\)"),
    ("segmentation", torch.full((6, 32, 32), 7), r"values must lie in \[0, 3\) or be 255"),
    ("classification", torch.zeros(6, 2), "has no targets"),
])
def test_malformed_targets_are_one_clear_error(name, targets, message):
    task = get(name)
    split = task.example(6, 32, 3)
    task.check_targets(split, 3)
    with pytest.raises(ValueError, match=message):
        task.check_targets(Split(split.inputs, split.labels, targets), 3)


def test_a_dataset_whose_targets_break_its_task_fails_the_kit():
    def load(options):
        split = get("detection").example(20, 32, 2)
        return tlbench.LoadedDataset(["a", "b"], {"all": Split(split.inputs, split.labels, split.targets[:, :, :4])})
    record = tlbench.DatasetPlugin("boxes", "x", tlbench.Options, load, task="detection")
    with pytest.raises(AssertionError, match="boxes: check splits_shaped failed: source split 'all': detection "
                                             "targets must be a N×M×5"):
        testing.check_dataset_plugin(record)


def test_a_dense_strategy_runs_on_a_cell_of_its_task_and_missing_outputs_are_caught():
    from dataclasses import replace

    head_only = testing._installed().get("strategy", "head_only")
    names = lambda record: [c.name for c in testing.plugin_checks(record)]  # noqa: E731
    assert "outputs_on_a_dense_cell" in names(head_only)
    assert "outputs_on_a_dense_cell" not in names(testing._installed().get("strategy", "linear_probe"))
    seen = []

    def segments(ctx, options):
        seen.append(ctx.task.name)
        return head_only.run(ctx, options)
    testing.check_strategy_plugin(replace(head_only, name="segments", run=segments, tasks=("segmentation",)))
    assert set(seen) == {"classification", "segmentation"}

    def drops_test(ctx, options):
        outcome = head_only.run(ctx, options)
        return tlbench.Outcome({k: v for k, v in outcome.logits.items() if k != "test"}, 1, 1)
    [check] = [c for c in testing.plugin_checks(head_only) if c.name == "outputs_on_a_dense_cell"]
    with pytest.raises(AssertionError, match=r"drops: check outputs_on_a_dense_cell failed: outputs for \['val'\] on "
                                             r"a detection cell, expected ctx.eval_splits \['test', 'val'\]"):
        check(replace(head_only, name="drops", run=drops_test))


# ------------------------------------------------------------------------------------------------
# Through the command line

SCENES = {"plugin": "scene_detection", "images": 12, "image_size": 32}


def test_a_strategy_of_another_task_is_listed_as_skipped_with_the_reason(write_suite):
    from click.testing import CliRunner

    from tlbench.cli import main

    text = testing.tiny_suite([{"plugin": "linear_probe", "C": 1.0}, {"plugin": "head_only", "lr": 3e-3}],
                              dataset=SCENES, backbone={"plugin": "tiny_cnn", "width": 4, "input_size": 32})
    result = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["run", str(write_suite(text)), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "skip: strategy 'linear_probe' trains classification and dataset 'scene_detection' is detection" \
        in result.stdout
    assert "1 to run, 0 already done, 1 skipped" in result.stdout


def test_a_dataset_of_an_unknown_task_is_one_line_exit_2(write_suite, cli, tmp_path, monkeypatch):
    (tmp_path / "typo_task.py").write_text(
        "import tlbench\nfrom tlbench.builtins.datasets.scenes import ScenesOptions, load_detection\n\n\n"
        "@tlbench.hookimpl\ndef tlbench_datasets():\n"
        "    return [tlbench.DatasetPlugin('typo', 'x', ScenesOptions, load_detection, task='detektion')]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = testing.tiny_suite(dataset={"plugin": "typo"})
    assert_user_error(cli("run", write_suite(text), "--plugin", "typo_task", "--dry-run"),
                      "dataset plugin 'typo': unknown task 'detektion'", "declared: classification, detection")


def test_list_shows_each_datasets_task_and_each_strategys_tasks(cli):
    result = cli("list")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ") and line.strip()}
    assert "task: detection" in lines["scene_detection"] and "task: classification" in lines["digits"]
    assert "tasks: any" in lines["head_only"] and "tasks: classification" in lines["linear_probe"]


def test_a_search_and_the_local_executor_run_detection_cells_and_select_on_its_score(write_suite, cli):
    """The [search] objective, the worker processes and the selection read the task's val_ap; the
    records carry the task's scores and cost; the run's report reads test_ap."""
    import pandas as pd

    text = testing.tiny_suite([{"plugin": "head_only"}], dataset=SCENES, seeds=(0, 1),
                              backbone={"plugin": "tiny_cnn", "width": 4, "input_size": 32},
                              suite={"executor": "local"}, train={"steps": 3, "batch_size": 8},
                              tables={"search": {"method": "random", "trials": 2}, "executor": {"workers": 1}})
    result = cli("run", write_suite(text))
    assert result.exit_code == 0, result.output
    frame = pd.read_csv("results/kit/results.csv")
    assert set(frame["task"]) == {"detection"} and (frame["status"] == "ok").all()
    assert frame["variant"].nunique() == 2 and len(frame) == 4  # two sampled trials × two seeds
    assert frame[["val_ap", "test_ap", "test_map", "test_map50", "train_seconds"]].notna().all().all()
    assert "test_acc" not in frame or frame["test_acc"].isna().all()
    chosen = pd.read_csv("results/kit/report/tables/selected_variants.csv")
    per_seed = [g.sort_values(["val_ap", "variant"], ascending=[False, True])["variant"].iloc[0]
                for _, g in frame.groupby("seed")]  # each seed's own choice on val_ap (ties: sorted order)
    assert set(chosen["variant"]) == set(per_seed) and "val_ap_mean" in chosen


@pytest.mark.parametrize("command", ["--dry-run", None])
def test_an_augmentation_a_dense_task_cannot_apply_is_one_line_exit_2_before_training(write_suite, cli, command):
    """TrivialAugment moves no boxes: the suite is refused while it is read, naming the file, the key
    and the dataset, with nothing trained and no results folder."""
    text = testing.tiny_suite([{"plugin": "head_only"}], dataset=SCENES,
                              backbone={"plugin": "tiny_cnn", "width": 4, "input_size": 32},
                              train={"steps": 2, "batch_size": 8, "augment": "trivialaugment"})
    path = write_suite(text)
    assert_user_error(cli("run", path, *([command] if command else [])), "suite.toml", "[train] augment",
                      "'trivialaugment'", "crop, flip_crop", "dataset 'scene_detection' is detection")
    assert not (path.parent / "results").exists()
