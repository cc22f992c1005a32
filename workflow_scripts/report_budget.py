"""The equal-budget study: each policy over its learning-rate scales, a comparison tuned on
validation, and the time each run takes to reach a validation target.

The study's protocol gives the cyclical policies bounds from a range test and the baselines
one configured rate, each run at that one setting. With `lr_scales` every policy runs at
each scale of its rates (`plan`), and the report asks three things of those runs:

- *Sensitivity*: the test AUROC (mean over seeds with its interval, as Table 5) at every
  scale, and each policy's robustness: the AUROC lost from its best scale to its worst, and
  the run of neighbouring scales around its best whose mean AUROC lies within NEAR_BEST of
  the best.
- *Tuned comparison*: every policy, baselines included, at the scale with the highest mean
  final-epoch *validation* AUROC (the test set never chooses), then compared on test as
  Table 7 compares (paired per seed, adjusted over this table's comparisons of the target).
  A choice at the smallest or largest scale is flagged: the best rate may lie beyond the
  grid.
- *Time to target* (AlgoPerf's rule): the target of a target x architecture is the median
  over seeds of the first baseline's best validation AUROC at scale 1; each run at scale 1
  takes the epochs and device-seconds until its validation AUROC first reaches it, and a run
  that never does counts as infinite. The performance profile (`performance_profile`)
  aggregates these over every target and architecture.
"""

import math

import numpy as np
import pandas as pd

from workflow_scripts.report_runs import RUN_COLUMNS, ordered
from workflow_scripts.report_statistics import (
    auroc_statistics,
    judge_differences,
    with_difference_columns,
)

NEAR_BEST = 0.01  # AUROC within which a scale counts as as good as the best
PROFILE_TAUS = np.linspace(1.0, 4.0, 61)  # the performance profile's factors over the fastest

SENSITIVITY_COLUMNS = ["target", "arch", "policy", "lr_scale", "seeds", "auroc", "auroc_sd",
                       "auroc_ci_low", "auroc_ci_high", "val_auroc"]
ROBUSTNESS_COLUMNS = ["target", "arch", "policy", "scales", "best_scale", "best_auroc",
                      "worst_scale", "worst_auroc", "auroc_lost", "near_best_low",
                      "near_best_high"]
TIME_COLUMNS = ["target", "arch", "policy", "seeds", "target_val_auroc", "seeds_at_target",
                "epochs_until_target", "device_seconds_until_target"]


def final_val_auroc(histories):
    """Per run (RUN_COLUMNS): the validation AUROC of its last epoch, the model it tests."""
    last = histories.groupby(list(RUN_COLUMNS), sort=False, observed=True)["epoch"].idxmax()
    return histories.loc[last, [*RUN_COLUMNS, "val_auroc"]].reset_index(drop=True)


def scale_statistics(every_scale, aurocs, level):
    """Per arch x policy x scale: seeds, mean test AUROC with its sd and interval (as Table 5,
    `auroc_statistics`), and the mean final validation AUROC. `aurocs` are `resampled` over
    every run of `every_scale` (TargetRuns of all scales)."""
    runs = every_scale.runs
    parts = []
    for lr_scale in sorted(runs["lr_scale"].unique()):
        keep = (runs["lr_scale"] == lr_scale).to_numpy()
        auroc, _ = auroc_statistics(every_scale.subset(keep), aurocs[:, keep], (), level)
        parts.append(auroc.assign(lr_scale=lr_scale))
    if not parts:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    validation = final_val_auroc(every_scale.histories).groupby(
        ["arch", "policy", "lr_scale"], observed=True)["val_auroc"].mean().reset_index()
    validation["policy"] = validation["policy"].astype(str)
    table = pd.concat(parts, ignore_index=True).merge(validation, how="left",
                                                      on=["arch", "policy", "lr_scale"])
    return table.assign(target=every_scale.target).reindex(columns=SENSITIVITY_COLUMNS)


def robustness_table(sensitivity, grid):
    """Per arch x policy over its scales: the best and worst scale by mean test AUROC, the
    AUROC lost between them, and the neighbouring scales around the best (in the grid's
    order of scales) whose mean AUROC is within NEAR_BEST of the best."""
    rows = []
    for (target, arch, policy), group in sensitivity.groupby(["target", "arch", "policy"],
                                                             sort=False):
        group = group.sort_values("lr_scale").reset_index(drop=True)
        best, worst = group["auroc"].idxmax(), group["auroc"].idxmin()
        near = (group["auroc"] >= group.at[best, "auroc"] - NEAR_BEST).to_numpy()
        low = high = best
        while low > 0 and near[low - 1]:
            low -= 1
        while high < len(group) - 1 and near[high + 1]:
            high += 1
        rows.append({"target": target, "arch": arch, "policy": policy, "scales": len(group),
                     "best_scale": group.at[best, "lr_scale"],
                     "best_auroc": group.at[best, "auroc"],
                     "worst_scale": group.at[worst, "lr_scale"],
                     "worst_auroc": group.at[worst, "auroc"],
                     "auroc_lost": group.at[best, "auroc"] - group.at[worst, "auroc"],
                     "near_best_low": group.at[low, "lr_scale"],
                     "near_best_high": group.at[high, "lr_scale"]})
    return ordered(pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS), grid)


def tuned_scales(sensitivity, lr_scales):
    """Per arch x policy: the scale with the highest mean validation AUROC (the first in the
    grid's order on a tie), and whether it is the smallest or largest configured scale.
    A policy whose validation AUROC is undefined at every scale gets no choice."""
    known = sensitivity.dropna(subset=["val_auroc"])
    order = {scale: i for i, scale in enumerate(lr_scales)}
    known = known.assign(order=known["lr_scale"].map(order)).sort_values("order", kind="stable")
    best = known.loc[known.groupby(["arch", "policy"], sort=False)["val_auroc"].idxmax()]
    edges = {min(lr_scales), max(lr_scales)}
    return best[["arch", "policy", "lr_scale", "val_auroc"]].assign(
        at_grid_edge=best["lr_scale"].isin(edges)).reset_index(drop=True)


def tuned_comparison(every_scale, aurocs, sensitivity, settings):
    """The tuned comparison's rows of one target: per arch x policy its tuned scale
    (`tuned_scales`) with the mean validation AUROC there, the test AUROC at it (mean, sd,
    interval), and per baseline (itself at its tuned scale) the paired AUROC difference, its
    p-value raw and adjusted over every comparison of this table (`judge_differences`) and
    whether it is beyond noise. Empty with one configured scale: Table 7 is that comparison."""
    grid, baselines = settings.grid, settings.present_baselines
    columns = ["target", "arch", "policy", "tuned_scale", "at_grid_edge", "val_auroc",
               "seeds", "auroc", "auroc_sd", "auroc_ci_low", "auroc_ci_high"]
    for baseline in baselines:
        columns += [f"delta_auroc_vs_{baseline}", f"delta_auroc_vs_{baseline}_ci_low",
                    f"delta_auroc_vs_{baseline}_ci_high", f"p_vs_{baseline}",
                    f"p_adjusted_vs_{baseline}", f"beyond_noise_vs_{baseline}"]
    if len(grid.lr_scales) < 2 or sensitivity.empty:
        return pd.DataFrame(columns=columns)
    chosen = tuned_scales(sensitivity, grid.lr_scales)
    scale_of = {(row.arch, row.policy): row.lr_scale for row in chosen.itertuples()}
    runs = every_scale.runs
    keep = np.array([scale_of.get((arch, policy)) == lr_scale for arch, policy, lr_scale
                     in runs[["arch", "policy", "lr_scale"]].itertuples(index=False)])
    auroc, differences = auroc_statistics(every_scale.subset(keep), aurocs[:, keep], baselines,
                                          settings.level)
    differences = judge_differences(differences, settings.multiplicity, settings.level,
                                    grid.twins_of(every_scale.target))
    table = chosen.rename(columns={"lr_scale": "tuned_scale"}).merge(auroc,
                                                                     on=["arch", "policy"])
    for baseline in baselines:
        table = with_difference_columns(table, differences, baseline)
    return ordered(table.assign(target=every_scale.target).reindex(columns=columns), grid)


def time_to_target(histories, baseline):
    """Per run of `histories` (one scale): the target validation AUROC of its architecture
    (the median over seeds of `baseline`'s best), and the epochs and device-seconds until
    the run's validation AUROC first reached it (inf: never). No rows without a baseline or
    its runs."""
    rows = []
    for arch, runs in (histories.groupby("arch", sort=False, observed=True) if baseline
                       else ()):
        reference = runs[runs["policy"] == baseline]
        if reference.empty:
            continue
        target = float(reference.groupby("seed")["val_auroc"].max().median())
        for (policy, seed), history in runs.groupby(["policy", "seed"], sort=False,
                                                    observed=True):
            reached = np.flatnonzero(history["val_auroc"].to_numpy() >= target)
            first = reached[0] if len(reached) else None
            rows.append({"arch": arch, "policy": policy, "seed": seed,
                         "target_val_auroc": target,
                         "epochs": math.inf if first is None
                         else float(history["epoch"].iat[first]),
                         "device_seconds": math.inf if first is None
                         else float(history["device_seconds"].iat[first])})
    return pd.DataFrame(rows, columns=["arch", "policy", "seed", "target_val_auroc", "epochs",
                                       "device_seconds"])


def time_to_target_table(target, reach, grid):
    """Per arch x policy: the seeds, the target, the seeds that reached it, and the median
    over seeds of the epochs and device-seconds to reach it (inf where most never did)."""
    if reach.empty:
        return pd.DataFrame(columns=TIME_COLUMNS)
    grouped = reach.groupby(["arch", "policy"], sort=False)
    table = pd.DataFrame({
        "seeds": grouped.size(), "target_val_auroc": grouped["target_val_auroc"].first(),
        "seeds_at_target": grouped["epochs"].agg(lambda e: int(np.isfinite(e).sum())),
        "epochs_until_target": grouped["epochs"].median(),
        "device_seconds_until_target": grouped["device_seconds"].median()}).reset_index()
    return ordered(table.assign(target=target).reindex(columns=TIME_COLUMNS), grid)


def performance_profile(times, policies, taus=PROFILE_TAUS):
    """Dolan and Moré's performance profile as AlgoPerf draws it: for each policy and factor
    tau, the share of problems (target x architecture rows of `times`, the stacked
    time-to-target tables) on which its median device-seconds to the target is at most tau
    times the fastest policy's. A policy that never reaches counts as slower than any tau;
    a problem that no policy reaches counts against every policy. Returns policy, tau,
    share (and `problems`, their number)."""
    problems = times.pivot_table(index=["target", "arch"], columns="policy",
                                 values="device_seconds_until_target", aggfunc="first",
                                 observed=True)
    shown = [policy for policy in policies if policy in problems.columns]
    problems = problems.reindex(columns=shown)
    fastest = problems.min(axis=1)
    ratios = problems.div(fastest.where(np.isfinite(fastest)), axis=0)  # NaN: none reached
    rows = [{"policy": policy, "tau": tau, "problems": len(problems),
             "share": float((ratios[policy] <= tau).mean()) if len(problems) else math.nan}
            for policy in shown for tau in taus]
    return pd.DataFrame(rows, columns=["policy", "tau", "problems", "share"])
