# The comparison report: one job per target (results/report/{target}/), then the whole
# report assembled from them. Both are cheap and run where Snakemake runs, never on SLURM.
localrules:
    report_target,
    report,


REPORT_PARAMS = {
    "grid": {
        "targets": TARGETS,
        "architectures": ARCHITECTURES,
        "policies": CONFIGURED_POLICIES,
        "seeds": SEEDS,
        "lr_scales": list(LR_SCALES),
    },
    "report": config["report"],
    "twins": GRID.twins,
    "metrics": config["metrics"],
    "source": config["data"]["source"],
}
TARGET_REPORT = "results/report/{target}"


rule report_target:
    input:
        unpack(report_inputs),
        cache_summary=CACHE_SUMMARY,
    output:
        html=f"{TARGET_REPORT}/report.html",
        tables=directory(f"{TARGET_REPORT}/tables"),
        label_distribution=f"{TARGET_REPORT}/figures/label_distribution.png",
        **{
            name: report(
                f"{TARGET_REPORT}/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category=category,
                subcategory="{target}",
                labels={"target": "{target}", "figure": label},
            )
            for name, (category, label) in TARGET_FIGURES.items()
        },
    log:
        "logs/report/{target}.log",
    params:
        **REPORT_PARAMS,
        train_settings={
            target: computation_settings(target_settings(target, "train")) for target in TARGETS
        },
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report.py"


rule report:
    input:
        label_counts=rules.parse_metadata.output.counts,
        cache_summary=CACHE_SUMMARY,
        target_reports=expand(rules.report_target.output.html, target=TARGETS),
        target_tables=expand(rules.report_target.output.tables, target=TARGETS),
        target_figures=expand(
            f"{TARGET_REPORT}/figures/{{figure}}.png",
            target=TARGETS,
            figure=["label_distribution", *TARGET_FIGURES],
        ),
    output:
        html=report(
            "results/report/report.html",
            caption="../report/report.rst",
            category="Comparison report",
            labels={"file": "report.html"},
        ),
        tables=report(
            directory("results/report/tables"),
            patterns=["{table}.csv"],
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        policy_overview=report(
            "results/report/figures/policy_overview.png",
            caption="../report/policy_overview.rst",
            category="Comparison report",
            labels={"file": "policy overview"},
        ),
        performance_profile=report(
            "results/report/figures/performance_profile.png",
            caption="../report/performance_profile.rst",
            category="Comparison report",
            labels={"file": "performance profile"},
        ),
        label_distribution=report(
            "results/report/figures/label_distribution.png",
            caption="../report/label_distribution.rst",
            category="Data",
            labels={"figure": "label distribution"},
        ),
    log:
        "logs/report/report.log",
    params:
        **REPORT_PARAMS,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report.py"
