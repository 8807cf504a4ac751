"""Image data: digits, keras.datasets-style .npz files, class folders; clear errors; safe decoding; the split;
the classifier's input checks; the --grid spec."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipelines.vision.data import (
    ImageDataError,
    NotAnImage,
    TooManyBytes,
    TooManyPixels,
    TooMuchMetadata,
    load_digits_set,
    load_images,
    open_image,
    to_array,
)
from pipelines.vision.pipeline import GridError, parse_grid


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG whose header claims width x height but whose (tiny) data would not fill it: a bomb's header.
    ``color_type``: 0 grayscale, 2 RGB, 6 RGBA."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def write_folder(root, sizes: dict[str, list[tuple[int, int]]], mode: str = "L"):
    rng = np.random.default_rng(0)
    for label, shapes in sizes.items():
        (root / label).mkdir(parents=True)
        for k, (h, w) in enumerate(shapes):
            shape = (h, w) if mode == "L" else (h, w, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / label / f"{k:02d}.png")
    return root


def test_digits_builtin():
    data = load_images("digits")
    assert data.x.shape == (1797, 8, 8, 1) and data.x.dtype == np.float32
    assert data.labels == tuple("0123456789")
    assert (data.color_mode, data.offset, data.scale) == ("grayscale", 0.0, 16.0)
    assert data.x.max() == 16.0 and data.normalised().max() == 1.0
    assert data.counts()["0"] == 178
    assert data.fingerprint == load_digits_set().fingerprint


def test_stratified_split_holds_out_a_fifth_of_every_class():
    data = load_digits_set()
    train, test = data.split(0.2, seed=0)
    assert len(test) == 360 and len(train) == 1437 and not set(train) & set(test)
    per_class = np.bincount(data.y[test])
    assert per_class.min() >= 35 and per_class.max() <= 37
    np.testing.assert_array_equal(test, data.split(0.2, seed=0)[1])


def test_npz_with_x_and_y(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.integers(0, 256, (30, 6, 5), dtype=np.uint8), y=np.repeat([3, 1, 7], 10))
    data = load_images(path)
    assert data.x.shape == (30, 6, 5, 1) and data.input_shape == (6, 5, 1)
    assert data.labels == ("1", "3", "7") and data.counts() == {"1": 10, "3": 10, "7": 10}
    assert (data.color_mode, data.scale, data.name) == ("grayscale", 255.0, "mine")


def test_npz_in_the_keras_datasets_layout_with_label_names(tmp_path):
    """CIFAR-10's layout: uint8 RGB, labels [N, 1], train and test parts (joined: seqcast splits itself)."""
    rng = np.random.default_rng(1)
    path = tmp_path / "cifar_like.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
        y_train=np.repeat([[0], [1]], 10, axis=0),
        x_test=rng.integers(0, 256, (10, 8, 8, 3), dtype=np.uint8),
        y_test=np.repeat([[0], [1]], 5, axis=0),
        label_names=np.array(["airplane", "automobile"]),
    )
    data = load_images(path)
    assert data.x.shape == (30, 8, 8, 3) and data.color_mode == "rgb"
    assert data.labels == ("airplane", "automobile") and data.counts() == {"airplane": 15, "automobile": 15}


def test_npz_values_in_0_1_keep_their_scale(tmp_path):
    path = tmp_path / "floats.npz"
    np.savez(path, x=np.random.default_rng(0).random((10, 4, 4)), y=np.array(["a", "b"] * 5))
    data = load_images(path)
    assert (data.offset, data.scale, data.labels) == (0.0, 1.0, ("a", "b"))


@pytest.mark.parametrize(
    "arrays, message",
    [
        (
            {"x": np.zeros((12, 4, 4)), "y": np.array([0, 1] * 5 + [2, 2])},
            "class '2' has 2 images; at least 5 are needed per class",
        ),
        ({"x": np.zeros((10, 4, 4)), "y": np.zeros(10, dtype=int)}, "1 class(es) found ('0'); at least 2 are needed"),
        (
            {"x": np.zeros((10, 4, 4)), "y": np.arange(9) % 2},
            "x has 10 images but y has 9 labels; give one label per image",
        ),
        (
            {"x": np.zeros((10, 4, 4, 2)), "y": np.arange(10) % 2},
            "x must be [N, height, width] (grayscale) or [N, height, width, 1 or 3]; got shape (10, 4, 4, 2)",
        ),
        (
            {"x": np.full((10, 4, 4), 300.0), "y": np.arange(10) % 2},
            "pixel values run from 300 to 300; allowed are 0..1 or 0..255",
        ),
        (
            {"images": np.zeros((10, 4, 4)), "labels": np.arange(10) % 2},
            "holds arrays images, labels; expected x and y (or x_train and y_train)",
        ),
    ],
)
def test_npz_errors_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ImageDataError) as info:
        load_images(path)
    assert str(info.value).endswith(message), str(info.value)


def test_npz_with_pickled_objects_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, x=np.array([object()] * 10, dtype=object), y=np.arange(10) % 2)
    with pytest.raises(ImageDataError, match="cannot read it without unpickling objects"):
        load_images(path)


def test_folder_of_class_subfolders(tmp_path):
    root = write_folder(tmp_path / "shapes", {"circle": [(6, 7)] * 5, "square": [(6, 7)] * 6})
    (root / "circle" / "notes.txt").write_text("not an image, not a .png: ignored")
    data = load_images(root)
    assert data.x.shape == (11, 6, 7, 1) and data.color_mode == "grayscale"
    assert data.labels == ("circle", "square") and data.counts() == {"circle": 5, "square": 6}
    assert (data.scale, data.name) == (255.0, "shapes")


def test_folder_with_any_colour_image_is_rgb(tmp_path):
    root = write_folder(tmp_path / "pets", {"cat": [(4, 4)] * 5, "dog": [(4, 4)] * 5})
    Image.new("RGB", (4, 4), (255, 0, 0)).save(root / "dog" / "red.png")
    data = load_images(root)
    assert data.color_mode == "rgb" and data.x.shape == (11, 4, 4, 3)
    np.testing.assert_array_equal(data.x[-1, 0, 0], [255, 0, 0])


def test_folder_with_mixed_sizes_names_both_files(tmp_path):
    root = write_folder(tmp_path / "f", {"a": [(8, 8)] * 5, "b": [(8, 8)] * 4 + [(9, 8)]})
    with pytest.raises(ImageDataError) as info:
        load_images(root)
    assert str(info.value) == (
        f"images differ in size: {root}/a/00.png is 8x8 but {root}/b/04.png is 8x9; "
        "every image must have the same width and height"
    )


def test_folder_with_too_few_images_per_class(tmp_path):
    root = write_folder(tmp_path / "digits", {"1": [(8, 8)] * 5, "7": [(8, 8)] * 2})
    with pytest.raises(ImageDataError) as info:
        load_images(root)
    assert str(info.value) == "class '7' has 2 images; at least 5 are needed per class"


def test_folder_with_an_unreadable_file_names_it(tmp_path):
    root = write_folder(tmp_path / "f", {"a": [(8, 8)] * 5, "b": [(8, 8)] * 5})
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with pytest.raises(NotAnImage) as info:
        load_images(root)
    assert str(info.value) == f"{root}/b/broken.jpg is not a PNG or JPEG image"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cifar", "'cifar' is neither a built-in (digits) nor an existing .npz file or folder"),
        ("{tmp}/x.csv", "{tmp}/x.csv is a .csv file; give a .npz, a folder or digits"),
        (
            "{tmp}/empty",
            "{tmp}/empty has no sub-folders; put each class's PNG/JPEG files in a sub-folder named after it",
        ),
    ],
)
def test_unknown_sources(tmp_path, spec, message):
    (tmp_path / "x.csv").write_text("a,b\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageDataError) as info:
        load_images(spec.format(tmp=tmp_path))
    assert str(info.value) == message.format(tmp=tmp_path)


# --- decoding --------------------------------------------------------------------------------------------
def test_open_image_decodes_png_and_jpeg():
    array = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    image = open_image(png_bytes(array))
    np.testing.assert_array_equal(to_array(image, "grayscale")[..., 0], array)
    buffer = io.BytesIO()
    Image.fromarray(array).convert("RGB").save(buffer, format="JPEG")
    assert open_image(buffer.getvalue()).format == "JPEG"


@pytest.mark.parametrize(
    "data, error, message",
    [
        (b"hello, I am text", NotAnImage, "the file is not a PNG or JPEG image"),
        (b"GIF89a" + b"\x00" * 40, NotAnImage, "the file is not a PNG or JPEG image"),
        (
            png_bytes(np.random.default_rng(0).integers(0, 256, (40, 40)))[:800],
            NotAnImage,
            "the file is a damaged PNG image that cannot be decoded",
        ),
        (
            png_header_only(3000, 1000),
            TooManyPixels,
            "the file is 3000x1000 = 3000000 pixels; at most 1000000 are allowed",
        ),
        (png_header_only(100_000, 100_000), TooManyPixels, "the file is a decompression bomb"),
    ],
)
def test_bad_image_bytes_are_refused_from_the_header(data, error, message):
    with pytest.raises(error) as info:
        open_image(data, max_pixels=1_000_000)
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize(
    "header, message",
    [
        (
            (2000, 2000, 16, 0),
            "the file decodes to 2000x2000 16-bit grayscale = 8000000 bytes; at most 4000000 are allowed",
        ),
        ((1000, 1001, 8, 6), "the file decodes to 1000x1001 8-bit RGBA = 4004000 bytes; at most 4000000 are allowed"),
        ((1200, 1200, 8, 2), "the file decodes to 1200x1200 8-bit RGB = 4320000 bytes; at most 4000000 are allowed"),
    ],
)
def test_decoded_bytes_over_the_limit_are_refused_from_the_header(header, message):
    """A few hundred bytes of PNG whose header promises more decoded bytes than allowed: refused undecoded
    (decoding the missing data would have raised NotAnImage instead)."""
    with pytest.raises(TooManyBytes) as info:
        open_image(png_header_only(*header), max_pixels=4_000_000, max_bytes=4_000_000)
    assert str(info.value) == message
    assert isinstance(info.value, TooManyPixels)  # still a 413 for callers that only know TooManyPixels
    with pytest.raises(NotAnImage, match="damaged PNG"):  # 2000x2000 8-bit is exactly 4000000 bytes: decoded
        open_image(png_header_only(2000, 2000), max_pixels=4_000_000, max_bytes=4_000_000)


def with_chunk(png: bytes, kind: bytes, data: bytes, before: bytes) -> bytes:
    """``png`` with a ``kind`` chunk inserted before its first ``before`` chunk (b"IDAT" or b"IEND")."""
    at = png.index(before) - 4  # the chunk's length field
    crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return png[:at] + struct.pack(">I", len(data)) + kind + data + crc + png[at:]


def ztxt(text_bytes: int) -> bytes:
    """A zTXt chunk's data: ``text_bytes`` of text, compressed to a few kB."""
    return b"Comment\x00\x00" + zlib.compress(b"a" * text_bytes, 9)


@pytest.mark.parametrize("where", [b"IDAT", b"IEND"], ids=["before-the-pixels", "after-the-pixels"])
def test_png_metadata_over_pils_text_limit_is_too_much_metadata_not_not_an_image(where):
    """PIL refuses a text chunk that decompresses to over MAX_TEXT_CHUNK (1 MB) with a ValueError, read at open
    (before IDAT) or at load (after it); it was reported as "not a PNG or JPEG image"."""
    data = with_chunk(png_bytes(np.zeros((8, 8))), b"zTXt", ztxt(2_000_000), where)
    assert len(data) < 5000
    with pytest.raises(TooMuchMetadata) as info:
        open_image(data)
    assert str(info.value) == (
        "the file has a PNG text or ICC profile chunk that decompresses to over 1048576 bytes; at most 1048576 are "
        "allowed per chunk: strip the image's metadata"
    )
    assert open_image(with_chunk(png_bytes(np.zeros((8, 8))), b"zTXt", ztxt(1000), where)).size == (8, 8)


def test_png_text_over_pils_total_limit_is_too_much_metadata(monkeypatch):
    monkeypatch.setattr(PngImagePlugin, "MAX_TEXT_MEMORY", 3000)  # 64 MB by default: 64 such chunks and more
    data = png_bytes(np.zeros((8, 8)))
    for _ in range(2):
        data = with_chunk(data, b"zTXt", ztxt(2000), b"IDAT")
    with pytest.raises(TooMuchMetadata) as info:
        open_image(data)
    assert str(info.value) == (
        "the file has PNG text chunks of over 3000 bytes in all; at most 3000 are allowed: strip the image's metadata"
    )


def jpeg_bytes(width: int, height: int) -> bytes:
    """A smooth RGB photo-like gradient."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 255 // (width + height)], axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_big_jpeg_is_decoded_downscaled_by_draft():
    data = jpeg_bytes(1600, 1200)
    full = open_image(data)
    assert (full.size, full.mode) == ((1600, 1200), "RGB")
    small = open_image(data, size=(8, 8))
    assert (small.size, small.mode) == ((200, 150), "RGB")  # 1/8 scale, still at least 8x8
    assert open_image(data, size=(300, 300)).size == (400, 300)  # 1/4: 1/8 would be under 300 high
    assert open_image(png_bytes(np.zeros((64, 64))), size=(8, 8)).size == (64, 64)  # PNGs have no draft
    # the bytes are checked at the drafted size: 5760000 bytes in full, 90000 drafted
    assert open_image(data, max_bytes=100_000, size=(8, 8)).size == (200, 150)
    with pytest.raises(TooManyBytes, match="decodes to 1600x1200 8-bit RGB = 5760000 bytes"):
        open_image(data, max_bytes=100_000)
    # the classifier's input from the drafted decode is the full decode's, up to JPEG rounding
    for mode in ("grayscale", "rgb"):
        np.testing.assert_allclose(to_array(small, mode, (8, 8)), to_array(full, mode, (8, 8)), atol=3)


def test_16_bit_to_array_is_exact_without_full_size_float_copies():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (2000, 2000), dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    tracemalloc.start()
    try:
        array = to_array(image, "grayscale", (8, 8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, peak  # the old float64 copies of 2000x2000 took 64 MB
    reference = Image.fromarray((values.astype(np.float64) / 257.0).clip(0, 255).astype(np.uint8))
    np.testing.assert_array_equal(array[..., 0], np.asarray(reference.resize((8, 8), Image.Resampling.BOX), np.float32))
    odd = rng.integers(0, 65536, (37, 3001), dtype=np.uint16)  # rows in bands that do not divide the height
    np.testing.assert_array_equal(to_array(Image.fromarray(odd), "grayscale")[..., 0], odd // 257)
    wide = Image.fromarray(rng.integers(-70_000, 70_000, (5, 7), dtype=np.int32))  # "I": clipped to 0..255
    expected = (np.asarray(wide, np.float64) / 257.0).clip(0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_array(wide, "grayscale")[..., 0], expected)


def test_bmp_is_not_accepted():
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="BMP")
    with pytest.raises(NotAnImage):
        open_image(buffer.getvalue())


def test_to_array_converts_and_resizes():
    rgba = Image.new("RGBA", (16, 16), (255, 255, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 16))  # the left half transparent: composited onto black
    gray = to_array(rgba, "grayscale", (8, 8))
    assert gray.shape == (8, 8, 1)
    assert gray[0, :4, 0].tolist() == [0, 0, 0, 0] and gray[0, 4:, 0].tolist() == [255] * 4
    assert to_array(Image.new("L", (4, 4), 10), "rgb").shape == (4, 4, 3)


# --- --grid ------------------------------------------------------------------------------------------------
def test_parse_grid():
    assert parse_grid("eta=0.001,0.01,lambda=0.0001,0.001") == {"eta": [0.001, 0.01], "lambda": [0.0001, 0.001]}
    assert parse_grid("lambda=0, 1e-3") == {"lambda": [0.0, 0.001]}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("0.1,eta=0.2", "grid spec '0.1,eta=0.2' must start with a key"),
        ("alpha=0.1", "grid key 'alpha' is unknown; allowed keys are eta and lambda"),
        ("eta=0.1,x", "grid value 'x' for eta is not a number"),
        ("eta=0", "grid value 0 for eta is out of range; eta must be > 0 and lambda >= 0"),
        ("eta=0.1,eta=0.2", "grid key 'eta' is given twice"),
    ],
)
def test_bad_grid_specs(spec, message):
    with pytest.raises(GridError) as info:
        parse_grid(spec)
    assert str(info.value).startswith(message)
