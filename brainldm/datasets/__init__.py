"""Readers for the Natural Scenes Dataset and the simulated toy world."""

from brainldm.datasets.nsd import load_nsd
from brainldm.datasets.toy import load_toy_ground_truth, make_toy_nsd

__all__ = ["load_nsd", "load_toy_ground_truth", "make_toy_nsd"]
