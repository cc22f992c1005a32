"""The paper's classifiers: a backbone (MobileNetV1, DenseNet121 or AlexNet) and its head.

Every model takes the cache's uint8 grayscale images, shape (size, size, 1), and does the
rest on the device: augmentation (training only), the grayscale-to-RGB mapping and the
backbone's own input scaling. The paper's head is global average pooling, dropout 0.5, four
linear dense layers of 250, 50, 10 and 2 units, each with kernel L1 0.001 + L2 0.01, bias L2
0.01, activity L2 0.001 and batch normalization after it, then one sigmoid unit.

ImageNet weights are read from local files only (the `fetch_weights` rule downloads them on a
machine with internet): a compute node never downloads.
"""

import os
from pathlib import Path

import keras
from keras import layers, regularizers

from workflow_scripts.augmentation import PaperAugmentation
from workflow_scripts.stage import InputError

ARCHITECTURES = ("mobilenet", "densenet121", "alexnet")
MIN_IMAGE_SIZE = {"mobilenet": 32, "densenet121": 32, "alexnet": 32}
PAPER_HEAD_UNITS = (250, 50, 10, 2)

# Keras' own file names, so that files in ~/.keras/models work too.
IMAGENET_WEIGHT_FILES = {
    "mobilenet": "mobilenet_{alpha}_224_tf_no_top.h5",
    "densenet121": "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
IMAGENET_WEIGHT_URLS = {
    "mobilenet": "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/",
    "densenet121": "https://storage.googleapis.com/tensorflow/keras-applications/densenet/",
}


def imagenet_weight_file(arch, alpha=1.0):
    if arch not in IMAGENET_WEIGHT_FILES:
        raise InputError(f"model.weights: imagenet weights do not exist for {arch!r} in Keras; "
                         "use model.weights: none for it.")
    alpha_text = {0.25: "2_5", 0.5: "5_0", 0.75: "7_5", 1.0: "1_0"}[float(alpha)]
    return IMAGENET_WEIGHT_FILES[arch].format(alpha=alpha_text)


def find_imagenet_weights(arch, alpha, weights_dir):
    """The local ImageNet weight file, or InputError saying to run the fetch_weights rule."""
    name = imagenet_weight_file(arch, alpha)
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    candidates = [Path(weights_dir) / name, keras_home / "models" / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(
        f"model.weights is imagenet but {name} is not in {candidates[0].parent} or "
        f"{candidates[1].parent}, and compute nodes never download. On a machine with internet "
        f"run: snakemake fetch_weights (or set model.weights_dir to where the file is)."
    )


def to_rgb_in(backbone_scaling):
    """Gray [0, 255] -> three channels scaled as the backbone was trained."""
    def block(x):
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        if backbone_scaling == "tf":  # MobileNet: [-1, 1]
            return layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")(x)
        # DenseNet ('torch' mode): ImageNet mean and std per channel.
        mean = [0.485 * 255, 0.456 * 255, 0.406 * 255]
        variance = [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2]
        return layers.Normalization(mean=mean, variance=variance, name="scale")(x)
    return block


def mobilenet_backbone(size, alpha, weights):
    return keras.applications.MobileNet(
        input_shape=(size, size, 3), alpha=alpha, include_top=False, weights=weights)


def densenet121_backbone(size, weights):
    return keras.applications.DenseNet121(
        input_shape=(size, size, 3), include_top=False, weights=weights)


def alexnet_backbone(size):
    """AlexNet (Krizhevsky et al. 2012) with batch normalization in place of LRN.

    'same' padding throughout, so that inputs from 32 px up keep a spatial map after the
    three max-pools; at 224 px this is the original 96-256-384-384-256 layout.
    """
    inputs = keras.Input((size, size, 3))

    def conv(x, filters, kernel, strides, name):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    x = conv(inputs, 96, 11, 4, "block1")
    x = layers.MaxPooling2D(3, 2, padding="same", name="block1_pool")(x)
    x = conv(x, 256, 5, 1, "block2")
    x = layers.MaxPooling2D(3, 2, padding="same", name="block2_pool")(x)
    x = conv(x, 384, 3, 1, "block3")
    x = conv(x, 384, 3, 1, "block4")
    x = conv(x, 256, 3, 1, "block5")
    x = layers.MaxPooling2D(3, 2, padding="same", name="block5_pool")(x)
    return keras.Model(inputs, x, name="alexnet")


def paper_head(x, dropout):
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    for units in PAPER_HEAD_UNITS:
        x = layers.Dense(
            units,
            activation=None,
            kernel_regularizer=regularizers.L1L2(l1=0.001, l2=0.01),
            bias_regularizer=regularizers.L2(0.01),
            activity_regularizer=regularizers.L2(0.001),
            name=f"head_dense{units}",
        )(x)
        x = layers.BatchNormalization(name=f"head_bn{units}")(x)
    return x


def simple_head(x, dropout):
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    return layers.Dropout(dropout, name="head_dropout")(x)


def build_model(arch, image_size, *, head="paper", dropout=0.5, mobilenet_alpha=1.0,
                weights="none", weights_dir="resources/weights", augmentation=None, seed=0):
    """The classifier for uint8 (size, size, 1) images with one sigmoid output (float32).

    `augmentation` is a dict of PaperAugmentation arguments, or None for no augmentation.
    """
    if arch not in ARCHITECTURES:
        raise InputError(
            f"architecture {arch!r} is unknown; use one of {', '.join(ARCHITECTURES)}.")
    if image_size < MIN_IMAGE_SIZE[arch]:
        raise InputError(f"image_size {image_size} is below {arch}'s minimum of "
                         f"{MIN_IMAGE_SIZE[arch]} px; raise image_size.")
    pretrained = None
    if weights == "imagenet":
        pretrained = str(find_imagenet_weights(arch, mobilenet_alpha, weights_dir))
    keras.utils.set_random_seed(seed)

    inputs = keras.Input((image_size, image_size, 1), dtype="uint8", name="image")
    x = layers.Rescaling(1.0, dtype="float32", name="to_float")(inputs)
    if augmentation is not None:
        # float32 even under mixed precision: pixel coordinates need more than bfloat16's bits.
        x = PaperAugmentation(**augmentation, seed=seed, dtype="float32", name="augmentation")(x)
    if arch == "mobilenet":
        x = to_rgb_in("tf")(x)
        x = mobilenet_backbone(image_size, mobilenet_alpha, pretrained)(x)
    elif arch == "densenet121":
        x = to_rgb_in("torch")(x)
        x = densenet121_backbone(image_size, pretrained)(x)
    else:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        x = layers.Rescaling(1 / 255, name="scale")(x)
        x = alexnet_backbone(image_size)(x)
    x = paper_head(x, dropout) if head == "paper" else simple_head(x, dropout)
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="disease")(x)
    return keras.Model(inputs, outputs, name=f"{arch}_{head}")
