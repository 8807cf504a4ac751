"""Process-wide set-up, for the CLI's process and the retraining workers it starts: third-party noise that
says nothing about the user's data silenced in one place, TensorFlow's threads, a worker's tie to its parent.

Light on purpose (no TensorFlow at import): a worker imports this module before anything else."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import tempfile
import warnings

_PR_SET_PDEATHSIG = 1
_worker_threads: int | None = None  # set once a process is a worker: TensorFlow's thread count, applied as it loads


def quiet_libraries() -> None:
    # 3: TensorFlow 2.21's tf.data logs an ERROR line for an attribute its own Python side adds
    # ("NodeDef mentions attribute use_unbounded_threadpool"); real failures still raise in Python
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow nags for an input example; a forecaster's input is a history of any length, the signature says how
    warnings.filterwarnings("ignore", message=r".*input example", category=UserWarning)


def import_tensorflow_quietly() -> None:
    """TensorFlow prints its start-up lines (oneDNN, CPU features) from C++ before any log level applies, so
    stderr is held while it loads; if loading fails, what it printed is shown. In a worker (:func:`prepare_worker`)
    its thread count is set as it loads. Nothing when it is loaded already."""
    if "tensorflow" in sys.modules:
        return
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if _worker_threads is not None:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(_worker_threads)
            tf.config.threading.set_inter_op_parallelism_threads(_worker_threads)
        except RuntimeError:  # TensorFlow already started in this process; keep its threads
            pass


def prepare_worker(threads: int) -> None:
    """Once per worker process: quiet, TensorFlow on ``threads`` cores when a task loads it (workers share the
    machine; a worker whose tasks need no TensorFlow never pays its seconds of import), and on Linux the worker
    dies with its parent, so a killed pass leaves no orphan that could still promote."""
    global _worker_threads
    if _worker_threads is not None:
        return
    _worker_threads = threads
    quiet_libraries()
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def prepare_pool_worker(threads: int) -> None:
    """A process pool's initializer: :func:`prepare_worker`, and Ctrl-C left to the pass, which stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    prepare_worker(threads)
