"""ml.evaluation: metrics agree with scikit-learn, CIs resample studies, thresholds,
temperature scaling, calibration error, plots and the leakage table."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from ml.evaluation import (
    aggregate_by_group,
    apply_temperature,
    binary_metrics,
    bootstrap_ci,
    evaluate_predictions,
    expected_calibration_error,
    fit_temperature,
    leakage_markdown,
    leakage_report,
    report_write,
    roc_auc,
    softmax,
    threshold_for_sensitivity,
    threshold_with_specificity_floor,
)


def _fixed(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    prob = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1).round(2)  # with ties
    return y, prob


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_on_fixed_inputs(seed):
    y, prob = _fixed(seed=seed)
    ours = binary_metrics(y_true=y, prob=prob, threshold=0.5)
    pred = (prob >= 0.5).astype(int)
    assert ours["auc"] == pytest.approx(skm.roc_auc_score(y, prob), abs=1e-12)
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert ours["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert ours["sensitivity"] == pytest.approx(skm.recall_score(y, pred))
    assert ours["specificity"] == pytest.approx(skm.recall_score(1 - y, 1 - pred))
    assert ours["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert ours["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()


def test_auc_is_nan_with_one_class_and_ratios_nan_when_undefined():
    assert math.isnan(roc_auc(y_true=[1, 1], prob=[0.2, 0.9]))
    result = binary_metrics(y_true=[0, 0], prob=[0.1, 0.2], threshold=0.5)
    assert math.isnan(result["sensitivity"]) and result["specificity"] == 1.0


def test_metrics_refuse_mismatched_or_non_binary_inputs():
    with pytest.raises(ValueError, match="labels but"):
        roc_auc(y_true=[0, 1, 1], prob=[0.1, 0.2])
    with pytest.raises(ValueError, match="0 or 1"):
        roc_auc(y_true=[0, 2], prob=[0.1, 0.2])


def test_study_aggregation_mean_max_and_top_k():
    prob = [0.1, 0.9, 0.2, 0.4, 0.5, 0.6]
    groups = ["a", "a", "a", "b", "b", "b"]
    assert aggregate_by_group(prob=prob, groups=groups, method="max")[1].tolist() == [
        0.9,
        0.6,
    ]
    names, mean = aggregate_by_group(prob=prob, groups=groups, method="mean")
    assert names == ["a", "b"] and mean == pytest.approx([0.4, 0.5])
    _, top2 = aggregate_by_group(prob=prob, groups=groups, method="topk", k=2)
    assert top2 == pytest.approx([0.55, 0.55])
    with pytest.raises(ValueError, match="aggregation"):
        aggregate_by_group(prob=prob, groups=groups, method="median")


@pytest.mark.parametrize("method", ["mean", "max", "topk"])
def test_study_aggregation_of_evaluation_and_serving_agree(method):
    """Training chooses the threshold with aggregate_by_group, the Predictor applies
    it with aggregate_slices: they must give the same study probabilities."""
    from ml.inference.results import aggregate_slices

    rng = np.random.default_rng(3)
    sizes = {"s1": 23, "s2": 3, "s3": 9, "s4": 6}
    groups = [name for name, n in sizes.items() for _ in range(n)]
    prob = rng.random(len(groups))
    eligible = rng.random(len(groups)) < 0.6
    eligible[np.asarray(groups) == "s4"] = False  # none eligible: all decide
    for mask in (None, eligible):
        names, study = aggregate_by_group(
            prob=prob, groups=groups, method=method, k=5, eligible=mask
        )
        for name, value in zip(names, study, strict=True):
            mine = np.asarray(groups) == name
            served = aggregate_slices(
                prob[mine],
                method=method,
                k=5,
                eligible=None if mask is None else mask[mine],
            )
            assert value == served


def test_only_eligible_slices_decide_a_study():
    from ml.inference.results import aggregate_slices, study_type_probabilities

    prob = np.array([0.99, 0.2, 0.4, 0.95])  # bright neck and vertex slices
    brain = np.array([False, True, True, False])
    assert aggregate_slices(prob, method="max", eligible=brain) == pytest.approx(0.4)
    assert aggregate_slices(prob, method="topk", k=5, eligible=brain) == pytest.approx(
        0.3
    )
    none = np.zeros(4, bool)
    assert aggregate_slices(prob, method="max", eligible=none) == pytest.approx(0.99)
    classes = np.array([[0.0, 1.0], [0.8, 0.2], [0.6, 0.4], [0.0, 1.0]])
    types = study_type_probabilities(classes, prob, method="max", k=5, eligible=brain)
    assert types == pytest.approx([0.6, 0.4])
    with pytest.raises(ValueError, match="eligible"):
        aggregate_slices(prob, eligible=brain[:3])
    with pytest.raises(ValueError, match="eligible"):
        aggregate_by_group(prob=prob, groups=["a"] * 4, eligible=brain[:3])


@pytest.mark.parametrize("target", [0.5, 0.8, 0.95, 1.0])
def test_threshold_reaches_the_target_sensitivity_and_no_higher_one_does(target):
    y, prob = _fixed(seed=3)
    threshold = threshold_for_sensitivity(y_true=y, prob=prob, target=target)
    sensitivity = binary_metrics(y_true=y, prob=prob, threshold=threshold)[
        "sensitivity"
    ]
    above = prob[prob > threshold]
    assert sensitivity >= target
    if above.size:
        higher = binary_metrics(y_true=y, prob=prob, threshold=above.min())
        assert higher["sensitivity"] < target
    assert 0 < threshold < 1


@pytest.mark.parametrize("floor", [0.0, 0.3, 0.5, 0.8])
def test_a_specificity_floor_keeps_the_most_sensitive_threshold_that_meets_it(floor):
    y, prob = _fixed(seed=3)
    threshold = threshold_with_specificity_floor(
        y_true=y, prob=prob, target_sensitivity=0.95, min_specificity=floor
    )
    chosen = binary_metrics(y_true=y, prob=prob, threshold=threshold)
    assert chosen["specificity"] >= floor
    for other in np.unique(prob):  # no threshold that keeps the floor finds more
        m = binary_metrics(y_true=y, prob=prob, threshold=other)
        if m["specificity"] >= floor:
            assert min(m["sensitivity"], 0.95) <= min(chosen["sensitivity"], 0.95)
    if floor == 0.0:
        assert threshold == threshold_for_sensitivity(y_true=y, prob=prob, target=0.95)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4.0, size=(4000, 2))
    true_t = 2.5
    p = softmax(logits, temperature=true_t)
    labels = (rng.random(4000) < p[:, 1]).astype(int)
    fitted = fit_temperature(logits=logits, labels=labels)
    assert fitted == pytest.approx(true_t, rel=0.15)
    calibrated = apply_temperature(probs=softmax(logits), temperature=fitted)
    before = expected_calibration_error(y_true=labels, prob=softmax(logits)[:, 1])
    after = expected_calibration_error(y_true=labels, prob=calibrated[:, 1])
    assert after < before / 2


def test_expected_calibration_error_on_a_hand_computed_case():
    # Two confident-and-right at 0.9, two unsure at 0.6 of which one is right.
    y = [1, 0, 1, 0]
    prob = [0.9, 0.1, 0.6, 0.6]
    expected = (2 * abs(1.0 - 0.9) + 2 * abs(0.5 - 0.6)) / 4
    assert expected_calibration_error(y_true=y, prob=prob) == pytest.approx(expected)


def test_bootstrap_resamples_studies_not_slices():
    # Two studies of 50 identical slices each: resampling slices would give a
    # tight CI, resampling studies gives one as wide as the study outcome.
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    prob = np.r_[np.full(50, 0.2), np.full(50, 0.4)]
    groups = ["a"] * 50 + ["b"] * 50
    ci = bootstrap_ci(y_true=y, prob=prob, groups=groups, threshold=0.5, n_boot=200)
    assert ci["accuracy"] == [0.0, 1.0]
    assert ci == bootstrap_ci(
        y_true=y, prob=prob, groups=groups, threshold=0.5, n_boot=200
    )


def test_evaluate_predictions_reports_both_levels_with_intervals():
    y, prob = _fixed(n=120, seed=4)
    groups = [f"s{i // 10}" for i in range(120)]
    y = np.repeat([i % 2 for i in range(12)], 10)  # one label per study
    report = evaluate_predictions(
        y_true=y, prob=prob, groups=groups, threshold=0.5, n_boot=100
    )
    assert report["study"]["n"] == 12 and report["slice"]["n"] == 120
    assert report["aggregation"] == {"method": "topk", "top_k": 5}
    for level in ("slice", "study"):
        lo, hi = report[level]["ci95"]["auc"]
        assert lo <= report[level]["auc"] <= hi


def test_evaluate_predictions_refuses_a_study_that_mixes_labels():
    with pytest.raises(ValueError, match="different labels"):
        evaluate_predictions(
            y_true=[0, 1], prob=[0.2, 0.8], groups=["a", "a"], threshold=0.5
        )


def test_report_write_makes_json_plots_and_an_html_page(tmp_path):
    y = np.repeat([0, 1, 0, 1, 1, 0], 5)
    prob = np.clip(y * 0.4 + np.linspace(0.1, 0.5, 30), 0, 1)
    groups = [f"s{i // 5}" for i in range(30)]
    report = evaluate_predictions(
        y_true=y, prob=prob, groups=groups, threshold=0.5, n_boot=50
    )
    page = report_write(report=report, y_slices=y, p_slices=prob, out_dir=tmp_path)
    for name in ("roc.png", "pr.png", "confusion.png", "calibration.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64" in page.read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["study"]["n"] == 6


def test_leakage_report_shows_the_inflation_side_by_side():
    def fake(auc):
        section = {"auc": auc, "accuracy": auc, "sensitivity": 0.5, "specificity": 0.5}
        return {"slice": section, "study": section}

    table = leakage_report(grouped=fake(0.7), random_split=fake(0.95))
    assert table["slice"]["auc"]["inflation"] == pytest.approx(0.25)
    assert "| slice | auc | 0.700 | 0.950 | +0.250 |" in leakage_markdown(table)


def test_evaluation_never_imports_tensorflow():
    code = (
        "import sys, ml.evaluation, ml.training; "
        "print(any(m in sys.modules for m in ('tensorflow', 'keras')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_evaluate_cli_on_a_predictions_csv(tmp_path, capsys):
    from ml.cli import main

    csv_path = tmp_path / "predictions.csv"
    studies = [
        (f"s{g}", "stroke" if g % 2 else "normal", 0.2 + 0.5 * (g % 2))
        for g in range(6)
    ]
    lines = ["group,label,prob"] + [
        f"{n},{lab},{p}" for n, lab, p in studies for _ in range(4)
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    code = main(
        ["evaluate", "--predictions", str(csv_path), "--out", str(tmp_path / "ev"),
         "--bootstrap", "50"]
    )  # fmt: skip
    assert code == 0
    assert "study: auc 1.00" in capsys.readouterr().out
    assert (tmp_path / "ev" / "report.html").is_file()


def test_leakage_cli_compares_two_existing_reports(tmp_path, capsys):
    from ml.cli import main

    def write(name, auc):
        section = {"auc": auc, "accuracy": auc, "sensitivity": 0.5, "specificity": 0.5}
        path = tmp_path / name
        path.write_text(json.dumps({"pooled": {"slice": section, "study": section}}))
        return str(path)

    code = main(
        ["leakage", "--reports", write("g.json", 0.6), write("r.json", 0.9),
         "--out", str(tmp_path / "leak")]
    )  # fmt: skip
    assert code == 0
    assert "+0.300" in capsys.readouterr().out
    assert json.loads((tmp_path / "leak" / "leakage.json").read_text())["study"]
