"""The service's one reader of the MLflow Model Registry: it owns the client, pages through every search
(``page_token``), and turns MLflow's "does not exist" into :class:`ModelNotFound` with a message that says what
exists. Blocking: callers run it on the model cache's registry pool (:meth:`service.cache.ModelCache.call`),
never on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.tracking.registry import CHAMPION, PAGE_SIZE, all_pages


class ModelNotFound(LookupError):
    """Unknown model name, version or alias; the message says what exists (404)."""


def is_not_found(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


def _escaped(name: str) -> str:
    return name.replace("\\", "\\\\").replace("'", "\\'")


class RegistryReader:
    def __init__(self, client: MlflowClient, page_size: int = PAGE_SIZE):
        self.client = client
        self.page_size = page_size

    def _pages(self, search: Callable[..., Any], *args: Any) -> Iterator[Any]:
        return all_pages(search, *args, page_size=self.page_size)

    def models(self) -> list[RegisteredModel]:
        """Every registered model, all pages."""
        return list(self._pages(self.client.search_registered_models, None))

    def champions(self) -> dict[str, str]:
        """name -> version of every registered model that has a ``@champion``."""
        return {m.name: str(m.aliases[CHAMPION]) for m in self.models() if CHAMPION in (m.aliases or {})}

    def model(self, name: str) -> RegisteredModel:
        try:
            return self.client.get_registered_model(name)
        except MlflowException as exc:
            if is_not_found(exc):
                raise ModelNotFound(f"no registered model named {name!r}; GET /v1/models lists them") from None
            raise

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, all pages, in the registry's order (404 for an unknown name)."""
        self.model(name)
        return list(self._pages(self.client.search_model_versions, f"name = '{_escaped(name)}'"))

    def version(self, name: str, version: str) -> ModelVersion:
        try:
            return self.client.get_model_version(name, version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
        self.model(name)  # an unknown model says so, rather than "no version"
        raise ModelNotFound(f"model {name!r} has no version {version}; GET /v1/models/{name} lists them")

    def version_by_alias(self, name: str, alias: str) -> str:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
        aliases = sorted(self.model(name).aliases or {})
        raise ModelNotFound(
            f"model {name!r} has no alias @{alias}; its aliases are: {', '.join('@' + a for a in aliases) or 'none'}"
        )

    def run_data(self, run_id: str | None) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
        """A run's metrics, parameters and tags; none for a version without a run (or whose run is gone)."""
        if not run_id:
            return {}, {}, {}
        try:
            data = self.client.get_run(run_id).data
        except MlflowException:
            return {}, {}, {}
        return dict(data.metrics), dict(data.params), dict(data.tags)

    def probe(self) -> None:
        """Ask the registry the cheapest question, to know that it answers (raises when it does not)."""
        self.client.search_registered_models(max_results=1)
