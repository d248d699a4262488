import numpy as np
import pytest

from brainldm.datasets import scenes


@pytest.fixture(scope="module")
def stim():
    return scenes.make_stimuli(300, seed=3)


def test_same_seed_gives_same_scenes():
    a, b = scenes.make_stimuli(20, seed=7), scenes.make_stimuli(20, seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions


def test_other_seed_gives_other_scenes():
    a, b = scenes.make_stimuli(20, seed=7), scenes.make_stimuli(20, seed=8)
    assert np.abs(a.images.astype(int) - b.images).mean() > 10


def test_every_image_has_five_to_seven_captions_some_more_than_five(stim):
    counts = np.array([len(c) for c in stim.captions])
    assert counts.min() == 5 and counts.max() <= 7
    assert 0.05 < np.mean(counts > 5) < 0.3


def test_captions_name_main_object_first(stim):
    a = stim.attributes
    for i, captions in enumerate(stim.captions):
        main = f"{scenes.COLOURS[a.colour[i, 0]]} {scenes.SHAPES[a.shape[i, 0]]}"
        for caption in captions:
            named = [
                f"{c} {s}" for c in scenes.COLOURS for s in scenes.SHAPES if f"{c} {s}" in caption
            ]
            first = min(named, key=caption.index)
            assert first == main, caption


def test_objects_sorted_by_size_and_unused_slots_empty(stim):
    a = stim.attributes
    for i in range(len(stim.images)):
        n = a.n_objects[i]
        assert 1 <= n <= 3
        assert np.all(np.diff(a.size[i, :n]) <= 0)
        assert np.all(a.shape[i, n:] == -1) and np.all(np.isnan(a.x[i, n:]))


def test_main_object_colour_is_visible_at_its_centre(stim):
    a = stim.attributes
    rgb = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1)}
    hits = total = 0
    for i in range(len(stim.images)):
        name = scenes.COLOURS[a.colour[i, 0]]
        if name not in rgb or scenes.SHAPES[a.shape[i, 0]] == "ring":
            continue
        col = int(a.x[i, 0] * 85)
        row = int(a.y[i, 0] * 85)
        pixel = stim.images[i, row, col].astype(int)
        hits += np.argmax(pixel) == np.argmax(rgb[name])
        total += 1
    assert total > 50 and hits / total > 0.9


def test_vocabulary_covers_every_caption_word(stim):
    vocabulary = set(scenes.VOCABULARY)
    words = {w for captions in stim.captions for c in captions for w in c.split()}
    assert words <= vocabulary


def test_fingerprint_changes_with_seed():
    assert scenes.stimulus_fingerprint(seed=0, n_images=4) != scenes.stimulus_fingerprint(
        seed=1, n_images=4
    )


def test_captions_name_the_background_kind_and_seldom_its_colour(stim):
    a = stim.attributes
    named = []
    for i, captions in enumerate(stim.captions):
        kind = scenes.BACKGROUND_KINDS[a.background_kind[i]]
        colour = scenes.BACKGROUND_COLOURS[a.background_colour[i]]
        for caption in captions:
            assert kind in caption.split(), caption
            others = set(scenes.BACKGROUND_COLOURS) - {colour}
            assert not others & set(caption.split()), caption
            named.append(f"{kind} {colour}" in caption)
    # 1,500-odd captions: the rate is known to about 0.006.
    assert np.mean(named) == pytest.approx(scenes.BACKGROUND_COLOUR_MENTION, abs=0.02)


def test_the_wording_of_the_captions_leaves_the_scenes_as_they_are(monkeypatch):
    before = scenes.make_stimuli(30, seed=5)
    monkeypatch.setattr(scenes, "BACKGROUND_COLOUR_MENTION", 1.0)
    after = scenes.make_stimuli(30, seed=5)
    np.testing.assert_array_equal(after.images, before.images)
    assert after.captions != before.captions
    assert all(
        scenes.BACKGROUND_COLOURS[after.attributes.background_colour[i]] in caption
        for i, captions in enumerate(after.captions)
        for caption in captions
    )
