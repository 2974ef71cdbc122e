"""The backbone layer's import rules: listing backbones never loads torch or timm, and spec imports no adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["harness.backbones.spec", "harness.backbones.catalog", "harness.assets",
                                    "harness.backbones.timm_models"])
def test_metadata_modules_import_without_torch_or_timm(module: str) -> None:
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'timm', 'transformers') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()}"


def test_timm_lookup_loads_no_adapter() -> None:
    """spec checks timm names through timm_models, which imports neither spec's adapters nor torch."""
    code = ("import sys, harness.backbones.timm_models as t; "
            "assert t.timm_model_exists('resnet18') and not t.timm_model_exists('efficientnet_b99'); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('harness.backbones.'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert loaded == {"harness.backbones.spec", "harness.backbones.timm_models"}
