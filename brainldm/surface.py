"""Cortical surfaces: NSD's per-voxel maps on fsaverage and on the subject's own surface.

:class:`NSDSurfaceMapper` carries per-voxel maps of a subject's func1pt8mm volume (betas,
prediction accuracies, unique variances) onto fsaverage through the transform files of
NSD's release, as nsdcode's ``NSDmapdata`` does; :func:`read_nsd_transforms` reads those
files. Whole-surface arrays hold the left hemisphere's vertices, then the right's.
"""

from brainldm._surface_mapping import HEMISPHERES, LAYERS, NSDSurfaceMapper, read_nsd_transforms

__all__ = ["HEMISPHERES", "LAYERS", "NSDSurfaceMapper", "read_nsd_transforms"]
