"""``lightsr info FILE [--json]``: the descriptor of a checkpoint (:func:`lightsr.models.loading.describe`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="which architecture, scale and options a checkpoint is for",
                       description="Read a checkpoint's architecture, scale(s) and weight-shaping options "
                       "from its tensor names and shapes, and print them with its parameter count, input "
                       "requirements and whether tiling is exact.")
    p.add_argument("file", metavar="FILE", help="checkpoint (.pth, .pt or .safetensors)")
    p.add_argument("--json", action="store_true", help="print the descriptor as JSON")
    p.set_defaults(run=run)


def _image_format(path: str) -> str | None:
    """The image format Pillow recognises ``path`` as (header only), or None."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.format or "image"
    except Exception:  # noqa: BLE001 - not an image (or unreadable): describe() says what it is
        return None


def run(args) -> int:
    from ..checkpoint import json_text
    from ..errors import LightSRError
    from ..models.loading import describe

    try:
        desc = describe(args.file)
    except LightSRError as exc:
        kind = _image_format(args.file)
        if kind is not None:
            raise LightSRError(f"{args.file} is not a checkpoint: it is a {kind} image (info reads .pth, .pt "
                               "or .safetensors weights; to upscale it: lightsr upscale IMAGE -o OUT/)") from None
        if "weights only load failed" in str(exc).lower():  # torch's long text, cut mid-sentence
            raise LightSRError(f"{args.file} is not a checkpoint lightsr can read: torch.load(weights_only=True) "
                               "refused it (not a state dict of tensors, or pickled code)") from None
        raise
    print(json_text(desc.to_json()) if args.json else desc.summary())
    return 0
