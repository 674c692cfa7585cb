"""Kernels of adaptive equitable sampling (Cai et al., FAccT 2022): learning curves per group (curves.py), the
objectives and allocations under a budget (allocate.py) and the adaptive rounds (adaptive.py). Pure numpy/scipy."""
