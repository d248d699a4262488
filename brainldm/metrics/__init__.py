"""Scores of decoded features and reconstructed images."""

from brainldm.metrics.identification import two_way_identification

__all__ = ["two_way_identification"]
