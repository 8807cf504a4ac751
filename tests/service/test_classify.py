"""``POST /v1/classify`` through the ASGI app on real registered CNNs: PNG uploads and JSON arrays, top-k,
each bad input's status and detail, and @champion moved under load (the forecast hot-swap test's pattern)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from svc_helpers import API_KEY, call, client_for, copy_versions, digit_png, make_settings, png
from svc_helpers import DIGITS as NAME

from pipelines.tracking.registry import CHAMPION
from service.app import create_app
from service.routes import classify as classify_module


def png_header_only(width: int, height: int, bit_depth: int = 8) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def app(digits, data_dir):
    return create_app(make_settings(data_dir, preload_models="", max_image_pixels=10_000))


@pytest.fixture(scope="module")
def big_app(digits, data_dir):
    """Room for 2000x2000 uploads (4000000 pixels) of at most 4000000 decoded bytes: 8-bit grey, not 16-bit."""
    return create_app(make_settings(data_dir, preload_models="", max_body_bytes=200_000, max_image_bytes=4_000_000))


def upload(app, content: bytes, model: str = NAME, filename: str = "digit.png", **fields):
    return call(
        app,
        "POST",
        "/v1/classify",
        files={"file": (filename, content, "image/png")},
        data={"model": model, **{k: str(v) for k, v in fields.items()}},
    )


def test_png_of_test_split_digits_comes_back_with_the_right_label(app, digits):
    data, test = digits["data"], digits["test"]
    assert digits["accuracy"] > 0.95
    first_of_each = [int(test[np.flatnonzero(data.y[test] == c)[0]]) for c in range(10)]
    for index in first_of_each:
        r = upload(app, digit_png(data.x[index]))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["version"]) == (NAME, "1")
        assert body["predictions"][0]["label"] == data.labels[data.y[index]]
        assert len(body["predictions"]) == 5
        probabilities = [p["probability"] for p in body["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0.5 < probabilities[0] <= 1.0


def test_png_json_and_pyfunc_preparation_agree(app, digits):
    data, index = digits["data"], int(digits["test"][0])
    from_png = upload(app, digit_png(data.x[index]), top_k=10).json()["predictions"]
    body = {"model": NAME, "image": data.x[index, :, :, 0].tolist(), "top_k": 10}
    from_json = call(app, "POST", "/v1/classify", json=body).json()["predictions"]
    assert [p["label"] for p in from_png][:1] == [p["label"] for p in from_json][:1]
    classifier = digits["classifiers"]["1"]
    expected = classifier.top_k(classifier.predict_proba(classifier.prepare_arrays(data.x[index]))[0], 10)
    assert from_json == expected  # the JSON path is exactly the pyfunc's preparation
    np.testing.assert_allclose([p["probability"] for p in from_png], [p["probability"] for p in from_json], atol=0.02)


def test_any_size_and_colour_is_converted_to_the_models_input(app, digits):
    data, index = digits["data"], int(digits["test"][3])
    small = upload(app, digit_png(data.x[index])).json()["predictions"]
    big = upload(app, digit_png(data.x[index], size=64)).json()["predictions"]  # box-filtered back to 8x8: exact
    assert big == small
    rgb = np.repeat(np.round(data.x[index] * 255 / 16), 3, axis=-1)
    assert upload(app, png(rgb)).json()["predictions"] == small
    buffer = io.BytesIO()
    Image.fromarray(np.round(data.x[index, :, :, 0] * 255 / 16).astype(np.uint8)).resize((32, 32)).save(
        buffer, "JPEG", quality=95
    )
    r = upload(app, buffer.getvalue(), filename="digit.jpg")
    assert r.status_code == 200 and r.json()["predictions"][0]["label"] == small[0]["label"]


def test_top_k_version_and_alias(app, digits):
    image = digits["data"].x[int(digits["test"][0]), :, :, 0].tolist()
    r = call(app, "POST", "/v1/classify", json={"model": NAME, "image": image, "top_k": 3, "version": 2})
    assert r.status_code == 200
    assert r.json()["version"] == "2" and len(r.json()["predictions"]) == 3
    r = call(app, "POST", "/v1/classify", json={"model": NAME, "image": image, "top_k": 50, "alias": "champion"})
    assert r.json()["version"] == "1" and len(r.json()["predictions"]) == 10  # capped at the classes
    assert sum(p["probability"] for p in r.json()["predictions"]) == pytest.approx(1.0, abs=1e-5)
    r = upload(app, digit_png(digits["data"].x[0]), top_k=1, version=2)
    assert r.json()["version"] == "2" and len(r.json()["predictions"]) == 1


def test_bytes_that_are_not_an_image_are_415(app, digits):
    assert upload(app, b"%PDF-1.4 definitely not a picture").json() == {
        "detail": "the uploaded file is not a PNG or JPEG image; upload a PNG or JPEG"
    }
    assert upload(app, b"%PDF-1.4").status_code == 415
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    r = upload(app, buffer.getvalue(), filename="digit.gif")
    assert (r.status_code, r.json()) == (
        415,
        {"detail": "the uploaded file is not a PNG or JPEG image; upload a PNG or JPEG"},
    )
    noise = png(np.random.default_rng(0).integers(0, 256, (60, 60)))
    r = upload(app, noise[: len(noise) // 2])
    assert r.status_code == 415
    assert r.json()["detail"].startswith("the uploaded file is a damaged PNG image that cannot be decoded")


def test_other_content_types_are_415(app, digits):
    r = call(app, "POST", "/v1/classify", content=b"model=svc_digits", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["detail"].startswith("content type 'text/plain' is not accepted; send multipart/form-data")


def test_images_over_the_pixel_limit_are_413_from_the_header(app, digits):
    r = upload(app, png(np.zeros((100, 200))))  # 20 000 pixels, a few hundred bytes
    assert (r.status_code, r.json()) == (
        413,
        {"detail": "the uploaded file is 200x100 = 20000 pixels; at most 10000 are allowed (SEQCAST_MAX_IMAGE_PIXELS)"},
    )
    r = upload(app, png_header_only(100_000, 100_000))  # a bomb: never decoded
    assert r.status_code == 413
    assert r.json()["detail"].startswith("the uploaded file is a decompression bomb")
    r = upload(app, png_header_only(5_000, 4))
    assert (r.status_code, r.json()["detail"]) == (
        413,
        "the uploaded file is 5000x4 = 20000 pixels; at most 10000 are allowed (SEQCAST_MAX_IMAGE_PIXELS)",
    )


def test_png_with_a_text_chunk_over_the_decompressed_limit_is_413(app, digits):
    """PIL's "Decompressed data too large" ValueError was answered 415 "is not a PNG or JPEG image"."""
    image = digit_png(digits["data"].x[0])
    at = image.index(b"IDAT") - 4
    text = b"Comment\x00\x00" + zlib.compress(b"a" * 2_000_000, 9)  # 2 MB of text in 2 kB
    chunk = struct.pack(">I", len(text)) + b"zTXt" + text + struct.pack(">I", zlib.crc32(b"zTXt" + text))
    r = upload(app, image[:at] + chunk + image[at:])
    assert (r.status_code, r.json()) == (
        413,
        {
            "detail": "the uploaded file has a PNG text or ICC profile chunk that decompresses to over 1048576 "
            "bytes; at most 1048576 are allowed per chunk: strip the image's metadata"
        },
    )


def test_upload_over_the_size_limit_is_413(app, digits):
    noise = png(np.random.default_rng(1).integers(0, 256, (100, 100, 3)))
    assert len(noise) > 20_000
    r = upload(app, noise)
    assert (r.status_code, r.json()) == (
        413,
        {"detail": "request body is over the limit of 20000 bytes (SEQCAST_MAX_BODY_BYTES)"},
    )


ROW = [0.0] * 8


@pytest.mark.parametrize(
    "image, detail",
    [
        ([ROW] * 7, "image has shape 7x8; model takes 8x8 grayscale images: 8 rows of 8 numbers"),
        ([ROW[:7]] * 8, "image has shape 8x7; model takes 8x8 grayscale images: 8 rows of 8 numbers"),
        ([[[0.0, 0.0, 0.0]] * 8] * 8, "image has shape 8x8x3; model takes 8x8 grayscale images: 8 rows of 8 numbers"),
        ([ROW] * 7 + [ROW[:5]], "image must be 8 rows of 8 numbers (a rectangular array of numbers)"),
        ([ROW] * 7 + [[17.0] + ROW[1:]], "image has pixel values from 0 to 17; this model takes 0..16"),
        ([ROW] * 7 + [[-1.0] + ROW[1:]], "image has pixel values from -1 to 0; this model takes 0..16"),
    ],
)
def test_json_images_of_the_wrong_shape_or_values_are_422(app, digits, image, detail):
    r = call(app, "POST", "/v1/classify", json={"model": NAME, "image": image})
    assert (r.status_code, r.json()) == (422, {"detail": detail})


@pytest.mark.parametrize(
    "raw, loc",
    [
        ('{"model": "svc_digits", "image": [["a"]]}', ["body", "image", 0, 0]),
        ('{"model": "svc_digits", "image": [[NaN]]}', None),
        ('{"model": "svc_digits", "image": [[true]]}', ["body", "image", 0, 0]),
        ('{"model": "svc_digits", "image": []}', ["body", "image"]),
        ('{"model": "svc_digits", "image": 3}', ["body", "image"]),
        ('{"image": [[0]]}', ["body", "model"]),
        ('{"model": "svc_digits", "image": [[0]], "top_k": 0}', ["body", "top_k"]),
        ('{"model": "svc_digits", "image": [[0]], "colour": "red"}', ["body", "colour"]),
        ('{"model": "svc_digits", "image": [[0]', None),
    ],
)
def test_json_of_the_wrong_types_is_422_naming_the_field(app, digits, raw, loc):
    r = call(app, "POST", "/v1/classify", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    errors = r.json()["detail"]
    assert isinstance(errors, list) and errors
    if loc is not None:
        assert errors[0]["loc"][: len(loc)] == loc


@pytest.mark.parametrize(
    "data, detail",
    [
        ({"model": NAME}, "field 'file' is missing: send the image as the multipart file field 'file' (PNG or JPEG)"),
        (
            {"model": NAME, "file": "not a file"},
            "field 'file' must be a file upload: send the image as the multipart file field 'file' (PNG or JPEG)",
        ),
    ],
)
def test_multipart_without_a_file_is_422(app, digits, data, detail):
    r = call(app, "POST", "/v1/classify", data=data, files={"other": ("other.txt", b"123", "text/plain")})
    assert (r.status_code, r.json()) == (422, {"detail": detail})


def test_a_form_without_multipart_is_415(app, digits):
    r = call(app, "POST", "/v1/classify", data={"model": NAME})
    assert r.status_code == 415
    assert r.json()["detail"].startswith("content type 'application/x-www-form-urlencoded' is not accepted")


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


ONE_PNG = _part("file", b"\x89PNG", "a.png")
MULTIPART = "multipart/form-data; boundary=b"


@pytest.mark.parametrize(
    "body, content_type, detail",
    [
        (
            ONE_PNG + _part("file2", b"\x89PNG", "b.png") + _part("model", NAME.encode()) + b"--b--\r\n",
            MULTIPART,
            "only one file is allowed, in the field 'file'; model, alias, version, top_k are text",
        ),
        (
            ONE_PNG + b"".join(_part(f"f{i}", b"1") for i in range(9)) + b"--b--\r\n",
            MULTIPART,
            "the form has over 8 text fields; the fields are file, model, alias, version, top_k",
        ),
        (
            ONE_PNG + _part("model", NAME.encode()) + b"--b--\r\n",
            "multipart/form-data",
            "the Content-Type multipart/form-data has no boundary, so the parts cannot be found; send "
            "multipart/form-data; boundary=... as HTTP clients build it (e.g. curl -F file=@digit.png -F model=NAME)",
        ),
        (
            b"--b\r\ngarbage\r\n\r\n",
            MULTIPART,
            "unreadable multipart body (Invalid multipart data); send one 'file' part and text fields",
        ),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--\r\n",
            MULTIPART,
            'unreadable multipart body (The Content-Disposition header field "name" must be provided); send one '
            "'file' part and text fields",
        ),
    ],
    ids=["two-files", "too-many-fields", "no-boundary", "invalid", "part-without-name"],
)
def test_multipart_the_parser_refuses_is_a_422_saying_what_is_allowed(app, digits, body, content_type, detail):
    """Starlette turns these into its own 400 ("Too many files. Maximum number of files is 1.") inside
    request.form(), which the route's 422 with guidance did not catch."""
    r = call(app, "POST", "/v1/classify", content=body, headers={"content-type": content_type})
    assert (r.status_code, r.json()) == (422, {"detail": detail})


def test_the_documented_statuses_are_the_ones_classify_answers(app):
    """No 400: the body is read by the route, and an unreadable one is a 422."""
    responses = app.openapi()["paths"]["/v1/classify"]["post"]["responses"]
    assert sorted(responses) == ["200", "404", "413", "415", "422", "503"]


def test_multipart_field_errors_are_422(app, digits):
    image = digit_png(digits["data"].x[0])
    r = upload(app, image, top_k="many")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "top_k"]
    r = call(app, "POST", "/v1/classify", files={"file": ("d.png", image, "image/png")})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "model"]
    r = upload(app, image, alias="champion", version=1)
    assert (r.status_code, r.json()) == (422, {"detail": "give either alias or version, not both"})


def test_unknown_models_and_versions_are_404(app, digits):
    r = upload(app, digit_png(digits["data"].x[0]), model="no_such_model")
    assert (r.status_code, r.json()) == (
        404,
        {"detail": "no registered model named 'no_such_model'; GET /v1/models lists them"},
    )
    r = call(app, "POST", "/v1/classify", json={"model": NAME, "image": [ROW] * 8, "version": 99})
    assert (r.status_code, r.json()) == (
        404,
        {"detail": f"model '{NAME}' has no version 99; GET /v1/models/{NAME} lists them"},
    )


def test_forecasters_and_classifiers_are_not_mixed_up(digits, registered, data_dir):
    app = create_app(make_settings(data_dir, preload_models=""))
    forecaster = registered["name"]
    r = call(app, "POST", "/v1/classify", json={"model": forecaster, "image": [ROW] * 8})
    assert (r.status_code, r.json()) == (
        422,
        {"detail": f"model '{forecaster}' version 1 is a forecaster, not an image classifier"},
    )
    r = call(app, "POST", "/v1/forecast", json={"model": NAME, "history": [1.0] * 10, "horizon": 2})
    assert (r.status_code, r.json()) == (422, {"detail": f"model '{NAME}' version 1 is a classifier, not a forecaster"})


def test_classifier_is_listed_and_served_after_startup_preload(digits, data_dir):
    app = create_app(make_settings(data_dir, preload_models=NAME))

    async def main():
        async with app.router.lifespan_context(app), client_for(app) as client:
            for _ in range(600):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            models = (await client.get(f"/v1/models/{NAME}")).json()
            assert ("@champion", "1", "classifier") in [(e["ref"], e["version"], e["kind"]) for e in models["loaded"]]
            image = digits["data"].x[0, :, :, 0].tolist()
            r = await client.post("/v1/classify", json={"model": NAME, "image": image, "top_k": 1})
            assert r.json()["predictions"][0]["label"] == "0"

    asyncio.run(main())


def test_moving_champion_under_load_swaps_atomically(digits, data_dir):
    """As the forecast hot-swap test: 16 clients classify while @champion moves 1 -> 2 and /reload runs."""
    name = copy_versions(digits["client"], NAME, "svc_digits_swap")
    data = digits["data"]
    images = [data.x[int(i), :, :, 0] for i in digits["test"][:8]]
    expected = {
        v: [c.top_k(c.predict_proba(c.prepare_arrays(img))[0], 3) for img in images]
        for v, c in digits["classifiers"].items()
    }
    assert expected["1"] != expected["2"]
    app = create_app(make_settings(data_dir, preload_models=""))
    results = []  # (start order, image index, status, body)
    moved_at = None  # start order of the first request begun after the alias moved
    swap_done_at = None  # ... after the reload returned

    async def main():
        nonlocal moved_at, swap_done_at
        async with client_for(app) as client:
            body = {"model": name, "image": images[0].tolist(), "top_k": 3}
            assert (await client.post("/v1/classify", json=body)).json()["version"] == "1"
            started = 0

            async def worker(w: int):
                nonlocal started
                while swap_done_at is None or started < swap_done_at + 80:
                    order, k = started, (started + w) % len(images)
                    started += 1
                    r = await client.post("/v1/classify", json={"model": name, "image": images[k].tolist(), "top_k": 3})
                    results.append((order, k, r.status_code, r.json()))

            async def mover():
                nonlocal moved_at, swap_done_at
                while len(results) < 60:
                    await asyncio.sleep(0.001)
                moved_at = started
                digits["client"].set_registered_model_alias(name, CHAMPION, "2")
                r = await client.post(f"/v1/models/{name}/reload", headers={"X-API-Key": API_KEY})
                assert r.json() == {
                    "name": name,
                    "changes": [{"ref": "@champion", "version": "2", "previous": "1", "changed": True}],
                }
                swap_done_at = started

            await asyncio.gather(*(worker(w) for w in range(16)), mover())

    asyncio.run(main())
    assert len(results) >= 200
    assert [status for _, _, status, _ in results if status != 200] == []
    assert {b["version"] for *_, b in results} == {"1", "2"}
    for _, k, _, b in results:
        assert b["predictions"] == expected[b["version"]][k]  # each answer whole from the version it names
    assert {b["version"] for order, _, _, b in results if order >= swap_done_at} == {"2"}
    assert {b["version"] for order, _, _, b in results if order < moved_at} == {"1"}  # nothing swaps early


def test_16_bit_png_over_the_byte_limit_is_413_before_decoding(big_app, digits, data_dir):
    r = upload(big_app, png_header_only(2000, 2000, bit_depth=16))  # ~100 bytes; decoding it would fail (415)
    assert (r.status_code, r.json()) == (
        413,
        {
            "detail": "the uploaded file decodes to 2000x2000 16-bit grayscale = 8000000 bytes; at most 4000000 are allowed "
            "(SEQCAST_MAX_IMAGE_BYTES)"
        },
    )
    data, index = digits["data"], int(digits["test"][5])
    grey = np.round(data.x[index, :, :, 0] * 255 / 16).astype(np.uint16)
    big_16 = io.BytesIO()
    Image.fromarray((grey * 257).repeat(250, 0).repeat(250, 1)).save(big_16, format="PNG")  # a real one, ~10 kB
    r = upload(big_app, big_16.getvalue())
    assert r.status_code == 413 and "2000x2000 16-bit grayscale = 8000000 bytes" in r.json()["detail"]
    # the same image at 8 bits is exactly at the limit: decoded, box-filtered back to 8x8, classified as the small one
    small = upload(big_app, digit_png(data.x[index])).json()
    r = upload(big_app, digit_png(data.x[index], size=2000))
    assert r.status_code == 200, r.text
    assert r.json() == small and small["predictions"][0]["label"] == data.labels[data.y[index]]
    # with room for it, the 16-bit image classifies exactly as the 8-bit one (value // 257)
    roomy = create_app(make_settings(data_dir, preload_models="", max_body_bytes=200_000))
    assert upload(roomy, big_16.getvalue()).json() == small


def test_big_jpeg_is_drafted_under_the_byte_limit_where_a_png_is_not(big_app, digits):
    """1600x1600 RGB is 7680000 bytes decoded in full: a PNG is refused, a JPEG is decoded at 1/8 (200x200)."""
    data, index = digits["data"], int(digits["test"][7])
    rgb = np.repeat(np.round(data.x[index] * 255 / 16), 3, axis=-1).astype(np.uint8).repeat(200, 0).repeat(200, 1)
    as_png = png(rgb)
    r = upload(big_app, as_png)
    assert (r.status_code, r.json()["detail"]) == (
        413,
        "the uploaded file decodes to 1600x1600 8-bit RGB = 7680000 bytes; at most 4000000 are allowed "
        "(SEQCAST_MAX_IMAGE_BYTES)",
    )
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    assert len(buffer.getvalue()) < 200_000
    r = upload(big_app, buffer.getvalue(), filename="digit.jpg")
    assert r.status_code == 200, r.text
    assert r.json()["predictions"][0]["label"] == data.labels[data.y[index]]


def test_uploads_decoded_at_once_are_bounded_per_app(digits, data_dir, monkeypatch):
    active, peak, lock = 0, 0, threading.Lock()
    real_open_image = classify_module.open_image

    def slow_open_image(*args, **kwargs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)
            return real_open_image(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(classify_module, "open_image", slow_open_image)
    image = digit_png(digits["data"].x[0])

    async def burst(app, n: int) -> list[int]:
        async with client_for(app) as client:
            files = {"file": ("d.png", image, "image/png")}
            rs = await asyncio.gather(
                *(client.post("/v1/classify", files=files, data={"model": NAME}) for _ in range(n))
            )
            return [r.status_code for r in rs]

    for concurrency in (2, 1):  # a fresh app each: its own limiter, made in the running loop
        app = create_app(make_settings(data_dir, preload_models="", image_decode_concurrency=concurrency))
        peak = 0
        assert asyncio.run(burst(app, 6)) == [200] * 6
        assert peak == concurrency
        assert asyncio.run(burst(app, 3)) == [200] * 3  # the limiter outlives the event loop that made it
        assert peak == concurrency


@pytest.mark.parametrize("body", ["json", "multipart"])
def test_version_beyond_the_registry_range_is_422(app, digits, body):
    huge = "9223372036854775808"  # 2**63: past any integer the registry can store
    if body == "json":
        raw = f'{{"model": "{NAME}", "image": {json.dumps([ROW] * 8)}, "version": {huge}}}'
        r = call(app, "POST", "/v1/classify", content=raw, headers={"content-type": "application/json"})
    else:
        r = upload(app, digit_png(digits["data"].x[0]), version=huge)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "version"]
    assert error["msg"] == "Input should be less than or equal to 2147483647"
    r = call(app, "POST", "/v1/classify", json={"model": NAME, "image": [ROW] * 8, "version": 2**31 - 1})
    assert (r.status_code, r.json()) == (
        404,
        {"detail": f"model '{NAME}' has no version 2147483647; GET /v1/models/{NAME} lists them"},
    )
