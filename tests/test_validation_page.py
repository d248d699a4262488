"""The validation page is written from its stored results by docs/make_validation.py."""

import copy
import importlib.util
from pathlib import Path

import pytest

from brainldm.datasets.toy import TOY_WORLD_VERSION

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "make_validation.py"


@pytest.fixture(scope="module")
def make_validation():
    spec = importlib.util.spec_from_file_location("make_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(make_validation):
    return make_validation.load_results()


def test_every_section_has_results_of_the_current_toy_world(make_validation, results):
    assert sorted(results) == sorted(make_validation.SECTIONS)
    for name, result in results.items():
        assert result["toy_world_version"] == TOY_WORLD_VERSION, name
        assert result["seconds"] >= 0


def test_the_validation_page_is_what_its_stored_results_give(make_validation, capsys):
    assert make_validation.main(["--check"]) == 0, capsys.readouterr().out


def test_a_changed_result_changes_its_tables(make_validation, results):
    changed = copy.deepcopy(results)
    changed["demo"]["scores"]["pairwise"]["zc"]["toy_embedding"]["mean"] = 0.1234
    texts, names, unrendered = make_validation.render(changed)
    assert set(names) == {"demo", "demo_tests", "rescale"} and not unrendered
    page = make_validation.PAGES[0]
    assert "0.123" in texts[page] and "0.123" not in page.read_text()


def test_a_table_whose_section_has_no_results_is_left_as_it_was(make_validation, results):
    partial = {name: value for name, value in results.items() if name != "pooling"}
    texts, changed, unrendered = make_validation.render(partial)
    assert not changed and unrendered == ["pooling"]
    assert all(text == page.read_text() for page, text in texts.items())


def test_the_pages_must_mark_every_table_and_only_known_ones(make_validation, results):
    texts = {page: page.read_text() for page in make_validation.PAGES}
    page = make_validation.PAGES[0]
    unmarked = dict(texts)
    unmarked[page] = (
        texts[page]
        .replace("<!-- validation: pooling -->", "")
        .replace("<!-- /validation: pooling -->", "")
    )
    with pytest.raises(KeyError, match="no page has markers for the tables.*pooling"):
        make_validation.render(results, unmarked)
    unknown = dict(texts)
    unknown[page] = (
        texts[page] + "\n<!-- validation: nothing -->\n\n<!-- /validation: nothing -->\n"
    )
    with pytest.raises(KeyError, match="validation.md marks a table 'nothing'"):
        make_validation.render(results, unknown)
