"""Generated workflow results in the exact formats the stages write, without any training.

`write_fake_results` fills a `results/` folder with what the report reads: label counts
(parse_metadata), the split summary (split_summary), the image cache's data check
(build_image_cache), LR-finder results (lr_finder) and, per
target x architecture x policy x learning-rate scale x seed, a run folder as
`workflow_scripts.train` writes it (history.csv, lr.csv, predictions.parquet, metrics.json).
Scores are drawn so that a policy's `skill` sets how well it separates the classes (at a
scale other than 1 by `scale_skill`); every metric in metrics.json is computed from
the written predictions, so the report's numbers can be checked against them. The
multilabel target's runs score each of the 14 diseases.
"""

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.labels import DISEASES, LABELS, MULTILABEL, label_columns
from workflow_scripts.metrics import summarize_multilabel, summarize_predictions
from workflow_scripts.plan import scale_label
from workflow_scripts.policies import POLICIES, REGISTRY, scaled_learning_rates, schedule_params
from workflow_scripts.runs import FILES, RUN, prediction_frame, write_run

# How well each policy separates the classes (logit shift of positives over negatives): the
# tests rely on triangular being the best of the paper's policies; a policy added to the
# registry (even after this module is imported) separates as well as constant unless a test
# gives it a skill (`skill=`).
PAPER_SKILL = {"constant": 1.0, "time_decay": 1.1, "triangular": 1.6, "triangular2": 1.3,
               "exp_range": 1.2, "modified_triangular2": 1.4, "one_cycle": 1.5}
SECONDS_PER_EPOCH = {"mobilenet": 2.0, "densenet121": 5.0, "alexnet": 1.5}
SETTINGS = {"batch_size": 16, "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.01,
            "decay": 0.0005, "base_lr": None, "max_lr": None, "step_size_epochs": 2,
            "gamma": 0.99994, "reset_cycles": 3, "div_factor": 25, "final_div_factor": 10000,
            "pct_start": 0.3, "warmup_epochs": 1, "min_lr_fraction": 0.0,
            "first_cycle_epochs": 2, "cycle_mul": 2, "cycle_decay": 1.0, "cooldown_fraction": 0.2,
            "cooldown_shape": "1-sqrt"}
LR_FINDER_BOUNDS = {"max_lr": 0.03, "base_lr": 0.0075}


def run_folder(target, arch, policy, seed, results, lr_scale=1.0):
    """One run's folder, as RUN lays it out, below the results folder `results`."""
    path = RUN.format(target=target, arch=arch, policy=policy, seed=seed,
                      lr_scale=scale_label(lr_scale))
    return Path(results) / Path(path).relative_to("results")


def default_scale_skill(policy, lr_scale):
    """A policy's skill at a learning-rate scale, relative to scale 1: best at 1, falling
    with the square of log2(scale), the cyclical policies more slowly (they are said to
    depend less on the learning rate)."""
    width = 0.05 if REGISTRY[policy].bounds else 0.15
    return max(0.1, 1.0 - width * np.log2(lr_scale) ** 2)


def per_target(value, target):
    return value[target] if isinstance(value, dict) else value


def fake_test_set(target, n_images, seed=0):
    """Test images of one target: 1-3 images per patient, about half of them positive; for
    the multilabel target, each disease in about a fifth of them."""
    rng = np.random.default_rng([seed, zlib.crc32(target.encode())])
    patients = np.repeat(np.arange(n_images), rng.integers(1, 4, n_images))[:n_images]
    labels = (rng.random(n_images) < 0.5).astype(np.int8)
    labels[:2] = [0, 1]  # both classes, however small the set
    test = pd.DataFrame({
        "image_index": [f"{10_000 + p:08d}_{i:03d}.png" for i, p in enumerate(patients)],
        "patient_id": patients + 10_000, "label": labels})
    if target == MULTILABEL:
        present = (rng.random((n_images, len(DISEASES))) < 0.2).astype(np.int8)
        present[:2] = [[0], [1]]
        test = test.drop(columns="label").assign(**dict(zip(DISEASES, present.T, strict=True)))
    return test


def fake_history(rng, epochs, final_val_accuracy, speed, lrs, steps_per_epoch, seconds,
                 val_auroc_shift=0.0):
    """Per epoch: accuracies rising towards the final ones (faster with larger `speed`); the
    validation AUROC 0.05 above the validation accuracy, plus `val_auroc_shift`."""
    epoch = np.arange(1, epochs + 1)
    progress = 1 - np.exp(-3.0 * speed * epoch / epochs)
    progress = progress / progress[-1]
    val_accuracy = 0.5 + (final_val_accuracy - 0.5) * progress + rng.normal(0, 0.004, epochs)
    accuracy = np.clip(val_accuracy + 0.03, 0, 1)
    loss = 0.75 - 0.4 * progress + rng.normal(0, 0.005, epochs)
    return pd.DataFrame({
        "epoch": epoch, "loss": loss, "accuracy": accuracy, "auroc": np.clip(accuracy + 0.05, 0, 1),
        "val_loss": loss + 0.05, "val_accuracy": np.clip(val_accuracy, 0, 1),
        "val_auroc": np.clip(val_accuracy + 0.05 + val_auroc_shift, 0, 1),
        "lr": lrs[(epoch - 1) * steps_per_epoch], "seconds": seconds,
        "steps": epoch * steps_per_epoch})


def write_fake_run(folder, *, target, arch, policy, seed, test, skill, epochs, steps_per_epoch,
                   settings, gpus, bootstrap_samples, lr_scale=1.0, val_auroc_shift=0.0):
    """One run folder as train.py writes it; returns its metrics dict."""
    rng = np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in (
        target, arch, policy, scale_label(lr_scale)))])
    settings = scaled_learning_rates(settings, lr_scale)
    labels = test[list(label_columns(target))].to_numpy()
    logits = skill * (2 * labels - 1) + rng.normal(0, 1.6, labels.shape)
    scores = (1 / (1 + np.exp(-logits))).astype(np.float32)
    schedule = schedule_params(policy, settings, steps_per_epoch, epochs)
    lrs = REGISTRY[policy](**schedule)(np.arange(steps_per_epoch * epochs, dtype=np.float64))
    seconds = SECONDS_PER_EPOCH.get(arch, 2.0) * rng.uniform(0.95, 1.05, epochs)
    if target == MULTILABEL:
        test_numbers = summarize_multilabel(DISEASES, labels, scores, test["patient_id"], labels,
                                            scores, samples=bootstrap_samples, seed=seed)
    else:
        test_numbers = summarize_predictions(labels[:, 0], scores[:, 0], test["patient_id"],
                                             labels[:, 0], scores[:, 0],
                                             samples=bootstrap_samples, seed=seed)
    history = fake_history(rng, epochs, test_numbers["accuracy"], skill, lrs, steps_per_epoch,
                           seconds, val_auroc_shift)
    train_seconds = float(history["seconds"].sum())
    n_train = steps_per_epoch * settings["batch_size"]
    metrics = {
        **test_numbers,
        "epochs": epochs, "train_seconds": train_seconds,
        "images_per_second": n_train * epochs / train_seconds,
        "device_seconds": train_seconds * max(gpus, 1), "gpus": gpus,
        "device": f"{gpus} x GPU" if gpus else "CPU",
        "train_accuracy": float(history["accuracy"].iloc[-1]),
        "best_val_accuracy": float(history["val_accuracy"].max()), "target_accuracy": None,
        "epochs_to_target": None, "n_train": n_train, "n_val": n_train // 9,
        "settings": {"target": target, "arch": arch, "policy": policy, "seed": seed,
                     **({"lr_scale": lr_scale} if lr_scale != 1 else {}),
                     "batch_size": settings["batch_size"], "steps_per_epoch": steps_per_epoch,
                     "optimizer": settings["optimizer"], "momentum": settings["momentum"],
                     "schedule": schedule},
    }
    lr = pd.DataFrame({"step": np.arange(len(lrs)),
                       "epoch": np.arange(len(lrs)) // steps_per_epoch + 1, "lr": lrs,
                       "momentum": settings["momentum"]})
    predictions = prediction_frame(target, test["image_index"], test["patient_id"], labels,
                                   scores)
    write_run({name: Path(folder) / file for name, file in FILES.items()}, history=history,
              lr=lr, predictions=predictions, metrics=metrics)
    return metrics


def write_lr_finder(folder, target, arch, rule="min_loss"):
    """results/lr_finder/{target}/{arch}.csv and .json as the lr_finder stage writes them."""
    lrs = np.geomspace(1e-7, 1.0, 60)
    data_loss = 0.7 - 0.2 / (1 + np.exp(-3 * (np.log10(lrs) + 3.5))) + 2.0 * lrs ** 2
    penalty = 3.0 - 2.0 * lrs
    curve = pd.DataFrame({"step": np.arange(len(lrs)), "lr": lrs, "loss": data_loss + penalty,
                          "data_loss": data_loss, "penalty": penalty,
                          "smoothed_data_loss": pd.Series(data_loss).ewm(alpha=0.2).mean(),
                          "centred_data_loss": pd.Series(data_loss).rolling(
                              5, center=True, min_periods=1).mean()})
    best = int(np.argmin(curve["centred_data_loss"]))
    picked = {"max_lr": LR_FINDER_BOUNDS["max_lr"], "base_lr": LR_FINDER_BOUNDS["base_lr"],
              "lr": LR_FINDER_BOUNDS["max_lr"], "step": best}
    summary = {"target": target, "arch": arch, "rule": rule, "configured_rule": rule,
               "fallback_used": False, "verdict": f"{rule} passed every check", **picked,
               "suggestions": {name: {**picked, "passed": True, "problems": []}
                               for name in ("min_loss", "steepest", "valley")},
               "stopped_early": True, "stop_reason": "the smoothed data loss exceeded 4 x its "
               "best", "steps_run": len(lrs), "sweep": {"min_lr": 1e-7, "max_lr": 1.0,
                                                       "num_steps": 60, "beta": 0.98,
                                                       "stop_factor": 4}}
    folder.mkdir(parents=True, exist_ok=True)
    curve.to_csv(folder / f"{arch}.csv", index=False)
    (folder / f"{arch}.json").write_text(json.dumps(summary, indent=2))


def write_label_counts(results):
    """label_counts.csv and summary.json with Table 1's counts divided by 40."""
    counts = pd.DataFrame({"label": list(LABELS),
                           "single_label_images": [1509] + [20 * (i + 3) for i in range(14)],
                           "images": [1509] + [45 * (i + 3) for i in range(14)]})
    folder = Path(results) / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    counts.to_csv(folder / "label_counts.csv", index=False)
    (folder / "summary.json").write_text(json.dumps({"n_images": 2803, "n_patients": 800,
                                                     "n_label_sets": 60}))
    return counts


def write_cache_summary(results, split_rows, image_size):
    """results/cache/{image_size}/summary.json: every image of the splits found as a file."""
    splits = {row["target"]: row["train"] + row["val"] + row["test"] for row in split_rows}
    needed = sum(splits.values())
    summary = {"image_size": image_size, "workers": 1, "images": needed, "needed": needed,
               "found_as_files": needed, "found_in_archives": 0,
               "found_as_files_and_in_archives": 0, "archives": 0, "missing": 0,
               "unreadable": 0, "excluded": 0, "converted_from_rgba": needed // 200,
               "seconds": needed / 150, "images_per_second": 150.0,
               "splits": {target: {"needed": count, "cached": count}
                          for target, count in splits.items()}}
    folder = Path(results) / "cache" / str(image_size)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))


def write_fake_results(results, *, targets=("Effusion", "Pneumothorax"),
                       architectures=("mobilenet",), policies=POLICIES, seeds=(0, 1),
                       test_images=120, epochs=6, steps_per_epoch=8, gpus=0, skill=None,
                       settings=None, lr_finder=True, bootstrap_samples=100, image_size=64,
                       lr_scales=(1.0,), scale_skill=default_scale_skill,
                       val_auroc_shift=None):
    """Write a results folder; returns a dict with the settings per target and the test sets.

    `test_images`, `epochs` and `steps_per_epoch` may be dicts per target. With `lr_finder`
    the cyclical runs use LR-finder bounds (LR_FINDER_BOUNDS) and the finder's files are
    written; otherwise `settings` must set base_lr and max_lr. `image_size` names the cache
    whose data check is written. Each of `lr_scales` is a run per policy and seed, whose
    skill is multiplied by `scale_skill(policy, scale)`; `val_auroc_shift` maps (policy,
    scale) to a shift of its runs' validation AUROC (none by default).
    """
    results = Path(results)
    skill = {**PAPER_SKILL, **(skill or {})}
    settings = {**SETTINGS, **(settings or {})}
    run_settings = {**settings, **({k: v for k, v in LR_FINDER_BOUNDS.items()
                                    if settings[k] is None} if lr_finder else {})}
    write_label_counts(results)
    tests, split_rows = {}, []
    for target in targets:
        test = fake_test_set(target, per_target(test_images, target))
        tests[target] = test
        train = per_target(steps_per_epoch, target) * settings["batch_size"]
        positive = (test[list(label_columns(target))].to_numpy() == 1).any(axis=1)
        val, positives = max(2, train // 9), int(positive.sum())
        share = positives / len(test)
        split_rows.append({"target": target, "positives": round(share * (train + val)) + positives,
                           "negatives": round((1 - share) * (train + val)) + len(test) - positives,
                           "train": train, "val": val, "test": len(test),
                           "train_positives": round(share * train),
                           "val_positives": round(share * val), "test_positives": positives,
                           "patients": int(test["patient_id"].nunique()) + (train + val) // 2})
        for arch in architectures:
            if lr_finder:
                write_lr_finder(results / "lr_finder" / target, target, arch)
            for policy in policies:
                for lr_scale in lr_scales:
                    policy_skill = skill.get(policy, skill["constant"]) * (
                        scale_skill(policy, lr_scale) if lr_scale != 1 else 1.0)
                    for seed in seeds:
                        write_fake_run(
                            run_folder(target, arch, policy, seed, results, lr_scale),
                            target=target, arch=arch, policy=policy, seed=seed, test=test,
                            skill=policy_skill * (1.1 if arch == "densenet121" else 1.0),
                            epochs=per_target(epochs, target),
                            steps_per_epoch=per_target(steps_per_epoch, target),
                            settings=run_settings, gpus=gpus,
                            bootstrap_samples=bootstrap_samples, lr_scale=lr_scale,
                            val_auroc_shift=(val_auroc_shift or {}).get((policy, lr_scale), 0.0))
    (results / "splits").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(split_rows).to_csv(results / "splits" / "summary.csv", index=False)
    write_cache_summary(results, split_rows, image_size)
    return {"results": results, "tests": tests,
            "settings": {target: dict(settings) for target in targets}}
