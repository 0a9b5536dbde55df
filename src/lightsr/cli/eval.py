"""``lightsr eval``: PSNR / SSIM on benchmark folders (:func:`lightsr.evaluate.run_evaluation`)."""
from __future__ import annotations

from ._options import model_args, model_options, resource_args


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="PSNR/SSIM on benchmark folders (standard protocol by default)")
    model_args(p, model_required=False, scale_pairs=True)  # without --model: architecture, scale from --weights
    _help(p, "model", "registered model name (default: read from --weights; without --weights, the default "
                      "model of upscale, with its shipped weights)")
    _help(p, "scale", "up-scaling factor (default: the checkpoint's own, else 4, as upscale; a checkpoint with "
                      "several heads, such as CARN-M's x2/x3/x4, needs it; continuous models: also s_h x s_w, "
                      "e.g. 2x3)")
    p.add_argument("--weights", help="checkpoint (.pth or .safetensors)")
    p.add_argument("--data", nargs="+", required=True, metavar="DIR", help="folders of HR images")
    resource_args(p)
    p.add_argument("--json", metavar="FILE", help="write per-set and per-image figures")
    p.add_argument("--save-images", metavar="DIR", help="write the SR images here (DIR/<dataset>/<name>.png)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file or saved images")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flip/rotate ensemble")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "fp16"],
                   help="fp32 (default, exact reproduction), auto, bf16, fp16 (CUDA)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "openvino"],
                   help="auto (default): PyTorch, or OpenVINO with --precision auto where it was measured "
                        "faster; openvino: score the OpenVINO-compiled model (pip install 'lightsr[openvino]')")
    p.add_argument("--random-weights", action="store_true",
                   help="score a model that has no weights (randomly initialised): a pipeline check only")
    p.add_argument("--protocol", choices=["standard", "matlab"], default="standard",
                   help="standard: float Y, gray replicated to RGB (today's tables); matlab: rounded Y")
    p.add_argument("--cache-dir", default=None, help="where LR images are cached")
    p.add_argument("--jpeg", type=int, default=None, metavar="Q",
                   help="save each LR as JPEG at quality Q (1-100) first: scores the compressed input users bring")
    p.set_defaults(run=run)


def _help(p, dest: str, text: str) -> None:
    next(a for a in p._actions if a.dest == dest).help = text


def run(args) -> int:
    from ..evaluate import run_evaluation

    model, scale = args.model, args.scale  # none: upscale's default model and scale (run_evaluation)
    run_evaluation(args.data, model=model, weights=args.weights, scale=scale,
                   options=model_options(args), device=args.device, protocol=args.protocol,
                   self_ensemble=args.self_ensemble, precision=args.precision, cache_dir=args.cache_dir,
                   save_images=args.save_images, json_path=args.json, overwrite=args.overwrite,
                   random_weights=args.random_weights, jpeg=args.jpeg, backend=args.backend)
    return 0
