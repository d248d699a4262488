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
import re
import sys
import warnings
from numbers import Integral, Real
from pathlib import Path

from brainldm._io import check_writable
from brainldm._validation import DTYPES, Interval, subject_name
from brainldm.metrics.identification import PROTOCOLS as _PROTOCOLS
from brainldm.workflows._encode import (
    ENCODE_CHUNK_SIZE,
    ENCODE_N_ITER,
    ENCODE_STEPS,
    ENCODE_STRENGTHS,
)
from brainldm.workflows._reconstruct import DEMO_BATCH_SIZE, DEMO_N_IMAGES, DEMO_STEPS

__all__ = ["main"]

# The library's errors that name a bad input and what to do (RuntimeError: a corrupt NSD file,
# a GPU torch cannot use); any other exception is a bug and keeps its traceback.
REPORTED = (ValueError, TypeError, FileNotFoundError, RuntimeError)
# Exit statuses: argparse's for a bad argument, the same for a bad input the library reports.
EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
RESUME = (
    "brainldm: interrupted; run the same command again to resume "
    "(what it already wrote is kept and reused)"
)


def _number(kind, low=None, high=None, closed="both"):
    """An argparse ``type``: a number of ``kind`` (int or float) in an interval, else an error.

    The interval is the library's own (:class:`~brainldm._validation.Interval`), so that a
    value the parser accepts is one the workflows accept, and the message words it alike.
    """
    interval = Interval(Integral if kind is int else Real, low, high, closed=closed)

    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not interval.is_satisfied_by(number):
            raise argparse.ArgumentTypeError(f"must be {interval}, got {value!r}")
        return number

    parse.interval = interval
    return parse


_COUNT = _number(int, 1)
_SEED = _number(int, 0)
_STRENGTH = _number(float, 0, 1, closed="right")
_N_IMAGES = _number(int, 2)


def _count(value):
    """``--n-images``: a count of at least 2, or ``all`` (None)."""
    if value == "all":
        return None
    try:
        return _N_IMAGES(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'all' or {_N_IMAGES.interval}, got {value!r}"
        ) from None


def _pool_size(value):
    """``--pool-size``: ``auto`` or a grid size of at least 1."""
    if value == "auto":
        return value
    try:
        return _COUNT(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or {_COUNT.interval}, got {value!r}"
        ) from None


_FOLDS = _number(int, 2)


def _cv(value):
    """``--cv``: ``loo`` or a number of folds, at least 2."""
    if value == "loo":
        return value
    try:
        return _FOLDS(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be {_FOLDS.interval} or 'loo', got {value!r}"
        ) from None


def _strengths(value):
    """``--strengths``: comma-separated img2img strengths, each in (0, 1]."""
    try:
        strengths = [_STRENGTH(name) for name in _names(value)]
    except argparse.ArgumentTypeError:
        strengths = []
    if not strengths:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated numbers, each {_STRENGTH.interval}, got {value!r}"
        )
    return strengths


def _device(value):
    """``--device``: a device torch names as the library takes it."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", value):
        raise argparse.ArgumentTypeError(
            f"must be 'cpu', 'cuda', 'cuda:<index>' or 'mps', got {value!r}"
        )
    return value


def _dask(value):
    """``--dask``: a number of local workers (at least 1) or a scheduler's address."""
    if value.isdigit() and int(value) >= 1:
        return int(value)
    if value.isdigit() or ":" not in value:
        raise argparse.ArgumentTypeError(
            f"must be a number of local workers, {_COUNT.interval}, or a scheduler's address "
            f"such as tcp://host:8786, got {value!r}"
        )
    return value


def _subjects(value):
    """``--subjects``: ``all`` (the paper's four) or a comma-separated list."""
    from brainldm.datasets.toy import SUBJECTS

    if value == "all":
        return list(SUBJECTS)
    try:
        return [subject_name(s) for s in value.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _subject(value):
    """``--subject`` of evaluate: one NSD subject."""
    try:
        return subject_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _names(value):
    return [name.strip() for name in value.split(",") if name.strip()]


def _among(valid, what):
    """An argparse ``type``: comma-separated names, each one of ``valid()`` (a callable)."""

    def parse(value):
        names, known = _names(value), list(valid())
        unknown = [name for name in names if name not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"must be comma-separated {what} among {', '.join(known)}, got {value!r}"
            )
        return names

    return parse


def _analyses():
    from brainldm.encoding import ANALYSES

    return ANALYSES


def _suites():
    from brainldm.metrics import SUITES

    return SUITES


def _all_metrics():
    return dict.fromkeys(m for suite in _suites().values() for m in suite["metrics"])


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
        type=_among(_analyses, "analyses"),
        default=None,
        help="comma-separated among representations, noise_levels, denoising_stages, "
        "unet_layers (default: all four)",
    )
    enc.add_argument(
        "--strengths",
        type=_strengths,
        default=list(ENCODE_STRENGTHS),
        help="img2img strengths, each in (0, 1] (default: 0.2,0.4,0.6,0.8)",
    )
    enc.add_argument(
        "--steps", type=_COUNT, default=ENCODE_STEPS, help="DDIM steps (default: %(default)s)"
    )
    enc.add_argument(
        "--stage-strength",
        type=_STRENGTH,
        default=0.8,
        help="in (0, 1]: the chain read at its steps (default: %(default)s)",
    )
    enc.add_argument(
        "--layers",
        type=_names,
        default=None,
        help="U-Net modules, e.g. down_blocks.0,mid_block (default: the model's five)",
    )
    enc.add_argument(
        "--pool-size",
        default="auto",
        type=_pool_size,
        help="pooling grid of the U-Net activations (default: auto, keeping n-components values)",
    )
    enc.add_argument(
        "--n-components", type=_COUNT, default=6400, help="PCA size (default: %(default)s)"
    )
    enc.add_argument(
        "--n-iter",
        type=_COUNT,
        default=ENCODE_N_ITER,
        help="banded ridge's random-search iterations (default: %(default)s)",
    )
    enc.add_argument(
        "--solver",
        choices=("primal", "dual", "auto"),
        default="primal",
        help="banded ridge solver of the partitions: dual (CPU only) is much cheaper when the "
        "training images are fewer than the components, as on NSD (default: %(default)s)",
    )
    enc.add_argument(
        "--cv",
        type=_cv,
        default=5,
        help="folds, or loo: exact leave-one-out for the encoders (the partitions keep 5 "
        "folds; needs averaged training betas) (default: %(default)s)",
    )
    enc.add_argument(
        "--chunk-size",
        type=_COUNT,
        default=ENCODE_CHUNK_SIZE,
        help="voxels fitted (and saved) together (default: %(default)s)",
    )
    enc.add_argument("--seed", type=_SEED, default=42, help="seed of the img2img noise (>= 0)")
    enc.add_argument("--batch-size", type=_COUNT, default=16, help="images denoised at once")
    enc.add_argument(
        "--device",
        type=_device,
        default=None,
        help="cpu, cuda, cuda:<index> or mps (cpu or cuda for the banded analyses); default: cpu",
    )
    enc.add_argument(
        "--single-trials",
        action="store_true",
        help="fit on single trials, not on each training image's mean betas",
    )
    enc.add_argument(
        "--no-surface",
        action="store_true",
        help="write maps and figures in the volume only (no NSD transforms needed)",
    )
    enc.add_argument(
        "--threads",
        type=_COUNT,
        default=1,
        help="torch and BLAS threads (default: 1, robust on a shared 2-core machine)",
    )
    enc.add_argument(
        "--dask",
        type=_dask,
        default=None,
        help="one subject per dask worker: a number of local workers or a scheduler address",
    )


def _scoring_options(sub):
    """The options of the commands that score images."""
    sub.add_argument(
        "--suite",
        choices=tuple(_suites()),
        default=None,
        help="metric suite (default: toy for toy models, else braindiffuser)",
    )
    sub.add_argument(
        "--metrics",
        type=_among(_all_metrics, "metrics"),
        default=None,
        help="comma-separated metrics of the suite",
    )
    sub.add_argument("--weights", default=None, help="folder of the perceptual networks' weights")
    sub.add_argument(
        "--device", type=_device, default=None, help="cpu, cuda, cuda:<index> or mps; default: cpu"
    )
    sub.add_argument("--dtype", choices=DTYPES, default=None, help="default: float32")


def _generation_options(sub, n_images, steps, batch_size):
    """The options of the commands that reconstruct images."""
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
        help="test images per subject (at least 2), or all (default: %(default)s)",
    )
    sub.add_argument(
        "--n-samples", type=_COUNT, default=5, help="samples per image (default: 5, as the paper)"
    )
    sub.add_argument(
        "--steps", type=_COUNT, default=steps, help="DDIM steps (default: %(default)s)"
    )
    sub.add_argument(
        "--strength", type=_STRENGTH, default=0.8, help="in (0, 1] (default: %(default)s)"
    )
    sub.add_argument(
        "--guidance",
        type=_number(float, 0),
        default=5.0,
        help="classifier-free guidance scale, >= 0 (default: %(default)s)",
    )
    sub.add_argument(
        "--batch-size", type=_COUNT, default=batch_size, help="samples denoised at once"
    )
    sub.add_argument(
        "--preset",
        choices=("takagi2023",),
        default=None,
        help="fit and generate as the original code",
    )
    _scoring_options(sub)


def _parser():
    """The parser, and its subparsers by command."""
    parser = argparse.ArgumentParser(prog="brainldm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the method end to end on the toy world")
    demo.add_argument("--out", default="brainldm-demo", help="output folder")
    demo.add_argument("--seed", type=_SEED, default=0, help="toy world seed (>= 0)")
    _generation_options(demo, DEMO_N_IMAGES, DEMO_STEPS, DEMO_BATCH_SIZE)

    world = commands.add_parser("toy-world", help="write a simulated NSD")
    world.add_argument("root")
    world.add_argument("--seed", type=_SEED, default=0, help="toy world seed (>= 0)")

    rec = commands.add_parser(
        "reconstruct", help="decode, reconstruct and score from an NSD folder"
    )
    rec.add_argument("nsd_root")
    rec.add_argument("--model", default="toy", help='"toy", a hub id or a local SD folder')
    rec.add_argument("--out", required=True)
    _generation_options(rec, None, 50, 8)

    ev = commands.add_parser("evaluate", help="score saved reconstructions")
    ev.add_argument("reconstructions", help="a reconstructions .npz or a folder of PNGs")
    ev.add_argument("--nsd-root", required=True)
    ev.add_argument("--subject", type=_subject, default=None, help="label of the scores")
    ev.add_argument("--protocol", choices=(*_PROTOCOLS, "both"), default="both")
    ev.add_argument("--out", default=None, help="output folder (default: next to the input)")
    _scoring_options(ev)

    _encode_parser(commands)
    return parser, commands.choices


def _parse(argv):
    """The checked arguments: each alone by its type, then those that depend on another."""
    parser, commands = _parser()
    args = parser.parse_args(argv)
    suite = getattr(args, "suite", None)
    if suite is not None and args.metrics is not None:
        valid = _suites()[suite]["metrics"]
        unknown = [name for name in args.metrics if name not in valid]
        if unknown:
            commands[args.command].error(
                f"argument --metrics: {', '.join(unknown)} not in suite {suite}; "
                f"its metrics are {', '.join(valid)}"
            )
    return args


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
    # The workflows check their out folder too; here the error names the flag.
    if options.get("out") is not None:
        check_writable(args.out, "--out", f"brainldm {args.command}")
    if args.command == "toy-world":
        from brainldm.datasets.toy import make_toy_nsd

        check_writable(args.root, "root", "brainldm toy-world")

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
            solver=args.solver,
            cv=args.cv,
            chunk_size=args.chunk_size,
            random_state=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            threads=args.threads,
            average_train=not args.single_trials,
            surface=not args.no_surface,
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


def _note(seen):
    """A ``warnings.showwarning`` that prints each distinct message once, as one line."""
    from tqdm.auto import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if category is not UserWarning:
            text += f" ({category.__name__})"
        if text not in seen:
            seen.add(text)
            # Through tqdm, so that a progress bar on the terminal is not broken by the line.
            tqdm.write(f"brainldm: note: {text}", file=sys.stderr)

    return show


def main(argv=None):
    """Entry point of the ``brainldm`` command; returns its exit status.

    0 on success; 2 on a bad argument (argparse's usage line and error, before any
    work) or a bad input the library reports (a ``ValueError``, ``TypeError``,
    ``FileNotFoundError`` or ``RuntimeError``: one line ``brainldm: error: <message>``,
    no traceback); 130 on Ctrl-C, with a line saying that the same command resumes the
    run. Any other exception is a bug and propagates with its traceback. During the
    run, the library's warnings print as ``brainldm: note: <message>`` on stderr, each
    distinct message once; the warning settings are restored on return.
    """
    args = _parse(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _note(set())
        try:
            _run(args)
        except REPORTED as error:
            print(f"brainldm: error: {error}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print(f"\n{RESUME}", file=sys.stderr)
            return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
