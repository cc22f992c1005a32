"""Stages `report_target` and `report`: the comparison of learning-rate policies as HTML.

`report_target` reads every run of one target and writes `results/report/{target}/`:
report.html, tables/*.csv (the target's rows of the paper's Tables 1-8 and the missing runs)
and figures/*.png (one figure per kind, a panel per architecture). `report` assembles those
into `results/report/report.html`, with every table also as one CSV under
`results/report/tables/` and the overview figures under `results/report/figures/`.

An HTML report is one self-contained file: figures are embedded as base64 PNG, the style
sheet is inline, nothing is fetched. Each target gets a written summary generated from the
numbers (which policy won, by how much, whether beyond noise, at what cost).
"""

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workflow_scripts import report_figures as figures
from workflow_scripts.checkpoint import retire_checkpoints
from workflow_scripts.report_tables import (
    MIN_SEEDS_TO_JUDGE,
    Grid,
    architecture_table,
    auroc_statistics,
    baseline_reach,
    batch_table,
    clr_table,
    device_kind,
    judge_differences,
    label_count_table,
    load_target_runs,
    missing_runs,
    optimizer_table,
    ordered,
    policy_table,
    require_complete,
    results_table,
    split_table,
)
from workflow_scripts.stage import InputError, log, run

# CSV name -> title and what a row is. Tables 2-8 have one row per target or per target x
# architecture (x policy); the paper's numbers are in the paper_* columns.
TABLES = {
    "table1_label_counts": ("Table 1. Images per label",
                            "Images whose only label is this one, and images carrying it in "
                            "any combination."),
    "table2_split_sizes": ("Table 2. Images per target and split",
                           "The paper's 80% training share compares with train + val."),
    "table3_batches": ("Table 3. Batches per epoch",
                       "Training batches as the runs counted them: full batches only (the "
                       "few images left over wait for a later epoch's shuffle), where the "
                       "paper's last batch held the remainder; test batches = ceil(test "
                       "images / batch size)."),
    "table4_optimizers": ("Table 4. Optimizer settings",
                          "As configured (defaults with the target's overrides); decay is "
                          "the time_decay policy's lr / (1 + decay x step)."),
    "table5_results": ("Table 5. Results per target, architecture and policy",
                       "Means over seeds. Test metrics at threshold 0.5; AUROC with its "
                       "interval over seeds and test patients. The "
                       "paper reports training accuracy: compare its column with "
                       "train accuracy (last epoch)."),
    "table6_architectures": ("Table 6. Architectures",
                             "Over all runs of the architecture (every policy and seed): time "
                             "per epoch, throughput, mean metrics, and the policy with the "
                             "best mean AUROC. The paper's times are hours per epoch on its "
                             "hardware."),
    "table7_policies": ("Table 7. Policies against the baselines",
                        "Mean ± sd across seeds. AUROC difference to each baseline: mean over "
                        "seeds of the paired difference on the same test images, with its "
                        "interval over seeds and test patients and its p-value, raw and "
                        "adjusted for multiplicity over every comparison of the target; "
                        "beyond noise = adjusted p-value at most 1 - level, left empty with "
                        "fewer than 3 seeds. Epochs (median and mean) and device time (mean) "
                        "until the validation accuracy first matched the baseline's best, over "
                        "the seeds that got there."),
    "table8_clr_parameters": ("Table 8. Cyclical learning-rate parameters",
                              "Bounds as the runs used them (from the config or the LR "
                              "finder); step size = half a cycle, in optimizer steps and in "
                              "epochs. For one_cycle, base_lr is its starting LR, max_lr / "
                              "div_factor. The LR finder's rule and its check's verdict: a "
                              "configured rule whose pick failed a check is replaced by the "
                              "fallback rule, and the verdict says why."),
    "missing_runs": ("Missing runs", "Configured runs without outputs, left out of this report "
                     "(report.allow_missing)."),
}
TARGET_TABLES = tuple(TABLES)
TARGET_FIGURES = ("lr_schedules", "lr_finder", "validation_curves", "accuracy_vs_device_time",
                  "roc_curves", "auroc_by_policy")
DEVICE_TIME_COLUMNS = ("device_seconds", "device_seconds_per_epoch")
COUNT_COLUMNS = ("seeds", "runs", "seed", "epochs", "step_size", "images", "batch",
                 "positives", "negatives", "patients", "train", "val", "test", "single_label")
# Fractions shown with three decimals, so that columns line up and compare.
METRIC_COLUMNS = ("accuracy", "auroc", "sensitivity", "specificity", "f1")


@dataclass
class ReportSettings:
    """What a report compares and how: the configured grid, the baselines, the bootstrap."""

    grid: Grid
    baselines: tuple = ("constant", "time_decay")
    samples: int = 1000
    level: float = 0.95
    multiplicity: str = "fdr_bh"
    allow_missing: bool = False
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


def build_target_report(target, *, runs_root, settings, train_settings, label_counts,
                        split_summary, lr_finder_paths=()):
    """Every table and figure of one target from its runs (see the module docstring).

    `train_settings` maps each target to its training settings (config `train` with the
    target's overrides); `lr_finder_paths` are the target's LR-finder JSON files, if any ran.
    Raises InputError listing missing runs unless `settings.allow_missing`.
    """
    grid = settings.grid
    missing = missing_runs(runs_root, grid, [target])
    require_complete(missing, runs_root, settings.allow_missing)
    runs = load_target_runs(runs_root, target, grid)
    baselines = settings.present_baselines
    auroc, differences = auroc_statistics(runs, baselines, settings.samples, settings.level)
    differences = judge_differences(differences, settings.multiplicity, settings.level,
                                    grid.shared_runs(target))
    reach = baseline_reach(runs.histories, baselines)
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
        "missing_runs": missing,
    }
    colors = figures.policy_colors(grid.policies)
    kind = device_kind(runs.runs["gpus"]) if not runs.runs.empty else "mixed"
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
        "roc_curves": figures.roc_curves(target, runs.test, runs.scores, runs.runs, auroc,
                                         architectures, policies, colors),
        "auroc_by_policy": figures.auroc_by_policy(target, runs.runs, auroc, differences,
                                                   architectures, policies, baselines, colors,
                                                   settings.level),
    }
    return TargetReport(target, tables, target_figures,
                        report_notes(settings, missing, [target]))


def report_notes(settings, missing, targets):
    notes = []
    for target in targets:
        for policy, twin in settings.grid.shared_runs(target).items():
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


def write_target_report(report, html_path, settings, data_check=None):
    """report.html, tables/*.csv and figures/*.png in the folder of `html_path`."""
    folder = Path(html_path).parent
    write_tables(report.tables, folder / "tables")
    write_figures(report.figures, folder / "figures")
    title = f"Learning-rate policies on {report.target}"
    Path(html_path).write_text(render_html(title, settings, report.tables, {report.target:
                                           report.figures}, {}, report.notes, data_check))


def read_target_report(folder):
    """A target report as `write_target_report` left it in `folder`."""
    folder = Path(folder)
    tables = {name: pd.read_csv(folder / "tables" / f"{name}.csv") for name in TARGET_TABLES}
    target_figures = {path.stem: path.read_bytes()
                      for path in sorted((folder / "figures").glob("*.png"))}
    return TargetReport(folder.name, tables, target_figures)


def build_report(target_reports, label_counts, settings):
    """The whole report: Table 1 over all labels, Tables 2-8 and the missing runs stacked
    over targets, and the overview figures. Returns (tables, overview figures)."""
    tables = {"table1_label_counts": label_count_table(label_counts)}
    for name in TARGET_TABLES[1:]:
        parts = [report.tables[name] for report in target_reports
                 if not report.tables[name].empty]
        tables[name] = ordered(pd.concat(parts, ignore_index=True), settings.grid) if parts \
            else next(iter(target_reports)).tables[name]
    baseline = next(iter(settings.present_baselines), None)
    overview = {
        "policy_overview": figures.policy_overview(
            tables["table7_policies"], settings.grid.targets, settings.grid.architectures,
            settings.grid.policies, baseline),
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


# --- written summary -----------------------------------------------------------------------

def number(value, signed=False):
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def difference_text(row, baseline, level):
    """'+0.012 against constant (95% interval -0.004 to +0.029, within noise)', or None."""
    delta = row.get(f"delta_auroc_vs_{baseline}")
    low = row.get(f"delta_auroc_vs_{baseline}_ci_low")
    high = row.get(f"delta_auroc_vs_{baseline}_ci_high")
    if delta is None or any(pd.isna(v) for v in (delta, low, high)):
        return None
    beyond = row.get(f"beyond_noise_vs_{baseline}")
    if pd.isna(beyond):
        verdict = f"too few seeds to judge against noise ({MIN_SEEDS_TO_JUDGE} needed)"
    else:
        adjusted = row.get(f"p_adjusted_vs_{baseline}")
        verdict = (f"{'beyond' if beyond else 'within'} noise, adjusted p "
                   f"{adjusted:.2g}")
    return (f"{number(delta, True)} against {baseline} ({level:.0%} interval "
            f"{number(low, True)} to {number(high, True)}, {verdict})")


def epochs_text(epochs):
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}"


def cost_text(best, reference, baseline, unit):
    """How long `best` took to match `baseline`'s best validation accuracy, and a whole run."""
    reached = best.get(f"seeds_reaching_{baseline}_best")
    seeds = int(best["seeds"])
    if pd.isna(reached) or reached == 0:
        text = f"It never matched {baseline}'s best validation accuracy within its epochs."
    else:
        text = (f"It matched {baseline}'s best validation accuracy after "
                f"{epochs_text(best[f'epochs_to_{baseline}_best'])} (median, {int(reached)} "
                f"of {seeds} seeds) and {best[f'device_seconds_to_{baseline}_best']:,.0f} {unit}")
        own = reference.get(f"epochs_to_{baseline}_best")
        if not pd.isna(own):
            text += (f", where {baseline} needed {epochs_text(own)} and "
                     f"{reference[f'device_seconds_to_{baseline}_best']:,.0f} {unit}")
        text += "."
    return (text + f" A whole run took {best['device_seconds']:,.0f} {unit} "
            f"({baseline}: {reference['device_seconds']:,.0f}).")


def summarize_target(target, policy_rows, baselines, level):
    """Sentences per architecture from Table 7's rows of `target`: the policy with the best
    mean test AUROC, its difference to each baseline and whether beyond noise, and its cost."""
    rows = policy_rows[(policy_rows["target"] == target) & policy_rows["seeds"].notna()]
    if rows.empty:
        return [f"{target}: no finished runs."]
    sentences = []
    for arch, group in rows.groupby("arch", sort=False):
        best = group.loc[group["auroc"].idxmax()]
        seeds = int(group["seeds"].max())
        text = (f"{arch} ({seeds} seed{'s' if seeds != 1 else ''} per policy): "
                f"{best['policy']} had the highest mean test AUROC, {number(best['auroc'])}"
                + (f" (sd {number(best['auroc_sd'])})" if not pd.isna(best["auroc_sd"]) else "")
                + f", test accuracy {number(best['accuracy'])}.")
        present = [b for b in baselines if (group["policy"] == b).any()]
        if best["policy"] in present:
            others = group[~group["policy"].isin(present)]
            text += f" {best['policy']} is a baseline"
            if not others.empty:
                runner = others.loc[others["auroc"].idxmax()]
                compared = difference_text(runner, best["policy"], level)
                text += (f"; the best other policy, {runner['policy']}, was "
                         f"{compared}" if compared else "")
            text += "."
        else:
            compared = [t for t in (difference_text(best, b, level) for b in present) if t]
            if compared:
                text += " Its AUROC difference: " + "; ".join(compared) + "."
        reference_name = next((b for b in present if b != best["policy"]), None)
        if reference_name:
            reference = group[group["policy"] == reference_name].iloc[0]
            unit = figures.time_label(best["device_kind"])
            text += " " + cost_text(best, reference, reference_name, unit)
        sentences.append(text)
    return sentences


# --- HTML ----------------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { margin-top: 1.6em; }
nav ul { columns: 3; } .note { background: #fff6d6; padding: 0.5em 0.8em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right;
         white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
td.text, th.text { text-align: left; }
td.paper, th.paper { background: #eef4fb; color: #1b4b7a; }
tr:nth-child(even) td:not(.paper) { background: #fafafa; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; }
figcaption, .caption { font-size: 0.9em; color: #555; max-width: 70em; }
"""


def format_value(value, column):
    """A cell as text: counts as integers, metrics to 3 decimals, others to 3 digits."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or str(value) in ("True", "False"):
        return "yes" if str(value) == "True" else "no"
    if isinstance(value, str):
        return value
    signed = column.startswith("delta_")
    if any(part in column for part in METRIC_COLUMNS):
        return f"{value:+.3f}" if signed else f"{value:.3f}"
    if float(value).is_integer() and (any(part in column for part in COUNT_COLUMNS)
                                      or abs(value) >= 100):
        return f"{int(value):,}"
    magnitude = abs(value)
    text = (f"{value:,.0f}" if magnitude >= 100 else f"{value:.1f}" if magnitude >= 10
            else f"{value:.3g}")
    return f"+{text}" if signed and value > 0 else text


def column_header(column, kind):
    """A readable header: device time named for what it is, baseline columns spelled out."""
    unit = figures.time_label(kind)
    for prefix, words in (("delta_auroc_vs_", "AUROC difference to {}"),
                          ("beyond_noise_vs_", "beyond noise vs {}"),
                          ("seeds_reaching_", "seeds reaching {}'s best")):
        if column.startswith(prefix):
            return words.format(column[len(prefix):].removesuffix("_best"))
    if column.startswith("epochs_to_"):
        name = column[len("epochs_to_"):]
        mean = name.endswith("_mean")
        return (f"epochs to {name.removesuffix('_mean').removesuffix('_best')}'s best "
                f"({'mean' if mean else 'median'})")
    if column.startswith("device_seconds_to_"):
        return f"{unit} to {column[len('device_seconds_to_'):].removesuffix('_best')}'s best"
    if column in DEVICE_TIME_COLUMNS:
        return unit + (" per epoch" if column.endswith("per_epoch") else " (whole run)")
    header = column.replace("_", " ")
    return header.replace("paper ", "paper: ", 1) if column.startswith("paper_") else header


def display_columns(table):
    """(columns shown, companions per shown column): a column `x_sd` shows in x's cell as
    'x ± sd', and `x_ci_low`/`x_ci_high` as 'x [low, high]', not as columns of their own."""
    companions = {}
    shown = []
    for column in table.columns:
        for suffix in ("_sd", "_ci_low", "_ci_high"):
            base = column.removesuffix(suffix)
            if column.endswith(suffix) and base in table.columns:
                companions.setdefault(base, []).append(suffix)
                break
        else:
            shown.append(column)
    return shown, companions


def html_table(table, drop=()):
    if table.empty:
        return "<p>No rows.</p>"
    table = table.drop(columns=[c for c in drop if c in table.columns])
    kinds = set(table["device_kind"].dropna()) if "device_kind" in table.columns else set()
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    shown, companions = display_columns(table)
    headers = []
    for column in shown:
        text = column_header(column, kind) + (" ± sd" if "_sd" in companions.get(column, [])
                                              else "") + (
            " [interval]" if "_ci_low" in companions.get(column, []) else "")
        classes = ("paper " if column.startswith("paper_") else "") + (
            "text" if not pd.api.types.is_numeric_dtype(table[column]) else "")
        headers.append(f"<th{css_class(classes)}>{html.escape(text)}</th>")
    header = "".join(headers)
    body = []
    for _, row in table.iterrows():
        cells = []
        for column in shown:
            text = format_value(row[column], column)
            extra = companions.get(column, [])
            if text and "_sd" in extra and not pd.isna(row[f"{column}_sd"]):
                text += f" ± {format_value(row[f'{column}_sd'], column.replace('delta_', ''))}"
            if text and "_ci_low" in extra and not pd.isna(row[f"{column}_ci_low"]):
                text += (f" [{format_value(row[f'{column}_ci_low'], column)}, "
                         f"{format_value(row[f'{column}_ci_high'], column)}]")
            classes = ("paper " if column.startswith("paper_") else "") + (
                "text" if isinstance(row[column], str) else "")
            cells.append(f"<td{css_class(classes)}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="wide"><table><thead><tr>{header}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


def css_class(classes):
    return f' class="{classes.strip()}"' if classes.strip() else ""


def table_block(name, table, drop=()):
    title, description = TABLES[name]
    return (f"<h3>{html.escape(title)}</h3><p class=\"caption\">{html.escape(description)} "
            f"CSV: tables/{name}.csv</p>" + html_table(table, drop))


def data_check_block(check):
    """The image cache's data check (build_image_cache's summary.json), under Table 1."""
    text = (f"The splits need {check['needed']:,} images: {check['found_as_files']:,} found as "
            f"PNG files and {check['found_in_archives']:,} in {check['archives']} archive(s); "
            f"{check['missing']:,} missing and {check['unreadable']:,} unreadable, excluded; "
            f"{check['converted_from_rgba']:,} converted from RGBA to gray. "
            f"{check['images']:,} images cached at {check['image_size']} px in "
            f"{check['seconds']:.0f} s.")
    splits = pd.DataFrame([{"split": name, **counts} for name, counts in check["splits"].items()])
    return ("<h3>Images</h3><p class=\"caption\">" + html.escape(text)
            + " Per split, the images it needs and how many are cached:</p>"
            + splits.to_html(index=False, border=0))


def read_data_check(path):
    return json.loads(Path(path).read_text())


def figure_block(name, data, title):
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(figures.caption(name))}</figcaption></figure>")


def rows_of(table, target):
    return table[table["target"] == target] if "target" in table.columns else table


def render_html(title, settings, tables, target_figures, overview_figures, notes,
                data_check=None):
    """The report as one HTML document. `tables` hold the rows of every target shown;
    `target_figures` maps each target shown to its figures; `overview_figures` are the
    all-target figures (none in a one-target report)."""
    grid = settings.grid
    targets = [t for t in grid.targets if t in target_figures]
    summaries = {t: summarize_target(t, tables["table7_policies"], settings.present_baselines,
                                     settings.level) for t in targets}
    contents = [("summary", "Summary"), ("data", "Data and settings")]
    contents += [(f"target-{t}", t) for t in targets]
    if not tables["missing_runs"].empty:
        contents.append(("missing", "Missing runs"))
    contents.append(("method", "How the numbers are made"))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>Targets: {html.escape(', '.join(targets))}. Architectures: "
             f"{html.escape(', '.join(grid.architectures))}. Policies: "
             f"{html.escape(', '.join(grid.policies))}. Seeds: "
             f"{html.escape(', '.join(map(str, grid.seeds)))}. Baselines: "
             f"{html.escape(', '.join(settings.present_baselines) or 'none')}.</p>"]
    parts += [f'<p class="note">{html.escape(note)}</p>' for note in notes]
    parts.append("<nav><h2>Contents</h2><ul>" + "".join(
        f'<li><a href="#{html.escape(anchor)}">{html.escape(text)}</a></li>'
        for anchor, text in contents) + "</ul></nav>")

    parts.append('<h2 id="summary">Summary</h2>')
    for target in targets:
        parts.append(f"<h3>{html.escape(target)}</h3><ul>" + "".join(
            f"<li>{html.escape(s)}</li>" for s in summaries[target]) + "</ul>")
    if "policy_overview" in overview_figures:
        parts.append(figure_block("policy_overview", overview_figures["policy_overview"],
                                  "Policies on every target"))

    parts.append('<h2 id="data">Data and settings</h2>')
    parts.append(table_block("table1_label_counts", tables["table1_label_counts"]))
    if data_check:
        parts.append(data_check_block(data_check))
    label_figure = overview_figures.get("label_distribution") or (
        target_figures[targets[0]].get("label_distribution") if targets else None)
    if label_figure:
        parts.append(figure_block("label_distribution", label_figure, "Label distribution"))
    for name in ("table2_split_sizes", "table3_batches", "table4_optimizers"):
        parts.append(table_block(name, tables[name]))

    for target in targets:
        parts.append(f'<h2 id="target-{html.escape(target)}">{html.escape(target)}</h2><ul>'
                     + "".join(f"<li>{html.escape(s)}</li>" for s in summaries[target])
                     + "</ul>")
        for name in ("table5_results", "table6_architectures", "table7_policies",
                     "table8_clr_parameters"):
            parts.append(table_block(name, rows_of(tables[name], target), drop=("target",)))
        for name in TARGET_FIGURES:
            if name in target_figures[target]:
                parts.append(figure_block(name, target_figures[target][name],
                                          f"{name.replace('_', ' ')}: {target}"))

    if not tables["missing_runs"].empty:
        parts.append('<h2 id="missing">Missing runs</h2>')
        parts.append(table_block("missing_runs", tables["missing_runs"]))
    parts.append('<h2 id="method">How the numbers are made</h2>'
                 + method_text(settings, tables["table7_policies"]))
    parts.append("</body></html>")
    return "\n".join(parts)


MULTIPLICITY_METHODS = {"fdr_bh": "Benjamini-Hochberg (false-discovery rate)",
                        "holm": "Holm (family-wise error rate)"}


def family_sizes(policy_rows, baselines):
    """Per target: how many comparisons its multiplicity correction covered."""
    sizes = {}
    for target, rows in policy_rows.groupby("target", sort=False):
        own = rows[rows["same_schedule_as"].isna()] if "same_schedule_as" in rows else rows
        sizes[target] = int(sum(own[f"p_adjusted_vs_{b}"].notna().sum() for b in baselines
                                if f"p_adjusted_vs_{b}" in own))
    return sizes


def method_text(settings, policy_rows):
    level = settings.level
    sizes = family_sizes(policy_rows, settings.present_baselines)
    counted = ", ".join(f"{target} {size}" for target, size in sizes.items() if size)
    paragraphs = [
        "Every run of a target is tested on the same test images (the split is per target, "
        "grouped by patient), so policies are compared pairwise on those images and, per seed, "
        "from the same initialization. The seed is the unit of replication: a policy's number "
        "is the mean over its seeds, and a comparison is the mean over seeds of the paired "
        "difference AUROC(policy, seed) - AUROC(baseline, seed).",
        f"Intervals ({level:.0%}) are Student-t intervals of those means. Their variance adds "
        "two parts: the seed-to-seed variance divided by the number of seeds, and the test "
        "set's sampling variance, the variance of the mean over "
        f"{settings.samples} bootstrap resamples of the test patients (all images of a drawn "
        "patient count, as often as it is drawn; the same resamples for every run). The "
        "degrees of freedom are Welch-Satterthwaite's: seeds - 1 where the seeds' variance "
        "dominates, more where the test set's does. With one seed the interval covers the "
        "test set alone. The p-value tests a zero mean difference with the same t statistic.",
        f"Beyond noise: the p-value adjusted for multiplicity by "
        f"{MULTIPLICITY_METHODS[settings.multiplicity]} over every comparison of the target "
        f"(each policy against each baseline on each architecture) is at most {1 - level:.2g}."
        + (f" Comparisons per target: {counted}." if counted else "")
        + f" With fewer than {MIN_SEEDS_TO_JUDGE} seeds nothing is marked: the seeds' variance "
        "is then too poorly known. A policy that shares another's runs (the same schedule) "
        "repeats that policy's comparisons and is not counted twice.",
        "Epochs to a baseline's best: per architecture and seed, the baseline run's highest "
        "validation accuracy; a run reaches it at the first epoch whose validation accuracy is "
        "at least that high. Device time is the run's wall time per epoch times its GPUs "
        "(times 1 on a CPU), summed up to that epoch; columns say GPU-seconds or CPU-seconds "
        "for what the runs used.",
        "Columns named paper: hold the numbers published in the paper (its Tables 1-8 and "
        "text), which are training accuracies in percent there and fractions here. Rows that "
        "only the paper has are kept so that every published number shows.",
    ]
    return "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


# --- entries -------------------------------------------------------------------------------

def report_settings(params):
    grid = params.grid
    return ReportSettings(
        grid=Grid(tuple(grid["targets"]), tuple(grid["architectures"]),
                  tuple(grid["policies"]), tuple(int(s) for s in grid["seeds"]),
                  shared=dict(params.shared_runs)),
        baselines=tuple(params.report["baselines"]),
        samples=int(params.metrics["bootstrap_samples"]),
        level=float(params.metrics["ci_level"]),
        multiplicity=params.report["multiplicity"],
        allow_missing=bool(params.report["allow_missing"]),
        source=params.source)


def write_target(snakemake):
    settings = report_settings(snakemake.params)
    target = snakemake.wildcards.target
    report = build_target_report(
        target, runs_root=snakemake.params.runs, settings=settings,
        train_settings=snakemake.params.train_settings,
        label_counts=pd.read_csv(snakemake.input.label_counts),
        split_summary=pd.read_csv(snakemake.input.split_summary),
        lr_finder_paths=[p for p in snakemake.input.lr_finder if p.endswith(".json")])
    write_target_report(report, snakemake.output.html, settings,
                        read_data_check(snakemake.input.cache_summary))
    log.info("%s: %d runs reported, %d missing", target,
             int(report.tables["table5_results"]["seeds"].sum()),
             len(report.tables["missing_runs"]))
    retire_checkpoints(snakemake.input.runs)  # committed inputs: their checkpoints can go


def write_report(snakemake):
    settings = report_settings(snakemake.params)
    target_reports = [read_target_report(Path(path).parent)
                      for path in snakemake.input.target_reports]
    tables, overview = build_report(target_reports, pd.read_csv(snakemake.input.label_counts),
                                    settings)
    write_tables(tables, snakemake.output.tables)
    write_figures(overview, Path(snakemake.output.policy_overview).parent)
    notes = report_notes(settings, tables["missing_runs"], settings.grid.targets)
    Path(snakemake.output.html).write_text(render_html(
        "Learning-rate policies on chest X-rays: comparison report", settings, tables,
        {report.target: report.figures for report in target_reports}, overview, notes,
        read_data_check(snakemake.input.cache_summary)))
    log.info("report of %d targets written to %s", len(target_reports), snakemake.output.html)


ENTRIES = {"report_target": write_target, "report": write_report}

if __name__ == "__main__":
    run(snakemake, ENTRIES[snakemake.rule])  # noqa: F821 - `snakemake` is injected by the rule's script directive
