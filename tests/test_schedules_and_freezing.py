"""Learning-rate schedules against their formulas, and freezing (FCN paper, section 4.3 and
Table 2's FCN-32s-fixed): what the optimiser is asked to do at given steps."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from fcn_jax import models, optim
from tests.helpers import tiny_config

LR, WARMUP, TOTAL = 0.01, 10, 110


def schedule(name, warmup=WARMUP, decay_steps=()):
    config = tiny_config().optim
    config.learning_rate, config.schedule, config.warmup_steps = LR, name, warmup
    config.decay_steps = decay_steps
    return optim.learning_rate_schedule(config, TOTAL)


def warmup_rate(step):
    return LR * step / WARMUP


@pytest.mark.parametrize("step", [0, 1, 5, 9])
def test_warmup_rises_linearly_from_zero(step):
    for name in ("constant", "cosine"):
        assert float(schedule(name)(step)) == pytest.approx(warmup_rate(step), rel=1e-6,
                                                            abs=1e-12)


@pytest.mark.parametrize("step", [10, 11, 50, 109, 110])
def test_constant_and_cosine_after_warmup(step):
    assert float(schedule("constant")(step)) == pytest.approx(LR, rel=1e-6)
    progress = (step - WARMUP) / (TOTAL - WARMUP)
    cosine = 0.5 * LR * (1 + math.cos(math.pi * progress))
    assert float(schedule("cosine")(step)) == pytest.approx(cosine, rel=1e-5, abs=LR * 1e-6)


@pytest.mark.parametrize("step, factor", [(10, 1.0), (39, 1.0), (40, 0.1), (79, 0.1),
                                          (80, 0.01), (109, 0.01)])
def test_step_schedule_divides_by_ten_at_each_decay_step(step, factor):
    rate = schedule("step", decay_steps=(40, 80))(step)
    assert float(rate) == pytest.approx(LR * factor, rel=1e-6)


def test_no_warmup_starts_at_the_full_rate():
    assert float(schedule("cosine", warmup=0)(0)) == pytest.approx(LR)
    assert float(schedule("constant", warmup=0)(0)) == pytest.approx(LR)


def test_a_one_step_warmup_starts_at_zero():
    for name in ("constant", "cosine"):
        assert float(schedule(name, warmup=1)(0)) == 0.0
        assert float(schedule(name, warmup=1)(1)) == pytest.approx(LR)


@pytest.mark.parametrize("step, rate", [(TOTAL - 1, LR), (TOTAL, 0.0)])
def test_cosine_over_a_single_step_after_the_warmup(step, rate):
    """Warm-up to one step before the end: the cosine decays to zero in that last step."""
    assert float(schedule("cosine", warmup=TOTAL - 1)(step)) == pytest.approx(rate, rel=1e-6,
                                                                              abs=1e-12)


def test_names_built_at_run_time_select_their_schedule_and_optimiser():
    """Names from the command line are not the interned literals of the code (``is`` vs ``==``)."""
    built = {name: "".join(list(name)) for name in ("constant", "cosine", "step", "sgd", "adam")}
    assert all(a is not b for a, b in built.items())
    for name in ("constant", "cosine", "step"):
        rate = schedule(built[name], decay_steps=(40,))(50)
        assert float(rate) == pytest.approx(float(schedule(name, decay_steps=(40,))(50)))
    config = tiny_config().optim
    for name in ("sgd", "adam"):
        config.name = built[name]
        assert optim.base_optimizer(config, LR, 0.0) is not None


@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "sgdw"])  # around "adam" and "sgd"
def test_an_unknown_optimiser_is_named(name):
    config = tiny_config().optim
    config.name = name
    with pytest.raises(ValueError, match=rf"optim.name='{name}': expected 'sgd' or 'adam'"):
        optim.base_optimizer(config, LR, 0.0)


def test_a_warmup_as_long_as_the_run_leaves_a_one_step_cosine():
    assert float(schedule("cosine", warmup=TOTAL)(TOTAL)) == pytest.approx(LR, rel=1e-6)


# Sorting before "constant", between "constant" and "cosine", between "cosine" and "step", after.
@pytest.mark.parametrize("name", ["adaptive", "cos", "linear", "triangular"])
def test_an_unknown_schedule_is_named(name):
    with pytest.raises(ValueError, match=rf"optim.schedule='{name}': expected one of "
                                         r"\('constant', 'cosine', 'step'\)"):
        schedule(name)


def test_train_only_leaves_every_other_layer_bit_identical_and_undecayed():
    config = tiny_config("fcn32s")
    config.optim.name, config.optim.train_only = "sgd", ("score_fr",)
    config.optim.weight_decay, config.optim.warmup_steps = 0.5, 0
    model = models.build(config.model, 4, seed=0)
    _, params, _ = nnx.split(model, nnx.Param, ...)
    tx = optim.build(config.optim, 10)
    state = tx.init(params)
    grads = jax.tree.map(lambda x: np.ones_like(x), params)
    new = params
    for _ in range(3):
        updates, state = tx.update(grads, state, new)
        new = jax.tree.map(lambda p, u: p + u, new, updates)
    for (path, before), after in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                                     jax.tree.leaves(new)):
        top = getattr(path[0], "key", None)
        if top == "score_fr":
            assert np.abs(np.asarray(after) - np.asarray(before)).max() > 0
        else:  # no gradient step, no weight decay: the same bits
            np.testing.assert_array_equal(np.asarray(after), np.asarray(before))


def test_train_only_naming_an_unknown_layer_is_refused_with_the_model_layers():
    config = tiny_config("fcn32s")
    config.optim.train_only = ("score_fr", "score_frr")
    _, params, _ = nnx.split(models.build(config.model, 4, seed=0), nnx.Param, ...)
    with pytest.raises(ValueError, match=r"\['score_frr'\] not among the model's layers "
                                         r"\[.*'score_fr'.*\]"):
        optim.build(config.optim, 10).init(params)
