"""Stage `lr_finder`: the LR range test that sets the bounds of the cyclical policies.

The learning rate grows exponentially, one value per batch, from `min_lr` to `max_lr`:

    lr_i = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1)),   i = 0 .. num_steps - 1

Every batch's logged loss is recorded split into the data loss (the cross-entropy, from a
metric compiled for the purpose) and the regularization penalty (the rest). The data loss
is smoothed online by an exponential moving average with bias correction,

    average_i  = beta * average_(i-1) + (1 - beta) * data_loss_i,   average_(-1) = 0
    smoothed_i = average_i / (1 - beta ** (i + 1))

and the sweep stops once the smoothed data loss exceeds `stop_factor` times its best value so
far, or the loss is no longer finite: the sweep has diverged. The model's variables and its
optimizer's state (step counter, slots, learning rate) are restored afterwards, so the range
test leaves no trace.

The bounds are then read off the data loss and checked (`lr_bounds`); a curve from which no
rule gives usable bounds stops the job with the reasons, and keeps the curve and its figure
next to the job's log for inspection.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from scipy.special import xlogy

from workflow_scripts import device as device_settings
from workflow_scripts import lr_bounds
from workflow_scripts.input_pipeline import load_target, steps_per_epoch, training_dataset
from workflow_scripts.models import nested_layers, new_model
from workflow_scripts.report_figures import lr_finder as lr_finder_figure
from workflow_scripts.stage import InputError, log, run

CURVE_COLUMNS = ("step", "lr", "loss", "data_loss", "penalty", "smoothed_data_loss")
# The name of the compiled metric that measures the data loss alone.
DATA_LOSS = "data_loss"


@dataclass
class LRFinderResult:
    """The range test's curve and why the sweep ended.

    `curve` has one row per batch run (columns CURVE_COLUMNS; the batch that stopped the
    sweep included); `stopped_early` is True when the sweep diverged before its last step;
    `sweep` records the settings the test ran with; `chance_loss`, where known, is the data
    loss of always predicting the training split's share of positives (of each output's).
    """

    curve: pd.DataFrame
    stopped_early: bool
    stop_reason: str
    sweep: dict = field(default_factory=dict)
    chance_loss: float | None = None  # the data loss of a model that has learned nothing


def has_penalty(model):
    """Whether any layer adds a regularization penalty to the model's loss."""
    if any(variable.regularizer is not None for variable in model.trainable_weights):
        return True
    return any(getattr(layer, "activity_regularizer", None) is not None
               for layer in nested_layers(model))


class _RangeTestCallback(keras.callbacks.Callback):
    """Sets each batch's learning rate, records its losses, and stops on divergence."""

    def __init__(self, learning_rates, beta, stop_factor, needs_data_loss):
        super().__init__()
        self.learning_rates = learning_rates
        self.needs_data_loss = needs_data_loss
        self.beta = beta
        self.stop_factor = stop_factor
        self.rows = []
        self.stop_reason = None
        self._average = 0.0
        self._best = math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rates[len(self.rows)]
        # Keras logs the running mean of each metric since the epoch began; emptying them
        # before every batch makes the logged values that batch's own.
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.rows)
        loss = float(logs["loss"])
        if DATA_LOSS not in logs and self.needs_data_loss:
            raise ValueError(
                f"The model adds a regularization penalty to its loss but logs no metric named "
                f"{DATA_LOSS!r}; the range test must read the data loss alone. Compile it with "
                "e.g. keras.metrics.BinaryCrossentropy(name='data_loss').")
        # Without a penalty the loss is the data loss.
        data_loss = float(logs.get(DATA_LOSS, loss))
        self._average = self.beta * self._average + (1.0 - self.beta) * data_loss
        smoothed = self._average / (1.0 - self.beta ** (step + 1))
        lr = self.learning_rates[step]
        self.rows.append((step, lr, loss, data_loss, loss - data_loss, smoothed))
        if not (math.isfinite(loss) and math.isfinite(smoothed)):
            self.stop_reason = f"the loss became {loss} at step {step} (lr {lr:.3g})"
        elif self._best > 0 and smoothed > self.stop_factor * self._best:
            self.stop_reason = (
                f"the smoothed data loss {smoothed:.4g} exceeded {self.stop_factor:g} x its "
                f"best {self._best:.4g} at step {step} (lr {lr:.3g})")
        self._best = min(self._best, smoothed)
        if self.stop_reason is not None:
            self.model.stop_training = True


def find_lr(model, dataset, *, num_steps, min_lr=1e-7, max_lr=1.0, beta=0.98, stop_factor=4.0):
    """Run the LR range test for `num_steps` batches on a compiled, built Keras model.

    A model with regularization penalties must be compiled with a metric named `data_loss`
    that measures its loss function alone (`compile_model(..., data_loss=True)`), with a
    float learning rate (not a schedule) and `steps_per_execution` 1; `jit_compile` may be
    on or off. A dataset shorter than the sweep is repeated. All model and optimizer variables
    are restored when the sweep ends, also when it fails.
    """
    if min_lr >= max_lr:
        raise InputError(
            f"min_lr must be below max_lr, got min_lr={min_lr!r} and max_lr={max_lr!r}.")
    optimizer = model.optimizer
    learning_rates = min_lr * (max_lr / min_lr) ** (np.arange(num_steps) / (num_steps - 1))

    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    model_state = [variable.numpy() for variable in model.variables]
    optimizer_state = [variable.numpy() for variable in optimizer.variables]
    range_test = _RangeTestCallback(learning_rates.tolist(), float(beta), stop_factor,
                                    needs_data_loss=has_penalty(model))
    try:
        optimizer.learning_rate = float(learning_rates[0])
        model.fit(dataset.repeat(), steps_per_epoch=num_steps, epochs=1, verbose=0,
                  shuffle=False, callbacks=[range_test])
    finally:
        for variable, value in zip(model.variables, model_state, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_state, strict=True):
            variable.assign(value)
        model.reset_metrics()

    curve = pd.DataFrame(range_test.rows, columns=list(CURVE_COLUMNS)).astype(
        {"step": np.int64})
    stopped_early = range_test.stop_reason is not None
    stop_reason = range_test.stop_reason or f"all {num_steps} steps ran, up to lr {max_lr:g}"
    return LRFinderResult(
        curve=curve, stopped_early=stopped_early, stop_reason=stop_reason,
        sweep={"min_lr": min_lr, "max_lr": max_lr, "num_steps": int(num_steps),
               "beta": float(beta), "stop_factor": stop_factor})


def run_range_test(*, split, cache_images, cache_index, arch, settings, finder, model_settings,
                   image_size, threads=1, gpus=1, target="target", seed=0):
    """The LR range test of one target x architecture on its training split.

    The model, optimizer and augmented input are the ones training uses; the learning rate
    is swept instead of scheduled.
    """
    device = device_settings.configure(settings, threads, gpus, seed)
    images, parts = load_target(split, cache_images, cache_index, target)
    train = parts["train"]
    with device.strategy.scope():
        model = new_model(arch, image_size, model_settings, settings, seed, device.xla,
                          train.labels.shape[1], float(finder["min_lr"]), data_loss=True)
    steps = steps_per_epoch(train, settings["batch_size"], target)
    num_steps = max(3, round(finder["epochs"] * steps))
    dataset = training_dataset(images, train, settings["batch_size"], seed, 0,
                               math.ceil(num_steps / steps))
    result = find_lr(model, dataset, min_lr=finder["min_lr"], max_lr=finder["max_lr"],
                     num_steps=num_steps, beta=finder["beta"], stop_factor=finder["stop_factor"])
    result.chance_loss = chance_loss(train.labels)
    return result


def chance_loss(labels):
    """The data loss of always predicting each output's share of positives: the mean over
    outputs (the loss averages over them) of that share's binary entropy."""
    share = labels.mean(axis=0, dtype=np.float64)
    return float(np.mean(-(xlogy(share, share) + xlogy(1 - share, 1 - share))))


def summarize(result, finder, checks):
    """(curve with the smoothed data loss the rules read, JSON summary, BoundsChoice or None)."""
    curve = result.curve.assign(
        centred_data_loss=lr_bounds.smoothed_data_loss(result.curve, checks.smoothing_decades))
    picks = lr_bounds.checked_picks(curve, result.stopped_early, checks, result.chance_loss)
    choice = lr_bounds.choose_bounds(picks, finder["rule"], finder["fallback"])
    summary = (choice.as_dict() if choice else {
        "rule": None, "configured_rule": finder["rule"], "fallback_used": False,
        "max_lr": None, "base_lr": None, "lr": None, "step": None,
        "verdict": "no usable bounds: " + lr_bounds.unusable_reasons(
            picks, finder["rule"], finder["fallback"]),
        "suggestions": {rule: found.as_dict() for rule, found in picks.items()}})
    summary.update({"stopped_early": result.stopped_early, "stop_reason": result.stop_reason,
                    "steps_run": len(curve), "chance_loss": result.chance_loss,
                    "sweep": dict(result.sweep),
                    "check": {**vars(checks), "fallback": finder["fallback"]}})
    return curve, summary, choice


def write_curve_and_figure(curve, summary, target, arch, curve_path, figure_path):
    curve.to_csv(curve_path, index=False)
    Path(figure_path).write_bytes(lr_finder_figure(target, {arch: (curve, summary)}, [arch]))


def main(snakemake):
    target, arch = snakemake.wildcards.target, snakemake.wildcards.arch
    finder = snakemake.params.finder
    checks = lr_bounds.CheckSettings.from_config(finder)
    result = run_range_test(
        split=snakemake.input.split, cache_images=snakemake.input.cache_images,
        cache_index=snakemake.input.cache_index, arch=arch, settings=snakemake.params.settings,
        finder=finder, model_settings=snakemake.params.model,
        image_size=snakemake.params.image_size, threads=snakemake.threads,
        gpus=snakemake.resources.gpu, target=target)
    curve, summary, choice = summarize(result, finder, checks)
    summary = {"target": target, "arch": arch, **summary}
    log.info("%s %s: %s", target, arch, result.stop_reason)
    if choice is None and snakemake.params.bounds_needed:
        # Snakemake deletes a failed job's outputs, not its logs: the evidence stays there.
        write_curve_and_figure(curve, summary, target, arch, snakemake.log.curve,
                               snakemake.log.figure)
        raise InputError(
            f"LR range test of {target}, {arch}: {summary['verdict']}. The curve is in "
            f"{snakemake.log.curve} (figure: {snakemake.log.figure}). Fixes: sweep longer "
            f"(lr_finder.epochs, now {finder['epochs']:g}) or over another range "
            f"(lr_finder.min_lr/max_lr, now {finder['min_lr']:g} to {finder['max_lr']:g}), "
            f"or set the bounds yourself: train.base_lr and train.max_lr (for this target "
            f"alone under overrides.{target}.train), which skips the LR finder.")
    write_curve_and_figure(curve, summary, target, arch, snakemake.output.curve,
                           snakemake.output.plot)
    with open(snakemake.output.bounds, "w") as handle:
        json.dump(summary, handle, indent=2)
    if choice is None:
        log.warning("%s %s: %s; no run takes its bounds from this test (the config sets "
                    "them), so nothing stops", target, arch, summary["verdict"])
    else:
        log.info("%s %s: %s -> max_lr %.3g, base_lr %.3g", target, arch, summary["verdict"],
                 summary["max_lr"], summary["base_lr"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
