"""The ``brainldm`` command.

``brainldm demo`` runs the method end to end on the embedded default: it writes
the toy world (a simulated NSD), loads a subject through the NSD reader, encodes
the seen images and their captions with the toy latent diffusion model, fits the
two decoders, and reconstructs test images from brain activity alone.
``brainldm reconstruct`` does the same on any NSD-layout folder and model
(e.g. the real NSD with ``CompVis/stable-diffusion-v1-4``).

Every stage writes its result atomically under ``--out`` and is skipped when its
result is already there, so an interrupted run resumes where it stopped.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from brainldm._io import atomic_savez, atomic_write

__all__ = ["main", "reconstruct"]


def _cached_npz(path, compute, log):
    """Load ``path`` if it exists, else compute a dict of arrays and save it."""
    path = Path(path)
    if path.exists():
        log(f"reusing {path}")
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    arrays = compute()
    atomic_savez(path, arrays)
    return arrays


def _image_grid(columns, names, path):
    from PIL import Image, ImageDraw

    from brainldm._images import resize

    size = max(image.shape[1] for column in columns for image in column)
    pad, header = 4, 14
    n_rows, n_cols = len(columns[0]), len(columns)
    canvas = Image.new(
        "RGB", (n_cols * (size + pad) + pad, header + n_rows * (size + pad)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    for col, (column, name) in enumerate(zip(columns, names, strict=True)):
        x = pad + col * (size + pad)
        draw.text((x, 1), name, fill="black")
        for row, image in enumerate(column):
            tile = Image.fromarray(resize(image[None], size)[0])
            canvas.paste(tile, (x, header + row * (size + pad)))
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def reconstruct(
    nsd_root,
    subject,
    model,
    out,
    *,
    n_images=8,
    n_samples=1,
    steps=50,
    strength=0.8,
    guidance=5.0,
    device=None,
    cache=True,
    log=print,
):
    """Decode ``z`` and ``c`` from one subject's fMRI and reconstruct test images.

    Parameters
    ----------
    nsd_root : str or Path
        Folder in NSD's layout (the real NSD or a toy world).
    subject : int or str
        Subject, e.g. 1 or ``"subj01"``.
    model : str or Path
        ``"toy"``, a hub id or a local Stable Diffusion folder.
    out : str or Path
        Output folder; finished stages found there are reused.
    n_images : int, default=8
        Number of test images to reconstruct.
    n_samples : int, default=1
        Samples per test image (the paper draws 5).
    steps, strength, guidance : int, float, float
        DDIM steps, img2img strength and classifier-free guidance.
    device : str, default=None
        Torch device for the diffusion model and the ridge solver.
    cache : bool, default=True
        Cache the loaded betas under ``out``.
    log : callable, default=print
        Where progress lines go.

    Returns
    -------
    summary : dict
        Decoding identification accuracies and the paths written.
    """
    from brainldm.datasets.nsd import load_nsd
    from brainldm.diffusion import StableDiffusion
    from brainldm.metrics import two_way_identification

    out = Path(out)
    start = time.time()
    data = load_nsd(nsd_root, subject, cache_dir=out / "cache" if cache else None)
    log(
        f"{data.subject}: {data.X_train.shape[0]} train trials, {data.X_test.shape[0]} test images, "
        f"{data.X_train.shape[1]} voxels"
    )
    sd = StableDiffusion.from_pretrained(model, device=device)
    seen = np.unique(np.concatenate([data.images_train, data.images_test]))
    features = _cached_npz(out / "features.npz", lambda: _encode(sd, data, seen), log)
    row = {image: k for k, image in enumerate(seen)}
    train_rows = np.array([row[i] for i in data.images_train])
    test_rows = np.array([row[i] for i in data.images_test])
    decoded = _cached_npz(
        out / "decoded.npz", lambda: _decode(data, features, train_rows, device, log), log
    )
    summary = {
        "subject": data.subject,
        "model": str(model),
        "n_train_trials": int(data.X_train.shape[0]),
        "n_test_images": int(data.X_test.shape[0]),
        "identification_z": two_way_identification(features["z"][test_rows], decoded["z"]),
        "identification_c": two_way_identification(features["c"][test_rows], decoded["c"]),
    }
    log(
        f"two-way identification of decoded z: {summary['identification_z']:.3f}, "
        f"of decoded c: {summary['identification_c']:.3f} (chance 0.5)"
    )

    shown = slice(0, min(n_images, len(test_rows)))
    settings = dict(steps=steps, guidance=guidance, n_samples=n_samples, progress=True)
    images = _cached_npz(
        out / "reconstructions.npz",
        lambda: _generate(sd, data, decoded, shown, strength, settings),
        log,
    )
    names = ["original", "coarse", "z_only", "c_only", "zc"]
    columns = [images[n] if images[n].ndim == 4 else images[n][:, 0] for n in names]
    _image_grid(columns, ["seen", "X_z", "z", "c", "zc"], out / "reconstructions.png")
    summary["images"] = str(out / "reconstructions.png")
    summary["seconds"] = round(time.time() - start, 1)
    atomic_write(
        out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2))
    )
    log(f"wrote {out / 'reconstructions.png'} and {out / 'summary.json'}")
    return summary


def _encode(sd, data, seen):
    """``z`` and ``c`` of every image the subject saw, flat, in the order of ``seen``."""
    return {
        "z": sd.encode_images(data.stimuli[seen], progress=True).reshape(len(seen), -1),
        "c": sd.encode_text([data.captions[i] for i in seen], progress=True).reshape(len(seen), -1),
    }


def _decode(data, features, train_rows, device, log):
    """Fit the z decoder on early and the c decoder on ventral voxels; decode the test images."""
    from brainldm.decoding import LatentDecoder, TextDecoder

    decoded = {}
    for name, decoder, roi in (
        ("z", LatentDecoder(voxels=data.roi_masks["early"], device=device), "early"),
        ("c", TextDecoder(voxels=data.roi_masks["ventral"], device=device), "ventral"),
    ):
        log(f"fitting the {name} decoder on {int(data.roi_masks[roi].sum())} {roi} voxels")
        decoder.fit(data.X_train, features[name][train_rows], groups=data.images_train)
        decoded[name] = decoder.predict(data.X_test).astype(np.float32)
    return decoded


def _generate(sd, data, decoded, shown, strength, settings):
    """The seen images, X_z and the z-only, c-only and zc reconstructions of ``shown``."""
    z = decoded["z"][shown].reshape(-1, *sd.latent_shape)
    c = decoded["c"][shown].reshape(-1, *sd.text_shape)
    return {
        "original": data.stimuli[data.images_test[shown]],
        "coarse": sd.decode_latents(z),
        "z_only": sd.img2img(z, None, strength=strength, **settings),
        "c_only": sd.text2img(c, **settings),
        "zc": sd.img2img(z, c, strength=strength, **settings),
    }


def _parser():
    parser = argparse.ArgumentParser(prog="brainldm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def generation_options(sub):
        sub.add_argument("--subject", default="subj01")
        sub.add_argument("--n-images", type=int, default=8, help="test images to reconstruct")
        sub.add_argument("--n-samples", type=int, default=1, help="samples per image (paper: 5)")
        sub.add_argument("--steps", type=int, default=50, help="DDIM steps")
        sub.add_argument("--strength", type=float, default=0.8)
        sub.add_argument("--guidance", type=float, default=5.0)
        sub.add_argument("--device", default=None, help="e.g. cuda; default: cpu")

    demo = commands.add_parser("demo", help="the whole method on the toy world")
    demo.add_argument("--out", default="brainldm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="toy world seed")
    generation_options(demo)

    world = commands.add_parser("toy-world", help="write a simulated NSD")
    world.add_argument("root")
    world.add_argument("--seed", type=int, default=0)

    rec = commands.add_parser("reconstruct", help="decode and reconstruct from an NSD folder")
    rec.add_argument("nsd_root")
    rec.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    rec.add_argument("--out", required=True)
    generation_options(rec)
    return parser


def main(argv=None):
    """Entry point of the ``brainldm`` command."""
    args = _parser().parse_args(argv)
    if args.command == "toy-world":
        from brainldm.datasets.toy import make_toy_nsd

        print(make_toy_nsd(args.root, seed=args.seed))
        return 0
    if args.command == "demo":
        from brainldm.datasets.toy import make_toy_nsd

        nsd_root = make_toy_nsd(Path(args.out) / "toy_nsd", seed=args.seed)
        model = "toy"
    else:
        nsd_root, model = args.nsd_root, args.model
    try:
        reconstruct(
            nsd_root,
            args.subject,
            model,
            args.out,
            n_images=args.n_images,
            n_samples=args.n_samples,
            steps=args.steps,
            strength=args.strength,
            guidance=args.guidance,
            device=args.device,
        )
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"brainldm: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
