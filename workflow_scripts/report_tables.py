"""The paper's Tables 1-8 of one target: our numbers beside the published ones.

Every table is a DataFrame with one row per label, target, or target x architecture x policy,
written as CSV and shown in the HTML report; a `paper_*` column holds the published number
(`report_paper`) wherever the paper gives one, beside ours. The runs come from
`report_runs`, the means, intervals and verdicts across seeds from `report_statistics`.
"""

import math

import pandas as pd

from workflow_scripts.labels import ANY_DISEASE, MULTILABEL, NO_FINDING
from workflow_scripts.plan import needs_lr_finder_bounds
from workflow_scripts.policies import extra_parameters
from workflow_scripts.report_paper import beside_paper, paper_rows, with_paper
from workflow_scripts.report_runs import device_kind, ordered
from workflow_scripts.report_statistics import seed_summary, with_difference_columns
from workflow_scripts.stage import InputError

# --- Tables 1-4: data and settings, one target's rows ----------------------------------------

def label_count_table(label_counts, target=None):
    """Table 1: label, single_label_images, images, and the paper's counts. With a `target`,
    the rows of its disease and 'No Finding' (all rows for the one-class and the multi-label
    target)."""
    counts = ["single_label_images", "images"]
    table = beside_paper(label_counts[["label", *counts]], "table1_label_counts", "label",
                         {name: name for name in counts})
    if target is not None and target not in (ANY_DISEASE, MULTILABEL):
        table = table[table["label"].isin([NO_FINDING, target])].reset_index(drop=True)
    return table


def split_table(split_summary, target):
    """Table 2 row: positives, negatives, images and split sizes, and the paper's. The paper's
    80% "training" images compare with train_and_val."""
    table = split_summary[split_summary["target"] == target].copy()
    if table.empty:
        raise InputError(f"the split summary has no row for target {target!r}; rerun the "
                         "split_summary rule.")
    table.insert(3, "images", table["positives"] + table["negatives"])
    table.insert(6, "train_and_val", table["train"] + table["val"])
    return beside_paper(table.reset_index(drop=True), "table2_splits", "target", {
        "positives": "positives", "negatives": "negatives", "images": "images",
        "train_and_val": "train", "test": "test"})


def batch_table(split_summary, settings, target_runs):
    """Table 3 row: batch size and batches per epoch (training: as the runs counted them, else
    floor(train images / batch size), full batches only; test: ceil(test images / batch size)),
    and the paper's."""
    target = target_runs.target
    sizes = split_table(split_summary, target).iloc[0]
    runs = target_runs.runs
    batch_size = int(runs["batch_size"].iat[0]) if not runs.empty else (
        settings[target]["batch_size"])
    train_batches = (int(runs["steps_per_epoch"].iat[0]) if not runs.empty
                     else sizes["train"] // batch_size)
    table = pd.DataFrame([{"target": target, "batch_size": batch_size,
                           "train_images": int(sizes["train"]), "train_batches": train_batches,
                           "test_images": int(sizes["test"]),
                           "test_batches": math.ceil(sizes["test"] / batch_size)}])
    compared = ["batch_size", "train_batches", "test_batches"]
    return beside_paper(table, "table3_batches", "target", {name: name for name in compared})


def optimizer_table(settings, target):
    """Table 4 row: optimizer, learning rate, decay and momentum as configured, and the paper's."""
    compared = ["optimizer", "learning_rate", "decay", "momentum"]
    table = pd.DataFrame([{"target": target, **{name: settings[target][name]
                                                for name in compared}}])
    return beside_paper(table, "table4_optimizers", "target", {name: name for name in compared})


# --- Tables 5-8: results -------------------------------------------------------------------

# --- Tables 5-8: results -------------------------------------------------------------------

def results_table(target_runs, auroc, grid):
    """Table 5 rows of one target: per arch x policy, mean over seeds of the test metrics
    (accuracy and AUROC also with their standard deviation across seeds), AUROC's interval
    over seeds and test patients, the last epoch's training accuracy, and the paper's."""
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "same_schedule_as", "seeds", "epochs",
               "train_accuracy", "paper_train_accuracy", "paper_epochs", "accuracy",
               "accuracy_sd", "sensitivity", "specificity", "f1", "auroc", "auroc_sd",
               "auroc_ci_low", "auroc_ci_high"]
    keys = ["target", "arch", "policy"]
    paper = paper_rows("table5_results", target_runs.target, keys, ["epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    table = seed_summary(runs, ["epochs", "train_accuracy", "accuracy", "sensitivity",
                                "specificity", "f1"])
    table = table.reset_index().merge(auroc.drop(columns="seeds"), on=["arch", "policy"])
    table.insert(0, "target", target_runs.target)
    return with_paper(table, paper, keys, columns, grid)


def architecture_table(target_runs, grid):
    """Table 6 rows of one target: per arch, over all its runs, time per epoch (wall and
    device-seconds), throughput, mean metrics, the policy with the best mean AUROC, and the
    paper's. A run shared by two policies counts once."""
    runs = target_runs.runs[target_runs.runs["twin_of"].isna()]
    columns = ["target", "arch", "runs", "device", "device_kind", "epochs", "seconds_per_epoch",
               "device_seconds_per_epoch", "paper_hours_per_epoch", "images_per_second",
               "train_accuracy", "paper_train_accuracy", "paper_epochs", "accuracy", "auroc",
               "best_policy", "best_policy_auroc"]
    keys = ["target", "arch"]
    paper = paper_rows("table6_architectures", target_runs.target, keys,
                       ["hours_per_epoch", "epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    rows = []
    for arch, group in runs.groupby("arch", sort=False):
        by_policy = group.groupby("policy", sort=False)["auroc"].mean()
        rows.append({
            "target": target_runs.target, "arch": arch, "runs": len(group),
            "device": "; ".join(sorted(group["device"].unique())),
            "device_kind": device_kind(group["gpus"]),
            "epochs": group["epochs"].mean(),
            "seconds_per_epoch": (group["train_seconds"] / group["epochs"]).mean(),
            "device_seconds_per_epoch": (group["device_seconds"] / group["epochs"]).mean(),
            "images_per_second": group["images_per_second"].mean(),
            "train_accuracy": group["train_accuracy"].mean(),
            "accuracy": group["accuracy"].mean(), "auroc": group["auroc"].mean(),
            "best_policy": by_policy.idxmax(), "best_policy_auroc": by_policy.max()})
    return with_paper(pd.DataFrame(rows), paper, keys, columns, grid)


def policy_table(target_runs, auroc, differences, reach, baselines, grid):
    """Table 7 rows of one target: per arch x policy, the mean and spread across seeds, and per
    baseline the paired AUROC difference with its interval, its p-value before and after the
    multiplicity correction and whether it is beyond noise (`judge_differences`; empty with
    too few seeds), and the epochs (median and mean over the seeds that got there) and
    device-seconds (mean) to reach the baseline's best validation accuracy; the paper's
    accuracy and epochs where it gives them."""
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "same_schedule_as", "seeds", "device_kind", "epochs",
               "train_accuracy",
               "paper_train_accuracy", "paper_epochs", "best_val_accuracy", "accuracy",
               "accuracy_sd", "auroc", "auroc_sd", "device_seconds"]
    for baseline in baselines:
        columns += [f"delta_auroc_vs_{baseline}", f"delta_auroc_vs_{baseline}_ci_low",
                    f"delta_auroc_vs_{baseline}_ci_high", f"p_vs_{baseline}",
                    f"p_adjusted_vs_{baseline}", f"beyond_noise_vs_{baseline}",
                    f"epochs_to_{baseline}_best", f"epochs_to_{baseline}_best_mean",
                    f"device_seconds_to_{baseline}_best", f"seeds_reaching_{baseline}_best"]
    keys = ["target", "arch", "policy"]
    paper = paper_rows("table7_policies", target_runs.target, keys, ["epochs", "accuracy"])
    if runs.empty:
        return ordered(paper.reindex(columns=columns), grid)
    table = seed_summary(runs, ["epochs", "train_accuracy", "best_val_accuracy", "accuracy",
                                "device_seconds"])
    table["device_kind"] = runs.groupby(["arch", "policy"], sort=False)["gpus"].agg(device_kind)
    table = table.reset_index().merge(auroc[["arch", "policy", "auroc", "auroc_sd"]],
                                      on=["arch", "policy"])
    for baseline in baselines:
        table = with_difference_columns(table, differences, baseline)
        reached = reach[reach["baseline"] == baseline]
        by_policy = reached.groupby(["arch", "policy"], sort=False)
        summary = pd.DataFrame({
            f"epochs_to_{baseline}_best": by_policy["epoch"].median(),
            f"epochs_to_{baseline}_best_mean": by_policy["epoch"].mean(),
            f"device_seconds_to_{baseline}_best": by_policy["device_seconds"].mean(),
            f"seeds_reaching_{baseline}_best": by_policy["epoch"].count(),
        }).reset_index()
        table = table.merge(summary, on=["arch", "policy"], how="left")
    table.insert(0, "target", target_runs.target)
    return with_paper(table, paper, keys, columns, grid)


def schedule_extras(policy, schedule):
    """The policy-specific schedule parameters beyond the bounds and step size, as text."""
    return ", ".join(f"{name}={schedule[name]:g}" if isinstance(schedule[name], (int, float))
                     else f"{name}={schedule[name]}"  # wsd's cooldown_shape is a word
                     for name in extra_parameters(policy) if name in schedule)


def clr_table(target_runs, settings, lr_finder, grid):
    """Table 8 rows of one target: per arch x cyclical policy (schedules with a max_lr), the
    bounds the runs used and where they came from, the step size in optimizer steps and in
    epochs, the epochs, other schedule parameters, the LR finder's bounds with the rule that
    gave them and its check's verdict, and the paper's.

    `lr_finder` maps arch to the LR-finder JSON of this target (absent: none was run). For
    one_cycle, base_lr is its starting LR, max_lr / div_factor.
    """
    runs = target_runs.runs
    columns = ["target", "arch", "policy", "bounds_from", "base_lr", "paper_base_lr", "max_lr",
               "paper_max_lr", "step_size", "step_size_epochs", "paper_step_size_epochs",
               "epochs", "paper_epochs", "other", "lr_finder_rule", "lr_finder_base_lr",
               "lr_finder_max_lr", "lr_finder_check"]
    paper = paper_rows("table8_clr", target_runs.target, ["target", "arch", "policy"],
                       ["base_lr", "max_lr", "step_size_epochs", "epochs"])
    configured = settings[target_runs.target]
    rows = []
    for (arch, policy), group in runs.groupby(["arch", "policy"], sort=False):
        schedule = group["schedule"].iat[0]
        if "max_lr" not in schedule:
            continue
        found = lr_finder.get(arch)
        from_finder = found is not None and needs_lr_finder_bounds(policy, configured)
        # 1cycle starts at max_lr / div_factor; cosine, sgdr and wsd have no lower bound.
        base_lr = (schedule["max_lr"] / schedule["div_factor"] if policy == "one_cycle"
                   else schedule.get("base_lr", math.nan))
        step_size = schedule.get("step_size", math.nan)
        rows.append({
            "target": target_runs.target, "arch": arch, "policy": policy,
            "bounds_from": (f"LR finder ({found['rule']}"
                            + (", fallback)" if found.get("fallback_used") else ")"))
            if from_finder else "config",
            "base_lr": base_lr, "max_lr": schedule["max_lr"], "step_size": step_size,
            "step_size_epochs": step_size / group["steps_per_epoch"].iat[0],
            "epochs": group["epochs"].iat[0], "other": schedule_extras(policy, schedule),
            "lr_finder_rule": (found["rule"] or "none passed") if found else None,
            "lr_finder_base_lr": found["base_lr"] if found and found["base_lr"] else math.nan,
            "lr_finder_max_lr": found["max_lr"] if found and found["max_lr"] else math.nan,
            "lr_finder_check": found["verdict"] if found else None})
    table = pd.DataFrame(rows, columns=[c for c in columns if not c.startswith("paper_")])
    return with_paper(table, paper, ["target", "arch", "policy"], columns, grid)
