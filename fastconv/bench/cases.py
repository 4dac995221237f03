"""The benchmark cases, named once: the suite and the report both read them from here."""

# name: (N, C, H, W, K, kernel, stride, pad, groups)
CONV_SHAPES = {
    "lenet1": (64, 1, 28, 28, 6, 3, 1, 0, 1),
    "lenet2": (64, 6, 13, 13, 16, 3, 1, 0, 1),
    "small_batch1": (1, 3, 224, 224, 64, 7, 2, 3, 1),
    "resnet3x3": (8, 64, 56, 56, 64, 3, 1, 1, 1),
    "deep": (8, 256, 14, 14, 256, 3, 1, 1, 1),
    "pointwise": (8, 128, 28, 28, 256, 1, 1, 0, 1),
    "depthwise": (8, 64, 56, 56, 64, 3, 1, 1, 64),
    "single_image": (1, 1, 512, 512, 1, 5, 1, 2, 1),
}
POOL_SHAPES = {"pool_small": (64, 6, 26, 26), "pool_large": (8, 64, 112, 112)}
QUICK = {"lenet1", "lenet2", "single_image", "pool_small", "seed",
         "video8"}

# dense vs sparse vs conv: name: (N, C, H, W, K, kernel, pad), or for a conv3d layer
# (N, C, D, H, W, K, kernel, pad) (layer_geometry reads both)
LAYER_CASES = {
    "seed": (64, 1, 28, 28, 6, 3, 0),
    "rgb32": (64, 3, 32, 32, 16, 3, 1),
    "deep32": (64, 16, 32, 32, 32, 3, 1),
    "video8": (8, 1, 8, 16, 16, 4, 3, 1),  # 8-frame 16x16 clips, 4 filters of 3x3x3
}


def layer_geometry(case):
    """``(N, input_shape, K, kernel, pad)`` of a LAYER_CASES tuple; ``input_shape`` is
    (C, H, W) for a conv2d layer, (C, D, H, W) for a conv3d one."""
    N, *shape, K, k, p = case
    return N, tuple(shape), K, k, p


def conv_gflop(name):
    N, C, H, W, K, k, s, p, g = CONV_SHAPES[name]
    Ho = (H + 2 * p - k) // s + 1
    Wo = (W + 2 * p - k) // s + 1
    return 2 * N * K * Ho * Wo * (C // g) * k * k / 1e9
