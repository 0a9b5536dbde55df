"""The run directory's files, read and written (the training loop itself is :mod:`.engine`)::

    config.json                 resolved TrainConfig (a resumed run must match it)
    log.csv                     step, epoch, lr, loss, sec_per_iter, data_frac, val_psnr_y
    steps.csv                   per step, what the step hook returned under "log" (AnySR: width, scale)
    sessions.csv                one row per process run: steps, wall and CPU minutes, host, threads
    ckpt/step_00001000/         model.safetensors, ema.safetensors, state.pt, rng_rank{r}.pt, state.json
    best.safetensors / final.safetensors

Every writer here is called on the main rank only (the caller checks); a full disk while writing is
one line (:func:`writing`), and the previous checkpoint stays as it was.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import LightSRError

__all__ = ["rng_state", "set_rng_state", "writing", "step_checkpoints", "init_source", "append_log",
           "LOG_COLUMNS", "append_step_values", "trim_log", "append_session"]

LOG_COLUMNS = ["step", "epoch", "lr", "loss", "sec_per_iter", "data_frac", "val_psnr_y"]


# ----------------------------------------------------------------------------------------------
# random-number state (checkpointed per rank)


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


# ----------------------------------------------------------------------------------------------
# writing without losing the previous state


def _disk_full(exc: BaseException, where: Path) -> bool:
    """Did ``exc`` come from a full disk? Python says ENOSPC, safetensors "os error 28", torch.save
    only "unexpected pos" / "file write failed": then the free space of ``where`` decides."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if "No space left on device" in str(exc) or "os error 28" in str(exc):
        return True
    try:
        return shutil.disk_usage(where).free < 1 << 20
    except OSError:
        return False


@contextlib.contextmanager
def writing(path: Path, partial: Path | None = None):
    """Writing ``path``: a full disk is the one line ``no space left on device: PATH`` (another OS
    error one ``cannot write`` line), and the partial output ``partial`` is removed; what was
    written before (the previous checkpoint) stays as it was."""
    try:
        yield
    except LightSRError:
        raise
    except Exception as exc:
        full = _disk_full(exc, next((d for d in path.parents if d.is_dir()), Path(".")))
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
        if full:
            raise LightSRError(f"no space left on device: {path}") from None
        if isinstance(exc, OSError):
            raise LightSRError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


# ----------------------------------------------------------------------------------------------
# step checkpoints, and what --init reads from a run


def step_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The complete step checkpoints (``ckpt/step_*`` with a ``state.json``) of a run, oldest first."""
    d = Path(run_dir) / "ckpt"
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step_*") if (p / "state.json").is_file())


def _step_weights(step_dir: Path) -> Path:
    """A step checkpoint's weights: the EMA when the run kept one (as final / best hold), else the model."""
    for name in ("ema.safetensors", "model.safetensors"):
        if (step_dir / name).is_file():
            return step_dir / name
    raise LightSRError(f"--init {step_dir}: no model.safetensors in that step checkpoint")


def init_source(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``--init`` -> the weights file, and a one-line note when a run directory gave a step checkpoint.
    A file is used as it is; a step checkpoint directory (``RUN/ckpt/step_N``) gives its weights; a
    run directory its ``final.safetensors``, else ``best.safetensors``, else its newest step checkpoint
    (a stage-1 run stopped before its end, or without validation)."""
    p = Path(path)
    if not p.is_dir():
        return p, None
    if (p / "state.json").is_file():  # one step checkpoint
        return _step_weights(p), None
    for name in ("final.safetensors", "best.safetensors"):
        if (p / name).is_file():
            return p / name, None
    steps = step_checkpoints(p)
    if not steps:
        raise LightSRError(f"--init {path}: no final.safetensors, best.safetensors or step checkpoint "
                           "(ckpt/step_*) in that run directory")
    w = _step_weights(steps[-1])
    return w, f"--init {path}: no final or best weights; using its newest step checkpoint {w}"


# ----------------------------------------------------------------------------------------------
# the logs


def append_log(out: Path, row: dict) -> None:
    """One row of ``log.csv`` (:data:`LOG_COLUMNS`; absent values empty)."""
    path = out / "log.csv"
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOG_COLUMNS})


def append_step_values(out: Path, step: int, values: dict, first: bool) -> None:
    """``steps.csv``: one row per step (``step`` as in log.csv) of the values a step hook returned
    under ``"log"``. The ``first`` row of a process drops rows from ``step`` on (an interrupted run
    wrote them; the resumed run writes them again, identical)."""
    path = out / "steps.csv"
    if first and path.is_file():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if int(r["step"]) < step]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=reader.fieldnames or ["step", *values])
            w.writeheader()
            w.writerows(rows)
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", *values])
        if new:
            w.writeheader()
        w.writerow({"step": step, **values})


def trim_log(out: Path, step: int) -> None:
    """Drop ``log.csv`` rows after ``step`` (the resumed step; written by the interrupted run)."""
    path = out / "log.csv"
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [r for r in rows if int(r["step"]) <= step]
    if len(keep) != len(rows):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(keep)


def append_session(out: Path, *, t0: float, cpu0: float, precision: str, start_step: int, end_step: int,
                   best: float) -> None:
    """One row per run of this process in ``sessions.csv``: steps, wall and CPU minutes, host."""
    import platform

    path = out / "sessions.csv"
    cols = ["started", "host", "threads", "precision", "start_step", "end_step", "wall_min", "cpu_min",
            "best_val_psnr"]
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        if new:
            w.writeheader()
        w.writerow({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)), "host": platform.node(),
                    "threads": torch.get_num_threads(), "precision": precision,
                    "start_step": start_step, "end_step": end_step,
                    "wall_min": f"{(time.time() - t0) / 60:.2f}",
                    "cpu_min": f"{(time.process_time() - cpu0) / 60:.2f}",
                    "best_val_psnr": "" if not math.isfinite(best) else f"{best:.4f}"})
