"""Logical parameter counts from the Hub's stored ones (pure: no network, no disk).

The Hub's `safetensors.parameters` counts *stored elements* per dtype: a 4-bit weight
packed two to a byte counts as one U8, eight to an int32 as one I32, and the per-group
scales, zero points and absmax tensors count as parameters too. Mistral's NVFP4 675B
model shows as 381B that way. The dict is by dtype only, so it cannot say which tensors
are weights and which are scales; what it can be combined with is the model's
`config.quantization_config`, which says how the weights were packed. Each packing below
is a layout of the quantised tensors, as the libraries that write them lay them out:

- stored elements of the packed dtype per logical weight (the weights, plus the zero
  points or scales stored in that same dtype);
- scale elements per logical weight in another dtype, which are taken out of that dtype.

The logical count is then `packed / stored_per_weight` plus every other dtype, less the
scales. GPTQ's `g_idx` (one int32 per input row) and per-tensor global scales (a few
scalars per layer) cannot be told from weights in a dtype total; they are left in, an
error of 8/out (g_idx: 0.2% at 4096 outputs) and of one in a million (scalars). A config
this module does not know, or totals that do not fit its layout (fewer scale elements
than the layout needs), keep the stored count: a count is converted only when the
totals are consistent with the layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

_FLOATS = ("F16", "BF16", "F32")
"""Where GPTQ, AWQ and compressed-tensors keep group scales: the model's float dtype."""


@dataclass(frozen=True, slots=True)
class Packing:
    """How one quantisation scheme stores its weights, per logical weight."""

    name: str
    """Written into `params_source` after `safetensors_unpacked:`."""
    packed_dtype: str
    stored_per_weight: Fraction
    """Elements of `packed_dtype` per logical weight: the packed weight itself, plus
    zero points or scales kept in the same dtype."""
    scale_dtypes: tuple[str, ...] = ()
    """Dtypes that may hold the scales (the first present with enough elements)."""
    scales_per_weight: Fraction = Fraction(0)


def _int(config: Mapping[str, Any], key: str, default: int) -> int | None:
    """`config[key]` as an int: `default` when the key is absent, None when it is null or
    not an int (what a null means is the caller's: no groups, or a scheme not known)."""
    if key not in config:
        return default
    value = config[key]
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _per_group(group_size: int) -> Fraction:
    """Elements per weight of a per-group tensor; per channel (-1, 0) is per row, too few
    to estimate from totals and under 0.1% of the weights: none."""
    return Fraction(1, group_size) if group_size > 0 else Fraction(0)


def _groups(config: Mapping[str, Any], default: int) -> Fraction | None:
    """Scale elements per weight from a scheme's `group_size`, None when it is not a number.

    An explicit null is no groups, not the default: compressed-tensors writes
    `group_size: null` with `strategy: "channel"` (one scale per output row) or
    `"tensor"` (one in all), and reading it as groups of 128 would take 1/128 of the
    weights out as scales that are not there."""
    if config.get("strategy") in ("channel", "tensor") or config.get("group_size", 0) is None:
        return Fraction(0)
    group_size = _int(config, "group_size", default)
    return None if group_size is None else _per_group(group_size)


def _gptq(config: Mapping[str, Any], name: str, zero_points: bool) -> Packing | None:
    bits = _int(config, "bits", 4)
    groups = _groups(config, 128)
    if bits not in (2, 3, 4, 8) or groups is None:
        return None
    packed = Fraction(bits, 32)
    # qweight: bits/32 int32 per weight; qzeros: bits/32 int32 per group and output column.
    stored = packed * (1 + groups) if zero_points else packed
    return Packing(name, "I32", stored, _FLOATS, groups)


def _bitsandbytes(config: Mapping[str, Any]) -> Packing | None:
    if not (config.get("load_in_4bit") is True or config.get("_load_in_4bit") is True):
        return None  # 8-bit weights are one per byte: nothing packed
    if (config.get("bnb_4bit_quant_storage") or "uint8") != "uint8":  # null: the default
        return None
    # Blocks of 64 weights share an absmax: F32, or U8 itself quantised (double quant),
    # then with one F32 absmax per 256 of those.
    block = Fraction(1, 64)
    if config.get("bnb_4bit_use_double_quant") is True:
        return Packing("bitsandbytes-4bit", "U8", Fraction(1, 2) + block, ("F32",), block / 256)
    return Packing("bitsandbytes-4bit", "U8", Fraction(1, 2), ("F32",), block)


def _nvfp4(name: str, scheme: Mapping[str, Any]) -> Packing | None:
    # Two FP4 values per byte; one FP8 (E4M3) scale per group of 16.
    groups = _groups(scheme, 16)
    return None if groups is None else Packing(name, "U8", Fraction(1, 2), ("F8_E4M3",), groups)


def _mxfp4(name: str) -> Packing:
    # Two FP4 values per byte; one E8M0 scale per 32, stored as U8 too.
    return Packing(name, "U8", Fraction(1, 2) + Fraction(1, 32))


def _compressed_tensors(config: Mapping[str, Any]) -> Packing | None:
    groups = config.get("config_groups")
    weights: list[Mapping[str, Any]] = []
    formats = {config.get("format")}
    if isinstance(groups, Mapping):
        for group in groups.values():
            if not isinstance(group, Mapping):
                return None
            formats.add(group.get("format", config.get("format")))
            if isinstance(group.get("weights"), Mapping):
                weights.append(group["weights"])
    formats.discard(None)
    if len(formats) != 1 or len(weights) > 1:
        return None  # mixed precision: which weights use which packing is per tensor
    fmt = formats.pop()
    scheme = weights[0] if weights else {}
    if fmt == "nvfp4-pack-quantized":
        return _nvfp4("compressed-tensors/nvfp4-pack-quantized", scheme)
    if fmt == "mxfp4-pack-quantized":
        return _mxfp4("compressed-tensors/mxfp4-pack-quantized")
    if fmt == "pack-quantized":
        bits = _int(scheme, "num_bits", 4)
        groups = _groups(scheme, 128)
        if bits not in (2, 4, 8) or groups is None:
            return None
        packed = Fraction(bits, 32)
        # weight_packed: bits/32 int32 per weight; an asymmetric scheme adds packed zero points.
        stored = packed if scheme.get("symmetric", True) is not False else packed * (1 + groups)
        return Packing("compressed-tensors/pack-quantized", "I32", stored, _FLOATS, groups)
    return None


def packing_of(quantization_config: object) -> Packing | None:
    """The packing a model's `quantization_config` describes, or None when its weights are
    not packed (FP8, 8-bit) or the scheme is not one this module knows."""
    if not isinstance(quantization_config, Mapping):
        return None
    config: Mapping[str, Any] = quantization_config
    method = str(config.get("quant_method", "")).lower()
    if method == "gptq":
        return _gptq(config, "gptq", zero_points=True)
    if method == "awq":
        return _gptq(config, "awq", zero_points=config.get("zero_point", True) is not False)
    if method == "bitsandbytes" or (not method and config.get("load_in_4bit") is True):
        return _bitsandbytes(config)
    if method == "mxfp4":
        return _mxfp4("mxfp4")
    if method == "modelopt":
        # hf_quant_config.json nests the scheme under `quantization`; config.json has it flat.
        nested = config.get("quantization")
        scheme = config
        if config.get("quant_algo") is None and isinstance(nested, Mapping):
            scheme = nested
        if scheme.get("quant_algo") == "NVFP4":
            return _nvfp4("modelopt/NVFP4", scheme)
        return None
    if method == "compressed-tensors":
        return _compressed_tensors(config)
    return None


def logical_params(by_dtype: Mapping[str, int], packing: Packing) -> int | None:
    """The logical parameter count of stored `by_dtype` totals packed as `packing` says,
    or None when the totals do not fit the layout (no packed dtype, too few scales)."""
    packed = by_dtype.get(packing.packed_dtype)
    if not packed:
        return None
    weights = Fraction(packed) / packing.stored_per_weight
    rest = {dtype: count for dtype, count in by_dtype.items() if dtype != packing.packed_dtype}
    if packing.scales_per_weight:
        scales = round(weights * packing.scales_per_weight)
        holder = next((d for d in packing.scale_dtypes if rest.get(d, 0) >= scales), None)
        if holder is None:
            return None
        rest[holder] -= scales
    return round(weights) + sum(rest.values())
