"""Fast paths. Each registers itself with :mod:`orthoact.backends` under its backend name, for every
family whose declaration names kernels.

* ``fused``: C++/OpenMP CPU kernels behind ``torch.library`` custom ops (:mod:`orthoact.ops.fused`).
* ``triton``: Triton GPU kernels (:mod:`orthoact.ops.triton`); Triton itself is imported on first use.
"""

from orthoact.backends import register_fast_path
from orthoact.ops import fused
from orthoact.ops import triton as triton_path
from orthoact.ops._build import load as load_fused_kernels
from orthoact.ops._common import kernel_table

register_fast_path("fused", fused.unavailable_reason, fused.fused_run, fused.fused_recompute)
register_fast_path("triton", triton_path.unavailable_reason, triton_path.triton_run, triton_path.triton_recompute)

__all__ = ["fused", "load_fused_kernels", "kernel_table"]
