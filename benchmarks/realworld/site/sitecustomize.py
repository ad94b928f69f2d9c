"""Loaded in every Python process of a harness run (this folder is first on PYTHONPATH).

- ``GP_CPU_SHIM=1``: :mod:`gp_cpu_shim` maps the CUDA-only calls of the DDP examples to CPU and
  gloo, the same for the oracle run and the graphprobe run.
- ``GP_ORACLE_OUT``: :mod:`gp_oracle` records what ``torch.autograd.grad`` reaches.
"""
import os

if os.environ.get("GP_CPU_SHIM"):
    import gp_cpu_shim  # noqa: F401  (applies itself)
if os.environ.get("GP_ORACLE_OUT"):
    import gp_oracle  # noqa: F401  (installs itself)
