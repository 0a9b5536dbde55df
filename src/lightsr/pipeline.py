"""The upscale command's file loop: read, model, write - overlapped, in input order, interruptible.

:func:`run` takes a list of :class:`Job` and three stage functions. Pipelined (the default), a reader
thread checks and decodes the next images and a writer thread encodes and writes finished ones while
the model runs in the calling (main) thread, so a folder costs about the model's time:

* bounded: at most ``DEPTH`` decoded inputs and ``DEPTH`` finished outputs wait in queues, and no more
  than ``QUEUE_BYTES`` of outputs are held beyond the one being written (an output bigger than that
  waits until the writer is idle, i.e. giant images run serially, in the memory the model alone needs);
* ordered: files are written in input order by the single writer, and each file's outcome (done, or
  one error line) is reported in input order whichever thread finished it;
* per-file errors (:class:`LightSRError`, out of memory, a runtime error of the model) are reported
  and the file skipped, as before; anything else (a bug, ``KeyboardInterrupt``) stops the run;
* interruption: on Ctrl-C, SIGTERM (see :func:`sigterm_as_exception`) or a fatal error the reader stops,
  outputs still queued are dropped, and the writer finishes the one file it is writing (files appear
  only complete, through :func:`lightsr.checkpoint.atomic_write`, which removes its temporary file on
  any exception) before the exception is re-raised in the main thread. The worker threads are not
  daemons, so even a second Ctrl-C during that wait cannot cut a write off half way.

A ``load`` stage that returns :data:`SKIP` (an output already there, ``--skip-existing``) finishes
its job at once: counted in ``Stats.skipped``, apart from done and failed.

``LIGHTSR_PIPELINE=0`` (or ``pipelined=False``) runs the same stages one after another in the main
thread: the reference the tests compare the pipelined outputs with, byte for byte.
"""
from __future__ import annotations

import os
import queue
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import LightSRError

DEPTH = 2  # images waiting in each queue
QUEUE_BYTES = 256 * 2**20  # finished outputs held beyond the one being written
_END = object()
SKIP = object()  # what a ``load`` stage returns for a job that needs no work (counted as skipped)
_POLL = 0.1  # seconds between checks for a stop while a queue is full or empty


@dataclass
class Job:
    index: int
    src: Path
    dst: Path


@dataclass
class Stats:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    megapixels: float = 0.0
    model_s: float = 0.0
    wall_s: float = 0.0
    outputs: list = field(default_factory=list)  # the files written, in input order


class Terminated(BaseException):
    """SIGTERM, turned into an exception in the main thread (a BaseException, so that no
    ``except Exception`` on the way turns it into a per-file error)."""


@contextmanager
def sigterm_as_exception():
    """While active, SIGTERM raises :class:`Terminated` in the main thread (once; later ones are
    ignored while the run cleans up). Outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def file_error(src: Path, exc: BaseException) -> str | None:
    """The one-line report of a per-file failure, or None when ``exc`` must stop the run."""
    if isinstance(exc, LightSRError):
        return str(exc)
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError, RuntimeError)):
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return f"{src}: {type(exc).__name__}: {msg} (try --tile 256 or --max-memory)"
    return None


class _Reporter:
    """Per-file outcomes, reported in input order whichever thread finishes them."""

    def __init__(self, note: Callable[[str], None], bar, dst: dict | None = None):
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[str | None, float]] = {}
        self.next = 0
        self.note, self.bar = note, bar
        self.dst = dst or {}  # job index -> output path
        self.stats = Stats()

    def finish(self, index: int, error: str | None = None, megapixels: float = 0.0, skipped: bool = False) -> None:
        with self.lock:
            self.pending[index] = (error, None if skipped else megapixels)
            while self.next in self.pending:
                err, mp = self.pending.pop(self.next)
                if mp is None:
                    self.stats.skipped += 1
                elif err is None:
                    self.stats.done += 1
                    self.stats.megapixels += mp
                    if self.next in self.dst:
                        self.stats.outputs.append(self.dst[self.next])
                else:
                    self.stats.failed += 1
                    self.note(f"error: {err}")
                self.bar.update(1)
                self.next += 1


class _Budget:
    """Bytes of finished outputs in flight; ``take`` waits while others are and ``n`` would not fit."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def take(self, n: int, check: Callable[[], None]) -> None:
        with self.cond:
            while self.used > 0 and self.used + n > self.limit:
                check()
                self.cond.wait(_POLL)
            self.used += n

    def give(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


def run(jobs: list[Job], load: Callable[[Job], Any], compute: Callable[[Any], Any],
        save: Callable[[Job, Any, Any], float], cost: Callable[[Any], int], note: Callable[[str], None],
        bar, pipelined: bool | None = None) -> Stats:
    """Run ``save(job, loaded, compute(loaded))`` for every job; ``save`` returns output megapixels.

    ``cost(loaded)``: bytes the output will take (reserved before ``compute``). Returns the stats;
    re-raises (in the calling thread) anything that is not a per-file error, after cleaning up.
    """
    if pipelined is None:
        pipelined = os.environ.get("LIGHTSR_PIPELINE", "1").strip().lower() not in ("0", "false", "no", "off")
    rep = _Reporter(note, bar, {job.index: job.dst for job in jobs})
    start = time.perf_counter()
    try:
        (_pipelined if pipelined else _serial)(jobs, load, compute, save, cost, rep)
    finally:
        rep.stats.wall_s = time.perf_counter() - start
    return rep.stats


def _serial(jobs, load, compute, save, cost, rep: _Reporter) -> None:
    for job in jobs:
        try:
            item = load(job)
            if item is SKIP:
                rep.finish(job.index, skipped=True)
                continue
            t0 = time.perf_counter()
            try:
                result = compute(item)
            finally:
                rep.stats.model_s += time.perf_counter() - t0
            rep.finish(job.index, None, save(job, item, result))
        except BaseException as exc:  # noqa: BLE001 - sorted by file_error
            msg = file_error(job.src, exc)
            if msg is None:
                raise
            rep.finish(job.index, msg)


def _pipelined(jobs, load, compute, save, cost, rep: _Reporter) -> None:
    stop = threading.Event()
    fatal: list[BaseException] = []
    inq: queue.Queue = queue.Queue(maxsize=DEPTH)
    outq: queue.Queue = queue.Queue(maxsize=DEPTH)
    budget = _Budget(QUEUE_BYTES)

    def check() -> None:  # main thread: a worker's fatal error stops the run here
        if fatal:
            raise fatal[0]

    def put(q: queue.Queue, item, main: bool = False) -> bool:
        while True:
            if main:
                check()
            elif stop.is_set():
                return False
            try:
                q.put(item, timeout=_POLL)
                return True
            except queue.Full:
                pass

    def get(q: queue.Queue, main: bool = False):
        while True:
            if main:
                check()
            elif stop.is_set():
                return _END
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                pass

    def reader() -> None:
        try:
            for job in jobs:
                if stop.is_set():
                    return
                try:
                    item = (job, load(job), None)
                except BaseException as exc:  # noqa: BLE001
                    msg = file_error(job.src, exc)
                    if msg is None:
                        raise
                    item = (job, None, msg)
                if not put(inq, item):
                    return
            put(inq, _END)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            fatal.append(exc)
            stop.set()

    def writer() -> None:
        try:
            while True:
                item = get(outq)
                if item is _END or stop.is_set():  # interrupted: queued outputs are dropped
                    return
                job, loaded, result, nbytes = item
                try:
                    rep.finish(job.index, None, save(job, loaded, result))
                except BaseException as exc:  # noqa: BLE001
                    msg = file_error(job.src, exc)
                    if msg is None:
                        raise
                    rep.finish(job.index, msg)
                finally:
                    del loaded, result, item
                    budget.give(nbytes)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            fatal.append(exc)
            stop.set()

    threads = [threading.Thread(target=reader, name="lightsr-read"),
               threading.Thread(target=writer, name="lightsr-write")]
    for t in threads:
        t.start()
    finished = False
    try:
        while True:
            item = get(inq, main=True)
            if item is _END:
                break
            job, loaded, err = item
            del item
            if err is not None:
                rep.finish(job.index, err)
                continue
            if loaded is SKIP:
                rep.finish(job.index, skipped=True)
                continue
            nbytes = cost(loaded)
            budget.take(nbytes, check)
            t0 = time.perf_counter()
            try:
                result = compute(loaded)
            except BaseException as exc:  # noqa: BLE001
                budget.give(nbytes)
                msg = file_error(job.src, exc)
                if msg is None:
                    raise
                rep.finish(job.index, msg)
                continue
            finally:
                rep.stats.model_s += time.perf_counter() - t0
            put(outq, (job, loaded, result, nbytes), main=True)
            del loaded, result
        put(outq, _END, main=True)
        while threads[1].is_alive():
            threads[1].join(_POLL)
            check()
        check()
        finished = True
    finally:
        if not finished:
            stop.set()
        for t in threads:  # the writer completes (or removes) the file it is writing
            t.join()
    if fatal:
        raise fatal[0]


def summary_line(stats: Stats, what: str | None = None) -> str:
    """The summary line: counts, where the output went (the file, or the folder of several), ``what``
    ran (e.g. ``"rlfn_s x4, bf16"``), megapixels, images/s, output MP/s and the model's share of the time."""
    secs, n = stats.wall_s, stats.done
    rate = ""
    if secs > 0 and n:
        share = 100.0 * stats.model_s / secs
        rate = (f" ({n / secs:.2f} images/s, {stats.megapixels / secs:.2f} output MP/s; model {stats.model_s:.2f} s"
                f" = {share:.0f} % of the wall time)")
    tail = f"; {stats.skipped} skipped (output already there)" if stats.skipped else ""
    tail += f"; {stats.failed} failed" if stats.failed else ""
    where = ""
    if stats.outputs:
        where = (str(stats.outputs[0]) if len(stats.outputs) == 1
                 else os.path.join(os.path.commonpath([str(Path(o).parent) for o in stats.outputs]), ""))
        where = f" to {where}"
    what = f" ({what})" if what else ""
    return (f"upscaled {n} image{'s' if n != 1 else ''}{where}{what}, {stats.megapixels:.2f} output megapixels "
            f"in {secs:.2f} s{rate}{tail}")
