"""``lightsr upscale`` on folders (issue 19): the read / model / write pipeline gives the serial run's
bytes, keeps per-file errors, stays bounded, and an interruption leaves only complete files.

Every test was seen failing once with the feature broken on purpose (how: in its docstring). The
serial reference is the same code with ``LIGHTSR_PIPELINE=0`` (lightsr.pipeline).
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lightsr.imageio as io
import lightsr.pipeline as pipeline
from lightsr.cli import main
from lightsr.imageio import ImageData, read_image, write_image

RNG = np.random.default_rng(19)


def _folder(root: Path, n: int = 6, size=(20, 28)) -> Path:
    """n small images of several kinds (RGB/gray/RGBA PNG, JPEG, 16-bit PNG), in a tree."""
    (root / "sub").mkdir(parents=True)
    h, w = size
    for i in range(n):
        kind = i % 5
        sub = root / "sub" if i % 2 else root
        if kind == 0:
            Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(sub / f"im{i:02d}.png")
        elif kind == 1:
            Image.fromarray(RNG.integers(0, 256, (h, w), dtype=np.uint8)).save(sub / f"im{i:02d}.png")
        elif kind == 2:
            Image.fromarray(RNG.integers(0, 256, (h, w, 4), dtype=np.uint8)).save(sub / f"im{i:02d}.png")
        elif kind == 3:
            Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(sub / f"im{i:02d}.jpg", quality=90)
        else:
            a = RNG.integers(0, 65536, (h, w, 3), dtype=np.uint16)
            write_image(sub / f"im{i:02d}.png", a, like=ImageData(a))
    return root


def _files(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _upscale(capsys, *argv) -> tuple[int, str]:
    rc = main(["upscale", *map(str, argv), "-q"])
    return rc, capsys.readouterr().err


@pytest.fixture
def writer_threads(monkeypatch):
    """Names of the threads that encoded each output."""
    names = []
    real = io._encode

    def spy(tmp, *args):
        names.append(threading.current_thread().name)
        return real(tmp, *args)

    monkeypatch.setattr(io, "_encode", spy)
    return names


def test_pipelined_outputs_are_byte_identical_to_serial(tmp_path, capsys, monkeypatch, writer_threads):
    """Broken on purpose: ``save(job, loaded, result)`` in the writer given the previous job's result
    (an off-by-one hand-over) fails the byte comparison; a pipeline that silently ran serially fails
    the thread-name check."""
    src = _folder(tmp_path / "in", n=7)
    monkeypatch.setenv("LIGHTSR_PIPELINE", "0")
    rc, err = _upscale(capsys, src, "-o", tmp_path / "serial")
    assert rc == 0, err
    assert set(writer_threads) == {"MainThread"}
    writer_threads.clear()
    monkeypatch.delenv("LIGHTSR_PIPELINE")
    rc, err = _upscale(capsys, src, "-o", tmp_path / "piped")
    assert rc == 0, err
    assert set(writer_threads) == {"lightsr-write"}  # really pipelined
    serial, piped = _files(tmp_path / "serial"), _files(tmp_path / "piped")
    assert len(serial) == 7 and list(serial) == list(piped)
    for name in serial:
        assert serial[name] == piped[name], name
    assert "upscaled 7 images" in err and "images/s" in err and "output MP/s" in err and "of the wall time" in err


def test_bad_file_in_the_middle_is_reported_and_skipped(tmp_path, capsys, monkeypatch):
    """Three per-file failures in the middle of a folder: a text file named .png and an output that
    already exists (both found by the reader thread) and a full disk while writing f5 (found by the
    writer thread). All three reported in input order, one line each; the rest written, the user's
    file untouched, no temporary file, exit code 1. Broken on purpose: the writer's per-file errors
    treated as fatal (``raise`` instead of ``rep.finish(..., msg)``) stops the run at f5 and fails."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        Image.fromarray(RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8)).save(src / f"f{i}.png")
    (src / "f2.png").write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    (out / "f4.png").write_bytes(b"user's file")
    real = io._encode

    def encode(tmp, *args):
        if ".f5.png." in Path(tmp).name:
            Path(tmp).write_bytes(b"half")
            raise OSError(28, "No space left on device")
        return real(tmp, *args)

    monkeypatch.setattr(io, "_encode", encode)
    rc, err = _upscale(capsys, src, "-o", out)
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["f0.png", "f1.png", "f3.png", "f4.png", "f6.png", "f7.png"]
    assert (out / "f4.png").read_bytes() == b"user's file"  # never overwritten without --overwrite
    for name in ("f0.png", "f1.png", "f3.png", "f6.png", "f7.png"):
        assert read_image(out / name).shape == (48, 56, 3)
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 3, err
    assert "f2.png" in lines[0] and "f4.png" in lines[1] and "--overwrite" in lines[1]
    assert "f5.png" in lines[2] and "No space left" in lines[2]
    assert "upscaled 5 images" in err and "3 failed" in err


def test_fatal_error_in_the_writer_leaves_only_complete_files(tmp_path, capsys, monkeypatch):
    """An unexpected exception inside the writer thread, after it wrote part of a file, stops the run:
    the earlier files are complete, the partial one and every temporary file are gone, exit code 1
    (internal error, one line). Broken on purpose: catching it in the writer and carrying on writes
    the later files and fails the file-list check."""
    src = _folder(tmp_path / "in", n=6)
    real = io._encode
    calls = []

    def encode(tmp, *args):
        calls.append(tmp)
        if len(calls) == 3:
            Path(tmp).write_bytes(b"partial")
            raise ValueError("injected failure")
        return real(tmp, *args)

    monkeypatch.setattr(io, "_encode", encode)
    out = tmp_path / "out"
    rc, err = _upscale(capsys, src, "-o", out)
    assert rc == 1 and "injected failure" in err and "Traceback" not in err
    written = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(written) == 2 and not [p for p in out.rglob("*") if p.name.startswith(".")]
    for p in written:
        assert read_image(p).shape[0] == 80


def test_queues_are_bounded(tmp_path, capsys, monkeypatch):
    """With a slow writer the reader may run at most ~2 * DEPTH + 3 images ahead of the writes, so a
    folder of any size is held in bounded memory. Broken on purpose: ``queue.Queue(maxsize=0)``
    (unbounded) lets the reader decode all 16 images ahead and fails the bound."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(16):
        Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / f"f{i:02d}.png")
    reads, writes, lead = [0], [0], [0]
    real_read, real_encode = io.read, io._encode

    def read(path, *a, **k):
        reads[0] += 1
        lead[0] = max(lead[0], reads[0] - writes[0])
        return real_read(path, *a, **k)

    def encode(tmp, *args):
        time.sleep(0.05)
        real_encode(tmp, *args)
        writes[0] += 1

    monkeypatch.setattr(io, "read", read)
    monkeypatch.setattr(io, "_encode", encode)
    rc, err = _upscale(capsys, src, "-o", tmp_path / "out")
    assert rc == 0 and len(list((tmp_path / "out").iterdir())) == 16, err
    assert lead[0] <= 2 * pipeline.DEPTH + 3, lead[0]


def test_png_level(tmp_path, capsys):
    """--png-level changes the zlib level (0 stores, 9 packs) and is range-checked with one line.
    Broken on purpose: ``compress_level`` not passed to Pillow gives equal sizes and fails."""
    img = tmp_path / "a.png"
    rng = np.random.default_rng(5)  # its own: the sizes below do not depend on which tests ran first
    Image.fromarray(np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))).save(img)
    sizes = {}
    for level in (0, 9):
        rc, err = _upscale(capsys, img, "-o", tmp_path / f"l{level}", "--png-level", level)
        assert rc == 0, err
        sizes[level] = (tmp_path / f"l{level}" / "a.png").stat().st_size
    assert sizes[0] > 1.2 * sizes[9]  # level 0 stores the rows uncompressed
    assert (read_image(tmp_path / "l0" / "a.png") == read_image(tmp_path / "l9" / "a.png")).all()  # lossless
    rc, err = _upscale(capsys, img, "-o", tmp_path / "bad", "--png-level", 10)
    assert rc == 2 and "--png-level" in err and err.count("\n") == 1 and not (tmp_path / "bad").exists()
    with pytest.raises(io.LightSRError, match="0 to 9"):
        write_image(tmp_path / "x.png", np.zeros((2, 2, 3), np.uint8), png_level=-1)


DRIVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import lightsr.imageio as io

    real = io._encode

    def slow(tmp, *args):  # a temporary file with partial data exists for a while during every write
        Path(tmp).write_bytes(b"partial")
        time.sleep(0.4)
        real(tmp, *args)

    io._encode = slow
    from lightsr.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_folder_leaves_only_complete_files(tmp_path, sig, code):
    """SIGTERM / Ctrl-C sent to a running ``lightsr upscale`` while it is writing a file: exit 143 /
    130, every output present is complete (decodes, right size), no temporary file is left, the
    folder was not finished. Broken on purpose: without the SIGTERM handler (``sigterm_as_exception``
    made a no-op) the process dies at once with -15 and leaves the ``.part`` file; with daemon worker
    threads that are not joined, Ctrl-C leaves it too."""
    src = tmp_path / "in"
    src.mkdir()
    n = 12
    for i in range(n):
        Image.fromarray(RNG.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(src / f"f{i:02d}.png")
    (tmp_path / "driver.py").write_text(DRIVER)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "LIGHTSR_PIPELINE"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), "upscale", str(src), "-o", str(out), "-q"],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # wait until one file is done and the next is being written
            if out.is_dir() and list(out.glob("*.png")) and list(out.glob(".*.part")):
                break
            if proc.poll() is not None:
                pytest.fail(f"finished before it could be interrupted: {proc.stderr.read()}")
            time.sleep(0.02)
        else:
            pytest.fail("no output appeared")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".part"]
    done = sorted(out.iterdir())
    assert 1 <= len(done) < n
    for p in done:
        assert read_image(p).shape == (40, 48, 3)


# ------------------------------------------------------------------ --png-level (Pillow's zlib level)
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_png_levels_round_trip(tmp_path, level):
    """Every level is lossless: 8-bit gray/RGB/RGBA through Pillow, 16-bit colour through lightsr's
    16-bit writer (Pillow has none), read back exactly."""
    for dtype, peak, cs in ((np.uint8, 256, (1, 3, 4)), (np.uint16, 65536, (3, 4))):
        for c in cs:
            a = RNG.integers(0, peak, (41, 23, c)).astype(dtype)
            path = tmp_path / f"{dtype.__name__}_{c}.png"
            write_image(path, a, png_level=level, overwrite=True)
            got = read_image(path)
            got = got[..., None] if got.ndim == 2 else got
            np.testing.assert_array_equal(got, a)


def test_default_png_is_fast_settings_and_upscale_output_reads_back(tmp_path):
    """The default level is 1; on flat pixel art (the sample, nearest x3) level 6 gives a clearly
    smaller file of the same pixels. Broken on purpose: ``compress_level`` not passed to Pillow."""
    from lightsr.api import SAMPLE

    assert io.PNG_LEVEL == 1
    a = np.kron(read_image(SAMPLE), np.ones((3, 3, 1), np.uint8))
    write_image(tmp_path / "fast.png", a)
    write_image(tmp_path / "small.png", a, png_level=6)
    assert (tmp_path / "small.png").stat().st_size < (tmp_path / "fast.png").stat().st_size
    np.testing.assert_array_equal(read_image(tmp_path / "fast.png"), read_image(tmp_path / "small.png"))


def test_upscale_files_is_the_command_as_a_function(tmp_path):
    """``lightsr.upscale_files`` writes what ``lightsr upscale`` writes, byte for byte, reports a
    missing input through ``report`` and counts it as failed; a request that cannot work raises
    before any file is written."""
    import lightsr
    from lightsr.errors import LightSRError

    src = _folder(tmp_path / "in", n=3)
    assert main(["upscale", str(src), "-o", str(tmp_path / "cli"), "--quiet"]) == 0
    up = lightsr.load()
    said = []
    stats = lightsr.upscale_files(up, [src, tmp_path / "missing.png"], tmp_path / "api", progress=False,
                                  report=said.append)
    assert stats.done == 3 and stats.failed == 1 and said == [f"input not found: {tmp_path / 'missing.png'}"]
    for f in sorted((tmp_path / "cli").rglob("*.png")):
        assert (tmp_path / "api" / f.relative_to(tmp_path / "cli")).read_bytes() == f.read_bytes()
    with pytest.raises(LightSRError, match="quality"):
        lightsr.upscale_files(up, [src], tmp_path / "none", quality=0)
    assert not (tmp_path / "none").exists()


def _held_bytes(monkeypatch, limit: int, cost: int, n: int = 8) -> tuple[int, int]:
    """(most output bytes held at once, most outputs held at once) of a pipelined run with instant
    reads and model and a slow writer: an output is held from the end of its compute to the end
    of its save."""
    monkeypatch.setattr(pipeline, "QUEUE_BYTES", limit)
    lock, held, peak = threading.Lock(), [0, 0], [0, 0]

    def compute(item):
        with lock:
            held[0] += cost
            held[1] += 1
            peak[0], peak[1] = max(peak[0], held[0]), max(peak[1], held[1])
        return item

    def save(job, item, result):
        time.sleep(0.05)
        with lock:
            held[0] -= cost
            held[1] -= 1
        return 0.0

    class Bar:
        def update(self, n=1):
            pass

    jobs = [pipeline.Job(i, Path(f"{i}.png"), Path(f"o{i}.png")) for i in range(n)]
    stats = pipeline.run(jobs, lambda job: job.index, compute, save, lambda item: cost, lambda msg: None,
                         Bar(), pipelined=True)
    assert stats.done == n and stats.failed == 0
    return peak[0], peak[1]


def test_output_bytes_held_stay_under_the_queue_limit(monkeypatch):
    """QUEUE_BYTES bounds the finished outputs held (the one being written included), whatever the
    queue depth allows; an output larger than the limit waits for the writer to be idle (giant
    images run serially). The model still runs ahead of the writer when the limit allows.
    Broken on purpose (the byte limit removed: ``_Budget(float("inf"))``) -> fails."""
    most, count = _held_bytes(monkeypatch, limit=1000, cost=400)
    assert count == 2 and most == 800  # the queues alone would allow 4 (DEPTH 2 + writing + waiting)
    most, count = _held_bytes(monkeypatch, limit=1000, cost=1500)
    assert count == 1 and most == 1500
    most, count = _held_bytes(monkeypatch, limit=10**9, cost=400)
    assert count > 2  # the limit, not the queues, held the first runs back


def test_upscale_files_reserves_each_outputs_bytes(tmp_path, capsys, monkeypatch):
    """Through ``lightsr upscale``: the pipeline reserves what each output really takes, so with a
    limit of 1.5 outputs only one finished output is held at a time. Broken on purpose (the output
    cost estimate returning 0, or the limit removed) -> fails."""
    from lightsr.upscaler import Upscaler

    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(src / f"f{i}.png")
    out_bytes = 32 * 32 * 3  # x4, uint8 RGB
    monkeypatch.setattr(pipeline, "QUEUE_BYTES", out_bytes * 3 // 2)
    lock, held, peak = threading.Lock(), [0], [0]
    real_upscale, real_encode = Upscaler.upscale_array, io._encode

    def upscale_array(self, arr, outscale=None):
        out = real_upscale(self, arr, outscale)
        with lock:
            held[0] += 1
            peak[0] = max(peak[0], held[0])
        return out

    def encode(tmp, *args):
        time.sleep(0.05)
        real_encode(tmp, *args)
        with lock:
            held[0] -= 1

    monkeypatch.setattr(Upscaler, "upscale_array", upscale_array)
    monkeypatch.setattr(io, "_encode", encode)
    rc, err = _upscale(capsys, src, "-o", tmp_path / "out")
    assert rc == 0 and len(list((tmp_path / "out").iterdir())) == 6, err
    assert peak[0] == 1, peak[0]
