"""XLA's buffer total of one FCN-8s train step: our net with each kernel set beside plain Flax.

    .venv/bin/python -m benchmarks.step_memory            # Caffe layout, batch 20, 500x500
    .venv/bin/python -m benchmarks.step_memory --tiny     # seconds: checks the script

Compiles (never runs) the same SGD step -- pixel cross-entropy with ignore label, gradients,
momentum update -- for the reference release's FCN-8s (``model.caffe=True``) with
``model.fast_paths=auto`` (the CPU fast kernels here), ``off`` (the plain XLA formulation that
GPU and TPU run) and ``PlainFlaxFCN8s``: the same layers written with nothing but
``nnx.Conv``, ``nnx.max_pool`` and ``nnx.ConvTranspose``, the memory a user would expect.
Prints XLA's memory analysis: the buffer total (arguments + outputs + temporaries, less
aliased inputs) and the temporaries alone.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from fcn_jax import backends, losses
from fcn_jax.inputs import caffe_input
from fcn_jax.models.caffe import OUTPUT_CROP_OFFSETS, SKIP_CROP_OFFSETS, CaffeFCN
from fcn_jax.models.layers import scaled
from fcn_jax.models.vgg import CAFFE_CONV1_1_PADDING, FC_CHANNELS, VGG16_BLOCKS
from fcn_jax.ops.upsample import bilinear_kernel
from benchmarks.fcn_vs_torch import NUM_CLASSES, xla_buffer_bytes

FULL = {"width": 1.0, "size": 500, "batch": 20}
TINY = {"width": 0.0625, "size": 64, "batch": 2}


class PlainFlaxFCN8s(nnx.Module):
    """The Caffe-layout FCN-8s in plain Flax layers (no custom kernels, no custom gradients)."""

    def __init__(self, num_classes: int, width: float, rngs: nnx.Rngs):
        self.convs = nnx.List()
        in_ch = 3
        for _, depth, channels in VGG16_BLOCKS:
            for _ in range(depth):
                padding = CAFFE_CONV1_1_PADDING if not self.convs else "SAME"
                self.convs.append(nnx.Conv(in_ch, scaled(channels, width), (3, 3),
                                           padding=padding, rngs=rngs))
                in_ch = scaled(channels, width)
        fc = scaled(FC_CHANNELS, width)
        self.fc6 = nnx.Conv(in_ch, fc, (7, 7), padding="VALID", rngs=rngs)
        self.fc7 = nnx.Conv(fc, fc, (1, 1), rngs=rngs)
        self.dropout = nnx.Dropout(0.5)
        self.score_fr = nnx.Conv(fc, num_classes, (1, 1), rngs=rngs)
        self.score_pool4 = nnx.Conv(scaled(512, width), num_classes, (1, 1), rngs=rngs)
        self.score_pool3 = nnx.Conv(scaled(256, width), num_classes, (1, 1), rngs=rngs)

        def upsampler(factor: int) -> nnx.ConvTranspose:
            return nnx.ConvTranspose(num_classes, num_classes, (2 * factor, 2 * factor),
                                     strides=(factor, factor), padding="VALID", use_bias=False,
                                     kernel_init=lambda *_: jnp.asarray(
                                         bilinear_kernel(factor, num_classes)), rngs=rngs)
        self.upscore2, self.upscore_pool4, self.upscore8 = (upsampler(f) for f in (2, 2, 8))

    def __call__(self, images: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        """Logits; dropout (training) where ``dropout_key`` is given."""
        height, width = images.shape[1:3]
        dropout = functools.partial(self.dropout, deterministic=dropout_key is None,
                                    rngs=None if dropout_key is None else
                                    nnx.Rngs(dropout=dropout_key))
        x = caffe_input(images)
        pools, index = [], 0
        for _, depth, _ in VGG16_BLOCKS:
            for _ in range(depth):
                x = jax.nn.relu(self.convs[index](x))
                index += 1
            x = nnx.max_pool(x, (2, 2), (2, 2), padding="SAME")  # ceil mode
            pools.append(x)
        x = dropout(jax.nn.relu(self.fc6(x)))
        x = dropout(jax.nn.relu(self.fc7(x)))
        score = self.upscore2(self.score_fr(x))
        for pool, layer, name in ((pools[3], self.score_pool4, "score_pool4"),
                                  (pools[2], self.score_pool3, "score_pool3")):
            skip = layer(pool)
            offset = SKIP_CROP_OFFSETS[name]
            score = score + skip[:, offset:offset + score.shape[1], offset:offset + score.shape[2]]
            if name == "score_pool4":
                score = self.upscore_pool4(score)
        offset = OUTPUT_CROP_OFFSETS["fcn8s"]
        return self.upscore8(score)[:, offset:offset + height, offset:offset + width]


def compiled_sgd_step(model: nnx.Module, images, labels, forward):
    """The train step (loss, gradients, momentum update) of ``model``, whose logits in
    training are ``forward(net, images)``, compiled with the project's compiler options."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(1e-3, momentum=0.9)

    def step(params, opt_state, images, labels):
        def loss(p):
            net = nnx.merge(graphdef, p, rest)
            logits = forward(net, images)
            total, weight = losses.pixel_cross_entropy_terms(logits, labels)
            return total / jnp.maximum(weight, 1.0)
        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    return jax.jit(step, donate_argnums=(0, 1), compiler_options=backends.compiler_options()
                   ).lower(params, opt_state, images, labels).compile()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="width 0.0625, 64x64, batch 2")
    args = parser.parse_args(argv)
    shape = TINY if args.tiny else FULL
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (shape["batch"], shape["size"], shape["size"], 3)),
                         jnp.uint8)
    labels = jnp.asarray(rng.integers(0, NUM_CLASSES, images.shape[:3]), jnp.uint8)
    keys = jax.random.split(jax.random.PRNGKey(0), shape["batch"])

    def ours(net, x):
        return net(x, dropout_keys=keys)

    def plain(net, x):
        return net(x, dropout_key=keys[0])
    print(f"Caffe-layout FCN-8s train step, width {shape['width']}, batch {shape['batch']}, "
          f"{shape['size']}x{shape['size']}, {jax.default_backend()} (compiled, not run)\n")
    print("| net | XLA buffers MiB | temporaries MiB |\n|---|---|---|")
    nets = {f"fcn_jax, fast_paths={setting} ({backends.kernels(setting).name})":
            (CaffeFCN(NUM_CLASSES, variant="fcn8s", width=shape["width"], fast_paths=setting,
                      rngs=nnx.Rngs(0)), ours) for setting in backends.FAST_PATHS}
    nets["plain Flax (nnx.Conv, nnx.max_pool, nnx.ConvTranspose)"] = (
        PlainFlaxFCN8s(NUM_CLASSES, shape["width"], nnx.Rngs(0)), plain)
    for name, (model, forward) in nets.items():
        compiled = compiled_sgd_step(model, images, labels, forward)
        temp = compiled.memory_analysis().temp_size_in_bytes
        print(f"| {name} | {xla_buffer_bytes(compiled) / 2**20:.0f} | {temp / 2**20:.0f} |")


if __name__ == "__main__":
    main()
