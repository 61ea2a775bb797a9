"""Model builders: one `make_<arch>(input_shape, num_classes)` per architecture."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers


def make_smallervggnet(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """kjaisingh/Pokemon-Classifier's SmallerVGGNet, layer for layer (Keras 3 spelling)."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for filters, convs, pool, drop in ((32, 1, 3, 0.25), (64, 2, 2, 0.25), (128, 2, 2, 0.25)):
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(pool_size=pool)(x)
        x = layers.Dropout(drop)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="smallervggnet")


def _ds_block(x, filters: int, stride: int):
    """Depthwise-separable block (MobileNet v1): 3x3 depthwise, then 1x1 pointwise."""
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU(6.0)(x)


def make_compact(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Compact default: stride-2 stem, depthwise-separable blocks, global-average-pooling head."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)  # 48x48
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    # Down to 24x24 in the first block: the 48x48 stage is where depthwise convs cost most on CPU.
    for filters, stride in ((48, 2), (96, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        x = _ds_block(x, filters, stride)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="compact")


def make_tiny(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """A few-thousand-parameter model for tests and smoke runs."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(8, 3, strides=4, padding="same", activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny")


ARCHITECTURES: dict[str, Callable[[tuple[int, int, int], int], keras.Model]] = {
    "compact": make_compact,
    "smallervggnet": make_smallervggnet,
    "tiny": make_tiny,
}


def make_model(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}") from None
    return builder(input_shape, num_classes)
