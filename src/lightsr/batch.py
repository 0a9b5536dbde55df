"""Folders of image files through an :class:`~lightsr.upscaler.Upscaler`: :func:`upscale_files` (what
``lightsr upscale`` runs) and the pieces it is built from: collecting inputs (files, folders kept as
trees, globs), naming outputs, and checking the output location before any work.
"""
from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import LightSRError
from .files import check_out_root
from .imageio import list_images
from .upscaler import note, progress_bar

if TYPE_CHECKING:
    from .upscaler import Upscaler


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``[(file, path relative to its root)]`` for files, folders (recursive; hidden files and folders
    skipped: :func:`lightsr.imageio.list_images`) and globs; plus errors."""
    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = list_images(p, recursive=True)
            if not files:
                errors.append(f"no images found in folder {p}")
            found += [(f, f.relative_to(p)) for f in files]
        elif p.is_file():
            found.append((p, Path(p.name)))
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                errors.append(f"no files match {item}")
            found += [(m, Path(m.name)) for m in files]
        else:
            errors.append(f"input not found: {item}")
    seen, unique = set(), []
    for f, rel in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, rel))
    return unique, errors


def output_path(src: Path, rel: Path, out: Path, single_file: bool, suffix: str, ext: str) -> Path:
    from .imageio import FORMATS

    if ext == "same":
        new_ext = src.suffix.lower() if src.suffix.lower() in FORMATS else ".png"
    else:
        new_ext = "." + ext.lower().lstrip(".")
    if single_file and out.suffix.lower() in FORMATS and not out.is_dir():
        return out
    return out / rel.parent / f"{rel.stem}{suffix}{new_ext}"


def _complete_image(path: Path) -> bool:
    """Whether Pillow decodes ``path`` to the end (an output cut off by a crash or a full disk is not)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # an upscaled output may well pass Pillow's bomb guard
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - truncated, corrupt, not an image: not a finished output
        return False
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def upscale_files(up: Upscaler, inputs: list[str], output: str | os.PathLike, *, suffix: str = "",
                  ext: str = "same", overwrite: bool = False, quality: int = 95, png_level: int | None = None,
                  progress: bool = True, report=None, skip_existing: bool = False, choose=None):
    """Upscale image files, folders (recursively, keeping the tree) and globs into ``output``.

    ``output`` is a folder, or a file name when ``inputs`` is one file. ``ext``: ``"same"`` or an
    output format (png, jpg, webp, tif, bmp); ``suffix`` is added to each stem. Files are read,
    upscaled and written by :mod:`lightsr.pipeline` (decoding and encoding overlap the model);
    an existing output is never replaced unless ``overwrite``; with ``skip_existing`` one that is a
    complete image is skipped (``Stats.skipped``: resuming an interrupted folder) and an incomplete
    one is reported as failed and left alone. ``output`` ending in a path separator is always a
    folder. One bad file is reported through
    ``report`` (a one-argument callable, default: stderr) and skipped. Returns the
    :class:`~lightsr.pipeline.Stats`, ``failed`` counting inputs that were not found too. Problems
    with the whole request (no inputs, an unwritable folder, two inputs that would write one file)
    raise :class:`LightSRError` before any work; SIGTERM raises
    :class:`~lightsr.pipeline.Terminated` with only complete files left. ``choose``: a callable
    ``ImageData -> Upscaler`` picking the upscaler per file (:class:`lightsr.photo.ByInput`: photo
    weights for compressed input); default ``up`` for every file (all must share ``up``'s scale).
    """
    from .imageio import FORMATS, PNG_LEVEL, check_png_level, read, write_image
    from .pipeline import SKIP, Job, run as run_files, sigterm_as_exception

    report = report or (lambda msg: print(f"lightsr: error: {msg}", file=sys.stderr))
    ext = (ext or "same").lower().lstrip(".")
    if ext != "same" and "." + ext not in FORMATS:
        raise LightSRError(f"output format {ext!r}: use png, jpg, webp, tif, bmp or same")
    png_level = check_png_level(PNG_LEVEL if png_level is None else png_level)
    if not 1 <= quality <= 100:
        raise LightSRError(f"quality {quality}: use 1 to 100 (JPEG/WebP)")
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise LightSRError("no input images: give image files, folders or globs")
    if overwrite and skip_existing:
        raise LightSRError("--overwrite and --skip-existing exclude each other: replace existing outputs, or keep them")
    files, errors = collect_inputs(inputs)
    out = Path(output)
    as_folder = str(output).endswith(tuple(sep for sep in (os.sep, os.altsep, "/") if sep))  # run.v2/
    single = len(inputs) == 1 and Path(inputs[0]).is_file() and not as_folder
    if single and out.suffix.lower() not in FORMATS and not out.is_dir() and out.suffix:
        raise LightSRError(f"output {out}: unknown image extension {out.suffix!r} "
                           f"(use {', '.join(sorted(set(FORMATS)))} or a folder)")
    check_out_root(out if not (single and out.suffix) else out.parent)
    if not files:
        raise LightSRError("no input images" + (f" ({'; '.join(errors)})" if errors else ""))
    for e in errors:
        report(e)
    jobs = [Job(i, src, output_path(src, rel, out, single, suffix, ext)) for i, (src, rel) in enumerate(files)]
    seen: dict[Path, Path] = {}
    for job in jobs:  # x.png and x.jpg -> x.png twice: refuse before any work, whatever overwrite says
        key = job.dst.resolve()
        if key in seen:
            raise LightSRError(f"{seen[key]} and {job.src} would both be written to {job.dst}; "
                               "rename one of them or write them to separate folders")
        seen[key] = job.src
    if ext == "same":  # a format lightsr reads but does not write (GIF, PPM, TGA ...): said once
        changed: dict[str, int] = {}
        for job in jobs:
            named = single and job.dst == out  # -o x.png: the user chose the format
            if not named and job.src.suffix.lower() not in FORMATS and job.dst.suffix.lower() != job.src.suffix.lower():
                kind = job.src.suffix.lower().lstrip(".").upper() or "?"
                changed[kind] = changed.get(kind, 0) + 1
        for kind, n in changed.items():
            note(f"note: {n} {kind} input{'s' if n != 1 else ''} will be written as PNG (lightsr does not "
                  f"write {kind}; --ext picks another format)")

    def load_one(job: Job):
        if job.dst.resolve() == job.src.resolve():
            raise LightSRError(f"output {job.dst} is the input file; choose another -o folder or a --suffix")
        if job.dst.exists() and not overwrite:
            if not skip_existing:
                raise LightSRError(f"{job.dst} exists; refusing to overwrite it (pass --overwrite to replace it, "
                                   "or --skip-existing to keep finished outputs and do the rest)")
            if job.dst.is_file() and _complete_image(job.dst):
                return SKIP
            raise LightSRError(f"{job.dst} exists but is not a complete image (cut off by an interrupted run?); "
                               "delete it or pass --overwrite to redo it")
        return read(job.src)

    def output_bytes(img) -> int:
        h, w, c = img.array.shape
        try:
            oh, ow = up.output_size(h, w, up.outscale)
        except Exception:  # noqa: BLE001 - only an estimate for the queue's memory bound
            return 0
        return oh * ow * c * img.array.itemsize

    def save(job: Job, img, result) -> float:
        write_image(job.dst, result, like=img, overwrite=overwrite, quality=quality, png_level=png_level)
        return result.shape[0] * result.shape[1] / 1e6

    bar = progress_bar(len(files), "img", progress and len(files) > 1, leave=True)
    try:
        with sigterm_as_exception():
            compute = (lambda img: up(img.array)) if choose is None else (lambda img: choose(img)(img.array))
            stats = run_files(jobs, load_one, compute, save, output_bytes, note, bar)
    finally:
        bar.close()
    stats.failed += len(errors)
    return stats
