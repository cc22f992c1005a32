"""What the comparison report holds: its tables and figures, named once for the report
stages and the rules that declare their files (this module needs nothing heavy, so the
Snakefile reads it)."""

# Fewer seeds than this make no significance call: the seeds' variance is the larger part of
# a comparison's noise, and two seeds estimate it with one degree of freedom.
MIN_SEEDS_TO_JUDGE = 3

# CSV name -> title and what a row is. Tables 2-8 have one row per target or per target x
# architecture (x policy); the paper's numbers are in the paper_* columns, others' published
# numbers in the published_* columns.
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
                        f"fewer than {MIN_SEEDS_TO_JUDGE} seeds. Epochs (median and mean) and "
                        "device time (mean) until the validation accuracy first matched the "
                        "baseline's best, over the seeds that got there."),
    "table8_clr_parameters": ("Table 8. Cyclical learning-rate parameters",
                              "Bounds as the runs used them (from the config or the LR "
                              "finder); step size = half a cycle, in optimizer steps and in "
                              "epochs. For one_cycle, base_lr is its starting LR, max_lr / "
                              "div_factor. The LR finder's rule and its check's verdict: a "
                              "configured rule whose pick failed a check is replaced by the "
                              "fallback rule, and the verdict says why."),
    "auprc_calibration": ("AUPRC and calibration",
                          "Means over seeds, on the test set: AUROC (as Table 5) and AUPRC "
                          "(area under the precision-recall curve, scikit-learn's average "
                          "precision) with their intervals over seeds and test patients; the "
                          "Brier score (mean squared difference between score and label) and "
                          "the expected calibration error (10 equal-width score bins, each "
                          "weighted by its share of images: |fraction positive - mean score|). "
                          "Test prevalence is the share of positive test labels, the AUPRC of "
                          "a ranking that knows nothing. For the multi-label target, each is "
                          "the mean over its labels."),
    "per_label_results": ("Per label: the multi-label network",
                          "One row per architecture, policy and disease: the test AUROC and "
                          "AUPRC of that output of the multi-label network (mean over seeds, "
                          "interval over seeds and test patients), its Brier score and "
                          "expected calibration error, beside published AUROCs of the disease "
                          "(see the table 'Published results' for their sources)."),
    "lr_sensitivity": ("Learning-rate sensitivity",
                       "With lr_scales: every policy at each scale of its learning rates "
                       "(learning_rate, base_lr and max_lr all multiplied by it; scale 1 is "
                       "the study's own). Test AUROC as Table 5 (mean over seeds, interval "
                       "over seeds and test patients) and the mean validation AUROC of the "
                       "final epoch, which tunes the comparison below."),
    "lr_robustness": ("Robustness to the learning rate",
                      "Per policy over its scales: the best and worst scale by mean test "
                      "AUROC and the AUROC lost between them; near best = the neighbouring "
                      "scales around the best whose mean test AUROC is within 0.01 of it "
                      "(low to high). A policy that needs no tuning loses little and is near "
                      "its best over a wide range."),
    "tuned_comparison": ("Policies tuned on validation, against the tuned baselines",
                         "Every policy, baselines included, at the learning-rate scale with "
                         "the highest mean validation AUROC of the final epoch (the test set "
                         "never chooses; a tie goes to the first scale listed); at grid "
                         "edge = the smallest or largest scale, where the best may lie "
                         "beyond the grid. Test AUROC and the paired difference to each "
                         "tuned baseline as in Table 7, p-values adjusted over the "
                         "comparisons of this table for the target (its own family, apart "
                         "from Table 7's); beyond noise left empty with fewer than "
                         f"{MIN_SEEDS_TO_JUDGE} seeds. Empty with one scale."),
    "time_to_target": ("Time to the target validation AUROC",
                       "AlgoPerf's rule: per target and architecture, the target is the "
                       "median over seeds of the first baseline's best validation AUROC at "
                       "scale 1; per run at scale 1, the epochs and device time until its "
                       "validation AUROC first reached it, a run that never did counting as "
                       "infinite (never). Median over seeds: never where most seeds never "
                       "got there. The performance profile aggregates the device times over "
                       "targets and architectures."),
    "missing_runs": ("Missing runs", "Configured runs without outputs, left out of this report "
                     "(report.allow_missing)."),
    "published_comparison": ("Published results",
                             "Per disease, the test AUROC of the binary network trained for it "
                             "(Table 5) and of the multi-label network's output for it, each "
                             "the mean over seeds with its interval, beside per-disease test "
                             "AUROCs published by others. Each published column names its "
                             "source and its split: official (NIH's test_list.txt), random "
                             "(the authors' own split), or not verified; different test sets "
                             "make such numbers comparable only roughly. Where every number "
                             "comes from, with the full citation and the place it was read: "
                             "workflow_scripts/published_results.yaml. The mean row averages "
                             "the 14 diseases (the binary mean only when all 14 have runs; a "
                             "published mean only where the source prints one)."),
    "approach_cost": ("Cost of each approach: 14 binary networks against one multi-label "
                      "network",
                      "Per architecture and policy: device time of the binary networks of "
                      "the 14 diseases (the sum over diseases of each network's mean over "
                      "seeds) against the multi-label network's (mean over seeds), their "
                      "ratio, and the mean test AUROC of each approach (binary: the mean "
                      "over the diseases with runs). 'Not comparable' names the binary "
                      "targets without runs. no_finding_vs_any, the paper's fifteenth "
                      "binary network, is shown apart: the multi-label network has no such "
                      "output."),
}
# The tables of one target's report (and stacked over targets in the whole report), and
# those of the whole report alone, which compare targets.
REPORT_TABLES = ("published_comparison", "approach_cost")
TARGET_TABLES = tuple(name for name in TABLES if name not in REPORT_TABLES)

# The figures of one target: name -> (category, label) in Snakemake's report; the caption of
# each is report/<name>.rst, which the HTML report shows too.
TARGET_FIGURES = {
    "lr_schedules": ("Learning rates", "learning rate over the run"),
    "lr_finder": ("Learning rates", "LR range test"),
    "validation_curves": ("Training", "validation accuracy and loss"),
    "accuracy_vs_device_time": ("Training", "accuracy against device time"),
    "roc_curves": ("Test results", "ROC curves"),
    "reliability_diagram": ("Test results", "reliability diagram"),
    "auroc_by_policy": ("Test results", "AUROC per policy"),
    "lr_sensitivity": ("Test results", "AUROC against the learning-rate scale"),
}
