"""Stage `train`: one run of one target x architecture x policy x learning-rate scale x seed.

The run trains on the target's train split, validates every epoch, and predicts the test
split with the final model. Its learning rate is `make_schedule(policy, ...)` of the
optimizer's step counter; cyclical bounds come from the config or else from the target's
LR-finder result; the run's learning-rate scale multiplies every learning rate of them.

Every epoch is checkpointed (workflow_scripts.checkpoint) in a folder that is not a declared
output. A rerun after a kill, a preemption or a time limit resumes after the last finished
epoch and continues exactly as the uninterrupted run would have: same weights, optimizer
step, learning rate, batches, dropout masks and augmentations. On SIGTERM the job stops after
the current batch and exits non-zero, so that Snakemake retries it; the checkpoint of the
last finished epoch is already on disk. The checkpoint of the last epoch stays after the
outputs are written, and a rerun that finds it only evaluates: no finished epoch is trained
twice, whatever Snakemake decided about the outputs.
"""

import hashlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from workflow_scripts import device as device_settings
from workflow_scripts.checkpoint import Checkpoint, restore_random_streams
from workflow_scripts.input_pipeline import (
    evaluation_dataset,
    load_target,
    steps_per_epoch,
    training_dataset,
)
from workflow_scripts.labels import MULTILABEL, label_columns
from workflow_scripts.metrics import epochs_to_target, summarize_multilabel, summarize_predictions
from workflow_scripts.models import new_model
from workflow_scripts.plan import needs_lr_finder_bounds, scale_label, scale_of_label
from workflow_scripts.policies import (
    lr_bounds,
    momentum_params,
    scaled_learning_rates,
    schedule_params,
)
from workflow_scripts.runs import HISTORY_COLUMNS, prediction_frame, write_run
from workflow_scripts.schedules import make_momentum_schedule, make_schedule, schedule_values
from workflow_scripts.stage import InputError, log, run

EXIT_PREEMPTED = 128 + signal.SIGTERM  # what a shell reports for a SIGTERM'd process


def with_lr_finder_bounds(policy, settings, lr_finder_path):
    """Settings with base_lr/max_lr filled from the LR-finder result where the config has none."""
    if not needs_lr_finder_bounds(policy, settings):
        return dict(settings)
    needed = lr_bounds(policy)
    if not lr_finder_path:
        raise InputError(f"train.{' and train.'.join(needed)} not set for policy {policy!r} and "
                         "no LR-finder result given; set them or let the lr_finder rule run.")
    found = json.loads(Path(lr_finder_path).read_text())
    if found.get("rule") is None:
        raise InputError(f"{lr_finder_path}: the LR range test found no usable bounds "
                         f"({found.get('verdict')}); rerun the lr_finder rule, or set "
                         f"train.{' and train.'.join(needed)}.")
    filled = dict(settings)
    for name in needed:
        if filled.get(name) is None:
            filled[name] = float(found[name])
    if "base_lr" in needed and filled["base_lr"] >= filled["max_lr"]:
        raise InputError(f"{lr_finder_path}: base_lr {filled['base_lr']} is not below max_lr "
                         f"{filled['max_lr']}; set train.base_lr/max_lr explicitly.")
    return filled


class EpochRecorder(keras.callbacks.Callback):
    """Per epoch: the history row, the step range, one log line, and the checkpoint."""

    def __init__(self, checkpoint, history, seconds, schedule, epochs):
        super().__init__()
        self.checkpoint = checkpoint
        self.history = history
        self.seconds = seconds
        self.schedule = schedule
        self.epochs = epochs
        self.stop_requested = False

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.first_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stop_requested:
            return  # an interrupted epoch is neither recorded nor checkpointed
        elapsed = time.perf_counter() - self.started
        self.seconds += elapsed
        last_step = int(self.model.optimizer.iterations.numpy())
        row = {"epoch": epoch + 1, **{key: float(logs[key]) for key in HISTORY_COLUMNS[1:7]},
               "lr": float(schedule_values(self.schedule, self.first_step + 1)[-1]),
               "seconds": elapsed, "steps": last_step}
        self.history.append(row)
        self.checkpoint.save(self.model, self.history, self.seconds)
        log.info("epoch %d/%d  loss %.4f  accuracy %.4f  auroc %.4f  val_loss %.4f  "
                 "val_accuracy %.4f  val_auroc %.4f  lr %.3g  %.1f s", epoch + 1, self.epochs,
                 row["loss"], row["accuracy"], row["auroc"], row["val_loss"],
                 row["val_accuracy"], row["val_auroc"], row["lr"], elapsed)


def run_fingerprint(**facts):
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(*parts):
    """Images and labels of the splits a run learns and validates on."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update("\n".join(part.image_index).encode())
        digest.update(part.labels.tobytes())
    return digest.hexdigest()


def lr_per_step(run, history):
    """The learning rate and momentum (Adam's beta_1) the optimizer used at every step of the
    run, with its epoch."""
    total = history[-1]["steps"]
    steps = np.arange(total)
    momentum = (schedule_values(run.momentum_schedule, total) if run.momentum_schedule
                else np.full(total, float(run.settings.train["momentum"])))
    return pd.DataFrame({"step": steps, "epoch": steps // run.steps + 1,
                         "lr": schedule_values(run.schedule, total), "momentum": momentum})


def predict(model, images, data, batch_size):
    """Scores of `data`'s images: images x outputs."""
    return model.predict(evaluation_dataset(images, data, batch_size), verbose=0).reshape(
        len(data), -1)


def evaluation_metrics(target, test, test_scores, val, val_scores, metrics_settings, seed):
    """The test numbers of metrics.json: a binary target's, or per label and their mean."""
    options = {"samples": metrics_settings["bootstrap_samples"],
               "level": metrics_settings["ci_level"], "seed": seed}
    if target == MULTILABEL:
        return summarize_multilabel(label_columns(target), test.labels, test_scores,
                                    test.patient_id, val.labels, val_scores, **options)
    return summarize_predictions(test.labels[:, 0], test_scores[:, 0], test.patient_id,
                                 val.labels[:, 0], val_scores[:, 0], **options)


@dataclass
class RunResult:
    """A finished run: its record (see `runs`) and the trained model."""

    history: pd.DataFrame
    lr: pd.DataFrame
    predictions: pd.DataFrame
    metrics: dict
    model: keras.Model

    def write(self, paths):
        """The run's files at `paths` (name -> path); the checkpoint stays (see checkpoint)."""
        write_run(paths, history=self.history, lr=self.lr, predictions=self.predictions,
                  metrics=self.metrics, model=self.model if "model" in paths else None)


@dataclass(frozen=True)
class RunKey:
    """Which run: one target x architecture x policy x learning-rate scale x seed of the
    plan (`plan.PlannedRun`)."""

    target: str
    arch: str
    policy: str
    seed: int
    lr_scale: float = 1.0


@dataclass(frozen=True)
class RunInputs:
    """The files a run reads; `lr_finder` is the target's range-test result, or None."""

    split: str
    cache_images: str
    cache_index: str
    lr_finder: str | None = None


@dataclass(frozen=True)
class RunSettings:
    """What decides a run's numbers: the train settings (configuration.computation_settings),
    the model and metrics settings, and the image size. Threads and GPUs are the job's."""

    train: dict
    model: dict
    metrics: dict
    image_size: int


@dataclass
class PreparedRun:
    """A run before any model exists: its device, data, schedule and checkpoint."""

    key: RunKey
    settings: RunSettings  # train settings with the LR-finder bounds filled in, scaled
    device: object
    images: np.ndarray
    parts: dict  # "train", "val", "test" -> the split's part
    steps: int  # optimizer steps per epoch
    params: dict  # the schedule's parameters
    momentum: dict  # base_momentum and max_momentum where the momentum is cycled, else {}
    schedule: object
    momentum_schedule: object  # or None: the momentum stays train.momentum
    checkpoint: Checkpoint

    @property
    def epochs(self):
        return self.settings.train["epochs"]

    @property
    def batch_size(self):
        return self.settings.train["batch_size"]


def prepare(key, inputs, settings, checkpoint_dir, threads=1, gpus=1):
    """The run's device, data, schedule and checkpoint (named by what the run computes, so
    that a retry with more time, memory or GPUs resumes)."""
    device = device_settings.configure(settings.train, threads, gpus, key.seed)
    train_settings = scaled_learning_rates(
        with_lr_finder_bounds(key.policy, settings.train, inputs.lr_finder), key.lr_scale)
    settings = RunSettings(train_settings, settings.model, settings.metrics, settings.image_size)
    images, parts = load_target(inputs.split, inputs.cache_images, inputs.cache_index, key.target)
    steps = steps_per_epoch(parts["train"], train_settings["batch_size"], key.target)
    params = schedule_params(key.policy, train_settings, steps, train_settings["epochs"])
    momentum = momentum_params(key.policy, train_settings)
    # A run without cycled momentum keeps the fingerprint it had before momentum could cycle.
    cycled = {"momentum": momentum} if momentum else {}
    checkpoint = Checkpoint(checkpoint_dir, run_fingerprint(
        arch=key.arch, policy=key.policy, seed=key.seed, settings=train_settings,
        model=settings.model, image_size=settings.image_size, schedule=params, **cycled,
        data=data_fingerprint(parts["train"], parts["val"])))
    log.info("%s %s %s%s seed %d on %s: %d train / %d val / %d test images, %d steps per "
             "epoch, schedule %s", key.target, key.arch, key.policy, scale_label(key.lr_scale),
             key.seed, device.description,
             len(parts["train"]), len(parts["val"]), len(parts["test"]), steps, params)
    if momentum:
        log.info("SGD's momentum cycles between %g and %g against the learning rate",
                 momentum["base_momentum"], momentum["max_momentum"])
    return PreparedRun(key, settings, device, images, parts, steps, params, momentum,
                       make_schedule(key.policy, **params),
                       make_momentum_schedule(key.policy, momentum, **params), checkpoint)


def build(run):
    """A new model for `run`, its optimizer on the run's schedule."""
    key, settings = run.key, run.settings
    return new_model(key.arch, settings.image_size, settings.model, settings.train, key.seed,
                     run.device.xla, run.parts["train"].labels.shape[1], run.schedule,
                     momentum_schedule=run.momentum_schedule)


def resume(run):
    """(model, history, seconds) from the run's checkpoint, or None when it has none."""
    saved = run.checkpoint.load()
    if not saved:
        return None
    model = keras.models.load_model(saved.model_path)
    restore_random_streams(model, saved.random_streams)
    if len(saved.history) < run.epochs:
        log.info("resuming after epoch %d from %s (optimizer step %d)", len(saved.history),
                 saved.model_path, int(model.optimizer.iterations.numpy()))
    else:
        log.info("%s holds all %d epochs: evaluating only", saved.model_path, run.epochs)
    return model, saved.history, saved.seconds


def fit(run, model, recorder):
    """Train the epochs the history lacks; False when a SIGTERM stopped it (the last
    finished epoch's checkpoint is kept for the retry)."""
    first_epoch = len(recorder.history)
    if first_epoch >= run.epochs:
        return True
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: request_stop(recorder))
    try:
        train, val = run.parts["train"], run.parts["val"]
        model.fit(
            training_dataset(run.images, train, run.batch_size, run.key.seed, first_epoch,
                             run.epochs),
            validation_data=evaluation_dataset(run.images, val, run.batch_size),
            epochs=run.epochs, initial_epoch=first_epoch, steps_per_epoch=run.steps,
            callbacks=[recorder], shuffle=False,  # the dataset is shuffled per epoch
            verbose=1 if sys.stderr.isatty() else 0,
        )
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return not recorder.stop_requested


def evaluate(run, model, history):
    """The finished run's record: test and validation predictions, metrics, LR per step."""
    key, train_settings = run.key, run.settings.train
    train, val, test = run.parts["train"], run.parts["val"], run.parts["test"]
    test_scores = predict(model, run.images, test, run.batch_size)
    val_scores = predict(model, run.images, val, run.batch_size)
    history_frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    predictions = prediction_frame(key.target, test.image_index, test.patient_id, test.labels,
                                   test_scores)
    metrics = evaluation_metrics(key.target, test, test_scores, val, val_scores,
                                 run.settings.metrics, key.seed)
    train_seconds = float(history_frame["seconds"].sum())
    metrics.update({
        "epochs": run.epochs,
        "train_seconds": train_seconds,
        "images_per_second": len(train) * run.epochs / max(train_seconds, 1e-9),
        "device_seconds": train_seconds * max(run.device.gpus, 1),
        "gpus": run.device.gpus,
        "device": run.device.description,
        "train_accuracy": float(history_frame["accuracy"].iloc[-1]),
        "best_val_accuracy": float(history_frame["val_accuracy"].max()),
        "target_accuracy": train_settings["target_accuracy"],
        "epochs_to_target": epochs_to_target(history_frame["val_accuracy"],
                                             train_settings["target_accuracy"]),
        "n_train": len(train), "n_val": len(val),
        "settings": {"target": key.target, "arch": key.arch, "policy": key.policy,
                     "seed": key.seed, "lr_scale": key.lr_scale, "batch_size": run.batch_size,
                     "steps_per_epoch": run.steps, "optimizer": train_settings["optimizer"],
                     "momentum": train_settings["momentum"], "schedule": run.params,
                     "cycled_momentum": run.momentum or None},
    })
    return RunResult(history_frame, lr_per_step(run, history), predictions, metrics, model)


def train_run(key, inputs, settings, checkpoint_dir, threads=1, gpus=1):
    """Train (or resume) one run and evaluate it on the test split: prepare, build or resume,
    fit, evaluate. Returns a RunResult, or None when a SIGTERM stopped the run (its
    checkpoint is kept for the retry)."""
    run = prepare(key, inputs, settings, checkpoint_dir, threads, gpus)
    with run.device.strategy.scope():
        model, history, seconds = resume(run) or (build(run), [], 0.0)
    recorder = EpochRecorder(run.checkpoint, history, seconds, run.schedule, run.epochs)
    if not fit(run, model, recorder):
        return None
    return evaluate(run, model, recorder.history)


def request_stop(recorder):
    log.warning("SIGTERM: stopping after the current batch; the last finished epoch's "
                "checkpoint stays for the retry")
    recorder.stop_requested = True


def main(snakemake):
    result = train_run(
        RunKey(snakemake.wildcards.target, snakemake.wildcards.arch,
               snakemake.wildcards.policy, int(snakemake.wildcards.seed),
               scale_of_label(snakemake.wildcards.lr_scale)),
        RunInputs(snakemake.input.split, snakemake.input.cache_images,
                  snakemake.input.cache_index, snakemake.input.get("lr_finder") or None),
        RunSettings(snakemake.params.settings, snakemake.params.model, snakemake.params.metrics,
                    snakemake.params.image_size),
        snakemake.params.checkpoint, threads=snakemake.threads, gpus=snakemake.resources.gpu)
    if result is None:
        sys.exit(EXIT_PREEMPTED)
    result.write(dict(snakemake.output.items()))
    metrics = result.metrics
    log.info("test accuracy %.4f, AUROC %.4f (%.0f%% CI %.4f-%.4f), %.1f s of training",
             metrics["accuracy"], metrics["auroc"], 100 * metrics["ci_level"],
             metrics["auroc_ci_low"], metrics["auroc_ci_high"], metrics["train_seconds"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
