"""Where a model runs: PyTorch (:class:`lightsr.inference.Runner`) or OpenVINO, chosen by measurement.

``backend`` is one of

* ``"torch"``: PyTorch eager (with ``precision`` and channels_last as :mod:`lightsr.precision` decides);
* ``"openvino"``: the model converted once by OpenVINO (``pip install 'lightsr[openvino]'``) and
  compiled for the CPU, in bf16 where the CPU does bf16 natively and ``precision`` allows it, else
  f32. Fixed-scale models only (a continuous model takes its scale as a Python number);
* ``"auto"`` (default): OpenVINO for the models in :data:`OPENVINO_MEASURED` when it is installed, the
  device is a CPU, ``precision`` is ``"auto"`` and the job is large enough to repay OpenVINO's one-time
  setup (:func:`pays_off`); PyTorch otherwise. A model enters the table only when
  ``benchmarks/runtimes.py`` measured OpenVINO faster than lightsr's own fastest default path on the
  same weights and its PSNR within 0.02 dB of fp32 on Set5 and Set14, and its break-even job size comes
  from ``benchmarks/backend_breakeven.py`` (results/runtimes.md); ``tests/test_backends.py`` checks
  every entry against those records.

A user's explicit ``precision="fp32"`` (``eval``'s default: exact reproduction) always runs PyTorch.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from . import precision as P
from .cache import cache_dir
from .errors import LightSRError
from .models.loading import Descriptor, describe_module

BACKENDS = ("auto", "torch", "openvino")
PROBE_TOLERANCE = 0.25  # |OpenVINO - PyTorch fp32| on a random 29x37 input: bf16 rounding passes, a frozen shape does not


@dataclass(frozen=True)
class Measured:
    """One model's record from ``benchmarks/runtimes.py`` and ``benchmarks/runtimes.py --psnr``:
    OpenVINO bf16 latency as a ratio to lightsr ``auto`` (median of interleaved rounds, 320x180 -> x4,
    2 threads) and its PSNR change against fp32 (dB, Y, standard protocol)."""

    ratio: float
    dpsnr_set5: float
    dpsnr_set14: float
    record: str = "results/runtimes/cnns/runtimes.json"  # the benchmark's output holding these figures
    # the job (input megapixels in image sizes that come at least twice: only those get OpenVINO's
    # per-size graph) from which OpenVINO's setup is repaid, with its converted model already in the
    # cache and without (the ONNX trace: a first run); (0, 0): from the first image
    pays_from_mpx: tuple[float, float] = (0.0, 0.0)
    breakeven_record: str | None = None  # benchmarks/backend_breakeven.py's output holding pays_from_mpx


# auto's table (results/runtimes.md, record results/runtimes/cnns/runtimes.json, 2026-12-03, AMD Zen 5
# with native bf16, 2 cores, 9 interleaved rounds; a repeat of the timing gave rlfn_s 0.82, imdn 0.66).
# rlfn_s, the default model, runs OpenVINO only for jobs that repay its setup: 9-10 % less time per
# image at 320x180, but +1.8 s before the first output without a cached conversion and +0.36 s with one
# (results/runtimes/breakeven/rlfn_s.json). hasn (its shipped weights; results/runtimes/hasn, 2026-12-03):
# 0.53x, repaid from the second image of a size when cached (+0.08 s to the first output, 0.29 s saved
# per image), from about 8 images on a first run. Left out: the window transformers (their ONNX graph
# follows one input size only).
# Under --max-memory auto runs PyTorch (the budget is measured on PyTorch).
OPENVINO_MEASURED: dict[str, Measured] = {
    "imdn": Measured(ratio=0.70, dpsnr_set5=-0.0074, dpsnr_set14=-0.0055),
    "rlfn_s": Measured(ratio=0.89, dpsnr_set5=0.0040, dpsnr_set14=0.0000, pays_from_mpx=(1.44, 9.05),
                       breakeven_record="results/runtimes/breakeven/rlfn_s.json"),
    "hasn": Measured(ratio=0.53, dpsnr_set5=-0.0015, dpsnr_set14=0.0002, record="results/runtimes/hasn/runtimes.json",
                     pays_from_mpx=(0.02, 0.47), breakeven_record="results/runtimes/breakeven/hasn.json"),
}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _core():
    """One OpenVINO Core for the process, never released. Releasing the last Core unloads the CPU plugin
    while its worker threads still park inside it: a signal that later lands on one of them (SIGTERM to
    a training run in the same process) returns into unmapped code and the process dies of SIGSEGV."""
    import openvino as ov

    return ov.Core()


def job_mpx(sizes: Iterable[tuple[int, int]]) -> float:
    """A job's size as :attr:`Measured.pays_from_mpx` counts it: the input megapixels of the images whose
    size comes at least twice (OpenVINO runs a size's first image on its slower dynamic-size graph)."""
    return sum(w * h * n for (w, h), n in Counter(sizes).items() if n >= 2) / 1e6


def pays_off(entry: Measured, desc: Descriptor, job: float | None) -> bool:
    """Does a job of ``job`` megapixels (None: unknown, taken as one image) repay OpenVINO's setup?"""
    cached_from, first_from = entry.pays_from_mpx
    need = cached_from
    if (job or 0.0) >= cached_from and first_from > cached_from:  # only then does the cache matter
        need = cached_from if conversion_cached(desc.module) else first_from
    return (job or 0.0) >= need


def choose_backend(backend: str | None, desc: Descriptor, device: torch.device | str, precision: str,
                   job: float | None = None) -> str:
    """``backend`` as asked -> the one that runs (``"torch"`` or ``"openvino"``). ``job``: the work
    ahead in megapixels (:func:`job_mpx`; None when unknown), for ``auto``'s :func:`pays_off`."""
    b = (backend or "auto").lower()
    if b not in BACKENDS:
        raise LightSRError(f"unknown backend {backend!r}; choose {', '.join(BACKENDS)}")
    cpu = torch.device(device).type == "cpu"
    if b == "openvino":
        if not cpu:
            raise LightSRError("the openvino backend runs on the CPU; use --device cpu (or --backend torch)")
        if desc.continuous:
            raise LightSRError(f"the openvino backend runs fixed-scale models; {desc.model or 'this model'} "
                               "takes any scale (use --backend torch)")
        if (precision or "auto").lower() == "fp16":
            raise LightSRError("precision fp16 needs a CUDA GPU; the openvino backend runs bf16 or fp32")
        if not openvino_available():
            raise LightSRError("the openvino backend needs OpenVINO: pip install 'lightsr[openvino]'")
        return "openvino"
    if b == "auto" and cpu and (precision or "auto").lower() == "auto" and not desc.continuous \
            and desc.model in OPENVINO_MEASURED and openvino_available() \
            and pays_off(OPENVINO_MEASURED[desc.model], desc, job):
        return "openvino"
    return "torch"


def _conversion_path(model: nn.Module) -> Path:
    """Where OpenVINO's converted ``model`` is cached: ``$LIGHTSR_CACHE/openvino/<digest>.xml``, the
    digest of what the converted graph depends on: the versions, the module (its repr: layers and their
    settings) and every tensor of its state."""
    import openvino as ov

    from . import __version__

    h = hashlib.sha256(f"{__version__} {torch.__version__} {ov.__version__} {model!r}".encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return cache_dir("openvino") / f"{h.hexdigest()[:32]}.xml"


def conversion_cached(model: nn.Module) -> bool:
    """Is OpenVINO's conversion of ``model`` (these weights) in the cache? (Then its setup is 0.1 s, not 2.)"""
    return _conversion_path(model).is_file()


def make_runner(model: nn.Module | Descriptor, device: torch.device | str = "cpu", precision: str = "auto",
                compile: bool = False, backend: str | None = "auto", job: float | None = None):
    """A :class:`~lightsr.inference.Runner` or an :class:`OpenVINORunner`, whichever ``backend`` picks."""
    from .inference import Runner

    desc = model if isinstance(model, Descriptor) else describe_module(model)
    if choose_backend(backend, desc, device, precision, job) == "openvino":
        return OpenVINORunner(desc, precision)
    return Runner(desc, device, precision, compile=compile)


class OpenVINORunner:
    """A fixed-scale model compiled by OpenVINO for the CPU; called like :class:`~lightsr.inference.Runner`:
    ``runner(x)`` takes a float32 (B, 3, h, w) tensor and returns float32. The model is converted at
    the first call with dynamic input sizes and compiled once; an input size seen a second time (a
    folder of same-size photos, video frames, tiles) gets a graph compiled for that size, which OpenVINO
    runs faster (RLFN-S x4 at 320x180: 12 % less time, 0.13 s to compile; results/runtimes.md). The
    last :data:`STATIC_SIZES` sizes are kept."""

    backend = "openvino"
    STATIC_SIZES = 4

    def __init__(self, desc: Descriptor, precision: str = "auto"):
        import openvino  # noqa: F401 - fail here, with choose_backend's message, not at the first image

        self.descriptor = desc
        self.model = desc.module.eval().float()
        self.device = torch.device("cpu")
        self.continuous = False
        self.precision = P.choose(precision, "cpu", desc.bf16)  # "bf16" or "fp32"
        self.channels_last = False
        self._request = None  # the dynamic-size graph
        self._converted = None
        self._seen: set[tuple[int, ...]] = set()
        self._static: dict[tuple[int, ...], object] = {}  # input shape -> request, oldest first

    def _compile_model(self, model):
        hint = "bf16" if self.precision == "bf16" else "f32"
        compiled = _core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        return compiled.create_infer_request()

    def _compile(self, x: torch.Tensor):
        """Traced to ONNX with dynamic sizes (the graph ``lightsr export`` writes), read by OpenVINO and
        compiled: the same graph a user deploying ``lightsr export``'s file runs (results/runtimes.md).
        The trace (about 1.1-1.3 s for RLFN-S or IMDN, against 0.1 s to compile) is done once per
        weights: the converted model is kept in ``$LIGHTSR_CACHE/openvino`` under a digest of the
        module and its weights, and the probe checks whatever was read."""
        from .export import trace_onnx

        core = _core()
        cached = _conversion_path(self.model)
        self._converted = None
        if cached.is_file():
            try:
                self._converted = core.read_model(str(cached))
            except Exception:  # noqa: BLE001 - an unreadable cache entry is made again
                self._converted = None
        if self._converted is None:
            with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
                path = Path(tmp) / "model.onnx"
                trace_onnx(self.model, path, tuple(x.shape[-2:]))
                self._converted = core.read_model(str(path))
            self._store(cached)
        request = self._compile_model(self._converted)
        self._probe(request)
        return request

    def _store(self, path: Path) -> None:
        """The converted model into the cache (.bin, then .xml: a reader never sees half an entry); a
        cache that cannot be written is skipped."""
        import openvino as ov

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                ov.save_model(self._converted, str(Path(tmp) / path.name), compress_to_fp16=False)
                os.replace(Path(tmp) / path.with_suffix(".bin").name, path.with_suffix(".bin"))
                os.replace(Path(tmp) / path.name, path)
        except OSError:
            pass

    def _probe(self, request) -> None:
        """The graph must follow the input size (a window model's padding arithmetic frozen by the trace
        would not): at a size unlike the traced one, OpenVINO's output must match PyTorch's."""
        x = torch.rand(1, 3, 29, 37, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ref = self.model(x)
        try:
            got = torch.from_numpy(request.infer({0: x.numpy()})[0].copy())
        except Exception:  # noqa: BLE001 - a reshape frozen to the traced size fails at another
            got = None
        if got is None or got.shape != ref.shape or float((got - ref).abs().max()) > PROBE_TOLERANCE:
            raise LightSRError("its graph follows one input size only")

    def _request_for(self, shape: tuple[int, ...]):
        """The graph compiled for ``shape`` when this size came before, else the dynamic one."""
        if shape in self._static:
            return self._static[shape]
        if shape not in self._seen:
            self._seen.add(shape)
            return self._request
        model = self._converted.clone()
        model.reshape({0: list(shape)})
        if len(self._static) >= self.STATIC_SIZES:
            self._static.pop(next(iter(self._static)))
        self._static[shape] = request = self._compile_model(model)
        return request

    def __call__(self, x: torch.Tensor, scale: float | None = None) -> torch.Tensor:
        x = x.to("cpu", torch.float32).contiguous()
        if self._request is None:
            try:
                self._request = self._compile(x)
            except Exception as exc:  # noqa: BLE001 - an op OpenVINO cannot convert: one line, not a traceback
                msg = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
                raise LightSRError(f"OpenVINO could not convert {self.descriptor.model or 'this model'} ({msg}); "
                                   "use --backend torch") from None
        # the input is read in place (contiguous float32); the output comes back as a fresh array
        request = self._request_for(tuple(x.shape))
        return torch.from_numpy(request.infer({0: x.numpy()}, share_inputs=True)[0])
