"""SurfaceMasker: surface data to the columns of a mask and back."""

import pickle

import nibabel as nib
import numpy as np
import pytest
from nilearn.surface import InMemoryMesh, PolyMesh, SurfaceImage
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

from brainldm.surface import SurfaceMasker

MASK = {
    "left": np.array([True, False, True, True, False]),
    "right": np.array([False, True, False, False, True, True, False]),
}


def mesh(n_vertices, seed=0):
    coordinates = np.random.default_rng(seed).normal(size=(n_vertices, 3))
    faces = np.stack([np.arange(n_vertices - 2) + k for k in range(3)], axis=1)
    return InMemoryMesh(coordinates, faces)


def surface_values(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    return {hemi: rng.normal(size=(m.size, n_samples)) for hemi, m in MASK.items()}


@pytest.fixture
def masker():
    return SurfaceMasker(MASK).fit()


def test_columns_are_the_left_kept_vertices_then_the_right(masker):
    values = surface_values(4)
    X = masker.transform(values)
    expected = np.concatenate([values["left"][[0, 2, 3]], values["right"][[1, 4, 5]]]).T
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    assert X.dtype == np.float32 and masker.n_vertices_ == 6
    np.testing.assert_array_equal(
        masker.vertex_index, [[0, 0], [0, 2], [0, 3], [1, 1], [1, 4], [1, 5]]
    )


def test_inverse_transform_puts_values_back_and_zeros_outside(masker):
    X = np.arange(1, 13, dtype=np.float32).reshape(2, 6)
    back = masker.inverse_transform(X)
    assert back["left"].shape == (5, 2) and back["right"].shape == (7, 2)
    np.testing.assert_array_equal(back["left"][:, 0], [1, 0, 2, 3, 0])
    np.testing.assert_array_equal(back["right"][:, 1], [0, 10, 0, 0, 11, 12, 0])
    np.testing.assert_array_equal(masker.transform(back), X)
    np.testing.assert_array_equal(masker.inverse_transform(X[0])["left"], [1, 0, 2, 3, 0])


def test_with_a_mesh_the_round_trip_goes_through_a_surface_image():
    poly = PolyMesh(left=mesh(5), right=mesh(7, seed=1))
    masker = SurfaceMasker(MASK, mesh=poly).fit()
    X = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    image = masker.inverse_transform(X)
    assert isinstance(image, SurfaceImage) and image.shape == (12, 3)
    np.testing.assert_array_equal(masker.transform(image), X)
    assert isinstance(masker.mask_img_, SurfaceImage)
    # A surface image as the mask brings its mesh.
    from_image = SurfaceMasker(masker.mask_img_).fit()
    assert from_image.mesh_ is poly
    np.testing.assert_array_equal(from_image.vertex_index, masker.vertex_index)


@pytest.mark.parametrize("suffix", [".gii", ".mgh"])
def test_files_round_trip(masker, tmp_path, suffix):
    X = np.random.default_rng(0).normal(size=(3, 6)).astype(np.float32)
    paths = []
    for hemi, values in masker.inverse_transform(X).items():
        path = tmp_path / f"{hemi}{suffix}"
        if suffix == ".gii":
            darrays = [nib.gifti.GiftiDataArray(column) for column in values.T]
            nib.save(nib.gifti.GiftiImage(darrays=darrays), path)
        else:
            nib.save(nib.MGHImage(values.reshape(len(values), 1, 1, -1), np.eye(4)), path)
        paths.append(str(path))
    np.testing.assert_array_equal(masker.transform(paths), X)


@pytest.mark.parametrize(
    "imgs, message",
    [
        (
            {"left": np.zeros(5), "right": np.zeros(6)},
            r"right hemisphere's data have shape \(6,\).*7 vertices",
        ),
        ({"left": np.zeros(5), "middle": np.zeros(7)}, r"unknown: 'middle'"),
        ({"left": np.zeros((5, 2)), "right": np.zeros((7, 3))}, "different numbers of samples"),
    ],
)
def test_data_that_do_not_fit_the_mask_are_named(masker, imgs, message):
    with pytest.raises(ValueError, match=message):
        masker.transform(imgs)


def test_other_errors_are_named(masker):
    with pytest.raises(TypeError, match="SurfaceImage, a dict"):
        masker.transform(np.zeros(12))
    with pytest.raises(ValueError, match="masker has 6 vertices"):
        masker.inverse_transform(np.zeros(7))
    with pytest.raises(ValueError, match=r"The left mesh has 4 vertices, but mask\['left'\] has 5"):
        SurfaceMasker(MASK, mesh={"left": mesh(4), "right": mesh(7)}).fit()
    with pytest.raises(NotFittedError):
        SurfaceMasker(MASK).transform(surface_values(1))


def test_masker_follows_the_estimator_contract(masker):
    unfitted = SurfaceMasker(MASK)
    check_no_attributes_set_in_init("SurfaceMasker", unfitted)
    check_get_params_invariance("SurfaceMasker", unfitted)
    check_set_params("SurfaceMasker", unfitted)
    assert set(clone(masker).get_params()) == {"mask", "mesh"}
    assert not hasattr(clone(masker), "mask_")
    restored = pickle.loads(pickle.dumps(masker))
    values = surface_values(2)
    np.testing.assert_array_equal(restored.transform(values), masker.transform(values))
