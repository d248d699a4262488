"""The estimators follow the scikit-learn estimator contract."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainldm.decoding import LatentDecoder, TextDecoder
from brainldm.encoding import BandedVariancePartitioner, VoxelwiseEncoder
from brainldm.reconstruction import LDMReconstructor

# LDMReconstructor's y is the images each row saw, uint8 (n, height, width, 3):
# the checks that fit it pass numeric targets, which it rejects by design.
_IMAGES_AS_Y = (
    "y is the seen images, uint8 of shape (n, height, width, 3); the check fits on numbers"
)
_RECONSTRUCTOR_FAILS = {
    check: _IMAGES_AS_Y
    for check in (
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    )
}


def _expected_failures(estimator):
    return _RECONSTRUCTOR_FAILS if isinstance(estimator, LDMReconstructor) else {}


# The checks fit on pure noise, where the largest alpha rightly wins and the solver says so.
@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
# Their data have fewer features than the encoder's 6,400 components, which it caps and says so.
@pytest.mark.filterwarnings("ignore:n_components=6400 is more than:UserWarning")
# The checks' data have few rows; himalaya says that banded ridge is then slow.
@pytest.mark.filterwarnings("ignore:Solving banded ridge is slower:UserWarning")
@parametrize_with_checks(
    [
        LatentDecoder(),
        TextDecoder(),
        LDMReconstructor(latent_decoder=LatentDecoder()),
        VoxelwiseEncoder(),
        # Bands that fit the checks' data: the first column, then the rest.
        BandedVariancePartitioner(
            bands=(("first", 1), ("rest", None)), n_components=None, n_iter=3
        ),
    ],
    expected_failed_checks=_expected_failures,
)
def test_estimator_follows_the_estimator_contract(estimator, check):
    check(estimator)
