"""The in-process model cache shared by every model-serving router (forecast and classify).

Models come from the MLflow registry by alias (``@champion`` unless asked otherwise) or by version. A
version's kind is what :func:`pipelines.tracking.tags.model_kind` says (a forecaster, a panel model: one model,
many series, or the classifier), and its bundle lies in the artifact folder of that name; each kind has a
:class:`Loader`, given by whoever builds the cache (``service.app.create_app``).

Cached traffic never waits on the registry: a hit is one dict lookup on the event loop. Misses run on the
cache's own small pool of daemon threads (:class:`service.workers.DaemonPool`), never on the pool FastAPI and anyio share,
and a request waits at most ``timeout`` seconds for one (then 503). Concurrent misses for one key share one
lookup; an unknown model, alias or version (404) and a version that cannot be served (503) are remembered
for ``miss_ttl`` seconds (a bounded cachetools ``TTLCache``), so repeating them costs no registry call. Every
registry read goes through the cache's :class:`service.registry.RegistryReader` (``cache.registry``).

Hot swap: an alias entry is one immutable :class:`LoadedModel` in a dict. A request takes the reference
once and keeps it, so requests in flight finish on the old model; a poller (every ``poll_seconds``) or
:meth:`ModelCache.refresh` resolves the alias again, loads and warms the new version off the request path,
then replaces the dict entry in one assignment. A version that cannot be loaded leaves the old one serving
and is reported (:meth:`ModelCache.errors`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cachetools import LRUCache, TTLCache

from pipelines.tracking.registry import CHAMPION, download, model_uri
from pipelines.tracking.tags import model_kind
from service.registry import ModelNotFound, RegistryReader
from service.workers import DaemonPool

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Loader:
    load: Callable[[Path], Any]  # the artifact folder -> the served object
    warm: Callable[[Any], None] | None = None  # compile the hot path before the model takes traffic


class ModelLoadError(RuntimeError):
    """A registered version that cannot be served: unknown kind, broken or refused artifacts (503)."""


class RegistryUnavailable(RuntimeError):
    """The registry did not answer in time, failed, or has too many lookups queued (503)."""


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


def _outcome_taken(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class ModelCache:
    def __init__(
        self,
        registry: RegistryReader,
        *,
        loaders: dict[str, Loader],
        poll_seconds: float = 10.0,
        max_versions: int = 8,
        workers: int = 4,
        timeout: float = 10.0,
        miss_ttl: float = 5.0,
        max_misses: int = 1024,
        on_swap: Callable[[str, str | None, str], None] | None = None,
        on_load: Callable[[LoadedModel, float], None] | None = None,
    ):
        self.registry = registry
        self.loaders = loaders
        self.poll_seconds = poll_seconds
        self.max_versions = max_versions
        self.timeout = timeout
        self.miss_ttl = miss_ttl
        self.on_swap = on_swap
        self.on_load = on_load
        self.pool = DaemonPool(
            "seqcast-registry",
            workers,
            max_backlog=64 * max(1, workers),
            busy=lambda waiting: RegistryUnavailable(
                f"the model registry is slow: {waiting} lookups are already waiting; retry shortly"
            ),
        )
        self._aliases: dict[tuple[str, str], LoadedModel] = {}  # (name, "@alias") -> model: the swap point
        self._versions: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()  # LRU of loaded versions
        self._lock = threading.Lock()  # guards the dicts
        self._inflight: dict[tuple[str, str], concurrent.futures.Future] = {}  # one lookup per key at a time
        # key -> ModelNotFound | ModelLoadError, for miss_ttl seconds
        self._refused: TTLCache[tuple[str, str], Exception] = TTLCache(max(1, max_misses), max(miss_ttl, 1e-9))
        # key -> why its newest version cannot be served (until it can)
        self._errors: LRUCache[tuple[str, str], dict] = LRUCache(max(1, max_misses))
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.registry_error: str | None = None  # why the last poll could not reach the registry (None: it could)

    # --- the request path -------------------------------------------------------------------------
    def peek(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel | None:
        """The cached model, or None; never does I/O (one dict lookup on the hot path)."""
        ref = ref_of(alias, version)
        return (self._versions if ref[0] != "@" else self._aliases).get((name, ref))

    def get(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel:
        """The cached model, loading it on a miss; blocks up to ``timeout`` (for threads: preload, tests)."""
        cached = self.peek(name, alias, version)
        if cached is not None:
            return cached
        future = self._lookup((name, ref_of(alias, version)))
        try:
            return future.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise self._too_slow() from None

    async def aget(self, name: str, alias: str | None = None, version: int | str | None = None) -> LoadedModel:
        """:meth:`get` for the event loop: a hit costs a dict lookup; a miss waits on the registry pool."""
        cached = self.peek(name, alias, version)
        if cached is not None:
            return cached
        return await self.wait(self._lookup((name, ref_of(alias, version))))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a registry call (``fn(*args)``) on the registry pool; 503 after ``timeout`` seconds."""
        return await self.wait(self.pool.submit(fn, *args))

    async def wait(self, future: concurrent.futures.Future[T]) -> T:
        # shield: one waiter timing out must not cancel the lookup the others share
        waiter = asyncio.wrap_future(future)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), self.timeout)
        except TimeoutError:
            # nobody awaits ``waiter`` any more: take its outcome when it comes, else asyncio logs each abandoned
            # one ("Future exception was never retrieved") with the traceback of a plain 404 or 503
            waiter.add_done_callback(_outcome_taken)
            raise self._too_slow() from None

    def _too_slow(self) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"the model registry did not answer within {self.timeout:g} s (SEQCAST_REGISTRY_TIMEOUT_SECONDS); retry shortly"
        )

    def _lookup(self, key: tuple[str, str]) -> concurrent.futures.Future[LoadedModel]:
        with self._lock:
            refused = self._refused.get(key)
            if refused is not None:
                raise type(refused)(*refused.args)
            future = self._inflight.get(key)
            if future is None:
                future = self.pool.submit(self._load_key, key)
                self._inflight[key] = future
            return future

    def _load_key(self, key: tuple[str, str]) -> LoadedModel:
        name, ref = key
        version: str | None = None
        try:
            version = self.registry.version_by_alias(name, ref[1:]) if ref[0] == "@" else ref
            loaded = self._load_version(name, version)
            with self._lock:
                if ref[0] == "@":
                    self._aliases[key] = loaded
                self._errors.pop(key, None)
        except (ModelNotFound, ModelLoadError) as exc:
            with self._lock:
                self._refused[key] = exc
                if isinstance(exc, ModelLoadError):  # shown by GET /v1/models/{name} until a load succeeds
                    self._errors[key] = {"version": version, "error": str(exc)}
            raise
        except RegistryUnavailable:
            raise
        except Exception as exc:
            raise RegistryUnavailable(f"the model registry failed: {type(exc).__name__}: {exc}") from exc
        finally:
            with self._lock:
                self._inflight.pop(key, None)
        log.info(
            "serving %s%s: version %s (%s)", name, ref if ref[0] == "@" else f"/{ref}", loaded.version, loaded.kind
        )
        return loaded

    # --- alias changes ----------------------------------------------------------------------------
    def refresh(self, name: str | None = None) -> list[dict]:
        """Resolve every cached alias (of ``name``, or all) again and swap in the versions they now name.

        A version that fails to load keeps the old one serving, and the change says why; a deleted alias or
        model is dropped."""
        changes = []
        registry_error, answered = None, False
        for key in [k for k in list(self._aliases) if name is None or k[0] == name]:
            model_name, ref = key
            old = self._aliases.get(key)
            previous = old.version if old is not None else None
            version = None
            try:
                version = self.registry.version_by_alias(model_name, ref[1:])
                answered = True
                if previous == version:
                    changes.append({"ref": ref, "version": version, "previous": previous, "changed": False})
                    continue
                new = self._load_version(model_name, version)
            except ModelNotFound as exc:
                answered = True
                log.warning("dropping %s%s from the cache: %s", model_name, ref, exc)
                with self._lock:
                    self._aliases.pop(key, None)
                changes.append({"ref": ref, "version": None, "previous": previous, "changed": True})
                continue
            except Exception as exc:  # noqa: BLE001 - the registry or a broken version must not take serving down
                error = str(exc) if isinstance(exc, ModelLoadError) else f"the model registry failed: {exc}"
                if not isinstance(exc, ModelLoadError):
                    registry_error = error
                log.warning("%s%s: %s; still serving version %s", model_name, ref, error, previous)
                with self._lock:
                    self._errors[key] = {"version": version, "error": error}
                changes.append(
                    {"ref": ref, "version": previous, "previous": previous, "changed": False, "error": error}
                )
                continue
            with self._lock:
                self._aliases[key] = new  # the atomic swap: later requests see `new`
                self._errors.pop(key, None)
            log.info("%s%s moved from version %s to %s", model_name, ref, previous, version)
            if self.on_swap:
                self.on_swap(model_name, previous, version)
            changes.append({"ref": ref, "version": version, "previous": previous, "changed": True})
        if registry_error is not None or answered:
            self.registry_error = registry_error
        return changes

    def reload(self, name: str) -> list[dict]:
        """``POST /reload``: forget what was refused for ``name``, then refresh it, or load ``@champion`` if
        nothing of it is served yet (blocking: run it on the pool)."""
        with self._lock:
            for store in (self._refused, self._errors):
                for key in [k for k in list(store) if k[0] == name]:
                    store.pop(key, None)
        if self.serves(name):
            return self.refresh(name)
        ref = ref_of(None, None)
        try:
            loaded = self._load_key((name, ref))
        except ModelLoadError as exc:
            with self._lock:
                self._errors[(name, ref)] = {"version": None, "error": str(exc)}
            return [{"ref": ref, "version": None, "previous": None, "changed": False, "error": str(exc)}]
        return [{"ref": ref, "version": loaded.version, "previous": None, "changed": True}]

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
            self._poller.join(timeout=1)  # a daemon thread: a poll stuck on the registry ends with the process
            self._poller = None
        self.pool.shutdown()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
                if not self._aliases:  # nothing to resolve: ask the registry anything, to know it answers
                    self._probe()
            except Exception:
                log.exception("model poll failed")

    def _probe(self) -> None:
        try:
            self.registry.probe()
            self.registry_error = None
        except Exception as exc:  # noqa: BLE001 - reported by /ready; the next poll asks again
            self.registry_error = f"the model registry failed: {exc}"

    # --- what is loaded ---------------------------------------------------------------------------
    def loaded(self, name: str | None = None) -> list[dict]:
        entries = [*self._aliases.items(), *self._versions.items()]
        return [
            {"model": n, "ref": ref, **m.describe()}
            for (n, ref), m in sorted(entries, key=lambda e: e[0])
            if name is None or n == name
        ]

    def errors(self, name: str | None = None) -> dict[str, dict]:
        """``"name@alias"`` -> ``{"version", "error"}`` for each ref whose newest version cannot be served."""
        with self._lock:
            return {f"{n}{ref}": entry for (n, ref), entry in self._errors.items() if name is None or n == name}

    def serves(self, name: str) -> bool:
        """Whether any alias of ``name`` is cached (so the poller watches it)."""
        return any(n == name for n, _ in list(self._aliases))

    def __len__(self) -> int:
        return len(self._aliases) + len(self._versions)

    # --- the registry side (on the pool or the poller, never on the event loop) -------------------
    def _load_version(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        with self._lock:
            cached = self._versions.get(key)
            if cached is not None:
                self._versions.move_to_end(key)
                return cached
        registered = self.registry.version(name, version)  # 404 before any download
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="seqcast-model-") as tmp:
            root = download(model_uri(name, version=version), tmp) / "artifacts"
            kind = model_kind(registered.tags or {}, artifacts=root)
            if kind not in self.loaders:
                raise ModelLoadError(
                    f"model {name!r} version {version} holds none of the servable artifacts ({', '.join(self.loaders)})"
                )
            loader = self.loaders[kind]
            try:
                model = loader.load(root / kind)
            except Exception as exc:
                raise ModelLoadError(f"model {name!r} version {version} cannot be served: {exc}") from exc
        if loader.warm is not None:
            try:
                loader.warm(model)
            except Exception:
                log.exception("warm-up of %s version %s failed; it serves, compiling on first use", name, version)
        loaded = LoadedModel(name, version, kind, model, time.time())
        if self.on_load:
            self.on_load(loaded, time.perf_counter() - started)
        with self._lock:
            self._versions[key] = loaded
            while len(self._versions) > self.max_versions:
                self._versions.popitem(last=False)
        return loaded
