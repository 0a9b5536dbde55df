"""Published weights by name: official checkpoints fetched into a cache, verified, converted, used.

A registry entry's ``published`` (:class:`lightsr.models.registry.Published`, one per scale) names an
official checkpoint by a raw URL at a full commit hash and its sha256. :func:`fetch` returns the
cached safetensors file for ``(model, scale)``, making it on first use:

1. ``CACHE/weights/<stem>.safetensors`` exists and its metadata names the published sha256: use it;
2. else ``CACHE/weights/<stem>.pth`` exists (a file the user downloaded by hand): check its sha256,
   convert it and delete it;
3. else download the URL (urllib) to a hidden temporary file in the cache folder, hashing while it
   streams and comparing the byte count with Content-Length when the server sends one; only a complete
   file with the right sha256 is converted, and only the converted file is renamed into place. A wrong
   checksum, a truncated transfer, an interrupted or failed conversion leave nothing in the cache.

``CACHE`` is ``$LIGHTSR_CACHE``, else ``~/.cache/lightsr``. ``<stem>`` is ``<model>_x<scale>``, or
``<model>`` for one file serving several scales (CARN-M's x2/x3/x4 heads). Conversion reads the
checkpoint with :func:`lightsr.models.loading.read_any_state_dict` (``params``, ``module.`` ...),
checks with :func:`~lightsr.models.loading.detect` that its keys and shapes are this model at this
scale, and stores the tensors with safetensors and metadata naming model, scale, source URL, sha256
and licence. ``$LIGHTSR_WEIGHTS_URL_BASE`` (a mirror: ``https://host/dir`` or ``file:///dir``)
replaces the URL by ``BASE/<stem>.pth``; the sha256 is checked all the same.

Without a network, :func:`fetch` raises one :class:`LightSRError` line naming the URL to download and
the exact path to put it at. Shipped weights (``lightsr/weights``) come before published ones; that
choice is the caller's (:func:`lightsr.api.load`), :func:`status` reports both.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from .errors import LightSRError
from .models.registry import ModelEntry, Published, get_entry, list_models

__all__ = ["cache_dir", "fetch", "weights_for", "paths", "published", "source_url", "status", "sha256_file", "rows"]

MIRROR_ENV = "LIGHTSR_WEIGHTS_URL_BASE"
TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """Where converted published weights live: ``$LIGHTSR_CACHE/weights`` (:mod:`lightsr.cache`)."""
    from .cache import cache_dir as _root

    return _root("weights")


def published(name: str, scale: int) -> Published | None:
    """The published checkpoint of model ``name`` at ``scale``, or None."""
    entry = get_entry(name)
    return entry.published.get(int(scale)) if float(scale) == int(scale) else None


def _require(name: str, scale: int) -> tuple[ModelEntry, Published]:
    entry = get_entry(name)
    pub = published(entry.name, scale)
    if pub is None:
        have = ", ".join(f"x{s}" for s in sorted(entry.published))
        raise LightSRError(f"model {entry.name} has no published weights for x{scale:g}"
                           + (f" (published: {have})" if have else "; `lightsr weights list` lists those that do"))
    return entry, pub


def _stem(entry: ModelEntry, scale: int, pub: Published) -> str:
    shared = [s for s, p in entry.published.items() if p.sha256 == pub.sha256]
    return entry.name if len(shared) > 1 else f"{entry.name}_x{int(scale)}"


def paths(name: str, scale: int) -> tuple[Path, Path]:
    """``(converted .safetensors, where a hand-downloaded original goes)`` in the cache."""
    entry, pub = _require(name, scale)
    stem, folder = _stem(entry, scale, pub), cache_dir()
    return folder / f"{stem}.safetensors", folder / f"{stem}{_suffix(pub.url)}"


def _suffix(url: str) -> str:
    return Path(urlparse(url).path).suffix or ".pth"


def source_url(name: str, scale: int) -> str:
    """The URL :func:`fetch` downloads: the published one, or ``$LIGHTSR_WEIGHTS_URL_BASE/<stem>.pth``."""
    entry, pub = _require(name, scale)
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return pub.url
    return f"{base.rstrip('/')}/{_stem(entry, scale, pub)}{_suffix(pub.url)}"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_for(name: str, scale: int, published_too: bool = True, kind: str = "clean") -> Path | None:
    """The weights a model name resolves to at ``scale``: the shipped file, else (``published_too``)
    the published checkpoint from the cache, fetched on first use (:func:`fetch`; offline: one line
    naming the URL and the cache path, and that ``--weights PATH`` is the other way); None if neither.
    The one rule every command follows (upscale, eval, compare). ``kind="photo"``: the shipped photo
    weights only (:mod:`lightsr.photo`)."""
    entry = get_entry(name)
    if kind != "clean":
        return entry.shipped_weights(scale, kind)
    path = entry.shipped_weights(scale)
    if path is None and published_too and published(entry.name, scale) is not None:
        try:
            path = fetch(entry.name, int(scale))
        except LightSRError as exc:
            raise LightSRError(f"{exc}; or pass a checkpoint with --weights PATH (Python: weights=PATH)") from None
    return path


def _cached_ok(path: Path, pub: Published) -> bool:
    if not path.is_file():
        return False
    from .checkpoint import read_metadata

    try:
        return read_metadata(path).get("sha256") == pub.sha256
    except Exception:  # noqa: BLE001 - unreadable: fetched again
        return False


def status(name: str, scale: int) -> list[str]:
    """What exists for ``(name, scale)``, in the order it is used: ``shipped``, ``cached``, ``available``
    (published, not in the cache); empty when nothing does."""
    entry = get_entry(name)
    out = ["shipped"] if entry.shipped_weights(scale) is not None else []
    if published(entry.name, scale) is not None:
        out.append("cached" if _cached_ok(paths(entry.name, scale)[0], entry.published[int(scale)]) else "available")
    return out


def _line(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _note(msg: str) -> None:
    print(f"lightsr: {msg}", file=sys.stderr, flush=True)


def fetch(name: str, scale: int, *, download: bool = True, quiet: bool = False) -> Path:
    """The cached, verified safetensors file of the published checkpoint of ``name`` at ``scale``
    (downloaded, checked and converted on first use; see the module docstring). One-line
    :class:`LightSRError` for anything that goes wrong, with nothing left in the cache."""
    entry, pub = _require(name, scale)
    scale = int(scale)
    converted, manual = paths(entry.name, scale)
    if _cached_ok(converted, pub):
        return converted
    url = source_url(entry.name, scale)
    put_it = (f"download {url} and put it at {manual} (lightsr checks its sha256 and converts it on first use)")
    if manual.is_file():
        got = sha256_file(manual)
        if got != pub.sha256:
            raise LightSRError(f"{manual} has sha256 {got}, not {pub.sha256} (the published {entry.name} "
                               f"x{scale} file); delete it, then {put_it}")
        _convert(manual, converted, entry, scale, pub, url)
        manual.unlink()
        return converted
    if not download:
        raise LightSRError(f"{entry.name} x{scale} weights are not in the cache; {put_it}")
    try:  # nothing is created in the cache before the server answers
        resp = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 - https, or a mirror the user set
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise LightSRError(f"cannot download the {entry.name} x{scale} weights ({_line(exc)}); {put_it}") from None
    with resp:
        converted.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{manual.name}.", suffix=".part", dir=converted.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _download(resp, url, out, pub, entry.name, scale, put_it, quiet)
            _convert(tmp, converted, entry, scale, pub, url)
        finally:
            tmp.unlink(missing_ok=True)
    return converted


def _download(resp, url: str, out, pub: Published, name: str, scale: int, put_it: str, quiet: bool) -> None:
    """Stream the open response ``resp`` into the open file ``out``; raise unless complete and of the
    published sha256."""
    h, got = hashlib.sha256(), 0
    length = resp.headers.get("Content-Length")
    expected = int(length) if length and length.strip().isdigit() else None
    if not quiet:
        size = f" ({expected / 1e6:.1f} MB)" if expected else ""
        _note(f"downloading the {name} x{scale} weights{size} from {url}")
    try:
        for chunk in iter(lambda: resp.read(_CHUNK), b""):
            h.update(chunk)
            out.write(chunk)
            got += len(chunk)
    except (http.client.HTTPException, OSError) as exc:
        raise LightSRError(f"the download of {url} broke off after {got} bytes ({_line(exc)}); nothing was "
                           f"kept; run again, or {put_it}") from None
    if expected is not None and got != expected:
        raise LightSRError(f"the download of {url} was cut off: {got} of {expected} bytes; nothing was kept; "
                           f"run again, or {put_it}")
    if h.hexdigest() != pub.sha256:
        raise LightSRError(f"{url} gave a file with sha256 {h.hexdigest()}, not the published {pub.sha256}; "
                           f"nothing was kept")


def _convert(src: Path, dst: Path, entry: ModelEntry, scale: int, pub: Published, url: str) -> None:
    """A verified official checkpoint -> ``dst`` (safetensors + metadata), after checking that its
    keys and shapes are ``entry`` at ``scale``."""
    from .checkpoint import is_derived, save_weights
    from .models.loading import detect, read_any_state_dict

    sd, _ = read_any_state_dict(src)
    desc = detect(sd, source=url, hint=entry.name)
    scales = desc.scale if isinstance(desc.scale, tuple) else (desc.scale,)
    if desc.model != entry.name or scale not in scales:
        raise LightSRError(f"{url} holds {desc.model} weights for {', '.join(f'x{s}' for s in scales)}, "
                           f"not {entry.name} x{scale}: the registry entry is wrong")
    tensors = {k: v.clone() for k, v in sd.items() if not is_derived(k)}  # own storage each (safetensors)
    meta = {"model": entry.name, "scale": list(scales) if len(scales) > 1 else scales[0], "source_url": pub.url,
            "sha256": pub.sha256, "licence": pub.licence, "options": desc.options}
    if url != pub.url:
        meta["downloaded_from"] = url
    save_weights(tensors, dst, metadata=meta, overwrite=True)


def rows() -> list[dict]:
    """One row per (model, scale) with shipped or published weights: what ``lightsr weights list`` shows."""
    out = []
    for name in list_models():
        entry = get_entry(name)
        shipped = {s for s in entry.pretrained if entry.shipped_weights(s) is not None}
        for scale in sorted(shipped | set(entry.published)):
            pub = entry.published.get(scale)
            row = {"model": name, "scale": scale if entry.scales is not None else "any", "status": status(name, scale),
                   "shipped": str(entry.shipped_weights(scale) or "") or None}
            if pub is not None:
                row.update(url=pub.url, sha256=pub.sha256, licence=pub.licence, note=pub.note,
                           figures={k: list(v) for k, v in pub.figures.items()}, path=str(paths(name, scale)[0]))
            out.append(row)
    return out
