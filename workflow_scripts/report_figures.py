"""The comparison report's figures, as PNG bytes: one figure per target with a panel per
architecture, never one per run.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no display),
and closed by going out of scope. Every policy keeps one colour across all
figures: its position in the configured policy list picks it from matplotlib's tab10.
"""

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator
from sklearn.metrics import roc_curve

from workflow_scripts.metrics import ECE_BINS, calibration_bins

DPI = 120
PANEL = (3.6, 2.4)  # inches of one architecture's panel: width, height
ROC_GRID = np.linspace(0, 1, 201)
# One caption per figure, shared with Snakemake's report (`report(..., caption=...)`).
CAPTIONS = Path(__file__).resolve().parents[1] / "report"


def caption(name):
    """The figure's caption: the text of report/{name}.rst as one paragraph."""
    return " ".join((CAPTIONS / f"{name}.rst").read_text().split())


def png(figure):
    """The figure as PNG bytes."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # Light compression: a fifth faster to write than the default, a few % larger.
    figure.savefig(buffer, dpi=DPI, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def policy_colors(policies):
    palette = [f"C{i}" for i in range(10)]
    return {policy: palette[i % len(palette)] for i, policy in enumerate(policies)}


@dataclass(frozen=True)
class Margins:
    """Space around and between the panels of a figure, in inches."""

    left: float = 0.85
    right: float = 0.25
    top: float = 0.75
    bottom: float = 0.6
    between_columns: float = 0.85
    between_rows: float = 0.5


def panels(rows, columns, width, height, margins=Margins(), **options):
    """A figure of rows x columns panels of `width` x `height` inches, `margins` around them.

    Fixed margins rather than a layout engine: constrained layout measures every tick label
    and doubles the time to draw a figure, which adds up over the figures of many targets.
    """
    figure_width = (margins.left + margins.right + columns * width
                    + (columns - 1) * margins.between_columns)
    figure_height = (margins.top + margins.bottom + rows * height
                     + (rows - 1) * margins.between_rows)
    figure = Figure(figsize=(figure_width, figure_height))
    axes = figure.subplots(rows, columns, squeeze=False, gridspec_kw={
        "left": margins.left / figure_width, "right": 1 - margins.right / figure_width,
        "bottom": margins.bottom / figure_height, "top": 1 - margins.top / figure_height,
        "wspace": margins.between_columns / width, "hspace": margins.between_rows / height,
    }, **options)
    return figure, axes


def title(figure, text):
    """The figure's title, in a smaller font where a narrow figure (one architecture) would
    cut it off; a character is about 0.55 of the font size wide."""
    fitting = figure.get_figwidth() * 72 / (0.55 * len(text))
    figure.suptitle(text, y=1 - 0.12 / figure.get_figheight(), va="top",
                    fontsize=max(8, min(12, fitting)))


def panel_title(axis, text):
    # A fixed height: left to itself, matplotlib measures the tick labels to place a title.
    axis.set_title(text, fontsize=10, y=1.0, pad=5)


def interval(frame, value, low, high):
    """Error bar lengths (2 x rows) from a value and its interval bounds."""
    return np.vstack([frame[value] - frame[low], frame[high] - frame[value]]).clip(min=0)


def legend_below(figure, handles, columns=4):
    figure.legend(handles=handles, loc="lower center", ncols=columns, frameon=False,
                  bbox_to_anchor=(0.5, 0.04 / figure.get_figheight()))


def legend_shape(entries, panel_columns, entry_width):
    """(columns, inches of height) of a legend below `panel_columns` panels of PANEL width:
    as many columns of `entry_width` inches as the figure is wide."""
    margins = Margins()
    width = (margins.left + margins.right + panel_columns * PANEL[0]
             + (panel_columns - 1) * margins.between_columns)
    columns = max(1, min(entries, int(width // entry_width)))
    return columns, 0.3 * math.ceil(entries / columns) + 0.1


def notice(heading, text):
    """A small figure that says why there is nothing to draw."""
    figure = Figure(figsize=(8, 1.3))
    figure.text(0.02, 0.75, heading, fontsize=12, va="center")
    figure.text(0.02, 0.35, text, fontsize=10, va="center", wrap=True)
    return png(figure)


def time_label(kind):
    """Axis and column label for device time: honest about CPU runs."""
    return {"GPU": "GPU-seconds", "CPU": "CPU-seconds"}.get(kind, "device-seconds")


def policy_legend(policies, colors, panel_columns):
    """(handles, `legend_shape`) of a legend with a line per policy and the dashed line of a
    baseline's best validation accuracy."""
    handles = [Line2D([], [], color=colors[p], linewidth=2, label=p) for p in policies] + [
        Line2D([], [], color="0.3", linestyle="--", label="a baseline's best")]
    return handles, legend_shape(len(handles), panel_columns, entry_width=2.3)


def label_distribution(label_counts, highlight=None):
    """Images per label (any combination, and that label alone), log scale; `highlight`
    names labels to emphasize (a target's)."""
    counts = label_counts.sort_values("images")
    figure, axes = panels(1, 1, 6.8, 0.34 * len(counts) + 0.3,
                          Margins(left=1.6, right=0.3, top=0.5, bottom=1.05))
    axis = axes[0, 0]
    positions = np.arange(len(counts))
    axis.barh(positions + 0.2, counts["images"], height=0.4, color="C0",
              label="images with the label (any combination)")
    axis.barh(positions - 0.2, counts["single_label_images"], height=0.4, color="C1",
              label="images with only this label")
    for position, value in zip(positions, counts["images"], strict=True):
        axis.text(value * 1.05, position + 0.2, f"{value:,}", va="center", fontsize=8)
    axis.set_yticks(positions, counts["label"])
    for tick, label in zip(axis.get_yticklabels(), counts["label"], strict=True):
        if highlight and label in highlight:
            tick.set_fontweight("bold")
            tick.set_color("C3")
    axis.set_xscale("log")
    smallest = counts["single_label_images"][counts["single_label_images"] > 0].min()
    axis.set_xlim(10 ** math.floor(math.log10(smallest)) if smallest > 0 else 1,
                  counts["images"].max() * 3)
    axis.set_xlabel("images (log scale)")
    title(figure, "Label distribution (the paper's Table 1 and Figure 2)")
    axis.grid(axis="x", alpha=0.3)
    legend_below(figure, axis.get_legend_handles_labels()[0], columns=2)
    return png(figure)


def lr_schedules(target, learning_rates, runs, architectures, policies):
    """LR against epoch for each policy (a panel each), one line per architecture."""
    present = [p for p in policies if (learning_rates["policy"] == p).any()]
    if not present:
        return notice(f"Learning-rate schedules: {target}", "No finished runs.")
    steps_per_epoch = runs.groupby("arch")["steps_per_epoch"].first()
    legend_space = 2.4 if len(architectures) > 1 else 0.3
    figure, axes = panels(len(present), 1, 6.6, 1.1,
                          Margins(right=legend_space, between_rows=0.42), sharex=True)
    styles = ["-", "--", ":"]
    for axis, policy in zip(axes[:, 0], present, strict=True):
        # Architectures whose learning rates are the same share one line and one label.
        curves = {}
        for arch in architectures:
            curve = learning_rates[(learning_rates["policy"] == policy)
                                   & (learning_rates["arch"] == arch)]
            if not curve.empty:
                epoch = curve["step"].to_numpy() / steps_per_epoch[arch]
                key = (epoch.tobytes(), curve["lr"].to_numpy().tobytes())
                curves.setdefault(key, (epoch, curve["lr"].to_numpy(), []))[2].append(arch)
        for index, (epoch, lr, names) in enumerate(curves.values()):
            axis.plot(epoch, lr, linewidth=1.3, color=f"C{index}",
                      linestyle=styles[index % len(styles)], label=", ".join(names))
        if len(architectures) > 1:
            axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                        borderaxespad=0, frameon=False)
        values = learning_rates.loc[learning_rates["policy"] == policy, "lr"]
        axis.set_title(f"{policy}   (lr {values.min():.3g} to {values.max():.3g})", loc="left",
                       fontsize=10, y=1.0, pad=4)
        axis.set_ylim(bottom=0)
        # Plain tick values: an offset label such as "1e-3" would sit under the panel title.
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
        axis.yaxis.set_major_locator(MaxNLocator(3))
        axis.set_ylabel("learning rate")
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    title(figure, f"Learning rate over the run: {target}")
    return png(figure)


def lr_finder_verdict(found):
    """A panel title's few words on the rule used and the check's verdict."""
    if found.get("rule") is None:
        return "no rule passed its checks"
    if found.get("fallback_used"):
        return f"{found['configured_rule']} failed its checks; {found['rule']} used"
    return f"{found['rule']} rule, checks passed"


def lr_finder(target, results, architectures):
    """The LR range test per architecture: the data loss against LR (log scale), per batch
    and smoothed as the rules read it, the regularization penalty on a second axis, each
    rule's pick (filled where it passed its checks) and the chosen bounds.

    `results` maps arch to (curve DataFrame with lr, data_loss, centred_data_loss, penalty;
    summary dict as the lr_finder stage writes it); architectures without an entry say that
    no test ran.
    """
    if not results:
        return notice(f"LR range test: {target}",
                      "No LR range test ran for this target: no configured cyclical policy "
                      "needed one (the config sets base_lr and max_lr, or no cyclical policy "
                      "is configured).")
    figure, axes = panels(1, len(architectures), *PANEL, Margins(right=0.8, between_columns=1.3))
    for axis, arch in zip(axes[0], architectures, strict=True):
        if arch not in results:
            axis.axis("off")
            axis.text(0.5, 0.5, f"{arch}: no LR range test", ha="center", va="center",
                      transform=axis.transAxes)
            continue
        curve, found = results[arch]
        shown = curve[(curve["lr"] > 0) & np.isfinite(curve["data_loss"])]
        axis.plot(shown["lr"], shown["data_loss"], color="0.6", alpha=0.5, linewidth=0.8,
                  label="data loss per batch")
        axis.plot(shown["lr"], shown["centred_data_loss"], color="C0", linewidth=1.8,
                  label="smoothed (centred)")
        if found.get("rule") is not None:
            axis.axvline(found["base_lr"], color="C2", linestyle="--",
                         label=f"base_lr {found['base_lr']:.3g}")
            axis.axvline(found["max_lr"], color="C3", linestyle="--",
                         label=f"max_lr {found['max_lr']:.3g}")
        for index, (rule, picked) in enumerate(found["suggestions"].items()):
            at = shown[shown["step"] == picked["step"]]
            if not at.empty:
                axis.plot(picked["lr"], at["centred_data_loss"].iat[0], linestyle="none",
                          marker="osD"[index % 3], color="black", markersize=5,
                          markerfacecolor="black" if picked["passed"] else "white",
                          label=f"{rule} pick{'' if picked['passed'] else ' (failed)'}")
        # The last batches, where the loss explodes, would flatten the rest of the curve.
        kept = shown["centred_data_loss"].iloc[:max(1, len(shown) - max(1, len(shown) // 10))]
        low, high = kept.min(), kept.max()
        margin = 0.1 * (high - low) if high > low else 0.1 * abs(high) + 1e-9
        axis.set_ylim(low - margin, high + margin)
        axis.set_xscale("log")
        axis.set_xlabel("learning rate (log scale)")
        axis.set_ylabel("data loss (cross-entropy)")
        if (shown["penalty"].abs() > 1e-9).any():
            penalty = axis.twinx()
            penalty.plot(shown["lr"], shown["penalty"], color="C1", linestyle=":",
                         linewidth=1.2)
            penalty.set_ylabel("regularization penalty (dotted)", color="C1", fontsize=8)
            penalty.tick_params(axis="y", colors="C1", labelsize=7)
        panel_title(axis, f"{arch}: {lr_finder_verdict(found)}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6, loc="lower left")
    title(figure, f"LR range test: {target}")
    return png(figure)


def draw_baseline_bests(axis, histories, baselines, arch, colors):
    """Per baseline present, a dashed line at the mean over seeds of its best validation
    accuracy on `arch`."""
    for baseline in baselines:
        runs = histories[(histories["arch"] == arch) & (histories["policy"] == baseline)]
        if not runs.empty:
            best = runs.groupby("seed")["val_accuracy"].max().mean()
            axis.axhline(best, color=colors[baseline], linestyle="--", linewidth=1, alpha=0.8)


def validation_curves(target, histories, architectures, policies, baselines, colors):
    """Validation accuracy and loss against epoch, a column per architecture, a line per
    policy (mean over seeds, band: min to max), each baseline's best accuracy dashed."""
    if histories.empty:
        return notice(f"Validation curves: {target}", "No finished runs.")
    handles, legend = policy_legend(policies, colors, len(architectures))
    figure, axes = panels(2, len(architectures), *PANEL, Margins(
        between_rows=0.25, bottom=0.55 + legend[1]), sharex="col")
    for column, arch in enumerate(architectures):
        for row, metric in enumerate(["val_accuracy", "val_loss"]):
            axis = axes[row, column]
            for policy in policies:
                runs = histories[(histories["arch"] == arch) & (histories["policy"] == policy)]
                if runs.empty:
                    continue
                by_epoch = runs.groupby("epoch")[metric]
                mean = by_epoch.mean()
                axis.plot(mean.index, mean, color=colors[policy], linewidth=1.5)
                if runs["seed"].nunique() > 1:
                    axis.fill_between(mean.index, by_epoch.min(), by_epoch.max(),
                                      color=colors[policy], alpha=0.12, linewidth=0)
            if metric == "val_accuracy":
                draw_baseline_bests(axis, histories, baselines, arch, colors)
                panel_title(axis, arch)
            axis.set_ylabel(metric.replace("_", " ").replace("val", "validation"))
            axis.grid(alpha=0.3)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, column].set_xlabel("epoch")
    legend_below(figure, handles, legend[0])
    title(figure, f"Validation accuracy and loss: {target}")
    return png(figure)


def mean_roc(labels, scores):
    """TPR on ROC_GRID (false-positive rates), averaged over runs and labels: `labels` is
    images x labels, `scores` runs x images x labels."""
    curves = []
    for run_scores in scores:
        for column in range(labels.shape[1]):
            fpr, tpr, _ = roc_curve(labels[:, column], run_scores[:, column])
            curves.append(np.interp(ROC_GRID, fpr, tpr))
    return np.mean(curves, axis=0)


def square_panels(architectures, runs, policies, draw, xlabel, ylabel, legend_loc, label):
    """A square [0, 1] panel per architecture with the diagonal dotted: `draw(axis, arch,
    policy, rows)` draws each policy from its runs' rows; the legend's numbers are `label`."""
    figure, axes = panels(1, len(architectures), 3.3, 3.3)
    for axis, arch in zip(axes[0], architectures, strict=True):
        for policy in policies:
            rows = np.flatnonzero((runs["arch"] == arch) & (runs["policy"] == policy))
            if len(rows):
                draw(axis, arch, policy, rows)
        axis.plot([0, 1], [0, 1], color="0.65", linestyle=":", linewidth=1)
        axis.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel=xlabel, ylabel=ylabel)
        panel_title(axis, f"{arch}: policy ({label})")
        axis.legend(fontsize=7, loc=legend_loc)
        axis.grid(alpha=0.3)
    return figure


def roc_curves(target, labels, scores, runs, auroc, architectures, policies, colors):
    """Test ROC curve per policy (averaged over seeds, and over labels for a multi-label
    target, at fixed false-positive rates), a panel per architecture; the legend gives the
    mean AUROC. `labels` is test images x labels, `scores` runs x images x labels."""
    if runs.empty:
        return notice(f"ROC curves: {target}", "No finished runs.")
    mean_auroc = auroc.set_index(["arch", "policy"])["auroc"]

    def draw(axis, arch, policy, rows):
        axis.plot(ROC_GRID, mean_roc(labels, scores[rows]), color=colors[policy],
                  linewidth=1.4, label=f"{policy} ({mean_auroc[(arch, policy)]:.3f})")

    figure = square_panels(architectures, runs, policies, draw, "false-positive rate",
                           "true-positive rate", "lower right", "mean AUROC")
    title(figure, f"ROC curves on the test set: {target}")
    return png(figure)


def reliability_diagram(target, labels, scores, runs, calibration, architectures, policies,
                        colors):
    """Per policy, the fraction of positive test labels against the mean score in each of
    ECE_BINS equal-width bins, over all seeds (and labels) of the policy pooled, a panel per
    architecture; the legend gives the mean ECE over seeds. `labels` is test images x labels,
    `scores` runs x images x labels; `calibration` has arch, policy and ece."""
    if runs.empty:
        return notice(f"Reliability: {target}", "No finished runs.")
    ece = calibration.set_index(["arch", "policy"])["ece"]

    def draw(axis, arch, policy, rows):
        pooled_labels = np.broadcast_to(labels, scores[rows].shape).reshape(-1)
        count, mean_score, positives = calibration_bins(pooled_labels, scores[rows].reshape(-1))
        filled = count > 0
        axis.plot(mean_score[filled], positives[filled], color=colors[policy], marker="o",
                  markersize=3, linewidth=1.2, label=f"{policy} ({ece[(arch, policy)]:.3f})")

    figure = square_panels(architectures, runs, policies, draw, "mean score in the bin",
                           "fraction positive", "upper left", "mean ECE")
    title(figure, f"Reliability on the test set ({ECE_BINS} score bins): {target}")
    return png(figure)


def auroc_by_policy(target, runs, auroc, differences, architectures, policies, baselines,
                    colors, level):
    """Top: test AUROC per policy (dots: seeds; bar: mean with its interval). Bottom: the
    paired difference to each baseline with its interval (filled: beyond noise)."""
    if runs.empty:
        return notice(f"AUROC per policy: {target}", "No finished runs.")
    present = [p for p in policies if (runs["policy"] == p).any()]
    compared = [b for b in baselines if (differences["baseline"] == b).any()]
    legend = legend_shape(1 + len(compared), len(architectures), entry_width=3.3)
    figure, axes = panels(2 if compared else 1, len(architectures), *PANEL, Margins(
        between_rows=0.25, bottom=1.2 + legend[1]), sharex="col")
    positions = {policy: i for i, policy in enumerate(present)}
    markers = ["o", "s", "D", "^"]
    for column, arch in enumerate(architectures):
        axis = axes[0, column]
        for policy in present:
            seeds = runs.loc[(runs["arch"] == arch) & (runs["policy"] == policy), "auroc"]
            jitter = np.linspace(-0.12, 0.12, len(seeds)) if len(seeds) > 1 else 0.0
            axis.scatter(positions[policy] + jitter, seeds, color=colors[policy], s=14,
                         alpha=0.6, zorder=3)
        stats = auroc[auroc["arch"] == arch]
        x = stats["policy"].map(positions).to_numpy(dtype=float)
        axis.errorbar(x, stats["auroc"], yerr=interval(stats, "auroc", "auroc_ci_low",
                                                       "auroc_ci_high"),
                      color="black", marker="_", markersize=16, capsize=4, linestyle="none",
                      zorder=4)
        panel_title(axis, arch)
        axis.set_ylabel("test AUROC")
        axis.grid(axis="y", alpha=0.3)
        if not compared:
            continue
        axis = axes[1, column]
        axis.axhline(0, color="0.4", linewidth=1)
        for index, baseline in enumerate(compared):
            rows = differences[(differences["arch"] == arch)
                               & (differences["baseline"] == baseline)]
            x = rows["policy"].map(positions).to_numpy(dtype=float)
            x += (index - (len(compared) - 1) / 2) * 0.25
            beyond = rows["beyond_noise"].fillna(False).to_numpy(dtype=bool)
            error = interval(rows, "delta_auroc", "ci_low", "ci_high")
            marker = markers[index % len(markers)]
            # Filled where beyond noise, hollow otherwise: two calls, one per fill.
            for chosen, face in ((beyond, colors[baseline]), (~beyond, "white")):
                axis.errorbar(x[chosen], rows["delta_auroc"].to_numpy()[chosen],
                              yerr=error[:, chosen], color=colors[baseline], marker=marker,
                              markerfacecolor=face, capsize=3, linestyle="none")
        axis.set_ylabel("AUROC difference")
        axis.grid(axis="y", alpha=0.3)
    for axis in axes[-1]:
        axis.set_xticks(range(len(present)), present, rotation=30, ha="right",
                        rotation_mode="anchor", fontsize=8)
    handles = [Line2D([], [], color="black", marker="_", markersize=12,
                      label=f"mean over seeds, {level:.0%} interval")]
    handles += [Line2D([], [], color=colors[b], marker=markers[i % len(markers)],
                       linestyle="none", label=f"minus {b} (filled: beyond noise)")
                for i, b in enumerate(compared)]
    legend_below(figure, handles, legend[0])
    title(figure, f"Test AUROC per policy across seeds: {target}")
    return png(figure)


def accuracy_vs_device_time(target, histories, architectures, policies, baselines, colors,
                            kind):
    """Validation accuracy against cumulative device time (mean over seeds per epoch), a
    panel per architecture, each baseline's best accuracy dashed."""
    if histories.empty:
        return notice(f"Accuracy against {time_label(kind)}: {target}", "No finished runs.")
    handles, legend = policy_legend(policies, colors, len(architectures))
    figure, axes = panels(1, len(architectures), *PANEL, Margins(
        bottom=0.55 + legend[1]))
    for axis, arch in zip(axes[0], architectures, strict=True):
        for policy in policies:
            runs = histories[(histories["arch"] == arch) & (histories["policy"] == policy)]
            if runs.empty:
                continue
            mean = runs.groupby("epoch")[["device_seconds", "val_accuracy"]].mean()
            axis.plot(mean["device_seconds"], mean["val_accuracy"], color=colors[policy],
                      marker="o", markersize=3, linewidth=1.3)
        draw_baseline_bests(axis, histories, baselines, arch, colors)
        axis.set_xlabel(f"{time_label(kind)} of training (cumulative)")
        axis.set_ylabel("validation accuracy")
        panel_title(axis, arch)
        axis.grid(alpha=0.3)
    legend_below(figure, handles, legend[0])
    title(figure, f"Validation accuracy against {time_label(kind)}: {target}")
    return png(figure)


def policy_overview(policy_table, targets, architectures, policies, baseline):
    """Targets x policies, a panel per architecture: the mean AUROC difference to `baseline`
    (an asterisk: beyond noise); without a baseline, the mean AUROC."""
    shown = [t for t in targets if (policy_table["target"] == t).any()]
    if policy_table.empty or not shown:
        return notice("Policies on every target", "No finished runs.")
    column = f"delta_auroc_vs_{baseline}" if baseline else "auroc"
    compared = [p for p in policies if p != baseline]
    values = {}
    for arch in architectures:
        grid = np.full((len(shown), len(compared)), np.nan)
        beyond = np.zeros_like(grid, dtype=bool)
        for row in policy_table[policy_table["arch"] == arch].itertuples():
            if row.target in shown and row.policy in compared:
                i, j = shown.index(row.target), compared.index(row.policy)
                grid[i, j] = getattr(row, column)
                if baseline:
                    judged = getattr(row, f"beyond_noise_vs_{baseline}")
                    beyond[i, j] = bool(judged) if not pd.isna(judged) else False
        values[arch] = grid, beyond
    finite = np.concatenate([grid[np.isfinite(grid)] for grid, _ in values.values()])
    if baseline:
        limit = max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-3)
        scale = {"cmap": "RdBu", "norm": TwoSlopeNorm(0, -limit, limit)}
    else:
        scale = {"cmap": "viridis", "vmin": finite.min() if finite.size else 0,
                 "vmax": finite.max() if finite.size else 1}
    width, height = 0.62 * len(compared), 0.4 * len(shown)
    figure, axes = panels(1, len(architectures), width, height, Margins(
        left=1.5, right=1.35, bottom=1.25, between_columns=0.25), sharey=True)
    for axis, arch in zip(axes[0], architectures, strict=True):
        grid, beyond = values[arch]
        image = axis.imshow(np.ma.masked_invalid(grid), aspect="auto", **scale)
        for (i, j), value in np.ndenumerate(grid):
            if math.isfinite(value):
                text = f"{value:+.3f}" if baseline else f"{value:.3f}"
                dark = (abs(value) > 0.6 * limit if baseline
                        else value < (scale["vmin"] + scale["vmax"]) / 2)
                axis.text(j, i, text + ("*" if beyond[i, j] else ""), ha="center",
                          va="center", fontsize=7, color="white" if dark else "black")
        axis.set_xticks(range(len(compared)), compared, rotation=35, ha="right",
                        rotation_mode="anchor", fontsize=8)
        axis.set_yticks(range(len(shown)), shown, fontsize=8)
        panel_title(axis, arch)
        axis.tick_params(length=0)
    right_edge = axes[0, -1].get_position()
    bar = figure.add_axes([right_edge.x1 + 0.2 / figure.get_figwidth(), right_edge.y0,
                           0.15 / figure.get_figwidth(), right_edge.height])
    figure.colorbar(image, cax=bar, label=f"AUROC minus {baseline}'s" if baseline
                    else "test AUROC")
    title(figure, f"Which policy won: AUROC difference to {baseline}, mean over seeds; "
          "* = beyond noise" if baseline else "Mean test AUROC per policy")
    return png(figure)
