"""The classifier pretrained on the procedural objects: the ImageNet stand-in (FCN paper,
sections 3.1 and 4.1; ``python -m fcn_jax.pretrain``).

Its trunk is the default FCN's (configs/default.py: same width and fc6 kernel), so the file it
writes initialises that FCN through the torchvision VGG16 import path. ``:alexnet`` and
``:googlenet`` train those backbones the same way, each for as many steps as it needs to reach
about the VGG16 classifier's top-1 (``CLASSIFIER_STEPS``; Table 1's study; the file initialises
an FCN-32s with ``model.backbone`` set alike). ``:quick`` (alone or after a backbone,
``:alexnet,quick``) is the seconds-long smoke test on the tiny objects config, with the trunk
of the smoke FCN (``configs/default.py:smoke``), which it initialises the same way.
"""

import ml_collections

from configs import default
from fcn_jax.models.backbones import BACKBONES

# Training steps per trunk: the fewest of 1600 / 4000 / 8000 at which its validation top-1
# reaches about VGG16's, so that Table 1's study compares trunks rather than how far each was
# pretrained (the paper's ImageNet classifiers were each trained to convergence). Measured
# top-1 (1000 validation images): VGG16 800 steps 41.6%, 1600 90.0%; AlexNet 1600 58.3%,
# 4000 84.4%, 8000 91.9%; GoogLeNet 1600 28.3%, 4000 60.9%, 8000 90.2%.
CLASSIFIER_STEPS = {"vgg16": 1600, "alexnet": 8000, "googlenet": 8000}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The classifier config; ``arg``: a backbone (default vgg16), ``quick``, or both
    (``alexnet,quick``)."""
    parts = [p for p in (arg or "").split(",") if p]
    quick = "quick" in parts
    named = [p for p in parts if p != "quick"]
    if len(named) > 1 or not set(named) <= set(BACKBONES):
        raise ValueError(f"configs/classifier.py:{arg}: expected a backbone of "
                         f"{sorted(BACKBONES)} and/or 'quick'")
    fcn = default.get_config("smoke" if quick else None)
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.builder_config = "default"     # default (96x96, 8000/1000) | tiny (64x64, 64/32)
    c.data.data_dir = ""                  # "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
    c.data.flip = True                    # random mirroring

    c.model = ml_collections.ConfigDict()
    c.model.backbone = named[0] if named else fcn.model.backbone
    c.model.width = fcn.model.width
    c.model.fc_channels = fcn.model.fc_channels
    c.model.fc6_kernel = fcn.model.fc6_kernel  # the images are 32 x fc6_kernel pixels wide
    c.model.dropout_rate = 0.5
    c.model.fast_paths = fcn.model.fast_paths

    c.optim = fcn.optim.copy_and_resolve_references()
    c.optim.name = "adam"                 # the stand-in's own training, not the paper's recipe
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 0
    c.optim.bias_lr_mult = 1.0

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 32
    c.train.num_steps = CLASSIFIER_STEPS[c.model.backbone]
    c.train.log_every = 100

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 100

    c.parallel = fcn.parallel.copy_and_resolve_references()
    if quick:
        c.data.builder_config = "tiny"
        c.train.batch_size, c.train.num_steps, c.train.log_every = 8, 4, 2
        c.optim.warmup_steps = 0
        c.eval.batch_size = 16
    return c
