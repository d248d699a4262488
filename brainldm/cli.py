"""The ``brainldm`` command: the paper's decoding half, from NSD-layout files to figures and scores.

``brainldm demo`` runs it on the embedded default: it writes the toy world (a
simulated NSD), loads a subject through the NSD reader, fits an
:class:`~brainldm.reconstruction.LDMReconstructor` (``z`` decoded from early,
``c`` from ventral visual cortex), reconstructs test images in the modes
``z``, ``c`` and ``zc`` (and ``X_z``), and scores them by identification.
``brainldm reconstruct`` does the same on any NSD-layout folder and model
(e.g. the real NSD with ``CompVis/stable-diffusion-v1-4``); ``brainldm
evaluate`` scores saved reconstructions; ``brainldm encode`` runs the four
encoding analyses; ``brainldm toy-world`` writes a toy world.

Each command maps its arguments to a function of :mod:`brainldm.workflows`
(the same from Python) and prints from the result it returns. Every stage
(the loaded betas, the fitted reconstructor, the generated images, the
scores) is written atomically under ``--out`` and reused when found there,
so an interrupted run resumes where it stopped.
"""

import argparse
import sys
from pathlib import Path

from brainldm._validation import subject_name
from brainldm.metrics.identification import PROTOCOLS as _PROTOCOLS
from brainldm.workflows._encode import (
    ENCODE_CHUNK_SIZE,
    ENCODE_N_ITER,
    ENCODE_STEPS,
    ENCODE_STRENGTHS,
)
from brainldm.workflows._reconstruct import DEMO_BATCH_SIZE, DEMO_N_IMAGES, DEMO_STEPS

__all__ = ["main"]


def _count(value):
    """``--n-images``: a count of at least 2, or ``all`` (None)."""
    if value == "all":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or an integer >= 2, got {value!r}")
    return count


def _subjects(value):
    """``--subjects``: ``all`` (the paper's four) or a comma-separated list."""
    from brainldm.datasets.toy import SUBJECTS

    if value == "all":
        return list(SUBJECTS)
    try:
        return [subject_name(s) for s in value.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _names(value):
    return [name.strip() for name in value.split(",") if name.strip()]


def _encode_parser(commands):
    """The options of ``brainldm encode``."""
    enc = commands.add_parser("encode", help="the paper's four encoding analyses (Figures 6-9)")
    enc.add_argument(
        "--nsd-root", default=None, help="NSD folder (default: the toy world, made under --out)"
    )
    enc.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    enc.add_argument("--out", default="brainldm-encode", help="output folder")
    enc.add_argument(
        "--subjects",
        "--subject",
        type=_subjects,
        default=["subj01"],
        help="e.g. subj01, 1,2 or all (subj01, subj02, subj05, subj07)",
    )
    enc.add_argument(
        "--analyses",
        type=_names,
        default=None,
        help="comma-separated among representations, noise_levels, denoising_stages, "
        "unet_layers (default: all four)",
    )
    enc.add_argument(
        "--strengths",
        type=lambda v: [float(x) for x in _names(v)],
        default=list(ENCODE_STRENGTHS),
        help="img2img strengths (default: 0.2,0.4,0.6,0.8)",
    )
    enc.add_argument(
        "--steps", type=int, default=ENCODE_STEPS, help="DDIM steps (default: %(default)s)"
    )
    enc.add_argument("--stage-strength", type=float, default=0.8, help="chain read at its steps")
    enc.add_argument(
        "--layers",
        type=_names,
        default=None,
        help="U-Net modules, e.g. down_blocks.0,mid_block (default: the model's five)",
    )
    enc.add_argument(
        "--pool-size",
        default="auto",
        type=lambda v: v if v == "auto" else int(v),
        help="pooling grid of the U-Net activations (default: auto, keeping n-components values)",
    )
    enc.add_argument("--n-components", type=int, default=6400, help="PCA size (default: 6400)")
    enc.add_argument(
        "--n-iter",
        type=int,
        default=ENCODE_N_ITER,
        help="banded ridge's random-search iterations (default: %(default)s)",
    )
    enc.add_argument(
        "--chunk-size",
        type=int,
        default=ENCODE_CHUNK_SIZE,
        help="voxels fitted (and saved) together (default: %(default)s)",
    )
    enc.add_argument("--seed", type=int, default=42, help="seed of the img2img noise")
    enc.add_argument("--batch-size", type=int, default=16, help="images denoised at once")
    enc.add_argument("--device", default=None, help="e.g. cuda; default: cpu")
    enc.add_argument(
        "--single-trials",
        action="store_true",
        help="fit on single trials, not on each training image's mean betas",
    )
    enc.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and BLAS threads (default: 1, robust on a shared 2-core machine)",
    )
    enc.add_argument(
        "--dask",
        default=None,
        help="one subject per dask worker: a number of local workers or a scheduler address",
    )


def _parser():
    parser = argparse.ArgumentParser(prog="brainldm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def scoring_options(sub):
        sub.add_argument(
            "--suite",
            default=None,
            help="metric suite (default: toy for toy models, else braindiffuser)",
        )
        sub.add_argument(
            "--metrics", type=_names, default=None, help="comma-separated metrics of the suite"
        )
        sub.add_argument(
            "--weights", default=None, help="folder of the perceptual networks' weights"
        )
        sub.add_argument("--device", default=None, help="e.g. cuda; default: cpu")
        sub.add_argument("--dtype", default=None, help="e.g. float16; default: float32")

    def generation_options(sub, n_images, steps, batch_size):
        sub.add_argument(
            "--subjects",
            "--subject",
            type=_subjects,
            default=["subj01"],
            help="e.g. subj01, 1,2 or all (subj01, subj02, subj05, subj07)",
        )
        sub.add_argument(
            "--n-images",
            type=_count,
            default=n_images,
            help="test images per subject, or all (default: %(default)s)",
        )
        sub.add_argument(
            "--n-samples",
            type=int,
            default=5,
            help="samples per image (default: 5, as the paper)",
        )
        sub.add_argument(
            "--steps", type=int, default=steps, help="DDIM steps (default: %(default)s)"
        )
        sub.add_argument("--strength", type=float, default=0.8)
        sub.add_argument("--guidance", type=float, default=5.0)
        sub.add_argument(
            "--batch-size", type=int, default=batch_size, help="samples denoised at once"
        )
        sub.add_argument(
            "--preset",
            choices=("takagi2023",),
            default=None,
            help="fit and generate as the original code",
        )
        scoring_options(sub)

    demo = commands.add_parser("demo", help="the method end to end on the toy world")
    demo.add_argument("--out", default="brainldm-demo", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="toy world seed")
    generation_options(demo, DEMO_N_IMAGES, DEMO_STEPS, DEMO_BATCH_SIZE)

    world = commands.add_parser("toy-world", help="write a simulated NSD")
    world.add_argument("root")
    world.add_argument("--seed", type=int, default=0)

    rec = commands.add_parser(
        "reconstruct", help="decode, reconstruct and score from an NSD folder"
    )
    rec.add_argument("nsd_root")
    rec.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    rec.add_argument("--out", required=True)
    generation_options(rec, None, 50, 8)

    ev = commands.add_parser("evaluate", help="score saved reconstructions")
    ev.add_argument("reconstructions", help="a reconstructions .npz or a folder of PNGs")
    ev.add_argument("--nsd-root", required=True)
    ev.add_argument("--subject", default=None, help="label of the scores")
    ev.add_argument("--protocol", choices=(*_PROTOCOLS, "both"), default="both")
    ev.add_argument("--out", default=None, help="output folder (default: next to the input)")
    scoring_options(ev)

    _encode_parser(commands)
    return parser


def _scored(result, written):
    """Print the mean tables of a reconstruct, demo or evaluate run and what it wrote."""
    print(result.report())
    print(written)


def _run(args):
    """Call the workflow of ``args.command``; print from its result."""
    from brainldm import workflows

    options = vars(args)
    scoring = {k: options.get(k) for k in ("suite", "metrics", "weights", "device", "dtype")}
    verbose = dict(progress=True, log=print)
    if args.command == "toy-world":
        from brainldm.datasets.toy import make_toy_nsd

        print(make_toy_nsd(args.root, seed=args.seed))
    elif args.command == "encode":
        result = workflows.encode(
            args.nsd_root,
            args.subjects,
            args.model,
            args.out,
            analyses=args.analyses,
            strengths=args.strengths,
            steps=args.steps,
            stage_strength=args.stage_strength,
            layers=args.layers,
            pool_size=args.pool_size,
            n_components=args.n_components,
            n_iter=args.n_iter,
            chunk_size=args.chunk_size,
            random_state=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            threads=args.threads,
            average_train=not args.single_trials,
            dask=args.dask,
            **verbose,
        )
        for subject, part in result.summary["subjects"].items():
            print(f"{subject}: {', '.join(f'{k} {v:.0f} s' for k, v in part['seconds'].items())}")
        print(f"wrote {result.files[0]} and the maps and figures under {Path(args.out)}")
    elif args.command == "evaluate":
        protocols = _PROTOCOLS if args.protocol == "both" else (args.protocol,)
        result = workflows.evaluate(
            args.reconstructions,
            args.nsd_root,
            subject=args.subject,
            protocols=protocols,
            out=args.out,
            **scoring,
            **verbose,
        )
        _scored(result, f"wrote {result.files[0]} and {result.files[1]}")
    else:
        generation = dict(
            subjects=args.subjects,
            n_images=args.n_images,
            n_samples_per_image=args.n_samples,
            steps=args.steps,
            strength=args.strength,
            guidance=args.guidance,
            batch_size=args.batch_size,
            preset=args.preset,
        )
        if args.command == "demo":
            result = workflows.demo(args.out, seed=args.seed, **generation, **scoring, **verbose)
        else:
            subjects = generation.pop("subjects")
            result = workflows.reconstruct(
                args.nsd_root, subjects, args.model, args.out, **generation, **scoring, **verbose
            )
        written = ", ".join(str(path) for path in result.files[:4])
        _scored(result, f"wrote {written} in {result.summary['seconds']:.0f} s")


def main(argv=None):
    """Entry point of the ``brainldm`` command: 0 on success, 2 on an error it reports."""
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"brainldm: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
