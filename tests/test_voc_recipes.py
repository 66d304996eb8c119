"""The paper's recipes as configs (configs/voc.py), FCN-32s-fixed freezing, staged initialisation
(FCN paper, section 4.3 and Table 2; FCN reference release)."""

import jax
import numpy as np
import pytest

from configs import voc
from fcn_jax import run, train
from fcn_jax.checkpoint import Checkpointer
from fcn_jax.models import pretrained
from fcn_jax.ops.upsample import bilinear_kernel
from tests.helpers import random_batch, tiny_config


def test_recipes_follow_the_paper_and_the_release():
    paper, heavy = voc.get_config("fcn32s"), voc.get_config("fcn32s,heavy")
    assert (paper.train.batch_size, paper.optim.learning_rate, paper.optim.momentum) == \
        (20, 1e-4, 0.9)
    assert (heavy.train.batch_size, heavy.optim.learning_rate, heavy.optim.momentum) == \
        (1, 1e-10, 0.99)
    for c in (paper, heavy):
        assert (c.optim.name, c.optim.schedule, c.optim.warmup_steps) == ("sgd", "constant", 0)
        assert (c.optim.weight_decay, c.optim.bias_lr_mult) == (5e-4, 2.0)
        assert (c.data.train_split, c.data.eval_split, c.model.caffe) == \
            ("sbd_train", "seg11valid", True)
    assert paper.loss.normalize and not heavy.loss.normalize
    assert (heavy.seed, heavy.train.eval_every, heavy.train.num_steps) == (1337, 4000, 100_000)
    assert paper.train.num_steps * 20 >= 175 * 8498  # at least 175 epochs
    assert [voc.get_config(f"{n},heavy").optim.learning_rate
            for n in ("fcn16s", "fcn8s", "fcn8s_atonce")] == [1e-12, 1e-14, 1e-10]
    atonce = voc.get_config("fcn8s_atonce,heavy")
    assert (atonce.model.variant, tuple(atonce.model.skip_scales), atonce.train.num_steps) == \
        ("fcn8s", (0.01, 1e-4), 300_000)
    assert tuple(voc.get_config("fcn32s_fixed").optim.train_only) == ("score_fr",)
    with pytest.raises(ValueError, match="expected NET"):
        voc.get_config("fcn4s,paper")


def sgd_config(data_dir: str, variant: str = "fcn32s"):
    c = tiny_config(variant)
    c.data.data_dir = data_dir
    c.optim.name = "sgd"
    c.optim.learning_rate = 0.1
    c.optim.schedule = "constant"
    c.parallel.num_devices = 1
    return c


def two_steps(config, workdir) -> tuple[dict, dict]:
    """Parameters before and after two SGD steps on a random batch (host numpy arrays)."""
    trainer = run.Run(config, workdir)
    before = jax.tree.map(np.asarray, trainer.state["params"])
    state = trainer.parallel.put_replicated(trainer.state)
    batch = trainer.parallel.put_batch(random_batch(0, 8, 32, 32, trainer.num_classes))
    for _ in range(2):  # after the first step score_fr is non-zero, so the trunk has gradients
        state, _ = trainer.train_step(state, batch)
    return before, jax.tree.map(np.asarray, trainer.parallel.get_replicated(state["params"]))


def test_fcn32s_fixed_trains_only_score_fr(tiny_data_dir, tmp_path):
    config = sgd_config(tiny_data_dir)
    before, after = two_steps(config, str(tmp_path))
    assert not np.allclose(before["trunk"]["fc7"]["kernel"], after["trunk"]["fc7"]["kernel"])
    config.optim.train_only = ("score_fr",)
    before, after = two_steps(config, str(tmp_path))
    for a, b in zip(jax.tree.leaves(before["trunk"]), jax.tree.leaves(after["trunk"])):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(before["score_fr"]["kernel"], after["score_fr"]["kernel"])


def test_unknown_train_only_layer_is_an_error(tiny_data_dir, tmp_path):
    config = sgd_config(tiny_data_dir)
    config.optim.train_only = ("score_frr",)
    with pytest.raises(ValueError, match="optim.train_only=.*'score_frr'"):
        run.Run(config, str(tmp_path))


def short_run(config, num_steps: int):
    config.train.num_steps = num_steps
    config.train.eval_every = config.train.checkpoint_every = num_steps
    config.train.num_overlays = 0
    return config


def saved_params(workdir) -> dict:
    return {k: np.asarray(v) for k, v in pretrained.read_checkpoint_params(str(workdir))[0].items()}


def test_fcn16s_starts_from_the_fcn32s_checkpoint_with_zero_new_score_layers(tiny_data_dir,
                                                                              tmp_path):
    train.train_and_evaluate(short_run(sgd_config(tiny_data_dir, "fcn32s"), 2), tmp_path / "32s")
    fcn32s = saved_params(tmp_path / "32s")
    assert np.abs(fcn32s["score_fr.weight"]).max() > 0
    stage2 = short_run(sgd_config(tiny_data_dir, "fcn16s"), 1)
    stage2.optim.learning_rate = 0.0  # the saved step-1 parameters are the initial ones
    stage2.optim.weight_decay = 0.0
    stage2.model.init_from = str(tmp_path / "32s")
    train.train_and_evaluate(stage2, str(tmp_path / "16s"))
    fcn16s = saved_params(tmp_path / "16s")
    assert fcn16s.keys() - fcn32s.keys() == {"score_pool4.weight", "score_pool4.bias"}
    for key in fcn32s:
        np.testing.assert_array_equal(fcn16s[key], fcn32s[key])
    assert not fcn16s["score_pool4.weight"].any() and not fcn16s["score_pool4.bias"].any()
    # Resuming the FCN-16s run restores its own checkpoint, not init_from.
    trainer = run.Run(stage2, str(tmp_path / "16s"))
    restored = Checkpointer(str(tmp_path / "16s")).restore(trainer.state)
    np.testing.assert_array_equal(restored["params"]["score_fr"]["kernel"][...],
                                  fcn16s["score_fr.weight"])


def test_upsampling_of_a_learned_decoder_is_new_in_the_finer_stage(tiny_data_dir, tmp_path):
    first = short_run(sgd_config(tiny_data_dir, "fcn16s"), 1)
    first.model.decoder = "learned_bilinear"
    train.train_and_evaluate(first, str(tmp_path / "16s"))
    model_config = sgd_config(tiny_data_dir, "fcn8s")
    model_config.model.decoder = "learned_bilinear"
    trainer = run.Run(model_config, str(tmp_path / "8s"), init_from=str(tmp_path / "16s"))
    params = trainer.state["params"]
    np.testing.assert_array_equal(params["upscore8"]["kernel"][...], bilinear_kernel(8, 7))
    assert not np.asarray(params["score_pool3"]["kernel"][...]).any()


def test_a_checkpoint_of_another_width_lists_every_mismatch(tiny_data_dir, tmp_path):
    train.train_and_evaluate(short_run(sgd_config(tiny_data_dir, "fcn32s"), 1), tmp_path / "a")
    wider = sgd_config(tiny_data_dir, "fcn16s")
    wider.model.fc_channels = 48
    with pytest.raises(pretrained.WeightsError) as error:
        run.Run(wider, str(tmp_path / "b"), init_from=str(tmp_path / "a"))
    message = str(error.value)
    assert "(5 problems)" in message  # fc6 kernel and bias, fc7 kernel and bias, score_fr kernel
    assert "wrong shape: fc7.weight checkpoint (1, 1, 32, 32) vs model (1, 1, 48, 48)" in message
    with pytest.raises(pretrained.WeightsError, match="not a training workdir"):
        run.Run(wider, str(tmp_path / "b"), init_from=str(tmp_path))
