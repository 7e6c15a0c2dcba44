"""Benchmarks: our SNN training step against an ANN floor and two anchor styles, trial packing,
and the data path. Command line: ``python -m harness.bench train|packing|data`` (`cli`).

``train`` (`train`) measures, in one process and with repeats, one training step (forward +
backward + SGD step) of each implementation and reports step time (median), frames/s, peak
memory and both ratios to the floor. The implementations (`anchors`):

- ``floor``: the same VGG convolutions with ReLU on the T·N frames as one batch — the cost of the
  network without any temporal state. The bound for an SNN step.
- ``ours-sj`` / ``ours-lean``: ``hsd.models.vgg_snn(neuron="if")`` as the harness trains it, with
  SpikingJelly's IFNode, and with ``hsd.kernels.LeanIFNode`` swapped in;
- ``converted-sj`` / ``converted-lean``: the converted SNN (``hsd.convert.ann_to_snn``: θ = λ,
  v0 = θ/2, output θ·s) that HSD fine-tunes, with either neuron;
- ``anchor-sj``: the usual SpikingJelly multi-step style (an independent nn.Sequential, IFNode);
- ``anchor-loop``: the usual hand-written style: the whole net stepped in a Python loop over T
  with a hand-written IF neuron (state carried in Python variables).

Every implementation runs in the same precision and layout: by default bf16 autocast and
channels_last on CUDA, fp32 and NCHW on CPU (``--precision``; the floor can be pinned apart with
``--floor-precision``, e.g. fp32 SNNs against the bf16 floor; ``--[no-]channels-last``).
``--epoch-batches K`` also times K batches of a real epoch (``hsd.data.load_frames`` +
``iterate_batches`` on n-digits) against K × the measured step time: the data-stall ratio.

``packing`` (`packing`) runs 1, 2 and 4 training processes on one device at once and reports
aggregate frames/s, so a sweep can pick trials per GPU from a measurement.

``data`` (`data`) times frame integration (ours, SpikingJelly's, tonic's on the same events) and
random batch reads from the frame cache.

Sizes and targets: `config` (the ``smoke`` profile is the smoke profile's VGG-SNN (`hsd.presets`)). Nothing
here imports Ray.
"""
