"""The FCN paper's PASCAL VOC experiments (FCN paper, section 4.3 and Table 2; FCN reference
release): ``--config configs/voc.py:NET[,RECIPE]``.

NET: ``fcn32s_fixed`` (only score_fr trained), ``fcn32s``, ``fcn16s``, ``fcn8s``,
``fcn8s_atonce`` (all skips trained together from VGG16, pool4 x 0.01, pool3 x 1e-4).
RECIPE: ``paper`` (default; section 4.3) or ``heavy`` (the reference release's solvers).

Trained on SBD train (``voc_sbd:sbd_train``, 8,498 images), scored on ``seg11valid`` (736),
21 classes; full VGG16 in the release's Caffe layout (``model.caffe``). Stages: FCN-32s (and
-fixed, at-once) start from VGG16 ImageNet weights, FCN-16s from the FCN-32s workdir, FCN-8s
from FCN-16s's, each with ``--config.model.init_from=...`` (new score layers start at zero).
"""

import math

import ml_collections

from configs import default

NETS = ("fcn32s_fixed", "fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce")
RECIPES = ("paper", "heavy")
SBD_TRAIN_IMAGES = 8498
# Paper: "fixed learning rate 1e-4" for VGG16, divided by 100 for each finer stage.
# Release: 1e-10 / 1e-12 / 1e-14, and 1e-10 for at-once (its summed loss is ~1e5 x larger).
LEARNING_RATES = {
    "paper": {"fcn32s_fixed": 1e-4, "fcn32s": 1e-4, "fcn16s": 1e-6, "fcn8s": 1e-8,
              "fcn8s_atonce": 1e-4},
    "heavy": {"fcn32s_fixed": 1e-10, "fcn32s": 1e-10, "fcn16s": 1e-12, "fcn8s": 1e-14,
              "fcn8s_atonce": 1e-10}}
# Paper: at least 175 epochs of batch 20 for FCN-32s. It gives no count for the later stages,
# only times (~3 days for FCN-32s, ~1 day each for 16s and 8s): a third of the steps is our
# estimate. Release: 100k iterations, 300k for at-once.
PAPER_STEPS = math.ceil(175 * SBD_TRAIN_IMAGES / 20)
NUM_STEPS = {
    "paper": {"fcn32s_fixed": PAPER_STEPS, "fcn32s": PAPER_STEPS, "fcn16s": PAPER_STEPS // 3,
              "fcn8s": PAPER_STEPS // 3, "fcn8s_atonce": PAPER_STEPS},
    "heavy": {"fcn32s_fixed": 100_000, "fcn32s": 100_000, "fcn16s": 100_000, "fcn8s": 100_000,
              "fcn8s_atonce": 300_000}}


def parse(arg: str | None) -> tuple[str, str]:
    """"fcn16s" or "fcn16s,heavy" -> (net, recipe)."""
    net, _, recipe = (arg or "fcn32s").partition(",")
    recipe = recipe or "paper"
    if net not in NETS or recipe not in RECIPES:
        raise ValueError(f"configs/voc.py:{arg}: expected NET[,RECIPE] with NET in {NETS} "
                         f"and RECIPE in {RECIPES}")
    return net, recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The config of one Table 2 net under one recipe."""
    net, recipe = parse(arg)
    heavy = recipe == "heavy"
    c = default.get_config(net.split("_")[0])
    c.seed = 1337 if heavy else 0

    c.data.name = "voc_sbd"
    c.data.train_split = "sbd_train"
    c.data.eval_split = "seg11valid"
    c.data.crop_size = 500                # VOC images are at most 500x500: whole images, padded
    c.data.scale_range = (1.0, 1.0)       # no jittering or mirroring (paper: no measurable gain)
    c.data.flip = False

    c.model.width = 1.0
    c.model.fc6_kernel = 7                # ImageNet VGG16: pool5 of a 224x224 image
    c.model.caffe = True
    c.model.decoder = "bilinear"          # fixed, as the release (paper: no significant difference)
    c.model.skip_scales = (0.01, 1e-4) if net == "fcn8s_atonce" else (1.0, 1.0)

    c.loss.normalize = not heavy          # the release sums the loss over pixels

    c.optim.name = "sgd"
    c.optim.learning_rate = LEARNING_RATES[recipe][net]
    c.optim.momentum = 0.99 if heavy else 0.9
    c.optim.weight_decay = 5e-4
    c.optim.bias_lr_mult = 2.0            # biases at twice the rate, not decayed
    c.optim.schedule = "constant"
    c.optim.warmup_steps = 0
    c.optim.train_only = ("score_fr",) if net == "fcn32s_fixed" else ()

    c.train.batch_size = 1 if heavy else 20
    c.train.num_steps = NUM_STEPS[recipe][net]
    c.train.log_every = 20
    c.train.eval_every = 4000
    c.train.checkpoint_every = 4000
    c.eval.batch_size = 1                 # each image at its own size, as the reference scores
    c.parallel.num_devices = 1            # N devices: also eval.batch_size=N (pads to the largest)
    return c
