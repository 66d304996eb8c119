"""Procedural scenes of textured shapes for semantic segmentation.

A scene is rendered from a single integer seed with ``np.random.default_rng``:

1. The background gets a random colour and a random texture (flat, stripes
   or a checkerboard at a random angle and period, a linear gradient, smooth
   value noise, or per-pixel noise) that blends it towards a second colour.
2. Between 3 and 8 objects are painted one after another, so later objects
   occlude earlier ones and the label records the visible object. Each object
   draws its class uniformly, a size (40% small: log-uniform radius from 2-6 px
   up to 8 px; otherwise uniform up to 0.4 of the shorter image side), a
   random centre (possibly cut by the border), a random rotation, and its own
   colour and texture.
3. Colours are sampled independently of the class; about a quarter of the
   objects take a colour close to the background's, so the outline (and not
   the colour) must identify them.
4. Pixel noise of random strength is added over the whole image.

Classes differ only in shape: disks and rings differ by a hole, squares and
crosses by their arms, and bars are 1-3 px wide lines, so both the receptive
field and fine localisation matter.
"""

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "background",
    "disk",
    "square",
    "triangle",
    "ring",
    "cross",
    "bar",
)
NUM_CLASSES = len(CLASS_NAMES)

_MIN_OBJECTS, _MAX_OBJECTS = 3, 8
_MIN_RADIUS = {"disk": 2.0, "square": 2.0, "triangle": 3.0, "ring": 5.0, "cross": 4.0, "bar": 6.0}
_SMALL_PROB, _SMALL_RADIUS, _MAX_RADIUS_FRACTION = 0.4, 8.0, 0.4
_CLOSE_COLOUR_PROB = 0.25


def rotated(yy, xx, cy, cx, angle):
    """Coordinates (u, v) of the grid in a frame centred at (cy, cx) rotated by angle."""
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    return c * dx + s * dy, c * dy - s * dx


def _disk(rng, u, v, r):
    """Mask of a disk of radius r (all shape masks take local coordinates u, v)."""
    return u * u + v * v <= r * r


def _square(rng, u, v, r):
    """Mask of a square of half-side 0.85 r."""
    half = 0.85 * r
    return np.maximum(np.abs(u), np.abs(v)) <= half


def _triangle(rng, u, v, r):
    """Equilateral triangle with circumradius 1.25 r (inradius 0.625 r)."""
    angles = np.pi / 2 + 2 * np.pi / 3 * np.arange(3)
    dist = np.stack([u * np.cos(a) + v * np.sin(a) for a in angles])
    return dist.max(axis=0) <= 0.625 * r


def _ring(rng, u, v, r):
    """Mask of an annulus of outer radius r, at least 2 px thick, with a large hole."""
    inner = min(r * rng.uniform(0.45, 0.7), r - 2.0)
    d2 = u * u + v * v
    return (d2 <= r * r) & (d2 >= inner * inner)


def _cross(rng, u, v, r):
    """Mask of a plus sign with arms of length r and half-width at least 1.5 px."""
    arm = max(r * rng.uniform(0.2, 0.33), 1.5)
    au, av = np.abs(u), np.abs(v)
    return ((au <= arm) & (av <= r)) | ((av <= arm) & (au <= r))


def _bar(rng, u, v, r):
    """A segment of length 2r and width 1-3 px."""
    half_width = rng.uniform(0.55, 1.5)
    return (np.abs(v) <= half_width) & (np.abs(u) <= r)


SHAPES = {"disk": _disk, "square": _square, "triangle": _triangle,
           "ring": _ring, "cross": _cross, "bar": _bar}


def _stripes(rng, yy, xx):
    """Sharp or smooth stripes at a random angle, period and phase."""
    u, _ = rotated(yy, xx, 0.0, 0.0, rng.uniform(0, np.pi))
    wave = np.sin(2 * np.pi * u / rng.uniform(3, 16) + rng.uniform(0, 2 * np.pi))
    return (wave > 0).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * wave


def _checkerboard(rng, yy, xx):
    """A checkerboard at a random angle and period."""
    u, v = rotated(yy, xx, 0.0, 0.0, rng.uniform(0, np.pi))
    period = rng.uniform(4, 20)
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def _gradient(rng, yy, xx):
    """A linear ramp from 0 to 1 in a random direction."""
    u, _ = rotated(yy, xx, 0.0, 0.0, rng.uniform(0, 2 * np.pi))
    return (u - u.min()) / max(float(np.ptp(u)), 1.0)


def _smooth_noise(rng, yy, xx):
    """Bilinearly interpolated value noise on a random cell size."""
    cell = rng.uniform(4, 24)
    gy, gx = yy[:, 0] / cell, xx[0] / cell
    grid = rng.random((int(gy[-1]) + 2, int(gx[-1]) + 2)).astype(np.float32)
    iy, ix = gy.astype(int), gx.astype(int)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    top = grid[iy][:, ix] * (1 - fx) + grid[iy][:, ix + 1] * fx
    bottom = grid[iy + 1][:, ix] * (1 - fx) + grid[iy + 1][:, ix + 1] * fx
    return top * (1 - fy) + bottom * fy


def _pixel_noise(rng, yy, xx):
    """Independent uniform values per pixel."""
    return rng.random(yy.shape, dtype=np.float32)


def _flat(rng, yy, xx):
    """No pattern: a single colour."""
    return np.zeros(yy.shape, np.float32)


_TEXTURES = (_flat, _stripes, _checkerboard, _gradient, _smooth_noise, _pixel_noise)


def texture(rng, yy, xx, colour):
    """An [H, W, 3] float image blending colour towards a second colour by a random pattern."""
    pattern = _TEXTURES[rng.integers(len(_TEXTURES))](rng, yy, xx)
    second = colour + rng.normal(0.0, rng.uniform(10, 70), size=3)
    return colour + pattern[..., None] * (second - colour)


def object_colour(rng, background, close_prob: float = _CLOSE_COLOUR_PROB):
    """A uniform random colour, or (with probability close_prob) one close to the background's."""
    if rng.random() < close_prob:
        return background + rng.normal(0.0, rng.uniform(8, 30), size=3)
    return rng.uniform(0, 255, size=3)


def _radius(rng, name, height, width):
    """Small objects log-uniformly, large ones uniformly; bars reach 1.6x further."""
    low = _MIN_RADIUS[name]
    high = max(_MAX_RADIUS_FRACTION * min(height, width), _SMALL_RADIUS)
    if name == "bar":
        high *= 1.6
    if rng.random() < _SMALL_PROB:
        return np.exp(rng.uniform(np.log(low), np.log(max(low, _SMALL_RADIUS))))
    return rng.uniform(_SMALL_RADIUS, high)


def _object_mask(rng, yy, xx, name):
    """Mask of one object of the named class at a random size, position and rotation."""
    height, width = yy.shape
    radius = _radius(rng, name, height, width)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    u, v = rotated(yy, xx, cy, cx, rng.uniform(0, 2 * np.pi))
    return SHAPES[name](rng, u, v, radius)


def render_scene(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene: image uint8 [H, W, 3] and label uint8 [H, W] in [0, NUM_CLASSES)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = rng.uniform(0, 255, size=3)
    image = texture(rng, yy, xx, background)
    label = np.zeros((height, width), np.uint8)
    for _ in range(rng.integers(_MIN_OBJECTS, _MAX_OBJECTS + 1)):
        class_id = int(rng.integers(1, NUM_CLASSES))
        mask = _object_mask(rng, yy, xx, CLASS_NAMES[class_id])
        image[mask] = texture(rng, yy, xx, object_colour(rng, background))[mask]
        label[mask] = class_id
    image += rng.normal(0.0, rng.uniform(0, 8), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label
