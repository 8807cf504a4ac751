"""Logging for every ``seqcast`` command, set up once per process from ``SEQCAST_LOG_FORMAT`` (the settings'
``log_format``): ``text`` (time, level, logger, message) or ``json`` (one JSON object per line: time, level,
logger, message, pid, the fields of :data:`FIELDS` a record carries, exception). Third-party libraries log at WARNING.

In JSON mode nothing else reaches stderr: TensorFlow's C++ side (absl) writes to file descriptor 2 before and
beside any Python logging (``oneDNN custom operations are on ...`` at each start of its library, whatever
``TF_CPP_MIN_LOG_LEVEL`` says), and so may any library or child process. :func:`configure_logging` therefore
puts a pipe on descriptor 2 before TensorFlow is imported: JSON lines pass through, absl's INFO lines and its
``before absl::InitializeLog()`` preamble are dropped, and any other line becomes a JSON record (absl's
WARNING/ERROR at their level, anything else at WARNING under the logger ``stderr``). Child processes (uvicorn's
workers, a retraining pass's pool) inherit the pipe, so their output is covered too.

Light on purpose (no TensorFlow, no project import): the CLI calls it before anything heavy is loaded."""

from __future__ import annotations

import atexit
import json
import logging
import logging.config
import os
import re
import select
import sys
import threading
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("mlflow", "alembic", "urllib3", "httpx", "tensorflow", "absl", "h5py", "matplotlib", "PIL", "numexpr")
# record attributes a JSON line carries as fields when a record has them (the access line's, the request's id)
FIELDS = ("request_id", "method", "path", "query", "status", "duration_ms", "client")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,  # several workers write one stream
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(fmt: str = "text", filters: dict[str, dict] | None = None) -> dict:
    """The ``logging.config.dictConfig`` of ``fmt`` (``text`` or ``json``): one handler on stderr at the root;
    ``filters`` (name -> filter config) are put on that handler (the service adds its request id)."""
    formatter = {"()": JsonLines} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": filters or {},
        "formatters": {"main": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "filters": list(filters or {}),
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {name: {"level": "WARNING"} for name in QUIET},
    }


def configure_logging(fmt: str = "text") -> None:
    """A command's logging. Leaves a process whose logging is set up already alone (pytest, an embedding host):
    what it configured wins. Before TensorFlow or absl are imported, so that their loggers propagate here."""
    if logging.getLogger().handlers:
        return
    if fmt == "json":
        _StderrAsJson.install()
    logging.config.dictConfig(logging_config(fmt))
    logging.captureWarnings(True)  # warnings.warn (MLflow's, Alembic's) as WARNING records, not bare lines


# absl's C++ log line: I1207 20:50:50.103 12345 port.cc:153] message (the date may be 0000 00:00:...)
_ABSL = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]\s]+)\] ?(.*)$")
_ABSL_LEVELS = {b"W": logging.WARNING, b"E": logging.ERROR, b"F": logging.CRITICAL}
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


class _StderrAsJson:
    """File descriptor 2 as a pipe whose reader writes each line to the real stderr as JSON (see the module)."""

    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        cls._installed = True
        sys.stderr.flush()
        real = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        stop_read, stop_write = os.pipe()
        reader = cls(read, real, stop_read)
        thread = threading.Thread(target=reader.run, name="stderr-as-json", daemon=True)
        thread.start()

        def close() -> None:  # at exit: what is in the pipe still comes out, then stderr is the real one again
            sys.stderr.flush()
            os.write(stop_write, b"x")
            thread.join(timeout=2)
            os.dup2(real, 2)

        atexit.register(close)

    def __init__(self, read: int, out: int, stop: int):
        self.read, self.out, self.stop = read, out, stop
        self.logger = logging.getLogger("stderr")
        self.pending = b""

    def run(self) -> None:
        stopping = False
        while True:
            ready, _, _ = select.select([self.read, self.stop], [], [], 0.05 if stopping else None)
            if self.stop in ready:
                stopping = True
            if self.read not in ready:
                if stopping:  # nothing more came for 50 ms after the stop: done
                    self._lines(self.pending + b"\n")
                    return
                continue
            chunk = os.read(self.read, 65536)
            if not chunk:  # every writer closed
                self._lines(self.pending + b"\n")
                return
            *lines, self.pending = (self.pending + chunk).split(b"\n")
            self._lines(b"\n".join(lines) + b"\n" if lines else b"")

    def _lines(self, text: bytes) -> None:
        out = []
        for line in text.split(b"\n"):
            converted = self._convert(line.rstrip(b"\r"))
            if converted is not None:
                out.append(converted + b"\n")
        data = b"".join(out)
        try:
            while data:
                data = data[os.write(self.out, data) :]
        except OSError:  # the real stderr is gone: drop the lines, but keep draining the pipe so no writer blocks
            pass

    def _convert(self, line: bytes) -> bytes | None:
        if not line.strip() or line == _ABSL_PREAMBLE:
            return None
        if line.startswith(b"{"):  # a JSON line already (this process's handler, a worker's)
            return line
        level, name, message = logging.WARNING, "stderr", line
        absl = _ABSL.match(line)
        if absl:
            if absl.group(1) == b"I":  # TensorFlow's INFO: below the WARNING its loggers are at
                return None
            level, name, message = _ABSL_LEVELS[absl.group(1)], "tensorflow.native", absl.group(3)
        record = logging.LogRecord(name, level, __file__, 0, message.decode(errors="replace"), None, None)
        return JsonLines().format(record).encode()
