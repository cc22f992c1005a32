"""A tiny learnable dataset written straight into the workflow's split and cache formats."""

import numpy as np
import pandas as pd

from workflow_scripts.image_cache import write_index
from workflow_scripts.labels import DISEASES


def write_tiny_target(folder, size=32, n_patients=120, seed=0, multilabel=False):
    """Split and cache files of a target whose positives carry a bright disc; with
    `multilabel`, of the multilabel target: each disease present in a quarter of the images,
    each drawn as a bright square in a cell of its own (a 4 x 4 grid).

    Returns (split_path, cache_images_path, cache_index_path).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for patient in range(n_patients):
        for follow_up in range(2):
            rows.append((f"{patient:08d}_{follow_up:03d}.png", patient, int(rng.random() < 0.5)))
    frame = pd.DataFrame(rows, columns=["image_index", "patient_id", "label"])
    split_of_patient = np.where(np.arange(n_patients) % 10 < 7, "train",
                                np.where(np.arange(n_patients) % 10 < 8, "val", "test"))
    images = rng.normal(90, 20, (len(frame), size, size))
    if multilabel:
        present = rng.random((len(frame), len(DISEASES))) < 0.25
        cell = size // 4
        for i, disease in enumerate(DISEASES):
            frame[disease] = present[:, i].astype("int8")
            row, column = divmod(i, 4)
            images[present[:, i], row * cell:(row + 1) * cell - 2,
                   column * cell:(column + 1) * cell - 2] += 80
        frame["label"] = present.any(axis=1)
    else:
        yy, xx = np.mgrid[:size, :size]
        for i, label in enumerate(frame["label"]):
            if label:
                cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
                images[i] += 90 * (((yy - cy) ** 2 + (xx - cx) ** 2) < (size / 6) ** 2)
    frame["split"] = split_of_patient[frame["patient_id"]]
    frame["label"] = frame["label"].astype("int8")
    images = np.clip(images, 0, 255).astype(np.uint8)

    folder.mkdir(parents=True, exist_ok=True)
    split_path = folder / "split.parquet"
    frame.to_parquet(split_path, index=False)
    np.save(folder / "images.npy", images)
    write_index(folder / "index.parquet", frame["image_index"])
    return split_path, folder / "images.npy", folder / "index.parquet"
