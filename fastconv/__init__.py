"""fastconv: convolution and pooling kernels, compiled (Cython + OpenMP) and JIT-compiled
(Numba), behind one NumPy-compatible API.

NN-style functions follow ``torch.nn.functional``: :func:`conv1d`, :func:`conv2d`,
:func:`conv3d`, :func:`conv_transpose1d`/``2d``/``3d``, :func:`unfold`, :func:`fold`,
:func:`max_pool1d`/``2d``/``3d``, :func:`avg_pool1d`/``2d``/``3d``, :func:`lp_pool1d`/``2d``,
:func:`max_unpool1d`/``2d``/``3d``, the adaptive average and max pools, and their
gradients in :mod:`fastconv.grad`. NumPy/SciPy-style ones give the
results of their namesakes: :func:`convolve`, :func:`correlate`, :func:`convolve2d`,
:func:`correlate2d`. Every function takes ``backend=``; see :func:`backends`. Threads:
:func:`set_num_threads`; subnormals flushed to zero in the compiled kernels, as in torch:
:func:`set_flush_denormal`.
"""

import time as _time

_import_t0 = _time.perf_counter()

from ._dispatch import backends, get_backend, set_backend, use_backend  # noqa: E402
from ._info import info  # noqa: E402
from ._threads import (  # noqa: E402
    get_flush_denormal,
    get_num_threads,
    set_flush_denormal,
    set_num_threads,
)
from . import analysis, grad, nn  # noqa: E402
from . import ndimage, signal  # noqa: E402  (scipy.ndimage and scipy.signal drop-ins)
from ._version import __version__  # noqa: E402
from .functional import (  # noqa: E402
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_avg_pool3d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv3d,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    convolve,
    convolve2d,
    correlate,
    correlate2d,
    locally_connected2d,
    max_pool1d,
    max_pool2d,
    max_pool3d,
    avg_pool1d,
    avg_pool3d,
)
from .functional import (  # noqa: E402  (issue 17: unfold/fold, max_unpool, lp_pool)
    fold,
    lp_pool1d,
    lp_pool2d,
    max_unpool1d,
    max_unpool2d,
    max_unpool3d,
    unfold,
)

__all__ = [
    "__version__",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "analysis",
    "avg_pool2d",
    "backends",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "convolve",
    "convolve2d",
    "correlate",
    "correlate2d",
    "get_backend",
    "get_flush_denormal",
    "get_num_threads",
    "grad",
    "info",
    "locally_connected2d",
    "max_pool1d",
    "max_pool2d",
    "ndimage",
    "nn",
    "set_backend",
    "set_flush_denormal",
    "set_num_threads",
    "use_backend",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool3d",
    "unfold",
    "fold",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "lp_pool1d",
    "lp_pool2d",
    "signal",
]

# seconds `import fastconv` took (its own modules and what they import: numpy, scipy is
# deferred); fastconv.info() prints it
_import_seconds = _time.perf_counter() - _import_t0
