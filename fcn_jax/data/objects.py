"""Object-centric images of 20 shape families: the ImageNet stand-in (FCN paper, section 3.1).

The paper starts every FCN from a classifier trained on ImageNet and convolutionalizes it. In
miniature, a VGG16 classifier is trained on these images and its trunk then fine-tuned on the
segmentation scenes of ``shapes``. One image holds one object, roughly centred, and its label
is the object's family. The six segmentation shapes are among the 20 families, as VOC's
classes are among ImageNet's, but most families are new (polygons, stars, letters, arrows,
hollow and cut shapes), so the features must generalise rather than be copied.

Backgrounds, textures and pixel noise come from the scene renderer (``shapes``); the object's
colour is uniform at random (never chosen close to the background's, unlike the scenes'), its
size (radius 25-45% of the image side), rotation and centre (within 12% of the middle) are
random. (A first version with radii from 15% and background-like colours stayed at chance for
the first ~400 steps of the classifier's training budget.)
"""

import numpy as np

from fcn_jax.data import shapes


def _polygon(u, v, r, sides):
    """A regular polygon with circumradius r."""
    angles = np.pi / 2 + 2 * np.pi / sides * np.arange(sides)
    dist = np.stack([u * np.cos(a) + v * np.sin(a) for a in angles])
    return dist.max(axis=0) <= r * np.cos(np.pi / sides)


def _ellipse(rng, u, v, r):
    """An ellipse with axes r and 0.4-0.65 r."""
    minor = r * rng.uniform(0.4, 0.65)
    return (u / r) ** 2 + (v / minor) ** 2 <= 1.0


def _pentagon(rng, u, v, r):
    return _polygon(u, v, r, 5)


def _hexagon(rng, u, v, r):
    return _polygon(u, v, r, 6)


def _star(rng, u, v, r):
    """A five-pointed star: the radius alternates between r and 0.4-0.5 r every 36 degrees."""
    inner = rng.uniform(0.4, 0.5)
    angle = np.mod(np.arctan2(v, u), 2 * np.pi / 5) / (2 * np.pi / 5)
    reach = inner + (1 - inner) * np.abs(2 * angle - 1)
    return np.hypot(u, v) <= r * reach


def _diamond(rng, u, v, r):
    """A rhombus with half-diagonals r and 0.45-0.7 r."""
    return np.abs(u) / r + np.abs(v) / (r * rng.uniform(0.45, 0.7)) <= 1.0


def _thickness(rng, r):
    """Stroke width of the letter- and frame-like families: 20-35% of r, at least 2 px."""
    return max(r * rng.uniform(0.2, 0.35), 2.0)


def _frame(rng, u, v, r):
    """A hollow square."""
    half = 0.85 * r
    outer = np.maximum(np.abs(u), np.abs(v))
    return (outer <= half) & (outer >= half - _thickness(rng, r))


def _letter_l(rng, u, v, r):
    """An L: a vertical and a horizontal stroke meeting at one end."""
    w = _thickness(rng, r)
    inside = (np.abs(u) <= r) & (np.abs(v) <= r)
    return inside & ((u <= -r + w) | (v >= r - w))


def _letter_t(rng, u, v, r):
    """A T: a horizontal stroke on top of a centred vertical one."""
    w = _thickness(rng, r)
    inside = (np.abs(u) <= r) & (np.abs(v) <= r)
    return inside & ((v <= -r + w) | (np.abs(u) <= w / 2))


def _crescent(rng, u, v, r):
    """A disk minus a shifted disk."""
    shift = r * rng.uniform(0.35, 0.55)
    return (u * u + v * v <= r * r) & ((u - shift) ** 2 + v * v > (0.9 * r) ** 2)


def _semicircle(rng, u, v, r):
    """Half a disk."""
    return (u * u + v * v <= r * r) & (v >= 0)


def _arrow(rng, u, v, r):
    """A shaft ending in a triangular head."""
    w = _thickness(rng, r) / 2
    shaft = (np.abs(v) <= w) & (u >= -r) & (u <= 0.2 * r)
    head = (u >= 0.2 * r - w) & (np.abs(v) <= (r - u) * 0.75)
    return shaft | head


def _hollow_triangle(rng, u, v, r):
    """A triangle outline."""
    angles = np.pi / 2 + 2 * np.pi / 3 * np.arange(3)
    dist = np.stack([u * np.cos(a) + v * np.sin(a) for a in angles]).max(axis=0)
    return (dist <= 0.625 * r) & (dist >= 0.625 * r - _thickness(rng, r) * 0.7)


def _double_bar(rng, u, v, r):
    """Two parallel strokes."""
    w = max(r * rng.uniform(0.1, 0.18), 1.5)
    gap = r * rng.uniform(0.35, 0.55)
    return (np.abs(u) <= r) & (np.abs(np.abs(v) - gap) <= w)


def _hourglass(rng, u, v, r):
    """Two triangles meeting at their tips."""
    return (np.abs(v) <= r) & (np.abs(u) <= 0.8 * np.abs(v))


FAMILIES = {
    **shapes.SHAPES,
    "ellipse": _ellipse, "pentagon": _pentagon, "hexagon": _hexagon, "star": _star,
    "diamond": _diamond, "frame": _frame, "letter_l": _letter_l, "letter_t": _letter_t,
    "crescent": _crescent, "semicircle": _semicircle, "arrow": _arrow,
    "hollow_triangle": _hollow_triangle, "double_bar": _double_bar, "hourglass": _hourglass,
}
CLASS_NAMES: tuple[str, ...] = tuple(FAMILIES)
NUM_CLASSES = len(CLASS_NAMES)
_RADIUS_FRACTION = (0.25, 0.45)
_CENTRE_JITTER = 0.12
_CLOSE_COLOUR_PROB = 0.0


def render_object(seed: int, size: int) -> tuple[np.ndarray, int]:
    """One image uint8 [size, size, 3] of one object, and its class id in [0, NUM_CLASSES)."""
    rng = np.random.default_rng(seed)
    class_id = int(rng.integers(NUM_CLASSES))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = rng.uniform(0, 255, size=3)
    image = shapes.texture(rng, yy, xx, background)
    radius = size * rng.uniform(*_RADIUS_FRACTION)
    cy, cx = size / 2 + size * rng.uniform(-_CENTRE_JITTER, _CENTRE_JITTER, size=2)
    u, v = shapes.rotated(yy, xx, cy, cx, rng.uniform(0, 2 * np.pi))
    mask = FAMILIES[CLASS_NAMES[class_id]](rng, u, v, radius)
    colour = shapes.object_colour(rng, background, _CLOSE_COLOUR_PROB)
    image[mask] = shapes.texture(rng, yy, xx, colour)[mask]
    image += rng.normal(0.0, rng.uniform(0, 8), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), class_id
