"""The routers (forecast, classify, models, ops) and the model lookup the model-serving ones share."""

from __future__ import annotations

from fastapi import HTTPException

from service.cache import LoadedModel, ModelCache


async def served_model(
    cache: ModelCache, kind: str, noun: str, name: str, alias: str | None, version: int | None, where: str = ""
) -> LoadedModel:
    """The model a request names (``@champion`` by default), which must be of ``kind`` (a ``noun``); else 422.

    ``where`` prefixes the messages (e.g. ``"requests[3]: "`` in a batch)."""
    if alias is not None and version is not None:
        raise HTTPException(422, f"{where}give either alias or version, not both")
    loaded = await cache.aget(name, alias, version)
    if loaded.kind != kind:
        raise HTTPException(422, f"{where}model {name!r} version {loaded.version} is a {loaded.kind}, not {noun}")
    return loaded
