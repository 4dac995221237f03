"""Numba locally connected layer: a convolution whose filter changes with the position."""

from numba import prange

from ._common import flush_denormal, ftz_enter, ftz_exit, jit, use_threads


@jit
def _local2d(x, w, b, out, sh, sw, pt, pl, ftz):
    N, C, H, W = x.shape
    Ho, Wo, K, _, kh, kw = w.shape
    for p in prange(N * K):
        _old_csr = ftz_enter(ftz)
        n = p // K
        k = p % K
        for oh in range(Ho):
            for ow in range(Wo):
                acc = b[k, oh, ow]
                for c in range(C):
                    for i in range(kh):
                        ih = oh * sh - pt + i
                        if ih < 0 or ih >= H:
                            continue
                        for j in range(kw):
                            iw = ow * sw - pl + j
                            if iw >= 0 and iw < W:
                                acc += w[oh, ow, k, c, i, j] * x[n, c, ih, iw]
                out[n, k, oh, ow] = acc
        ftz_exit(_old_csr)
    return out


def locally_connected2d(x, w, b, out, stride, pad, nthreads):
    """Locally connected layer (contract: :func:`fastconv.reference.locally_connected2d`)."""
    use_threads(nthreads)
    _local2d(x, w, b, out, stride[0], stride[1], pad[0], pad[1], flush_denormal())
    return out
