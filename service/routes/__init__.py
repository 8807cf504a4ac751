"""The routers (forecast, classify, models, ops) and the model lookup the model-serving ones share; the route
class of JSON-only bodies."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from service.cache import LoadedModel, ModelCache
from service.schemas import ALIAS_OR_VERSION

JSON_TYPE = "application/json"


def not_json(content_type: str) -> HTTPException | None:
    """A 415 for a body whose Content-Type FastAPI would not parse as JSON (application/json or
    application/*+json, parameters such as charset allowed); None when it would."""
    if content_type == JSON_TYPE:  # what nearly every client sends: one comparison
        return None
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return None
    received = f"content type {media!r} is not accepted" if media else "the request has no Content-Type header"
    return HTTPException(415, f"{received}; send the body as JSON with Content-Type: {JSON_TYPE}")


class JsonBodyRoute(APIRoute):
    """A route whose body FastAPI validates as a JSON model: any other Content-Type is a 415 saying so, checked
    on the raw header before the body is read (FastAPI would validate the raw bytes against the model and
    answer "Input should be a valid dictionary or object to extract fields from")."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def json_only(request: Request) -> Response:
            refused = not_json(request.headers.get("content-type", ""))
            if refused is not None:
                raise refused
            return await handler(request)

        return json_only


async def served_model(
    cache: ModelCache,
    kind: str | tuple[str, ...],
    noun: str,
    name: str,
    alias: str | None,
    version: int | None,
    where: str = "",
) -> LoadedModel:
    """The model a request names (``@champion`` by default), which must be of ``kind`` (a ``noun``; a tuple: any
    of those kinds); else 422.

    ``where`` prefixes the messages (e.g. ``"requests[3]: "`` in a batch)."""
    if alias is not None and version is not None:
        raise HTTPException(422, f"{where}{ALIAS_OR_VERSION}")  # bodies the schemas do not read (classify's, a query)
    loaded = await cache.aget(name, alias, version)
    if loaded.kind not in ((kind,) if isinstance(kind, str) else kind):
        raise HTTPException(422, f"{where}model {name!r} version {loaded.version} is a {loaded.kind}, not {noun}")
    return loaded
