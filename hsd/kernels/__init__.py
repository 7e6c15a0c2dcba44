"""Performance kernels. ``if_scan``/``LeanIFNode``: a memory-lean multi-step IF neuron (torch loop
everywhere, fused Triton kernels on CUDA when triton imports)."""

from hsd.kernels.if_scan import LeanIFNode, if_scan, triton_available

__all__ = ["LeanIFNode", "if_scan", "triton_available"]
