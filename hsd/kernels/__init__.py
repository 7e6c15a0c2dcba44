"""Performance kernels, each the same mathematics as the plain expression it replaces (tested):

- ``qcfs``: the QCFS activation as one autograd node (the ANN's training step on a CPU spent half
  its time in autograd's dozen elementwise passes);
- ``cpu_scan``: SpikingJelly's IF/LIF neurons over a whole fp32 sequence on a CPU (used by
  ``hsd.neurons`` for every CPU run);
- ``if_scan``/``LeanIFNode``: a memory-lean multi-step IF neuron (1 byte kept per activation in
  bf16; fused Triton kernels on CUDA when triton imports).
"""

from hsd.kernels.if_scan import LeanIFNode, if_scan, triton_available

__all__ = ["LeanIFNode", "if_scan", "triton_available"]
