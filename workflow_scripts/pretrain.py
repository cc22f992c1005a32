"""Stage `pretrain`: a backbone pretrained on other labels and other patients, for the targets to
fine-tune from, as the real study fine-tunes from ImageNet.

ImageNet weights are features learned on other images for other labels; a network that starts
from them learns a chest X-ray target within a few hundred steps, which is what makes a range
test readable. The demo has no such weights for its small images, so it makes the same kind
of start from its own data: a multi-label network learns the diseases that are no target
(`pretrain.diseases`) on the images of patients whom no target uses for validation or test,
and the weights of its backbone are written for `model.weights` to name.

`pretraining_split` keeps those images (train and val by patient, for the log and the check
that pretraining learned); `pretrain_backbone` trains on them and writes the backbone's
weights and a summary. No image of a target's val or test split, and no other image of their
patients, is seen: the split is checked for it before it is written.
"""

import json
import time

import keras
import numpy as np
import pandas as pd

from workflow_scripts import device as device_settings
from workflow_scripts.image_cache import load_cache
from workflow_scripts.input_pipeline import (
    SplitData,
    evaluation_dataset,
    steps_per_epoch,
    training_dataset,
)
from workflow_scripts.labels import DISEASES, NO_FINDING
from workflow_scripts.models import backbone_of, build_model, compile_model
from workflow_scripts.stage import InputError, log, run

HELD_OUT_SPLITS = ("val", "test")


def pretraining_diseases(targets, configured=None):
    """The labels pretraining learns: `configured`, or every disease that is no target."""
    diseases = list(configured) if configured else [d for d in DISEASES if d not in targets]
    unknown = [d for d in diseases if d not in DISEASES]
    if unknown:
        raise InputError(f"pretrain.diseases: {', '.join(unknown)} not among the 14 diseases "
                         f"({', '.join(DISEASES)}).")
    shared = [d for d in diseases if d in targets]
    if shared:
        log.warning("pretrain.diseases includes the target(s) %s: the backbone learns them "
                    "before fine-tuning (on other patients), unlike an ImageNet start",
                    ", ".join(shared))
    if not diseases:
        raise InputError("pretrain.diseases: every disease is a target, so none is left to "
                         "pretrain on; list the diseases to pretrain on.")
    return diseases


def held_out_patients(target_splits):
    """Patients with an image in any target's val or test split."""
    return set().union(*(frame.loc[frame["split"].isin(HELD_OUT_SPLITS), "patient_id"]
                         for frame in target_splits.values()))


def pretraining_split(labels, target_splits, diseases, val_fraction, seed):
    """image_index, patient_id, one 0/1 column per pretraining disease, and split (train or
    val, by patient) of every image whose patient no target holds out."""
    held_out = held_out_patients(target_splits)
    pool = labels[~labels["patient_id"].isin(held_out)]
    if pool.empty:
        raise InputError(f"pretraining: all {labels['patient_id'].nunique()} patients are in "
                         "some target's val or test split; use more data or fewer targets.")
    patients = np.unique(pool["patient_id"].to_numpy())
    rng = np.random.default_rng(seed)
    val_patients = rng.permutation(patients)[:max(1, round(val_fraction * len(patients)))]
    split = pd.DataFrame({
        "image_index": pool["image_index"].to_numpy(),
        "patient_id": pool["patient_id"].to_numpy(),
        **{disease: pool[disease].to_numpy().astype(np.int8) for disease in diseases},
        "split": np.where(pool["patient_id"].isin(val_patients), "val", "train"),
    })
    check_disjoint(split, target_splits)
    return split.astype({"split": "string"}).reset_index(drop=True)


def check_disjoint(split, target_splits):
    """Stop if pretraining would see an image of a target's val or test split."""
    for target, frame in target_splits.items():
        held_out = frame.loc[frame["split"].isin(HELD_OUT_SPLITS), "image_index"]
        seen = np.intersect1d(split["image_index"], held_out)
        if len(seen):
            raise RuntimeError(f"pretraining split holds {len(seen)} val/test images of "
                               f"{target} (e.g. {seen[0]})")


def load_pretraining(split_path, cache_images, cache_index, diseases):
    """(memory-mapped images, {train, val: SplitData}) of the pretraining split."""
    images, cache_rows = load_cache(cache_images, cache_index)
    split = pd.read_parquet(split_path)
    split = split[split["image_index"].isin(cache_rows.index)]
    parts = {}
    for name in ("train", "val"):
        part = split[split["split"] == name]
        parts[name] = SplitData(rows=cache_rows.loc[part["image_index"]].to_numpy(np.int64),
                                labels=part[diseases].to_numpy(np.float32),
                                image_index=part["image_index"].to_numpy(str),
                                patient_id=part["patient_id"].to_numpy(np.int64))
    return images, parts


def pretrain(arch, image_size, model_settings, settings, diseases, images, train, val,
             threads=1):
    """Train the multi-label network; returns (model, history rows)."""
    device = device_settings.configure(
        {"mixed_precision": False, "xla": False, "deterministic": True}, threads, 1,
        settings["seed"])
    batch_size, epochs = settings["batch_size"], settings["epochs"]
    steps = steps_per_epoch(train, batch_size, "pretraining")
    model = build_model(arch, image_size, head="simple", dropout=model_settings["dropout"],
                        mobilenet_alpha=model_settings["mobilenet_alpha"],
                        batch_norm_momentum=model_settings["batch_norm_momentum"],
                        seed=settings["seed"], outputs=len(diseases))
    # Cosine decay to zero: a short pretraining ends converged rather than mid-stride.
    schedule = keras.optimizers.schedules.CosineDecay(settings["learning_rate"], steps * epochs)
    compile_model(model, keras.optimizers.SGD(schedule, momentum=settings["momentum"]),
                  jit_compile=False)
    log.info("pretraining %s on %s: %d diseases (%s), %d train / %d val images, %d epochs of "
             "%d steps", arch, device.description, len(diseases), ", ".join(diseases),
             len(train), len(val), epochs, steps)
    history = []

    class Logger(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
                   "seconds": time.perf_counter() - self.started}
            history.append(row)
            log.info("epoch %d/%d  loss %.4f  macro auroc %.4f  val_loss %.4f  val macro "
                     "auroc %.4f  %.1f s", epoch + 1, epochs, row["loss"], row["auroc"],
                     row["val_loss"], row["val_auroc"], row["seconds"])

    model.fit(training_dataset(images, train, batch_size, settings["seed"], 0, epochs),
              validation_data=evaluation_dataset(images, val, batch_size), epochs=epochs,
              steps_per_epoch=steps, callbacks=[Logger()], shuffle=False, verbose=0)
    return model, history


def write_split(snakemake):
    labels = pd.read_parquet(snakemake.input.labels)
    targets = snakemake.params.targets
    target_splits = {target: pd.read_parquet(path)
                     for target, path in zip(targets, snakemake.input.splits, strict=True)}
    settings = snakemake.params.settings
    diseases = pretraining_diseases(targets, settings["diseases"])
    split = pretraining_split(labels, target_splits, diseases, settings["val_fraction"],
                              settings["seed"])
    split.to_parquet(snakemake.output.split, index=False)
    sizes = split.groupby("split").size()
    log.info("pretraining: %d images of %d patients no target holds out (%d train, %d val); "
             "%d images carry one of its diseases, %d are '%s'", len(split),
             split["patient_id"].nunique(), sizes.get("train", 0), sizes.get("val", 0),
             int(split[diseases].max(axis=1).sum()),
             int(labels.set_index("image_index").loc[split["image_index"], NO_FINDING].sum()),
             NO_FINDING)


def write_backbone(snakemake):
    settings, model_settings = snakemake.params.settings, snakemake.params.model
    split = pd.read_parquet(snakemake.input.split)
    diseases = [column for column in split.columns if column in DISEASES]
    images, parts = load_pretraining(snakemake.input.split, snakemake.input.cache_images,
                                     snakemake.input.cache_index, diseases)
    model, history = pretrain(snakemake.wildcards.arch, snakemake.params.image_size,
                              model_settings, settings, diseases, images, parts["train"],
                              parts["val"], threads=snakemake.threads)
    final = history[-1]["val_auroc"]
    if final < settings["min_val_auroc"]:
        raise InputError(
            f"pretraining learned too little: validation macro AUROC {final:.3f} after "
            f"{settings['epochs']} epochs, below pretrain.min_val_auroc "
            f"{settings['min_val_auroc']}; a backbone this weak would not stand for ImageNet. "
            "Raise pretrain.epochs or demo.n_images.")
    backbone = backbone_of(model)
    backbone.save_weights(snakemake.output.weights)
    summary = {"arch": snakemake.wildcards.arch, "backbone": backbone.name,
               "diseases": diseases, "train_images": len(parts["train"]),
               "val_images": len(parts["val"]), "settings": settings,
               "val_macro_auroc": final, "history": history,
               "seconds": float(sum(row["seconds"] for row in history))}
    with open(snakemake.output.summary, "w") as out:
        json.dump(summary, out, indent=1)
    log.info("wrote %s: validation macro AUROC %.3f over %d diseases after %.0f s",
             snakemake.output.weights, final, len(diseases), summary["seconds"])


ENTRIES = {"pretraining_split": write_split, "pretrain_backbone": write_backbone}

if __name__ == "__main__":
    run(snakemake, ENTRIES[snakemake.rule])  # noqa: F821 - `snakemake` is injected by the rule's script directive
