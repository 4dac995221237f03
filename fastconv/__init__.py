"""fastconv: convolution and pooling kernels, compiled (Cython + OpenMP) and JIT-compiled
(Numba), behind one NumPy-compatible API.

NN-style functions follow ``torch.nn.functional``: :func:`conv1d`, :func:`conv2d`,
:func:`max_pool1d`, :func:`max_pool2d`, :func:`avg_pool2d`. NumPy/SciPy-style ones give the
results of their namesakes: :func:`convolve`, :func:`correlate`, :func:`convolve2d`,
:func:`correlate2d`. Every function takes ``backend=``; see :func:`backends`.
"""

from ._dispatch import backends, get_backend, set_backend, use_backend
from ._info import info
from ._threads import get_num_threads, set_num_threads
from . import analysis, grad, nn
from ._version import __version__
from .functional import (
    avg_pool2d,
    conv1d,
    conv2d,
    convolve,
    convolve2d,
    correlate,
    correlate2d,
    locally_connected2d,
    max_pool1d,
    max_pool2d,
)

__all__ = [
    "__version__",
    "analysis",
    "avg_pool2d",
    "backends",
    "conv1d",
    "conv2d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "get_backend",
    "get_num_threads",
    "grad",
    "info",
    "locally_connected2d",
    "max_pool1d",
    "max_pool2d",
    "nn",
    "set_backend",
    "set_num_threads",
    "use_backend",
]
