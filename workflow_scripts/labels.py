"""The ChestX-ray14 label vocabulary and the names of the workflow's targets."""

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
