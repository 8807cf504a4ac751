"""The in-process model cache shared by every model-serving router (forecast now, classify later).

Models come from the MLflow registry by alias (``@champion`` unless asked otherwise) or by version. A
downloaded model says what it is by its artifact folder: ``artifacts/forecaster/`` for a forecaster,
``artifacts/classifier/`` for the classifier; each kind registers a loader (:func:`register_loader`).

Hot swap: an alias entry is one immutable :class:`LoadedModel` in a dict. A request takes the reference
once and keeps it, so requests in flight finish on the old model; a poller (every
``model_poll_seconds``) or :meth:`ModelCache.refresh` resolves the alias again, loads and warms the new
version off the request path, then replaces the dict entry in one assignment.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.registry import CHAMPION, download, model_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loader:
    load: Callable[[Path], Any]  # the artifact folder -> the served object
    warm: Callable[[Any], None] | None = None  # compile the hot path before the model takes traffic


LOADERS: dict[str, Loader] = {}


def register_loader(kind: str, load: Callable[[Path], Any], warm: Callable[[Any], None] | None = None) -> None:
    """Serve registry models that hold ``artifacts/<kind>/`` with ``load`` (e.g. ``"classifier"``)."""
    LOADERS[kind] = Loader(load, warm)


class ModelNotFound(LookupError):
    """Unknown model name, version or alias; the message says what exists."""


class ModelLoadError(RuntimeError):
    """A registered version that cannot be served (unknown kind, broken artifacts)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    kind: str
    model: Any
    loaded_at: float

    def describe(self) -> dict:
        return {"version": self.version, "kind": self.kind, "loaded_at": self.loaded_at}


def ref_of(alias: str | None, version: int | str | None) -> str:
    """The cache key's second half: ``"@alias"`` or ``"3"``."""
    return str(version) if version is not None else f"@{alias or CHAMPION}"


def is_not_found(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"}


class ModelCache:
    def __init__(
        self,
        client: MlflowClient,
        *,
        poll_seconds: float = 10.0,
        loaders: dict[str, Loader] | None = None,
        max_versions: int = 8,
        on_swap: Callable[[str, str | None, str], None] | None = None,
        on_load: Callable[[LoadedModel, float], None] | None = None,
    ):
        self.client = client
        self.poll_seconds = poll_seconds
        self.loaders = LOADERS if loaders is None else loaders
        self.max_versions = max_versions
        self.on_swap = on_swap
        self.on_load = on_load
        self._aliases: dict[tuple[str, str], LoadedModel] = {}  # (name, "@alias") -> model: the swap point
        self._versions: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()  # LRU of pinned versions
        self._lock = threading.Lock()  # guards the dicts
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}  # one load per key at a time
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # --- the request path -------------------------------------------------------------------------
    def peek(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel | None:
        """The cached model, or None; never does I/O (one dict lookup on the hot path)."""
        ref = ref_of(alias, version)
        return (self._versions if ref[0] != "@" else self._aliases).get((name, ref))

    def get(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel:
        """The cached model, loading it on a miss (blocking: call from a worker thread, or use ``aget``)."""
        cached = self.peek(name, alias, version)
        if cached is not None:
            return cached
        key = (name, ref_of(alias, version))
        with self._key_lock(key):
            cached = self.peek(name, alias, version)
            if cached is not None:
                return cached
            if version is not None:
                return self._load_version(name, str(version))
            loaded = self._load_version(name, self._resolve_alias(name, alias or CHAMPION))
            with self._lock:
                self._aliases[key] = loaded
            return loaded

    async def aget(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel:
        cached = self.peek(name, alias, version)
        if cached is not None:
            return cached
        return await anyio.to_thread.run_sync(self.get, name, alias, version)

    # --- alias changes ----------------------------------------------------------------------------
    def refresh(self, name: str | None = None) -> list[dict]:
        """Resolve every cached alias (of ``name``, or all) again and swap in the versions they now name.

        A version that fails to load keeps the old one serving (logged); a deleted alias or model is dropped.
        """
        changes = []
        for key in [k for k in list(self._aliases) if name is None or k[0] == name]:
            model_name, ref = key
            old = self._aliases.get(key)
            try:
                version = self._resolve_alias(model_name, ref[1:])
                with self._key_lock(key):
                    if old is not None and old.version == version:
                        changes.append({"ref": ref, "version": version, "previous": version, "changed": False})
                        continue
                    new = self._load_version(model_name, version)
                    with self._lock:
                        self._aliases[key] = new  # the atomic swap: later requests see `new`
            except ModelNotFound as exc:
                log.warning("dropping %s%s from the cache: %s", model_name, ref, exc)
                with self._lock:
                    self._aliases.pop(key, None)
                changes.append({"ref": ref, "version": None, "previous": old and old.version, "changed": True})
                continue
            except Exception:  # noqa: BLE001 - the registry or a broken version must not take serving down
                log.exception("could not refresh %s%s; still serving version %s", model_name, ref, old and old.version)
                continue
            log.info("%s%s moved from version %s to %s", model_name, ref, old and old.version, version)
            if self.on_swap:
                self.on_swap(model_name, old and old.version, version)
            changes.append({"ref": ref, "version": version, "previous": old and old.version, "changed": True})
        return changes

    def start(self) -> None:
        """Poll aliases every ``poll_seconds`` in a daemon thread (idempotent)."""
        if self._poller is not None or self.poll_seconds <= 0:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="seqcast-model-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep polling
                log.exception("model poll failed")

    # --- what is loaded ---------------------------------------------------------------------------
    def loaded(self, name: str | None = None) -> list[dict]:
        entries = [*self._aliases.items(), *self._versions.items()]
        return [
            {"model": n, "ref": ref, **m.describe()}
            for (n, ref), m in sorted(entries, key=lambda e: e[0])
            if name is None or n == name
        ]

    def serves(self, name: str) -> bool:
        """Whether any alias of ``name`` is cached (so the poller watches it)."""
        return any(n == name for n, _ in list(self._aliases))

    def __len__(self) -> int:
        return len(self._aliases) + len(self._versions)

    # --- the registry side ------------------------------------------------------------------------
    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def check_model(self, name: str) -> None:
        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if is_not_found(exc):
                raise ModelNotFound(f"no registered model named {name!r}; GET /v1/models lists them") from None
            raise

    def _resolve_alias(self, name: str, alias: str) -> str:
        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
        self.check_model(name)
        aliases = sorted(self.client.get_registered_model(name).aliases or {})
        raise ModelNotFound(
            f"model {name!r} has no alias @{alias}; its aliases are: {', '.join('@' + a for a in aliases) or 'none'}"
        )

    def _load_version(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        with self._lock:
            cached = self._versions.get(key)
            if cached is not None:
                self._versions.move_to_end(key)
                return cached
        try:
            self.client.get_model_version(name, version)
        except MlflowException as exc:
            if not is_not_found(exc):
                raise
            self.check_model(name)
            raise ModelNotFound(f"model {name!r} has no version {version}; GET /v1/models/{name} lists them") from None
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="seqcast-model-") as tmp:
            root = download(model_uri(name, version=version), tmp) / "artifacts"
            kinds = [kind for kind in self.loaders if (root / kind).is_dir()]
            if not kinds:
                raise ModelLoadError(
                    f"model {name!r} version {version} holds none of the servable artifacts ({', '.join(self.loaders)})"
                )
            kind = kinds[0]
            loader = self.loaders[kind]
            model = loader.load(root / kind)
        if loader.warm is not None:
            loader.warm(model)
        loaded = LoadedModel(name, version, kind, model, time.time())
        if self.on_load:
            self.on_load(loaded, time.perf_counter() - started)
        with self._lock:
            self._versions[key] = loaded
            while len(self._versions) > self.max_versions:
                self._versions.popitem(last=False)
        return loaded
