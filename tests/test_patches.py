"""Training patches: determinism, HR = round(s x LR), coordinates/cells, the fast grid, DDP sharding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.data.patches import (ContinuousScalePatches, FixedScalePatches, GlobalBatchSampler, bicubic_lr,
                                  list_images, make_coord, to_tensor)
from lightsr.errors import LightSRError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six smooth-ish 72 x 80 RGB images (deterministic)."""
    d = tmp_path_factory.mktemp("train_imgs")
    g = torch.Generator().manual_seed(0)
    for i in range(6):
        x = torch.rand(3, 9, 10, generator=g)
        x = torch.nn.functional.interpolate(x[None], size=(72, 80), mode="bicubic", align_corners=False)[0]
        a = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(a).save(d / f"im{i}.png")
    return d


def test_make_coord_centres_and_cell():
    c = make_coord((4, 2), flatten=False)
    assert c.shape == (4, 2, 2)
    assert torch.allclose(c[:, 0, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75]))  # -1 + (2i+1)/n along H
    assert torch.allclose(c[0, :, 1], torch.tensor([-0.5, 0.5]))  # along W


def test_list_images_errors(tmp_path):
    with pytest.raises(LightSRError, match="not found"):
        list_images(tmp_path / "nope")
    with pytest.raises(LightSRError, match="no images"):
        list_images(tmp_path)


def test_fixed_scale_pairs_are_aligned_bicubic(folder):
    ds = FixedScalePatches(folder, scale=2, lr_patch=16, global_batch=4, seed=1, cache_dir=None)
    s = ds[7]
    assert s["lr"].shape == (3, 16, 16) and s["hr"].shape == (3, 32, 32)
    # LR comes from the whole image: away from the patch border it equals the patch's own bicubic LR
    ref = bicubic_lr(s["hr"], scale=2)
    assert (ref[:, 3:-3, 3:-3] - s["lr"][:, 3:-3, 3:-3]).abs().max() <= 1.01 / 255
    # whole-image LR is exactly the benchmark protocol (MATLAB bicubic, 8 bit)
    hr, lr = ds.pair(0)
    assert lr.shape == (hr.shape[0] // 2, hr.shape[1] // 2, 3) and lr.dtype == np.uint8
    # deterministic: a fresh dataset gives the same sample for the same global index
    again = FixedScalePatches(folder, scale=2, lr_patch=16, global_batch=4, seed=1, cache_dir=None)[7]
    assert torch.equal(again["lr"], s["lr"]) and torch.equal(again["hr"], s["hr"])
    other = FixedScalePatches(folder, scale=2, lr_patch=16, global_batch=4, seed=2, cache_dir=None)[7]
    assert not torch.equal(other["hr"], s["hr"])


def test_lr_disk_cache(folder, tmp_path):
    a = FixedScalePatches(folder, scale=3, lr_patch=8, cache_dir=tmp_path)
    a.precompute()
    files = sorted((tmp_path / "x3").glob("*.npy"))
    assert len(files) == 6
    b = FixedScalePatches(folder, scale=3, lr_patch=8, cache_dir=tmp_path)
    assert np.array_equal(b.pair(2)[1], a.pair(2)[1])


def test_epochs_visit_every_image(folder):
    ds = FixedScalePatches(folder, scale=2, lr_patch=8, global_batch=4, seed=0, repeat=2, cache_dir=None)
    assert ds.epoch_len == 12
    seen = sorted(ds.image_index(g) for g in range(12, 24))  # epoch 1
    assert seen == sorted(list(range(6)) * 2)


def test_continuous_batch_scale_full_grid(folder):
    ds = ContinuousScalePatches(folder, lr_patch=12, global_batch=4, seed=0, scale_mode="batch", queries="full")
    for step in range(3):
        samples = [ds[step * 4 + k] for k in range(4)]
        sizes = {tuple(s["gt"].shape) for s in samples}
        assert len(sizes) == 1  # one scale per global batch
        h = samples[0]["gt"].shape[1]
        s = ds.scale_at(step * 4)
        assert 1 <= s <= 4 and h == round(s * 12)  # HR = round(scale x LR)
        for smp in samples:
            assert smp["lr"].shape == (3, 12, 12)
            assert torch.allclose(smp["cell"], torch.tensor([2.0 / h, 2.0 / h]))
            assert torch.allclose(smp["coord"], make_coord((h, h), flatten=False))
            assert smp["scale"].tolist() == [h / 12, h / 12]
    batch = torch.utils.data.default_collate([ds[k] for k in range(4)])
    assert batch["coord"].shape[0] == 4 and batch["cell"].shape == (4, 2)


def test_continuous_fast_grid_matches_hr_pixels(folder):
    """The "fast" sampler's gt is the HR patch sampled at its coords (same sample, full vs fast)."""
    kw = dict(lr_patch=10, global_batch=4, seed=3)
    full = ContinuousScalePatches(folder, scale_mode="batch", queries="full", **kw)
    fast = ContinuousScalePatches(folder, scale_mode="batch", queries="fast", **kw)
    for g in (0, 5, 9):
        a, b = full[g], fast[g]
        assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["cell"], b["cell"])
        assert b["coord"].shape == (10, 10, 2) and b["gt"].shape == (3, 10, 10)
        h, w = a["gt"].shape[1:]
        iy = ((b["coord"][..., 0] + 1) * h / 2 - 0.5).round().long()
        ix = ((b["coord"][..., 1] + 1) * w / 2 - 0.5).round().long()
        assert torch.equal(a["gt"][:, iy, ix], b["gt"])
        assert len(set((iy * w + ix).flatten().tolist())) == 100  # without replacement


def test_continuous_per_sample_scales(folder):
    ds = ContinuousScalePatches(folder, lr_patch=8, global_batch=4, seed=0, scale_mode="sample", queries="fast")
    cells = torch.stack([ds[g]["cell"] for g in range(8)])
    assert len(set(cells[:, 0].tolist())) > 1  # scales differ inside a batch
    batch = torch.utils.data.default_collate([ds[g] for g in range(4)])
    assert batch["gt"].shape == (4, 3, 8, 8) and batch["coord"].shape == (4, 8, 8, 2)
    with pytest.raises(LightSRError, match="fast"):
        ContinuousScalePatches(folder, lr_patch=8, scale_mode="sample", queries="full")


def test_global_batch_sampler_shards_like_one_process():
    one = list(GlobalBatchSampler(batch=4, world=1, rank=0, start_step=0, total_steps=3))
    r0 = list(GlobalBatchSampler(batch=2, world=2, rank=0, start_step=0, total_steps=3))
    r1 = list(GlobalBatchSampler(batch=2, world=2, rank=1, start_step=0, total_steps=3))
    assert [a + b for a, b in zip(r0, r1)] == one
    assert list(GlobalBatchSampler(batch=4, start_step=2, total_steps=3)) == one[2:]


def test_to_tensor_range():
    a = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert torch.allclose(to_tensor(a).flatten(), torch.tensor([0, 128 / 255, 1.0]))
