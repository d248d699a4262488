"""Procedural scenes and captions: the stimuli of the toy world.

Each scene shows one to three coloured objects from a fixed set of shape
categories over a plain, gradient or striped background, so that low-level
layout (positions, sizes, edges) and high-level content (categories, colours,
counts) vary independently. Every scene comes with five templated captions
(sometimes six or seven, as in COCO) that name the objects largest first, their
colours and positions, and the kind of background; one caption in twenty also
names the background's colour (:data:`BACKGROUND_COLOUR_MENTION`), as COCO's
captions seldom name the colour of a scene's setting.

Scenes are rendered at 85 px, mirroring NSD's 425 px stimuli; models work at
64 px, mirroring the 320 px at which the method encodes NSD images.
"""

import hashlib

import numpy as np
from sklearn.utils import Bunch

__all__ = [
    "BACKGROUND_COLOURS",
    "BACKGROUND_COLOUR_MENTION",
    "BACKGROUND_KINDS",
    "COLOURS",
    "POSITIONS",
    "SHAPES",
    "VOCABULARY",
    "make_stimuli",
    "stimulus_fingerprint",
]

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "white")
BACKGROUND_KINDS = ("plain", "gradient", "striped")
BACKGROUND_COLOURS = ("grey", "black", "beige", "teal")
POSITIONS = ("left", "right", "top", "bottom", "middle")

_COLOUR_RGB = np.array(
    [[220, 30, 30], [30, 180, 40], [40, 70, 230], [240, 220, 30], [150, 40, 190], [245, 245, 245]],
    dtype=float,
)
_BACKGROUND_RGB = np.array(
    [[128, 128, 128], [20, 20, 20], [225, 205, 165], [30, 120, 120]], dtype=float
)
_COUNT_WORDS = ("one", "two", "three")

#: Probability that a caption names the background's colour as well as its kind.
#: Measured on COCO, whose captions NSD's images carry: 8 of 200 human captions
#: of COCO val2014 images (4%; the sample published with M. Tanti's thesis
#: experiments, github.com/mtanti/mtanti-phd, ``experiments/thesis/results/
#: whereimage/_sample/mscoco/data.sql``) name the colour of the setting (a blue
#: sky, a green field, a white room, a blue floor) and none uses the word
#: "background". Up to toy world version 2 every caption named it.
BACKGROUND_COLOUR_MENTION = 0.05
_MAX_OBJECTS = 3

# Each template names the objects, largest first, then the background; the
# lead-in and word order vary so that paraphrases differ as COCO's do.
_TEMPLATES = (
    "{objects} on a {background} background",
    "a {background} background with {objects}",
    "{count} {noun} : {objects_short} on {background}",
    "there is {objects} , the background is {background}",
    "{objects_short} in front of a {background} background",
    "a picture of {objects} over a {background} background",
    "{objects} and a {background} background",
)


def _position_phrase(x, y):
    horizontal = "left" if x < 0.4 else "right" if x > 0.6 else None
    vertical = "top" if y < 0.4 else "bottom" if y > 0.6 else None
    if horizontal and vertical:
        return f"at the {vertical} {horizontal}"
    if horizontal:
        return f"on the {horizontal}"
    if vertical:
        return f"at the {vertical}"
    return "in the middle"


def _captions(attrs, i, rng, wording):
    n = attrs.n_objects[i]
    names = [f"{COLOURS[attrs.colour[i, k]]} {SHAPES[attrs.shape[i, k]]}" for k in range(n)]
    with_position = [
        f"a {name} {_position_phrase(attrs.x[i, k], attrs.y[i, k])}" for k, name in enumerate(names)
    ]
    kind = BACKGROUND_KINDS[attrs.background_kind[i]]
    with_colour = f"{kind} {BACKGROUND_COLOURS[attrs.background_colour[i]]}"
    fields = dict(
        objects=" and ".join(with_position),
        objects_short=" and ".join(f"a {name}" for name in names),
        count=_COUNT_WORDS[n - 1],
        noun="object" if n == 1 else "objects",
    )
    n_captions = rng.choice([5, 6, 7], p=[0.85, 0.1, 0.05])
    order = rng.permutation(len(_TEMPLATES))[:n_captions]
    named = wording.random(n_captions) < BACKGROUND_COLOUR_MENTION
    return [
        _TEMPLATES[t].format(background=with_colour if colour else kind, **fields)
        for t, colour in zip(order, named, strict=True)
    ]


def _signed_distance(shape, dx, dy, radius):
    """Distance inside the shape's boundary, in pixels (positive inside)."""
    dist = np.hypot(dx, dy)
    if shape == "circle":
        return radius - dist
    if shape == "square":
        return 0.85 * radius - np.maximum(np.abs(dx), np.abs(dy))
    if shape == "triangle":
        # Three half-planes of an upward equilateral triangle around the centre.
        normals = ((0.0, 1.0), (np.sqrt(3) / 2, -0.5), (-np.sqrt(3) / 2, -0.5))
        return np.min([0.5 * radius - (nx * dx + ny * dy) for nx, ny in normals], axis=0)
    if shape == "star":
        theta = np.arctan2(dy, dx) + np.pi / 2
        return radius * (0.55 + 0.45 * np.abs(np.cos(2.5 * theta))) - dist
    if shape == "ring":
        return np.minimum(radius - dist, dist - 0.55 * radius)
    if shape == "cross":
        arm = 0.33 * radius
        vertical = np.minimum(arm - np.abs(dx), radius - np.abs(dy))
        horizontal = np.minimum(radius - np.abs(dx), arm - np.abs(dy))
        return np.maximum(vertical, horizontal)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _background(kind, rgb, size, rng):
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    if kind == "plain":
        shade = np.ones((size, size))
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)
        shade = 1.0 + 0.9 * ramp
    else:
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.12, 0.25)
        phase = (np.cos(angle) * xx + np.sin(angle) * yy) / period
        shade = np.where(np.sin(2 * np.pi * phase) > 0, 1.25, 0.75)
    lift = 40.0 * (shade - 1.0)
    return np.clip(rgb[None, None, :] * shade[..., None] + lift[..., None], 0, 255)


def _sample_objects(rng):
    n = rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25])
    sizes = np.sort(rng.uniform(0.1, 0.22, size=n))[::-1]
    centres = []
    for radius in sizes:
        for _ in range(50):
            centre = rng.uniform(radius, 1 - radius, size=2)
            if all(
                np.hypot(*(centre - other)) > 0.8 * (radius + other_radius)
                for other, other_radius in zip(centres, sizes, strict=False)
            ):
                break
        centres.append(centre)
    return n, sizes, np.array(centres)


def make_stimuli(n_images, seed=0, size=85):
    """Render toy scenes with their captions and generating attributes.

    Parameters
    ----------
    n_images : int
        Number of scenes.
    seed : int, default=0
        Seed of the random generator; the same seed gives the same scenes.
    size : int, default=85
        Side of the square images in pixels.

    Returns
    -------
    stimuli : Bunch
        ``images`` (n_images, size, size, 3) uint8; ``captions``, a list of
        lists of str (five per image, some six or seven); ``attributes``, a
        Bunch of arrays: ``n_objects`` (n_images,), ``shape`` and ``colour``
        (n_images, 3) int indices into :data:`SHAPES` and :data:`COLOURS`
        (-1 where there is no object), ``x``, ``y`` (object centres in
        [0, 1], x to the right, y down) and ``size`` (radius as a fraction of
        the image side), (n_images, 3) float, NaN where there is no object,
        ``background_kind`` and ``background_colour`` (n_images,) int.
        Objects are sorted by size, largest (the *main* object) first.

    Examples
    --------
    >>> from brainldm.datasets.scenes import make_stimuli
    >>> stim = make_stimuli(4, seed=0)
    >>> stim.images.shape, stim.images.dtype
    ((4, 85, 85, 3), dtype('uint8'))
    >>> len(stim.captions[0]) >= 5
    True
    """
    n_images = int(n_images)
    if n_images < 0:
        raise ValueError(f"n_images must be non-negative, got {n_images}")
    rng = np.random.default_rng(seed)
    # The captions' wording draws from a stream of its own, so that the scenes
    # are the same whatever the captions say.
    wording = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    shape_of = np.full((n_images, _MAX_OBJECTS), -1)
    attrs = Bunch(
        n_objects=np.zeros(n_images, dtype=int),
        shape=shape_of,
        colour=shape_of.copy(),
        x=np.full((n_images, _MAX_OBJECTS), np.nan),
        y=np.full((n_images, _MAX_OBJECTS), np.nan),
        size=np.full((n_images, _MAX_OBJECTS), np.nan),
        background_kind=rng.integers(len(BACKGROUND_KINDS), size=n_images),
        background_colour=rng.integers(len(BACKGROUND_COLOURS), size=n_images),
    )
    images = np.empty((n_images, size, size, 3), dtype=np.uint8)
    captions = []
    pixel = (np.arange(size) + 0.5) / size
    for i in range(n_images):
        canvas = _background(
            BACKGROUND_KINDS[attrs.background_kind[i]],
            _BACKGROUND_RGB[attrs.background_colour[i]],
            size,
            rng,
        )
        n, sizes, centres = _sample_objects(rng)
        attrs.n_objects[i] = n
        for k in range(n):
            shape = rng.integers(len(SHAPES))
            colour = rng.integers(len(COLOURS))
            attrs.shape[i, k], attrs.colour[i, k] = shape, colour
            attrs.x[i, k], attrs.y[i, k] = centres[k]
            attrs.size[i, k] = sizes[k]
            dx = (pixel[None, :] - centres[k, 0]) * size
            dy = (pixel[:, None] - centres[k, 1]) * size
            inside = _signed_distance(SHAPES[shape], dx, dy, sizes[k] * size)
            alpha = np.clip(inside + 0.5, 0.0, 1.0)[..., None]
            rgb = np.clip(_COLOUR_RGB[colour] + rng.normal(0, 8, size=3), 0, 255)
            canvas = canvas * (1 - alpha) + rgb * alpha
        images[i] = np.round(canvas).astype(np.uint8)
        captions.append(_captions(attrs, i, rng, wording))
    return Bunch(images=images, captions=captions, attributes=attrs)


def _vocabulary():
    words = set(SHAPES + COLOURS + BACKGROUND_KINDS + BACKGROUND_COLOURS + POSITIONS + _COUNT_WORDS)
    words.update({"object", "objects", "a", "at", "the", "on", "in", "and"})
    for template in _TEMPLATES:
        for word in template.split():
            if not word.startswith("{"):
                words.add(word)
    return tuple(sorted(words))


VOCABULARY = _vocabulary()


def stimulus_fingerprint(seed=0, n_images=64, captions=True):
    """Fingerprint of the scenes and captions that :func:`make_stimuli` draws.

    Models trained on toy scenes record it, so a change of the generator
    without retraining is detected.

    Parameters
    ----------
    seed : int, default=0
        Seed passed to :func:`make_stimuli`.
    n_images : int, default=64
        Number of scenes hashed.
    captions : bool, default=True
        Whether the captions are hashed with the images. A model that sees
        only images (the toy perceptual network) records the fingerprint of
        the images alone, which a change of the captions leaves as it is.

    Returns
    -------
    fingerprint : str
        Hexadecimal SHA-256 digest.

    Examples
    --------
    >>> from brainldm.datasets.scenes import stimulus_fingerprint
    >>> stimulus_fingerprint() == stimulus_fingerprint()
    True
    >>> stimulus_fingerprint() == stimulus_fingerprint(captions=False)
    False
    """
    stim = make_stimuli(n_images, seed=seed)
    digest = hashlib.sha256(stim.images.tobytes())
    if captions:
        digest.update("\n".join("|".join(c) for c in stim.captions).encode())
    return digest.hexdigest()
