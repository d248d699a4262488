"""Data on the cortical surface: per-vertex values of both hemispheres.

NSD publishes its betas on FreeSurfer's fsaverage surface as well as in each
subject's volume; :func:`brainldm.datasets.nsd.load_nsd` reads them with
``space="fsaverage"``. :class:`SurfaceMasker` maps surface data (nilearn
``SurfaceImage``, per-hemisphere arrays, GIFTI or FreeSurfer files) to the
columns of a load and back. Hemispheres are ordered left, then right.
"""

from brainldm._surface_masker import SurfaceMasker

__all__ = ["SurfaceMasker"]
