"""Model construction from a config (FCN paper, section 4)."""

import ml_collections
from flax import nnx

from fcn_jax.models.fcn import FCN


def build(config: ml_collections.ConfigDict, num_classes: int, seed: int) -> FCN:
    """Build the FCN that ``config.model`` describes, initialised from ``seed``."""
    m = config.model
    return FCN(num_classes, variant=m.variant, width=m.width,
               fc_channels=m.fc_channels or None, dropout_rate=m.dropout_rate,
               decoder=m.decoder, skip_scales=tuple(m.skip_scales),
               rngs=nnx.Rngs(params=seed))
