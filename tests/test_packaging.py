"""The front door, without building anything: ``mtmarl --help`` reads as plain text and
``pyproject.toml`` declares the console script and no made-up URLs.

Building and installing the wheel is the ``wheel`` nox session (run by ``nox -s tests``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mtmarl.cli import build_parser

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
COMMANDS = ("list", "train", "evaluate")
# reStructuredText a terminal would print verbatim: ``literals``, :role:`targets`, `link <url>`_
RST = re.compile(r"``|:(?:mod|func|class|meth|attr|data|obj|exc|ref|doc):`|`_\b|\.\. \w+::")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_help():
    assert set(_subparsers(build_parser())) == set(COMMANDS)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command):
    parser = build_parser()
    if command is not None:
        parser = _subparsers(parser)[command]
    text = parser.format_help()
    assert not RST.findall(text), text
    assert parser.description, f"mtmarl {command or ''} --help has no description"
    assert "usage: mtmarl" in text


def test_main_help_shows_examples():
    result = subprocess.run(
        [sys.executable, "-m", "mtmarl.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not RST.findall(result.stdout), result.stdout
    assert "examples:" in result.stdout
    for line in ("mtmarl train movebox-easy seed=1", "mtmarl evaluate runs/"):
        assert line in result.stdout


def test_pyproject_console_script_and_urls():
    with PYPROJECT.open("rb") as file:
        project = tomllib.load(file)["project"]
    assert project["scripts"]["mtmarl"] == "mtmarl.cli:main"
    assert project["readme"] == "README.md"
    assert (PYPROJECT.parent / project["readme"]).is_file()
    # no public repository or docs site exists: a URL there would lead nowhere
    urls = list(project.get("urls", {}).values())
    assert not [url for url in urls if "github.com/mtmarl" in url.lower()], urls
