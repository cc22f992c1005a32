"""The ChestX-ray14 label vocabulary and the names of the workflow's targets."""

from workflow_scripts.stage import InputError

NO_FINDING = "No Finding"

# Spelled exactly as in the NIH CSV; a target is one of these or ANY_DISEASE.
DISEASES = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)
LABELS = (NO_FINDING, *DISEASES)

# 'No Finding' against images with any disease: the paper's "one-class classifier".
ANY_DISEASE = "no_finding_vs_any"
TARGETS = (*DISEASES, ANY_DISEASE)


def check_targets(targets, key="targets"):
    """Raise InputError naming every entry of `targets` that is not a known target."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise InputError(
            f"{key}: {', '.join(map(repr, unknown))} is not a ChestX-ray14 label. Use one of: "
            f"{', '.join(TARGETS)} (spelled as in the CSV, e.g. Pleural_Thickening)."
        )
