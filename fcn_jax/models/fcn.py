"""FCN-32s, FCN-16s and FCN-8s heads on the VGG16 trunk (FCN paper, sections 3.3 and 4.2).

score_fr (1x1 conv on fc7) predicts at stride 32. FCN-16s adds a 2x upsampled score_fr to
score_pool4 (1x1 conv on pool4); FCN-8s adds that sum, upsampled 2x, to score_pool3. The result
is upsampled to the input by a transposed convolution (kernel 2f, stride f, bilinear init, one
filter per class) and cropped so every input size gives logits of exactly that size; the
``decoder`` argument swaps every upsampling layer for an unpooling alternative (decoders.py).
``shift_stitch`` f > 1 refines those scores to stride s / f by shift-and-stitch (section 3.2,
ops/shift_stitch.py) before the final upsampling, which then upsamples s / f times.
Score layers start at zero. "At-once" training scales pool4 by 0.01 and pool3 by 1e-4.
With ``compute_dtype="bfloat16"`` every layer computes in bfloat16 from float32 parameters;
the logits are returned as float32, so the softmax and the loss are float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fcn_jax import inputs
from fcn_jax.models import backbones
from fcn_jax.models.decoders import make_upsampler, reads_trunk_features
from fcn_jax.models.vgg import FC6_KERNEL
from fcn_jax.ops import shift_stitch as stitching

VARIANT_STRIDES = {"fcn32s": 32, "fcn16s": 16, "fcn8s": 8}
# The reference release's name for the final upsampling layer of each variant.
FINAL_UPSAMPLING_NAMES = {"fcn32s": "upscore", "fcn16s": "upscore16", "fcn8s": "upscore8"}
# Every upsampling layer's name (the 2x layers of the skip nets and the final one).
UPSAMPLING_LAYERS = ("upscore2", "upscore_pool4", *FINAL_UPSAMPLING_NAMES.values())


def score_layer(in_channels: int, num_classes: int, trunk: nnx.Module,
                rngs: nnx.Rngs) -> nnx.Conv:
    """A zero-initialised 1x1 classifier (score_fr, score_pool4, score_pool3), computing
    with the trunk's kernels and dtype."""
    return nnx.Conv(in_channels, num_classes, (1, 1), kernel_init=nnx.initializers.zeros,
                    bias_init=nnx.initializers.zeros, dtype=trunk.dtype,
                    conv_general_dilated=trunk.kernels.conv, rngs=rngs)


class FCN(nnx.Module):
    """An FCN with skip fusion: variant "fcn32s", "fcn16s" or "fcn8s".

    ``backbone``: the trunk (models.backbones; vgg16, or alexnet / googlenet for FCN-32s).
    ``caffe_trunk`` gives the trunk the reference release's padding; models.caffe.CaffeFCN sets
    it together with the release's input convention and crops.
    """

    def __init__(self, num_classes: int, *, variant: str = "fcn8s", width: float = 1.0,
                 fc_channels: int | None = None, dropout_rate: float = 0.5,
                 decoder: str = "bilinear", skip_scales: tuple = (1.0, 1.0),
                 caffe_trunk: bool = False, fc6_kernel: int = FC6_KERNEL,
                 fast_paths: str = "auto", compute_dtype: str = "float32",
                 shift_stitch: int = 1, backbone: str = "vgg16", rngs: nnx.Rngs):
        if variant not in VARIANT_STRIDES:
            raise ValueError(f"model.variant={variant!r}: expected one of "
                             f"{sorted(VARIANT_STRIDES)}")
        stitching.check_factor(shift_stitch, VARIANT_STRIDES[variant])
        if shift_stitch > 1 and reads_trunk_features(decoder):
            raise ValueError(f"model.decoder={decoder!r} places scores at the trunk's pooling "
                             f"switches, which stitched scores do not have: use another "
                             f"decoder with model.shift_stitch={shift_stitch}")
        backbones.check(backbone, variant=variant, caffe=caffe_trunk,
                        reads_trunk_features=reads_trunk_features(decoder))
        self.backbone = backbone
        self.variant = variant
        self.shift_stitch = shift_stitch
        self.decoder = decoder
        self.num_classes = num_classes
        self.pool4_scale, self.pool3_scale = (float(s) for s in skip_scales)
        self.trunk = backbones.build_trunk(
            backbone, width=width, fc_channels=fc_channels, dropout_rate=dropout_rate,
            caffe=caffe_trunk, fc6_kernel=fc6_kernel, fast_paths=fast_paths,
            compute_dtype=compute_dtype, rngs=rngs)
        kernels = self.kernels = self.trunk.kernels
        self.score_fr = score_layer(self.trunk.head_channels, num_classes, self.trunk, rngs)
        stride = VARIANT_STRIDES[variant]
        if stride <= 16:
            self.score_pool4 = score_layer(self.trunk.pool4_channels, num_classes, self.trunk,
                                           rngs)
            self.upscore2 = make_upsampler(decoder, num_classes, 2, stride=32, kernels=kernels,
                                           dtype=self.trunk.dtype, rngs=rngs)
        if stride <= 8:
            self.score_pool3 = score_layer(self.trunk.pool3_channels, num_classes, self.trunk,
                                           rngs)
            self.upscore_pool4 = make_upsampler(decoder, num_classes, 2, stride=16,
                                                 kernels=kernels, dtype=self.trunk.dtype,
                                                 rngs=rngs)
        final_stride = stride // shift_stitch
        setattr(self, FINAL_UPSAMPLING_NAMES[variant],
                make_upsampler(decoder, num_classes, final_stride, stride=final_stride,
                               kernels=kernels, dtype=self.trunk.dtype, rngs=rngs))

    @property
    def stride(self) -> int:
        """The stride of the fused scores (32, 16 or 8), before any shift-and-stitch."""
        return VARIANT_STRIDES[self.variant]

    def __call__(self, images: jax.Array, *, dropout_keys: jax.Array | None = None) -> jax.Array:
        """uint8 (or float 0..255) NHWC images -> float32 logits [B, H, W, num_classes].

        The forward pass of every layout; ``model_input``, ``fuse`` and ``upsample_to`` are
        the hooks where the reference release's layout (models.caffe.CaffeFCN) differs.
        """
        height, width = images.shape[1:3]
        x = self.model_input(images)
        if self.shift_stitch == 1:
            score, features = self.scores(x, dropout_keys)
        else:  # the shifted copies are filled with 0, the mean colour after model_input
            keys = None
            if dropout_keys is not None:  # new masks for each copy of an example
                keys = jnp.concatenate([jax.vmap(jax.random.fold_in, (0, None))(dropout_keys, i)
                                        for i in range(self.shift_stitch ** 2)])
            score = stitching.shift_and_stitch(lambda copies: self.scores(copies, keys)[0], x,
                                               self.shift_stitch, self.stride)
            features = None
        final = getattr(self, FINAL_UPSAMPLING_NAMES[self.variant])
        return self.upsample_to(final, score, height, width, features).astype(jnp.float32)

    def scores(self, x: jax.Array, dropout_keys: jax.Array | None) -> tuple[jax.Array, dict]:
        """The fused class scores at ``stride`` of a model input, and the trunk's features."""
        features = self.trunk(x, dropout_keys=dropout_keys)
        score = self.score_fr(features[self.trunk.head_feature])
        if self.stride <= 16:
            score = self.fuse(score, self.upscore2, "score_pool4",
                              self.score_pool4(features["pool4"] * self.pool4_scale), features)
        if self.stride <= 8:
            score = self.fuse(score, self.upscore_pool4, "score_pool3",
                              self.score_pool3(features["pool3"] * self.pool3_scale), features)
        return score, features

    def model_input(self, images: jax.Array) -> jax.Array:
        """The trunk's input: RGB normalised by the ImageNet mean and std (fcn_jax/inputs.py)."""
        return inputs.normalized(images, self.trunk.dtype)

    def fuse(self, coarse: jax.Array, upsample: nnx.Module, name: str, skip: jax.Array,
             features: dict) -> jax.Array:
        """Skip fusion: 2x upsampled coarse scores plus the ``name`` scores of a finer pool."""
        return upsample(coarse, skip.shape[1], skip.shape[2], features) + skip

    def upsample_to(self, final: nnx.Module, score: jax.Array, height: int, width: int,
                    features: dict) -> jax.Array:
        """The final upsampling to the input's size, aligned with its pixels."""
        return final(score, height, width, features)


def upsampling_parameter_count(model: FCN) -> int:
    """Learned (nnx.Param) parameters of a model's upsampling layers, the decoder's cost."""
    return sum(int(np.prod(v[...].shape))
               for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
               if path[0] in UPSAMPLING_LAYERS)
