"""Numba kernels (nopython, parallel, cached), one module per op family.

Each public kernel here follows the contract in :mod:`fastconv.reference` and is compiled
lazily: importing this package compiles nothing; the first call of a dtype does (and, with
``cache=True``, later processes load the compiled code from Numba's cache). The convolution
kernels (``conv2d`` here, ``grad.conv2d_input`` and ``grad.conv2d_weight``) take the
algorithm :mod:`fastconv._plan` chose as their ``algo`` argument, before ``nthreads``, as the
Cython kernels do.
"""

from .conv import conv2d
from .local import locally_connected2d
from .pool import avg_pool2d, max_pool2d

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "locally_connected2d"]
