"""The shipped ETTh1 copy must stay byte-identical to the original (CC BY-ND 4.0: no derivatives)."""

import hashlib

from forecasting.data import PACKAGED_DIR

ETTH1_SHA256 = "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"  # ETDataset@1d16c8f


def test_shipped_etth1_is_unmodified():
    assert hashlib.sha256((PACKAGED_DIR / "ETTh1.csv").read_bytes()).hexdigest() == ETTH1_SHA256


def test_shipped_data_carries_its_attribution():
    text = (PACKAGED_DIR / "README.md").read_text()
    assert "CC BY-ND 4.0" in text and "zhouhaoyi/ETDataset" in text
