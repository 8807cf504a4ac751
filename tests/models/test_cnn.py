"""Every registered image classifier: builds, learns, and round-trips through a .keras file with safe_mode;
the CIFAR-style stack fits itself to the input size; the grid network is the notes' one."""

import keras
import numpy as np
import pytest

from models import builders
from models.cnn import cifar_padding
from pipelines.seeding import seed_everything

SHAPE = (8, 8, 1)
CLASSES = 3


@pytest.fixture(scope="module")
def images():
    """Three easy classes of 8x8 images: a bright top half, a bright left half, a bright centre, plus noise."""
    rng = np.random.default_rng(0)
    x = 0.1 * rng.random((96, *SHAPE), dtype=np.float32)
    y = np.arange(96) % CLASSES
    x[y == 0, :4, :, 0] += 0.8
    x[y == 1, :, :4, 0] += 0.8
    x[y == 2, 2:6, 2:6, 0] += 0.8
    return x, y.astype(np.int64)


@pytest.mark.parametrize("name", builders.names("classify"))
def test_classify_model_conformance(name, images, tmp_path):
    seed_everything(0)
    x, y = images
    model = builders.build(
        name, input_shape=SHAPE, classes=CLASSES, learning_rate=0.05 if name == "small_cnn" else 5e-3
    )
    assert model.input_shape == (None, *SHAPE)
    assert model.output_shape == (None, CLASSES)
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]
    probabilities = model.predict(x[:8], verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(probabilities, reloaded.predict(x[:8], verbose=0))


def test_classify_registry_lists_both_networks():
    assert builders.names("classify") == ["cnn", "small_cnn"]
    assert not set(builders.names("classify")) & set(builders.names("forecast"))


@pytest.mark.parametrize(
    "shape, padding, flat",
    [
        ((8, 8, 1), "same", 2 * 2 * 64),  # digits: 8 -> pool 4 -> pool 2, padded
        ((28, 28, 1), "valid", 3 * 3 * 64),  # MNIST: 26 -> 13 -> 11 -> 5 -> 3
        ((32, 32, 3), "valid", 4 * 4 * 64),  # CIFAR-10: the notes' stack as is
    ],
)
def test_cifar_stack_fits_the_input_size(shape, padding, flat):
    assert cifar_padding(*shape[:2]) == padding
    model = builders.build("cnn", input_shape=shape, classes=10)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)] == [32, 64, 64]
    assert model.get_layer("flatten").output.shape[-1] == flat
    assert model.get_layer("dense").units == 64
    assert model.get_layer("conv_0").padding == padding


def test_cnn_dropout_and_l2_are_hyperparameters():
    model = builders.build("cnn", input_shape=SHAPE, classes=10, dropout=0.3, l2=1e-3)
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [0.3, 0.3]
    assert model.get_layer("conv_1").kernel_regularizer.get_config() == {"l2": pytest.approx(1e-3)}


def test_small_cnn_is_the_notes_grid_network():
    model = builders.build(
        "small_cnn", input_shape=SHAPE, classes=10, learning_rate=0.1, l2=1e-4, receptive_field=5, filters=7, units=20
    )
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    conv = model.get_layer("conv")
    assert (conv.filters, conv.kernel_size, conv.padding) == (7, (5, 5), "same")
    assert model.get_layer("dense").units == 20
    assert model.get_layer("dense").kernel_regularizer.get_config() == {"l2": pytest.approx(1e-4)}
    assert model.get_layer("probabilities").activation.__name__ == "softmax"
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_shape": (3, 8, 1), "classes": 10}, "images are 3x8; the CNNs need at least 4x4"),
        ({"input_shape": (8, 8, 2), "classes": 10}, "images have 2 channels; 1 (grayscale) or 3 (RGB) are allowed"),
        ({"input_shape": (8, 8), "classes": 10}, "input_shape must be (height, width, channels); got (8, 8)"),
        ({"input_shape": (8, 8, 1), "classes": 1}, "1 class(es); a classifier needs at least 2"),
    ],
)
def test_bad_shapes_are_named(kwargs, message):
    for name in builders.names("classify"):
        with pytest.raises(ValueError) as info:
            builders.build(name, **kwargs)
        assert str(info.value) == message
