"""The quantization rules stated once: mode -> precision, --target's presets, host checks."""

from __future__ import annotations

import pytest

from edgetransfer.convert import quantize
from edgetransfer.errors import ConfigError


@pytest.mark.parametrize("mode, precision", [("none", "fp32"), ("fp16", "fp16"),
                                             ("int8-dynamic", "int8"), ("int8-static", "int8"),
                                             (None, None)])
def test_each_mode_has_one_precision(mode, precision):
    assert quantize.precision_of(mode) == precision


def test_every_mode_but_auto_names_a_precision():
    assert {quantize.precision_of(m) for m in quantize.MODES if m != "auto"} == \
        {"fp32", "fp16", "int8", "int4"}


def test_an_unknown_target_lists_the_known_ones():
    with pytest.raises(ConfigError, match="--target x86: use one of x86-avx2, x86-avx512-vnni"):
        quantize.target("x86")
    assert quantize.target("arm64").activation_type == "QInt8"


def test_a_host_without_the_targets_instructions_is_named():
    avx2 = {"arch": "x86_64", "isa": ["avx2"]}
    assert "lacks avx512_vnni" in quantize.host_mismatch("x86-avx512-vnni", avx2)
    assert quantize.host_mismatch("x86-avx2", avx2) is None
    assert quantize.host_mismatch("arm64", avx2) == "this host is x86_64, the target arm64"
