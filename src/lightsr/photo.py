"""Which weights for which input: clean images and photos as users bring them.

Most images people upscale were saved lossily: JPEG from phones, cameras and the web, lossy WebP.
Weights trained on bicubic LR (the benchmark protocol; ``kind="clean"``) turn JPEG blocking and ringing
into crisp false edges. The *photo* weights (recipe ``photo``: blur, resize, noise and JPEG at q30-95,
:mod:`lightsr.data.degradations`) were trained on such input. The file says which it is:

* JPEG below quality :data:`CLEAN_JPEG_QUALITY` (read from its quantization tables,
  :func:`lightsr.imageio.compression`) or lossy WebP -> ``"photo"``;
* PNG, TIFF, BMP, lossless WebP and near-lossless JPEG -> ``"clean"``.

``lightsr upscale`` makes this choice per file when the model has photo weights and no ``--weights``
is given (``--kind clean|photo`` forces one; ``--model``/``--weights`` override as usual); the
Python API takes ``lightsr.load(kind="photo")``. The crossover and both models' figures on clean and
JPEG input are in results/photo.md.
"""
from __future__ import annotations

from typing import Callable

from .imageio import ImageData

# JPEG at this quality or above is treated as clean: where the photo weights stop beating the clean
# ones on JPEG input. Measured (results/photo.md, "crossover"), Set14 / BSD100 x4, photo - clean weights:
# q90 +0.17 / +0.10 dB, q95 -0.14 / -0.07 dB; interpolated, the two cross at about q93 on both sets
CLEAN_JPEG_QUALITY = 93

KINDS = ("clean", "photo")


def kind_for(img: ImageData) -> str:
    """``"photo"`` for lossily compressed input (JPEG below :data:`CLEAN_JPEG_QUALITY`, lossy WebP),
    else ``"clean"``."""
    if img.lossy == "webp":
        return "photo"
    if img.lossy == "jpeg":
        return "photo" if img.quality is None or img.quality < CLEAN_JPEG_QUALITY else "clean"
    return "clean"


class ByInput:
    """The upscaler for each input file: ``clean`` for lossless input, the photo upscaler (made by
    ``make_photo`` when the first compressed input arrives) for compressed input. ``counts`` says how
    many inputs went to each."""

    def __init__(self, clean, make_photo: Callable[[], object]):
        self.clean, self._make_photo, self.photo = clean, make_photo, None
        self.counts = dict.fromkeys(KINDS, 0)

    def __call__(self, img: ImageData):
        kind = kind_for(img)
        self.counts[kind] += 1
        if kind == "clean":
            return self.clean
        if self.photo is None:
            self.photo = self._make_photo()
            self.photo.on_tile = self.clean.on_tile
        return self.photo

    def summary(self) -> str:
        """``"photo weights for 3 compressed inputs, clean weights for 2"`` (empty when all were clean)."""
        n_photo, n_clean = self.counts["photo"], self.counts["clean"]
        if not n_photo:
            return ""
        text = f"photo weights for {n_photo} compressed input{'s' if n_photo != 1 else ''}"
        return text + (f", clean weights for {n_clean}" if n_clean else "")
