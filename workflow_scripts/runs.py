"""A training run's record: where it lives, its files and their columns, written and read.

One run is one target x architecture x policy x learning-rate scale x seed. Its folder
(`RUN`) holds `FILES`: the history (one row per epoch), the learning rate of every optimizer
step, the test predictions (`prediction_columns`: a label and a score per output of the
model) and the metrics, plus the model where `train.save_model` asks for it. The train stage
writes a run through `write_run`, the rules name its paths from `RUN` and `FILES`, and the
report reads it through the readers below, which check what they read and name the file and
the fix when it is damaged. Its checkpoint, outside the declared outputs, mirrors the folder under
`CHECKPOINTS_ROOT`.
"""

import json
import math
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from workflow_scripts.labels import label_columns
from workflow_scripts.stage import InputError, atomic_path

# A run's wildcards as its folder, log and benchmark file name them; `lr_scale` is the
# learning-rate scale's label (`plan.scale_label`), empty at scale 1.
RUN_KEY = "{target}/{arch}/{policy}{lr_scale}/seed{seed}"
RUN = f"results/runs/{RUN_KEY}"
RUNS_ROOT = RUN.split("/{")[0]
CHECKPOINTS_ROOT = "results/checkpoints"
FILES = {"history": "history.csv", "lr": "lr.csv", "predictions": "predictions.parquet",
         "metrics": "metrics.json"}
MODEL_FILE = "model.keras"

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "auroc", "val_loss", "val_accuracy",
                   "val_auroc", "lr", "seconds", "steps")
LR_COLUMNS = ("step", "epoch", "lr", "momentum")
IMAGE_COLUMNS = ("image_index", "patient_id")
# The metrics.json numbers the report reads, and what its `settings` record: which run it is
# and how it was trained.
METRIC_NUMBERS = ("accuracy", "sensitivity", "specificity", "f1", "auroc", "auroc_ci_low",
                  "auroc_ci_high", "epochs", "train_seconds", "images_per_second",
                  "device_seconds", "gpus", "train_accuracy", "best_val_accuracy", "n_train",
                  "n_val", "n_test")
RUN_KEYS = ("target", "arch", "policy", "seed")  # and lr_scale, see `run_key`
SETTING_KEYS = ("batch_size", "steps_per_epoch", "optimizer", "momentum", "schedule")


def score_column(label_column):
    """The predictions' column holding the scores of one label column."""
    return "score" if label_column == "label" else f"score_{label_column}"


def prediction_columns(target):
    """The columns of a target's predictions.parquet: image_index, patient_id, then its label
    columns (`labels.label_columns`: `label` for a binary target, the 14 diseases for
    multilabel) and the score of each (`score`; `score_<disease>`)."""
    labels = label_columns(target)
    return (*IMAGE_COLUMNS, *labels, *map(score_column, labels))


def prediction_frame(target, image_index, patient_id, labels, scores):
    """A run's test predictions as written: `labels` and `scores` hold one column per output
    of the target's model (`labels.label_columns`)."""
    columns = label_columns(target)
    return pd.DataFrame({
        "image_index": image_index, "patient_id": patient_id,
        **{column: np.asarray(labels)[:, i].astype(np.int8) for i, column in enumerate(columns)},
        **{score_column(column): np.asarray(scores)[:, i].astype(np.float32)
           for i, column in enumerate(columns)}})


def output_files(save_model):
    """The rule's outputs: name -> path pattern (with RUN's wildcards)."""
    files = {name: f"{RUN}/{file}" for name, file in FILES.items()}
    if save_model:
        files["model"] = f"{RUN}/{MODEL_FILE}"
    return files


def checkpoint_folder(run_folder):
    """A run's folder (or the RUN pattern) -> the folder of its checkpoint."""
    return str(Path(CHECKPOINTS_ROOT) / Path(run_folder).relative_to(RUNS_ROOT))


def write_run(paths, *, history, lr, predictions, metrics, model=None):
    """Write a run's files to `paths` (name -> path, as `output_files`), each through a
    temporary name, metrics.json last: a run with metrics is complete."""
    if model is not None:
        with atomic_path(paths["model"]) as temporary:
            model.save(temporary)
    with atomic_path(paths["history"]) as temporary:
        history.to_csv(temporary, index=False, columns=list(HISTORY_COLUMNS))
    with atomic_path(paths["lr"]) as temporary:
        lr.to_csv(temporary, index=False, columns=list(LR_COLUMNS))
    with atomic_path(paths["predictions"]) as temporary:
        predictions.to_parquet(temporary, index=False)
    with atomic_path(paths["metrics"]) as temporary:
        Path(temporary).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")


# --- reading, with checks: a report over thousands of runs names the damaged file ----------

def read_metrics(path):
    """metrics.json of one run, checked for the keys the report reads."""
    try:
        metrics = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable JSON file ({error}). Delete the run's folder "
                         "and rerun its training.") from error
    if not isinstance(metrics, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(metrics).__name__}. Delete "
                         "the run's folder and rerun its training.")
    settings = metrics.get("settings")
    absent = [key for key in (*METRIC_NUMBERS, "device", "settings") if key not in metrics]
    if isinstance(settings, dict):
        absent += [f"settings.{key}" for key in (*RUN_KEYS, *SETTING_KEYS)
                   if key not in settings]
        if "schedule" in settings and not isinstance(settings["schedule"], dict):
            absent.append("settings.schedule (an object)")
    elif "settings" not in absent:
        absent.append("settings (an object)")
    not_numbers = [key for key in METRIC_NUMBERS if key in metrics and (
        isinstance(metrics[key], bool) or not isinstance(metrics[key], Real)
        or not math.isfinite(metrics[key]))]
    if absent or not_numbers:
        problems = ([f"lacks {', '.join(absent)}"] if absent else []) + (
            [f"has non-numeric {', '.join(not_numbers)}"] if not_numbers else [])
        raise InputError(f"{path}: malformed run metrics: {'; '.join(problems)}. It was written "
                         "by another version of the train stage or damaged; delete the run's "
                         "folder and rerun its training.")
    return metrics


def run_key(metrics):
    """(target, arch, policy, seed, lr_scale) of a run's metrics (`read_metrics`); a run
    written before learning-rate scales existed ran at the study's own rates, scale 1."""
    settings = metrics["settings"]
    return (settings["target"], settings["arch"], settings["policy"], int(settings["seed"]),
            float(settings.get("lr_scale", 1.0)))


def unreadable(path, error):
    return InputError(f"{path}: unreadable ({error}). Delete the run's folder and rerun its "
                      "training.")


def require_columns(path, table, columns):
    """InputError unless the Arrow `table` has rows and every one of `columns`."""
    absent = [column for column in columns if column not in table.column_names]
    if table.num_rows == 0 or absent:
        problem = "is empty" if table.num_rows == 0 else f"lacks column(s) {', '.join(absent)}"
        raise InputError(f"{path}: the run's file {problem}. The run was interrupted or written "
                         "by another version; delete the run's folder and rerun its training.")


def read_numeric_csv(path, columns):
    """The `columns` of a CSV file as float64 arrays (empty cells and nan as NaN)."""
    try:
        table = pa_csv.read_csv(path)
    except pa.ArrowInvalid as error:
        if "Empty CSV file" not in str(error):
            raise unreadable(path, error) from error
        table = pa.table({})
    except OSError as error:
        raise unreadable(path, error) from error
    require_columns(path, table, columns)
    arrays = {}
    for column in columns:
        values = table.column(column)
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
                or pa.types.is_null(values.type)):
            raise InputError(f"{path}: column {column!r} holds non-numbers ({values.type}). "
                             "Delete the run's folder and rerun its training.")
        arrays[column] = values.to_numpy().astype(np.float64)
    return arrays


def read_history(path):
    return read_numeric_csv(path, HISTORY_COLUMNS)


def read_lr(path):
    return read_numeric_csv(path, ("step", "lr"))


def read_predictions(path, target):
    """The test predictions of a run of `target` (`prediction_columns`), as an Arrow table."""
    columns = prediction_columns(target)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException, ValueError) as error:
        raise unreadable(path, error) from error
    require_columns(path, table, columns)
    return table.select(list(columns))
