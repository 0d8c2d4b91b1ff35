"""Where a result came from: the CPU precision decision and the record every summary holds."""

from __future__ import annotations

import importlib.metadata
import platform

import torch

from search.provenance import cpu_flags, cpu_has_fast_bf16, record, resolve_precision


def test_auto_precision_on_the_cpu_follows_the_bf16_instruction_flags() -> None:
    assert cpu_has_fast_bf16(frozenset({"fpu", "avx2", "amx_bf16", "amx_tile"}))  # Intel Sapphire Rapids
    assert cpu_has_fast_bf16(frozenset({"fpu", "avx512f", "avx512_bf16"}))  # AMD Zen 4: no AMX, still native bf16
    assert not cpu_has_fast_bf16(frozenset({"fpu", "avx2", "avx512f"}))  # bf16 would be emulated
    here = "bf16" if {"amx_bf16", "avx512_bf16"} & cpu_flags() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == here
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"  # asked for: kept


def test_the_record_names_the_precision_the_hardware_and_the_versions() -> None:
    stamp = record(torch.device("cpu"), "fp32")
    assert stamp["precision"] == "fp32" and stamp["device"] == "cpu" and stamp["hardware"]
    assert stamp["versions"]["python"] == platform.python_version() and stamp["versions"]["torch"] == importlib.metadata.version("torch")
