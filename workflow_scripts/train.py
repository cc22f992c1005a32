"""Stage `train`: one run of one target x architecture x policy x seed.

The run trains on the target's train split, validates every epoch, and predicts the test
split with the final model. Its learning rate is `make_schedule(policy, ...)` of the
optimizer's step counter; cyclical bounds come from the config or else from the target's
LR-finder result.

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
from workflow_scripts.plan import needs_lr_finder_bounds
from workflow_scripts.policies import lr_bounds, schedule_params
from workflow_scripts.runs import HISTORY_COLUMNS, prediction_frame, write_run
from workflow_scripts.schedules import make_schedule, schedule_values
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


def lr_per_step(schedule, history, steps_in_epoch):
    """The learning rate the optimizer used at every step of the run, with its epoch."""
    total = history[-1]["steps"]
    steps = np.arange(total)
    return pd.DataFrame({"step": steps, "epoch": steps // steps_in_epoch + 1,
                         "lr": schedule_values(schedule, total)})


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


def train_run(*, split, cache_images, cache_index, checkpoint_dir, arch, policy, seed,
              settings, model_settings, metrics_settings, image_size, lr_finder=None,
              threads=1, gpus=1, target="target"):
    """Train (or resume) one run and evaluate it on the test split.

    `settings` are the train settings that decide what the run computes (see
    configuration.computation_settings); the job's `threads` and `gpus` are given apart.
    Returns a RunResult, or None when a SIGTERM stopped the run (its checkpoint is kept for
    the retry).
    """
    device = device_settings.configure(settings, threads, gpus, seed)
    settings = with_lr_finder_bounds(policy, settings, lr_finder)
    images, parts = load_target(split, cache_images, cache_index, target)
    train, val, test = parts["train"], parts["val"], parts["test"]
    batch_size, epochs = settings["batch_size"], settings["epochs"]
    steps = steps_per_epoch(train, batch_size, target)
    params = schedule_params(policy, settings, steps, epochs)
    schedule = make_schedule(policy, **params)
    # What the run computes, so that a retry with more time, memory or GPUs resumes.
    checkpoint = Checkpoint(checkpoint_dir, run_fingerprint(
        arch=arch, policy=policy, seed=seed, settings=settings, model=model_settings,
        image_size=image_size, schedule=params, data=data_fingerprint(train, val)))
    log.info("%s %s %s seed %d on %s: %d train / %d val / %d test images, %d steps per epoch, "
             "schedule %s", target, arch, policy, seed, device.description, len(train),
             len(val), len(test), steps, params)

    saved = checkpoint.load()
    with device.strategy.scope():
        if saved:
            history, seconds = saved.history, saved.seconds
            model = keras.models.load_model(saved.model_path)
            restore_random_streams(model, saved.random_streams)
            if len(history) < epochs:
                log.info("resuming after epoch %d from %s (optimizer step %d)", len(history),
                         saved.model_path, int(model.optimizer.iterations.numpy()))
            else:
                log.info("%s holds all %d epochs: evaluating only", saved.model_path, epochs)
        else:
            history, seconds = [], 0.0
            model = new_model(arch, image_size, model_settings, settings, seed, device.xla,
                              train.labels.shape[1], schedule)

    recorder = EpochRecorder(checkpoint, history, seconds, schedule, epochs)
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: request_stop(recorder))
    try:
        first_epoch = len(history)
        if first_epoch < epochs:
            model.fit(
                training_dataset(images, train, batch_size, seed, first_epoch, epochs),
                validation_data=evaluation_dataset(images, val, batch_size),
                epochs=epochs, initial_epoch=first_epoch, steps_per_epoch=steps,
                callbacks=[recorder], shuffle=False,  # the dataset is shuffled per epoch
                verbose=1 if sys.stderr.isatty() else 0,
            )
        if recorder.stop_requested:
            return None
        test_scores = predict(model, images, test, batch_size)
        val_scores = predict(model, images, val, batch_size)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)

    history_frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    predictions = prediction_frame(target, test.image_index, test.patient_id, test.labels,
                                   test_scores)
    metrics = evaluation_metrics(target, test, test_scores, val, val_scores, metrics_settings, seed)
    train_seconds = float(history_frame["seconds"].sum())
    metrics.update({
        "epochs": epochs,
        "train_seconds": train_seconds,
        "images_per_second": len(train) * epochs / max(train_seconds, 1e-9),
        "device_seconds": train_seconds * max(device.gpus, 1),
        "gpus": device.gpus,
        "device": device.description,
        "train_accuracy": float(history_frame["accuracy"].iloc[-1]),
        "best_val_accuracy": float(history_frame["val_accuracy"].max()),
        "target_accuracy": settings["target_accuracy"],
        "epochs_to_target": epochs_to_target(history_frame["val_accuracy"],
                                             settings["target_accuracy"]),
        "n_train": len(train), "n_val": len(val),
        "settings": {"target": target, "arch": arch, "policy": policy, "seed": seed,
                     "batch_size": batch_size, "steps_per_epoch": steps,
                     "optimizer": settings["optimizer"], "momentum": settings["momentum"],
                     "schedule": params},
    })
    return RunResult(history_frame, lr_per_step(schedule, history, steps), predictions, metrics,
                     model)


def request_stop(recorder):
    log.warning("SIGTERM: stopping after the current batch; the last finished epoch's "
                "checkpoint stays for the retry")
    recorder.stop_requested = True


def main(snakemake):
    lr_finder = snakemake.input.get("lr_finder") or None
    result = train_run(
        split=snakemake.input.split,
        cache_images=snakemake.input.cache_images,
        cache_index=snakemake.input.cache_index,
        checkpoint_dir=snakemake.params.checkpoint,
        arch=snakemake.wildcards.arch,
        policy=snakemake.wildcards.policy,
        seed=int(snakemake.wildcards.seed),
        settings=snakemake.params.settings,
        model_settings=snakemake.params.model,
        metrics_settings=snakemake.params.metrics,
        image_size=snakemake.params.image_size,
        lr_finder=lr_finder,
        threads=snakemake.threads,
        gpus=snakemake.resources.gpu,
        target=snakemake.wildcards.target,
    )
    if result is None:
        sys.exit(EXIT_PREEMPTED)
    result.write(dict(snakemake.output.items()))
    metrics = result.metrics
    log.info("test accuracy %.4f, AUROC %.4f (%.0f%% CI %.4f-%.4f), %.1f s of training",
             metrics["accuracy"], metrics["auroc"], 100 * metrics["ci_level"],
             metrics["auroc_ci_low"], metrics["auroc_ci_high"], metrics["train_seconds"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
