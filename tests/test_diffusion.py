"""Specification of brainldm.diffusion, on tiny random models saved in the SD layout."""

import logging
import pickle
import re
import shutil
import time
import warnings

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image
from sklearn.base import clone

from brainldm.datasets.scenes import make_stimuli
from brainldm.diffusion import StableDiffusion, sample_generator

# Batched and one-at-a-time runs differ only by float rounding in the
# convolutions, which the decoder can turn into a flip of a uint8 level or two
# (diffusers' own batch tests allow a similar margin).
BATCH_TOLERANCE_LEVELS = 2


@pytest.fixture(scope="module")
def sd(tiny_folder):
    return StableDiffusion.from_pretrained(tiny_folder)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    # Smooth images at NSD's ratio of stimulus to working size (425 / 320 ~ 20 / 16).
    return np.stack([np.asarray(Image.fromarray(b).resize((20, 20), Image.BILINEAR)) for b in base])


@pytest.fixture(scope="module")
def captions():
    return [["a red circle", "red circle"], ["a star"], ["a ring", "ring", "a ring!"], ["x"]]


@pytest.fixture(scope="module")
def z(sd, images):
    return sd.encode_images(images)


@pytest.fixture(scope="module")
def c(sd, captions):
    return sd.encode_text(captions)


def test_from_pretrained_reads_sizes_from_brainldm_json(sd):
    assert (sd.image_size, sd.generation_size) == (16, 32)
    assert sd.latent_shape == (4, 8, 8)
    assert sd.generation_latent_shape == (4, 16, 16)
    assert sd.text_shape == (77, 32)


def test_sizes_default_to_paper_working_size_and_unet_sample_size(tiny_folder, tmp_path):
    folder = shutil.copytree(tiny_folder, tmp_path / "plain")
    (folder / "brainldm.json").unlink()
    sd = StableDiffusion.from_pretrained(folder)
    assert sd.image_size == 320
    assert sd.generation_size == 16 * 2  # unet sample_size x VAE scale factor
    assert sd.config == {}


def test_pndm_folder_runs_with_ddim_without_clipping(sd):
    assert isinstance(sd.scheduler, DDIMScheduler)
    assert sd.scheduler.config.clip_sample is False
    assert sd.scheduler.config.set_alpha_to_one is False
    assert sd.scheduler.config.steps_offset == 1


def test_takagi_schedule_noises_one_ddim_step_above_the_first_denoised(sd):
    plan = sd.schedule(steps=50, strength=0.8)
    assert plan.noise_timestep == 801
    assert len(plan.timesteps) == 40
    assert plan.timesteps[[0, -1]].tolist() == [781, 1]


def test_diffusers_schedule_noises_to_the_first_timestep_denoised(sd):
    plan = sd.schedule(steps=50, strength=0.8, noise_schedule="diffusers")
    assert plan.noise_timestep == 781
    assert plan.timesteps[[0, -1]].tolist() == [781, 1]


def test_full_strength_starts_from_pure_noise_in_takagi_schedule(sd):
    assert sd.schedule(steps=50, strength=1.0).noise_timestep is None
    assert sd.schedule(steps=50, strength=1.0, noise_schedule="diffusers").noise_timestep == 981


def test_encode_images_gives_float32_latents_of_the_working_size(z, images):
    assert z.shape == (len(images), 4, 8, 8)
    assert z.dtype == np.float32
    assert np.isfinite(z).all()


def test_encode_images_resizes_with_lanczos(sd, images):
    resized = np.stack(
        [np.asarray(Image.fromarray(im).resize((16, 16), Image.LANCZOS)) for im in images]
    )
    np.testing.assert_allclose(sd.encode_images(images), sd.encode_images(resized), atol=1e-6)


def test_encode_images_takes_the_posterior_mode_unless_asked_to_sample(sd, images, z):
    np.testing.assert_array_equal(sd.encode_images(images), z)
    sampled = sd.encode_images(images, sample_posterior=True, random_state=3)
    np.testing.assert_array_equal(
        sampled, sd.encode_images(images, sample_posterior=True, random_state=3)
    )
    assert np.abs(sampled - z).mean() > 1e-3


def test_encode_images_accepts_a_sequence_of_images_of_any_size(sd, images, z):
    sequence = [Image.fromarray(images[0]), images[1], Image.fromarray(images[2]).resize((24, 24))]
    encoded = sd.encode_images(sequence)
    assert encoded.shape == (3, 4, 8, 8)
    np.testing.assert_allclose(encoded[:2], z[:2], atol=1e-6)


def test_decode_latents_gives_uint8_images(sd, z):
    decoded = sd.decode_latents(z)
    assert decoded.shape == (len(z), 16, 16, 3)
    assert decoded.dtype == np.uint8
    assert decoded.std() > 1.0


def test_encode_text_means_the_encodings_of_an_images_captions(sd):
    both = sd.encode_text([["a red circle", "a star"]])
    each = sd.encode_text([["a red circle"], ["a star"]])
    assert both.shape == (1, 77, 32)
    np.testing.assert_allclose(both[0], each.mean(axis=0), atol=1e-5)


def test_encode_text_is_the_same_in_any_batch_size(sd, captions, c):
    np.testing.assert_allclose(sd.encode_text(captions, batch_size=1), c, atol=1e-5)


def test_img2img_gives_n_samples_images_of_the_generation_size(sd, z, c):
    out = sd.img2img(z[:2], c[:2], steps=10, n_samples_per_image=3, progress=False)
    assert out.shape == (2, 3, 32, 32, 3)
    assert out.dtype == np.uint8
    assert np.abs(out[:, 0].astype(int) - out[:, 1]).mean() > 1.0  # samples differ


def test_img2img_is_deterministic_for_a_seed(sd, z, c):
    first = sd.img2img(z[:2], c[:2], steps=10, random_state=7, progress=False)
    np.testing.assert_array_equal(
        first, sd.img2img(z[:2], c[:2], steps=10, random_state=7, progress=False)
    )
    other = sd.img2img(z[:2], c[:2], steps=10, random_state=8, progress=False)
    assert np.abs(first.astype(int) - other).mean() > 1.0


def test_diffusers_noise_schedule_reproduces_diffusers_img2img_pipeline(sd, z, c):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipeline = StableDiffusionImg2ImgPipeline(
        vae=sd.vae,
        text_encoder=sd.text_encoder,
        tokenizer=sd.tokenizer,
        unet=sd.unet,
        scheduler=DDIMScheduler.from_config(sd.scheduler.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    init = Image.fromarray(sd.decode_latents(z[:1])[0]).resize((32, 32), Image.LANCZOS)
    expected = pipeline(
        image=init,
        prompt_embeds=torch.from_numpy(c[:1]),
        strength=0.8,
        num_inference_steps=10,
        guidance_scale=5.0,
        eta=0.5,
        generator=sample_generator(5, 0, 0),
        output_type="np",
    ).images[0]
    ours = sd.img2img(
        z[:1],
        c[:1],
        steps=10,
        eta=0.5,
        random_state=5,
        noise_schedule="diffusers",
        sample_posterior=True,
        progress=False,
    )[0, 0]
    assert np.abs(ours.astype(int) - np.round(expected * 255)).max() <= 1


def test_img2img_in_batches_equals_one_at_a_time(sd, z, c):
    kwargs = dict(steps=10, n_samples_per_image=2, eta=0.5, sample_posterior=True, progress=False)
    batched = sd.img2img(z, c, batch_size=8, **kwargs)
    single = sd.img2img(z, c, batch_size=1, **kwargs)
    assert np.abs(batched.astype(int) - single).max() <= BATCH_TOLERANCE_LEVELS


def test_img2img_in_chunks_with_start_index_equals_one_call(sd, z, c):
    whole = sd.img2img(z, c, steps=10, progress=False)
    parts = [
        sd.img2img(z[i : i + 2], c[i : i + 2], steps=10, start_index=i, progress=False)
        for i in (0, 2)
    ]
    assert np.abs(whole.astype(int) - np.concatenate(parts)).max() <= BATCH_TOLERANCE_LEVELS


@pytest.mark.parametrize(
    "noise_schedule, near_zero_levels", [("diffusers", 4.0), ("takagi2023", 12.0)]
)
def test_img2img_gives_back_the_decoded_init_image_as_strength_goes_to_zero(
    sd, z, c, noise_schedule, near_zero_levels
):
    # The U-Net is random, so only the noise level brings the result back:
    # at strength 0.02 diffusers noises to t=1 and the original to t=21.
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    decoded_init = sd.decode_latents(init).astype(int)
    distance = [
        np.abs(
            sd.img2img(z, c, strength=s, noise_schedule=noise_schedule, progress=False)[:, 0]
            - decoded_init
        ).mean()
        for s in (0.02, 0.1, 0.8)
    ]
    assert distance[0] < near_zero_levels
    assert distance[0] < distance[1] < distance[2]
    assert distance[2] > 30.0


def test_z_only_control_is_conditioning_on_the_empty_prompt(sd, z):
    empty = sd.encode_text([[""]] * len(z))
    np.testing.assert_allclose(
        sd.img2img(z, None, steps=10, progress=False),
        sd.img2img(z, empty, steps=10, progress=False),
        atol=BATCH_TOLERANCE_LEVELS,
    )


def test_text2img_depends_on_c(sd, c):
    out = sd.text2img(c[:2], steps=10, progress=False)
    assert out.shape == (2, 1, 32, 32, 3)
    swapped = sd.text2img(c[[1, 0]], steps=10, start_index=0, progress=False)
    assert np.abs(out.astype(int) - swapped).mean() > 1.0


def test_denoise_ends_where_img2img_ends(sd, z, c):
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    result = sd.denoise(init, c, steps=10, read_steps="late", progress=False)
    assert result.latents.shape == (len(z), 1, 4, 16, 16)
    images = sd.img2img(z, c, steps=10, progress=False)[:, 0]
    decoded = sd.decode_latents(result.latents[:, 0])
    assert np.abs(images.astype(int) - decoded).max() <= BATCH_TOLERANCE_LEVELS


def test_denoise_reads_latents_at_the_named_steps(sd, z, c):
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    all_steps = sd.denoise(init, c, steps=10, read_steps=list(range(8)), progress=False)
    some = sd.denoise(init, c, steps=10, read_steps=["middle", 1, "early"], progress=False)
    assert some.steps.tolist() == [4, 1, 0]
    assert some.timesteps.tolist() == [301, 601, 701]
    np.testing.assert_allclose(some.latents, all_steps.latents[:, [4, 1, 0]], atol=1e-5)


def test_hooks_capture_the_named_layers_at_the_named_steps_only(sd, z, c):
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    layers = ["down_blocks.1", "mid_block"]
    one = sd.denoise(init, c, steps=10, read_steps=[3], layers=layers, progress=False)
    two = sd.denoise(init, c, steps=10, read_steps=[0, 3], layers=layers, progress=False)
    assert list(two.activations) == layers
    assert two.activations["mid_block"].shape == (len(z), 2, 64, 2, 2)
    for layer in layers:
        np.testing.assert_allclose(
            one.activations[layer][:, 0], two.activations[layer][:, 1], atol=1e-5
        )
        assert np.abs(two.activations[layer][:, 0] - two.activations[layer][:, 1]).mean() > 1e-4
    assert all(not module._forward_hooks for module in sd.unet.modules())


def test_pool_size_one_is_the_mean_of_the_pooled_grid(sd, z, c):
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    kwargs = dict(steps=10, read_steps=[2], layers=["up_blocks.1"], progress=False)
    grid = sd.denoise(init, c, pool_size=2, **kwargs).activations["up_blocks.1"]
    mean = sd.denoise(init, c, pool_size=1, **kwargs).activations["up_blocks.1"]
    np.testing.assert_allclose(mean[..., 0, 0], grid.mean(axis=(-2, -1)), atol=1e-5)


def test_the_step_callback_sees_every_timestep_of_the_schedule_in_every_batch(sd, z, c):
    calls = []

    def record(model, step, timestep, callback_kwargs):
        jobs = zip(callback_kwargs["image_indices"], callback_kwargs["sample_indices"], strict=True)
        calls.append((model, step, timestep, list(jobs), tuple(callback_kwargs["latents"].shape)))

    sd.img2img(
        z[:3], c[:3], steps=10, n_samples_per_image=2, batch_size=4, callback_on_step_end=record
    )
    timesteps = sd.schedule(steps=10).timesteps.tolist()
    assert all(model is sd for model, *_ in calls)
    assert [timestep for _, _, timestep, _, _ in calls] == timesteps * 2  # two batches
    assert [step for _, step, _, _, _ in calls] == list(range(len(timesteps))) * 2
    assert {job for *_, jobs, _ in calls for job in jobs} == {
        (j, i) for j in range(3) for i in (0, 1)
    }
    assert {shape for *_, shape in calls} == {(4, 4, 16, 16), (2, 4, 16, 16)}


def test_a_callback_that_returns_nothing_changes_nothing(sd, z, c):
    plain = sd.img2img(z[:2], c[:2], steps=10, eta=0.5)
    quiet = sd.img2img(z[:2], c[:2], steps=10, eta=0.5, callback_on_step_end=lambda *args: None)
    np.testing.assert_array_equal(quiet, plain)


def test_latents_the_callback_returns_replace_the_loops(sd, c):
    def zero_after(last):
        def callback(model, step, timestep, callback_kwargs):
            if step == last:
                return {"latents": torch.zeros_like(callback_kwargs["latents"])}

        return callback

    plain = sd.text2img(c[:2], steps=10)
    at_the_end = sd.text2img(c[:2], steps=10, callback_on_step_end=zero_after(9))
    zeros = sd.decode_latents(np.zeros((2,) + sd.generation_latent_shape, np.float32))
    np.testing.assert_array_equal(at_the_end[:, 0], zeros)
    midway = sd.text2img(c[:2], steps=10, callback_on_step_end=zero_after(4))
    assert np.abs(midway.astype(int) - plain).mean() > 1.0
    assert np.abs(midway.astype(int) - at_the_end).mean() > 1.0


def test_z_c_is_the_latent_the_img2img_callback_sees(sd, z, c):
    seen = {}

    def record(model, step, timestep, callback_kwargs):
        if step in (1, 6):
            seen[step] = callback_kwargs["latents"].cpu().numpy().copy()

    sd.img2img(z, c, steps=10, batch_size=8, callback_on_step_end=record)
    init = sd.encode_images(sd.decode_latents(z), size=sd.generation_size)
    result = sd.denoise(init, c, steps=10, read_steps=[1, 6], batch_size=8)
    np.testing.assert_array_equal(result.latents[:, 0], seen[1])
    np.testing.assert_array_equal(result.latents[:, 1], seen[6])


# The original code's choices (Takagi & Nishimoto's diffusion_decoding.py), offered as options.

ORIGINAL_COARSE_IMAGE = [
    dict(rounding="round", upsample="lanczos"),
    dict(rounding="truncate", upsample="lanczos"),
    dict(rounding="round", upsample="bicubic"),
]


def _upsampled(images, resample=Image.LANCZOS):
    """Coarse images resized to the tiny model's generation size, 32 px."""
    return np.stack([np.asarray(Image.fromarray(x).resize((32, 32), resample)) for x in images])


def _last_latents(sd, z, c, **kwargs):
    """The final latents of an img2img run, as its callback sees them, and the images."""
    seen = {}

    def record(model, step, timestep, callback_kwargs):
        seen["latents"] = callback_kwargs["latents"].cpu().numpy().copy()

    images = sd.img2img(z, c, steps=10, callback_on_step_end=record, **kwargs)
    return seen["latents"], images


def test_truncation_is_rounding_or_one_level_below(sd, z):
    rounded = sd.decode_latents(z).astype(int)
    truncated = sd.decode_latents(z, rounding="truncate")
    assert set(np.unique(rounded - truncated).tolist()) == {0, 1}
    assert 0.3 < (rounded - truncated).mean() < 0.7  # half a level on average


@pytest.mark.parametrize("options", ORIGINAL_COARSE_IMAGE, ids=lambda o: "-".join(o.values()))
def test_img2img_denoises_the_encoded_coarse_image_as_the_options_make_it(sd, z, c, options):
    latents, images = _last_latents(sd, z, c, **options)
    coarse = sd.decode_latents(z, rounding=options["rounding"])
    resample = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC}[options["upsample"]]
    init = sd.encode_images(_upsampled(coarse, resample), size=sd.generation_size)
    np.testing.assert_array_equal(sd.denoise(init, c, steps=10).latents[:, 0], latents)
    np.testing.assert_array_equal(
        images[:, 0], sd.decode_latents(latents, rounding=options["rounding"])
    )


@pytest.mark.parametrize("options", ORIGINAL_COARSE_IMAGE[1:], ids=lambda o: "-".join(o.values()))
def test_each_coarse_image_option_changes_the_reconstruction(sd, z, c, options):
    default, _ = _last_latents(sd, z, c)
    assert np.abs(_last_latents(sd, z, c, **options)[0] - default).mean() > 1e-3


def test_text2img_truncation_only_moves_the_returned_images_down_a_level(sd, c):
    rounded = sd.text2img(c[:2], steps=10).astype(int)
    truncated = sd.text2img(c[:2], steps=10, rounding="truncate")
    assert set(np.unique(rounded - truncated).tolist()) == {0, 1}


def _first_step_x0(sd, z, c, sample_posterior, n_samples=3, seed=42):
    """The x0 each sample was noised from, recovered from the latents after the first DDIM step.

    With eta 0 a DDIM step is invertible given its noise prediction, and each
    sample's initial noise is the next draw of its generator (after its
    posterior sample, if it draws one).
    """
    seen = {}

    def record(model, step, timestep, callback_kwargs):
        if step == 0:
            latents, noise_pred = callback_kwargs["latents"], callback_kwargs["noise_pred"]
            jobs = zip(
                callback_kwargs["image_indices"], callback_kwargs["sample_indices"], strict=True
            )
            for row, job in enumerate(jobs):
                seen[job] = (latents[row].clone(), noise_pred[row].clone())

    sd.img2img(
        z,
        c,
        steps=10,
        n_samples_per_image=n_samples,
        random_state=seed,
        sample_posterior=sample_posterior,
        callback_on_step_end=record,
    )
    plan = sd.schedule(steps=10)
    alpha = sd.scheduler.alphas_cumprod
    a_t, a_prev = alpha[int(plan.timesteps[0])], alpha[int(plan.timesteps[1])]
    a_noise = alpha[plan.noise_timestep]
    x0 = np.zeros((len(z), n_samples) + sd.generation_latent_shape, np.float32)
    for (j, i), (after, noise_pred) in seen.items():
        predicted = (after - (1 - a_prev).sqrt() * noise_pred) / a_prev.sqrt()
        before = a_t.sqrt() * predicted + (1 - a_t).sqrt() * noise_pred
        generator = sample_generator(seed, j, i)
        draws = [torch.randn(sd.generation_latent_shape, generator=generator) for _ in range(2)]
        noise = draws[1] if sample_posterior else draws[0]
        x0[j, i] = (before - (1 - a_noise).sqrt() * noise) / a_noise.sqrt()
    return x0


def test_per_image_posterior_sample_is_shared_by_the_images_samples(sd, z, c):
    upsampled = _upsampled(sd.decode_latents(z[:2]))
    mode = sd.encode_images(upsampled, size=sd.generation_size)
    drawn = sd.encode_images(
        upsampled, size=sd.generation_size, sample_posterior=True, random_state=42
    )
    tolerance = dict(atol=1e-4, rtol=0)
    # The recovery is exact where x0 is known: the mode, for every sample.
    np.testing.assert_allclose(
        _first_step_x0(sd, z[:2], c[:2], False), mode[:, None].repeat(3, 1), **tolerance
    )
    shared = _first_step_x0(sd, z[:2], c[:2], "per-image")
    np.testing.assert_allclose(shared, drawn[:, None].repeat(3, 1), **tolerance)
    own = _first_step_x0(sd, z[:2], c[:2], True)
    np.testing.assert_allclose(own[:, 0], drawn, **tolerance)
    assert np.abs(own[:, 1:] - drawn[:, None]).mean() > 1e-2


def test_per_image_posterior_changes_only_the_samples_after_the_first(sd, z, c):
    kwargs = dict(steps=10, n_samples_per_image=2, eta=0.5)
    own = sd.img2img(z[:2], c[:2], sample_posterior=True, **kwargs)
    shared = sd.img2img(z[:2], c[:2], sample_posterior="per-image", **kwargs)
    np.testing.assert_array_equal(shared[:, 0], own[:, 0])
    assert np.abs(shared[:, 1].astype(int) - own[:, 1]).mean() > 1.0


def test_images_of_the_same_id_get_the_same_noise(sd, z, c):
    # At strength 1 the chain starts from pure noise: with equal c, only the noise is left.
    kwargs = dict(strength=1.0, steps=10, sample_posterior="per-image")
    same = sd.img2img(z[:2], c[[0, 0]], image_ids=[0, 0], **kwargs)
    np.testing.assert_array_equal(same[0], same[1])
    apart = sd.img2img(z[:2], c[[0, 0]], **kwargs)
    assert np.abs(apart[0].astype(int) - apart[1]).mean() > 1.0


def test_text2img_images_of_the_same_id_get_the_same_noise(sd, c):
    same = sd.text2img(c[[1, 1]], steps=10, image_ids=[4, 4])
    np.testing.assert_array_equal(same[0], same[1])


def test_image_ids_replace_start_index_plus_row(sd, z, c):
    np.testing.assert_array_equal(
        sd.img2img(z[:2], c[:2], steps=10, image_ids=[5, 6]),
        sd.img2img(z[:2], c[:2], steps=10, start_index=5),
    )


def test_denoise_reads_the_latents_the_callback_leaves(sd, c):
    def zero_at_step_2(model, step, timestep, callback_kwargs):
        if step == 2:
            return {"latents": torch.zeros_like(callback_kwargs["latents"])}

    init = np.ones((2,) + sd.generation_latent_shape, np.float32)
    result = sd.denoise(
        init, c[:2], steps=10, read_steps=[1, 2], callback_on_step_end=zero_at_step_2
    )
    assert np.abs(result.latents[:, 0]).mean() > 0.1
    assert not result.latents[:, 1].any()


def test_default_layers_are_two_down_blocks_the_mid_block_and_two_up_blocks(sd):
    assert sd.default_layers == (
        "down_blocks.0",
        "down_blocks.1",
        "mid_block",
        "up_blocks.0",
        "up_blocks.1",
    )


def test_unet_output_shapes_match_the_captured_activations(sd, z, c):
    shapes = sd.unet_output_shapes(pool_size=3)
    init = sd.encode_images(sd.decode_latents(z[:1]), size=sd.generation_size)
    result = sd.denoise(init, c[:1], steps=5, layers=None, pool_size=3, progress=False)
    assert {name: value.shape[2:] for name, value in result.activations.items()} == shapes
    assert shapes["mid_block"] == (64, 3, 3)


def test_library_calls_show_no_progress_bar_unless_asked(sd, z, c, capfd):
    init = np.zeros((1,) + sd.generation_latent_shape, np.float32)
    sd.img2img(z[:1], c[:1], steps=2)
    sd.text2img(c[:1], steps=2)
    sd.denoise(init, c[:1], steps=2)
    assert capfd.readouterr().err == ""
    sd.img2img(z[:1], c[:1], steps=2, progress=True)
    assert "denoising" in capfd.readouterr().err


@pytest.mark.parametrize("source", ["toy", "tiny"])
def test_loading_and_casting_print_and_warn_nothing(source, tiny_folder, capfd):
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = StableDiffusion.from_pretrained(tiny_folder if source == "tiny" else "toy")
            model.to(dtype="bfloat16").to(dtype="float32")
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    assert [str(warning.message) for warning in caught] == []
    assert [record.getMessage() for record in records] == []
    assert capfd.readouterr() == ("", "")
    assert model.dtype == torch.float32


def test_pickle_stores_the_source_not_the_weights(sd, z):
    data = pickle.dumps(sd)
    assert len(data) < 2_000
    np.testing.assert_array_equal(pickle.loads(data).decode_latents(z), sd.decode_latents(z))


def test_clone_shares_the_model(sd):
    assert clone(sd) is sd


@pytest.mark.parametrize(
    "shape, message",
    [((2, 4, 16, 16), r"\(n_images, 4, 8, 8\)"), ((2, 3, 8, 8), r"\(n_images, 4, 8, 8\)")],
)
def test_z_of_the_wrong_shape_names_the_expected_shape(sd, shape, message):
    with pytest.raises(ValueError, match=message):
        sd.img2img(np.zeros(shape, np.float32), steps=10, progress=False)


@pytest.mark.parametrize("shape", [(1, 77, 16), (1, 76, 32)])
def test_c_of_the_wrong_size_names_the_expected_shape(sd, z, shape):
    with pytest.raises(ValueError, match=r"c must have shape \(n_images, 77, 32\)"):
        sd.img2img(z[:1], np.zeros(shape, np.float32), steps=10, progress=False)


def test_an_image_without_captions_is_named(sd):
    with pytest.raises(ValueError, match="image 1 has no captions"):
        sd.encode_text([["a star"], []])


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5])
def test_strength_outside_zero_one_is_rejected(sd, z, strength):
    message = r"The 'strength' parameter of img2img must be a float in the range \(0.0, 1.0\]"
    with pytest.raises(ValueError, match=message):
        sd.img2img(z[:1], strength=strength, progress=False)


def test_strength_that_leaves_no_step_is_rejected(sd, z):
    with pytest.raises(ValueError, match="0 denoising steps; raise strength or steps"):
        sd.img2img(z[:1], strength=0.01, steps=50, progress=False)


def test_text2img_without_c_is_rejected(sd):
    with pytest.raises(ValueError, match="text2img needs one c per image"):
        sd.text2img(None, progress=False)


def test_image_ids_must_be_one_per_image(sd):
    with pytest.raises(ValueError, match="image_ids has 1 ids for 2 images"):
        sd.denoise(np.zeros((2, 4, 16, 16), np.float32), steps=10, image_ids=[3], progress=False)


def test_steps_below_one_are_rejected(sd, z):
    message = r"The 'steps' parameter of img2img must be an int in the range \[1, inf\). Got 0"
    with pytest.raises(ValueError, match=message):
        sd.img2img(z[:1], steps=0, progress=False)


def test_unknown_noise_schedule_is_rejected(sd, z):
    with pytest.raises(ValueError, match="The 'noise_schedule' parameter of img2img must be a str"):
        sd.img2img(z[:1], noise_schedule="ddpm", progress=False)


@pytest.mark.parametrize(
    "option",
    [dict(sample_posterior="per-sample"), dict(rounding="floor"), dict(upsample="nearest")],
)
def test_unknown_original_code_options_are_rejected(sd, z, option):
    (name,) = option
    with pytest.raises(ValueError, match=f"The '{name}' parameter of img2img must be"):
        sd.img2img(z[:1], steps=10, **option)


def test_read_steps_outside_the_steps_run_are_rejected(sd, z):
    init = np.zeros((1, 4, 16, 16), np.float32)
    with pytest.raises(ValueError, match="outside the 8 steps run"):
        sd.denoise(init, steps=10, read_steps=[8], progress=False)


def test_unknown_layer_lists_the_blocks(sd):
    with pytest.raises(ValueError, match=r"\['down_blocks.7'\] are not modules.*mid_block"):
        sd.unet_output_shapes(["down_blocks.7"])


def test_float_images_are_rejected_with_the_conversion(sd):
    with pytest.raises(ValueError, match=r"uint8 in \[0, 255\], got float64"):
        sd.encode_images(np.zeros((1, 16, 16, 3)))


def test_a_folder_missing_a_component_names_it(tiny_folder, tmp_path):
    folder = shutil.copytree(tiny_folder, tmp_path / "broken")
    shutil.rmtree(folder / "unet")
    with pytest.raises(FileNotFoundError, match="has no unet folder"):
        StableDiffusion.from_pretrained(folder)


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        StableDiffusion.from_pretrained(tmp_path / "nowhere")


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    for variable in ("HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.setenv(variable, str(tmp_path / variable))
    for variable in ("BRAINLDM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)


def test_an_unreachable_hub_fails_in_one_quiet_attempt(empty_hub_cache, unreachable_hub, capfd):
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"hf download brainldm-tests/no-such-model"):
        StableDiffusion.from_pretrained("brainldm-tests/no-such-model")
    assert time.perf_counter() - start < 5
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("variable", ["BRAINLDM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_a_declared_offline_machine_asks_no_hub(empty_hub_cache, monkeypatch, capfd, variable):
    import huggingface_hub

    monkeypatch.setenv(variable, "1")
    # Any request would fail loudly here: the error must come before one is made.
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", None)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=f"{variable}=1 declares this machine offline"):
        StableDiffusion.from_pretrained("brainldm-tests/no-such-model")
    assert time.perf_counter() - start < 2
    assert capfd.readouterr() == ("", "")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_without_a_gpu_says_what_to_do(tiny_folder):
    with pytest.raises(RuntimeError, match="device='cuda'.*pass device='cpu'"):
        StableDiffusion.from_pretrained(tiny_folder, device="cuda")


def test_unknown_dtype_is_rejected(tiny_folder):
    with pytest.raises(ValueError, match="dtype must be one of"):
        StableDiffusion.from_pretrained(tiny_folder, dtype="int8")


@pytest.mark.gpu
def test_fp16_on_cuda_matches_fp32(tiny_folder, z, c):
    fp32 = StableDiffusion.from_pretrained(tiny_folder, device="cuda")
    fp16 = StableDiffusion.from_pretrained(tiny_folder, device="cuda", dtype="float16")
    assert fp16.dtype == torch.float16
    reference = fp32.img2img(z, c, steps=10, progress=False).astype(int)
    assert np.abs(fp16.img2img(z, c, steps=10, progress=False) - reference).mean() < 2.0


def test_toy_model_loads_and_round_trips_caption_token_ids():
    toy = StableDiffusion.from_pretrained("toy")
    assert (toy.image_size, toy.generation_size, toy.latent_shape) == (64, 64, (4, 16, 16))
    caption = make_stimuli(1, seed=0).captions[0][0]
    ids = toy.tokenizer(caption).input_ids
    assert toy.tokenizer.unk_token_id not in ids
    words = re.findall(r"\w+|[^\w\s]", caption.lower())
    assert toy.tokenizer.convert_ids_to_tokens(ids)[1:-1] == words
