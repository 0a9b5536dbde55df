"""Image I/O: every mode and format, 16 bit, EXIF orientation, ICC, bad files, atomic writes."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from conftest import BENCHMARK, need
from lightsr import imageio
from lightsr.errors import LightSRError
from lightsr.imageio import ImageData, read, read_image, read_png16, write_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# ------------------------------------------------------------------ reading: modes and formats
@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_round_trip(tmp_path, ext):
    kw = {"lossless": True} if ext == ".webp" else {}
    Image.fromarray(RGB).save(tmp_path / f"a{ext}", **kw)
    got = read_image(tmp_path / f"a{ext}")
    assert got.dtype == np.uint8 and got.shape == (13, 17, 3)
    np.testing.assert_array_equal(got, RGB)


@pytest.mark.parametrize("mode,channels,ext", [("CMYK", 3, ".jpg"), ("CMYK", 3, ".tif"), ("LA", 2, ".png"),
                                               ("P", 3, ".png"), ("1", 1, ".png"), ("L", 1, ".png"),
                                               ("RGBA", 4, ".png"), ("YCbCr", 3, ".jpg"), ("I", 1, ".tif")])
def test_modes_are_converted(tmp_path, mode, channels, ext):
    src = Image.fromarray(RGB).convert(mode)
    src.save(tmp_path / f"m{ext}")
    reopened = Image.open(tmp_path / f"m{ext}")
    got = read_image(tmp_path / f"m{ext}")
    assert got.shape == (13, 17, channels)
    if mode in ("CMYK", "P", "YCbCr", "RGBA", "L"):  # same pixels as Pillow's own conversion
        want = np.asarray(reopened.convert("RGBA" if channels == 4 else "RGB" if channels == 3 else "L"))
        np.testing.assert_array_equal(got.reshape(want.shape), want)
    if mode == "1":
        assert set(np.unique(got)) <= {0, 255}
    if mode == "LA":  # gray + alpha kept as two channels (written back as LA)
        np.testing.assert_array_equal(got, np.asarray(reopened))


def test_palette_with_transparency_gives_rgba(tmp_path):
    im = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4) % 4)
    im = im.convert("P") if im.mode != "L" else Image.frombytes("P", (4, 3), im.tobytes())
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    im.save(tmp_path / "t.png", transparency=0)
    got = read_image(tmp_path / "t.png")
    assert got.shape[2] == 4 and (got[..., 3] == 0).any() and (got[..., 3] == 255).any()


def test_i16_png_keeps_16_bits(tmp_path):
    g = RNG.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")
    got = read(tmp_path / "g.png")
    assert got.array.dtype == np.uint16 and got.bit_depth == 16
    np.testing.assert_array_equal(got.array[..., 0], g)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_png_round_trip(tmp_path, channels):
    a = RNG.integers(0, 65536, (15, 21, channels), dtype=np.uint16)
    write_image(tmp_path / "a.png", a)
    head = (tmp_path / "a.png").read_bytes()[:29]
    assert head[24] == 16  # IHDR bit depth
    got = read_image(tmp_path / "a.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, a)


def _encode_filtered(a: np.ndarray, filters) -> bytes:
    """Reference PNG filtering (spec 9.2), straightforward per-byte Python."""
    h, w, c = a.shape
    bpp, raw = 2 * c, a.astype(">u2").tobytes()
    stride, out, prev = w * bpp, b"", bytes(w * bpp)
    for y in range(h):
        row, ft = raw[y * stride:(y + 1) * stride], filters[y % len(filters)]
        f = bytearray()
        for i, v in enumerate(row):
            left = row[i - bpp] if i >= bpp else 0
            up, ul = prev[i], (prev[i - bpp] if i >= bpp else 0)
            p = left + up - ul
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
            paeth = left if pa <= pb and pa <= pc else (up if pb <= pc else ul)
            pred = [0, left, up, (left + up) // 2, paeth][ft]
            f.append((v - pred) % 256)
        out += bytes([ft]) + bytes(f)
        prev = row
    ctype = {1: 0, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(out)) + _chunk(b"IEND", b""))


def _encode_adam7(a: np.ndarray, filters) -> bytes:
    """An Adam7-interlaced 16-bit PNG: each of the seven passes filtered on its own (spec 8.2)."""
    h, w, c = a.shape
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    data = b""
    for x0, y0, dx, dy in passes:
        sub = a[y0::dy, x0::dx]
        if sub.size:  # an empty pass writes nothing
            body = _encode_filtered(sub, filters)
            data += zlib.decompress(body[33 + 8:-12 - 4])  # the IDAT payload: the pass's scanlines
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 1))
            + _chunk(b"IDAT", zlib.compress(data)) + _chunk(b"IEND", b""))


@pytest.mark.parametrize("hw", [(11, 13), (3, 2), (1, 1), (16, 9)])
def test_png16_interlaced_is_read_at_16_bit(tmp_path, hw):
    """Adam7 16-bit colour PNGs come back at 16 bit (Pillow alone gives 8) and are written at 16 bit.
    The gray case is checked against Pillow's own 16-bit gray reader too. Broken on purpose (the
    passes' order swapped) the pixels differ."""
    a = RNG.integers(0, 65536, (*hw, 3), dtype=np.uint16)
    (tmp_path / "i.png").write_bytes(_encode_adam7(a, [0, 1, 2, 3, 4]))
    got = read(tmp_path / "i.png")
    assert got.array.dtype == np.uint16
    np.testing.assert_array_equal(got.array, a)
    write_image(tmp_path / "o.png", got.array, like=got)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), a)
    g = a[..., :1]
    (tmp_path / "g.png").write_bytes(_encode_adam7(g, [4, 1]))
    with Image.open(tmp_path / "g.png") as im:
        np.testing.assert_array_equal(np.asarray(im), g[..., 0])
    np.testing.assert_array_equal(read_png16(tmp_path / "g.png"), g)


def test_png16_decoder_all_filters(tmp_path):
    a = RNG.integers(0, 65536, (10, 7, 3), dtype=np.uint16)
    (tmp_path / "f.png").write_bytes(_encode_filtered(a, [0, 1, 2, 3, 4]))
    np.testing.assert_array_equal(read_png16(tmp_path / "f.png"), a)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png"), a)


def test_png16_decoder_matches_pillow_adaptive_filters(tmp_path):
    g = (np.linspace(0, 65535, 30 * 40).reshape(30, 40) + RNG.integers(0, 50, (30, 40))).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g.png")  # Pillow chooses Sub / Paeth per row
    np.testing.assert_array_equal(read_png16(tmp_path / "g.png")[..., 0], np.asarray(Image.open(tmp_path / "g.png")))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path, orientation):
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(RGB).save(tmp_path / "o.png", exif=exif)
    want = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png"), want)
    if orientation in (5, 6, 7, 8):
        assert want.shape[:2] == (17, 13)
    # the 16-bit path applies the same transform on arrays
    np.testing.assert_array_equal(imageio._apply_orientation(RGB, Image.open(tmp_path / "o.png")), want)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_kept(tmp_path, ext):
    Image.fromarray(RGB).save(tmp_path / f"in{ext}", icc_profile=SRGB)
    src = read(tmp_path / f"in{ext}")
    assert src.icc_profile == SRGB
    write_image(tmp_path / f"out{ext}", src.array, like=src)
    assert read(tmp_path / f"out{ext}").icc_profile == SRGB


def test_icc_profile_kept_16bit(tmp_path):
    a = RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    write_image(tmp_path / "a.png", a, like=ImageData(a, icc_profile=SRGB))
    got = read(tmp_path / "a.png")
    assert got.icc_profile == SRGB and got.array.dtype == np.uint16


def _profile_for(space: bytes) -> bytes:
    """The sRGB profile with its header's colour space field set to ``space`` (a stand-in for a
    gray or CMYK profile: only the header decides whether lightsr keeps it)."""
    return SRGB[:16] + space + SRGB[20:]


def test_icc_profile_follows_the_colour_space(tmp_path):
    """A profile is kept only on data in the colour space it describes (what image editors do):
    a gray profile stays on gray and gray + alpha PNG, and is dropped when LA is written as RGBA
    (WebP has no LA) or when a palette image holding it becomes RGB; a CMYK image becomes sRGB
    through its profile (Pillow's plain conversion when littlecms cannot use the profile) and
    comes back without the CMYK profile. Broken on purpose (the profile always copied) the
    RGBA / RGB assertions fail."""
    gray = _profile_for(b"GRAY")
    g = RNG.integers(0, 256, (6, 5, 1), dtype=np.uint8)
    Image.fromarray(g[..., 0]).save(tmp_path / "g.png", icc_profile=gray)
    src = read(tmp_path / "g.png")
    assert src.icc_profile == gray and src.array.shape[2] == 1
    write_image(tmp_path / "g_out.png", src.array, like=src)
    assert read(tmp_path / "g_out.png").icc_profile == gray
    la = np.concatenate([g, g // 2], axis=2)
    write_image(tmp_path / "la.png", la, like=ImageData(la, icc_profile=gray))
    assert read(tmp_path / "la.png").icc_profile == gray
    write_image(tmp_path / "la.webp", la, like=ImageData(la, icc_profile=gray), quality=100)
    got = read(tmp_path / "la.webp")
    assert got.array.shape[2] == 4 and got.icc_profile is None
    pal = Image.fromarray(RGB).convert("P")
    pal.save(tmp_path / "p.png", icc_profile=gray)
    assert read(tmp_path / "p.png").icc_profile is None
    cmyk = Image.fromarray(RGB).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", icc_profile=_profile_for(b"CMYK"), quality=100)
    got = read(tmp_path / "c.jpg")
    assert got.array.shape[2] == 3 and got.icc_profile is None and got.mode == "CMYK"
    write_image(tmp_path / "c_out.png", got.array, like=got)
    assert read(tmp_path / "c_out.png").icc_profile is None


@pytest.mark.parametrize("ext", [".jpg", ".webp"])
def test_lossy_formats_write_close(tmp_path, ext):
    smooth = np.clip(np.indices((32, 32)).sum(0)[..., None] * 4, 0, 255).repeat(3, 2).astype(np.uint8)
    write_image(tmp_path / f"a{ext}", smooth)
    assert np.abs(read_image(tmp_path / f"a{ext}").astype(int) - smooth).mean() < 3


def test_rgba_to_jpeg_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    write_image(tmp_path / "a.jpg", a)
    assert read_image(tmp_path / "a.jpg").min() >= 250


# ------------------------------------------------------------------ bad files
def test_bad_files(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    bad = bytearray(data)
    bad[80:200] = bytes(120)
    (tmp_path / "corrupt.png").write_bytes(bytes(bad))
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b""))
    expect = {"missing.png": "not found", "zero.png": "empty", "trunc.png": "truncated",
              "corrupt.png": "cannot read", "text.png": "not an image", "bomb.png": "decompression-bomb"}
    for name, words in expect.items():
        with pytest.raises(LightSRError) as exc:
            read_image(tmp_path / name)
        assert words in _one_line(exc), (name, str(exc.value))
    with pytest.raises(LightSRError):
        read_image(tmp_path)  # a folder


def test_pixel_limit_is_configurable(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    with pytest.raises(LightSRError, match="decompression-bomb"):
        read_image(tmp_path / "a.png", max_pixels=100)
    assert read_image(tmp_path / "a.png", max_pixels=13 * 17).shape == (13, 17, 3)


def test_one_pixel_image(tmp_path):
    Image.fromarray(RGB[:1, :1]).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), RGB[:1, :1])


# ------------------------------------------------------------------ writing
def test_no_overwrite_without_flag(tmp_path):
    p = tmp_path / "a.png"
    write_image(p, RGB)
    before = p.read_bytes()
    with pytest.raises(LightSRError, match="overwrite"):
        write_image(p, RGB[::-1])
    assert p.read_bytes() == before
    write_image(p, RGB[::-1].copy(), overwrite=True)
    np.testing.assert_array_equal(read_image(p), RGB[::-1])


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(tmp, *a, **k):
        with open(tmp, "wb") as f:
            f.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(imageio, "_encode", boom)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "a.png", RGB)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LightSRError) as exc:
        write_image(tmp_path / "file" / "a.png", RGB)
    _one_line(exc)
    with pytest.raises(LightSRError, match="extension"):
        write_image(tmp_path / "a.xyz", RGB)


def test_16bit_to_8bit_formats(tmp_path):
    a = np.full((3, 3, 3), 65535, np.uint16)
    a[0, 0] = 257 * 10
    write_image(tmp_path / "a.bmp", a)
    got = read_image(tmp_path / "a.bmp")
    assert got.dtype == np.uint8 and got[0, 0, 0] == 10 and got[1, 1, 1] == 255


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 256), (np.uint16, 65536)])
def test_gray_alpha_stays_gray_alpha_in_png(tmp_path, dtype, peak):
    """An LA image is written back as LA (8 and 16 bit), never as RGBA."""
    from PIL import Image

    a = np.random.default_rng(3).integers(0, peak, (9, 7, 2)).astype(dtype)
    write_image(tmp_path / "la.png", a)
    if dtype == np.uint8:
        assert Image.open(tmp_path / "la.png").mode == "LA"
    got = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(got, a)


# ------------------------------------------------------------------ ICC: CMYK through a real profile, the write rule
def _cmyk_icc() -> bytes:
    """A minimal valid ICC v2 CMYK output profile that littlecms accepts, built here (no file, no
    install): A2B0 is a lut16 to Lab on a 2-point grid whose 16 corners are the Lab of
    ((1-c)(1-k), (1-m)(1-k), (1-y)(1-k)) as sRGB, so CMYK -> sRGB through it is a multilinear
    interpolation in Lab, visibly not Pillow's plain per-channel conversion."""
    def s15(v):
        return struct.pack(">i", int(round(v * 65536)))

    text = b"lightsr test CMYK\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    d50 = np.array([0.9642, 1.0, 0.8249])
    srgb_to_xyz = np.array([[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169],
                            [0.0139322, 0.0971045, 0.7141733]])
    clut = []
    for c, m, y, k in np.ndindex(2, 2, 2, 2):  # the first input channel varies slowest (ICC lut16)
        rgb = np.array([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], dtype=float)
        t = srgb_to_xyz @ np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4) / d50
        f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
        lab = 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])
        clut += [round(lab[0] / 100 * 0xFF00), round((lab[1] + 128) * 256), round((lab[2] + 128) * 256)]
    a2b0 = (b"mft2" + bytes(4) + bytes([4, 3, 2, 0]) + b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
            + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
            + struct.pack(f">{len(clut)}H", *clut) + struct.pack(">6H", *[0, 65535] * 3))
    tags = [(b"desc", desc), (b"cprt", b"text" + bytes(4) + b"public domain\0"),
            (b"wtpt", b"XYZ " + bytes(4) + b"".join(s15(v) for v in d50)), (b"A2B0", a2b0)]
    offset = 128 + 4 + 12 * len(tags)
    table, data = struct.pack(">I", len(tags)), b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (struct.pack(">I", offset + len(data)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"prtrCMYKLab "
              + bytes(12) + b"acsp" + bytes(28) + b"".join(s15(v) for v in d50) + bytes(48))
    assert len(header) == 128
    return header + table + data


@pytest.mark.parametrize("ext", [".tif", ".jpg"])
def test_cmyk_is_converted_through_its_own_profile(tmp_path, ext):
    """CMYK with a profile littlecms accepts goes to sRGB through that profile (exactly what
    ImageCms gives), not through Pillow's plain conversion, and comes back untagged. The existing
    test's profile (sRGB's bytes relabelled CMYK) is refused by littlecms, so only the fallback ran
    there. Broken on purpose (``_cmyk_to_srgb`` returning ``im.convert("RGB")``) -> fails."""
    import io

    icc = _cmyk_icc()
    prof = ImageCms.ImageCmsProfile(io.BytesIO(icc))  # littlecms accepts it (raises otherwise)
    cmyk = RNG.integers(0, 256, (13, 17, 4), dtype=np.uint8)
    cmyk[0, 0] = 0  # no ink: white
    Image.frombytes("CMYK", (17, 13), cmyk.tobytes()).save(tmp_path / f"c{ext}", icc_profile=icc)
    with Image.open(tmp_path / f"c{ext}") as im:
        assert im.mode == "CMYK" and im.info.get("icc_profile") == icc
        im.load()
        via_profile = np.asarray(ImageCms.profileToProfile(im, prof, ImageCms.createProfile("sRGB"), outputMode="RGB"))
        plain = np.asarray(im.convert("RGB"))
    got = read(tmp_path / f"c{ext}")
    assert got.mode == "CMYK" and got.icc_profile is None and got.array.shape == (13, 17, 3)
    np.testing.assert_array_equal(got.array, via_profile)
    assert np.abs(got.array.astype(int) - plain).max() > 20  # the profile path, not the fallback
    assert got.array[0, 0].min() >= 250
    write_image(tmp_path / "c_out.png", got.array, like=got)
    with Image.open(tmp_path / "c_out.png") as im:
        assert im.info.get("icc_profile") is None  # written untagged, i.e. sRGB


def _pillow_icc(path):
    """The profile in the written file as Pillow reads it (lightsr's reader would drop a profile of
    the wrong colour space itself and hide a writer that kept it)."""
    with Image.open(path) as im:
        return im.info.get("icc_profile") or None


def test_written_icc_follows_the_output_colour_space(tmp_path):
    """README "Images in and out": a profile is kept when the output is in the colour space it
    describes and dropped otherwise; the written files are read with Pillow. Broken on purpose
    (``_encode`` always passing the profile on) -> fails."""
    gray_icc, cmyk_icc = _profile_for(b"GRAY"), _profile_for(b"CMYK")
    g = RNG.integers(0, 256, (6, 5, 1), dtype=np.uint8)
    la = np.concatenate([g, 255 - g], axis=2)
    rgba = np.concatenate([RGB, RGB[..., :1]], axis=2)
    rgb16 = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    g16 = RNG.integers(0, 65536, (6, 5, 1), dtype=np.uint16)
    cases = [  # (name, array, profile, kept?)
        ("rgb.png", RGB, SRGB, True), ("rgb.jpg", RGB, SRGB, True), ("rgb.webp", RGB, SRGB, True),
        ("rgb.tif", RGB, SRGB, True), ("rgba.png", rgba, SRGB, True), ("rgb16.png", rgb16, SRGB, True),
        ("g.png", g, gray_icc, True), ("g.jpg", g, gray_icc, True), ("g.tif", g, gray_icc, True),
        ("g16.png", g16, gray_icc, True), ("la.png", la, gray_icc, True), ("la.tif", la, gray_icc, True),
        ("la.webp", la, gray_icc, False),  # no LA in WebP: RGBA
        ("la.jpg", la, gray_icc, False),  # composited onto white: RGB
        ("rgb_gray.png", RGB, gray_icc, False), ("rgb_gray.jpg", RGB, gray_icc, False),
        ("rgb16_gray.png", rgb16, gray_icc, False), ("g_srgb.png", g, SRGB, False),
        ("g16_srgb.png", g16, SRGB, False), ("rgb_cmyk.jpg", RGB, cmyk_icc, False),
        ("rgb.bmp", RGB, SRGB, False),  # BMP carries none
    ]
    for name, arr, icc, kept in cases:
        write_image(tmp_path / name, arr, like=ImageData(arr, icc_profile=icc))
        assert _pillow_icc(tmp_path / name) == (icc if kept else None), name
        write_image(tmp_path / f"x_{name}", arr, icc_profile=icc)  # the explicit argument: same rule
        assert _pillow_icc(tmp_path / f"x_{name}") == (icc if kept else None), name


# ------------------------------------------------------------------ listing folders
def test_list_images_one_rule_for_hidden_files(tmp_path):
    """``imageio.list_images``, which ``lightsr upscale`` folders, ``eval --data`` and training folders
    all use: image extensions only (any case), sorted, hidden files and anything under a hidden
    folder skipped; ``recursive`` adds subfolders."""
    for rel in ["b.png", "a.JPG", "notes.txt", ".hidden.png", "._a.png", "sub/c.webp", "sub/.d.png",
                ".git/e.png", "sub/.cache/f.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "dir.png").mkdir()  # a folder named like an image is not one
    assert [p.name for p in imageio.list_images(tmp_path)] == ["a.JPG", "b.png"]
    assert [p.relative_to(tmp_path).as_posix() for p in imageio.list_images(tmp_path, recursive=True)] == \
        ["a.JPG", "b.png", "sub/c.webp"]
    hidden_root = tmp_path / ".cache" / "set"  # a hidden folder above the one listed does not matter
    hidden_root.mkdir(parents=True)
    (hidden_root / "g.png").write_bytes(b"")
    assert [p.name for p in imageio.list_images(hidden_root, recursive=True)] == ["g.png"]
    assert imageio.list_images(tmp_path / "sub" / ".cache") == [tmp_path / "sub" / ".cache" / "f.png"]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_default_png_is_libpng_paeth_rle_and_lossless(tmp_path, channels):
    """8-bit PNG at the default level goes through imageio.fast_png (libpng via imagecodecs, Paeth
    filter, zlib RLE): Pillow decodes it to the same pixels, ICC profile and dpi kept, and the file is
    not larger than 1.15x Pillow's level 1 on what lightsr writes: a real x4 output (the default model
    on baboon's LR, the most textured Set14 image; on baboon's HR itself the file is 25 % larger,
    results/upscale.md)."""
    import lightsr
    from lightsr.data.benchmark import BenchmarkFolder

    folder = BenchmarkFolder(need(BENCHMARK / "Set14"), 4, cache=False)
    lr = folder.load(next(p for p in folder.files if p.name == "baboon.png")).lr[:50, :60]
    hr = lightsr.load(scale=4)(lr)
    arr = {1: hr[..., :1], 2: np.concatenate([hr[..., :1], hr[..., 2:]], axis=2), 3: hr,
           4: np.concatenate([hr, hr[..., :1]], axis=2)}[channels]
    like = ImageData(arr, "PNG", "RGB", SRGB if channels >= 3 else None, {"dpi": (300, 300)}, False, None)
    out = write_image(tmp_path / "o.png", arr, like=like)
    with Image.open(out) as im:
        back = np.asarray(im)
        assert im.info.get("dpi") == pytest.approx((300, 300), abs=0.01)
        assert (im.info.get("icc_profile") == SRGB) == (channels >= 3)
    assert np.array_equal(back.reshape(arr.shape), arr)
    assert imageio.fast_png(arr) == out.read_bytes()[:33] + out.read_bytes()[33 + len(imageio._png_meta(
        like.icc_profile if channels >= 3 else None, (300, 300))):]  # the fast path wrote it
    pillow = tmp_path / "p.png"
    Image.fromarray(arr[..., 0] if channels == 1 else arr).save(pillow, compress_level=1)
    assert out.stat().st_size <= 1.15 * pillow.stat().st_size
