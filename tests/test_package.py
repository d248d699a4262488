"""Specification of the package's shape: public surface, lazy imports, layering, sizes."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "brainldm"
API = PACKAGE.parent / "docs" / "api.rst"
TRAINING = "brainldm.toy.training"

# Lines of code, docstrings left out. Library code longer than these limits
# must say why in its docstring and be listed here.
MAX_CLASS_LINES = 400
MAX_FUNCTION_LINES = 120
LONG_ON_PURPOSE = {}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _public(module):
    return not any(part.startswith("_") for part in module.split("."))


def _imports(path):
    """Absolute names of the modules that a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _run(code):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_the_estimators_and_loaders_are_exported_at_top_level():
    import brainldm
    from brainldm.datasets.nsd import load_nsd
    from brainldm.datasets.toy import make_toy_nsd
    from brainldm.decoding import LatentDecoder, TextDecoder
    from brainldm.diffusion import StableDiffusion

    expected = [LatentDecoder, TextDecoder, StableDiffusion, load_nsd, make_toy_nsd]
    assert [getattr(brainldm, obj.__name__) for obj in expected] == expected
    assert {obj.__name__ for obj in expected} <= set(brainldm.__all__) <= set(dir(brainldm))
    with pytest.raises(AttributeError, match="no attribute 'LatentDecodr'"):
        brainldm.LatentDecodr  # noqa: B018


@pytest.mark.parametrize(
    "module", ["brainldm", "brainldm.datasets", "brainldm.features", "brainldm.toy"]
)
def test_importing_a_light_module_loads_no_torch(module):
    loaded = _run(f"import sys, {module}; print('torch' in sys.modules)")
    assert loaded == ["False"]


def test_metrics_and_the_features_base_never_load_the_diffusion_model():
    code = (
        "import sys, brainldm.metrics, brainldm.features.base\n"
        "print(sorted(m for m in ('diffusers', 'brainldm.diffusion') if m in sys.modules))"
    )
    assert _run(code) == ["[]"]


def test_every_module_declares_all_and_defines_it():
    for module, _ in _modules():
        if module.endswith("__main__"):
            continue
        imported = importlib.import_module(module)
        assert hasattr(imported, "__all__"), module
        missing = [name for name in imported.__all__ if not hasattr(imported, name)]
        assert not missing, (module, missing)


def test_only_the_diffusion_package_and_the_training_scripts_import_diffusers():
    allowed = ("brainldm.diffusion", "brainldm.toy.training")
    offenders = [
        module
        for module, path in _modules()
        if not module.startswith(allowed)
        and any(name.split(".")[0] == "diffusers" for name in _imports(path))
    ]
    assert offenders == []


def test_lower_layers_import_nothing_above_them():
    below_datasets = (
        "brainldm._validation",
        "brainldm._images",
        "brainldm._io",
        "brainldm._cache",
        "brainldm._warnings",
        "brainldm._offline",
        "brainldm._surface_masker",
        "brainldm._fsaverage",
        "brainldm._surface_mapping",
    )
    for module, path in _modules():
        imported = {name for name in _imports(path) if name.startswith("brainldm")}
        if module.startswith("brainldm.datasets"):
            above = [
                name
                for name in imported
                if not name.startswith(("brainldm.datasets", *below_datasets))
                and name not in ("brainldm", "brainldm.__version__")
            ]
            assert above == [], module
        if module.startswith("brainldm.metrics") or module == "brainldm.features.base":
            assert not [name for name in imported if name.startswith("brainldm.diffusion")]


def _is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _code_lines(node):
    """Lines of a class or function, less its docstring: long numpydoc docstrings are welcome."""
    length = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        if isinstance(first.value.value, str):
            length -= first.end_lineno - first.lineno + 1
    return length


def _private_imports(path):
    """``from brainldm... import _name`` in a file, where ``_name`` is no module."""
    return [
        f"{path.name}:{node.lineno}: from {node.module} import {alias.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("brainldm")
        for alias in node.names
        if alias.name.startswith("_")
        and not alias.name.startswith("__")
        and not _is_module(f"{node.module}.{alias.name}")
    ]


def test_no_module_imports_a_private_name_of_another():
    crossings = []
    for _, path in _modules():
        crossings += _private_imports(path)
    assert crossings == []


def test_no_class_or_function_is_longer_than_the_limits():
    too_long = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                length = _code_lines(node)
                if length > limit and f"{module}.{node.name}" not in LONG_ON_PURPOSE:
                    too_long.append(f"{module}.{node.name}: {length} lines")
    assert too_long == []


def test_the_api_reference_lists_every_public_name():
    listed = set(API.read_text().split())
    missing = []
    for module, _ in _modules():
        # The toy models' training scripts are documented on the toy models' page, not as API.
        if not _public(module) or module.endswith("__main__") or module.startswith(TRAINING):
            continue
        imported = importlib.import_module(module)
        for name in imported.__all__:
            defined = getattr(getattr(imported, name), "__module__", None) or module
            # A name re-exported from a public module is listed under that module;
            # one defined in a private module, under the public one that exports it.
            if defined == module or not _public(defined) or not defined.startswith("brainldm"):
                if f"{module}.{name}" not in listed:
                    missing.append(f"{module}.{name}")
    assert missing == []


def _defined_here(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _foreign_private_attributes(path, private):
    """``obj._name`` in a file, where ``_name`` is one of ``private`` that the file does
    not define itself and ``obj`` is not ``self``, ``cls`` or ``super()``."""
    tree = ast.parse(path.read_text())
    own = _defined_here(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in private - own):
            continue
        base = node.value
        if isinstance(base, ast.Name) and base.id in ("self", "cls"):
            continue
        if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
            continue
        found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return found


def _private_names_defined_in_the_package():
    """Private (not dunder) names that the package's modules define."""
    names = set()
    for _, path in _modules():
        names |= _defined_here(ast.parse(path.read_text()))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def test_no_module_reaches_into_another_modules_private_attributes():
    private = _private_names_defined_in_the_package()
    crossings = []
    for _, path in _modules():
        crossings += _foreign_private_attributes(path, private)
    assert crossings == []


# Tests that wrap a private function to watch or break it from inside (how many
# decompositions are held at once; a read interrupted midway): the wrapper calls the
# original, which no public name offers.
WRAPPED_ON_PURPOSE = {("test_ridge.py", "ridge._eigh"), ("test_nsd.py", "nsd._read_session")}


def test_no_test_calls_a_private_name_of_the_package():
    private = _private_names_defined_in_the_package()
    crossings = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        crossings += [
            crossing
            for crossing in _foreign_private_attributes(path, private)
            if (path.name, crossing.split(": ", 1)[1]) not in WRAPPED_ON_PURPOSE
        ]
        crossings += _private_imports(path)
    assert crossings == []


def test_nothing_imports_scikit_learns_private_modules():
    offenders = [
        f"{module}: {name}"
        for module, path in _modules()
        for name in _imports(path)
        if name.startswith("sklearn") and any(p.startswith("_") for p in name.split(".")[1:])
    ]
    assert offenders == []


# Calls that write files (or pickle results): outside brainldm._cache and the I/O layers.
WRITERS = {
    "atomic_write",
    "atomic_savez",
    "savez",
    "savez_compressed",
    "dump",
    "dumps",
    "write_text",
    "write_bytes",
    "savefig",
    "to_filename",
    "to_csv",
    "write_npz",
    "write_json",
    "write_csv",
}
# Where writing belongs: the cache, atomic writes, the readers' and the toy world's files,
# the workflows, maps and figures, the toy models' export and training, and the random
# models saved for tests and benchmarks.
WRITING_MODULES = (
    "brainldm._cache",
    "brainldm._io",
    "brainldm.datasets",
    "brainldm.workflows",
    "brainldm.maps",
    "brainldm.plotting",
    "brainldm.toy",
    "brainldm.diffusion._random",
)


def test_estimators_and_solvers_write_only_through_the_cache():
    writes = []
    for module, path in _modules():
        if module.startswith(WRITING_MODULES):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if name in WRITERS and not (
                    name == "dumps" and ast.unparse(node.func).startswith("json.")
                ):
                    writes.append(f"{module}:{node.lineno}: {ast.unparse(node.func)}")
    assert writes == []
