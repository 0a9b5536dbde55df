"""Render ``sample.png``, the image ``lightsr upscale --sample`` upscales (numpy + Pillow only).

    python src/lightsr/assets/make_sample.py            # rewrites sample.png next to this file

A deterministic synthetic scene drawn at 4x the shipped size (768x768) and reduced with a box filter
to 192x192, so its edges are anti-aliased as in a real low-resolution photo: a sky gradient, a hill
with brick texture, a sun with fine concentric rings, stripes of increasing frequency, a checkerboard,
a fence, hand-drawn "lettering" strokes and a little sensor noise. Everything an upscaler is judged
on (straight and curved edges, thin strokes, fine periodic texture, smooth gradients) at a size that
runs in about a second on a CPU. The project's own work, MIT licensed like the rest of lightsr.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LR = 192  # shipped size
K = 4  # drawn at K x LR, then box-filtered down


def render(size: int = LR, k: int = K, seed: int = 2026) -> Image.Image:
    rng = np.random.default_rng(seed)
    n = size * k
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / n
    # sky: vertical gradient, warm near the horizon
    sky = np.stack([0.35 + 0.5 * yy, 0.55 + 0.3 * yy, 0.95 - 0.25 * yy], axis=-1)
    img = Image.fromarray((np.clip(sky, 0, 1) * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(img)

    # sun with fine concentric rings (a small zone plate: frequency rises outwards)
    cx, cy, r = 0.74 * n, 0.2 * n, 0.13 * n
    ring = np.sqrt((xx * n - cx) ** 2 + (yy * n - cy) ** 2)
    rings = 0.5 + 0.5 * np.cos(ring ** 2 / (r * 2.2))
    sun = np.stack([np.full_like(rings, 250), 170 + 70 * rings, 40 + 60 * rings], axis=-1)
    arr = np.asarray(img).copy()
    inside = ring < r
    arr[inside] = sun[inside].round().astype(np.uint8)
    img = Image.fromarray(arr)
    d = ImageDraw.Draw(img)

    # hill with a brick wall texture
    hill = [(0, 0.62 * n)] + [(x, 0.62 * n - 0.06 * n * np.sin(x / n * 5.0)) for x in range(0, n + 1, 8)] + [(n, n), (0, n)]
    d.polygon(hill, fill=(92, 128, 64))
    bh, bw = 6 * k, 14 * k
    y0 = int(0.74 * n)
    for row, y in enumerate(range(y0, n, bh)):
        off = (row % 2) * bw // 2
        for x in range(-bw, n, bw):
            shade = int(rng.integers(-18, 18))
            d.rectangle([x + off, y, x + off + bw - k, y + bh - k], fill=(150 + shade, 70 + shade // 2, 50))

    # stripes of rising frequency (left panel) and a checkerboard (right panel)
    px0, py0, pw, ph = int(0.05 * n), int(0.08 * n), int(0.4 * n), int(0.22 * n)
    for i in range(28):
        t = i / 27
        x = px0 + int(pw * (t ** 0.7))
        w = max(k, int(6 * k * (1 - t)) + k)
        d.rectangle([x, py0, x + w // 2, py0 + ph], fill=(30, 30, 40))
    cb, cx0, cy0 = 5 * k, int(0.52 * n), int(0.40 * n)
    for j in range(6):
        for i in range(8):
            if (i + j) % 2 == 0:
                d.rectangle([cx0 + i * cb, cy0 + j * cb, cx0 + (i + 1) * cb - 1, cy0 + (j + 1) * cb - 1], fill=(245, 245, 240))
            else:
                d.rectangle([cx0 + i * cb, cy0 + j * cb, cx0 + (i + 1) * cb - 1, cy0 + (j + 1) * cb - 1], fill=(20, 20, 30))

    # a fence: thin diagonal and vertical posts over the hill
    for i in range(14):
        x = int(0.04 * n + i * 0.035 * n)
        d.line([(x, int(0.58 * n)), (x, int(0.72 * n))], fill=(235, 225, 200), width=2 * k)
    d.line([(int(0.04 * n), int(0.61 * n)), (int(0.5 * n), int(0.61 * n))], fill=(235, 225, 200), width=k)
    d.line([(int(0.04 * n), int(0.68 * n)), (int(0.5 * n), int(0.56 * n))], fill=(235, 225, 200), width=k)

    # "lettering": glyph-like strokes (segments and arcs) on a sign, two sizes
    sx0, sy0 = int(0.06 * n), int(0.36 * n)
    d.rectangle([sx0, sy0, sx0 + int(0.4 * n), sy0 + int(0.17 * n)], fill=(250, 248, 235), outline=(60, 40, 30), width=k)
    for line, (gh, gw, lw) in enumerate([(14 * k, 9 * k, 2 * k), (8 * k, 5 * k, k)]):
        gy = sy0 + 3 * k + line * 18 * k
        gx = sx0 + 3 * k
        while gx + gw < sx0 + int(0.4 * n) - 2 * k:
            kind = int(rng.integers(0, 5))
            box = [gx, gy, gx + gw, gy + gh]
            if kind == 0:
                d.line([(gx, gy + gh), (gx + gw // 2, gy), (gx + gw, gy + gh)], fill=(20, 20, 90), width=lw)
            elif kind == 1:
                d.arc(box, 30, 330, fill=(20, 20, 90), width=lw)
            elif kind == 2:
                d.line([(gx, gy), (gx, gy + gh), (gx + gw, gy + gh)], fill=(20, 20, 90), width=lw)
            elif kind == 3:
                d.ellipse(box, outline=(20, 20, 90), width=lw)
            else:
                d.line([(gx, gy), (gx + gw, gy + gh)], fill=(20, 20, 90), width=lw)
                d.line([(gx + gw, gy), (gx, gy + gh)], fill=(20, 20, 90), width=lw)
            gx += gw + (3 * k if int(rng.integers(0, 4)) else 8 * k)

    # box-filter down (anti-aliased edges), then a little sensor noise
    small = np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.float64)
    small = small + rng.normal(0, 1.5, small.shape)
    return Image.fromarray(np.clip(small, 0, 255).round().astype(np.uint8))


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("sample.png")
    render().save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
