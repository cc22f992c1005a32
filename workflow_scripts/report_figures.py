"""The report's figures of the data and of training, as PNG bytes: one figure per target
with a panel per architecture, never one per run (drawn with `report_drawing`).

The label distribution, the learning rate at every step, the LR range test, and the
validation curves against epochs and device time.
"""

import math

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from workflow_scripts.report_drawing import (
    PANEL,
    Margins,
    legend_below,
    notice,
    panel_title,
    panels,
    png,
    policy_legend,
    title,
)
from workflow_scripts.report_words import time_label


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
