"""The weights shipped in the package reproduce the evaluation recorded in results/training.md."""
import pytest

from conftest import BENCHMARK, need
from lightsr.evaluate import evaluate
from lightsr.models import build_model, get_entry

# Set5 Y-PSNR (standard protocol) recorded for the shipped rdb_esa weights
RECORDED_SET5 = {2: 36.2835, 3: 32.1143, 4: 30.0244}
BICUBIC_SET5 = {2: 33.6818, 3: 30.4047, 4: 28.4314}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rdb_esa_shipped_weights(scale):
    weights = get_entry("rdb_esa").shipped_weights(scale)
    assert weights is not None, "rdb_esa weights missing from src/lightsr/weights"
    model = build_model("rdb_esa", scale, str(weights))
    psnr = evaluate(model, [need(BENCHMARK / "Set5")], scale, progress=False)["Set5"]["psnr"]
    assert psnr == pytest.approx(RECORDED_SET5[scale], abs=0.01)
    assert psnr > BICUBIC_SET5[scale] + 0.5
