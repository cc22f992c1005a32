"""The ChestX-ray14 label vocabulary and the names of the workflow's targets and splits."""

NO_FINDING = "No Finding"

# Spelled exactly as in the NIH CSV; a target is one of these, ANY_DISEASE or MULTILABEL.
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
# One network for all 14 diseases at once, a sigmoid output per disease (CheXNet's setting),
# where the paper trains one binary network per disease.
MULTILABEL = "multilabel"
TARGETS = (*DISEASES, ANY_DISEASE, MULTILABEL)

# The values of a split file's `split` column, in the order the split is made.
SPLITS = ("train", "val", "test")


def label_columns(target):
    """The columns of a target's split file that its model learns, one per output: one 0/1
    column per disease, named as the disease, for MULTILABEL; `label` for the others."""
    return DISEASES if target == MULTILABEL else ("label",)
