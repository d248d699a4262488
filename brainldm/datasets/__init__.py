"""Readers for the Natural Scenes Dataset and the simulated toy world."""
