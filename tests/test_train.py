import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from repository import schema_config
from tiny_data import write_tiny_target

from workflow_scripts.configuration import computation_settings
from workflow_scripts.labels import DISEASES, MULTILABEL
from workflow_scripts.runs import FILES, HISTORY_COLUMNS, MODEL_FILE
from workflow_scripts.train import RunInputs, RunKey, RunSettings, train_run

pytestmark = pytest.mark.slow  # most tests here train real models
METRICS_CONTRACT = {"accuracy", "auroc", "auroc_ci_low", "auroc_ci_high", "sensitivity",
                    "specificity", "f1", "epochs", "train_seconds", "images_per_second",
                    "epochs_to_target"}


def run_paths(folder, save_model=False):
    """The run's files in `folder`, named as the train rule names its outputs."""
    paths = {name: folder / file for name, file in FILES.items()}
    return {**paths, "model": folder / MODEL_FILE} if save_model else paths


def tiny_run(tmp_path, arch, policy, epochs=2, target="Effusion", head="paper",
             **train_changes):
    split, images, index = write_tiny_target(tmp_path / "data",
                                             multilabel=target == MULTILABEL)
    config = schema_config(
        train={"epochs": epochs, "batch_size": 16, "threads": 1, "base_lr": 0.002,
               "max_lr": 0.02, "step_size_epochs": 1, "target_accuracy": 0.6, **train_changes},
        # A few dozen steps need a short batch-norm memory, as in the demo; with Keras' 0.99
        # inference uses stale statistics and scores every image alike, and whether the test
        # AUROC of such a run clears a bar is down to rounding.
        model={"mobilenet_alpha": 0.25, "batch_norm_momentum": 0.9, "head": head},
        metrics={"bootstrap_samples": 200})
    return train_run(RunKey(target, arch, policy, 0), RunInputs(split, images, index),
                     RunSettings(computation_settings(config["train"]), config["model"],
                                 config["metrics"], image_size=32),
                     checkpoint_dir=tmp_path / "checkpoint", threads=1)


@pytest.mark.parametrize("arch", ["mobilenet", "densenet121", "alexnet"])
def test_each_architecture_trains_two_epochs_and_writes_every_output(tmp_path, arch):
    result = tiny_run(tmp_path, arch, "triangular")
    out = tmp_path / "run"
    out.mkdir()
    result.write(run_paths(out, save_model=True))
    history = pd.read_csv(out / "history.csv")
    assert tuple(history.columns) == HISTORY_COLUMNS and history["epoch"].tolist() == [1, 2]
    assert history[["loss", "val_loss"]].notna().all().all()
    steps = int(history["steps"].iloc[-1])
    lr = pd.read_csv(out / "lr.csv")
    assert lr["step"].tolist() == list(range(steps)) and lr["lr"].between(0.002, 0.02).all()
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert list(predictions.columns) == ["image_index", "patient_id", "label", "score"]
    assert predictions["score"].between(0, 1).all() and len(predictions) == 48
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics.keys() >= METRICS_CONTRACT
    assert metrics["epochs"] == 2 and metrics["auroc_ci_low"] <= metrics["auroc"]
    assert (out / "model.keras").stat().st_size > 0

    # The checkpoint of the last epoch stays: a rerun (its outputs deleted by Snakemake)
    # only evaluates the model it holds, and gets the same predictions.
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert len(state["history"]) == 2
    again = tiny_run(tmp_path, arch, "triangular")
    assert_same_run(again.history, again.predictions, again.metrics, result.history,
                    result.predictions, result.metrics, wall_time=True)


def test_a_multilabel_run_scores_every_disease_and_reports_their_mean(tmp_path):
    result = tiny_run(tmp_path, "mobilenet", "constant", epochs=2, target=MULTILABEL,
                      head="simple", learning_rate=0.05)
    assert result.model.output_shape == (None, len(DISEASES))
    result.write(run_paths(tmp_path))
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert list(predictions.columns) == ["image_index", "patient_id", *DISEASES,
                                         *(f"score_{d}" for d in DISEASES)]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics.keys() >= METRICS_CONTRACT | {"auprc", "brier", "ece", "per_label"}
    assert metrics["labels_scored"] == list(DISEASES)
    per_label = [metrics["per_label"][d]["auroc"] for d in DISEASES]
    assert metrics["auroc"] == pytest.approx(np.mean(per_label))
    assert metrics["auroc_ci_low"] < metrics["auroc"] < metrics["auroc_ci_high"]
    assert metrics["per_label"]["Hernia"]["n_test_positives"] == int(
        predictions["Hernia"].sum())
    # One cross-entropy per label, averaged: the second epoch's is below the first's.
    assert np.isfinite(result.history[["loss", "val_loss"]]).all().all()
    assert result.history["loss"].iloc[-1] < result.history["loss"].iloc[0]


def test_mixed_precision_trains_the_paper_head(tmp_path):
    import keras

    try:
        result = tiny_run(tmp_path, "mobilenet", "constant", epochs=1, mixed_precision="on")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result.model.get_layer("head_dense250").compute_dtype == "bfloat16"
    assert np.isfinite(result.history["loss"]).all()


def test_mobilenet_learns_the_tiny_task(tmp_path):
    # In a process of its own, as a training job runs: its one thread is set before TensorFlow
    # starts. In this process earlier tests have started TensorFlow with every core, whose
    # reductions round in varying order, and over six epochs of a tiny task that moves the
    # test AUROC as much as another seed would.
    code = ("import sys; from test_train import tiny_run; "
            f"result = tiny_run(__import__('pathlib').Path({str(tmp_path)!r}), 'mobilenet', "
            "'constant', epochs=6, learning_rate=0.01); print(result.metrics['auroc'])")
    tests = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [tests, os.path.dirname(tests)])}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) > 0.8


TIMING_METRICS = ("train_seconds", "images_per_second", "device_seconds")


def assert_same_run(history, predictions, metrics, expected_history, expected_predictions,
                    expected_metrics, wall_time=False):
    """Equal to the last bit; wall-time columns and metrics too where `wall_time`."""
    drop = [] if wall_time else ["seconds"]
    pd.testing.assert_frame_equal(history.drop(columns=drop),
                                  expected_history.drop(columns=drop), check_exact=True)
    pd.testing.assert_frame_equal(predictions, expected_predictions, check_exact=True)
    skip = () if wall_time else TIMING_METRICS
    assert {k: v for k, v in metrics.items() if k not in skip} == \
        {k: v for k, v in expected_metrics.items() if k not in skip}


def read_run(folder):
    return (pd.read_csv(folder / "history.csv"), pd.read_parquet(folder / "predictions.parquet"),
            json.loads((folder / "metrics.json").read_text()))


# Augmentation and dropout (0.5, paper head) are on, as the schema's defaults have them.
RUNNER = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]  # this checkout's workflow_scripts, not an installed one
from pathlib import Path
from test_train import tiny_run, run_paths
from workflow_scripts.stage import setup_logging
setup_logging()
folder = Path({folder!r})
result = tiny_run(folder, "mobilenet", "triangular2", epochs=4, **{resources!r})
if result is None:
    sys.exit(143)
(folder / "run").mkdir()
result.write(run_paths(folder / "run"))
"""


def start_run(folder, **resources):
    script = folder / "runner.py"
    tests = os.path.dirname(os.path.abspath(__file__))
    script.write_text(RUNNER.format(repo=os.path.dirname(tests), tests=tests,
                                    folder=str(folder), resources=resources))
    with open(folder / "runner.log", "w") as output:
        return subprocess.Popen([sys.executable, str(script)], cwd=os.getcwd(), stdout=output,
                                stderr=subprocess.STDOUT)


def finish(process, folder, timeout=300):
    """(exit status, output so far) of a runner started in `folder`."""
    process.wait(timeout=timeout)
    return process.returncode, (folder / "runner.log").read_text()


def wait_for_epochs(folder, epochs, process, timeout=240):
    state = folder / "checkpoint" / "state.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists() and len(json.loads(state.read_text())["history"]) >= epochs:
            return
        assert process.poll() is None, (folder / "runner.log").read_text()
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of epoch {epochs} within {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference run, started at once so that it trains alongside the first test."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    return folder, start_run(folder)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumed_with_more_time_and_memory_equals_the_uninterrupted_run(
        tmp_path, uninterrupted, stop):
    reference_folder, reference = uninterrupted
    first = start_run(tmp_path)
    wait_for_epochs(tmp_path, 1, first)
    first.send_signal(stop)
    status, output = finish(first, tmp_path, timeout=120)
    assert status in (-signal.SIGKILL, 143), output
    if stop == signal.SIGTERM:
        assert "SIGTERM: stopping after the current batch" in output
    assert not (tmp_path / "run").exists()

    # What a user does after a TIMEOUT or OUT_OF_MEMORY: the same run with more of both.
    second = start_run(tmp_path, runtime=60, mem_mb=4000)
    status, output = finish(second, tmp_path)
    assert status == 0, output
    assert "resuming after epoch" in output
    status, output = finish(reference, reference_folder)
    assert status == 0, output

    history, predictions, metrics = read_run(tmp_path / "run")
    assert history["epoch"].tolist() == [1, 2, 3, 4], "no epoch repeated or missing"
    assert_same_run(history, predictions, metrics, *read_run(reference_folder / "run"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run" / "lr.csv"),
                                  pd.read_csv(reference_folder / "run" / "lr.csv"))


def test_a_cyclical_run_without_bounds_or_lr_finder_result_stops_before_training(tmp_path):
    from workflow_scripts.stage import InputError
    from workflow_scripts.train import with_lr_finder_bounds

    settings = schema_config()["train"]
    with pytest.raises(InputError, match=r"train\.base_lr and train\.max_lr not set for "
                                         r"policy 'triangular' and no LR-finder result"):
        with_lr_finder_bounds("triangular", settings, None)
    assert with_lr_finder_bounds("constant", settings, None) == settings
    found = tmp_path / "bounds.json"
    found.write_text(json.dumps({"rule": "min_loss", "base_lr": 0.01, "max_lr": 0.04}))
    filled = with_lr_finder_bounds("one_cycle", settings, found)
    assert filled["max_lr"] == 0.04 and filled["base_lr"] is None
    # A range test that found no usable bounds (run only to be shown) gives none.
    found.write_text(json.dumps({"rule": None, "base_lr": None, "max_lr": None,
                                 "verdict": "no usable bounds: ..."}))
    with pytest.raises(InputError, match="found no usable bounds"):
        with_lr_finder_bounds("one_cycle", settings, found)


def test_a_learning_rate_scale_multiplies_every_learning_rate_of_the_run(tmp_path):
    from workflow_scripts.train import prepare

    split, images, index = write_tiny_target(tmp_path / "data")
    found = tmp_path / "bounds.json"
    found.write_text(json.dumps({"rule": "min_loss", "base_lr": 0.01, "max_lr": 0.04}))
    config = schema_config(train={"epochs": 2, "batch_size": 16, "learning_rate": 0.05})
    settings = RunSettings(computation_settings(config["train"]), config["model"],
                           config["metrics"], image_size=32)

    def schedule(policy, lr_scale):
        run = prepare(RunKey("Effusion", "mobilenet", policy, 0, lr_scale),
                      RunInputs(split, images, index, str(found)), settings,
                      tmp_path / f"{policy}{lr_scale}")
        return run.params

    # Bounds from the range test and rates from the config alike.
    assert schedule("triangular", 0.5) == {**schedule("triangular", 1.0), "base_lr": 0.005,
                                           "max_lr": 0.02}
    assert schedule("one_cycle", 4.0)["max_lr"] == 0.16
    assert schedule("constant", 2.0) == {"learning_rate": 0.1}
    assert schedule("time_decay", 0.25) == {**schedule("time_decay", 1.0),
                                            "learning_rate": 0.0125}


def test_a_split_without_test_positives_is_named(tmp_path):
    from workflow_scripts.input_pipeline import load_target
    from workflow_scripts.stage import InputError

    split, images, index = write_tiny_target(tmp_path / "data")
    frame = pd.read_parquet(split)
    frame.loc[frame["split"] == "test", "label"] = 0
    frame.to_parquet(split, index=False)
    with pytest.raises(InputError, match=r"the test split of Effusion has 0 positive"):
        load_target(split, images, index, "Effusion")
