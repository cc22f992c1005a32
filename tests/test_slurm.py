"""The workflow on a real one-node SLURM cluster (tests/slurm/start-cluster.sh).

One module-wide run of `snakemake --profile profiles/slurm` on config/test.yaml goes to the
report while the test cancels a training job after its first epoch; the tests then read
SLURM's own records (`scontrol show job`, kept for MinJobAge) and the run's outputs.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pandas as pd
import pytest
from repository import copy_workflow, run_snakemake, snakemake_command

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

RULES = ("demo_dataset", "parse_metadata", "make_split", "split_summary", "build_image_cache",
         "lr_finder", "train", "report_target", "report", "fetch_weights")
GPU_RULES = {"lr_finder", "train"}
PREEMPTED = ("Effusion", "mobilenet", "constant", "0")
PREEMPTED_EPOCHS = 6
# The node has 2 CPUs and 24 GB: the profile's production requests would never schedule.
SMALL_NODE = ["--set-resources", "lr_finder:cpus_per_gpu=1", "train:cpus_per_gpu=1"]


def cluster_is_up():
    if shutil.which("sinfo") is None:
        return False
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    return states.returncode == 0 and any(s.startswith(("idle", "mix", "alloc"))
                                          for s in states.stdout.split())


@pytest.fixture(scope="module", autouse=True)
def require_cluster():
    if not cluster_is_up():
        message = "no SLURM cluster: run tests/slurm/start-cluster.sh as root"
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def slurm_args(prefix):
    # squeue, not sacct: the test cluster keeps no accounting database. longer.yaml gives the
    # run that gets cancelled more epochs, so that it is still running after epoch 1.
    return ["--profile", "profiles/slurm", "--configfile", "config/test.yaml", "longer.yaml",
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", 2,
            "--slurm-jobname-prefix", prefix, "--latency-wait", 5, *SMALL_NODE]


def slurm_jobs(prefix):
    """SLURM's record of every job of the run `prefix`: rule, wildcards, state, GPU request."""
    shown = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True,
                           check=True).stdout
    jobs = []
    for line in shown.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if not fields.get("JobName", "").startswith(f"{prefix}_"):
            continue
        comment = fields.get("Comment", "")
        rule = next(r for r in sorted(RULES, key=len, reverse=True)
                    if comment == f"rule_{r}" or comment.startswith(f"rule_{r}_wildcards_"))
        jobs.append({"id": fields["JobId"], "rule": rule, "state": fields["JobState"],
                     "wildcards": comment.removeprefix(f"rule_{rule}_wildcards_"),
                     "gpu": "gpu" in fields.get("TresPerJob", "")})
    return pd.DataFrame(jobs)


def cancel_after_first_epoch(workdir, prefix, process, timeout=900):
    """scancel the PREEMPTED run's job once its checkpoint holds epoch 1; return the job id."""
    target, arch, policy, seed = PREEMPTED
    state = workdir / f"results/checkpoints/{target}/{arch}/{policy}/seed{seed}/state.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the job to preempt got going"
        if state.exists() and len(json.loads(state.read_text())["history"]) >= 1:
            jobs = slurm_jobs(prefix)
            running = jobs[(jobs["rule"] == "train") & (jobs["state"] == "RUNNING")
                           & jobs["wildcards"].str.contains(f"{target}.*{policy}")]
            if len(running):
                job = running["id"].iloc[0]
                subprocess.run(["scancel", job], check=True)
                return job
        time.sleep(0.2)
    raise AssertionError("the job to preempt never finished its first epoch")


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "workflow")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    (workdir / "longer.yaml").write_text(
        f"overrides:\n  {PREEMPTED[0]}:\n    train:\n      epochs: {PREEMPTED_EPOCHS}\n")
    command = snakemake_command(*slurm_args(prefix))
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(workdir / "run.log", "w") as log:
        process = subprocess.Popen(command, cwd=workdir, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            cancelled = cancel_after_first_epoch(workdir, prefix, process)
            returncode = process.wait(timeout=1500)
        finally:
            if process.poll() is None:
                process.kill()
                subprocess.run(["scancel", "--name", prefix], check=False)
    output = (workdir / "run.log").read_text()
    assert returncode == 0, output
    return {"workdir": workdir, "prefix": prefix, "cancelled": cancelled, "output": output}


def test_gpu_rules_go_through_sbatch_with_a_gpu_and_the_others_without(cluster_run):
    jobs = slurm_jobs(cluster_run["prefix"])
    assert set(jobs["rule"]) == {"demo_dataset", "build_image_cache", "lr_finder", "train"}, \
        "the cheap rules run locally, everything else through sbatch"
    assert jobs.loc[jobs["rule"].isin(GPU_RULES), "gpu"].all()
    assert not jobs.loc[~jobs["rule"].isin(GPU_RULES), "gpu"].any()
    assert (cluster_run["workdir"] / "results/report/report.html").stat().st_size > 0


def test_cancelled_training_is_retried_and_resumes_from_its_checkpoint(cluster_run):
    target, arch, policy, seed = PREEMPTED
    jobs = slurm_jobs(cluster_run["prefix"])
    attempts = jobs[(jobs["rule"] == "train") & jobs["wildcards"].str.contains(
        f"{target}.*{policy}")]
    assert attempts.set_index("id").loc[cluster_run["cancelled"], "state"] == "CANCELLED"
    assert (attempts["state"] == "COMPLETED").sum() == 1 and len(attempts) == 2
    run = cluster_run["workdir"] / f"results/runs/{target}/{arch}/{policy}/seed{seed}"
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == list(range(1, PREEMPTED_EPOCHS + 1)), \
        "every epoch exactly once"
    log = cluster_run["workdir"] / f"logs/train/{target}/{arch}/{policy}/seed{seed}.log"
    assert "resuming after epoch" in log.read_text()
    checkpoint = f"results/checkpoints/{target}/{arch}/{policy}/seed{seed}"
    assert not (cluster_run["workdir"] / checkpoint).exists(), "dropped once outputs exist"


def test_second_invocation_has_nothing_to_do(cluster_run):
    result = run_snakemake(cluster_run["workdir"], *slurm_args(f"{cluster_run['prefix']}b"))
    assert "Nothing to be done" in result.stdout
    assert slurm_jobs(f"{cluster_run['prefix']}b").empty


def test_rerunning_one_disease_runs_only_its_jobs(cluster_run):
    workdir, prefix = cluster_run["workdir"], f"{cluster_run['prefix']}c"
    report = workdir / "results/report/Infiltration/report.html"
    before = report.stat().st_mtime
    run_snakemake(workdir, *slurm_args(prefix), "--forcerun", "train", "--",
                  "results/report/Infiltration/report.html")
    jobs = slurm_jobs(prefix)
    assert set(jobs["rule"]) == {"train"} and len(jobs) == 2, jobs
    assert jobs["wildcards"].str.startswith("Infiltration").all(), jobs
    assert report.stat().st_mtime > before
