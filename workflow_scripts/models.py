"""The paper's classifiers: a backbone (MobileNetV1, DenseNet121 or AlexNet) and its head, and
their optimizer and loss, as the LR range test and training both build them.

Every model takes the cache's uint8 grayscale images, shape (size, size, 1), and does the
rest on the device: augmentation (training only), the grayscale-to-RGB mapping and the
backbone's own input scaling. The paper's head is global average pooling, dropout 0.5, four
linear dense layers of 250, 50, 10 and 2 units, each with kernel L1 0.001 + L2 0.01, bias L2
0.01, activity L2 0.001 and batch normalization after it, then one sigmoid unit (one per
disease for the multi-label target).

ImageNet weights are read from local files only (the `fetch_weights` rule downloads them on a
machine with internet): a compute node never downloads. Keras has none for AlexNet, which
then trains from scratch, as in the paper. A backbone weights file of the user's own
(`model.weights: <path>`) is loaded into the backbone after it is built, and must be of the
same architecture and MobileNet alpha.
"""

from pathlib import Path

import h5py
import keras
import numpy as np
from keras import layers, ops, regularizers

from workflow_scripts.augmentation import PaperAugmentation
from workflow_scripts.schedules import CycledMomentumSGD
from workflow_scripts.stage import InputError, log
from workflow_scripts.weights import backbone_weights_file, find_weights, weight_file

PAPER_HEAD_UNITS = (250, 50, 10, 2)


def imagenet_scaling(backbone_scaling):
    """The layer that scales RGB [0, 255] as the backbone was trained."""
    if backbone_scaling == "tf":  # MobileNet: [-1, 1]
        return layers.Rescaling(1 / 127.5, offset=-1.0, name="scale")
    # DenseNet ('torch' mode): ImageNet mean and std per channel.
    mean = [0.485 * 255, 0.456 * 255, 0.406 * 255]
    variance = [(0.229 * 255) ** 2, (0.224 * 255) ** 2, (0.225 * 255) ** 2]
    return layers.Normalization(mean=mean, variance=variance, name="scale")


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


@keras.saving.register_keras_serializable(package="clr")
class ActivityL2(regularizers.Regularizer):
    """L2 penalty on a layer's output, summed in float32.

    Under mixed precision the outputs are bfloat16; Keras' own L2 would add a bfloat16
    penalty to the float32 loss, which fails, and would lose precision on the way.
    """

    def __init__(self, l2):
        self.l2 = float(l2)

    def __call__(self, x):
        return self.l2 * ops.sum(ops.square(ops.cast(x, "float32")))

    def get_config(self):
        return {"l2": self.l2}


def paper_head(x, dropout):
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    for units in PAPER_HEAD_UNITS:
        x = layers.Dense(
            units,
            activation=None,
            kernel_regularizer=regularizers.L1L2(l1=0.001, l2=0.01),
            bias_regularizer=regularizers.L2(0.01),
            activity_regularizer=ActivityL2(0.001),
            name=f"head_dense{units}",
        )(x)
        x = layers.BatchNormalization(name=f"head_bn{units}")(x)
    return x


def simple_head(x, dropout):
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    return layers.Dropout(dropout, name="head_dropout")(x)


def nested_layers(layer):
    """`layer` and every layer inside it, backbones included."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from nested_layers(inner)


def backbone_of(model):
    """The backbone inside a classifier that `build_model` made: its one nested model."""
    (backbone,) = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return backbone


def saved_shapes(path):
    """The shapes of the weight tensors in a Keras weights file, in sorted order."""
    shapes = []
    with h5py.File(path, "r") as weights_file:
        weights_file.visititems(lambda _, item: shapes.append(tuple(item.shape))
                                if isinstance(item, h5py.Dataset) else None)
    return sorted(shapes)


def load_backbone_weights(backbone, path, arch, alpha):
    """Load a backbone weights file, or InputError naming the file and what does not match.

    The tensor shapes are compared first: Keras' own error for a file of another backbone
    names one layer, and some mismatches it only warns about."""
    built = f"{arch} (alpha {alpha})" if arch == "mobilenet" else arch
    if not str(path).endswith(".weights.h5"):
        raise InputError(f"model.weights: {path} is not a Keras backbone weights file "
                         "(*.weights.h5, as `save_weights` of the backbone writes it).")
    if not Path(path).is_file():
        raise InputError(f"model.weights: {path} does not exist; make it (the demo's "
                         "pretrain_backbone rule does) or set model.weights to none or imagenet.")
    expected = sorted(tuple(weight.shape) for weight in backbone.weights)
    found = saved_shapes(path)
    if found != expected:
        raise InputError(
            f"model.weights: {path} does not fit the {built} backbone {backbone.name!r}: it "
            f"holds {len(found)} weight tensors ({sum(map(np.prod, found)):.0f} numbers), the "
            f"backbone has {len(expected)} ({sum(map(np.prod, expected)):.0f}). It was saved "
            "from another architecture or another model.mobilenet_alpha."
        )
    backbone.load_weights(path)
    log.info("backbone %s starts from %s", backbone.name, path)


def build_model(arch, image_size, *, head="paper", dropout=0.5, mobilenet_alpha=1.0,
                batch_norm_momentum=0.99, weights="none", weights_dir=None,
                augmentation=None, xla=False, seed=0, outputs=1):
    """The classifier for uint8 (size, size, 1) images with `outputs` sigmoid outputs
    (float32): one for a binary target, one per disease for a multi-label one.

    `augmentation` is a dict of PaperAugmentation arguments, or None for no augmentation;
    `xla` says the model will be compiled with XLA (the augmentation's sampler then compiles
    with the train step instead of on its own).
    `batch_norm_momentum` replaces Keras' 0.99 in every batch normalization layer: a run of a
    few hundred steps needs a shorter memory (e.g. 0.9), or the running statistics used at
    inference still lag far behind the weights and every prediction comes out the same.
    """
    if head == "paper" and outputs > 1:
        log.warning("the paper's head narrows to %d units before the %d outputs; model.head: "
                    "simple (CheXNet's) feeds the pooled features to them directly",
                    PAPER_HEAD_UNITS[-1], outputs)
    pretrained, weights_file = None, backbone_weights_file(weights, arch)
    if weights == "imagenet":
        if weight_file(arch) is None:
            log.warning("no ImageNet weights exist for %s in Keras: it trains from scratch", arch)
        else:
            pretrained = str(find_weights(arch, mobilenet_alpha, weights_dir))
    keras.utils.set_random_seed(seed)

    inputs = keras.Input((image_size, image_size, 1), dtype="uint8", name="image")
    x = layers.Rescaling(1.0, dtype="float32", name="to_float")(inputs)
    if augmentation is not None:
        # float32 even under mixed precision: pixel coordinates need more than bfloat16's bits.
        x = PaperAugmentation(**augmentation, seed=seed, xla_compatible=xla, dtype="float32",
                              name="augmentation")(x)
    x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    if arch == "mobilenet":
        x = imagenet_scaling("tf")(x)
        backbone = mobilenet_backbone(image_size, mobilenet_alpha, pretrained)
    elif arch == "densenet121":
        x = imagenet_scaling("torch")(x)
        backbone = densenet121_backbone(image_size, pretrained)
    else:
        x = layers.Rescaling(1 / 255, name="scale")(x)
        backbone = alexnet_backbone(image_size)
    if weights_file is not None:
        load_backbone_weights(backbone, weights_file, arch, mobilenet_alpha)
    x = backbone(x)
    x = paper_head(x, dropout) if head == "paper" else simple_head(x, dropout)
    x = layers.Dense(outputs, activation="sigmoid", dtype="float32", name="disease")(x)
    model = keras.Model(inputs, x, name=f"{arch}_{head}")
    for layer in nested_layers(model):
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = batch_norm_momentum
    return model


def make_optimizer(settings, learning_rate, momentum_schedule=None):
    """SGD with momentum (the paper's choice), Adam (its choice for Hernia) or RMSprop; SGD
    whose momentum follows `momentum_schedule` where one is given (train.cycle_momentum)."""
    name = settings["optimizer"]
    if momentum_schedule is not None:
        return CycledMomentumSGD(learning_rate, momentum_schedule, nesterov=settings["nesterov"])
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=settings["momentum"],
                                    nesterov=settings["nesterov"])
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, beta_1=settings["momentum"])
    return keras.optimizers.RMSprop(learning_rate, momentum=settings["momentum"])


def compile_model(model, optimizer, jit_compile, data_loss=False):
    """Binary cross-entropy (the mean over outputs: one per label), accuracy and AUROC (the
    mean of each output's with several); with `data_loss`, also the cross-entropy alone as a
    metric (the logged loss adds the head's regularization penalty)."""
    outputs = model.output_shape[-1]
    metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
               keras.metrics.AUC(name="auroc", multi_label=outputs > 1,
                                 num_labels=outputs if outputs > 1 else None)]
    if data_loss:
        metrics.append(keras.metrics.BinaryCrossentropy(name="data_loss"))
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=metrics,
                  jit_compile=jit_compile)
    # The slots (momentum, Adam's moments) made now, not inside the first traced train step:
    # a variable created there makes tf.function trace the step a second time, about five
    # seconds of every CPU job. Same zeros either way.
    optimizer.build(model.trainable_variables)
    return model


def new_model(arch, image_size, model_settings, train_settings, seed, xla, outputs,
              learning_rate, data_loss=False, momentum_schedule=None):
    """`build_model` from the config's model and train settings (the target's), compiled with
    the configured optimizer at `learning_rate` (a number or a schedule) and, where given,
    SGD's momentum on `momentum_schedule`."""
    model = build_model(
        arch, image_size,
        head=model_settings["head"],
        dropout=model_settings["dropout"],
        mobilenet_alpha=model_settings["mobilenet_alpha"],
        batch_norm_momentum=model_settings["batch_norm_momentum"],
        weights=model_settings["weights"],
        weights_dir=model_settings["weights_dir"],
        augmentation=train_settings["augmentation"] if train_settings["augment"] else None,
        xla=xla,
        seed=seed,
        outputs=outputs,
    )
    optimizer = make_optimizer(train_settings, learning_rate, momentum_schedule)
    return compile_model(model, optimizer, xla, data_loss)
