"""Image data for the CNN classifier: the built-in ``digits``, a keras.datasets-style ``.npz``, or a folder of
class sub-folders of PNG/JPEG files.

Every source becomes one :class:`ImageSet`: pixels ``x[N, H, W, C]`` in the source's own units, integer labels
``y`` indexing ``labels``, and the normalisation ``(x - offset) / scale`` that maps the source's pixel range to
0..1. The normalisation, input shape, colour mode and label names travel with the trained model
(:mod:`pipelines.vision.classifier`), so a PNG/JPEG upload (0..255 -> 0..1) and a JSON array (source units) are
prepared exactly like the training data.

Image files are opened through :func:`open_image`, which reads only the header to check the format, the
pixel count and the decoded size in bytes before decoding anything (decompression bombs never get decoded).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageMode, PngImagePlugin, UnidentifiedImageError

MIN_PER_CLASS = 5  # a stratified 20% test split needs at least one image per class, the val split another
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_FORMATS = ("PNG", "JPEG")
DEFAULT_MAX_PIXELS = 4_000_000  # per image, for uploads and folders alike
BUILTIN_IMAGES = ("digits",)

# PIL's own guard (a warning above, an error at twice this); ours below is stricter and runs first
Image.MAX_IMAGE_PIXELS = 2 * DEFAULT_MAX_PIXELS


class ImageDataError(ValueError):
    """Image data that cannot be used; the message names the file, class or array and what is allowed."""


class NotAnImage(ImageDataError):
    """Bytes that are not a readable PNG or JPEG (HTTP 415)."""


class TooManyPixels(ImageDataError):
    """An image over the pixel limit, found from its header alone (HTTP 413)."""


class TooManyBytes(TooManyPixels):
    """An image whose decoded pixels would be over the byte limit, found from its header alone (HTTP 413)."""


class TooMuchMetadata(ImageDataError):
    """A PNG whose text or ICC profile chunks decompress to more than PIL's limits (HTTP 413)."""


def _metadata_limit(exc: ValueError, where: str) -> TooMuchMetadata | None:
    """PIL's ValueError for a PNG text chunk (zTXt, iTXt) or ICC profile that decompresses to more than
    ``PngImagePlugin.MAX_TEXT_CHUNK`` bytes, or text chunks over ``MAX_TEXT_MEMORY`` in all, as a
    :class:`TooMuchMetadata`; None for any other ValueError."""
    message = str(exc).lower()
    if "decompressed data too large" in message:
        return TooMuchMetadata(
            f"{where} has a PNG text or ICC profile chunk that decompresses to over "
            f"{PngImagePlugin.MAX_TEXT_CHUNK} bytes; at most {PngImagePlugin.MAX_TEXT_CHUNK} are allowed per "
            "chunk: strip the image's metadata"
        )
    if "too much memory used in text chunks" in message:
        return TooMuchMetadata(
            f"{where} has PNG text chunks of over {PngImagePlugin.MAX_TEXT_MEMORY} bytes in all; at most "
            f"{PngImagePlugin.MAX_TEXT_MEMORY} are allowed: strip the image's metadata"
        )
    return None


@dataclass(frozen=True)
class ImageSet:
    name: str
    x: np.ndarray  # [N, H, W, C] float32 in the source's units
    y: np.ndarray  # [N] int64 indices into labels
    labels: tuple[str, ...]
    color_mode: str  # "grayscale" (C = 1) or "rgb" (C = 3)
    offset: float = 0.0
    scale: float = 255.0
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        height, width, channels = self.x.shape[1:]
        return int(height), int(width), int(channels)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.x, np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.y, np.int64).tobytes())
        digest.update("\n".join(self.labels).encode())
        return digest.hexdigest()[:16]

    def normalised(self, index=slice(None)) -> np.ndarray:
        return ((self.x[index] - self.offset) / self.scale).astype(np.float32)

    def counts(self) -> dict[str, int]:
        counts = Counter(self.y.tolist())
        return {label: counts.get(i, 0) for i, label in enumerate(self.labels)}

    def split(self, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Stratified (train, test) indices: ``test_fraction`` of every class held out, seeded."""
        from sklearn.model_selection import train_test_split

        indices = np.arange(len(self))
        train, test = train_test_split(indices, test_size=test_fraction, stratify=self.y, random_state=seed)
        return np.sort(train), np.sort(test)


def check_classes(y: np.ndarray, labels, min_per_class: int = MIN_PER_CLASS) -> None:
    counts = Counter(np.asarray(y).tolist())
    if len(labels) < 2:
        raise ImageDataError(f"{len(labels)} class(es) found ({', '.join(map(repr, labels))}); at least 2 are needed")
    for i, label in enumerate(labels):
        if counts.get(i, 0) < min_per_class:
            raise ImageDataError(
                f"class {label!r} has {counts.get(i, 0)} images; at least {min_per_class} are needed per class"
            )


def value_range(x: np.ndarray, where: str) -> tuple[float, float]:
    """The normalisation (offset, scale) for pixel values: 0..1 stays, 0..255 is divided by 255."""
    if not np.isfinite(x).all():
        raise ImageDataError(f"{where} holds NaN or infinite pixel values; only finite numbers are allowed")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ImageDataError(f"{where} pixel values run from {lo:g} to {hi:g}; allowed are 0..1 or 0..255")
    return (0.0, 1.0) if hi <= 1 else (0.0, 255.0)


# --- sources ----------------------------------------------------------------------------------------------
def load_digits_set() -> ImageSet:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return ImageSet(
        name="digits",
        x=digits.images.astype(np.float32)[..., None],
        y=digits.target.astype(np.int64),
        labels=tuple(str(c) for c in digits.target_names),
        color_mode="grayscale",
        offset=0.0,
        scale=16.0,  # 4-bit grey levels 0..16
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits, 8x8, 0..16)",
    )


def _labels_from(y: np.ndarray, names: np.ndarray | None, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # CIFAR-10 stores labels as [N, 1]
        y = y[:, 0]
    if y.ndim != 1:
        raise ImageDataError(f"{where}: y must be one label per image, shape [N] or [N, 1]; got {y.shape}")
    if y.dtype.kind in "iu":
        classes = np.unique(y)
        index = np.searchsorted(classes, y)
        if names is not None:
            label_names = [str(n) for n in np.asarray(names).ravel()]
            if classes.min() < 0 or classes.max() >= len(label_names):
                raise ImageDataError(
                    f"{where}: labels run from {classes.min()} to {classes.max()} but label_names has {len(label_names)} entries"
                )
            labels = tuple(label_names[c] for c in classes)
        else:
            labels = tuple(str(c) for c in classes)
        return index.astype(np.int64), labels
    if y.dtype.kind in "US":
        classes, index = np.unique(y.astype(str), return_inverse=True)
        return index.astype(np.int64), tuple(str(c) for c in classes)
    raise ImageDataError(f"{where}: y must hold integer or string labels; got dtype {y.dtype}")


def _as_nhwc(x: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    x = np.asarray(x)
    if x.dtype.kind not in "uif" or x.dtype.kind == "b":
        raise ImageDataError(f"{where}: x must hold numbers; got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ImageDataError(
            f"{where}: x must be [N, height, width] (grayscale) or [N, height, width, 1 or 3]; got shape {x.shape}"
        )
    return x.astype(np.float32), ("grayscale" if x.shape[-1] == 1 else "rgb")


def load_npz(path: Path) -> ImageSet:
    """``x`` and ``y`` arrays, or the keras.datasets layout ``x_train, y_train[, x_test, y_test]`` (joined; our
    own stratified split is used). An optional ``label_names`` array names integer labels. Never unpickles."""
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except ValueError as exc:
        raise ImageDataError(
            f"{where}: cannot read it without unpickling objects ({exc}); store plain numeric arrays"
        ) from None
    except (OSError, EOFError) as exc:
        raise ImageDataError(f"{where} is not a readable .npz archive ({exc})") from None
    if {"x", "y"} <= arrays.keys():
        x, y = arrays["x"], arrays["y"]
    elif {"x_train", "y_train"} <= arrays.keys():
        parts = [("x_train", "y_train")] + ([("x_test", "y_test")] if {"x_test", "y_test"} <= arrays.keys() else [])
        try:
            x = np.concatenate([arrays[a] for a, _ in parts])
            y = np.concatenate([arrays[b] for _, b in parts])
        except ValueError as exc:
            raise ImageDataError(f"{where}: x_train and x_test do not fit together ({exc})") from None
    else:
        raise ImageDataError(
            f"{where} holds arrays {', '.join(sorted(arrays)) or 'none'}; expected x and y (or x_train and y_train)"
        )
    x, color_mode = _as_nhwc(x, where)
    if len(x) != len(y):
        raise ImageDataError(f"{where}: x has {len(x)} images but y has {len(y)} labels; give one label per image")
    index, labels = _labels_from(y, arrays.get("label_names"), where)
    offset, scale = value_range(x, where)
    check_classes(index, labels)
    return ImageSet(path.stem, x, index, labels, color_mode, offset, scale, source=f"npz: {path.resolve()}")


_MODE_NAMES = {
    "1": "1-bit black-and-white",
    "L": "8-bit grayscale",
    "LA": "8-bit grayscale+alpha",
    "P": "8-bit palette",
    "PA": "8-bit palette+alpha",
    "I;16": "16-bit grayscale",
    "I;16B": "16-bit grayscale",
    "I;16L": "16-bit grayscale",
    "I": "32-bit grayscale",
    "F": "32-bit float grayscale",
    "RGB": "8-bit RGB",
    "RGBA": "8-bit RGBA",
    "CMYK": "8-bit CMYK",
    "YCbCr": "8-bit YCbCr",
}


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """width x height x bands x bytes per band of ``mode`` ("I;16": 1 x 2, "RGBA": 4 x 1)."""
    descriptor = ImageMode.getmode(mode)
    return size[0] * size[1] * len(descriptor.bands) * np.dtype(descriptor.typestr).itemsize


def open_image(
    data: bytes | Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    where: str = "the file",
    max_bytes: int | None = None,
    size: tuple[int, int] | None = None,
) -> Image.Image:
    """A PNG or JPEG, checked from its header alone (format, pixel count, decoded bytes), then decoded.

    Raises :class:`NotAnImage` for anything else (or a file that fails to decode), :class:`TooManyPixels`
    when width x height is over ``max_pixels`` and :class:`TooManyBytes` when width x height x bands x bytes
    per band is over ``max_bytes`` -- before any pixel data is decompressed -- and :class:`TooMuchMetadata`
    for a PNG text or ICC profile chunk over PIL's decompressed-size limits. ``size`` (width, height): the
    size the caller will shrink to; a JPEG at least twice as big is decoded at 1/2, 1/4 or 1/8 scale (never
    below ``size``) and its bytes are checked at that scale.
    """
    allowed = " or ".join(IMAGE_FORMATS)
    with io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else open(data, "rb") as stream:
        try:
            image = Image.open(stream, formats=IMAGE_FORMATS)  # reads the header only
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(
                f"{where} is a decompression bomb ({exc}); at most {max_pixels} pixels are allowed"
            ) from None
        except ValueError as exc:  # PIL's text-chunk limits (a PNG's metadata before its pixels), or no image
            raise _metadata_limit(exc, where) or NotAnImage(f"{where} is not a {allowed} image") from None
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise NotAnImage(f"{where} is not a {allowed} image") from None
        width, height = image.size
        if width * height > max_pixels:
            raise TooManyPixels(
                f"{where} is {width}x{height} = {width * height} pixels; at most {max_pixels} are allowed"
            )
        if size is not None and image.format == "JPEG":
            image.draft(None, size)  # DCT scaling: the full-size pixels are never held
        if max_bytes is not None:
            needed = decoded_bytes(image.mode, image.size)
            if needed > max_bytes:
                kind = _MODE_NAMES.get(image.mode, f"mode {image.mode}")
                raise TooManyBytes(
                    f"{where} decodes to {image.size[0]}x{image.size[1]} {kind} = {needed} bytes; "
                    f"at most {max_bytes} are allowed"
                )
        try:
            image.load()
        except Image.DecompressionBombError as exc:
            raise TooManyPixels(
                f"{where} is a decompression bomb ({exc}); at most {max_pixels} pixels are allowed"
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            too_much = _metadata_limit(exc, where) if isinstance(exc, ValueError) else None  # text after the pixels
            if too_much is not None:
                raise too_much from None
            raise NotAnImage(f"{where} is a damaged {image.format} image that cannot be decoded ({exc})") from None
        return image


def is_grayscale(image: Image.Image) -> bool:
    return image.mode in ("1", "L", "LA", "I", "I;16", "F")


_BAND_PIXELS = 1 << 17  # pixels converted at a time from 16/32-bit: the float temporary stays ~1 MB


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit grey ("I", "I;16", "F") as "L": value / 257, clipped, truncated; a band of rows at a time."""
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    step = max(1, _BAND_PIXELS // max(width, 1))
    for top in range(0, height, step):
        band = np.asarray(image.crop((0, top, width, min(top + step, height))), dtype=np.float64)
        np.divide(band, 257.0, out=band)
        np.clip(band, 0, 255, out=band)
        out[top : top + step] = band  # truncates, as astype(np.uint8) did
    return Image.fromarray(out)


def to_array(image: Image.Image, color_mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """``[H, W, C]`` float32 in 0..255 (C = 1 for grayscale, 3 for RGB); alpha is composited onto black.

    ``size`` (width, height): resized to it when it differs (box filter when shrinking, bilinear when growing).
    Only the resized image becomes floats, so a large upload costs about its 8-bit size on top of itself.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit PNGs: scale to 8 bits first
        image = _to_8bit(image)
    target = "L" if color_mode == "grayscale" else "RGB"
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    if image.mode != target:  # convert() to the same mode would only copy
        image = image.convert(target)
    if size is not None and image.size != size:
        shrinking = image.size[0] * image.size[1] > size[0] * size[1]
        image = image.resize(size, Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


def load_folder(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSet:
    """One sub-folder per class (its name is the label) of PNG/JPEG files, all the same size."""
    classes = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageDataError(
            f"{path} has no sub-folders; put each class's PNG/JPEG files in a sub-folder named after it"
        )
    files: list[tuple[Path, int]] = []
    for i, folder in enumerate(classes):
        found = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        files += [(f, i) for f in found]
    labels = tuple(p.name for p in classes)
    check_classes(np.array([i for _, i in files], dtype=np.int64), labels)
    images = []
    for file, _ in files:
        images.append(open_image(file, max_pixels, where=str(file)))
    first = images[0]
    for file_image, (file, _) in zip(images, files, strict=True):
        if file_image.size != first.size:
            raise ImageDataError(
                f"images differ in size: {files[0][0]} is {first.size[0]}x{first.size[1]} but {file} is "
                f"{file_image.size[0]}x{file_image.size[1]}; every image must have the same width and height"
            )
    color_mode = "grayscale" if all(is_grayscale(im) for im in images) else "rgb"
    x = np.stack([to_array(im, color_mode) for im in images])
    y = np.array([i for _, i in files], dtype=np.int64)
    return ImageSet(path.name, x, y, labels, color_mode, 0.0, 255.0, source=f"folder: {path.resolve()}")


def load_images(spec: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSet:
    """``digits``, a ``.npz`` file, or a folder of class sub-folders."""
    if str(spec) in BUILTIN_IMAGES:
        return load_digits_set()
    path = Path(spec)
    if path.is_dir():
        return load_folder(path, max_pixels)
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise ImageDataError(f"{path} is a {path.suffix or 'suffix-less'} file; give a .npz, a folder or digits")
        return load_npz(path)
    raise ImageDataError(
        f"{spec!r} is neither a built-in ({', '.join(BUILTIN_IMAGES)}) nor an existing .npz file or folder"
    )
