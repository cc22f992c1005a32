"""The report's written words: a summary per target, generated from Table 7's numbers (which
policy won, by how much, whether beyond noise, at what cost), and how the numbers are made.
"""

import pandas as pd

from workflow_scripts.metrics import ECE_BINS
from workflow_scripts.report_contents import MIN_SEEDS_TO_JUDGE
from workflow_scripts.report_words import time_label


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
            unit = time_label(best["device_kind"])
            text += " " + cost_text(best, reference, reference_name, unit)
        sentences.append(text)
    return sentences


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
    """The paragraphs of "How the numbers are made"."""
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
        "degrees of freedom of a policy's mean AUROC are Welch-Satterthwaite's: seeds - 1 "
        "where the seeds' variance dominates, more where the test set's does. A paired "
        "difference keeps seeds - 1: on the same images the test set's part largely cancels, "
        "and more degrees of freedom would be earned only where the seeds' variance came out "
        "small by chance (at three seeds that called 6 to 8% of simulated true zeros beyond "
        "noise at 5%; with seeds - 1, under 4%). With one seed the interval covers the test "
        "set alone. The p-value tests a zero mean difference with the same t statistic.",
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
        "AUPRC is scikit-learn's average precision; its mean over seeds gets its interval as "
        "the AUROC's, on the same patient resamples. The Brier score is the mean squared "
        "difference between score and label; the expected calibration error bins the test "
        f"scores into {ECE_BINS} bins of equal width on [0, 1] and sums each bin's |fraction "
        "positive - mean score|, weighted by its share of images. A multi-label run's AUROC, "
        "AUPRC, Brier score and ECE are the means over its diseases whose test images hold "
        "both classes (per seed and resample), so its comparisons with the baselines are on "
        "that mean; its per-label table has each disease's.",
        "Columns named paper: hold the numbers published in the paper (its Tables 1-8 and "
        "text), which are training accuracies in percent there and fractions here. Rows that "
        "only the paper has are kept so that every published number shows.",
    ]
    return paragraphs
