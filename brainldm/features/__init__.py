"""Features of stimuli for voxelwise encoding models and identification metrics.

Each extractor is a scikit-learn transformer that turns stimuli into a 2-D
float32 array (n_samples, n_features) that feeds ridge models directly.

- :mod:`brainldm.features.base`: the :class:`FeatureExtractor` contract that
  plug-in extractors follow, and :data:`MODEL_CACHE`, through which extractors
  share the networks they load.
- :mod:`brainldm.features.ldm`: the latent diffusion model's parts: ``z``
  (:class:`LatentFeatures`), ``c`` (:class:`TextFeatures`), ``z_c``
  (:class:`DenoisedLatentFeatures`) and U-Net activations
  (:class:`UNetLayerFeatures`); :func:`denoising_features`, all of them at
  several img2img strengths and denoising steps from one pass per strength.
- :mod:`brainldm.features.perceptual`: the perceptual networks of the
  identification metrics (AlexNet, Inception V3, EfficientNet-B1, SwAV
  ResNet-50, CLIP ViT-L/14, and the toy world's own network).
- :mod:`brainldm.features.reduction`: :class:`FeatureReducer`, the z-scoring
  and PCA (incremental when large) that reduce a feature space for the
  encoding models.

Names are imported on first use, so ``import brainldm.features`` loads neither
torch nor the diffusion model.
"""

from brainldm._lazy import lazy_exports

_BASE = "brainldm.features.base"
_LDM = "brainldm.features.ldm"
_PERCEPTUAL = "brainldm.features.perceptual"
_REDUCTION = "brainldm.features.reduction"
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "FeatureExtractor": _BASE,
        "MODEL_CACHE": _BASE,
        "ModelCache": _BASE,
        "clear_model_cache": _BASE,
        "DenoisedLatentFeatures": _LDM,
        "LDMFeatures": _LDM,
        "LatentFeatures": _LDM,
        "TextFeatures": _LDM,
        "UNetLayerFeatures": _LDM,
        "content_id": _LDM,
        "denoising_features": _LDM,
        "image_caption_pairs": _LDM,
        "load_ldm": _LDM,
        "AlexNetFeatures": _PERCEPTUAL,
        "CLIPVisionFeatures": _PERCEPTUAL,
        "EfficientNetFeatures": _PERCEPTUAL,
        "InceptionFeatures": _PERCEPTUAL,
        "PerceptualFeatures": _PERCEPTUAL,
        "SwAVFeatures": _PERCEPTUAL,
        "ToyPerceptualFeatures": _PERCEPTUAL,
        "find_weights": _PERCEPTUAL,
        "load_perceptual_network": _PERCEPTUAL,
        "prepare_images": _PERCEPTUAL,
        "FeatureReducer": _REDUCTION,
    },
)
