"""The LR range test ("LR finder") that sets the bounds of the cyclical policies.

The learning rate grows exponentially, one value per batch, from `min_lr` to `max_lr`:

    lr_i = min_lr * (max_lr / min_lr) ** (i / (num_steps - 1)),   i = 0 .. num_steps - 1

Each batch's training loss is smoothed by an exponential moving average with bias correction,

    average_i  = beta * average_(i-1) + (1 - beta) * loss_i,   average_(-1) = 0
    smoothed_i = average_i / (1 - beta ** (i + 1))

and the sweep stops once the smoothed loss exceeds `stop_factor` times its best value so far
(while that best is positive, as every training loss of this workflow is), or the loss is no
longer finite. The model's variables and its optimizer's state (step counter, slots,
learning rate) are restored afterwards, so the range test leaves no trace.

Three rules turn the curve into CLR bounds (`suggest`); the paper's rule is `min_loss`.
"""

import json
import math
from dataclasses import dataclass, field
from numbers import Integral, Real

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from workflow_scripts import device as device_settings
from workflow_scripts.input_pipeline import load_target, steps_per_epoch, training_dataset
from workflow_scripts.lr_plots import plot_lr_finder
from workflow_scripts.stage import InputError, log, run
from workflow_scripts.train import compile_model, make_optimizer, new_model

RULES = ("min_loss", "steepest", "valley")

# The paper (after Smith 2017): the CLR base learning rate is a quarter of its maximum.
BASE_LR_FRACTION = 0.25

CURVE_COLUMNS = ("step", "lr", "loss", "smoothed_loss")

# The rules ignore the first tenth of the sweep: there the bias-corrected average rests on a
# handful of batches and its jitter would pass for the steepest fall (as fastai skips it).
SKIP_START_FRACTION = 0.1


@dataclass
class LRFinderResult:
    """The range test's curve, the bounds each rule suggests, and why the sweep ended.

    `curve` has one row per batch run (columns step, lr, loss, smoothed_loss; the batch that
    stopped the sweep included); `suggestions` maps each rule in `RULES` to the dict that
    `suggest` returns; `sweep` records the settings the test ran with.
    """

    curve: pd.DataFrame
    suggestions: dict
    stopped_early: bool
    stop_reason: str
    sweep: dict = field(default_factory=dict)

    def to_json_dict(self, rule):
        """JSON-ready summary: the chosen rule's `max_lr`, `base_lr` on top, all rules below."""
        chosen = self.suggestions[_require_rule(rule)]
        return {
            "rule": rule,
            "max_lr": chosen["max_lr"],
            "base_lr": chosen["base_lr"],
            "lr": chosen["lr"],
            "step": chosen["step"],
            "suggestions": {name: dict(values) for name, values in self.suggestions.items()},
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
            "steps_run": len(self.curve),
            "sweep": dict(self.sweep),
        }


def _require_rule(rule):
    if rule not in RULES:
        raise InputError(f"Unknown LR finder rule {rule!r}; valid rules: {', '.join(RULES)}.")
    return rule


def suggest(curve, rule):
    """The CLR bounds that `rule` reads off an LR finder curve (a `find_lr` or saved curve).

    Only rows with a finite, positive `lr` and a finite `smoothed_loss` count, less the
    first `SKIP_START_FRACTION` of them, where the smoothed loss is still settling. The rule
    picks one learning rate `lr`; it becomes the CLR maximum and, as in the paper, the base
    is a quarter of it (`BASE_LR_FRACTION`), so every rule yields bounds on the same footing:

    - `min_loss` (the paper's rule): the LR at the smallest smoothed loss. It sits at the edge
      of divergence, the most aggressive of the three.
    - `steepest`: the LR where the smoothed loss falls fastest against log LR (the most
      negative slope across a window of a tenth of the curve centred on it); the loss is
      still falling here, a cautious maximum.
    - `valley`: the middle (in steps, hence geometrically in LR) of the longest stretch of
      falling loss, taken as the longest strictly decreasing subsequence of the smoothed loss,
      which tolerates the noise that breaks up runs of consecutive decreases.

    Returns {'max_lr', 'base_lr', 'lr', 'step'} (floats, and the step as an int).
    """
    _require_rule(rule)
    missing = [name for name in ("step", "lr", "smoothed_loss") if name not in curve.columns]
    if missing:
        raise InputError(
            f"LR finder curve lacks column(s) {', '.join(missing)}; it needs the columns "
            f"{', '.join(CURVE_COLUMNS)} that find_lr writes."
        )
    lrs = curve["lr"].to_numpy(dtype=np.float64)
    smoothed = curve["smoothed_loss"].to_numpy(dtype=np.float64)
    usable = np.isfinite(lrs) & (lrs > 0) & np.isfinite(smoothed)
    if usable.sum() < 3:
        raise InputError(
            f"LR finder curve has {int(usable.sum())} usable row(s) (finite lr > 0 and finite "
            "smoothed_loss); at least 3 are needed. Sweep more steps or lower min_lr."
        )
    steps = curve["step"].to_numpy()[usable]
    lrs, smoothed = lrs[usable], smoothed[usable]
    skip = int(len(lrs) * SKIP_START_FRACTION)
    steps, lrs, smoothed = steps[skip:], lrs[skip:], smoothed[skip:]
    if rule == "min_loss":
        index = int(np.argmin(smoothed))
    elif rule == "steepest":
        index = _steepest_fall(smoothed, np.log(lrs))
    else:
        start, end = _longest_decreasing_stretch(smoothed)
        index = (start + end) // 2
    picked = float(lrs[index])
    return {
        "max_lr": picked,
        "base_lr": picked * BASE_LR_FRACTION,
        "lr": picked,
        "step": int(steps[index]),
    }


def _steepest_fall(values, log_lrs):
    """Index of the most negative slope d(values)/d(log_lrs), over a window of +-w rows.

    w is a twentieth of the curve (at least 1): adjacent differences of a smoothed loss
    still jitter by more than the real trend between two neighbouring learning rates.
    """
    half_window = max(1, len(values) // 20)
    centres = np.arange(half_window, len(values) - half_window)
    rise = values[centres + half_window] - values[centres - half_window]
    run = log_lrs[centres + half_window] - log_lrs[centres - half_window]
    return int(centres[np.argmin(rise / run)])


def _longest_decreasing_stretch(values):
    """First and last index of a longest strictly decreasing subsequence (patience sorting)."""
    negated = -np.asarray(values, dtype=np.float64)
    tail_values = []  # tail_values[k]: smallest tail of an increasing run of length k + 1
    tail_indices = []
    previous = np.full(len(negated), -1)
    for index, value in enumerate(negated):
        length = int(np.searchsorted(tail_values, value, side="left"))
        if length == len(tail_values):
            tail_values.append(value)
            tail_indices.append(index)
        else:
            tail_values[length] = value
            tail_indices[length] = index
        previous[index] = tail_indices[length - 1] if length > 0 else -1
    end = tail_indices[-1]
    start = end
    while previous[start] >= 0:
        start = previous[start]
    return int(start), int(end)


class _RangeTestCallback(keras.callbacks.Callback):
    """Sets each batch's learning rate, records its loss, and stops on divergence."""

    def __init__(self, learning_rates, beta, stop_factor):
        super().__init__()
        self.learning_rates = learning_rates
        self.beta = beta
        self.stop_factor = stop_factor
        self.losses = []
        self.smoothed_losses = []
        self.stop_reason = None
        self._average = 0.0
        self._best = math.inf

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.learning_rates[len(self.losses)]
        # Keras logs the running mean of the loss since the epoch began; emptying the loss
        # tracker before every batch makes the logged value that batch's own loss.
        self.model.reset_metrics()

    def on_train_batch_end(self, batch, logs=None):
        step = len(self.losses)
        loss = float(logs["loss"])
        self._average = self.beta * self._average + (1.0 - self.beta) * loss
        smoothed = self._average / (1.0 - self.beta ** (step + 1))
        self.losses.append(loss)
        self.smoothed_losses.append(smoothed)
        lr = self.learning_rates[step]
        if not (math.isfinite(loss) and math.isfinite(smoothed)):
            self.stop_reason = f"the loss became {loss} at step {step} (lr {lr:.3g})"
        elif self._best > 0 and smoothed > self.stop_factor * self._best:
            self.stop_reason = (
                f"the smoothed loss {smoothed:.4g} exceeded {self.stop_factor:g} x its best "
                f"{self._best:.4g} at step {step} (lr {lr:.3g})"
            )
        self._best = min(self._best, smoothed)
        if self.stop_reason is not None:
            self.model.stop_training = True


def _require_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}.")
    if value <= 0:
        raise InputError(f"{name} must be positive, got {value!r}.")
    return float(value)


def _batches_per_epoch(dataset):
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "The dataset is infinite, so an LR finder sweep in epochs has no length; pass "
            "num_steps instead."
        )
    if cardinality == tf.data.UNKNOWN_CARDINALITY:
        # One pass to count; pipelines built from a cache normally know their length.
        cardinality = int(dataset.reduce(np.int64(0), lambda count, _: count + 1))
    if cardinality == 0:
        raise InputError("The dataset yields no batches; the LR finder needs training data.")
    return cardinality


def _sweep_length(dataset, num_steps, epochs):
    if num_steps is not None and epochs is not None:
        raise InputError(
            f"Give either num_steps or epochs, not both (got num_steps={num_steps!r}, "
            f"epochs={epochs!r})."
        )
    if num_steps is not None:
        if isinstance(num_steps, bool) or not isinstance(num_steps, Integral) or num_steps < 3:
            raise InputError(f"num_steps must be an integer >= 3, got {num_steps!r}.")
        return int(num_steps)
    epochs = 1.0 if epochs is None else _require_positive("epochs", epochs)
    return max(3, math.floor(epochs * _batches_per_epoch(dataset) + 0.5))


def find_lr(
    model,
    dataset,
    *,
    min_lr=1e-7,
    max_lr=1.0,
    num_steps=None,
    epochs=None,
    beta=0.98,
    stop_factor=4.0,
):
    """Run the LR range test on a compiled, built Keras model and a `tf.data` dataset.

    The sweep lasts `num_steps` batches, or `epochs` epochs of `dataset` (one epoch when
    neither is given); a dataset shorter than that is repeated. `model` must be compiled
    with an optimizer whose learning rate is a settable value (not a schedule) and with
    `steps_per_execution=1`; `jit_compile` may be on or off. All model and optimizer
    variables are restored when the sweep ends, also when it fails.
    """
    min_lr = _require_positive("min_lr", min_lr)
    max_lr = _require_positive("max_lr", max_lr)
    if min_lr >= max_lr:
        raise InputError(
            f"min_lr must be below max_lr, got min_lr={min_lr!r} and max_lr={max_lr!r}."
        )
    if isinstance(beta, bool) or not isinstance(beta, Real) or not 0 <= beta < 1:
        raise InputError(f"beta must lie in [0, 1), got {beta!r}.")
    stop_factor = _require_positive("stop_factor", stop_factor)
    if stop_factor <= 1:
        raise InputError(f"stop_factor must exceed 1, got {stop_factor!r}.")
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}.")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("The model is not compiled; compile it with an optimizer first.")
    if not model.built:
        raise ValueError(
            "The model is not built, so its initial weights cannot be restored after the "
            "sweep; give it an Input or call it on a batch first."
        )
    if getattr(model, "steps_per_execution", 1) != 1:
        raise ValueError(
            f"The LR finder sets the learning rate every batch and needs "
            f"steps_per_execution=1, got {model.steps_per_execution!r}; recompile the model."
        )
    if int(dataset.cardinality()) == 0:
        raise InputError("The dataset yields no batches; the LR finder needs training data.")
    num_steps = _sweep_length(dataset, num_steps, epochs)
    learning_rates = min_lr * (max_lr / min_lr) ** (np.arange(num_steps) / (num_steps - 1))

    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    model_state = [variable.numpy() for variable in model.variables]
    optimizer_state = [variable.numpy() for variable in optimizer.variables]
    range_test = _RangeTestCallback(learning_rates.tolist(), float(beta), stop_factor)
    try:
        try:
            optimizer.learning_rate = float(learning_rates[0])
        except (TypeError, AttributeError) as error:
            raise ValueError(
                "The optimizer's learning rate cannot be set (it was compiled with a schedule); "
                "compile the model with a float learning_rate for the LR finder."
            ) from error
        model.fit(
            dataset.repeat(),
            steps_per_epoch=num_steps,
            epochs=1,
            verbose=0,
            shuffle=False,
            callbacks=[range_test],
        )
    finally:
        for variable, value in zip(model.variables, model_state, strict=True):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_state, strict=True):
            variable.assign(value)
        model.reset_metrics()

    steps_run = len(range_test.losses)
    curve = pd.DataFrame(
        {
            "step": np.arange(steps_run, dtype=np.int64),
            "lr": learning_rates[:steps_run],
            "loss": np.asarray(range_test.losses, dtype=np.float64),
            "smoothed_loss": np.asarray(range_test.smoothed_losses, dtype=np.float64),
        }
    )
    stopped_early = range_test.stop_reason is not None
    stop_reason = range_test.stop_reason or f"all {num_steps} steps ran, up to lr {max_lr:g}"
    try:
        suggestions = {rule: suggest(curve, rule) for rule in RULES}
    except ValueError as error:
        raise InputError(
            f"The LR range test ran {steps_run} step(s) ({stop_reason}); {error}"
        ) from error
    return LRFinderResult(
        curve=curve,
        suggestions=suggestions,
        stopped_early=stopped_early,
        stop_reason=stop_reason,
        sweep={
            "min_lr": min_lr,
            "max_lr": max_lr,
            "num_steps": num_steps,
            "beta": float(beta),
            "stop_factor": stop_factor,
        },
    )


def run_range_test(*, split, cache_images, cache_index, arch, settings, finder, model_settings,
                   image_size, threads=1, target="target", seed=0):
    """The LR range test of one target x architecture on its training split.

    The model, optimizer and augmented input are the ones training uses; the learning rate
    is swept instead of scheduled.
    """
    device = device_settings.configure(settings, threads, seed)
    images, parts = load_target(split, cache_images, cache_index, target)
    train = parts["train"]
    with device.strategy.scope():
        model = new_model(arch, image_size, model_settings, settings, seed, device.xla)
        compile_model(model, make_optimizer(settings, float(finder["min_lr"])), device.xla)
    steps = steps_per_epoch(train, settings["batch_size"])
    num_steps = max(3, round(finder["epochs"] * steps))
    dataset = training_dataset(images, train, settings["batch_size"], seed, 0,
                               math.ceil(num_steps / steps))
    return find_lr(model, dataset, min_lr=finder["min_lr"], max_lr=finder["max_lr"],
                   num_steps=num_steps, beta=finder["beta"], stop_factor=finder["stop_factor"])


def main(snakemake):
    target, arch = snakemake.wildcards.target, snakemake.wildcards.arch
    finder = snakemake.params.finder
    result = run_range_test(
        split=snakemake.input.split, cache_images=snakemake.input.cache_images,
        cache_index=snakemake.input.cache_index, arch=arch,
        settings={**snakemake.params.settings, "gpus": snakemake.resources.gpu},
        finder=finder, model_settings=snakemake.params.model,
        image_size=snakemake.params.image_size, threads=snakemake.threads, target=target)
    summary = {"target": target, "arch": arch, **result.to_json_dict(finder["rule"])}
    result.curve.to_csv(snakemake.output.curve, index=False)
    plot_lr_finder(result.curve, summary, snakemake.output.plot,
                   title=f"LR range test: {target}, {arch} ({finder['rule']} rule)")
    with open(snakemake.output.bounds, "w") as handle:
        json.dump(summary, handle, indent=2)
    log.info("%s %s: %s; %s rule -> max_lr %.3g, base_lr %.3g", target, arch,
             result.stop_reason, finder["rule"], summary["max_lr"], summary["base_lr"])


if __name__ == "__main__":
    run(snakemake, main)  # noqa: F821 - `snakemake` is injected by the rule's script directive
