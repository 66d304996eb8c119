"""Configs of the experiment scripts (experiments/): a shared pretraining run, then short
fine-tuning runs from its trunk, as the paper fine-tunes from an ImageNet VGG16 (section 4.1).

``get_config("pretrain")``: the default run (FCN-8s, 3000 steps from scratch on the embedded
dataset, what ``make run`` trains); its trunk (conv1_1..fc7) stands in for the
ImageNet-pretrained VGG16. ``get_config("finetune")``: the
budget every decoder / skip run gets from that trunk (score layers fresh, constant learning
rate). ``:quick`` on either (``finetune:quick``) is the seconds-long smoke-test version on
the tiny embedded config.
"""

import ml_collections

from configs import default

FINETUNE_STEPS = 200


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """``pretrain`` or ``finetune``, optionally ``:quick``."""
    name, _, quick = (arg or "finetune").partition(":")
    if name not in ("pretrain", "finetune") or quick not in ("", "quick"):
        raise ValueError(f"configs/experiments.py:{arg}: expected pretrain or finetune, "
                         "optionally with :quick")
    if name == "pretrain":
        c = default.get_config("fcn8s")
    else:
        c = default.get_config("fcn32s")
        c.train.num_overlays = 0
        c.train.num_steps = FINETUNE_STEPS
        c.train.eval_every = c.train.checkpoint_every = FINETUNE_STEPS
        c.optim.learning_rate = 1e-3
        c.optim.schedule = "constant"
        c.optim.warmup_steps = 0
    if quick:
        c.data.builder_config = "tiny"
        c.data.crop_size = 32
        c.train.batch_size = c.eval.batch_size = 8
        c.train.num_steps = c.train.eval_every = c.train.checkpoint_every = 4
        c.train.log_every = 2
    return c
