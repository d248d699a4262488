"""The decoders follow the scikit-learn estimator contract."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from brainldm.decoding import LatentDecoder, TextDecoder


# The checks fit on pure noise, where the largest alpha rightly wins and the solver says so.
@pytest.mark.filterwarnings("ignore:the (smallest|largest) alpha:UserWarning")
@parametrize_with_checks([LatentDecoder(), TextDecoder()])
def test_decoder_follows_the_estimator_contract(estimator, check):
    check(estimator)
