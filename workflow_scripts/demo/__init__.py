"""A synthetic dataset in the exact on-disk format of NIH ChestX-ray14.

With `data.source: demo` the workflow has no real data, so stage `demo_dataset` writes what a
user who downloaded ChestX-ray14 has on disk, and every later stage runs unchanged:

    Data_Entry_2017_v2020.csv        one row per image, the v2020 header and field formats
    images_001/images/*.png          frontal radiographs, 8-bit gray (a few RGBA, as in NIH)
    train_val_list.txt, test_list.txt    an official-style split, disjoint by patient

Labels follow the paper's Table 1 and the real data's co-occurrences; each image is a frontal
chest radiograph rendered analytically, the same chest for all of a patient's follow-ups, with
every finding it carries drawn as the pattern a radiologist would look for. Label noise and
normal anatomy that mimics findings keep every finding learnable but never perfectly.

The modules, each building on the ones above it:

    metadata    patients, label sets, the Data_Entry CSV rows and the official-style split
    anatomy     a patient's chest as numbers: drawn once per patient, posed per image
    shapes      soft-edged shapes on the pixel grid
    chest       the normal chest as density maps, which findings add to
    findings    each finding's severity, site, and the pattern it draws
    rendering   one radiograph: anatomy, findings, exposure and noise
    writer      the dataset on disk (`make_demo_dataset`), PNGs written in parallel, atomically

Determinism. The metadata derive from (seed), a patient's anatomy and lesion sites from
(seed, patient), an image's pose, exposure, severities and noise from (seed, image number),
each through its own random stream below. Output is byte-identical for any number of workers.
"""

# Independent random streams, mixed with the seed (and a patient or image number).
STREAM_METADATA, STREAM_ANATOMY, STREAM_LESION, STREAM_IMAGE = 1, 2, 3, 4
