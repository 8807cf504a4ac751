"""``POST /v1/classify``: the CNN classifier from the registry, on the forecast endpoints' shared model cache.

Two bodies (the contract in docs/architecture.md):

* ``multipart/form-data`` with a ``file`` field (a PNG or JPEG of any size: converted to the model's grayscale
  or RGB, resized to its input, 0..255 mapped to the trained 0..1) and a ``model`` field (``alias``,
  ``version`` and ``top_k`` optional);
* ``application/json`` ``{"model": NAME, "image": [[...], ...]}``: exactly the model's height x width (x 3
  for RGB) in the training data's units (0..16 for ``digits``, 0..255 for 8-bit data).

-> ``{"model", "version", "predictions": [{"label", "probability"}, ...]}``, the ``top_k`` (default 5) most
probable labels, best first. Bad input is a 4xx that names the problem: 415 for bytes that are not a PNG/JPEG
(or another content type), 413 for an upload over ``SEQCAST_MAX_BODY_BYTES`` or an image over
``SEQCAST_MAX_IMAGE_PIXELS`` pixels or ``SEQCAST_MAX_IMAGE_BYTES`` decoded bytes (both read from its header,
before decoding) or a PNG whose text or ICC profile chunks decompress to more than PIL's limit (1 MB each),
422 for wrong fields, shapes or values.

Memory: at most ``SEQCAST_IMAGE_DECODE_CONCURRENCY`` uploads per app are decoded at once (others wait), each
bounded by ``SEQCAST_MAX_IMAGE_BYTES``; JPEGs are decoded at the smallest DCT scale that still covers the
model's input.
"""

from __future__ import annotations

import json
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from pipelines.settings import Settings
from pipelines.vision.classifier import Classifier, ImageInputError
from pipelines.vision.data import NotAnImage, TooManyBytes, TooManyPixels, TooMuchMetadata, open_image
from pipelines.vision.pyfunc import CLASSIFIER_ARTIFACT
from service.deps import CacheDep, SettingsDep
from service.errors import MODEL_RESPONSES, ErrorBody, InvalidRequest, Responses
from service.routes import served_model
from service.schemas import MAX_VERSION, FiniteNumber, ModelName, Version

MAX_TOP_K = 1000
DEFAULT_TOP_K = 5


def warm_classifier(classifier: Classifier) -> None:
    """Trace the compiled forward pass before the model takes traffic."""
    classifier.predict_proba(np.zeros((1, *classifier.input_shape), np.float32))


router = APIRouter(prefix="/v1", tags=["classify"])

Pixel = FiniteNumber | Annotated[list[FiniteNumber], Field(min_length=1, max_length=4)]


# scikit-learn's first digit (a 0), 8x8 in the digits' units (0 to 16): `make run`'s model `digits` takes it
EXAMPLE_DIGIT: list[JsonValue] = [
    [0, 0, 5, 13, 9, 1, 0, 0],
    [0, 0, 13, 15, 10, 15, 5, 0],
    [0, 3, 15, 2, 0, 11, 8, 0],
    [0, 4, 12, 0, 0, 8, 8, 0],
    [0, 5, 8, 0, 0, 9, 8, 0],
    [0, 4, 11, 0, 1, 12, 7, 0],
    [0, 2, 14, 5, 10, 12, 0, 0],
    [0, 0, 6, 13, 10, 0, 0, 0],
]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"model": "digits", "image": EXAMPLE_DIGIT, "top_k": 3}]}
    )

    model: ModelName
    image: list[Annotated[list[Pixel], Field(min_length=1)]] = Field(
        min_length=1,
        description="height rows of width pixels in the training data's units: numbers (grayscale) or [R, G, B]",
    )
    alias: str | None = Field(
        default=None, min_length=1, max_length=256, description="registry alias (default champion)"
    )
    version: Version | None = None
    top_k: int = Field(default=DEFAULT_TOP_K, strict=True, ge=1, le=MAX_TOP_K, description="labels to return")


class Prediction(BaseModel):
    label: str
    probability: float


class ClassifyResponse(BaseModel):
    model: str
    version: str = Field(description="the registry version that produced these predictions")
    predictions: list[Prediction] = Field(description="the top_k labels, most probable first")


class UploadForm(BaseModel):
    """The multipart fields besides ``file`` (form values arrive as text)."""

    model_config = ConfigDict(extra="forbid")

    model: ModelName
    alias: str | None = Field(default=None, min_length=1, max_length=256)
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)] | None = None  # not strict: form values are text
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "a PNG or JPEG image"},
        "model": {"type": "string", "description": "registered model name"},
        "alias": {"type": "string"},
        "version": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K, "default": DEFAULT_TOP_K},
    },
}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}},
        },
    }
}
_RESPONSES: Responses = {  # the body is read here, not by FastAPI: no 400 (an unreadable body is a 422)
    **MODEL_RESPONSES,
    413: {
        "model": ErrorBody,
        "description": "the request body is over the size limit, or the image over the pixel or decoded-bytes "
        "limit, or its PNG metadata (text or ICC profile chunks) over the decompressed-size limit",
    },
    415: {
        "model": ErrorBody,
        "description": "the upload is not a PNG or JPEG, or the body is neither multipart nor JSON",
    },
    422: {
        "model": InvalidRequest,
        "description": "wrong fields (a list of issues), or one message: an unreadable multipart body (no boundary, "
        "more than one file, ...), no 'file' part, an image whose shape or values the model does not take",
    },
}


def _invalid(exc: ValidationError, prefix: tuple = ("body",)) -> RequestValidationError:
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        errors.append({**error, "loc": (*prefix, *error["loc"])})
    return RequestValidationError(errors)


def _decode_limiter(request: Request, settings: Settings) -> anyio.CapacityLimiter:
    """The app's limiter on concurrent decodes, made on first use: inside the running event loop (older anyio
    cannot make one outside it) and per app (one process, e.g. the tests, may hold many)."""
    limiter = getattr(request.app.state, "image_decode_limiter", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(max(1, settings.image_decode_concurrency))
        request.app.state.image_decode_limiter = limiter
    return limiter


MAX_FORM_FIELDS = 8  # text fields (UploadForm has 4); the file part is counted apart, at most 1


def _unreadable_form(message: str) -> HTTPException:
    """A 422 for a multipart body the parser refused (``message``: Starlette's words), saying what is allowed."""
    if message.startswith("Too many files"):
        detail = "only one file is allowed, in the field 'file'; model, alias, version, top_k are text"
    elif message.startswith("Too many fields"):
        detail = f"the form has over {MAX_FORM_FIELDS} text fields; the fields are file, model, alias, version, top_k"
    elif message.startswith("Missing boundary"):
        detail = (
            "the Content-Type multipart/form-data has no boundary, so the parts cannot be found; send "
            "multipart/form-data; boundary=... as HTTP clients build it (e.g. curl -F file=@digit.png -F model=NAME)"
        )
    else:
        detail = f"unreadable multipart body ({message.rstrip('.')}); send one 'file' part and text fields"
    return HTTPException(422, detail)


async def _from_upload(request: Request) -> tuple[UploadForm, bytes]:
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except MultiPartException as exc:  # outside an app; inside one, Starlette raises it as the 400 below
        raise _unreadable_form(exc.message) from None
    except StarletteHTTPException as exc:
        if exc.status_code != 400:  # e.g. the body size limit's 413
            raise
        raise _unreadable_form(str(exc.detail)) from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            detail = "field 'file' must be a file upload" if upload is not None else "field 'file' is missing"
            raise HTTPException(422, f"{detail}: send the image as the multipart file field 'file' (PNG or JPEG)")
        fields = {k: v for k, v in form.multi_items() if k != "file"}  # text only: max_files=1 refused a second file
        try:
            params = UploadForm.model_validate(fields)
        except ValidationError as exc:
            raise _invalid(exc, ("body",)) from None
        return params, await upload.read()
    finally:
        await form.close()


def _json_response(body: dict) -> Response:
    return Response(json.dumps(body, allow_nan=False), media_type="application/json")


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=_RESPONSES,
    openapi_extra=_OPENAPI,
    summary="Classify one image (PNG/JPEG upload or a JSON pixel array): the top-k labels with probabilities",
)
async def classify(request: Request, cache: CacheDep, settings: SettingsDep) -> Response:
    params: UploadForm | ClassifyRequest  # the fields both bodies share: model, alias, version, top_k
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        params, data = await _from_upload(request)
        loaded = await served_model(
            cache, CLASSIFIER_ARTIFACT, "an image classifier", params.model, params.alias, params.version
        )
        classifier: Classifier = loaded.model
        height, width, _ = classifier.input_shape

        def prepare() -> np.ndarray:
            image = open_image(
                data, settings.max_image_pixels, "the uploaded file", settings.max_image_bytes, (width, height)
            )
            return classifier.prepare_image(image)[None]

        try:  # only the decode holds a token: predicting an input-sized array needs little memory
            batch = await anyio.to_thread.run_sync(prepare, limiter=_decode_limiter(request, settings))
        except NotAnImage as exc:
            raise HTTPException(415, f"{exc}; upload a PNG or JPEG") from None
        except TooManyBytes as exc:
            raise HTTPException(413, f"{exc} (SEQCAST_MAX_IMAGE_BYTES)") from None
        except TooManyPixels as exc:
            raise HTTPException(413, f"{exc} (SEQCAST_MAX_IMAGE_PIXELS)") from None
        except TooMuchMetadata as exc:
            raise HTTPException(413, str(exc)) from None

    elif content_type in ("application/json", ""):
        try:
            params = ClassifyRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from None
        loaded = await served_model(
            cache, CLASSIFIER_ARTIFACT, "an image classifier", params.model, params.alias, params.version
        )
        classifier = loaded.model
        try:
            batch = classifier.check_array(params.image)[None]
        except ImageInputError as exc:
            raise HTTPException(422, str(exc)) from None

    else:
        raise HTTPException(
            415,
            f"content type {content_type!r} is not accepted; send multipart/form-data (a PNG/JPEG in the field "
            "'file' and the field 'model') or application/json ({\"model\": ..., \"image\": [[...]]})",
        )
    probabilities = await anyio.to_thread.run_sync(lambda: classifier.predict_proba(batch)[0])
    return _json_response(
        {"model": params.model, "version": loaded.version, "predictions": classifier.top_k(probabilities, params.top_k)}
    )
