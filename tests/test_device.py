"""hsd.device: device strings resolve or fail with a ConfigError that says what to pass; the
device name and the versions a result records."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from hsd.config import ConfigError
from hsd.device import device_name, pick_device, versions


def _fake_cuda(monkeypatch, count: int) -> None:
    """Pretend torch sees `count` CUDA devices (0: none), without touching a real GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("name", ["foo", "cuda:x", "mps", ""])
def test_unknown_device_string_is_a_config_error_listing_the_valid_ones(name):
    with pytest.raises(ConfigError, match=rf"unknown device '{name}'; valid: auto, cpu, cuda"):
        pick_device(name)


def test_cuda_without_cuda_is_a_config_error_suggesting_cpu(monkeypatch):
    _fake_cuda(monkeypatch, 0)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match="no CUDA device.*use --device cpu"):
            pick_device(name)
    assert pick_device("auto") == torch.device("cpu")


def test_cuda_index_past_the_last_device_is_a_config_error(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"'cuda:2'.* 2 CUDA device\(s\), cuda:0 to cuda:1"):
        pick_device("cuda:2")


def test_cpu_resolves_and_is_named_with_its_cores():
    assert pick_device("cpu") == torch.device("cpu")
    name = device_name(torch.device("cpu"))
    assert name.startswith("CPU ") and name.endswith(" cores)")


def test_versions_record_the_installed_libraries():
    v = versions()
    assert v["torch"] == torch.__version__ and v["cuda"] == str(torch.version.cuda)
    assert v["spikingjelly"] == importlib.metadata.version("spikingjelly")
    assert {"python", "cudnn", "triton", "numpy"} <= set(v)
