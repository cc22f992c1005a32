"""The workflow as Snakemake sees it: config validation, the planned DAG, a local run."""

import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import HEADER
from repository import copy_workflow, run_snakemake, snakemake_command

from workflow_scripts.labels import DISEASES

RULES = {"demo_dataset", "parse_metadata", "make_split", "split_summary", "build_image_cache",
         "pretraining_split", "pretrain_backbone", "lr_finder", "train", "report_target",
         "report", "retire_checkpoints", "all"}


@pytest.fixture
def workflow(tmp_path):
    return copy_workflow(tmp_path / "workflow")


def planned_jobs(output):
    """Job counts from the 'Job stats' table of a dry run."""
    lines = output.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_default_config_plans_the_whole_dag(workflow):
    jobs = planned_jobs(run_snakemake(workflow, "-n").stdout)
    assert set(jobs) == RULES
    # targets x architectures x distinct policies x seeds: in two cycles modified_triangular2
    # is triangular2, and one run serves both.
    assert jobs["train"] == 1 * 1 * 6 * 3


def test_each_learning_rate_scale_plans_the_runs_of_scale_one_again(workflow):
    plain = run_snakemake(workflow, "-n", "--forceall").stdout
    scaled = run_snakemake(workflow, "-n", "--forceall", "--config",
                           "lr_scales=[0.25, 0.5, 1, 2, 4]").stdout
    assert planned_jobs(scaled)["train"] == 5 * planned_jobs(plain)["train"] == 5 * 18
    # Scale 1 keeps the run paths, other scales add theirs to the policy's folder.
    folders = set(re.findall(r"results/runs/\S+?/seed\d+", scaled))
    assert set(re.findall(r"results/runs/\S+?/seed\d+", plain)) == {
        f"results/runs/Effusion/mobilenet/{policy}/seed{seed}" for policy in (
            "constant", "time_decay", "triangular", "triangular2", "exp_range", "one_cycle")
        for seed in (0, 1, 2)} < folders
    assert "results/runs/Effusion/mobilenet/one_cycle-lr0.25x/seed2" in folders
    refused = run_snakemake(workflow, "-n", "--config", "lr_scales=[0.5, 2]", check=False)
    assert refused.returncode != 0 and "add 1 to lr_scales" in refused.stdout


def write_config(workflow, text):
    path = workflow / "config" / "custom.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("targets: [Effusion]\ntrian: {epochs: 2}\n",
         r"trian: unknown key \(did you mean train\?\)"),
        ("targets: [Effusion]\ntrain: {epoch: 2}\n",
         r"train\.epoch: unknown key \(did you mean train\.epochs\?\); every key is declared "
         r"in config/schema\.yaml"),
        ("targets: [Effusion]\ntrain: {epochs: ten}\n",
         r"train\.epochs: 'ten' is not of type 'integer' \(see config/schema\.yaml\)"),
        ("targets: [Efusion]\n", r"targets\[0\]: 'Efusion' is not one of Atelectasis, .* "
                                  r"\(did you mean 'Effusion'\?\)"),
        ("targets: [Effusion]\npolicies: [cyclic]\n", r"policies\[0\]: 'cyclic' is not one of"),
        ("targets: [Effusion]\ndata: {source: nih}\n", r"data\.metadata is required"),
        ("train: {epochs: 2}\n", r"config: 'targets' is a required property"),
    ],
    ids=["unknown-key", "mistyped-nested-key", "wrong-type", "unknown-target",
         "unknown-policy", "nih-without-paths", "no-targets"],
)
def test_bad_config_is_rejected_with_the_key_named(workflow, config, expected):
    result = run_snakemake(workflow, "-n", "--configfile", write_config(workflow, config),
                           check=False)
    assert result.returncode != 0
    assert re.search(expected, result.stdout), result.stdout[-2000:]
    assert len(result.stdout.splitlines()) < 10, "the problem, not the schema"


def test_numbers_inside_a_nested_config_option_are_numbers(workflow):
    # Snakemake passes them on as text; the schema wants integers.
    result = run_snakemake(workflow, "-n", "--configfile", "config/test.yaml",
                           "--config", "train={runtime: 20, mem_mb: 2000, epochs: 3}")
    assert planned_jobs(result.stdout)["train"] == 2 * 2


def test_paper_preset_plans_the_paper_grid(workflow, tmp_path):
    (tmp_path / "nih" / "images").mkdir(parents=True)
    csv = tmp_path / "nih" / "Data_Entry_2017_v2020.csv"
    csv.write_text(HEADER + "\n00000001_000.png,No Finding,0,1,50,M,PA,2500,2048,0.143,0.143\n")
    data = f"data={{source: nih, metadata: {csv}, images: {tmp_path / 'nih' / 'images'}}}"
    jobs = planned_jobs(run_snakemake(workflow, "-n", "--configfile", "config/paper.yaml",
                                      "--config", data).stdout)
    # modified_triangular2 is triangular2 wherever a run ends within its three cycles (at most
    # 12 epochs at a step size of 2): on 10 of the 15 targets one run serves both.
    assert jobs["train"] == 15 * 3 * 7 * 5 - 10 * 3 * 5
    # One range test per target and architecture: where Table 8 sets the bounds too, to
    # show ours beside them (lr_finder.run: always).
    assert jobs["lr_finder"] == 15 * 3
    assert jobs["make_split"] == 15 and jobs["fetch_weights"] == 1
    assert jobs["report_target"] == 15 and jobs["report"] == 1


def test_official_preset_plans_the_binary_and_the_multilabel_networks(workflow, tmp_path):
    (tmp_path / "nih" / "images").mkdir(parents=True)
    csv = tmp_path / "nih" / "Data_Entry_2017_v2020.csv"
    csv.write_text(HEADER + "\n00000001_000.png,No Finding,0,1,50,M,PA,2500,2048,0.143,0.143\n")
    (tmp_path / "nih" / "test_list.txt").write_text("00000001_000.png\n")
    data = (f"data={{source: nih, metadata: {csv}, images: {tmp_path / 'nih' / 'images'}, "
            f"test_list: {tmp_path / 'nih' / 'test_list.txt'}}}")
    output = run_snakemake(workflow, "-n", "--configfile", "config/official.yaml", "--config",
                           data).stdout
    jobs = planned_jobs(output)
    # 14 binary targets and multilabel, on DenseNet121; modified_triangular2 is triangular2
    # at 10 epochs of step size 2, so six distinct schedules x three seeds each.
    assert jobs["make_split"] == 15 and jobs["report_target"] == 15
    assert jobs["train"] == 15 * 6 * 3 and jobs["lr_finder"] == 15
    assert len(set(re.findall(r"results/runs/multilabel/densenet121/\w+/seed\d", output))) == 18
    # The test list is an input of every target's split.
    assert re.search(r"rule make_split:\n\s+input: results/labels/labels.parquet, "
                     + re.escape(str(tmp_path / "nih" / "test_list.txt")), output)


@pytest.mark.slow
def test_local_run_of_the_test_config_end_to_end(workflow):
    run_snakemake(workflow, "--cores", 2, "--configfile", "config/test.yaml")
    results = workflow / "results"
    assert (results / "report" / "report.html").stat().st_size > 0
    summary = pd.read_csv(results / "splits" / "summary.csv")
    assert list(summary["target"]) == ["Effusion", "Infiltration"]
    metrics = json.loads((results / "runs/Effusion/mobilenet/triangular/seed0/metrics.json")
                         .read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["auroc"] <= 1
    # The config sets the bounds; the range test ran anyway (lr_finder.run: always).
    assert metrics["settings"]["schedule"]["max_lr"] == 0.01
    bounds = json.loads((results / "lr_finder/Effusion/mobilenet.json").read_text())
    assert bounds["configured_rule"] == "min_loss" and bounds["verdict"]
    table8 = pd.read_csv(results / "report/tables/table8_clr_parameters.csv").dropna(
        subset=["bounds_from"])  # rows with the paper's numbers alone have none
    assert set(table8["bounds_from"]) == {"config"}
    assert table8["lr_finder_check"].notna().all()
    assert not list((results / "checkpoints").rglob("state.json")), \
        "rule retire_checkpoints retires the checkpoints of the finished runs"
    retired = (results / "checkpoints" / "Effusion" / "retired.txt").read_text().split()
    assert "results/checkpoints/Effusion/mobilenet/triangular/seed0" in retired
    again = run_snakemake(workflow, "--cores", 2, "--configfile", "config/test.yaml")
    assert "Nothing to be done" in again.stdout
    # After a TIMEOUT or OUT_OF_MEMORY a user gives the jobs more: nothing finished reruns.
    more = run_snakemake(workflow, "-n", "--configfile", "config/test.yaml", "--config",
                         "train={runtime: 30, mem_mb: 3000, threads: 2, gpus: 2}")
    assert "Nothing to be done" in more.stdout, more.stdout


@pytest.mark.slow
def test_the_sensitivity_demo_runs_end_to_end_on_a_tiny_variant(workflow):
    # config/demo_sensitivity.yaml laid over the tiny test config, one target, three scales.
    run_snakemake(workflow, "--cores", 2, "--configfile", "config/test.yaml",
                  "config/demo_sensitivity.yaml", "--config", "targets=[Effusion]",
                  "lr_scales=[0.5, 1, 2]")
    report = workflow / "results" / "report"
    policies, scales = ("constant", "triangular", "one_cycle"), (0.5, 1.0, 2.0)
    sensitivity = pd.read_csv(report / "tables" / "lr_sensitivity.csv")
    assert set(zip(sensitivity["policy"], sensitivity["lr_scale"], strict=True)) == {
        (policy, scale) for policy in policies for scale in scales}
    tuned = pd.read_csv(report / "tables" / "tuned_comparison.csv")
    assert list(tuned["policy"]) == list(policies) and tuned["tuned_scale"].isin(scales).all()
    assert list(pd.read_csv(report / "tables" / "time_to_target.csv")["policy"]) == list(
        policies)
    assert (report / "Effusion" / "figures" / "lr_sensitivity.png").stat().st_size > 0
    assert (report / "figures" / "performance_profile.png").stat().st_size > 0
    # The scale multiplies the configured bounds at every step.
    runs = workflow / "results" / "runs" / "Effusion" / "mobilenet"
    plain = pd.read_csv(runs / "triangular" / "seed0" / "lr.csv")
    doubled = pd.read_csv(runs / "triangular-lr2x" / "seed0" / "lr.csv")
    assert np.allclose(doubled["lr"], 2 * plain["lr"], rtol=1e-6)
    metrics = json.loads((runs / "one_cycle-lr0.5x" / "seed0" / "metrics.json").read_text())
    assert metrics["settings"]["lr_scale"] == 0.5
    assert metrics["settings"]["schedule"]["max_lr"] == pytest.approx(0.005)


@pytest.mark.slow
def test_bad_metadata_stops_the_run_with_the_row_and_leaves_no_output(workflow, tmp_path):
    (tmp_path / "images").mkdir()
    csv = tmp_path / "Data_Entry_2017_v2020.csv"
    csv.write_text(HEADER + "\n00000001_000.png,Efusion,0,1,50,M,PA,2500,2048,0.143,0.143\n")
    config = write_config(workflow, f"data: {{source: nih, metadata: {csv}, "
                                    f"images: {tmp_path / 'images'}}}\ntargets: [Effusion]\n")
    result = run_snakemake(workflow, "--cores", 1, "--configfile", config, "--",
                           "results/labels/labels.parquet", check=False)
    assert result.returncode != 0
    assert "unknown label 'Efusion' in 'Finding Labels' on line(s) [2]" in result.stdout
    assert not (workflow / "results" / "labels" / "labels.parquet").exists()


@pytest.mark.slow
def test_runs_fine_tune_from_the_pretrained_backbone_which_saw_no_held_out_image(workflow):
    config = yaml.safe_load((workflow / "config" / "test.yaml").read_text())
    config["model"]["weights"] = "results/pretrain/{arch}.weights.h5"
    config["pretrain"] = {"epochs": 1, "batch_size": 16, "min_val_auroc": 0.0, "threads": 1}
    config["policies"] = ["constant"]
    path = write_config(workflow, yaml.safe_dump(config))
    run_snakemake(workflow, "--cores", 2, "--configfile", path, "--",
                  "results/runs/Effusion/mobilenet/constant/seed0/metrics.json",
                  "results/runs/Infiltration/mobilenet/constant/seed0/metrics.json")
    results = workflow / "results"
    summary = json.loads((results / "pretrain" / "mobilenet.json").read_text())
    assert summary["diseases"] == [d for d in DISEASES if d not in ("Effusion", "Infiltration")]
    assert (results / "pretrain" / "mobilenet.weights.h5").stat().st_size > 0
    pretraining = pd.read_parquet(results / "pretrain" / "pretraining.parquet")
    assert len(pretraining) == summary["train_images"] + summary["val_images"] > 0
    for target in ("Effusion", "Infiltration"):
        split = pd.read_parquet(results / "splits" / f"{target}.parquet")
        held_out = split[split["split"].isin(["val", "test"])]
        assert not set(pretraining["image_index"]) & set(held_out["image_index"])
        assert not set(pretraining["patient_id"]) & set(held_out["patient_id"])
        log = workflow / f"logs/train/{target}/mobilenet/constant/seed0.log"
        assert "starts from results/pretrain/mobilenet.weights.h5" in log.read_text()
    cache = json.loads((results / "cache" / "32" / "summary.json").read_text())
    assert cache["splits"]["pretraining"]["cached"] == len(pretraining)


def test_a_range_test_without_usable_bounds_stops_the_runs_that_need_them(workflow):
    config = yaml.safe_load((workflow / "config" / "test.yaml").read_text())
    config["train"].update(base_lr=None, max_lr=None)
    # A sweep up to 1e-6 teaches the model nothing: the curve is flat.
    config["lr_finder"].update(run="needed", max_lr=1.0e-6)
    path = write_config(workflow, yaml.safe_dump(config))
    result = run_snakemake(workflow, "--cores", 2, "--configfile", path, "--",
                           "results/runs/Effusion/mobilenet/triangular/seed0/metrics.json",
                           check=False)
    assert result.returncode != 0
    assert re.search(r"LR range test of Effusion, mobilenet: no usable bounds: rule min_loss "
                     r"picked lr [0-9.e-]+, but .*Fixes: sweep longer", result.stdout)
    logs = workflow / "logs" / "lr_finder" / "Effusion"
    assert (logs / "mobilenet.curve.csv").is_file() and (logs / "mobilenet.curve.png").is_file()
    assert not (workflow / "results" / "lr_finder" / "Effusion" / "mobilenet.json").exists()
    assert not (workflow / "results" / "runs").exists()


# One run of the test config, long enough to be interrupted mid-training: SIGINT comes after
# the first of its epochs, which take about a second each, so that the job is surely still
# training when Snakemake gets it.
EPOCHS = 12
ONE_RUN = "results/runs/Effusion/mobilenet/constant/seed0"
ONE_RUN_ARGS = (f"{ONE_RUN}/metrics.json", "--cores", 1, "--configfile", "config/test.yaml",
                "--config", "targets=[Effusion]", "policies=[constant]",
                f"train={{epochs: {EPOCHS}}}")


@pytest.mark.slow
def test_sigint_to_snakemake_during_training_then_the_same_command_trains_no_epoch_twice(
        workflow):
    with open(workflow / "first.log", "w") as output:
        # SIGINT to Snakemake alone, as `kill -INT` or a scheduler sends it (Ctrl-C in a
        # terminal would reach the job too): Snakemake lets the job finish, then exits with
        # its outputs marked incomplete, and the rerun deletes them.
        first = subprocess.Popen(snakemake_command(*ONE_RUN_ARGS), cwd=workflow,
                                 stdout=output, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        state = workflow / "results/checkpoints/Effusion/mobilenet/constant/seed0/state.json"
        deadline = time.monotonic() + 600
        while not (state.exists() and json.loads(state.read_text())["history"]):
            assert first.poll() is None and time.monotonic() < deadline, \
                (workflow / "first.log").read_text()
            time.sleep(0.2)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=600) != 0
    assert "Terminating processes on user request" in (workflow / "first.log").read_text()
    run = workflow / ONE_RUN
    finished = {path.name: path.read_bytes() for path in run.iterdir()}
    assert set(finished) == {"history.csv", "lr.csv", "predictions.parquet", "metrics.json"}

    again = run_snakemake(workflow, *ONE_RUN_ARGS)
    assert "Forced execution" in again.stdout, "Snakemake reran the job it did not commit"
    log = (workflow / "logs/train/Effusion/mobilenet/constant/seed0.log").read_text()
    first_attempt, second_attempt = log.split("===== attempt 2")
    assert len(re.findall(rf"INFO epoch \d+/{EPOCHS} ", first_attempt)) == EPOCHS
    assert not re.findall(rf"INFO epoch \d+/{EPOCHS} ", second_attempt), "no epoch trained twice"
    assert f"holds all {EPOCHS} epochs: evaluating only" in second_attempt
    assert {path.name: path.read_bytes() for path in run.iterdir()} == finished, \
        "the outputs of the uninterrupted training, to the byte"
