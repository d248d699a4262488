"""Sessions: ``nox -s tests`` (fast suite), ``slow``, ``gpu``, ``lint``, ``docs``, ``validation``,
``bench``."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"

# torch and torchvision first and pinned, so that no dependency resolution pulls
# another (multi-gigabyte) torch build.
TORCH = ("torch==2.14.1", "torchvision==0.29.1")
FAST = "not slow and not gpu"


def _install(session, extras="test"):
    if session.venv_backend == "none":
        # `nox --no-venv`: the caller's environment, which has brainldm installed already.
        return
    session.install(*TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session):
    """The fast suite: everything but slow and GPU tests."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", FAST, *session.posargs)


@nox.session
def slow(session):
    """Slow tests: trained-model quality, large worlds, long fits."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", "slow and not gpu", *session.posargs)


@nox.session
def gpu(session):
    """Tests that need a CUDA device."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", "gpu", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff>=0.4")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# Nothing in the docs build may reach the network: not intersphinx, not an example.
OFFLINE = dict(
    BRAINLDM_DOCS_OFFLINE="1", BRAINLDM_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"
)


@nox.session
def docs(session):
    """HTML docs with the example gallery run, offline; a warning, such as a link to a page
    or heading that does not exist, or an example that raises, fails the build."""
    _install(session, extras="docs")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", env=OFFLINE
    )


@nox.session
def validation(session):
    """The validation page's tables and the guide's figures, computed again on the toy world
    (about 80 minutes on 2 cores; ``nox -s validation -- --only demo`` runs one section)."""
    _install(session)
    session.run("python", "docs/make_validation.py", *session.posargs)


@nox.session
def bench(session):
    """Benchmarks: each prints its own ratios and targets."""
    _install(session)
    scripts = session.posargs or [
        "benchmarks/ridge.py",
        "benchmarks/nsd_io.py",
        "benchmarks/diffusion.py",
    ]
    for script in scripts:
        session.run("python", script)
