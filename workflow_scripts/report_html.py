"""The report as one self-contained HTML page, from the Jinja2 template
templates/report.html.j2: figures embedded as base64 PNG, the style sheet inline, nothing
fetched. Here the tables become rows of formatted cells; the template lays out the page.
"""

import base64
import math

import jinja2
import pandas as pd

from workflow_scripts.report_contents import REPORT_TABLES, TABLES, TARGET_FIGURES
from workflow_scripts.report_published import published_header
from workflow_scripts.report_text import method_text, summarize_target
from workflow_scripts.report_words import caption, time_label

DEVICE_TIME_COLUMNS = ("device_seconds", "device_seconds_per_epoch")
COUNT_COLUMNS = ("seeds", "runs", "seed", "epochs", "step_size", "images", "batch",
                 "positives", "negatives", "patients", "train", "val", "test", "single_label")
# Fractions shown with three decimals, so that columns line up and compare.
METRIC_COLUMNS = ("accuracy", "auroc", "sensitivity", "specificity", "f1", "auprc", "brier",
                  "ece", "prevalence")
# The target's own tables in its section of the page, in this order: Tables 5-8 always, the
# others where the target has rows (the per-label table: the multi-label target alone).
TARGET_SECTION_TABLES = ("table5_results", "table6_architectures", "table7_policies",
                         "table8_clr_parameters")
TARGET_SECTION_EXTRAS = ("time_to_target", "lr_sensitivity", "lr_robustness",
                         "tuned_comparison", "auprc_calibration", "per_label_results")
# The figures across targets, in this order, with their titles.
OVERVIEW_FIGURES = {"policy_overview": "Policies on every target",
                    "performance_profile": "Time to target: performance profile"}

TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("workflow_scripts", "templates"),
                               autoescape=True, trim_blocks=True, lstrip_blocks=True)


def format_value(value, column):
    """A cell as text: counts as integers, metrics to 3 decimals, others to 3 digits."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or str(value) in ("True", "False"):
        return "yes" if str(value) == "True" else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "never"  # a time to a target not reached
    if column.startswith("published_"):
        return f"{value:g}"  # as printed at the source
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
    unit = time_label(kind)
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
    if column == "device_seconds_until_target":
        return f"{unit} until target (median)"
    if column == "epochs_until_target":
        return "epochs until target (median)"
    if column.startswith("device_seconds_to_"):
        return f"{unit} to {column[len('device_seconds_to_'):].removesuffix('_best')}'s best"
    if column in DEVICE_TIME_COLUMNS:
        return unit + (" per epoch" if column.endswith("per_epoch") else " (whole run)")
    if column.endswith("_device_seconds"):
        return f"{column.removesuffix('_device_seconds').replace('_', ' ')}: {unit}"
    if column.startswith("published_"):
        return published_header(column)
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


def is_published(column):
    """Whether a column holds others' published numbers (the paper's, or other sources')."""
    return column.startswith(("paper_", "published_"))


def table_view(table, name=None, drop=()):
    """A table as the template shows it: the title and description of report table `name`
    (none without), and header and body cells, each (text, CSS classes). A column `x_sd`
    shows in x's cell as 'x ± sd', and `x_ci_low` and `x_ci_high` as 'x [low, high]'."""
    title, description = TABLES[name] if name else (None, None)
    table = table.drop(columns=[c for c in drop if c in table.columns])
    kinds = set(table["device_kind"].dropna()) if "device_kind" in table.columns else set()
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    shown, companions = display_columns(table)
    headers = []
    for column in shown:
        text = column_header(column, kind) + (" ± sd" if "_sd" in companions.get(column, [])
                                              else "") + (
            " [interval]" if "_ci_low" in companions.get(column, []) else "")
        classes = ("paper " if is_published(column) else "") + (
            "text" if not pd.api.types.is_numeric_dtype(table[column]) else "")
        headers.append((text, classes.strip()))
    rows = []
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
            classes = ("paper " if is_published(column) else "") + (
                "text" if isinstance(row[column], str) else "")
            cells.append((text, classes.strip()))
        rows.append(cells)
    return {"name": name, "title": title, "description": description, "headers": headers,
            "rows": rows}


def figure_view(name, data, title):
    return {"title": title, "caption": caption(name),
            "data": base64.b64encode(data).decode("ascii")}


def rows_of(table, target):
    return table[table["target"] == target] if "target" in table.columns else table


def data_check_view(check):
    """The image cache's data check (build_image_cache's summary.json), under Table 1."""
    text = (f"The splits need {check['needed']:,} images: {check['found_as_files']:,} found as "
            f"PNG files and {check['found_in_archives']:,} in {check['archives']} archive(s); "
            f"{check['missing']:,} missing and {check['unreadable']:,} unreadable, excluded; "
            f"{check['converted_from_rgba']:,} converted from RGBA to gray. "
            f"{check['images']:,} images cached at {check['image_size']} px in "
            f"{check['seconds']:.0f} s. Per split, the images it needs and how many are "
            "cached:")
    splits = pd.DataFrame([{"split": name, **counts} for name, counts in check["splits"].items()])
    return {"text": text, "table": table_view(splits)}


def render_html(title, settings, tables, target_figures, overview_figures, notes,
                data_check=None):
    """The report as one HTML document. `tables` hold the rows of every target shown;
    `target_figures` maps each target shown to its figures; `overview_figures` are the
    all-target figures (none in a one-target report); `data_check` the image cache's."""
    grid = settings.grid
    targets = [t for t in grid.targets if t in target_figures]
    label_figure = overview_figures.get("label_distribution") or (
        target_figures[targets[0]].get("label_distribution") if targets else None)
    sections = [{
        "target": target,
        "summary": summarize_target(target, tables["table7_policies"],
                                    settings.present_baselines, settings.level),
        "tables": [table_view(rows_of(tables[name], target), name, drop=("target",))
                   for name in (*TARGET_SECTION_TABLES,
                                *(extra for extra in TARGET_SECTION_EXTRAS
                                  if not rows_of(tables[extra], target).empty))],
        "figures": [figure_view(name, target_figures[target][name],
                                f"{name.replace('_', ' ')}: {target}")
                    for name in TARGET_FIGURES if name in target_figures[target]],
    } for target in targets]
    return TEMPLATES.get_template("report.html.j2").render(
        title=title, grid=grid, targets=targets, baselines=settings.present_baselines,
        notes=notes, sections=sections,
        overview=[figure_view(name, overview_figures[name], figure_title)
                  for name, figure_title in OVERVIEW_FIGURES.items()
                  if name in overview_figures],
        data_tables=[table_view(tables[name], name) for name in
                     ("table1_label_counts", "table2_split_sizes", "table3_batches",
                      "table4_optimizers")],
        label_figure=(figure_view("label_distribution", label_figure, "Label distribution")
                      if label_figure else None),
        data_check=data_check_view(data_check) if data_check else None,
        missing=(table_view(tables["missing_runs"], "missing_runs")
                 if not tables["missing_runs"].empty else None),
        published=[table_view(tables[name], name) for name in REPORT_TABLES
                   if name in tables and not tables[name].empty],
        method=method_text(settings, tables["table7_policies"]))
