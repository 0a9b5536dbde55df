"""``lightsr upscale``: image files, folders (recursively, keeping the tree) and globs through
:func:`lightsr.load`'s upscaler, read, run and written by :mod:`lightsr.pipeline`.

``lightsr upscale`` with no input prints the usage line and exits 2.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import LightSRError
from ._options import model_options, parse_memory, resource_args, scale_or_pair


def add_parser(sub) -> None:
    p = sub.add_parser("upscale", help="upscale images, folders or globs",
                       usage="%(prog)s INPUT [INPUT ...] -o OUTPUT [options]   (try: %(prog)s --sample -o out/; "
                             "-h lists the options)",
                       description="Upscale image files, folders (recursively, keeping the tree) and globs.")
    p.add_argument("input", nargs="*", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--sample", action="store_true", help="upscale the sample image shipped with lightsr")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="output folder (or a file name for a single input file; a trailing / always "
                        "means a folder)")
    p.add_argument("--model", default=None, help="registered model name (default: the shipped default model)")
    resource_args(p)
    p.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (.safetensors or .pth)")
    p.add_argument("--kind", default="auto", choices=["auto", "clean", "photo"],
                   help="which shipped weights: auto (default): the photo weights for compressed input (JPEG "
                        "below q93, lossy WebP) where the model has them, else the clean (bicubic-trained) ones; "
                        "clean or photo for every input")
    p.add_argument("--scale", type=scale_or_pair, default=None,
                   help="the model's native scale (default: the checkpoint's own, else 4; a checkpoint with "
                        "several heads, such as CARN-M's x2/x3/x4, needs it); a continuous-scale model runs at any "
                        "scale, e.g. 2.5, or s_h x s_w such as 2x3")
    p.add_argument("--outscale", type=float, default=None, metavar="F",
                   help="final scale of a fixed-scale model: its native scale, then MATLAB bicubic (e.g. 3.5)")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.add_argument("--tile", type=int, default=0, metavar="N", help="tile size in input pixels (0: whole image)")
    p.add_argument("--tile-pad", type=int, default=16, metavar="P", help="context pixels around each tile")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget, e.g. 2G or 512M: the process's peak RSS growth once the model is "
                        "loaded (input, output, the encoder's copy, the model's measured cost per tile pixel) "
                        "picks the tile size; a budget too small for the output is refused in one line")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 where the device does it natively and the model tolerates it, "
                        "else fp32; fp16 on CUDA only")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (eager if unavailable)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"],
                   help="auto (default): OpenVINO for the models it was measured faster on, when installed "
                        "(pip install 'lightsr[openvino]'), else PyTorch")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble (8x slower)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--suffix", default="", metavar="TXT", help="appended to output file names")
    p.add_argument("--ext", default="same", help="png, jpg, webp, tif, bmp or same (default)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--png-level", type=int, default=None, metavar="N",
                   help="PNG compression level 0-9 (default 1: fast; 9: smallest files, slowest)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument("--skip-existing", action="store_true",
                          help="keep outputs that already exist and are complete images (resume an interrupted "
                               "folder); an incomplete one is reported as failed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run, parser=p)


def run(args) -> int:
    from ..imageio import FORMATS
    from ..pipeline import Terminated, summary_line
    from ..api import SAMPLE, check_outscale, load
    from ..batch import upscale_files

    if getattr(args, "png_level", None) is not None and not 0 <= args.png_level <= 9:
        raise LightSRError(f"--png-level {args.png_level}: use a level from 0 (fastest, largest) to 9 (smallest)")
    if not 1 <= args.quality <= 100:
        raise LightSRError(f"--quality {args.quality}: use 1 to 100 (JPEG/WebP)")
    ext = (args.ext or "same").lower().lstrip(".")
    if ext != "same" and "." + ext not in FORMATS:  # flags are checked before the model loads
        raise LightSRError(f"--ext {args.ext!r}: use png, jpg, webp, tif, bmp or same")
    check_outscale(args.outscale)
    inputs = list(args.input or []) + ([str(SAMPLE)] if getattr(args, "sample", False) else [])
    if not inputs:
        usage_error = getattr(getattr(args, "parser", None), "error", None)
        if usage_error is not None:
            usage_error("give image files, folders or globs to upscale, or --sample")  # usage line, exit 2
        raise LightSRError("no input images: give image files, folders or globs, or --sample")
    show = not args.quiet and _is_terminal(sys.stderr)  # progress on a terminal only, never in logs or pipes
    job = job_size(inputs, tiled=bool(args.tile))

    def make(kind: str):
        return load(args.model, scale=args.scale, device=args.device, weights=args.weights,
                    precision=args.precision, compile=args.compile, tile=args.tile or None,
                    tile_pad=args.tile_pad, self_ensemble=args.self_ensemble,
                    max_memory=parse_memory(args.max_memory), progress=False, outscale=args.outscale,
                    options=model_options(args), kind=kind, backend=args.backend, job=job)

    up = make("photo" if args.kind == "photo" else "clean")
    choose = None
    if args.kind == "auto" and args.weights is None and up.descriptor is not None:
        from ..models import get_entry
        from ..photo import ByInput

        if get_entry(up.descriptor.model).shipped_weights(up.native_scale, "photo") is not None:
            choose = ByInput(up, lambda: make("photo"))
    if up.continuous and up.outscale is None:  # one line now rather than one per file
        raise LightSRError(f"{up.descriptor.model} is a continuous-scale model: give --scale (e.g. 2.5, or 2x3)")
    line = TileLine(sys.stderr, whole=len(inputs) == 1 and Path(inputs[0]).is_file()) if show else None
    up.on_tile = line
    try:
        stats = upscale_files(up, inputs, args.output, suffix=args.suffix, ext=ext, overwrite=args.overwrite,
                              skip_existing=getattr(args, "skip_existing", False),
                              quality=args.quality, png_level=args.png_level, progress=show, choose=choose)
    except Terminated:
        if line is not None:
            line.clear()
        print("lightsr: terminated (SIGTERM): finished files are complete, nothing partial was left",
              file=sys.stderr)
        return 143
    finally:
        if line is not None:
            line.clear()
    what = running(up) + (", photo weights" if up.kind == "photo" else "")
    if choose is not None and choose.summary():
        what += f"; {choose.summary()}"
    print(f"lightsr: {summary_line(stats, what=what)}", file=sys.stderr)
    report = getattr(up.model, "budget_report", None)  # AnySR --max-gflops: what ran, and the head's cost
    if args.max_gflops is not None and callable(report) and report():
        print(f"lightsr: {report()}", file=sys.stderr)
    return 1 if stats.failed else 0


def job_size(inputs: list[str], tiled: bool = False) -> float:
    """The job in megapixels as ``backend="auto"`` weighs it (:func:`lightsr.backends.job_mpx`), from
    the files' headers; with ``--tile`` every image counts (its tiles repeat one size)."""
    from ..backends import job_mpx
    from ..batch import collect_inputs
    from ..imageio import image_size

    sizes = [s for s in (image_size(f) for f, _ in collect_inputs(inputs)[0]) if s is not None]
    return job_mpx(sizes + (sizes if tiled else []))


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def running(up) -> str:
    """What ran, for the summary line: ``"rlfn_s x4, bf16"`` (``x4 then bicubic to x3.5`` with --outscale)."""
    desc = getattr(up, "descriptor", None)
    name = getattr(desc, "model", None) or type(up.model).__name__
    out = up.outscale
    if up.continuous:
        scale = f"x{out[0]:g}x{out[1]:g}" if isinstance(out, tuple) else f"x{out:g}"
    else:
        scale = f"x{up.native_scale:g}"
        if out is not None and not isinstance(out, tuple) and abs(out - up.native_scale) > 1e-9:
            scale += f" then bicubic to x{out:g}"
    return f"{name} {scale}, " + (f"openvino {up.precision}" if up.backend == "openvino" else up.precision)


class TileLine:
    """The upscaler's ``on_tile`` callback on a terminal: one carriage-return line, ``tile 12/40``,
    cleared when the image is done. A whole image in one model call (``total`` 1) is announced only
    when ``whole`` (a single input file: a folder's image bar is the progress there)."""

    def __init__(self, stream, whole: bool = False):
        self.stream, self.whole, self.shown = stream, whole, False

    def __call__(self, done: int, total: int) -> None:
        if done >= total:
            self.clear()
        elif total > 1:
            self._show(f"lightsr: tile {done}/{total}")
        elif self.whole:
            self._show("lightsr: upscaling the whole image in one model call (--tile 256 shows progress per tile)")

    def _show(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False
