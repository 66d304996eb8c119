"""Optimisers and learning-rate schedules (FCN paper, section 4.3).

The paper trains with SGD, momentum 0.9, weight decay 5e-4 and biases at twice the learning
rate; Adam (with decoupled weight decay) is offered for quick studies from scratch. As in the
reference release, biases are not decayed. ``train_only`` freezes every other top-level layer
(no update, no decay): ("score_fr",) is the paper's FCN-32s-fixed (Table 2, "only the last layer
trained").
"""

import jax
import ml_collections
import optax

SCHEDULES = ("constant", "cosine", "step")


def learning_rate_schedule(optim: ml_collections.ConfigDict, num_steps: int,
                           learning_rate=None) -> optax.Schedule:
    """Linear warm-up, then constant, cosine decay to zero, or x0.1 at ``decay_steps``, peaking
    at ``learning_rate`` (a number or a traced scalar; default ``optim.learning_rate``)."""
    lr = optim.learning_rate if learning_rate is None else learning_rate
    if optim.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif optim.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(1, num_steps - optim.warmup_steps))
    elif optim.schedule == "step":
        main = optax.piecewise_constant_schedule(
            lr, {int(s) - optim.warmup_steps: 0.1 for s in optim.decay_steps})
    else:
        raise ValueError(f"optim.schedule={optim.schedule!r}: expected one of {SCHEDULES}")
    if optim.warmup_steps <= 0:
        return main
    warmup = optax.linear_schedule(0.0, lr, optim.warmup_steps)
    return optax.join_schedules([warmup, main], [optim.warmup_steps])


def base_optimizer(optim: ml_collections.ConfigDict, schedule: optax.Schedule,
                   weight_decay: float) -> optax.GradientTransformation:
    """SGD with momentum and L2 decay in the gradient (as Caffe), or Adam with decoupled decay.

    Adam normalises each coordinate, so an L2 term added to a tiny data gradient (the trunk's,
    while the zero-initialised score layers are still small) would shrink weights at the full
    learning rate; AdamW's decoupled decay does not.
    """
    if optim.name == "sgd":
        core = optax.sgd(schedule, momentum=optim.momentum or None, nesterov=optim.nesterov)
        if weight_decay:
            return optax.chain(optax.add_decayed_weights(weight_decay), core)
        return core
    if optim.name == "adam":
        return optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=weight_decay)
    raise ValueError(f"optim.name={optim.name!r}: expected 'sgd' or 'adam'")


def parameter_kind(path: tuple, _) -> str:
    """'bias' for bias vectors, 'weight' for everything else."""
    names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
    return "bias" if "bias" in names else "weight"


def labeller(train_only: tuple[str, ...]):
    """params -> labels: 'frozen' outside the ``train_only`` layers (when given), else kind."""
    def labels(params):
        unknown = sorted(set(train_only) - set(params.keys()))
        if unknown:
            raise ValueError(f"optim.train_only={train_only}: {unknown} not among the model's "
                             f"layers {sorted(params.keys())}")

        def label(path, leaf):
            top = getattr(path[0], "key", getattr(path[0], "name", None))
            return "frozen" if train_only and top not in train_only else parameter_kind(path, leaf)

        return jax.tree_util.tree_map_with_path(label, params)

    return labels


def build(optim: ml_collections.ConfigDict, num_steps: int,
          learning_rate=None) -> optax.GradientTransformation:
    """The optimiser ``optim`` describes; biases get ``bias_lr_mult`` x the rate, no decay;
    layers outside ``optim.train_only`` (when set) are frozen.

    ``learning_rate`` (default ``optim.learning_rate``) may be a traced scalar: built inside a
    compiled step that takes the rate as an argument, runs at different rates share one
    program, and the state's layout does not depend on the rate.
    """
    schedule = learning_rate_schedule(optim, num_steps, learning_rate)

    def bias_schedule(step):
        return optim.bias_lr_mult * schedule(step)

    transforms = {"weight": base_optimizer(optim, schedule, optim.weight_decay),
                  "bias": base_optimizer(optim, bias_schedule, 0.0)}
    if optim.train_only:  # only then: checkpoints of ordinary runs keep their state layout
        transforms["frozen"] = optax.set_to_zero()
    return optax.multi_transform(transforms, labeller(tuple(optim.train_only)))


def initial_state(tx: optax.GradientTransformation, params) -> optax.OptState:
    """``tx.init(params)`` as one compiled program: the same zeros, without the small program
    per parameter shape that initialising op by op compiles."""
    return jax.jit(tx.init)(params)
