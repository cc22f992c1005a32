"""The comparison report built from generated run outputs (tests/fake_runs.py), no training.

Every table's numbers are recomputed here from the run files with sklearn and pandas, and
compared with the report's; figures must be decodable PNGs and the HTML self-contained.
"""

import html
import io
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_runs import LR_FINDER_BOUNDS, write_fake_results
from matplotlib import image as mpimg
from repository import REPO, run_snakemake
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from statsmodels.stats.multitest import multipletests

from workflow_scripts.labels import DISEASES, MULTILABEL
from workflow_scripts.metrics import expected_calibration_error
from workflow_scripts.plan import Grid
from workflow_scripts.policies import POLICIES
from workflow_scripts.report import (
    ReportSettings,
    produce_report,
    produce_target_report,
    read_data_check,
)
from workflow_scripts.report_contents import REPORT_TABLES, TABLES, TARGET_FIGURES
from workflow_scripts.report_text import summarize_target
from workflow_scripts.stage import InputError

TARGETS = ("Effusion", "Pneumothorax")
ARCHITECTURES = ("mobilenet", "alexnet")
SEEDS = (0, 1, 2)
BASELINES = ("constant", "time_decay")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def settings_for(grid, **changes):
    return ReportSettings(grid=grid, baselines=BASELINES, samples=300, level=0.95,
                          source="demo", **changes)


def run_folders(results, target):
    """The run folders of `target` that exist: what Snakemake hands the report as input (all
    configured runs, or with report.allow_missing those that exist)."""
    return sorted(path.parent for path in (results / "runs" / target).glob("*/*/*/metrics.json"))


def target_report(results, info, settings, target="Effusion", cache_summary=None):
    """One target's report, written under results/report/<target>/ as rule report_target
    writes it."""
    return produce_target_report(
        target, run_folders=run_folders(results, target), settings=settings,
        train_settings=info["settings"], label_counts=results / "labels" / "label_counts.csv",
        split_summary=results / "splits" / "summary.csv",
        html=results / "report" / target / "report.html",
        lr_finder_paths=sorted((results / "lr_finder" / target).glob("*.json")),
        cache_summary=cache_summary)


def build_all(results, info, settings, targets=TARGETS):
    """Per-target reports written under results/report/, then the whole report, as the rules
    write them."""
    for target in targets:
        target_report(results, info, settings, target)
    report = results / "report"
    return produce_report([report / target for target in targets], settings=settings,
                          label_counts=results / "labels" / "label_counts.csv",
                          html=report / "report.html", tables=report / "tables",
                          figures=report / "figures")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    info = write_fake_results(results, targets=TARGETS, architectures=ARCHITECTURES,
                              seeds=SEEDS, test_images=150)
    grid = Grid(TARGETS, ARCHITECTURES, POLICIES, SEEDS)
    tables, overview, page = build_all(results, info, settings_for(grid))
    return {"results": results, "info": info, "tables": tables, "overview": overview,
            "page": page, "grid": grid}


def run_files(results, target, arch, policy, seed):
    folder = results / "runs" / target / arch / policy / f"seed{seed}"
    return (json.loads((folder / "metrics.json").read_text()),
            pd.read_csv(folder / "history.csv"),
            pd.read_parquet(folder / "predictions.parquet"))


def row(table, **keys):
    selected = table
    for column, value in keys.items():
        selected = selected[selected[column] == value]
    assert len(selected) == 1, keys
    return selected.iloc[0]


# --- the tables against numbers computed here ------------------------------------------------

def test_table1_label_counts_beside_the_papers(built):
    table = built["tables"]["table1_label_counts"]
    counts = pd.read_csv(built["results"] / "labels" / "label_counts.csv")
    pd.testing.assert_series_equal(table["images"], counts["images"], check_names=False)
    assert row(table, label="Effusion")["paper_images"] == 13317
    assert row(table, label="Pleural_Thickening")["paper_single_label_images"] == 1126
    assert list(table.columns) == ["label", "single_label_images", "paper_single_label_images",
                                   "images", "paper_images"]


def test_tables2_to_4_data_and_settings(built):
    tables, results = built["tables"], built["results"]
    summary = pd.read_csv(results / "splits" / "summary.csv").set_index("target")
    settings = built["info"]["settings"]
    for target in TARGETS:
        split = row(tables["table2_split_sizes"], target=target)
        assert split["images"] == summary.at[target, "positives"] + summary.at[target, "negatives"]
        assert split["train_and_val"] == summary.at[target, "train"] + summary.at[target, "val"]
        batches = row(tables["table3_batches"], target=target)
        metrics, _, _ = run_files(results, target, "mobilenet", "constant", 0)
        assert batches["batch_size"] == metrics["settings"]["batch_size"]
        assert batches["train_batches"] == metrics["settings"]["steps_per_epoch"]
        assert batches["test_batches"] == math.ceil(summary.at[target, "test"] / 16)
        optimizer = row(tables["table4_optimizers"], target=target)
        assert optimizer["learning_rate"] == settings[target]["learning_rate"]
        assert optimizer["decay"] == settings[target]["decay"]
    assert row(tables["table2_split_sizes"], target="Pneumothorax")["paper_negatives"] == 5500
    assert row(tables["table3_batches"], target="Effusion")["paper_train_batches"] == 671
    assert row(tables["table4_optimizers"], target="Effusion")["paper_decay"] == 0.001


def test_table5_results_are_seed_means_of_the_runs(built):
    table, results = built["tables"]["table5_results"], built["results"]
    for target in TARGETS:
        for arch in ARCHITECTURES:
            for policy in POLICIES:
                runs = [run_files(results, target, arch, policy, s) for s in SEEDS]
                aurocs = [roc_auc_score(p["label"], p["score"]) for _, _, p in runs]
                accuracies = [m["accuracy"] for m, _, _ in runs]
                got = row(table, target=target, arch=arch, policy=policy)
                assert got["seeds"] == len(SEEDS)
                assert got["auroc"] == pytest.approx(np.mean(aurocs))
                assert got["auroc_sd"] == pytest.approx(np.std(aurocs, ddof=1))
                assert got["accuracy"] == pytest.approx(np.mean(accuracies))
                assert got["accuracy_sd"] == pytest.approx(np.std(accuracies, ddof=1))
                assert got["train_accuracy"] == pytest.approx(
                    np.mean([h["accuracy"].iloc[-1] for _, h, _ in runs]))
                assert got["sensitivity"] == pytest.approx(
                    np.mean([m["sensitivity"] for m, _, _ in runs]))
                assert got["auroc_ci_low"] < got["auroc"] < got["auroc_ci_high"]
    paper = row(table, target="Effusion", arch="mobilenet", policy="time_decay")
    assert paper["paper_train_accuracy"] == pytest.approx(0.8653)
    assert paper["paper_epochs"] == 10


def test_table6_architectures(built):
    table, results = built["tables"]["table6_architectures"], built["results"]
    for target in TARGETS:
        for arch in ARCHITECTURES:
            runs = [run_files(results, target, arch, p, s) for p in POLICIES for s in SEEDS]
            got = row(table, target=target, arch=arch)
            assert got["runs"] == len(runs)
            assert got["seconds_per_epoch"] == pytest.approx(
                np.mean([h["seconds"].mean() for _, h, _ in runs]))
            assert got["device_kind"] == "CPU"
            by_policy = {p: np.mean([roc_auc_score(*run_files(results, target, arch, p, s)[2][
                ["label", "score"]].T.to_numpy()) for s in SEEDS]) for p in POLICIES}
            assert got["best_policy"] == max(by_policy, key=by_policy.get)


def test_table7_paired_differences_and_epochs_to_the_baselines_best(built):
    table, results = built["tables"]["table7_policies"], built["results"]
    for target in TARGETS:
        for arch in ARCHITECTURES:
            for baseline in BASELINES:
                base = {s: run_files(results, target, arch, baseline, s) for s in SEEDS}
                for policy in POLICIES:
                    got = row(table, target=target, arch=arch, policy=policy)
                    runs = {s: run_files(results, target, arch, policy, s) for s in SEEDS}
                    if policy == baseline:
                        assert pd.isna(got[f"delta_auroc_vs_{baseline}"])
                    else:
                        differences = [
                            roc_auc_score(runs[s][2]["label"], runs[s][2]["score"])
                            - roc_auc_score(base[s][2]["label"], base[s][2]["score"])
                            for s in SEEDS]
                        delta = got[f"delta_auroc_vs_{baseline}"]
                        low = got[f"delta_auroc_vs_{baseline}_ci_low"]
                        high = got[f"delta_auroc_vs_{baseline}_ci_high"]
                        assert delta == pytest.approx(np.mean(differences))
                        assert low <= delta <= high
                        p_value = got[f"p_vs_{baseline}"]
                        adjusted = got[f"p_adjusted_vs_{baseline}"]
                        assert 0 <= p_value <= adjusted <= 1
                        assert got[f"beyond_noise_vs_{baseline}"] == (adjusted <= 0.05)
                        # The interval and the test agree: it excludes 0 iff p < 0.05.
                        assert (low > 0 or high < 0) == (p_value < 0.05)
                    reached = []
                    for seed in SEEDS:
                        best = base[seed][1]["val_accuracy"].max()
                        history = runs[seed][1]
                        hits = history.index[history["val_accuracy"] >= best]
                        if len(hits):
                            reached.append((history.at[hits[0], "epoch"],
                                            history["seconds"].iloc[:hits[0] + 1].sum()))
                    assert got[f"seeds_reaching_{baseline}_best"] == len(reached)
                    if reached:
                        epochs, seconds = zip(*reached, strict=True)
                        assert got[f"epochs_to_{baseline}_best"] == np.median(epochs)
                        assert got[f"epochs_to_{baseline}_best_mean"] == pytest.approx(
                            np.mean(epochs))
                        assert got[f"device_seconds_to_{baseline}_best"] == pytest.approx(
                            np.mean(seconds))
    # The multiplicity correction covers every comparison of a target, as statsmodels has it.
    for target in TARGETS:
        rows = table[table["target"] == target]
        p_values = pd.concat([rows[f"p_vs_{b}"] for b in BASELINES]).dropna()
        adjusted = pd.concat([rows[f"p_adjusted_vs_{b}"] for b in BASELINES]).dropna()
        assert len(p_values) == len(ARCHITECTURES) * (2 * len(POLICIES) - 2)
        np.testing.assert_allclose(adjusted, multipletests(p_values, 0.05, "fdr_bh")[1])
    # The generator makes triangular the best policy, better than constant on every target.
    for target in TARGETS:
        assert row(table, target=target, arch="mobilenet",
                   policy="triangular")["delta_auroc_vs_constant"] > 0
    paper = row(table, target="Pneumothorax", arch="mobilenet", policy="triangular")
    assert paper["paper_train_accuracy"] == pytest.approx(0.7983)
    assert paper["paper_epochs"] == 36


def test_table8_clr_parameters_from_the_lr_finder(built):
    table = built["tables"]["table8_clr_parameters"]
    assert set(table["policy"].dropna()) == set(POLICIES) - {"constant", "time_decay"}
    triangular = row(table, target="Effusion", arch="alexnet", policy="triangular")
    assert triangular["base_lr"] == LR_FINDER_BOUNDS["base_lr"]
    assert triangular["max_lr"] == LR_FINDER_BOUNDS["max_lr"]
    assert triangular["bounds_from"] == "LR finder (min_loss)"
    assert triangular["lr_finder_check"] == "min_loss passed every check"
    assert triangular["step_size"] == 16 and triangular["step_size_epochs"] == 2
    one_cycle = row(table, target="Effusion", arch="alexnet", policy="one_cycle")
    assert one_cycle["base_lr"] == pytest.approx(LR_FINDER_BOUNDS["max_lr"] / 25)
    paper = row(table, target="Pneumothorax", arch="mobilenet", policy="triangular")
    assert (paper["paper_max_lr"], paper["paper_base_lr"]) == (0.03, 0.0075)


def test_tables_are_written_as_csv(built):
    folder = built["results"] / "report" / "tables"
    assert sorted(p.stem for p in folder.glob("*.csv")) == sorted(TABLES)
    written = pd.read_csv(folder / "table7_policies.csv")
    assert len(written) == len(built["tables"]["table7_policies"])


# --- AUPRC, calibration, the multi-label target, published results, cost ---------------------

ML_TARGETS = ("Effusion", "Pneumothorax", MULTILABEL)
ML_POLICIES = ("constant", "triangular")


@pytest.fixture(scope="module")
def with_multilabel(tmp_path_factory):
    results = tmp_path_factory.mktemp("multilabel")
    info = write_fake_results(results, targets=ML_TARGETS, policies=ML_POLICIES, seeds=SEEDS,
                              test_images=150)
    grid = Grid(ML_TARGETS, ("mobilenet",), ML_POLICIES, SEEDS)
    tables, _, page = build_all(results, info, settings_for(grid), targets=ML_TARGETS)
    return {"results": results, "tables": tables, "page": page}


def seed_mean(results, target, policy, statistic, label="label"):
    """Mean over seeds of `statistic(labels, scores)` of one label of the runs' predictions."""
    values = []
    for seed in SEEDS:
        _, _, predictions = run_files(results, target, "mobilenet", policy, seed)
        score = "score" if label == "label" else f"score_{label}"
        values.append(statistic(predictions[label], predictions[score]))
    return np.mean(values)


def test_auprc_and_calibration_of_a_binary_target_are_seed_means(with_multilabel):
    results, tables = with_multilabel["results"], with_multilabel["tables"]
    for policy in ML_POLICIES:
        got = row(tables["auprc_calibration"], target="Effusion", policy=policy)
        assert got["auprc"] == pytest.approx(seed_mean(results, "Effusion", policy,
                                                       average_precision_score))
        assert got["auprc_ci_low"] < got["auprc"] < got["auprc_ci_high"]
        assert got["brier"] == pytest.approx(seed_mean(results, "Effusion", policy,
                                                       brier_score_loss))
        assert got["ece"] == pytest.approx(seed_mean(results, "Effusion", policy,
                                                     expected_calibration_error))
        assert got["auroc"] == row(tables["table5_results"], target="Effusion",
                                   policy=policy)["auroc"]
        _, _, predictions = run_files(results, "Effusion", "mobilenet", policy, 0)
        assert got["test_prevalence"] == pytest.approx(predictions["label"].mean())


def test_the_multilabel_network_is_reported_per_label_and_by_its_mean(with_multilabel):
    results, tables = with_multilabel["results"], with_multilabel["tables"]
    per_label = tables["per_label_results"]
    assert set(per_label["target"]) == {MULTILABEL}
    for policy in ML_POLICIES:
        rows = per_label[per_label["policy"] == policy]
        assert list(rows["label"]) == list(DISEASES)
        for label in ("Effusion", "Hernia"):
            got = row(rows, label=label)
            assert got["auroc"] == pytest.approx(seed_mean(results, MULTILABEL, policy,
                                                           roc_auc_score, label))
            assert got["auprc"] == pytest.approx(seed_mean(results, MULTILABEL, policy,
                                                           average_precision_score, label))
            assert got["brier"] == pytest.approx(seed_mean(results, MULTILABEL, policy,
                                                           brier_score_loss, label))
            assert got["auroc_ci_low"] < got["auroc"] < got["auroc_ci_high"]
        assert row(rows, label="Effusion")["published_chexnet2017"] == 0.8638
        # Its AUROC in Tables 5 and 7 is the mean over labels, per seed, then over seeds.
        mean = np.mean([np.mean([roc_auc_score(p[d], p[f"score_{d}"]) for d in DISEASES])
                        for p in (run_files(results, MULTILABEL, "mobilenet", policy, s)[2]
                                  for s in SEEDS)])
        assert row(tables["table5_results"], target=MULTILABEL, policy=policy)["auroc"] == \
            pytest.approx(mean)
        assert row(tables["auprc_calibration"], target=MULTILABEL, policy=policy)[
            "auprc"] == pytest.approx(rows["auprc"].mean())


def test_published_aurocs_stand_beside_the_binary_and_multilabel_ones(with_multilabel):
    tables = with_multilabel["tables"]
    published = tables["published_comparison"]
    for policy in ML_POLICIES:
        rows = published[published["policy"] == policy]
        assert list(rows["label"]) == [*DISEASES, "mean"]
        effusion = row(rows, label="Effusion")
        binary = row(tables["table5_results"], target="Effusion", policy=policy)
        assert (effusion["binary_auroc"], effusion["binary_auroc_ci_low"]) == (
            binary["auroc"], binary["auroc_ci_low"])
        assert effusion["multilabel_auroc"] == row(tables["per_label_results"],
                                                   policy=policy, label="Effusion")["auroc"]
        assert (effusion["published_wang2017"], effusion["published_yao2017"],
                effusion["published_chexnet2017"]) == (0.784, 0.859, 0.8638)
        assert pd.isna(row(rows, label="Hernia")["binary_auroc"]), "no binary Hernia runs"
        mean = row(rows, label="mean")
        assert pd.isna(mean["binary_auroc"]), "2 of the 14 binary targets: no binary mean"
        assert mean["multilabel_auroc"] == row(tables["table5_results"], target=MULTILABEL,
                                               policy=policy)["auroc"]
        assert mean["published_chexnet2017"] == 0.841 and pd.isna(mean["published_wang2017"])
    page = html.unescape(with_multilabel["page"])
    assert "published: CheXNet (Rajpurkar et al. 2017); split: random" in page
    assert "published: Wang et al. 2017; split: not verified" in page


def test_the_cost_of_each_approach_sums_the_binary_networks(with_multilabel):
    results, tables = with_multilabel["results"], with_multilabel["tables"]
    cost = tables["approach_cost"]
    for policy in ML_POLICIES:
        got = row(cost, policy=policy)

        def device_seconds(target, policy=policy):
            return np.mean([run_files(results, target, "mobilenet", policy, s)[0][
                "device_seconds"] for s in SEEDS])

        binary = device_seconds("Effusion") + device_seconds("Pneumothorax")
        assert got["binary_targets"] == 2
        assert got["binary_device_seconds"] == pytest.approx(binary)
        assert got["multilabel_device_seconds"] == pytest.approx(device_seconds(MULTILABEL))
        assert got["binary_over_multilabel"] == pytest.approx(
            binary / device_seconds(MULTILABEL))
        assert got["comparable"].startswith("not comparable: no runs of Atelectasis, ")
        assert got["comparable"].endswith("(12 of the 14 binary targets)")
    page = html.unescape(with_multilabel["page"])
    assert TABLES["approach_cost"][0] in page and "binary: CPU-seconds" in page


def test_every_published_number_names_its_source_and_split():
    sources = yaml.safe_load((REPO / "workflow_scripts" / "published_results.yaml")
                             .read_text())["sources"]
    assert [s["key"] for s in sources] == ["wang2017", "yao2017", "chexnet2017"]
    for source in sources:
        assert {"short", "citation", "read_at", "model"} <= source.keys()
        assert source["split"] in ("official", "random", "not verified")
        assert set(source["auroc"]) == set(DISEASES)
        assert all(0.5 < value < 1 for value in source["auroc"].values())
    # Whole-report tables are not among a target's.
    assert set(REPORT_TABLES) <= set(TABLES)


# --- figures, HTML, summary ------------------------------------------------------------------

def assert_png(data):
    assert data[:8] == PNG_SIGNATURE
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300
    assert pixels.std() > 0  # not blank


def test_every_figure_is_a_valid_png(built):
    results = built["results"]
    for target in TARGETS:
        for name in (*TARGET_FIGURES, "label_distribution"):
            assert_png((results / "report" / target / "figures" / f"{name}.png").read_bytes())
    for name in ("policy_overview", "label_distribution"):
        assert_png((results / "report" / "figures" / f"{name}.png").read_bytes())


def test_html_is_self_contained_and_has_every_table_and_figure(built):
    page = built["page"]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page and "<link" not in page
    images = re.findall(r'<img [^>]*src="data:image/png;base64,', page)
    # The label distribution, the policy overview and the performance profile, then each
    # target's figures.
    assert len(images) == 3 + len(TARGETS) * len(TARGET_FIGURES)
    for name, (title, _) in TABLES.items():
        # Shown where it has rows: missing runs, the multi-label and cross-target tables.
        assert (title in page) == (not built["tables"][name].empty), name
    target_page = (built["results"] / "report" / "Effusion" / "report.html").read_text()
    assert "Pneumothorax" not in target_page.split('<h2 id="data">')[1]
    assert len(re.findall(r"<img ", target_page)) == 1 + len(TARGET_FIGURES)


def test_summary_names_the_winner_and_whether_it_is_beyond_noise(built):
    table = built["tables"]["table7_policies"]
    sentences = summarize_target("Effusion", table, BASELINES, 0.95)
    assert len(sentences) == len(ARCHITECTURES)
    rows = table[(table["target"] == "Effusion") & (table["arch"] == "mobilenet")]
    winner = rows.loc[rows["auroc"].idxmax(), "policy"]
    assert sentences[0].startswith(f"mobilenet (3 seeds per policy): {winner} had the highest")
    assert re.search(r"(beyond|within) noise, adjusted p [0-9.e-]+\)", sentences[0])
    assert "CPU-seconds" in sentences[0]
    assert sentences[0] in html.unescape(built["page"])


# --- bad input ---------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    info = write_fake_results(tmp_path, targets=("Effusion",), policies=("constant",
                              "triangular"), seeds=(0, 1), test_images=60)
    grid = Grid(("Effusion",), ("mobilenet",), ("constant", "triangular"), (0, 1))
    return tmp_path, info, grid


def test_the_image_data_check_shows_under_table_1(small):
    results, info, grid = small
    settings = settings_for(grid)
    summary = results / "cache" / "64" / "summary.json"
    check = read_data_check(summary)
    page_path = results / "report" / "Effusion" / "report.html"
    target_report(results, info, settings, cache_summary=summary)
    page = html.unescape(page_path.read_text())
    needed = check["splits"]["Effusion"]["needed"]
    text = (f"The splits need {needed:,} images: {needed:,} found as PNG files and 0 in 0 "
            f"archive(s); 0 missing and 0 unreadable, excluded; {needed // 200} converted "
            f"from RGBA to gray. {needed:,} images cached at 64 px")
    assert page.index(TABLES["table1_label_counts"][0]) < page.index(text) \
        < page.index(TABLES["table2_split_sizes"][0])
    assert f'<td class="text">Effusion</td><td>{needed}</td><td>{needed}</td>' in page


def test_allow_missing_reports_the_runs_that_exist_and_lists_the_others(small):
    results, info, grid = small
    shutil.rmtree(results / "runs" / "Effusion" / "mobilenet" / "triangular" / "seed1")
    settings = settings_for(grid)
    report = target_report(results, info, settings)
    missing = report.tables["missing_runs"]
    assert missing[["policy", "seed"]].values.tolist() == [["triangular", 1]]
    assert row(report.tables["table5_results"], arch="mobilenet", policy="triangular")[
        "seeds"] == 1
    page = (results / "report" / "Effusion" / "report.html").read_text()
    assert 'id="missing"' in page and "1 configured run(s) are missing" in page


@pytest.mark.parametrize("damage, named", [
    (lambda folder: (folder / "history.csv").write_text(""), "history.csv"),
    (lambda folder: (folder / "history.csv").write_text(
        (folder / "history.csv").read_text().splitlines()[0] + "\n"), "history.csv"),
    (lambda folder: (folder / "metrics.json").write_text("{not json"), "metrics.json"),
    (lambda folder: (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.5})),
     "metrics.json"),
    (lambda folder: (folder / "predictions.parquet").write_bytes(b"PAR1 broken"),
     "predictions.parquet"),
])
def test_a_damaged_run_file_is_named_in_the_error(small, damage, named):
    results, info, grid = small
    folder = results / "runs" / "Effusion" / "mobilenet" / "triangular" / "seed1"
    damage(folder)
    with pytest.raises(InputError, match=re.escape(str(folder / named))):
        target_report(results, info, settings_for(grid))


def test_runs_tested_on_different_images_are_an_error(small):
    results, info, grid = small
    path = results / "runs" / "Effusion" / "mobilenet" / "triangular" / "seed1" / \
        "predictions.parquet"
    predictions = pd.read_parquet(path)
    predictions.loc[0, "image_index"] = "99999999_000.png"
    predictions.to_parquet(path)
    with pytest.raises(InputError, match="different test images"):
        target_report(results, info, settings_for(grid))


def test_identical_predictions_differ_by_exactly_zero_within_noise(small):
    results, info, grid = small
    runs = results / "runs" / "Effusion" / "mobilenet"
    for seed in (0, 1):
        shutil.copy(runs / "constant" / f"seed{seed}" / "predictions.parquet",
                    runs / "triangular" / f"seed{seed}" / "predictions.parquet")
    report = target_report(results, info, settings_for(grid))
    got = row(report.tables["table7_policies"], policy="triangular")
    assert got["delta_auroc_vs_constant"] == 0
    assert got["delta_auroc_vs_constant_ci_low"] == got["delta_auroc_vs_constant_ci_high"] == 0
    assert got["p_vs_constant"] == 1
    assert pd.isna(got["beyond_noise_vs_constant"]), "two seeds: too few to judge"


def test_a_policy_sharing_anothers_runs_is_listed_with_the_same_numbers(tmp_path):
    policies = ("constant", "triangular2", "modified_triangular2")
    info = write_fake_results(tmp_path, targets=("Effusion",), policies=policies,
                              seeds=(0, 1, 2), test_images=80)
    # The workflow trains no runs of a policy that shares another's schedule.
    shutil.rmtree(tmp_path / "runs" / "Effusion" / "mobilenet" / "modified_triangular2")
    grid = Grid(("Effusion",), ("mobilenet",), policies, (0, 1, 2),
                twins={"Effusion": {"modified_triangular2": "triangular2"}})
    report = target_report(tmp_path, info, settings_for(grid))
    assert report.tables["missing_runs"].empty
    for name in ("table5_results", "table7_policies"):
        table = report.tables[name]
        shared, trained = (row(table, policy=p) for p in ("modified_triangular2", "triangular2"))
        assert shared["same_schedule_as"] == "triangular2"
        assert pd.isna(trained["same_schedule_as"])
        numbers = [c for c in table.columns if c.startswith(("auroc", "delta_", "p_"))]
        pd.testing.assert_series_equal(shared[numbers], trained[numbers], check_names=False)
    assert any("modified_triangular2 gives the same learning rate as triangular2" in note
               for note in report.notes)
    assert row(report.tables["table6_architectures"], arch="mobilenet")["runs"] == 2 * 3


def test_without_lr_finder_results_bounds_come_from_the_config(tmp_path):
    info = write_fake_results(tmp_path, targets=("Effusion",), policies=("constant",
                              "triangular"), seeds=(0,), lr_finder=False,
                              settings={"base_lr": 0.001, "max_lr": 0.004})
    grid = Grid(("Effusion",), ("mobilenet",), ("constant", "triangular"), (0,))
    report = target_report(tmp_path, info, settings_for(grid))
    clr = row(report.tables["table8_clr_parameters"], policy="triangular")
    assert clr["bounds_from"] == "config" and clr["max_lr"] == 0.004
    assert pd.isna(clr["lr_finder_max_lr"])
    assert_png(report.figures["lr_finder"])
    assert row(report.tables["table7_policies"], policy="triangular")[
        "seeds_reaching_constant_best"] == 1


def test_a_baseline_that_is_not_configured_is_noted_not_compared(small):
    results, info, grid = small
    settings = ReportSettings(grid=grid, baselines=("time_decay", "constant"), samples=100)
    report = target_report(results, info, settings)
    table = report.tables["table7_policies"]
    assert "delta_auroc_vs_constant" in table and "delta_auroc_vs_time_decay" not in table
    assert any("time_decay" in note for note in report.notes)


# --- the workflow ----------------------------------------------------------------------------

def test_paper_config_sets_the_papers_numbers():
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    paper = yaml.safe_load((REPO / "workflow_scripts" / "paper_numbers.yaml").read_text())
    assert len(config["targets"]) == 15 and config["splits"]["test_fraction"] == 0.2
    negatives = {r["target"]: r["negatives"] for r in paper["table2_splits"]}
    assert config["splits"]["negatives"] == {t: n for t, n in negatives.items()
                                             if t != "no_finding_vs_any"}
    for row_ in paper["table3_batches"]:
        assert config["overrides"][row_["target"]]["train"]["batch_size"] == row_["batch_size"]
    for row_ in paper["table4_optimizers"]:
        train = config["overrides"][row_["target"]]["train"]
        assert {k: train[k] for k in ("optimizer", "learning_rate", "decay", "momentum")} == {
            k: row_[k] for k in ("optimizer", "learning_rate", "decay", "momentum")}
    for row_ in paper["table8_clr"]:
        train = config["overrides"][row_["target"]]["train"]
        assert (train["base_lr"], train["max_lr"], train["epochs"]) == (
            row_["base_lr"], row_["max_lr"], row_["epochs"])


def demo_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def demo_grid():
    config = demo_config()
    return (tuple(config["targets"]), tuple(config.get("architectures", ["mobilenet"])),
            tuple(config["policies"]), tuple(config["seeds"]))


def snakemake(workdir, *arguments, configfiles=()):
    """Snakemake on the repository's workflow in `workdir`, allowed to run the report only;
    stdout and stderr merged."""
    return run_snakemake(
        workdir, "--snakefile", REPO / "Snakefile", "--configfile",
        REPO / "config" / "config.yaml", *configfiles, "--allowed-rules", "report",
        "report_target", *arguments, timeout=600, check=False)


@pytest.fixture
def demo_results(tmp_path):
    targets, architectures, policies, seeds = demo_grid()
    write_fake_results(tmp_path / "results", targets=targets, architectures=architectures,
                       policies=policies, seeds=seeds, test_images=80,
                       image_size=demo_config()["image_size"])
    return tmp_path


def test_allow_missing_plans_the_report_without_the_missing_runs(demo_results):
    targets, architectures, policies, seeds = demo_grid()
    shutil.rmtree(demo_results / "results" / "runs" / targets[0] / architectures[0]
                  / policies[-1] / f"seed{seeds[-1]}")
    refused = snakemake(demo_results, "-n", "results/report/report.html")
    assert refused.returncode != 0
    assert "MissingInputException" in refused.stdout
    # --config passes nested values as text, so the boolean comes from a config file.
    allow_missing = demo_results / "allow_missing.yaml"
    allow_missing.write_text("report:\n  allow_missing: true\n")
    planned = snakemake(demo_results, "-n", "results/report/report.html",
                        configfiles=[allow_missing])
    assert planned.returncode == 0, planned.stdout[-3000:]
    assert re.search(r"^report_target\s+" + str(len(targets)) + "$", planned.stdout,
                     re.MULTILINE)


@pytest.mark.slow
def test_the_report_rules_and_snakemakes_report_run_on_generated_runs(demo_results):
    done = snakemake(demo_results, "--cores", "2", "results/report/report.html")
    assert done.returncode == 0, done.stdout[-3000:]
    targets = demo_grid()[0]
    report = demo_results / "results" / "report"
    assert (report / targets[0] / "report.html").is_file()
    assert sorted(p.stem for p in (report / "tables").glob("*.csv")) == sorted(TABLES)
    zipped = snakemake(demo_results, "--report", "report.zip", "--",
                       "results/report/report.html")
    assert zipped.returncode == 0, zipped.stdout[-3000:]
    assert "ERROR" not in zipped.stdout
    assert (demo_results / "report.zip").stat().st_size > 100_000
