"""Maps on the cortical surface: fsaverage meshes and vertex orders.

NSD's surface data live on FreeSurfer's fsaverage (163,842 vertices per
hemisphere); figures are drawn on nilearn's bundled fsaverage5 (10,242), which
needs no download. fsaverage's vertex order is icosahedral, so every order
nests in the finer ones: :func:`icosahedral_order` names the order of a vertex
count, :func:`to_fsaverage5` brings a map of any order to fsaverage5, and
:func:`load_fsaverage5` gives the meshes (inflated, flat, pial, white matter,
sphere) and the sulcal depth drawn under the maps. A whole-surface array is
the left hemisphere's vertices followed by the right's.
"""

from brainldm._fsaverage import icosahedral_order, load_fsaverage5, to_fsaverage5

__all__ = ["icosahedral_order", "load_fsaverage5", "to_fsaverage5"]
