"""The report's figures of the test results, as PNG bytes: ROC curves, reliability
diagrams and AUROC per policy of one target, and the overview across targets (drawn with
`report_drawing`).
"""

import math

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from sklearn.metrics import roc_curve

from workflow_scripts.metrics import ECE_BINS, calibration_bins
from workflow_scripts.report_drawing import (
    PANEL,
    Margins,
    interval,
    legend_below,
    legend_shape,
    notice,
    panel_title,
    panels,
    png,
    title,
)

ROC_GRID = np.linspace(0, 1, 201)


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


def lr_sensitivity(target, sensitivity, tuned, architectures, policies, colors, level):
    """Test AUROC (mean over seeds with its interval) against the learning-rate scale on a
    log axis, a line per policy and a panel per architecture; a ring marks the scale each
    policy's validation AUROC chose (`tuned`, the tuned comparison's rows)."""
    if sensitivity["lr_scale"].nunique() < 2:
        return notice(f"Learning-rate sensitivity: {target}",
                      "One learning-rate scale: set lr_scales (e.g. [0.25, 0.5, 1, 2, 4]) to "
                      "run every policy at several scales of its learning rates.")
    present = [p for p in policies if (sensitivity["policy"] == p).any()]
    columns, legend_height = legend_shape(len(present) + 1, len(architectures), 2.3)
    figure, axes = panels(1, len(architectures), *PANEL, Margins(bottom=0.6 + legend_height),
                          sharey=True)
    scales = sorted(sensitivity["lr_scale"].unique())
    for axis, arch in zip(axes[0], architectures, strict=True):
        for index, policy in enumerate(present):
            rows = sensitivity[(sensitivity["arch"] == arch) & (sensitivity["policy"] == policy)
                               ].sort_values("lr_scale")
            # Side by side within a scale, so that intervals do not hide each other.
            x = rows["lr_scale"] * 2 ** ((index - (len(present) - 1) / 2) * 0.04)
            axis.errorbar(x, rows["auroc"], yerr=interval(rows, "auroc", "auroc_ci_low",
                                                          "auroc_ci_high"),
                          color=colors[policy], marker="o", markersize=3, linewidth=1.2,
                          capsize=2)
            chosen = tuned[(tuned["arch"] == arch) & (tuned["policy"] == policy)]
            for scale in chosen["tuned_scale"]:
                at = rows[rows["lr_scale"] == scale]
                axis.scatter(x[at.index], at["auroc"], s=70, facecolors="none",
                             edgecolors=colors[policy], linewidths=1.3, zorder=4)
        axis.set_xscale("log", base=2)
        axis.set_xticks(scales, [f"{scale:g}" for scale in scales])
        axis.minorticks_off()
        axis.set(xlabel="learning-rate scale", ylabel="test AUROC")
        panel_title(axis, arch)
        axis.grid(alpha=0.3)
    handles = [Line2D([], [], color=colors[p], marker="o", markersize=3, label=p)
               for p in present]
    handles.append(Line2D([], [], color="0.3", marker="o", markersize=8, linestyle="none",
                          markerfacecolor="none", label="chosen on validation"))
    legend_below(figure, handles, columns)
    title(figure, f"Test AUROC against the learning-rate scale ({level:.0%} intervals): "
          f"{target}")
    return png(figure)


def performance_profile(profile, colors):
    """The share of problems (target x architecture) on which each policy reaches the target
    validation AUROC within a factor tau of the fastest policy's device time."""
    if profile.empty or not profile["problems"].iat[0]:
        return notice("Performance profile", "No target and architecture with runs of the "
                      "baseline that defines the target validation AUROC.")
    present = list(dict.fromkeys(profile["policy"]))
    columns, legend_height = legend_shape(len(present), 1, 2.3)
    figure, axes = panels(1, 1, 4.6, 2.8, Margins(bottom=0.6 + legend_height))
    axis = axes[0, 0]
    for policy in present:
        rows = profile[profile["policy"] == policy]
        axis.step(rows["tau"], rows["share"], where="post", color=colors[policy],
                  linewidth=1.4, label=policy)
    axis.set(xlim=(1, profile["tau"].max()), ylim=(-0.02, 1.02),
             xlabel="tau: device time over the fastest policy's",
             ylabel="share of problems")
    axis.grid(alpha=0.3)
    legend_below(figure, axis.get_legend_handles_labels()[0], columns)
    title(figure, f"Performance profile over {int(profile['problems'].iat[0])} target x "
          "architecture problems")
    return png(figure)
