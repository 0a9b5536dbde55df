"""Reading and writing images for users: any mode, 8/16 bit, EXIF orientation, ICC kept, atomic writes.

``read_image(path)`` returns an ``(H, W, C)`` array, ``C`` = 1 (gray), 3 (RGB) or 4 (RGBA), dtype
uint8 or uint16, with the EXIF orientation applied. Palette, CMYK, LA, 1-bit, I;16 ... are converted
to the nearest of those. Every problem with the file (missing, empty, truncated, corrupt, not an
image, a decompression bomb) is a :class:`~lightsr.errors.LightSRError` with one line.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import LightSRError

# Above this many pixels a file is refused (decompression-bomb guard). 8000x6000 = 48 MP is fine.
MAX_PIXELS = int(os.environ.get("LIGHTSR_MAX_PIXELS", 16384 * 16384))


@dataclass
class ImageData:
    """Pixels plus what is needed to write an output that looks like the input."""

    array: np.ndarray  # (H, W, C) uint8 / uint16
    format: str = ""  # PIL format name of the source: PNG, JPEG, WEBP, TIFF, BMP ...
    mode: str = ""  # PIL mode of the source file before conversion
    icc_profile: bytes | None = None
    info: dict = field(default_factory=dict)  # dpi ... (best effort)
    lossy: str | None = None  # "jpeg" / "webp" when the source was lossily compressed, else None
    quality: int | None = None  # JPEG only: the quality its quantization tables match (1-100, IJG scale)

    @property
    def bit_depth(self) -> int:
        return 16 if self.array.dtype == np.uint16 else 8


def _fail(path: Path, what: str) -> LightSRError:
    return LightSRError(f"cannot read image {path}: {what}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def to_array(im) -> np.ndarray:
    """A loaded PIL image in any mode -> (H, W, C) uint8/uint16."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im).astype(np.uint16)
    elif mode == "I":  # 32-bit int: 16-bit data in most files
        a = np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
    elif mode == "F":  # float: [0, 1] data scaled to 16 bit, else clipped
        f = np.asarray(im, dtype=np.float64)
        if np.nanmax(f) <= 1.0:
            f = f * 65535.0
        a = np.clip(np.nan_to_num(f), 0, 65535).round().astype(np.uint16)
    elif mode in ("1", "L"):
        a = np.asarray(im.convert("L"))
    elif mode in ("LA", "La"):  # gray + alpha stays two channels (and comes back as LA)
        a = np.asarray(im.convert("LA"))
    elif mode in ("PA", "RGBA", "RGBa"):
        a = np.asarray(im.convert("RGBA"))
    elif mode == "P":
        rgba = "transparency" in im.info or im.palette is not None and im.palette.mode == "RGBA"
        a = np.asarray(im.convert("RGBA" if rgba else "RGB"))
    else:  # RGB, RGBX, CMYK, YCbCr, LAB, HSV
        a = np.asarray(im.convert("RGB"))
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a)


def read(path: str | os.PathLike, max_pixels: int | None = None) -> ImageData:
    """Read an image with its metadata (ICC profile, source format and mode)."""
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.exists():
        raise LightSRError(f"image not found: {path}")
    if path.is_dir():
        raise LightSRError(f"{path} is a folder, not an image")
    if path.stat().st_size == 0:
        raise _fail(path, "the file is empty (0 bytes)")
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    pil_limit = Image.MAX_IMAGE_PIXELS
    try:
        # Pillow's own guard is replaced by the one below (same idea, our limit, one clear line);
        # Image.open parses only the header, so nothing large is decoded before the size check.
        Image.MAX_IMAGE_PIXELS = None
        im = Image.open(path)
    except Image.UnidentifiedImageError:
        raise _fail(path, "not an image file, or a format Pillow cannot decode") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
        raise _fail(path, _reason(exc)) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    with im:
        w, h = im.size
        if w * h > limit:
            raise _fail(path, f"{w}x{h} = {w * h / 1e6:.0f} megapixels exceeds the limit of "
                        f"{limit / 1e6:.0f} (decompression-bomb guard; set LIGHTSR_MAX_PIXELS to raise it)")
        if w < 1 or h < 1:
            raise _fail(path, f"image has no pixels ({w}x{h})")
        fmt, mode = im.format or "", im.mode
        icc = im.info.get("icc_profile") or None
        info = {k: im.info[k] for k in ("dpi",) if k in im.info}
        try:
            lossy, quality = compression(im, path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()  # decodes everything: truncated / corrupt data fails here
                if fmt == "PNG" and mode in ("RGB", "RGBA", "LA") and _png_is_16bit(path):
                    arr = _apply_orientation(read_png16(path), im)
                else:
                    upright = ImageOps.exif_transpose(im)
                    if mode == "CMYK" and icc_space(icc) == "CMYK":
                        upright, icc = _cmyk_to_srgb(upright, icc), None
                    arr = to_array(upright)
        except Exception as exc:  # noqa: BLE001 - truncated / corrupt data
            raise _fail(path, _reason(exc)) from None
    if icc is not None and icc_space(icc) != _space_of(arr.shape[2]):
        icc = None  # a profile for another colour space (CMYK, or gray on RGB data) would mislead
    return ImageData(arr, fmt, mode, icc, info, lossy, quality)


def compression(im, path: Path) -> tuple[str | None, int | None]:
    """``(lossy, quality)`` of an opened PIL image: ``("jpeg", q)`` with ``q`` the IJG quality whose
    luminance quantization table is nearest the file's (exact for files libjpeg / Pillow / most tools
    wrote; the nearest match for cameras' own tables), ``("webp", None)`` for lossy WebP, else
    ``(None, None)``."""
    if im.format == "JPEG":
        tables = getattr(im, "quantization", None) or {}
        if 0 not in tables:
            return "jpeg", None
        luma = np.asarray(tables[0], dtype=np.int64)
        refs = _ijg_luma_tables()
        if luma.shape != refs.shape[1:]:
            return "jpeg", None
        return "jpeg", int(np.abs(refs - luma).sum(1).argmin()) + 1
    if im.format == "WEBP":
        return ("webp", None) if _webp_is_lossy(path) else (None, None)
    return None, None


@functools.lru_cache(maxsize=1)
def _ijg_luma_tables() -> np.ndarray:
    """(100, 64): the luminance table Pillow's libjpeg writes at quality 1..100, in Pillow's order."""
    import io

    from PIL import Image

    tiny, rows = Image.new("L", (8, 8)), []
    for q in range(1, 101):
        buf = io.BytesIO()
        tiny.save(buf, "JPEG", quality=q)
        buf.seek(0)
        rows.append(Image.open(buf).quantization[0])
    return np.asarray(rows, dtype=np.int64)


def _webp_is_lossy(path: Path) -> bool:
    """True when the WebP container holds a lossy ``VP8 `` bitstream (``VP8L`` is lossless); the RIFF
    chunk list is walked, so extended files (``VP8X`` with alpha, animation) are covered."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if kind in (b"VP8 ", b"ANMF"):
            return True  # an animation frame of lossy data also starts ANMF; frames are lossy in practice
        if kind == b"VP8L":
            return False
        pos += 8 + size + (size & 1)
    return False


def icc_space(icc: bytes | None) -> str | None:
    """The colour space an ICC profile describes ("RGB", "GRAY", "CMYK", "Lab" ...), from its header."""
    if not icc or len(icc) < 20:
        return None
    return icc[16:20].decode("latin-1").strip()


def _space_of(channels: int) -> str:
    return "GRAY" if channels in (1, 2) else "RGB"


def _cmyk_to_srgb(im, icc: bytes):
    """CMYK pixels through their own profile to sRGB, as image editors do on import; Pillow's plain
    conversion (without the profile) if littlecms cannot use it."""
    import io

    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im.convert("RGB")


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """``(H, W, C)`` uint8/uint16 array of an image file, EXIF orientation applied."""
    return read(path, max_pixels).array


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` from the file's header, without decoding it; None when it cannot be read
    (the read itself reports why, later)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unreadable file: no size, no error here
        return None


def _png_is_16bit(path: Path) -> bool:
    """A 16-bit PNG (plain or Adam7-interlaced): Pillow reads 16-bit colour at 8 bit."""
    with open(path, "rb") as f:
        head = f.read(33)
    return len(head) >= 29 and head[12:16] == b"IHDR" and head[24] == 16 and head[28] in (0, 1)


def _apply_orientation(arr: np.ndarray, im) -> np.ndarray:
    """EXIF orientation (tag 274) applied to an array, as ImageOps.exif_transpose does."""
    try:
        o = im.getexif().get(274, 1)
    except Exception:  # noqa: BLE001
        o = 1
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    return np.ascontiguousarray(ops[o](arr)) if o in ops else arr


# ---------------------------------------------------------------------------------------------
# 16-bit colour PNG. Pillow reads and writes 16-bit gray ("I;16") but turns 16-bit RGB/RGBA into
# 8 bit, so those two are decoded/encoded here (non-interlaced; PNG spec section 9 filters).
# ---------------------------------------------------------------------------------------------
def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if pos + 12 + n > len(data):
            raise ValueError("truncated PNG chunk")
        yield kind, data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IEND":
            return
    raise ValueError("PNG has no IEND chunk (truncated file)")


def _unfilter_row(ftype: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if ftype == 0:
        return row
    if ftype == 1:  # Sub: running sum along each byte lane, modulo 256
        return np.cumsum(row.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
    if ftype == 2:  # Up
        return row + prev
    if ftype not in (3, 4):
        raise ValueError(f"bad PNG filter type {ftype}")
    out = row.astype(np.int32).tolist()
    up = prev.astype(np.int32).tolist()
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        if ftype == 3:  # Average
            out[i] = (out[i] + ((a + up[i]) >> 1)) & 255
        else:  # Paeth
            b = up[i]
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[i] = (out[i] + pred) & 255
    return np.asarray(out, dtype=np.uint8)


def read_png16(path: str | os.PathLike) -> np.ndarray:
    """(H, W, C) uint16 pixels of a 16-bit PNG (gray, gray+alpha, RGB or RGBA; plain or Adam7)."""
    import zlib

    data = Path(path).read_bytes()
    idat, ihdr = [], None
    for kind, body in _png_chunks(data):
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
    if ihdr is None or not idat:
        raise ValueError("PNG without IHDR or IDAT")
    w, h = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, ctype, interlace = ihdr[8], ihdr[9], ihdr[12]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 16 or channels is None or interlace not in (0, 1):
        raise ValueError("only 16-bit gray/RGB/RGBA PNGs are decoded here")
    bpp = 2 * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    out = np.empty((h, w, bpp), dtype=np.uint8)
    pos = 0
    # Adam7 (interlace 1): seven sub-images (x0, y0, dx, dy), each filtered on its own
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        pw, ph = -(-(w - x0) // dx), -(-(h - y0) // dy)
        if pw <= 0 or ph <= 0:
            continue  # an empty pass has no scanlines at all
        stride = pw * bpp
        if raw.size < pos + ph * (stride + 1):
            raise ValueError("image data is truncated")
        rows = raw[pos:pos + ph * (stride + 1)].reshape(ph, stride + 1)
        pos += ph * (stride + 1)
        sub = np.empty((ph, stride), dtype=np.uint8)
        prev = np.zeros(stride, dtype=np.uint8)
        for y in range(ph):
            prev = sub[y] = _unfilter_row(int(rows[y, 0]), rows[y, 1:], prev, bpp)
        out[y0::dy, x0::dx] = sub.reshape(ph, pw, bpp)
    return out.reshape(h, w * bpp).view(">u2").reshape(h, w, channels).astype(np.uint16)


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_meta(icc_profile: bytes | None, dpi: tuple | None) -> bytes:
    """The iCCP and pHYs chunks of a PNG (they go between IHDR and the image data)."""
    import struct
    import zlib

    out = b""
    if icc_profile:
        out += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile))
    if dpi:
        ppm = [int(round(d / 0.0254)) for d in dpi]
        out += _png_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    return out


def write_png16(path: str | os.PathLike, arr: np.ndarray, icc_profile: bytes | None = None,
                dpi: tuple | None = None, level: int = 6) -> None:
    """Write (H, W, C) uint16 (C = 1, 3 or 4) as a 16-bit PNG (Pillow cannot write 16-bit colour);
    rows use the Sub filter, zlib at ``level``."""
    import struct
    import zlib

    h, w, c = arr.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    be = np.ascontiguousarray(arr.astype(">u2")).view(np.uint8).reshape(h, w, 2 * c)
    sub = be.copy()
    sub[:, 1:] = be[:, 1:] - be[:, :-1]  # Sub filter, byte-wise modulo 256
    rows = np.concatenate([np.ones((h, 1), np.uint8), sub.reshape(h, -1)], axis=1)
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)),
             _png_meta(icc_profile, dpi), _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
             _png_chunk(b"IEND", b"")]
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def fast_png(arr: np.ndarray, icc_profile: bytes | None = None, dpi: tuple | None = None) -> bytes | None:
    """An 8-bit (H, W, C) array as PNG bytes from libpng (through ``imagecodecs``) with the Paeth filter
    on every row and zlib's RLE strategy, level 1: about 2x faster to encode than Pillow's level 1
    (whose adaptive per-row filter choice is most of its time) for files about 10 % smaller, decoding
    to the same pixels (results/upscale.md, "PNG encoder"). None without ``imagecodecs``."""
    try:
        import imagecodecs
    except ImportError:
        return None
    data = imagecodecs.png_encode(np.ascontiguousarray(arr[..., 0] if arr.shape[2] == 1 else arr),
                                  level=1, strategy=3, filter=128)  # Z_RLE, PNG_FILTER_PAETH
    head = 33  # signature (8) + IHDR chunk (25): libpng writes IDAT right after it
    return data[:head] + _png_meta(icc_profile, dpi) + data[head:]


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
# PNG outputs are written at zlib level 1 by default, not Pillow's 6: on real x4 outputs level 1 encodes
# about 4.5x faster for files about 13 % larger (results/upscale.md, "PNG compression level").
PNG_LEVEL = 1

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF",
           ".tiff": "TIFF", ".bmp": "BMP"}


# What lightsr reads (folders are scanned for these); it writes the FORMATS above.
READ_EXTENSIONS = tuple(sorted(set(FORMATS) | {".gif", ".ppm", ".pgm", ".pnm", ".tga"}))


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The image files (:data:`READ_EXTENSIONS`) of ``folder``, sorted; ``recursive``: of its subfolders
    too. Hidden files and hidden folders (a name starting with ".": ``.DS_Store``, ``._x.png``,
    ``.git/``) are skipped; symlinked subfolders are not followed. An empty list for a folder without
    images: the caller checks the folder and words its own errors."""
    root = Path(folder)
    if recursive:
        found = []
        for top, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(top) / n for n in names]
    else:
        found = list(root.iterdir())
    return sorted(p for p in found
                  if not p.name.startswith(".") and p.suffix.lower() in READ_EXTENSIONS and p.is_file())


def format_for(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise LightSRError(f"cannot write {path}: unknown image extension {ext or '(none)'!r} "
                           f"(use {', '.join(sorted(set(FORMATS)))})")
    return FORMATS[ext]


def _as_uint(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise LightSRError(f"cannot write an array of shape {arr.shape}; expected (H, W, 1|3|4)")
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if np.issubdtype(arr.dtype, np.floating):  # [0, 1] floats
        return (np.clip(np.nan_to_num(arr), 0, 1) * 255.0).round().astype(np.uint8)
    raise LightSRError(f"cannot write an array of dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return arr if arr.dtype == np.uint8 else ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def check_png_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
        raise LightSRError(f"PNG compression level must be an integer from 0 to 9 (got {level!r})")
    return level


def _encode(tmp: str, arr: np.ndarray, fmt: str, icc: bytes | None, info: dict, quality: int,
            png_level: int = PNG_LEVEL) -> None:
    from PIL import Image

    c = arr.shape[2]
    if c == 2 and not (fmt == "PNG" or (fmt == "TIFF" and arr.dtype == np.uint8)):
        # gray + alpha stays LA where the format has it (PNG; 8-bit TIFF), else RGBA with equal channels
        arr = np.concatenate([arr[..., :1].repeat(3, axis=2), arr[..., 1:]], axis=2)
        c = 4
    if icc_space(icc) != _space_of(c):  # e.g. a gray profile once LA became RGBA
        icc = None
    dpi = info.get("dpi")
    if arr.dtype == np.uint16 and fmt == "PNG" and c in (2, 3, 4):
        write_png16(tmp, arr, icc, dpi, png_level)
        return
    if arr.dtype == np.uint16 and fmt in ("PNG", "TIFF") and c == 1:
        im = Image.fromarray(np.ascontiguousarray(arr[..., 0]))  # uint16 2-D -> I;16
    else:  # JPEG/WebP/BMP (and 16-bit colour TIFF, which Pillow cannot write) are 8 bit
        a8 = to_uint8(arr)
        if fmt == "JPEG" and c == 4:  # no alpha in JPEG: composite onto white
            alpha = a8[..., 3:].astype(np.float32) / 255.0
            a8 = (a8[..., :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
            c = 3
        im = Image.fromarray(np.ascontiguousarray(a8[..., 0] if c == 1 else a8))  # L / LA / RGB / RGBA
    kw: dict = {}
    if icc and fmt != "BMP":
        kw["icc_profile"] = icc
    if dpi and fmt in ("PNG", "JPEG", "TIFF", "BMP"):
        kw["dpi"] = dpi
    if fmt == "JPEG":
        kw.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        kw.update(quality=quality, method=4)
    elif fmt == "TIFF":
        kw["compression"] = "tiff_deflate"
    elif fmt == "PNG":
        kw["compress_level"] = png_level
        data = fast_png(a8[..., :c], icc, dpi) if png_level == PNG_LEVEL and arr.dtype == np.uint8 else None
        if data is not None:
            with open(tmp, "wb") as f:
                f.write(data)
            return
    im.save(tmp, format=fmt, **kw)


def write_image(path: str | os.PathLike, array: np.ndarray, like: ImageData | None = None,
                overwrite: bool = False, quality: int = 95, icc_profile: bytes | None = None,
                png_level: int = PNG_LEVEL) -> Path:
    """Write ``array`` (H, W, C; uint8, uint16 or float in [0, 1]) to ``path``, atomically.

    The format comes from the extension (PNG, JPEG, WebP, TIFF, BMP). ``like``: the :class:`ImageData`
    the image came from; its ICC profile and dpi are kept. 16-bit data stays 16 bit in PNG (and gray
    TIFF); JPEG/WebP/BMP are 8 bit. The file appears only when complete (temporary name, then rename);
    an existing file is never replaced unless ``overwrite``. ``png_level``: zlib level 0-9 of PNG
    output (default :data:`PNG_LEVEL`, chosen for speed).
    """
    from .files import atomic_write

    path = Path(path)
    fmt = format_for(path)
    check_png_level(png_level)
    arr = _as_uint(array)
    icc = icc_profile if icc_profile is not None else (like.icc_profile if like is not None else None)
    info = dict(like.info) if like is not None else {}
    if path.is_dir():
        raise LightSRError(f"cannot write {path}: it is a folder")
    try:
        return atomic_write(path, lambda tmp: _encode(tmp, arr, fmt, icc, info, quality, png_level), overwrite=overwrite)
    except LightSRError:
        raise
    except PermissionError:
        raise LightSRError(f"cannot write {path}: permission denied (is the output folder writable?)") from None
    except OSError as exc:
        raise LightSRError(f"cannot write {path}: {exc.strerror or _reason(exc)}") from None
