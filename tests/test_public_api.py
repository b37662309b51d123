"""The public API: every exported name is importable, documented with a doctest, and in the docs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

import mtmarl

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _docs_conf():
    spec = importlib.util.spec_from_file_location("mtmarl_docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


CONF = _docs_conf()
PACKAGES = CONF.public_packages()


def test_nn_is_always_documented():
    assert "mtmarl.nn" in PACKAGES


@pytest.mark.parametrize("package", PACKAGES)
def test_all_names_exist_and_are_unique(package):
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__), f"duplicates in {package}.__all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which is missing"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_is_in_the_api_reference(package, tmp_path):
    CONF.write_api_pages(tmp_path)
    page = (tmp_path / f"{package}.rst").read_text()
    module = importlib.import_module(package)
    for name in module.__all__:
        assert f":: {name}\n" in page, f"{package}.{name} is missing from the API reference"
    index = (tmp_path / "index.rst").read_text()
    assert f"   {package}" in index


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_class_and_function_has_an_asserting_doctest(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        obj = getattr(module, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        assert ">>>" in doc, f"{package}.{name} has no doctest example"


def test_top_level_all():
    assert mtmarl.__version__
    for name in mtmarl.__all__:
        assert hasattr(mtmarl, name)
