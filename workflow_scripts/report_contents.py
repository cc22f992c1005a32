"""What the comparison report holds: its tables and figures, named once for the report
stages and the rules that declare their files (this module needs nothing heavy, so the
Snakefile reads it)."""

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

# The figures of one target: name -> (category, label) in Snakemake's report; the caption of
# each is report/<name>.rst, which the HTML report shows too.
TARGET_FIGURES = {
    "lr_schedules": ("Learning rates", "learning rate over the run"),
    "lr_finder": ("Learning rates", "LR range test"),
    "validation_curves": ("Training", "validation accuracy and loss"),
    "accuracy_vs_device_time": ("Training", "accuracy against device time"),
    "roc_curves": ("Test results", "ROC curves"),
    "auroc_by_policy": ("Test results", "AUROC per policy"),
}
