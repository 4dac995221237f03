"""Just enough of a neural-network library to train small CNNs on fastconv's kernels.

Layers hold their parameters, compute ``forward`` and, from the gradient of the loss with
respect to their output, ``backward``: it returns the gradient with respect to their input
and adds the gradients of their parameters to ``Parameter.grad``. There is no autograd
engine: :class:`Sequential` runs the layers forward, then backward in reverse order. A layer
keeps what its backward needs from the last forward, so forward and backward alternate.

Conv and pooling layers run on :func:`fastconv.conv2d`, :func:`fastconv.max_pool2d`,
:func:`fastconv.avg_pool2d` and their gradients in :mod:`fastconv.grad`, with the layer's
``backend=``. :class:`Linear`'s matrix products run on numpy's BLAS, held to fastconv's
threads: each product gets the threads its work keeps busy (one for a small one; the grain
of :mod:`fastconv._threads`), at most :func:`fastconv.get_num_threads`. Run a training
loop inside :func:`hold_blas` (as :func:`fastconv.study.models.train` does): there a
product sets numpy's BLAS count only when it changes; outside one, each product also saves
and restores numpy's BLAS count, which costs several times more.

Parameters are float32 unless a layer is built with ``dtype=``; the data type of the
computation follows :mod:`fastconv`'s rule (float32 in, float32 out).

Initialization is deterministic: every layer with parameters takes ``rng``, a seed or a
``numpy.random.Generator``, and draws as ``torch.nn.Conv2d``/``torch.nn.Linear`` do by
default: weights and biases uniform in ``±1/sqrt(fan_in)`` (Kaiming-uniform with
``a=sqrt(5)``).

This module uses fastconv's public API, and :mod:`fastconv._threads` for numpy's BLAS.

Examples
--------
>>> import numpy as np
>>> from fastconv import nn
>>> rng = np.random.default_rng(0)
>>> model = nn.Sequential(
...     nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
...     nn.Flatten(), nn.Linear(4 * 4 * 4, 10, rng=rng))
>>> x = rng.random((2, 1, 8, 8), dtype=np.float32)
>>> y = np.array([3, 7])
>>> loss_fn = nn.CrossEntropyLoss()
>>> opt = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> logits = model(x)
>>> logits.shape, logits.dtype
((2, 10), dtype('float32'))
>>> loss = loss_fn(logits, y)
>>> opt.zero_grad()
>>> _ = model.backward(loss_fn.backward())
>>> opt.step()
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import _threads
from . import grad as _grad
from .functional import avg_pool2d, conv2d, max_pool2d

__all__ = [
    "Parameter",
    "Module",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Linear",
    "ReLU",
    "Flatten",
    "Sequential",
    "CrossEntropyLoss",
    "ConvTranspose2d",
    "MSELoss",
    "SGD",
    "Adam",
    "kaiming_uniform",
    "hold_blas",
    "AvgPool1d",
    "MaxPool3d",
]


def hold_blas():
    """Context manager for a training loop: numpy's BLAS is held to fastconv's thread count
    (:func:`fastconv.get_num_threads`) meanwhile, and each :class:`Linear` product to the
    threads its work keeps busy; numpy's BLAS gets its previous count back at the end.
    Re-entrant. The OpenBLAS count is process-wide, so other threads' numpy products see it.

    Examples
    --------
    >>> from fastconv import nn
    >>> with nn.hold_blas():
    ...     pass  # forward, backward and optimizer steps here
    """
    return _threads.hold_numpy_blas()


# --------------------------------------------------------------------------------------------
# parameters and initialization
# --------------------------------------------------------------------------------------------
class Parameter:
    """A trainable array and the gradient accumulated for it.

    Attributes
    ----------
    data : ndarray
        The value; optimizers update it in place.
    grad : ndarray
        Same shape and dtype; ``backward`` adds to it, ``zero_grad`` clears it.
    name : str
    """

    __slots__ = ("data", "grad", "name")

    def __init__(self, data, name=""):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.name = name

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={self.data.shape}, dtype={self.data.dtype})"


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")  # torch.nn.Conv2d's


def _rng(rng):
    """A Generator from a seed, a Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _dtype(dtype):
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dt}")
    return dt


def kaiming_uniform(shape, fan_in, rng=None, *, a=math.sqrt(5), dtype=np.float32):
    """Uniform draws in ``±gain * sqrt(3 / fan_in)``, ``gain = sqrt(2 / (1 + a**2))``.

    With the default ``a = sqrt(5)`` the bound is ``1 / sqrt(fan_in)``, as the default
    initialization of ``torch.nn.Conv2d`` and ``torch.nn.Linear``; ``a=0`` gives He-uniform.

    Examples
    --------
    >>> from fastconv.nn import kaiming_uniform
    >>> w = kaiming_uniform((3, 4), fan_in=4, rng=0)
    >>> w.dtype, bool(abs(w).max() <= 0.5)
    (dtype('float32'), True)
    """
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, got {fan_in}")
    gain = math.sqrt(2.0 / (1.0 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in)
    return _rng(rng).uniform(-bound, bound, size=shape).astype(_dtype(dtype))


def _pos_int(v, name):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def _pair(v, name):
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = (v, v)
    v = tuple(v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(_pos_int(e, name) for e in v)


# --------------------------------------------------------------------------------------------
# modules
# --------------------------------------------------------------------------------------------
class Module:
    """The layer protocol: ``forward(x)``, ``backward(grad_out) -> grad_in``, ``parameters()``.

    Calling a module calls ``forward``. ``backward`` needs the inputs of the latest
    ``forward``; calling it without one raises a RuntimeError.
    """

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def parameters(self) -> list:
        """The layer's :class:`Parameter` objects, in a fixed order."""
        return [v for v in vars(self).values() if isinstance(v, Parameter)]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad[...] = 0

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def _saved(self, name):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return value

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class _ConvLayer(Module):
    """What the conv layers share: channel checks, initial parameters, and forward/backward
    on the functional ``_forward`` and the gradients ``_grad_input``, ``_grad_weight`` and
    ``_grad_bias`` (class attributes), called with ``_geometry_args()``."""

    _forward = _grad_input = _grad_weight = _grad_bias = None  # set by the subclasses

    def _init_channels(self, in_channels, out_channels, groups):
        self.in_channels = _pos_int(in_channels, "in_channels")
        self.out_channels = _pos_int(out_channels, "out_channels")
        self.groups = _pos_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )

    def _init_parameters(self, shape, bias, rng, dtype):
        """Kaiming-uniform ``weight`` of ``shape`` (fan-in: its dimensions after the first)
        and, with ``bias``, a bias uniform in ``±1/sqrt(fan_in)``, as torch draws them."""
        dtype = _dtype(dtype)
        rng = _rng(rng)
        fan_in = int(np.prod(shape[1:]))
        self.weight = Parameter(kaiming_uniform(shape, fan_in, rng, dtype=dtype), "weight")
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(fan_in)
            self.bias = Parameter(rng.uniform(-bound, bound, self.out_channels).astype(dtype),
                                  "bias")
        self._x = None  # the geometry is checked by the functional at the first call

    def forward(self, x):
        self._x = x
        return type(self)._forward(x, self.weight.data,
                                   None if self.bias is None else self.bias.data,
                                   **self._geometry_args())

    def backward(self, grad_out):
        self._backward_params(grad_out)
        x = self._saved("_x")
        return type(self)._grad_input(np.shape(x), self.weight.data, grad_out,
                                      **self._geometry_args())

    def _backward_params(self, grad_out):
        """The parameters' gradients of :meth:`backward`, without the input's."""
        x = self._saved("_x")
        cls = type(self)
        self.weight.grad += cls._grad_weight(x, self.weight.shape, grad_out,
                                             **self._geometry_args())
        if self.bias is not None:
            self.bias.grad += cls._grad_bias(grad_out)


class Conv2d(_ConvLayer):
    """2-D convolution layer, as ``torch.nn.Conv2d`` (cross-correlation, NCHW).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or pair of ints
    padding : int, pair of ints, 'valid' or 'same'
    groups : int, default 1
    bias : bool, default True
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}, default 'zeros'
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights (see :func:`kaiming_uniform`).
    dtype : dtype, default float32
    backend : str, optional
        For :func:`fastconv.conv2d` and the :mod:`fastconv.grad` functions.

    Attributes
    ----------
    weight : Parameter
        (out_channels, in_channels // groups, kh, kw).
    bias : Parameter or None
        (out_channels,).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, rng=None,
                 dtype=np.float32, backend=None):
        self._init_channels(in_channels, out_channels, groups)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.backend = backend
        self._init_parameters(
            (self.out_channels, self.in_channels // self.groups) + self.kernel_size,
            bias, rng, dtype)

    _forward = staticmethod(conv2d)
    _grad_input = staticmethod(_grad.conv2d_input)
    _grad_weight = staticmethod(_grad.conv2d_weight)
    _grad_bias = staticmethod(_grad.conv2d_bias)

    def _geometry_args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, padding_mode=self.padding_mode, backend=self.backend)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding!r}")
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode!r}"
        return s


class _MaxPoolNd(Module):
    """What the max-pool layers share: forward on ``_pool`` (with indices), backward on
    ``_pool_grad`` (class attributes); ``stride=None`` stays None unless
    ``_stride_defaults_to_kernel``."""

    _pool = _pool_grad = None  # set by the subclasses
    _stride_defaults_to_kernel = False

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                 backend=None):
        self.kernel_size = kernel_size
        if stride is None and self._stride_defaults_to_kernel:
            stride = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.ceil_mode = ceil_mode
        self.backend = backend
        self._shape = self._indices = None

    def forward(self, x):
        y, self._indices = type(self)._pool(x, self.kernel_size, self.stride, self.padding,
                                            self.dilation, self.ceil_mode,
                                            return_indices=True, backend=self.backend)
        self._shape = np.shape(x)
        return y

    def backward(self, grad_out):
        return type(self)._pool_grad(grad_out, self._saved("_indices"),
                                     self._saved("_shape"), backend=self.backend)


class _AvgPoolNd(Module):
    """What the average-pool layers share: forward on ``_pool``, backward on ``_pool_grad``
    (class attributes); ``_arg`` converts kernel_size, stride and padding as they are kept
    (``stride=None`` stays None unless ``_stride_defaults_to_kernel``)."""

    _pool = _pool_grad = None  # set by the subclasses
    _stride_defaults_to_kernel = False

    @staticmethod
    def _arg(v):
        return v

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, *, backend=None):
        if stride is None and self._stride_defaults_to_kernel:
            stride = kernel_size
        self.kernel_size = self._arg(kernel_size)
        self.stride = self._arg(stride)
        self.padding = self._arg(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.backend = backend
        self._shape = None

    def forward(self, x):
        self._shape = np.shape(x)
        return type(self)._pool(x, self.kernel_size, self.stride, self.padding,
                                self.ceil_mode, self.count_include_pad, backend=self.backend)

    def backward(self, grad_out):
        return type(self)._pool_grad(grad_out, self._saved("_shape"), self.kernel_size,
                                     self.stride, self.padding, self.ceil_mode,
                                     self.count_include_pad, backend=self.backend)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling, as ``torch.nn.MaxPool2d``; backward routes each gradient to the
    position of its maximum (ties: the first)."""

    _pool = staticmethod(max_pool2d)
    _pool_grad = staticmethod(_grad.max_pool2d)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling, as ``torch.nn.AvgPool2d``."""

    _pool = staticmethod(avg_pool2d)
    _pool_grad = staticmethod(_grad.avg_pool2d)


class Linear(Module):
    """``y = x @ weight.T + bias`` over (N, in_features) inputs, as ``torch.nn.Linear``.

    A matrix product, so it takes no ``backend=``: numpy's BLAS computes it, on
    ``threads_for(2 * N * in_features * out_features)`` threads (see the module docstring).
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        self.in_features = _pos_int(in_features, "in_features")
        self.out_features = _pos_int(out_features, "out_features")
        dtype = _dtype(dtype)
        rng = _rng(rng)
        self.weight = Parameter(
            kaiming_uniform((self.out_features, self.in_features), self.in_features, rng,
                            dtype=dtype), "weight")
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(self.in_features)
            self.bias = Parameter(rng.uniform(-bound, bound, self.out_features).astype(dtype),
                                  "bias")
        self._x = None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) needs input of shape "
                f"(N, {self.in_features}), got {x.shape}"
            )
        self._x = x
        with _threads.numpy_blas_for(2 * x.shape[0] * self.in_features * self.out_features):
            y = x @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward(self, grad_out):
        self._backward_params(grad_out)
        x = self._saved("_x")
        with _threads.numpy_blas_for(2 * x.shape[0] * self.in_features * self.out_features):
            return grad_out @ self.weight.data

    def _backward_params(self, grad_out):
        """The parameters' gradients of :meth:`backward`, without the input's."""
        x = self._saved("_x")
        with _threads.numpy_blas_for(2 * x.shape[0] * self.in_features * self.out_features):
            self.weight.grad += grad_out.T @ x
        if self.bias is not None:
            self.bias.grad += grad_out.sum(axis=0)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    """``max(x, 0)``; the gradient passes where the output is not at or below 0, as torch's
    (a NaN output passes it).

    NaN passes through forward, as in torch. Forward takes the maximum with an array of
    zeros the layer keeps (the input's shape and dtype): numpy 2.4 runs ``np.maximum``
    against a scalar about 4x slower than against an array (49 against 13 us on a
    32x32x8x8 float32 batch, AMD EPYC Zen 2). Backward multiplies by the 0/1 mask (numpy's
    masked selection is several times slower), unless ``grad_out`` holds an inf or NaN,
    which must give 0, not NaN, where the mask is 0.
    """

    def __init__(self):
        self._mask = None
        self._zeros = None

    def forward(self, x):
        x = np.asarray(x)
        z = self._zeros
        if z is None or z.shape != x.shape or z.dtype != x.dtype:
            z = self._zeros = np.zeros(x.shape, x.dtype)
        y = np.maximum(x, z)
        self._mask = ~(y <= 0)  # torch passes the gradient at NaN too
        return y

    def backward(self, grad_out):
        mask = self._saved("_mask")
        grad_out = np.asarray(grad_out)
        if np.isfinite(grad_out).all():
            return grad_out * mask
        return np.where(mask, grad_out, grad_out.dtype.type(0))  # 0, not inf * 0 = NaN


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...)."""

    def __init__(self):
        self._shape = None

    def forward(self, x):
        x = np.asarray(x)
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        return grad_out.reshape(self._saved("_shape"))


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse.

    Indexing, ``len`` and iteration give the layers.
    """

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layer {i} is not a fastconv.nn.Module: {layer!r}")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out, input_grad=True):
        """The layers' backward in reverse order; returns the gradient with respect to the
        input of the latest ``forward``.

        With ``input_grad=False`` that gradient is not computed (as torch skips it for an
        input that does not require grad, a training batch): the layers before the first
        one with parameters are skipped, that one computes its parameters' gradients only
        (a conv or linear layer; another layer runs its whole backward), and the call
        returns None.
        """
        first = 0
        if not input_grad:
            first = next((i for i, layer in enumerate(self.layers) if layer.parameters()),
                         len(self.layers))
        for i in range(len(self.layers) - 1, first - 1, -1):
            layer = self.layers[i]
            if i == first and not input_grad and hasattr(layer, "_backward_params"):
                layer._backward_params(grad_out)
                return None
            grad_out = layer.backward(grad_out)
        return grad_out if input_grad else None

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        body = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential({body}\n)"


# --------------------------------------------------------------------------------------------
# loss
# --------------------------------------------------------------------------------------------
class CrossEntropyLoss:
    """Softmax cross-entropy, averaged over the batch, as ``torch.nn.CrossEntropyLoss``.

    ``loss(logits, targets)`` returns the mean loss as a Python float; ``backward()`` returns
    its gradient with respect to the logits, ``(softmax(logits) - onehot(targets)) / N``, in
    the logits' dtype.
    """

    def __init__(self):
        self._probs = self._targets = None

    def __call__(self, logits, targets):
        return self.forward(logits, targets)

    def forward(self, logits, targets):
        logits = np.asarray(logits)
        targets = np.asarray(targets)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (N, classes), got {logits.shape}")
        if targets.shape != (logits.shape[0],) or targets.dtype.kind not in "iu":
            raise ValueError(
                f"targets must be {logits.shape[0]} integer class labels, got shape "
                f"{targets.shape} and dtype {targets.dtype}"
            )
        if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
            raise ValueError(f"targets must lie in [0, {logits.shape[1]})")
        shifted = logits - logits.max(axis=1, keepdims=True)  # exp cannot overflow
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_z
        self._probs = np.exp(log_p)
        self._targets = targets
        return float(-log_p[np.arange(len(targets)), targets].mean())

    def backward(self):
        if self._probs is None:
            raise RuntimeError("CrossEntropyLoss.backward called before forward")
        g = self._probs.copy()
        g[np.arange(len(self._targets)), self._targets] -= 1
        g /= len(self._targets)
        return g


# --------------------------------------------------------------------------------------------
# optimizers
# --------------------------------------------------------------------------------------------
class _Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got no parameters")
        for p in self.params:
            if not isinstance(p, Parameter):
                raise TypeError(f"expected fastconv.nn.Parameter objects, got {p!r}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.lr = float(lr)

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``:
    ``v = momentum * v + g``, ``p -= lr * v`` (``g`` includes ``weight_decay * p``)."""

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self._velocity = [None] * len(self.params)

    def step(self):
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                v = self._velocity[i]
                if v is None:
                    v = self._velocity[i] = g.copy()
                else:
                    v *= self.momentum
                    v += g
                g = v
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(_Optimizer):
    """Adam, as ``torch.optim.Adam`` (bias-corrected moments, L2 ``weight_decay``).

    The parameters of one dtype keep their moments in one flat array each, and a step runs
    its numpy operations once over all of them (their gradients gathered into one array,
    the update scattered back), not once per parameter: on a small model each operation
    costs about its call (a step of the study's global-average-pooling net took 14
    operations on each of its 10 parameters). Each element's operations are the same."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.weight_decay = float(weight_decay)
        self.t = 0
        # (the parameters of one dtype, their first and second moments, flat)
        self._groups = []
        for dt in dict.fromkeys(p.data.dtype for p in self.params):
            ps = [p for p in self.params if p.data.dtype == dt]
            n = sum(p.size for p in ps)
            self._groups.append((ps, np.zeros(n, dt), np.zeros(n, dt)))

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1 ** self.t
        c2 = 1 - b2 ** self.t
        for ps, m, v in self._groups:
            g = np.concatenate([p.grad.ravel() for p in ps])
            if self.weight_decay:
                g = g + self.weight_decay * np.concatenate([p.data.ravel() for p in ps])
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v / c2) + self.eps
            update = ((self.lr / c1) * m / denom).astype(m.dtype, copy=False)
            at = 0
            for p in ps:
                p.data -= update[at:at + p.size].reshape(p.data.shape)
                at += p.size


# ---- transpose (issue 17) ----
from .functional import conv_transpose2d as _conv_transpose2d  # noqa: E402


class ConvTranspose2d(_ConvLayer):
    """2-D transposed convolution layer, as ``torch.nn.ConvTranspose2d`` (zero padding).

    Runs on :func:`fastconv.conv_transpose2d` and, backward, on
    :func:`fastconv.grad.conv_transpose2d_input`, ``_weight`` and ``_bias``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size, stride, dilation : int or pair of ints
    padding, output_padding : int or pair of ints
    groups : int, default 1
    bias : bool, default True
    rng : int or numpy.random.Generator, optional
        Seed or generator for the initial weights: Kaiming-uniform as torch's, whose fan-in
        for a transposed weight (in_channels, out_channels // groups, kh, kw) is
        ``(out_channels // groups) * kh * kw`` (its dimension 1 times the kernel size); the
        bias uniform in ``±1/sqrt(fan_in)``.
    dtype : dtype, default float32
    backend : str, optional

    Attributes
    ----------
    weight : Parameter
        (in_channels, out_channels // groups, kh, kw).
    bias : Parameter or None
        (out_channels,).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> up = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, rng=0)
    >>> up
    ConvTranspose2d(4, 2, kernel_size=(4, 4), stride=2, padding=1)
    >>> up(np.zeros((1, 4, 5, 5), np.float32)).shape
    (1, 2, 10, 10)
    >>> up(np.zeros((1, 4, 5, 5), np.float32), output_size=(11, 11)).shape
    (1, 2, 11, 11)

    ``forward(x, output_size=None)``: as torch, ``output_size`` (the spatial size, optionally
    after N and C) picks among the sizes a stride above 1 leaves ambiguous; it sets the
    call's output padding (``output_size`` minus the smallest size, below the stride), which
    the backward pass then uses. Without it the layer's ``output_padding`` applies.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros", *,
                 rng=None, dtype=np.float32, backend=None):
        self._init_channels(in_channels, out_channels, groups)
        if padding_mode != "zeros":  # torch: "Only "zeros" padding mode is supported"
            raise ValueError(
                f"padding_mode must be 'zeros' for ConvTranspose2d (as in torch), got "
                f"{padding_mode!r}"
            )
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = stride
        self.padding = padding
        self.output_padding = output_padding
        self.dilation = dilation
        self.padding_mode = padding_mode
        self.backend = backend
        # the fan-in: dimensions 1 on (torch's _calculate_fan_in_and_fan_out)
        self._init_parameters(
            (self.in_channels, self.out_channels // self.groups) + self.kernel_size,
            bias, rng, dtype)

    _forward = staticmethod(_conv_transpose2d)
    _grad_input = staticmethod(_grad.conv_transpose2d_input)
    _grad_weight = staticmethod(_grad.conv_transpose2d_weight)
    _grad_bias = staticmethod(_grad.conv_transpose2d_bias)
    _call_output_padding = None  # set by forward(x, output_size=...) for that call

    def forward(self, x, output_size=None):
        self._call_output_padding = (None if output_size is None
                                     else self._output_padding(np.shape(x), output_size))
        return super().forward(x)

    def _output_padding(self, x_shape, output_size):
        """The output padding that makes the output ``output_size`` (torch's rule), or a
        ValueError naming the sizes the layer can produce."""
        try:
            size = tuple(operator.index(v) for v in output_size)
        except TypeError:
            raise TypeError(f"output_size must be a sequence of ints, got {output_size!r}")
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2 or len(x_shape) not in (3, 4):
            raise ValueError(
                f"output_size must hold 2 or 4 ints for an input of 3 or 4 dimensions, got "
                f"{output_size!r} for an input of shape {tuple(x_shape)}"
            )
        pairs = [(v, v) if isinstance(v, (int, np.integer)) else tuple(v)
                 for v in (self.stride, self.padding, self.dilation)]
        lo = [(n - 1) * st - 2 * p + d * (k - 1) + 1 for n, st, p, d, k in
              zip(x_shape[-2:], pairs[0], pairs[1], pairs[2], self.kernel_size)]
        hi = [m + st - 1 for m, st in zip(lo, pairs[0])]
        if any(not m <= v <= h for v, m, h in zip(size, lo, hi)):
            raise ValueError(
                f"output_size {size} is not one this layer can produce for an input of "
                f"spatial size {tuple(x_shape[-2:])}: valid sizes range from {tuple(lo)} to "
                f"{tuple(hi)}"
            )
        return tuple(v - m for v, m in zip(size, lo))

    def _geometry_args(self):
        op = self._call_output_padding
        return dict(stride=self.stride, padding=self.padding,
                    output_padding=self.output_padding if op is None else op,
                    groups=self.groups, dilation=self.dilation, backend=self.backend)

    def extra_repr(self):
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding!r}")
        if self.output_padding != 0:
            s += f", output_padding={self.output_padding}"
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MSELoss:
    """Mean squared error, as ``torch.nn.MSELoss()`` (``reduction='mean'``).

    ``loss(input, target)`` returns the mean of ``(input - target) ** 2`` over every element
    as a Python float; ``backward()`` returns its gradient with respect to ``input``,
    ``2 * (input - target) / input.size``, in ``input``'s dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> loss = nn.MSELoss()
    >>> loss(np.array([1., 2.]), np.array([0., 0.]))
    2.5
    >>> loss.backward()
    array([1., 2.])
    """

    def __init__(self):
        self._diff = None

    def __call__(self, input, target):
        return self.forward(input, target)

    def forward(self, input, target):
        input = np.asarray(input)
        target = np.asarray(target)
        if input.shape != target.shape:
            raise ValueError(
                f"target must have the shape of input {input.shape}, got {target.shape}"
            )
        if input.size == 0:
            raise ValueError("input must not be empty")
        self._diff = input - target.astype(input.dtype, copy=False)
        return float(np.mean(np.square(self._diff)))

    def backward(self):
        if self._diff is None:
            raise RuntimeError("MSELoss.backward called before forward")
        return (self._diff * (2.0 / self._diff.size)).astype(self._diff.dtype, copy=False)


# ---- pool3d (issue 17) ----
from .functional import avg_pool1d, max_pool3d  # noqa: E402


def _single(v):
    """torch's ``_single``: a tuple or list as a tuple, anything else as a 1-tuple."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


class MaxPool3d(_MaxPoolNd):
    """3-D max pooling, as ``torch.nn.MaxPool3d``; backward routes each gradient to the
    position of its maximum (ties: the first in (d, h, w) order).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> pool = nn.MaxPool3d(2)
    >>> pool
    MaxPool3d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 2, 2, 4)
    >>> pool(x)
    array([[[[[13., 15.]]]]], dtype=float32)
    >>> pool.backward(np.ones((1, 1, 1, 1, 2), np.float32))[0, 0, 1]
    array([[0., 0., 0., 0.],
           [0., 1., 0., 1.]], dtype=float32)
    """

    _pool = staticmethod(max_pool3d)
    _pool_grad = staticmethod(_grad.max_pool3d)
    _stride_defaults_to_kernel = True

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, "
                f"ceil_mode={self.ceil_mode}")


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling, as ``torch.nn.AvgPool1d`` (its arguments kept as 1-tuples, as
    torch's are).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> pool = nn.AvgPool1d(2)
    >>> pool
    AvgPool1d(kernel_size=(2,), stride=(2,), padding=(0,))
    >>> pool(np.array([[[1., 3., 2., 6.]]]))
    array([[[2., 4.]]])
    >>> pool.backward(np.ones((1, 1, 2)))
    array([[[0.5, 0.5, 0.5, 0.5]]])
    """

    _pool = staticmethod(avg_pool1d)
    _pool_grad = staticmethod(_grad.avg_pool1d)
    _stride_defaults_to_kernel = True
    _arg = staticmethod(_single)


# --------------------------------------------------------------------------------------------
# adaptive pools (issue 17)
# --------------------------------------------------------------------------------------------
from .functional import adaptive_avg_pool2d as _adaptive_avg_pool2d  # noqa: E402

__all__ += ["AdaptiveAvgPool2d"]


class AdaptiveAvgPool2d(Module):
    """2-D adaptive average pooling to ``output_size``, as ``torch.nn.AdaptiveAvgPool2d``
    (an int, or a pair whose None entries keep the input's size); backward spreads each
    output's gradient evenly over its window (:func:`fastconv.grad.adaptive_avg_pool2d`).

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> pool = nn.AdaptiveAvgPool2d((1, None))
    >>> pool
    AdaptiveAvgPool2d(output_size=(1, None))
    >>> pool(np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3))
    array([[[[1.5, 2.5, 3.5]]]], dtype=float32)
    >>> pool.backward(np.ones((1, 1, 1, 3), np.float32))
    array([[[[0.5, 0.5, 0.5],
             [0.5, 0.5, 0.5]]]], dtype=float32)
    """

    def __init__(self, output_size, *, backend=None):
        self.output_size = output_size
        self.backend = backend
        self._shape = None

    def forward(self, x):
        y = _adaptive_avg_pool2d(x, self.output_size, backend=self.backend)
        self._shape = np.shape(x)
        return y

    def backward(self, grad_out):
        return _grad.adaptive_avg_pool2d(grad_out, self._saved("_shape"), backend=self.backend)

    def extra_repr(self):
        return f"output_size={self.output_size}"


# --------------------------------------------------------------------------------------------
# ---- conv3d (issue 17): Conv1d and Conv3d ----
# --------------------------------------------------------------------------------------------
__all__ += [
    "Conv1d",
    "Conv3d",
]


def _ntuple(v, n, name, minimum=1):
    """An int or a length-``n`` sequence of ints, each >= ``minimum``, as an n-tuple."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = (v,) * n
    try:
        v = tuple(v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {v!r}") from None
    if len(v) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {v!r}")
    for e in v:
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            raise TypeError(f"{name} must hold ints, got {v!r}")
        if e < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {v!r}")
    return tuple(int(e) for e in v)


class _ConvNd(Conv2d):
    """Conv1d and Conv3d: :class:`Conv2d` with ``_nd`` spatial axes, on
    :func:`fastconv.conv1d` / :func:`fastconv.conv3d` and their gradients. Stride, padding
    and dilation are kept as torch keeps them (tuples; a padding string as given), and the
    repr is torch's."""

    _nd = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", *, rng=None,
                 dtype=np.float32, backend=None):
        n = self._nd
        self._init_channels(in_channels, out_channels, groups)
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size")
        self.stride = _ntuple(stride, n, "stride")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a tuple of "
                                 f"{n} ints, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1 (as in PyTorch)")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n, "padding", 0)
        self.dilation = _ntuple(dilation, n, "dilation")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.backend = backend
        self._init_parameters(
            (self.out_channels, self.in_channels // self.groups) + self.kernel_size,
            bias, rng, dtype)

    def extra_repr(self):
        """torch's ``_ConvNd.extra_repr``."""
        n = self._nd
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """1-D convolution layer, as ``torch.nn.Conv1d`` (cross-correlation, (N, C, L)), on
    :func:`fastconv.conv1d` and ``fastconv.grad.conv1d_*``.

    Parameters and attributes as :class:`Conv2d`, with one spatial axis: ``weight`` is
    (out_channels, in_channels // groups, kernel_size). ``kernel_size``, ``stride``,
    ``padding`` and ``dilation`` are kept as 1-tuples (a padding string as given), and the
    repr is torch's.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> layer = nn.Conv1d(2, 4, 3, padding=1, rng=0)
    >>> layer
    Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=(1,))
    >>> layer(np.ones((1, 2, 8), np.float32)).shape
    (1, 4, 8)
    """

    _nd = 1


class Conv3d(_ConvNd):
    """3-D convolution layer, as ``torch.nn.Conv3d`` (cross-correlation, (N, C, D, H, W)),
    on :func:`fastconv.conv3d` and ``fastconv.grad.conv3d_*``.

    Parameters and attributes as :class:`Conv2d`, with three spatial axes: ``weight`` is
    (out_channels, in_channels // groups, kD, kH, kW). ``kernel_size``, ``stride``,
    ``padding`` and ``dilation`` are kept as 3-tuples (a padding string as given), and the
    repr is torch's.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> layer = nn.Conv3d(1, 2, 3, padding=1, rng=0)
    >>> layer
    Conv3d(1, 2, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))
    >>> y = layer(np.ones((1, 1, 4, 4, 4), np.float32))
    >>> y.shape
    (1, 2, 4, 4, 4)
    >>> layer.backward(np.ones_like(y)).shape
    (1, 1, 4, 4, 4)
    """

    _nd = 3


def _bind_conv_layers():
    from .functional import conv1d, conv3d
    Conv1d._forward = staticmethod(conv1d)
    Conv1d._grad_input = staticmethod(_grad.conv1d_input)
    Conv1d._grad_weight = staticmethod(_grad.conv1d_weight)
    Conv1d._grad_bias = staticmethod(_grad.conv1d_bias)
    Conv3d._forward = staticmethod(conv3d)
    Conv3d._grad_input = staticmethod(_grad.conv3d_input)
    Conv3d._grad_weight = staticmethod(_grad.conv3d_weight)
    Conv3d._grad_bias = staticmethod(_grad.conv3d_bias)


_bind_conv_layers()


# --------------------------------------------------------------------------------------------
# ---- study (issue 21): BlurPool2d ----
# --------------------------------------------------------------------------------------------
__all__ += [
    "BlurPool2d",
]

_BINOMIAL_3 = np.array([1.0, 2.0, 1.0])


class BlurPool2d(Module):
    """Anti-aliased max pooling (Zhang, 2019, "Making convolutional networks shift-invariant
    again"): max pooling and a fixed binomial low-pass filter.

    The filter blurs each channel by ``[1, 2, 1] x [1, 2, 1] / 16`` (zero padding 1) as one
    depthwise :func:`fastconv.conv2d` (``groups=C``). By default (``blur_first=True``) the
    layer blurs, then max-pools as :func:`fastconv.max_pool2d` with ``kernel_size``,
    ``stride`` and ``padding``: a drop-in for :class:`MaxPool2d` with the same output size.
    With ``blur_first=False`` it is Zhang's MaxBlurPool: max pooling with ``kernel_size`` and
    ``padding`` at stride 1 (dense), then the blur subsamples with ``stride`` (default
    ``kernel_size``), so nothing is subsampled before it is low-pass filtered. The layer has
    no parameters. Backward is the composition's, through :func:`fastconv.grad.max_pool2d`
    and :func:`fastconv.grad.conv2d_input`.

    Parameters
    ----------
    kernel_size, stride, padding : as :class:`MaxPool2d` (``stride=None``: the kernel size)
    blur_first : bool, default True
        Blur, then max-pool (True); or max-pool densely, then blur with the stride (False).
    backend : str, optional
        For the conv, pooling and gradient calls.

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv import nn
    >>> pool = nn.BlurPool2d(2)
    >>> pool
    BlurPool2d(kernel_size=2, stride=None, padding=0)
    >>> x = np.zeros((1, 1, 4, 4), np.float32)
    >>> x[0, 0, 1, 1] = 16
    >>> pool(x)
    array([[[[4., 2.],
             [2., 1.]]]], dtype=float32)
    >>> pool.backward(np.ones((1, 1, 2, 2), np.float32)).shape
    (1, 1, 4, 4)
    >>> nn.BlurPool2d(2, blur_first=False)(x)
    array([[[[9., 3.],
             [3., 1.]]]], dtype=float32)
    """

    def __init__(self, kernel_size=2, stride=None, padding=0, *, blur_first=True,
                 backend=None):
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.blur_first = bool(blur_first)
        self.backend = backend
        self._x_shape = self._mid_shape = self._indices = self._weight = None

    @staticmethod
    def blur_weight(channels, dtype=np.float32):
        """The (channels, 1, 3, 3) depthwise binomial filter, summing to 1 per channel."""
        k = np.outer(_BINOMIAL_3, _BINOMIAL_3) / 16.0
        return np.ascontiguousarray(np.broadcast_to(k, (channels, 1, 3, 3))).astype(dtype)

    def _blur_stride(self):
        if self.blur_first:
            return 1
        return self.kernel_size if self.stride is None else self.stride

    def forward(self, x):
        shape = np.shape(x)
        if len(shape) not in (3, 4):
            raise ValueError(f"input must be (N, C, H, W) or (C, H, W), got shape {shape}")
        channels = shape[-3]
        x = np.asarray(x)
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        w = self.blur_weight(channels, dtype)
        if self.blur_first:
            mid = conv2d(x, w, None, 1, 1, 1, channels, backend=self.backend)
            y, self._indices = max_pool2d(mid, self.kernel_size, self.stride, self.padding,
                                          return_indices=True, backend=self.backend)
        else:
            mid, self._indices = max_pool2d(x, self.kernel_size, 1, self.padding,
                                            return_indices=True, backend=self.backend)
            y = conv2d(mid, w, None, self._blur_stride(), 1, 1, channels, backend=self.backend)
        self._x_shape, self._mid_shape, self._weight = shape, mid.shape, w
        return y

    def backward(self, grad_out):
        idx, w = self._saved("_indices"), self._saved("_weight")
        if self.blur_first:
            g = _grad.max_pool2d(grad_out, idx, self._saved("_mid_shape"), backend=self.backend)
            return _grad.conv2d_input(self._saved("_x_shape"), w, g, 1, 1, 1, w.shape[0],
                                      backend=self.backend)
        g = _grad.conv2d_input(self._saved("_mid_shape"), w, grad_out, self._blur_stride(), 1,
                               1, w.shape[0], backend=self.backend)
        return _grad.max_pool2d(g, idx, self._saved("_x_shape"), backend=self.backend)

    def extra_repr(self):
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return s if self.blur_first else s + ", blur_first=False"
