"""Data and maps on the cortical surface: fsaverage meshes, vertex orders, maskers.

NSD publishes its betas on FreeSurfer's fsaverage surface (163,842 vertices per
hemisphere) as well as in each subject's volume;
:func:`brainldm.datasets.nsd.load_nsd` reads them with ``space="fsaverage"``.
:class:`SurfaceMasker` maps surface data (nilearn ``SurfaceImage``,
per-hemisphere arrays, GIFTI or FreeSurfer files) to the columns of a load and
back. Figures are drawn on nilearn's bundled fsaverage5 (10,242 vertices), which
needs no download. fsaverage's vertex order is icosahedral, so every order nests
in the finer ones: :func:`icosahedral_order` names the order of a vertex count,
:func:`to_fsaverage5` brings a map of any order to fsaverage5, and
:func:`load_fsaverage5` gives the meshes (inflated, flat, pial, white matter,
sphere) and the sulcal depth drawn under the maps. A whole-surface array is the
left hemisphere's vertices followed by the right's.
"""

from brainldm._fsaverage import icosahedral_order, load_fsaverage5, to_fsaverage5
from brainldm._surface_masker import SurfaceMasker

__all__ = ["SurfaceMasker", "icosahedral_order", "load_fsaverage5", "to_fsaverage5"]
