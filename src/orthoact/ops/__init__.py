"""Fast paths. Each registers itself with :mod:`orthoact.backends` under its backend name.

* ``fused``: C++/OpenMP CPU kernels behind ``torch.library`` custom ops (:mod:`orthoact.ops.fused`).
* ``triton``: Triton GPU kernels (:mod:`orthoact.ops.triton`); Triton itself is imported on first use.
"""

from orthoact.backends import register_fast_path
from orthoact.ops import fused
from orthoact.ops import triton as triton_path
from orthoact.ops._build import load as load_fused_kernels

for _family, _fn in fused.IMPLEMENTATIONS.items():
    register_fast_path("fused", _family, fused.unavailable_reason, _fn)
for _family, _fn in triton_path.IMPLEMENTATIONS.items():
    register_fast_path("triton", _family, triton_path.unavailable_reason, _fn)

__all__ = ["fused", "load_fused_kernels"]
