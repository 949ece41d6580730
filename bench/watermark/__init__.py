"""The watermark benchmark. Importing the package pins numerical libraries to one thread per
process before numpy loads, so CPU-time figures stay comparable across runs."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
