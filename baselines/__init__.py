"""Baseline training methods, one file each: TET (`tet`, with its Figure-2 alias `sts`), direct
training (`dts`, `ce`), SLTT (`sltt`, `sltt-k`), TCJA (`tcja`) and vanilla KD (`kd-response`,
`kd-feature`, `kd-both`).

They register in `hsd.method.METHODS` the way any other package would: through the
``hsd.methods`` entry-point group in pyproject.toml (and SLTT's neuron through ``hsd.neurons``),
loaded on demand by the registry. Nothing here needs importing to use them by name.
"""
