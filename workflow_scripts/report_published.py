"""The whole report's comparisons across targets: the workflow's binary and multi-label test
AUROCs per disease beside published ones (published_results.yaml, with each source's
citation and split), and what each approach cost: the 14 binary networks against the one
multi-label network, in device-seconds, per architecture and policy.

Both are built from the per-target tables the whole report stacks: Table 5 (a target's mean
AUROC over seeds), the multi-label target's per-label table, and Table 7 (device-seconds per
run, mean over seeds).
"""

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from workflow_scripts.labels import ANY_DISEASE, DISEASES, MULTILABEL
from workflow_scripts.report_runs import ordered

PUBLISHED = Path(__file__).with_name("published_results.yaml")
MEAN = "mean"  # the label of the rows that average over the 14 diseases
OURS = ["auroc", "auroc_ci_low", "auroc_ci_high"]  # of each approach, beside the published
COST_COLUMNS = ["arch", "policy", "device_kind", "binary_targets", "binary_device_seconds",
                "multilabel_device_seconds", "binary_over_multilabel", "binary_mean_auroc",
                "multilabel_auroc", "no_finding_vs_any_device_seconds", "comparable"]


@cache
def published_sources():
    """The sources of published_results.yaml, in its order: key, short, citation, read_at,
    split, model, auroc (disease -> value) and, where the source gives it, mean."""
    return yaml.safe_load(PUBLISHED.read_text())["sources"]


def published_keys():
    return [source["key"] for source in published_sources()]


def published_header(column):
    """The header of a `published_<key>` column: who, and on which split."""
    source = next(s for s in published_sources() if column == f"published_{s['key']}")
    return f"published: {source['short']}; split: {source['split']}"


def published_frame(with_mean=False):
    """One row per disease (and the mean row where `with_mean`): label and a
    `published_<key>` column per source, NaN where a source gives no number."""
    labels = [*DISEASES, MEAN] if with_mean else list(DISEASES)
    return pd.DataFrame({"label": labels, **{
        f"published_{source['key']}": [
            source.get("mean", np.nan) if label == MEAN else source["auroc"].get(label, np.nan)
            for label in labels]
        for source in published_sources()}})


def published_comparison(results, per_label, grid):
    """Per arch x policy x disease (and the mean over the 14): the binary target's test AUROC
    (Table 5: mean over seeds, with its interval) and the multi-label network's AUROC of
    that label (the per-label table), beside every published AUROC. The binary mean is the
    mean over the 14 binary targets, given only when all 14 have runs; the multi-label mean
    is its Table 5 row. Rows without a number of ours are left out."""
    finished = results[results["seeds"].notna()]
    binary = finished[finished["target"].isin(DISEASES)].rename(columns={"target": "label"})
    means = binary.groupby(["arch", "policy"], sort=False).filter(
        lambda group: set(group["label"]) == set(DISEASES))
    means = means.groupby(["arch", "policy"], sort=False)["auroc"].mean().reset_index()
    binary = pd.concat([binary, means.assign(label=MEAN)], ignore_index=True)
    multilabel = pd.concat([
        per_label[(per_label["target"] == MULTILABEL) & per_label["seeds"].notna()],
        finished[finished["target"] == MULTILABEL].assign(label=MEAN)], ignore_index=True)
    keys = ["arch", "policy", "label"]
    table = pd.merge(*(frame[keys + OURS].rename(columns={
        column: f"{name}_{column}" for column in OURS})
        for name, frame in (("binary", binary), ("multilabel", multilabel))),
        on=keys, how="outer")
    table = table.merge(published_frame(with_mean=True), on="label", how="left")
    return ordered(table, grid, label=[*DISEASES, MEAN])


def approach_cost(policies, grid):
    """Per arch x policy where the multi-label target and a binary disease target have runs:
    device-seconds of the 14 binary networks (the sum over diseases of each one's mean over
    seeds) against the multi-label network's (its mean over seeds), their ratio, and the
    mean AUROC of each approach; `comparable` says which binary targets lack runs, where any
    do. no_finding_vs_any, the paper's fifteenth binary network, is listed apart: the
    multi-label network predicts no such label."""
    finished = policies[policies["seeds"].notna()]
    multilabel = finished[finished["target"] == MULTILABEL]
    binary = finished[finished["target"].isin(DISEASES)]
    if multilabel.empty or binary.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    rows = []
    for arch in grid.architectures:
        for policy in grid.policies:
            ours = multilabel[(multilabel["arch"] == arch) & (multilabel["policy"] == policy)]
            theirs = binary[(binary["arch"] == arch) & (binary["policy"] == policy)]
            if ours.empty or theirs.empty:
                continue
            one = ours.iloc[0]
            any_disease = finished[(finished["target"] == ANY_DISEASE)
                                   & (finished["arch"] == arch)
                                   & (finished["policy"] == policy)]
            missing = [d for d in DISEASES if d not in set(theirs["target"])]
            kinds = pd.concat([theirs["device_kind"], ours["device_kind"]])
            rows.append({
                "arch": arch, "policy": policy,
                "device_kind": kinds.iat[0] if kinds.nunique() == 1 else "mixed",
                "binary_targets": len(theirs),
                "binary_device_seconds": theirs["device_seconds"].sum(),
                "multilabel_device_seconds": one["device_seconds"],
                "binary_over_multilabel": theirs["device_seconds"].sum()
                / one["device_seconds"],
                "binary_mean_auroc": theirs["auroc"].mean(),
                "multilabel_auroc": one["auroc"],
                "no_finding_vs_any_device_seconds": any_disease["device_seconds"].iat[0]
                if not any_disease.empty else np.nan,
                "comparable": "yes" if not missing else
                f"not comparable: no runs of {', '.join(missing)} "
                f"({len(missing)} of the {len(DISEASES)} binary targets)"})
    return pd.DataFrame(rows, columns=COST_COLUMNS)

