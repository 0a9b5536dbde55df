"""``lightsr info FILE [--json]``: the descriptor of a checkpoint (:func:`lightsr.models.loading.describe`)."""
from __future__ import annotations


# bf16's PSNR cost (bf16 - fp32, Set5 / Set14 dB, standard protocol) where it was measured, by the file's
# sha256: results/fast_path.md ("PSNR cost of bf16"; benchmarks/fast_path.py --psnr-only). It is what
# "within 0.02 dB" rests on, so `info` says it of these files only.
BF16_MEASURED = {
    "e660c38221147217a136debeb99eb304d62d9c0f73ac421ed66281b619719714": ("IMDN x4 reference", -0.0071, -0.0051),
    "d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff": ("CARN-M reference, at x4", -0.0042, -0.0057),
    "ca81b7757708ce749ac3766589690db6c2729961d026c0137e7659924ec36622": ("RLFN-S x4 reference", -0.0063, -0.0071),
    "dffb47c5a7e1e28755cde32d9fa4c19f14e965d6c63491da39419bf3699ec456": ("HiT-SRF x4 reference", -0.0027, -0.0073),
    "3e80def799232727ff0663f2b922135ba7d377699ad7b527862256f402414317": ("MambaIRv2-light x4 reference", 0.0212, 0.0032),
    "fbc3d5badbe10d5599e4f24e901fc6d3482241e4a196b5de52d97cae4593b8de": ("rdb_esa x4, shipped", -0.0161, -0.0093),
}


def bf16_cost(path: str) -> tuple[str, float, float] | None:
    """The measured bf16 cost of the checkpoint at ``path`` (BF16_MEASURED), or None: by the file's
    sha256, or by the ``sha256`` its metadata names (a published file lightsr converted to safetensors)."""
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    if h.hexdigest() in BF16_MEASURED:
        return BF16_MEASURED[h.hexdigest()]
    try:
        from ..checkpoint import read_metadata

        return BF16_MEASURED.get(str(read_metadata(path).get("sha256", "")))
    except Exception:  # noqa: BLE001 - not a safetensors file, or no metadata: nothing measured
        return None


def precision_line(bf16_allowed: bool, cost: tuple[str, float, float] | None) -> str:
    """What `info` says about precision: a measured cost only for a file it was measured on."""
    if cost is not None:
        return (f"precision:    fp32, bf16 (measured on these weights, the {cost[0]}: {cost[1]:+.4f} / {cost[2]:+.4f} dB "
                "on Set5 / Set14; results/fast_path.md)")
    if not bf16_allowed:
        return "precision:    fp32 (bf16 costs this architecture more than 0.02 dB)"
    return ("precision:    fp32, bf16 (--precision auto uses bf16 where native; its PSNR cost was not measured "
            "for this file: compare `lightsr eval --precision bf16` with fp32)")


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
    from ..files import json_text
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
    cost = bf16_cost(args.file)
    if args.json:
        data = desc.to_json()
        data["bf16_cost_db"] = None if cost is None else {"Set5": cost[1], "Set14": cost[2], "measured_on": cost[0]}
        print(json_text(data))
    else:
        lines = desc.summary().splitlines()
        print("\n".join(precision_line(desc.bf16, cost) if line.startswith("precision:") else line
                        for line in lines))
    return 0
