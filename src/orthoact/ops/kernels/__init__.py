"""The kernels: C++ (``kernels.cpp`` drivers, ``common.h``, one header per family) and Triton
(``triton_common`` drivers, one module per family). The Triton modules import ``triton`` and are
only imported when the Triton backend runs."""
