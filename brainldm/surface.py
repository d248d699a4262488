"""Data and maps on the cortical surface: NSD's transforms, fsaverage meshes, maskers.

NSD publishes its betas on FreeSurfer's fsaverage surface (163,842 vertices per
hemisphere) as well as in each subject's volume;
:func:`brainldm.datasets.nsd.load_nsd` reads them with ``space="fsaverage"``.
:class:`SurfaceMasker` maps surface data (nilearn ``SurfaceImage``,
per-hemisphere arrays, GIFTI or FreeSurfer files) to the columns of a load and
back. :class:`NSDSurfaceMapper` carries per-voxel maps of a subject's func1pt8mm
volume (betas, prediction accuracies, unique variances) onto fsaverage through
the transform files of NSD's release, as nsdcode's ``NSDmapdata`` does;
:func:`read_nsd_transforms` reads those files.

Figures are drawn on nilearn's bundled fsaverage5 (10,242 vertices), which needs
no download. fsaverage's vertex order is icosahedral, so every order nests in the
finer ones: :func:`icosahedral_order` names the order of a vertex count,
:func:`to_fsaverage5` brings a map of any order to fsaverage5, and
:func:`load_fsaverage5` gives the meshes (inflated, flat, pial, white matter,
sphere) and the sulcal depth drawn under the maps. A whole-surface array is the
left hemisphere's vertices followed by the right's.
"""

from brainldm._fsaverage import icosahedral_order, load_fsaverage5, to_fsaverage5
from brainldm._surface_mapping import (
    HEMISPHERES,
    LAYERS,
    NSDSurfaceMapper,
    read_nsd_transforms,
    vote_labels,
)
from brainldm._surface_masker import SurfaceMasker

__all__ = [
    "HEMISPHERES",
    "LAYERS",
    "NSDSurfaceMapper",
    "SurfaceMasker",
    "icosahedral_order",
    "load_fsaverage5",
    "read_nsd_transforms",
    "to_fsaverage5",
    "vote_labels",
]
