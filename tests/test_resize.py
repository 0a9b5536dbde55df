"""MATLAB imresize against weights derived by hand from the cubic kernel, and a naive per-pixel port."""
from __future__ import annotations

import math
from fractions import Fraction as Fr

import numpy as np
import pytest
import torch

from lightsr import LightSRError
from lightsr.resize import imresize, weight_matrix


def m(rows) -> np.ndarray:
    return np.array([[float(v) for v in r] for r in rows])


# Hand derivations (Keys cubic, a = -0.5: k(1/4)=111/128, k(3/4)=29/128, k(5/4)=-9/128, k(7/4)=-3/128,
# k(1/2)=9/16, k(3/2)=-1/16, k(1/6)=135/144, k(5/6)=19/144, k(7/6)=-25/432, k(11/6)=-5/432).
# Taps outside [1, n] fold back symmetrically: ... 2 1 | 1 2 ... n | n n-1 ...
# x1/2, 4 -> 2 (antialias: kernel k(x/2)/2, 8 taps). Output 1 sits at u = 1.5; taps 1,0,-1,-2 and 2,3,4,5
# at distances 0.5, 1.5, 2.5, 3.5 weigh 111, 29, -9, -3 (/256): folding gives x1: 111+29, x2: 111-9,
# x3: 29-3, x4: -9-3.
DOWN2 = m([[Fr(140, 256), Fr(102, 256), Fr(26, 256), Fr(-12, 256)],
           [Fr(-12, 256), Fr(26, 256), Fr(102, 256), Fr(140, 256)]])
# x2, 3 -> 6 (no antialias). u = 0.75: taps -1..2 at 1.75, 0.75, -0.25, -1.25 -> x2: -3/128 - 9/128,
# x1: 29/128 + 111/128. u = 1.25: taps 0..3 at 1.25, 0.25, -0.75, -1.75 -> x1: (-9+111)/128, x2: 29/128,
# x3: -3/128. u = 1.75: taps 0..3 at 1.75, 0.75, -0.25, -1.25 -> x1: (-3+29)/128, x2: 111/128, x3: -9/128.
# The last three rows mirror the first three.
UP2 = m([[Fr(140, 128), Fr(-12, 128), 0],
         [Fr(102, 128), Fr(29, 128), Fr(-3, 128)],
         [Fr(26, 128), Fr(111, 128), Fr(-9, 128)]])
# x1.5, 2 -> 3. u = 5/6: taps -1..2 at 11/6, 5/6, -1/6, -7/6 -> x2: -5/432 - 25/432, x1: 57/432 + 405/432.
# u = 3/2: taps 0..3 at 3/2, 1/2, -1/2, -3/2 -> x1: 9/16 - 1/16, x2: 9/16 - 1/16.
UP15 = m([[Fr(462, 432), Fr(-30, 432)], [Fr(1, 2), Fr(1, 2)], [Fr(-30, 432), Fr(462, 432)]])
# x2/3 (= 1/1.5), 3 -> 2, antialias: kernel (2/3) k(2x/3), 8 taps, u = 1.25: taps -1..4 at 2.25 ... -2.75,
# i.e. k(3/2), k(5/6), k(1/6), k(1/2), k(7/6), k(11/6) = -27, 57, 405, 243, -25, -5 (/432), sum 648/432;
# folded: x1 = 57+405, x2 = -27+243, x3 = -25-5 (/648).
DOWN23 = m([[Fr(462, 648), Fr(216, 648), Fr(-30, 648)], [Fr(-30, 648), Fr(216, 648), Fr(462, 648)]])


def test_hand_derived_weight_matrices():
    np.testing.assert_allclose(weight_matrix(4, 2, 0.5), DOWN2, atol=1e-15)
    up = weight_matrix(3, 6, 2.0)
    np.testing.assert_allclose(up[:3], UP2, atol=1e-15)
    np.testing.assert_allclose(up[3:], UP2[::-1, ::-1], atol=1e-15)
    np.testing.assert_allclose(weight_matrix(2, 3, 1.5), UP15, atol=1e-15)
    np.testing.assert_allclose(weight_matrix(3, 2, 2 / 3), DOWN23, atol=1e-15)


@pytest.mark.parametrize("shape,scale,mh,mw", [
    ((4, 4), 0.5, DOWN2, DOWN2),
    ((2, 2), 1.5, UP15, UP15),
    ((3, 3), 2 / 3, DOWN23, DOWN23),
])
def test_imresize_matches_hand_matrices(shape, scale, mh, mw):
    x = np.random.default_rng(0).random((*shape, 3))
    want = np.einsum("ih,hwc,jw->ijc", mh, x, mw)
    np.testing.assert_allclose(imresize(x, scale), want, atol=1e-12)
    np.testing.assert_allclose(imresize(x[..., 0], scale), want[..., 0], atol=1e-12)


def _naive(img: np.ndarray, scale: float) -> np.ndarray:
    """Per-pixel port of MATLAB imresize.m (contributions + resizeAlongDim), no vectorisation."""
    def k(x):
        a = abs(x)
        return 1.5 * a**3 - 2.5 * a**2 + 1 if a <= 1 else (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2 if a <= 2 else 0.0)

    def axis(n, out):
        w = np.zeros((out, n))
        width = 4 / scale if scale < 1 else 4.0
        for i in range(1, out + 1):
            u = i / scale + 0.5 * (1 - 1 / scale)
            taps = {}
            for j in range(math.floor(u - width / 2), math.floor(u - width / 2) + math.ceil(width) + 2):
                v = scale * k(scale * (u - j)) if scale < 1 else k(u - j)
                jj = (j - 1) % (2 * n)
                jj = jj if jj < n else 2 * n - 1 - jj
                taps[jj] = taps.get(jj, 0.0) + v
            total = sum(taps.values())
            for jj, v in taps.items():
                w[i - 1, jj] += v / total
        return w

    h, w_ = img.shape[:2]
    a, b = axis(h, math.ceil(h * scale)), axis(w_, math.ceil(w_ * scale))
    return np.einsum("ih,hwc,jw->ijc", a, img, b)


@pytest.mark.parametrize("scale", [1 / 3.7, 0.25, 1 / 3, 0.8, 1.5, 3.7, 4.0])
def test_imresize_matches_naive_port(scale):
    x = np.random.default_rng(1).random((13, 17, 3))
    got = imresize(x, scale)
    assert got.shape == (math.ceil(13 * scale), math.ceil(17 * scale), 3)
    np.testing.assert_allclose(got, _naive(x, scale), atol=1e-12)


def test_output_size_and_axis_order_uint8():
    x = np.random.default_rng(2).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    # an explicit size sets scale = out/in per axis; the smaller scale (rows, x0.5) goes first, and
    # MATLAB rounds and clips uint8 after each axis
    got = imresize(x, output_size=(4, 9))
    mh, mw = weight_matrix(8, 4, 0.5), weight_matrix(6, 9, 1.5)
    step = np.floor(np.clip(np.einsum("ih,hwc->iwc", mh, x.astype(float)), 0, 255) + 0.5)
    want = np.floor(np.clip(np.einsum("iwc,jw->ijc", step, mw), 0, 255) + 0.5).astype(np.uint8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    # columns first when they have the smaller scale
    got = imresize(x, scale=(2.0, 0.5))
    mh, mw = weight_matrix(8, 16, 2.0), weight_matrix(6, 3, 0.5)
    step = np.floor(np.clip(np.einsum("hwc,jw->hjc", x.astype(float), mw), 0, 255) + 0.5)
    want = np.floor(np.clip(np.einsum("ih,hjc->ijc", mh, step), 0, 255) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


def test_numpy_and_torch_agree_and_torch_is_differentiable():
    x = np.random.default_rng(3).random((2, 3, 19, 23))
    for scale in (0.5, 1 / 3.7, 2.5):
        ref = np.stack([imresize(im.transpose(1, 2, 0), scale).transpose(2, 0, 1) for im in x])
        t64 = imresize(torch.from_numpy(x), scale)
        assert torch.equal(t64, torch.from_numpy(ref))
        t32 = imresize(torch.from_numpy(x).float(), scale)
        assert t32.dtype == torch.float32
        np.testing.assert_allclose(t32.numpy(), ref, atol=2e-6)
        np.testing.assert_allclose(imresize(torch.from_numpy(x[0]), scale).numpy(), ref[0], atol=0)
    t = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: imresize(v, (0.5, 1.5)), (t,))


def test_constant_image_preserved_and_float32_dtype():
    x = np.full((9, 7, 3), 0.3, dtype=np.float32)
    y = imresize(x, 1 / 3.7)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, 0.3, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_cuda_matches_cpu():
    x = torch.rand(1, 3, 31, 29, dtype=torch.float64)
    np.testing.assert_allclose(imresize(x.cuda(), 0.25).cpu().numpy(), imresize(x, 0.25).numpy(), atol=1e-12)


def test_bad_arguments():
    with pytest.raises(LightSRError):
        imresize(np.zeros((4, 4)), scale=0)
    with pytest.raises(LightSRError):
        imresize(np.zeros((4, 4)))
    with pytest.raises(LightSRError):
        imresize(np.zeros((4,)), 2)


@pytest.mark.parametrize("hw,scale,band", [((37, 41), 0.75, 8), ((37, 41), 1.5, 5), ((40, 30), 0.3, 7),
                                           ((20, 25), 2.7, 1), ((33, 20), 1.0 / 3.7, 33)])
def test_imresize_rows_is_the_whole_image_call_bit_for_bit(hw, scale, band):
    """Row bands in, row bands out, the same bits as one call; output arrives before the input ends.
    Broken on purpose (a buffer that drops one row too many) it raises or differs."""
    from lightsr.resize import imresize_rows

    torch.manual_seed(0)
    h, w = hw
    x = torch.rand(1, 3, h, w)
    size = (round(h * scale), round(w * scale))
    ref = imresize(x, scale, output_size=size)
    bands = ((y, min(y + band, h), x[:, :, y:min(y + band, h)]) for y in range(0, h, band))
    parts = list(imresize_rows(bands, (h, w), scale, size))
    assert [p[0] for p in parts[1:]] == [p[1] for p in parts[:-1]] and parts[-1][1] == size[0]
    assert torch.equal(torch.cat([p[2] for p in parts], dim=2), ref)
    if band < h:
        assert len(parts) > 1
