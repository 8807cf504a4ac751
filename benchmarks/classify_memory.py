"""Peak memory of ``POST /v1/classify`` under 16 concurrent large uploads (the serving-robustness issue).

Registers a small ``digits`` CNN in a temporary ``SEQCAST_DATA_DIR``, then runs each upload in a fresh process
(so one burst's allocator leftovers do not hide the next one's peak): the app is built with the default
limits (``SEQCAST_MAX_IMAGE_BYTES``, ``SEQCAST_IMAGE_DECODE_CONCURRENCY``, ... from the environment), one
small request warms the model, then 16 uploads of the same image go in at once through the ASGI app. Prints
the peak RSS growth over the warm process (Linux: VmHWM reset through /proc/self/clear_refs; elsewhere the
RSS is sampled every millisecond). Not part of the tests:

    .venv/bin/python -m benchmarks.classify_memory [--uploads 16] [--only png16,png8]
    SEQCAST_IMAGE_DECODE_CONCURRENCY=16 .venv/bin/python -m benchmarks.classify_memory   # no effective bound
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

NAME = "bench_digits"
SIDE = 2000  # 4000000 pixels: the default SEQCAST_MAX_IMAGE_PIXELS


def _digit(scale_to: int) -> np.ndarray:
    """A digits image, 0..255, scaled up (nearest) to scale_to x scale_to: large decoded, small compressed."""
    from pipelines.vision.data import load_digits_set

    data = load_digits_set()
    grey = np.round(data.x[0, :, :, 0] * 255 / 16).astype(np.uint16)
    reps = scale_to // grey.shape[0]
    return grey.repeat(reps, 0).repeat(reps, 1)


def upload_bytes(kind: str) -> tuple[bytes, str, str]:
    """(file bytes, file name, description) of one upload."""
    from PIL import Image

    grey = _digit(SIDE)
    buffer = io.BytesIO()
    if kind == "png16":
        Image.fromarray(grey * 257).save(buffer, format="PNG")
        return buffer.getvalue(), "d.png", f"{SIDE}x{SIDE} 16-bit grey PNG (8 MB decoded)"
    if kind == "png8":
        Image.fromarray(grey.astype(np.uint8)).save(buffer, format="PNG")
        return buffer.getvalue(), "d.png", f"{SIDE}x{SIDE} 8-bit grey PNG (4 MB decoded)"
    if kind == "rgb8":
        Image.fromarray(grey.astype(np.uint8)).convert("RGB").save(buffer, format="PNG")
        return buffer.getvalue(), "d.png", f"{SIDE}x{SIDE} 8-bit RGB PNG (12 MB decoded)"
    if kind == "jpeg":
        Image.fromarray(grey.astype(np.uint8)).convert("RGB").save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), "d.jpg", f"{SIDE}x{SIDE} RGB JPEG (12 MB decoded in full)"
    raise SystemExit(f"unknown upload {kind!r}; choose from png16, png8, rgb8, jpeg")


KINDS = ("png16", "png8", "rgb8", "jpeg")


# --- peak RSS ---------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakRss:
    """Peak resident memory (bytes) from start() to stop()."""

    def __enter__(self) -> PeakRss:
        self.base = self._rss()
        self.peak = self.base
        self._hwm = False
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current RSS
            self._hwm = _status_kb("VmHWM") is not None
        except OSError:
            pass
        self._stop = threading.Event()
        self._thread = None
        if not self._hwm:  # sample instead
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.001)

    @staticmethod
    def _rss() -> int:
        kb = _status_kb("VmRSS")
        if kb is not None:
            return kb * 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self._hwm:
            self.peak = _status_kb("VmHWM") * 1024
        self.peak = max(self.peak, self._rss())


# --- one burst, in its own process -------------------------------------------------------------------------
def burst(kind: str, uploads: int) -> None:
    import httpx

    from pipelines.settings import Settings
    from service.app import create_app

    settings = Settings(preload_models="", model_poll_seconds=0)
    app = create_app(settings)
    content, filename, _ = upload_bytes(kind)
    small = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small, format="PNG")

    async def main() -> tuple[list[int], float, PeakRss, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            warm = await client.post("/v1/classify", files={"file": ("s.png", small.getvalue())}, data={"model": NAME})
            assert warm.status_code == 200, warm.text
            await asyncio.sleep(0.2)
            with PeakRss() as rss:
                started = time.perf_counter()
                responses = await asyncio.gather(
                    *(
                        client.post("/v1/classify", files={"file": (filename, content)}, data={"model": NAME})
                        for _ in range(uploads)
                    )
                )
                seconds = time.perf_counter() - started
            detail = next((r.text for r in responses if r.status_code != 200), "")
            return [r.status_code for r in responses], seconds, rss, detail

    statuses, seconds, rss, detail = asyncio.run(main())
    codes = ",".join(f"{statuses.count(c)}x{c}" for c in sorted(set(statuses)))
    print(
        f"RESULT {len(content)} {rss.base} {rss.peak} {seconds:.3f} {codes} {settings.image_decode_concurrency} "
        f"{settings.max_image_bytes} {detail[:200]!r}",
        flush=True,
    )


def register(data_dir: str) -> None:
    os.environ["SEQCAST_DATA_DIR"] = data_dir
    from pipelines import tracking
    from pipelines.tracking.registry import CHAMPION
    from pipelines.vision.data import load_digits_set
    from pipelines.vision.pipeline import ImageTrainConfig, train_images_and_register

    train_images_and_register(load_digits_set(), ImageTrainConfig(epochs=2, augment=0.0), NAME)
    tracking.configure().set_registered_model_alias(NAME, CHAMPION, "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=16, help="concurrent uploads per burst (default 16)")
    parser.add_argument("--only", default=",".join(KINDS), help=f"comma-separated uploads (default {','.join(KINDS)})")
    parser.add_argument("--burst", help=argparse.SUPPRESS)  # internal: run one burst in this process
    args = parser.parse_args()
    if args.burst:
        burst(args.burst, args.uploads)
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp:
        env["SEQCAST_DATA_DIR"] = tmp
        subprocess.run(
            [sys.executable, "-c", f"from benchmarks.classify_memory import register; register({tmp!r})"],
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"{args.uploads} concurrent uploads per row, each row in a fresh warm process")
        print(
            f"{'upload':<44} {'file kB':>8} {'base MB':>8} {'peak +MB':>9} {'wall s':>7}  responses  (decode concurrency, max bytes)"
        )
        for kind in args.only.split(","):
            _, _, description = upload_bytes(kind)
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.classify_memory", "--burst", kind, "--uploads", str(args.uploads)],
                env=env,
                capture_output=True,
                text=True,
            )
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if out.returncode != 0 or line is None:
                raise SystemExit(f"burst {kind} failed ({out.returncode}):\n{out.stderr[-3000:]}")
            size, base, peak, seconds, codes, concurrency, max_bytes, detail = line.split(" ", 8)[1:]
            print(
                f"{description:<44} {int(size) / 1000:>8.1f} {int(base) / 2**20:>8.0f} "
                f"{(int(peak) - int(base)) / 2**20:>9.1f} {float(seconds):>7.2f}  {codes}  ({concurrency}, {max_bytes})"
            )
            if detail != "''":
                print(f"    first non-200: {detail}")


if __name__ == "__main__":
    main()
