"""``lightsr weights list | download NAME [--scale S]``: shipped and published weights (:mod:`lightsr.hub`)."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("weights", help="list weights (shipped, cached, downloadable); download published ones",
                       description="Shipped weights come with lightsr; published ones are official checkpoints "
                       "that `upscale --model NAME` and lightsr.load(NAME) download into the cache "
                       "($LIGHTSR_CACHE/weights, default ~/.cache/lightsr/weights), verify (sha256) and "
                       "convert on first use. Shipped weights come first.")
    wsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = wsub.add_parser("list", help="per model and scale: shipped / cached / available to download")
    ls.add_argument("model", nargs="?", default=None, metavar="NAME", help="only models whose name contains NAME")
    ls.add_argument("--json", action="store_true", help="print the rows as JSON")
    ls.set_defaults(run=run_list)
    dl = wsub.add_parser("download", help="fetch a model's published checkpoint into the cache",
                         description="Download, verify (sha256) and convert a published checkpoint into the cache.")
    dl.add_argument("model", metavar="NAME", help="registered model name (`lightsr weights list`)")
    dl.add_argument("--scale", type=int, default=None, help="one scale (default: every published scale)")
    dl.set_defaults(run=run_download)


def _figures(figures: dict) -> str:
    """{"Set5": (psnr, ssim), ...} -> "32.2047 / 28.5819 (Set5/Set14)"."""
    if not figures:
        return "-"
    return " / ".join(f"{v[0]:.4f}" for v in figures.values()) + f" ({'/'.join(figures)})"


def _source(url: str) -> str:
    """github.com/OWNER/REPO/raw/COMMIT/PATH -> OWNER/REPO@COMMIT[:7]."""
    parts = url.split("/")
    if len(parts) > 6 and parts[2] == "github.com" and parts[5] == "raw":
        return f"{parts[3]}/{parts[4]}@{parts[6][:7]}"
    return url


def run_list(args) -> int:
    from ..files import json_text
    from ..cache import ENV as CACHE_ENV
    from ..hub import cache_dir, rows

    table = [r for r in rows() if args.model is None or args.model.lower().replace("-", "_") in r["model"]]
    if args.json:
        print(json_text(table))
        return 0
    print(f"{'model':18s} {'scale':5s} {'status':20s} {'Y-PSNR, standard protocol':47s} source (licence)")
    for r in table:
        if "url" in r:
            source = f"{_source(r['url'])} ({r['licence']})"
            figs = _figures(r["figures"])
        else:
            source, figs = "lightsr (trained here)", "-"
        scale = f"x{r['scale']}" if isinstance(r["scale"], int) else r["scale"]  # continuous: "any"
        print(f"{r['model']:18s} {scale:5s} {', '.join(r['status']) or '-':20s} {figs:47s} {source}")
    print(f"shipped: in the package; cached: in {cache_dir()} (${CACHE_ENV}); available: published, downloaded "
          "on first use or by `lightsr weights download NAME [--scale S]`; the first listed is used")
    return 0


def run_download(args) -> int:
    from ..errors import LightSRError
    from ..hub import fetch, paths, status
    from ..models.registry import get_entry

    entry = get_entry(args.model)
    if args.scale is not None:
        scales = [args.scale]
    elif entry.published:
        scales = sorted(entry.published)
    else:
        raise LightSRError(f"model {entry.name} has no published weights; `lightsr weights list` lists those that do")
    done = set()
    for scale in scales:
        path = paths(entry.name, scale)[0]  # one-line error for a scale that is not published
        was = status(entry.name, scale)
        if path not in done:
            fetch(entry.name, scale)
            done.add(path)
        note = " (already cached)" if "cached" in was else ""
        if "shipped" in was:
            note += f"; lightsr uses its shipped {entry.name} x{scale} weights first (pass --weights {path} to use these)"
        print(f"{entry.name} x{scale}: {path}{note}")
    return 0
