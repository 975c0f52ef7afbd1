"""Logical parameter counts from stored dtype totals (pure), one case per packing format.

Each case lays out one toy model tensor by tensor, as the library that writes the format
lays it out (names, dtypes, shapes), sums the tensors by dtype as the Hub does for
`safetensors.parameters`, and checks that the logical count comes back: the weights as
weights, the scales, zero points and absmax tensors not at all."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest

from pipeline.resolve.hub_params import logical_params, packing_of

Tensor = tuple[str, str, tuple[int, ...]]

IN, OUT, VOCAB = 4096, 1024, 512
LINEARS = [f"layers.{i}.mlp.{p}" for i in range(2) for p in ("up_proj", "down_proj")]
UNQUANTISED: list[Tensor] = [
    ("embed_tokens.weight", "BF16", (VOCAB, IN)),
    ("lm_head.weight", "BF16", (VOCAB, IN)),
    ("layers.0.norm.weight", "BF16", (IN,)),
]
LOGICAL = len(LINEARS) * IN * OUT + 2 * VOCAB * IN + IN


def _gptq(dtype: str = "F16", g_idx: bool = True, group: int = 128) -> list[Tensor]:
    """AutoGPTQ / GPTQModel: qweight [in*4/32, out], qzeros [in/g, out*4/32],
    scales [in/g, out], g_idx [in]; per channel (group -1), one row of each."""
    rows = IN // group if group > 0 else 1
    tensors = [(name, dtype if d == "BF16" else d, s) for name, d, s in UNQUANTISED]
    for linear in LINEARS:
        tensors += [
            (f"{linear}.qweight", "I32", (IN // 8, OUT)),
            (f"{linear}.qzeros", "I32", (rows, OUT // 8)),
            (f"{linear}.scales", dtype, (rows, OUT)),
        ]
        if g_idx:
            tensors.append((f"{linear}.g_idx", "I32", (IN,)))
    return tensors


def _awq() -> list[Tensor]:
    """AutoAWQ GEMM: qweight [in, out*4/32], qzeros [in/g, out*4/32], scales [in/g, out]."""
    tensors = [(name, "F16", s) for name, _, s in UNQUANTISED]
    for linear in LINEARS:
        tensors += [
            (f"{linear}.qweight", "I32", (IN, OUT // 8)),
            (f"{linear}.qzeros", "I32", (IN // 128, OUT // 8)),
            (f"{linear}.scales", "F16", (IN // 128, OUT)),
        ]
    return tensors


def _nvfp4(global_scales: tuple[str, ...]) -> list[Tensor]:
    """Two FP4 per byte [out, in/2], one FP8 scale per 16 [out, in/16], global scalars."""
    tensors = list(UNQUANTISED)
    for linear in LINEARS:
        tensors += [
            (f"{linear}.weight_packed", "U8", (OUT, IN // 2)),
            (f"{linear}.weight_scale", "F8_E4M3", (OUT, IN // 16)),
        ]
        tensors += [(f"{linear}.{scale}", "F32", (1,)) for scale in global_scales]
    return tensors


def _mxfp4() -> list[Tensor]:
    """gpt-oss: `_blocks` [out, in/32, 16] two FP4 per byte, `_scales` E8M0 as U8 [out, in/32]."""
    tensors = list(UNQUANTISED)
    for linear in LINEARS:
        tensors += [
            (f"{linear}_blocks", "U8", (OUT, IN // 32, 16)),
            (f"{linear}_scales", "U8", (OUT, IN // 32)),
        ]
    return tensors


def _bitsandbytes(double_quant: bool) -> list[Tensor]:
    """bitsandbytes NF4: weight [n/2, 1] U8, absmax per 64 (F32, or U8 with double quant,
    then nested_absmax F32 per 256 of those and the two 256/16-entry quant maps),
    and the packed quant_state blob (U8)."""
    tensors = [(name, "F16", s) for name, _, s in UNQUANTISED]
    weights = IN * OUT
    for linear in LINEARS:
        tensors.append((f"{linear}.weight", "U8", (weights // 2, 1)))
        if double_quant:
            tensors += [
                (f"{linear}.weight.absmax", "U8", (weights // 64,)),
                (f"{linear}.weight.nested_absmax", "F32", (weights // 64 // 256,)),
                (f"{linear}.weight.nested_quant_map", "F32", (256,)),
            ]
        else:
            tensors.append((f"{linear}.weight.absmax", "F32", (weights // 64,)))
        tensors += [
            (f"{linear}.weight.quant_map", "F32", (16,)),
            (f"{linear}.weight.quant_state.bitsandbytes__nf4", "U8", (94,)),
        ]
    return tensors


def _pack_quantized(symmetric: bool, group: int | None = 128) -> list[Tensor]:
    """compressed-tensors W4A16: weight_packed [out, in/8] I32, weight_scale [out, in/g],
    packed weight_zero_point [out/8, in/g] when asymmetric, weight_shape [2]; per channel
    (no group), one scale per output row [out, 1]."""
    columns = IN // group if group else 1
    tensors = list(UNQUANTISED)
    for linear in LINEARS:
        tensors += [
            (f"{linear}.weight_packed", "I32", (OUT, IN // 8)),
            (f"{linear}.weight_scale", "BF16", (OUT, columns)),
            (f"{linear}.weight_shape", "I64", (2,)),
        ]
        if not symmetric:
            tensors.append((f"{linear}.weight_zero_point", "I32", (OUT // 8, columns)))
    return tensors


def by_dtype(tensors: list[Tensor]) -> dict[str, int]:
    """What the Hub's `safetensors.parameters` holds: elements per dtype, nothing else."""
    totals: Counter[str] = Counter()
    for _, dtype, shape in tensors:
        totals[dtype] += math.prod(shape)
    return dict(totals)


def _ct(fmt: str, **weights: Any) -> dict[str, Any]:
    group = {"format": fmt, "targets": ["Linear"], "weights": weights}
    return {"quant_method": "compressed-tensors", "format": fmt, "config_groups": {"g": group}}


NVFP4_CT = _ct("nvfp4-pack-quantized", num_bits=4, type="float", group_size=16)
NVFP4_MODELOPT = {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16}
BNB = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
PER_ROW = 1 / IN  # per-channel scales, one per output row, are left in: 1/in of the weights

# (case, quantization_config, tensors, params_source suffix, relative error allowed)
CASES: list[tuple[str, dict[str, Any], list[Tensor], str, float]] = [
    (
        "compressed-tensors NVFP4 (U8, FP8 scales per 16)",
        NVFP4_CT,
        _nvfp4(("weight_global_scale", "input_global_scale")),
        "compressed-tensors/nvfp4-pack-quantized",
        1e-5,  # the global scalars: F32, like no weight here, but a total cannot tell
    ),
    (
        "ModelOpt NVFP4",
        NVFP4_MODELOPT,
        _nvfp4(("weight_scale_2", "input_scale")),
        "modelopt/NVFP4",
        1e-5,
    ),
    (
        "compressed-tensors NVFP4, group_size absent: the default of 16",
        _ct("nvfp4-pack-quantized", num_bits=4, type="float", strategy="tensor_group"),
        _nvfp4(()),
        "compressed-tensors/nvfp4-pack-quantized",
        0,
    ),
    (
        "ModelOpt NVFP4, algo and group size under `quantization`",
        {"quant_method": "modelopt", "quantization": {"quant_algo": "NVFP4", "group_size": 16}},
        _nvfp4(()),
        "modelopt/NVFP4",
        0,
    ),
    (
        "ModelOpt NVFP4, algo under `quantization`",
        {"quant_method": "modelopt", "quantization": {"quant_algo": "NVFP4"}},
        _nvfp4(()),
        "modelopt/NVFP4",
        0,
    ),
    (
        "MXFP4 (gpt-oss: blocks and E8M0 scales in U8)",
        {"quant_method": "mxfp4"},
        _mxfp4(),
        "mxfp4",
        0,
    ),
    (
        "compressed-tensors MXFP4",
        _ct("mxfp4-pack-quantized", num_bits=4, type="float", group_size=32),
        _mxfp4(),
        "compressed-tensors/mxfp4-pack-quantized",
        0,
    ),
    (
        "GPTQ int4 in I32, without g_idx",
        {"quant_method": "gptq", "bits": 4, "group_size": 128},
        _gptq(g_idx=False),
        "gptq",
        0,
    ),
    (
        "GPTQ int4 in I32, g_idx counted as weights (one int32 per input row)",
        {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True},
        _gptq(),
        "gptq",
        8 / OUT,  # g_idx: `in` int32 beside in*out/8 of qweight (0.2% for out = 4096)
    ),
    (
        "GPTQ int4 with BF16 scales",
        {"quant_method": "gptq", "bits": 4, "group_size": 128},
        _gptq("BF16", g_idx=False),
        "gptq",
        0,
    ),
    (
        "GPTQ int4 per channel (group_size -1)",
        {"quant_method": "gptq", "bits": 4, "group_size": -1},
        _gptq(g_idx=False, group=-1),
        "gptq",
        2 * PER_ROW,  # the scales and the zero points, one row each
    ),
    (
        "GPTQ int4, group_size null: no groups",
        {"quant_method": "gptq", "bits": 4, "group_size": None},
        _gptq(g_idx=False, group=-1),
        "gptq",
        2 * PER_ROW,  # the scales and the zero points, one row each
    ),
    (
        "GPTQ int4, group_size absent: the default of 128",
        {"quant_method": "gptq", "bits": 4},
        _gptq(g_idx=False),
        "gptq",
        0,
    ),
    ("AWQ int4 GEMM", {"quant_method": "awq", "bits": 4, "group_size": 128}, _awq(), "awq", 0),
    (
        "bitsandbytes NF4",
        BNB,
        _bitsandbytes(double_quant=False),
        "bitsandbytes-4bit",
        1e-4,  # the 16-entry quant maps and the quant_state blobs, per layer
    ),
    (
        "bitsandbytes NF4, double quant (absmax in U8 too)",
        {**BNB, "bnb_4bit_use_double_quant": True},
        _bitsandbytes(double_quant=True),
        "bitsandbytes-4bit",
        1e-4,
    ),
    (
        "bitsandbytes NF4, quant storage null: the default uint8",
        {**BNB, "bnb_4bit_quant_storage": None},
        _bitsandbytes(double_quant=False),
        "bitsandbytes-4bit",
        1e-4,
    ),
    (
        "bitsandbytes 4-bit, old config without quant_method",
        {"load_in_4bit": True, "load_in_8bit": False},
        _bitsandbytes(double_quant=False),
        "bitsandbytes-4bit",
        1e-4,
    ),
    (
        "compressed-tensors W4A16 symmetric",
        _ct("pack-quantized", num_bits=4, type="int", group_size=128, symmetric=True),
        _pack_quantized(symmetric=True),
        "compressed-tensors/pack-quantized",
        1e-5,  # weight_shape
    ),
    (
        "compressed-tensors W4A16 channel-wise (group_size null, strategy channel)",
        _ct("pack-quantized", num_bits=4, group_size=None, strategy="channel", symmetric=True),
        _pack_quantized(symmetric=True, group=None),
        "compressed-tensors/pack-quantized",
        PER_ROW,
    ),
    (
        "compressed-tensors W4A16 channel-wise, group_size absent",
        _ct("pack-quantized", num_bits=4, strategy="channel", symmetric=True),
        _pack_quantized(symmetric=True, group=None),
        "compressed-tensors/pack-quantized",
        PER_ROW,
    ),
    (
        "compressed-tensors W4A16 asymmetric channel-wise (zero points per row)",
        _ct("pack-quantized", num_bits=4, group_size=None, strategy="channel", symmetric=False),
        _pack_quantized(symmetric=False, group=None),
        "compressed-tensors/pack-quantized",
        2 * PER_ROW,
    ),
    (
        "compressed-tensors W4A16, group_size absent: the default of 128",
        _ct("pack-quantized", num_bits=4, strategy="group"),
        _pack_quantized(symmetric=True),
        "compressed-tensors/pack-quantized",
        1e-5,
    ),
    (
        "compressed-tensors W4A16 asymmetric (packed zero points)",
        _ct("pack-quantized", num_bits=4, type="int", group_size=128, symmetric=False),
        _pack_quantized(symmetric=False),
        "compressed-tensors/pack-quantized",
        1e-5,
    ),
]


@pytest.mark.parametrize(
    ("config", "tensors", "name", "tolerance"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_each_packing_counts_weights_not_bytes_nor_scales(
    config: dict[str, Any], tensors: list[Tensor], name: str, tolerance: float
) -> None:
    stored = by_dtype(tensors)
    assert sum(stored.values()) < 0.8 * LOGICAL  # what the Hub's total says
    packing = packing_of(config)
    assert packing is not None and packing.name == name
    logical = logical_params(stored, packing)
    assert logical is not None
    assert abs(logical - LOGICAL) <= tolerance * LOGICAL, (logical, LOGICAL)


@pytest.mark.parametrize(
    "config",
    [
        {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]},
        {"quant_method": "bitsandbytes", "load_in_8bit": True},
        {
            "quant_method": "bitsandbytes",
            "load_in_4bit": True,
            "bnb_4bit_quant_storage": "bfloat16",
        },
        {"quant_method": "modelopt", "quant_algo": "FP8"},
        _ct("float-quantized", num_bits=8, type="float"),
        {
            "quant_method": "compressed-tensors",
            "format": "mixed-precision",
            "config_groups": {
                "a": {"format": "nvfp4-pack-quantized", "weights": {"num_bits": 4}},
                "b": {"format": "float-quantized", "weights": {"num_bits": 8}},
            },
        },
        {"quant_method": "gptq", "bits": 5},
        # A null or non-numeric size is a scheme this module cannot read, not the default.
        {"quant_method": "gptq", "bits": None},
        {"quant_method": "awq", "bits": 4, "group_size": "128"},
        _ct("pack-quantized", num_bits=None, group_size=128),
        _ct("nvfp4-pack-quantized", num_bits=4, group_size="16"),
        {"quant_method": "hqq"},
        {"bits": 4},
        "gptq",
        None,
    ],
    ids=repr,
)
def test_unpacked_or_unknown_schemes_keep_the_stored_count(config: object) -> None:
    assert packing_of(config) is None


@pytest.mark.parametrize(
    ("config", "stored"),
    [
        # A GPTQ config over BF16 weights: no I32 to unpack.
        ({"quant_method": "gptq", "bits": 4}, {"BF16": 1000}),
        # NVFP4 without the FP8 scales its layout needs: not what the config says.
        (NVFP4_CT, {"U8": 1600, "BF16": 10}),
        # GPTQ whose float dtypes cannot hold one scale per group.
        ({"quant_method": "gptq", "bits": 4, "group_size": 128}, {"I32": 129_000, "F16": 3}),
    ],
)
def test_totals_that_do_not_fit_the_layout_are_not_converted(
    config: dict[str, Any], stored: dict[str, int]
) -> None:
    packing = packing_of(config)
    assert packing is not None
    assert logical_params(stored, packing) is None
