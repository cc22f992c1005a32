"""Stages `report_target` and `report`: the comparison of learning-rate policies as HTML.

`report_target` reads every run of one target and writes `results/report/{target}/`:
report.html, tables/*.csv (the target's rows of the paper's Tables 1-8, AUPRC and
calibration, the multi-label target's per-label numbers, and the missing runs) and
figures/*.png (one figure per kind, a panel per architecture). `report` assembles those
into `results/report/report.html`, with every table also as one CSV under
`results/report/tables/` and the overview figures under `results/report/figures/`; it adds
the comparisons across targets: published AUROCs beside ours, and each approach's cost.

`produce_target_report` and `produce_report` do each job from paths to paths; the rules,
the tests and the benchmark call them. The runs come from `report_runs`, the statistics
across seeds from `report_statistics`, the numbers from `report_tables`, `report_metrics`
and `report_published`, the figures from `report_figures` and `report_result_figures`, the
written summary from `report_text`, and the page from `report_html`.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workflow_scripts import report_figures as figures
from workflow_scripts import report_result_figures as result_figures
from workflow_scripts.plan import Grid
from workflow_scripts.report_budget import (
    SENSITIVITY_COLUMNS,
    performance_profile,
    robustness_table,
    scale_statistics,
    time_to_target,
    time_to_target_table,
    tuned_comparison,
)
from workflow_scripts.report_contents import MIN_SEEDS_TO_JUDGE, TARGET_TABLES
from workflow_scripts.report_drawing import policy_colors
from workflow_scripts.report_html import render_html
from workflow_scripts.report_metrics import beyond_auroc_tables
from workflow_scripts.report_published import approach_cost, published_comparison
from workflow_scripts.report_runs import device_kind, load_target_runs, missing_runs, ordered
from workflow_scripts.report_statistics import (
    auroc_statistics,
    baseline_reach,
    judge_differences,
    resampled,
)
from workflow_scripts.report_tables import (
    architecture_table,
    batch_table,
    clr_table,
    label_count_table,
    optimizer_table,
    policy_table,
    results_table,
    split_table,
)
from workflow_scripts.stage import InputError, log, run


@dataclass
class ReportSettings:
    """What a report compares and how: the configured grid, the baselines, the bootstrap."""

    grid: Grid
    baselines: tuple = ("constant", "time_decay")
    samples: int = 1000
    level: float = 0.95
    multiplicity: str = "fdr_bh"
    source: str = "nih"

    @property
    def present_baselines(self):
        return tuple(b for b in self.baselines if b in self.grid.policies)

    @property
    def skipped_baselines(self):
        return tuple(b for b in self.baselines if b not in self.grid.policies)


@dataclass
class TargetReport:
    """The tables (name -> the target's rows), figures (name -> PNG) and notes of one target."""

    target: str
    tables: dict
    figures: dict
    notes: list = field(default_factory=list)


def read_lr_finder(paths):
    """arch -> (curve, summary) from LR-finder JSON paths (the curve CSV beside each)."""
    results = {}
    for path in map(Path, paths):
        try:
            summary = json.loads(path.read_text())
            curve = pd.read_csv(path.with_suffix(".csv"))
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: unreadable LR-finder result ({error}); rerun the "
                             "lr_finder rule for it.") from error
        absent = [k for k in ("rule", "base_lr", "max_lr", "verdict", "suggestions")
                  if k not in summary] + [
            c for c in ("step", "lr", "data_loss", "centred_data_loss", "penalty")
            if c not in curve.columns]
        if absent:
            raise InputError(f"{path}: the LR-finder result lacks {', '.join(absent)}; rerun "
                             "the lr_finder rule for it.")
        results[path.stem] = (curve, summary)
    return results


def build_target_report(target, *, run_folders, settings, train_settings, label_counts,
                        split_summary, lr_finder_paths=()):
    """Every table and figure of one target from its runs (see the module docstring).

    `run_folders` are the target's run folders the report reads (its inputs: with
    report.allow_missing only those that exist); `train_settings` maps each target to its
    training settings (config `train` with the target's overrides); `lr_finder_paths` are the
    target's LR-finder JSON files, if any ran.
    """
    grid = settings.grid
    every_scale, found = load_target_runs(run_folders, target, grid)
    missing = missing_runs(found, grid, target)
    at_own_rates = (every_scale.runs["lr_scale"] == 1.0).to_numpy()
    runs = every_scale.subset(at_own_rates)  # the comparison at the study's own learning rates
    baselines = settings.present_baselines
    every_auroc, every_auprc = (resampled(every_scale, settings.samples)
                                if not every_scale.runs.empty else (None, None))
    aurocs, auprcs = ((every_auroc[:, at_own_rates], every_auprc[:, at_own_rates])
                      if every_auroc is not None else (None, None))
    auroc, differences = auroc_statistics(runs, aurocs, baselines, settings.level)
    differences = judge_differences(differences, settings.multiplicity, settings.level,
                                    grid.twins_of(target))
    reach = baseline_reach(runs.histories, baselines)
    sensitivity = budget_tables(every_scale, every_auroc, settings)
    lr_finder = read_lr_finder(lr_finder_paths)
    found = {arch: summary for arch, (_, summary) in lr_finder.items()}
    tables = {
        "table1_label_counts": label_count_table(label_counts, target),
        "table2_split_sizes": split_table(split_summary, target),
        "table3_batches": batch_table(split_summary, train_settings, runs),
        "table4_optimizers": optimizer_table(train_settings, target),
        "table5_results": results_table(runs, auroc, grid),
        "table6_architectures": architecture_table(runs, grid),
        "table7_policies": policy_table(runs, auroc, differences, reach, baselines, grid),
        "table8_clr_parameters": clr_table(runs, train_settings, found, grid),
        **beyond_auroc_tables(runs, auroc, aurocs, auprcs, settings.level, grid),
        **sensitivity,
        "time_to_target": time_to_target_table(
            target, time_to_target(runs.histories, next(iter(baselines), None)), grid),
        "missing_runs": missing,
    }
    colors = policy_colors(grid.policies)
    # Test labels and scores of the labels whose test images hold both classes.
    scored = (runs.test_labels[:, runs.scored], runs.scores[:, :, runs.scored])
    kind = device_kind(runs.runs["gpus"])  # 'mixed' without runs
    architectures, policies = grid.architectures, grid.policies
    target_figures = {
        "label_distribution": figures.label_distribution(
            label_counts, highlight=None if target not in set(label_counts["label"])
            else [target]),
        "lr_schedules": figures.lr_schedules(target, runs.learning_rates, runs.runs,
                                             architectures, policies),
        "lr_finder": figures.lr_finder(target, lr_finder, architectures),
        "validation_curves": figures.validation_curves(target, runs.histories, architectures,
                                                       policies, baselines, colors),
        "accuracy_vs_device_time": figures.accuracy_vs_device_time(
            target, runs.histories, architectures, policies, baselines, colors, kind),
        "roc_curves": result_figures.roc_curves(target, *scored, runs.runs, auroc, architectures,
                                         policies, colors),
        "reliability_diagram": result_figures.reliability_diagram(
            target, *scored, runs.runs, tables["auprc_calibration"], architectures, policies,
            colors),
        "auroc_by_policy": result_figures.auroc_by_policy(target, runs.runs, auroc, differences,
                                                   architectures, policies, baselines, colors,
                                                   settings.level),
        "lr_sensitivity": result_figures.lr_sensitivity(
            target, tables["lr_sensitivity"], tables["tuned_comparison"], architectures,
            policies, colors, settings.level),
    }
    return TargetReport(target, tables, target_figures,
                        report_notes(settings, missing, [target]) + tuning_notes(
                            target, tables["tuned_comparison"], tables["lr_sensitivity"]))


def budget_tables(every_scale, every_auroc, settings):
    """The sensitivity, robustness and tuned-comparison tables of one target (see
    `report_budget`); empty with one learning-rate scale, where Table 7 says it all."""
    sensitivity = ordered(scale_statistics(every_scale, every_auroc, settings.level)
                          if len(settings.grid.lr_scales) > 1
                          else pd.DataFrame(columns=SENSITIVITY_COLUMNS), settings.grid)
    tuned = tuned_comparison(every_scale, every_auroc, sensitivity, settings)
    for row in tuned.itertuples():
        log.info("%s %s %s: tuned on validation at scale %g (mean final validation AUROC "
                 "%.4f)%s", every_scale.target, row.arch, row.policy, row.tuned_scale,
                 row.val_auroc, ", at the edge of lr_scales" if row.at_grid_edge else "")
    return {"lr_sensitivity": sensitivity,
            "lr_robustness": robustness_table(sensitivity, settings.grid),
            "tuned_comparison": tuned}


def tuning_notes(target, tuned, sensitivity):
    """What the tuned comparison chose by itself and where that choice may mislead."""
    notes = []
    edge = tuned[tuned["at_grid_edge"].astype(bool)] if not tuned.empty else tuned
    if not edge.empty:
        named = ", ".join(f"{row.policy} ({row.arch}, scale {row.tuned_scale:g})"
                          for row in edge.itertuples())
        notes.append(f"{target}: the validation AUROC chose the smallest or largest "
                     f"learning-rate scale for {named}: its best rate may lie beyond the "
                     "configured lr_scales; widen them to find it.")
    if not tuned.empty:
        untuned = sensitivity[["arch", "policy"]].drop_duplicates().merge(
            tuned[["arch", "policy"]], how="left", indicator=True)
        untuned = untuned[untuned["_merge"] == "left_only"]
        if not untuned.empty:
            named = ", ".join(f"{row.policy} ({row.arch})" for row in untuned.itertuples())
            notes.append(f"{target}: no validation AUROC at any scale for {named} (a "
                         "validation split with one class); left out of the tuned "
                         "comparison.")
    return notes


def report_notes(settings, missing, targets):
    notes = []
    for target in targets:
        for policy, twin in settings.grid.twins_of(target).items():
            notes.append(f"{target}: {policy} gives the same learning rate as {twin} at every "
                         f"step of these runs (for modified_triangular2: the runs end before "
                         f"its halving restarts), so {twin}'s runs stand for both; their rows "
                         f"are the same numbers, not two results.")
    seeds = len(settings.grid.seeds)
    if seeds < MIN_SEEDS_TO_JUDGE and settings.present_baselines:
        notes.append(f"{seeds} seed{'s' if seeds != 1 else ''} per policy: too few to judge "
                     f"whether a difference is beyond noise ({MIN_SEEDS_TO_JUDGE} or more "
                     "needed), so no difference is marked; the intervals are shown.")
    if settings.source == "demo":
        notes.append("These runs used the synthetic demo dataset, not NIH ChestX-ray14: the "
                     "paper's numbers are shown for reference only and do not compare.")
    if settings.skipped_baselines:
        notes.append(f"report.baselines {', '.join(settings.skipped_baselines)} "
                     f"{'is' if len(settings.skipped_baselines) == 1 else 'are'} not among "
                     "the configured policies and left out of the comparison.")
    if not missing.empty:
        notes.append(f"{len(missing)} configured run(s) are missing and left out "
                     "(report.allow_missing); see the table 'Missing runs'.")
    return notes


REPORT_TITLE = "Learning-rate policies on chest X-rays: comparison report"


def produce_target_report(target, *, run_folders, settings, train_settings, label_counts,
                          split_summary, html, lr_finder_paths=(), cache_summary=None):
    """Read one target's runs and the data tables at these paths, and write its report at
    `html` (tables and figures beside it, see `write_target_report`); returns the
    TargetReport. `cache_summary` is the image cache's summary.json, shown under Table 1."""
    report = build_target_report(
        target, run_folders=run_folders, settings=settings, train_settings=train_settings,
        label_counts=pd.read_csv(label_counts), split_summary=pd.read_csv(split_summary),
        lr_finder_paths=lr_finder_paths)
    write_target_report(report, html, settings,
                        read_data_check(cache_summary) if cache_summary else None)
    log.info("%s: %d runs reported, %d missing", target,
             int(report.tables["table5_results"]["seeds"].sum()),
             len(report.tables["missing_runs"]))
    return report


def produce_report(target_folders, *, settings, label_counts, html, tables, figures,
                   cache_summary=None):
    """The whole report from the target reports in `target_folders` (as
    `produce_target_report` wrote them) and the label counts at `label_counts`: the page at
    `html`, every table as a CSV in `tables`, the overview figures in `figures`. Returns
    (tables, overview figures, page)."""
    target_reports = [read_target_report(folder) for folder in target_folders]
    all_tables, overview = build_report(target_reports, pd.read_csv(label_counts), settings)
    write_tables(all_tables, tables)
    write_figures(overview, figures)
    notes = report_notes(settings, all_tables["missing_runs"], settings.grid.targets)
    for target in settings.grid.targets:
        notes += tuning_notes(target, *(
            table[table["target"] == target] for table in (
                all_tables["tuned_comparison"], all_tables["lr_sensitivity"])))
    page = render_html(REPORT_TITLE, settings, all_tables,
                       {target.target: target.figures for target in target_reports}, overview,
                       notes, read_data_check(cache_summary) if cache_summary else None)
    Path(html).write_text(page)
    log.info("report of %d targets written to %s", len(target_reports), html)
    return all_tables, overview, page


def write_target_report(report, html_path, settings, data_check=None):
    """report.html, tables/*.csv and figures/*.png in the folder of `html_path`; the image
    cache's `data_check` (its summary.json) shows under Table 1."""
    folder = Path(html_path).parent
    write_tables(report.tables, folder / "tables")
    write_figures(report.figures, folder / "figures")
    title = f"Learning-rate policies on {report.target}"
    Path(html_path).write_text(render_html(title, settings, report.tables, {report.target:
                                           report.figures}, {}, report.notes, data_check))


def read_data_check(path):
    """The image cache's data check, as build_image_cache writes it."""
    return json.loads(Path(path).read_text())


def read_target_report(folder):
    """A target report as `write_target_report` left it in `folder`."""
    folder = Path(folder)
    tables = {name: pd.read_csv(folder / "tables" / f"{name}.csv") for name in TARGET_TABLES}
    target_figures = {path.stem: path.read_bytes()
                      for path in sorted((folder / "figures").glob("*.png"))}
    return TargetReport(folder.name, tables, target_figures)


def build_report(target_reports, label_counts, settings):
    """The whole report: Table 1 over all labels, the other per-target tables and the missing
    runs stacked over targets, the published AUROCs beside ours and each approach's cost,
    and the overview figures. Returns (tables, overview figures)."""
    tables = {"table1_label_counts": label_count_table(label_counts)}
    for name in TARGET_TABLES[1:]:
        parts = [report.tables[name] for report in target_reports
                 if not report.tables[name].empty]
        tables[name] = ordered(pd.concat(parts, ignore_index=True), settings.grid) if parts \
            else next(iter(target_reports)).tables[name]
    tables["published_comparison"] = published_comparison(
        tables["table5_results"], tables["per_label_results"], settings.grid)
    tables["approach_cost"] = approach_cost(tables["table7_policies"], settings.grid)
    baseline = next(iter(settings.present_baselines), None)
    overview = {
        "policy_overview": result_figures.policy_overview(
            tables["table7_policies"], settings.grid.targets, settings.grid.architectures,
            settings.grid.policies, baseline),
        "performance_profile": result_figures.performance_profile(
            performance_profile(tables["time_to_target"], settings.grid.policies),
            policy_colors(settings.grid.policies)),
        "label_distribution": figures.label_distribution(label_counts),
    }
    return tables, overview


def write_tables(tables, folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(folder / f"{name}.csv", index=False)


def write_figures(pngs, folder):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        (folder / f"{name}.png").write_bytes(data)


# --- entries -------------------------------------------------------------------------------

def report_settings(params):
    grid = params.grid
    return ReportSettings(
        grid=Grid(tuple(grid["targets"]), tuple(grid["architectures"]),
                  tuple(grid["policies"]), tuple(int(s) for s in grid["seeds"]),
                  twins=dict(params.twins),
                  lr_scales=tuple(float(s) for s in grid.get("lr_scales", [1.0]))),
        baselines=tuple(params.report["baselines"]),
        samples=int(params.metrics["bootstrap_samples"]),
        level=float(params.metrics["ci_level"]),
        multiplicity=params.report["multiplicity"],
        source=params.source)


def write_target(snakemake):
    produce_target_report(
        snakemake.wildcards.target,
        run_folders=sorted({Path(path).parent for path in snakemake.input.runs}),
        settings=report_settings(snakemake.params),
        train_settings=snakemake.params.train_settings,
        label_counts=snakemake.input.label_counts, split_summary=snakemake.input.split_summary,
        html=snakemake.output.html,
        lr_finder_paths=[p for p in snakemake.input.lr_finder if p.endswith(".json")],
        cache_summary=snakemake.input.cache_summary)


def write_report(snakemake):
    produce_report([Path(path).parent for path in snakemake.input.target_reports],
                   settings=report_settings(snakemake.params),
                   label_counts=snakemake.input.label_counts, html=snakemake.output.html,
                   tables=snakemake.output.tables,
                   figures=Path(snakemake.output.policy_overview).parent,
                   cache_summary=snakemake.input.cache_summary)


ENTRIES = {"report_target": write_target, "report": write_report}

if __name__ == "__main__":
    run(snakemake, ENTRIES[snakemake.rule])  # noqa: F821 - `snakemake` is injected by the rule's script directive
