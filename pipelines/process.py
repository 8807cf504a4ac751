"""Process-wide set-up, for the CLI's process and the retraining workers it starts: third-party noise that
says nothing about the user's data silenced in one place, TensorFlow's threads and a worker's tie to its pass
(where a pass's process pool starts its workers lives with the fan-out: :mod:`pipelines.retraining.fanout`).

Light on purpose (no TensorFlow at import): a worker imports this module before anything else."""

from __future__ import annotations

import os
import select
import signal
import sys
import tempfile
import threading
import warnings

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
    _apply_worker_threads()


def _apply_worker_threads() -> None:
    if _worker_threads is None or "tensorflow" not in sys.modules:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(_worker_threads)
        tf.config.threading.set_inter_op_parallelism_threads(_worker_threads)
    except RuntimeError:  # TensorFlow already started in this process; keep its threads
        pass


def prepare_worker(threads: int, pass_pid: int | None = None) -> None:
    """Once per worker process: quiet, TensorFlow on ``threads`` cores (workers share the machine), and on Linux
    the worker dies with the pass's process ``pass_pid`` (default: its parent), so a killed pass leaves nothing
    running that could still promote."""
    global _worker_threads
    if _worker_threads is not None:
        return
    _worker_threads = threads
    quiet_libraries()
    _apply_worker_threads()  # forked from a fork server that loaded TensorFlow (not started): set them now
    _die_with(pass_pid or os.getppid())


def _die_with(pid: int) -> None:
    # a pidfd, not PR_SET_PDEATHSIG: a pool worker's parent is the fork server, which outlives a killed pass
    # for as long as any worker it forked is alive
    try:
        watched = os.pidfd_open(pid)
    except ProcessLookupError:  # the pass is gone already
        os.kill(os.getpid(), signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux (or before 5.3): the pool's own shutdown is all there is
        return

    def watch() -> None:
        select.select([watched], [], [])  # readable once the process has ended
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-pass", daemon=True).start()
