"""Check the sdist and wheel that ``python -m build`` made, then use the installed wheel.

Run twice by ``.ci/run``: ``contents DIST_DIR`` checks what the archives hold
against the shipped model files that git tracks; ``use`` (in a fresh virtual
environment where only the wheel is installed, outside the clone) loads the
toy model and the toy world from the installed package.
"""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SHIPPED = ("brainldm/toy/ldm/", "brainldm/toy/perceptual/")
FORBIDDEN = ("tests/", "runs/", "docs/", "benchmarks/", ".ci/")


def _shipped_files(repo):
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", *SHIPPED], capture_output=True, text=True, check=True
    )
    return set(listed.stdout.split())


def contents(dist_dir, repo):
    dist_dir = Path(dist_dir)
    (wheel,) = dist_dir.glob("*.whl")
    (sdist,) = dist_dir.glob("*.tar.gz")
    shipped = _shipped_files(repo)
    if not shipped:
        sys.exit("git lists no shipped model files; run from a clone of the repository")
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    with tarfile.open(sdist) as archive:
        # Drop the leading "brainldm-<version>/" of every member.
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    problems = []
    for label, names in (("wheel", in_wheel), ("sdist", in_sdist)):
        missing = sorted(shipped - names)
        if missing:
            problems.append(f"the {label} lacks {len(missing)} shipped files, e.g. {missing[:3]}")
        stray = sorted(n for n in names if n.startswith(FORBIDDEN) or n.endswith((".pt", ".npz")))
        if stray:
            problems.append(f"the {label} holds files it must not, e.g. {stray[:3]}")
    if problems:
        sys.exit("\n".join(problems))
    print(f"{wheel.name} and {sdist.name} hold the {len(shipped)} shipped model files")


def use():
    import tempfile

    import brainldm
    from brainldm import StableDiffusion, load_nsd, make_toy_nsd
    from brainldm.datasets.scenes import make_stimuli
    from brainldm.toy import load_perceptual_net

    if "site-packages" not in brainldm.__file__:
        sys.exit(f"brainldm was imported from {brainldm.__file__}, not from the installed wheel")
    sd = StableDiffusion.from_pretrained("toy")
    scenes = make_stimuli(2, seed=0)
    images = sd.img2img(sd.encode_images(scenes.images), sd.encode_text(scenes.captions), steps=4)
    assert images.shape == (2, 1, 64, 64, 3), images.shape
    predicted = load_perceptual_net().predict(scenes.images)
    assert set(predicted) >= {"shape", "colour"}, sorted(predicted)
    root = make_toy_nsd(
        Path(tempfile.mkdtemp()) / "nsd",
        n_sessions=4,
        n_released_sessions=3,
        trials_per_session=30,
        n_shared=8,
        volume_shape=(12, 14, 12),
        subjects=["subj01"],
        progress=False,
    )
    data = load_nsd(root, "subj01", rois=["early", "ventral"], progress=False)
    assert data.X_train.shape[1] == len(data.voxel_ijk) > 0
    print(f"the installed wheel ({brainldm.__file__}) loads the toy model and the toy world")


if __name__ == "__main__":
    if sys.argv[1:2] == ["contents"]:
        contents(sys.argv[2], Path(__file__).resolve().parents[1])
    elif sys.argv[1:2] == ["use"]:
        use()
    else:
        sys.exit("usage: check_dist.py contents DIST_DIR | use")
