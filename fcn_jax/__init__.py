"""JAX/Flax Fully Convolutional Networks for semantic segmentation."""
