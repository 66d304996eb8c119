"""The reference release's FCN forward pass in numpy, from its formulas (voc-fcn*/net.py).

Independent of fcn_jax: it reads a state dict in the reference layout (``name.weight`` OIHW,
fc6/fc7 as convolutions, upsampling [in, out, kh, kw]) and a BGR mean-subtracted float input.
float64 throughout; loops over kernel taps only, so keep the width and the input small.
"""

import numpy as np

VGG16_DEPTHS = (2, 2, 3, 3, 3)


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, pad: int) -> np.ndarray:
    """Caffe Convolution: out[y, x, o] = b[o] + sum w[o, i, dy, dx] * xpad[y + dy, x + dx, i]."""
    _, cin, kh, kw = weight.shape
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    height, width = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros(x.shape[:1] + (height, width, weight.shape[0])) + bias
    for dy in range(kh):
        for dx in range(kw):
            out += x[:, dy:dy + height, dx:dx + width] @ weight[:, :, dy, dx].T
    return out


def max_pool_ceil(x: np.ndarray) -> np.ndarray:
    """Caffe Pooling (MAX, 2x2, stride 2): ceil((H - 2) / 2) + 1 outputs, windows clipped."""
    batch, height, width, channels = x.shape
    out_h, out_w = -(-(height - 2) // 2) + 1, -(-(width - 2) // 2) + 1
    padded = np.full((batch, 2 * out_h, 2 * out_w, channels), -np.inf)
    padded[:, :height, :width] = x
    return padded.reshape(batch, out_h, 2, out_w, 2, channels).max(axis=(2, 4))


def deconv(x: np.ndarray, weight: np.ndarray, stride: int) -> np.ndarray:
    """Caffe Deconvolution, no bias: out[y*s + dy, x*s + dx, o] += x[y, x, i] * w[i, o, dy, dx]."""
    batch, height, width, _ = x.shape
    _, cout, kh, kw = weight.shape
    out = np.zeros((batch, (height - 1) * stride + kh, (width - 1) * stride + kw, cout))
    for dy in range(kh):
        for dx in range(kw):
            out[:, dy:dy + (height - 1) * stride + 1:stride,
                dx:dx + (width - 1) * stride + 1:stride] += x @ weight[:, :, dy, dx]
    return out


def crop(x: np.ndarray, offset: int, height: int, width: int) -> np.ndarray:
    """Caffe Crop (axis 2): ``height`` x ``width`` starting at ``offset``."""
    return x[:, offset:offset + height, offset:offset + width]


def forward(sd: dict, data: np.ndarray, variant: str, skip_scales=(1.0, 1.0),
            caffe: bool = True) -> np.ndarray:
    """Scores [B, H, W, classes] of a float input [B, H, W, 3].

    ``caffe=True``: the release's net (voc-fcn*/net.py) on a BGR mean-subtracted input:
    conv1_1 padded by 100, a VALID fc6, skips cropped at the release's offsets to the upsampled
    scores. ``caffe=False``: fcn_jax's own layout on a normalised input: every convolution
    "SAME" (3x3 padded by 1, fc6 by 3), each 2x upsampled score map cropped from offset 1 (the
    stride-2 kernel's centre) to its skip's size, the final one from offset f/2 to the input's.
    """
    def layer(name, x, pad=0):
        return conv(x, sd[f"{name}.weight"], sd[f"{name}.bias"], pad)

    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    x, pools = data.astype(np.float64), []
    for block, depth in enumerate(VGG16_DEPTHS, start=1):
        for i in range(1, depth + 1):
            x = relu(layer(f"conv{block}_{i}", x,
                           pad=100 if caffe and (block, i) == (1, 1) else 1))
        x = max_pool_ceil(x)
        pools.append(x)
    score = layer("score_fr", relu(layer("fc7", relu(layer("fc6", x, pad=0 if caffe else 3)))))
    skips = {"fcn32s": (), "fcn16s": (("score_pool4", 3, 5),),
             "fcn8s": (("score_pool4", 3, 5), ("score_pool3", 2, 9))}[variant]
    ups = ("upscore2", "upscore_pool4")
    for (name, pool, offset), up, scale in zip(skips, ups, skip_scales):
        score = deconv(score, sd[f"{up}.weight"], 2)
        skip = layer(name, pools[pool] * scale)
        if caffe:
            score = score + crop(skip, offset, score.shape[1], score.shape[2])
        else:
            score = crop(score, 1, skip.shape[1], skip.shape[2]) + skip
    final, stride, offset = {"fcn32s": ("upscore", 32, 19), "fcn16s": ("upscore16", 16, 27),
                             "fcn8s": ("upscore8", 8, 31)}[variant]
    offset = offset if caffe else stride // 2
    return crop(deconv(score, sd[f"{final}.weight"], stride), offset, *data.shape[1:3])


def upsample_filt(size: int) -> np.ndarray:
    """The release's surgery.upsample_filt: a 2-D bilinear kernel of ``size`` x ``size``."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def random_state_dict(variant: str, seed: int, channels: tuple, fc: int, classes: int, *,
                      bilinear: bool = False, skip_gain=(1.0, 1.0)) -> dict:
    """A reference-layout FCN state dict with random (He-scaled) weights.

    ``bilinear``: the release's fixed upsampling (surgery.interp), else random kernels;
    ``skip_gain`` multiplies score_pool4 / score_pool3 (to offset at-once input scaling).
    """
    rng = np.random.default_rng(seed)
    sd, cin = {}, 3

    def add(name, cout, cin, k, gain=1.0):
        std = gain * np.sqrt(2.0 / (cin * k * k))
        sd[f"{name}.weight"] = (rng.normal(size=(cout, cin, k, k)) * std).astype(np.float32)
        sd[f"{name}.bias"] = (rng.normal(size=cout) * 0.1).astype(np.float32)

    for block, (depth, cout) in enumerate(zip(VGG16_DEPTHS, channels), start=1):
        for i in range(1, depth + 1):
            add(f"conv{block}_{i}", cout, cin, 3)
            cin = cout
    add("fc6", fc, cin, 7)
    add("fc7", fc, fc, 1)
    add("score_fr", classes, fc, 1)
    layers = {"fcn32s": (("upscore", 64),),
              "fcn16s": (("upscore2", 4), ("upscore16", 32)),
              "fcn8s": (("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16))}[variant]
    if variant != "fcn32s":
        add("score_pool4", classes, channels[3], 1, gain=skip_gain[0])
    if variant == "fcn8s":
        add("score_pool3", classes, channels[2], 1, gain=skip_gain[1])
    for name, size in layers:
        if bilinear:
            kernel = np.zeros((classes, classes, size, size))
            kernel[range(classes), range(classes)] = upsample_filt(size)
        else:
            kernel = rng.normal(size=(classes, classes, size, size)) / size
        sd[f"{name}.weight"] = kernel.astype(np.float32)
    return sd
