"""Task runner for mtmarl: the README's two commands call these sessions.

``nox -s tests``  lint (ruff), unit tests, doctests of ``mtmarl/`` and the Sphinx
                  build with warnings as errors (tutorials executed) -- exactly what CI runs.
``nox -s train``  the main job: ``mtmarl train movebox-easy`` (phasic MAPPO).

Each session builds its own virtual environment under ``.nox/``; torch is
installed first as the CPU build ``torch==2.13.0`` so that pip never pulls a
multi-GB CUDA wheel.
"""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Everything CI checks: ruff, pytest (not slow), doctests, docs build."""
    # distributed (Ray) and vmas: their integration tests skip without them, CI runs them
    _install(session, "dev,docs,distributed,vmas")
    session.run("ruff", "check", "mtmarl", "tests", "tutorials", "benchmarks", "docs")
    session.run("pytest", "-m", "not slow", *session.posargs)
    session.run("pytest", "--doctest-modules", "mtmarl", "-p", "no:cacheprovider", "-q")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html", "-q"
    )


@nox.session(python="3.11")
def slow(session: nox.Session) -> None:
    """The long training checks marked ``slow``."""
    _install(session, "dev")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python="3.11")
def train(session: nox.Session) -> None:
    """The main job: train the phasic MAPPO agents on Move Box easy (a few minutes on 2 CPUs).

    Extra arguments are passed on, e.g. ``nox -s train -- variant=basic seed=3``.
    """
    _install(session, "")
    session.run("mtmarl", "train", "movebox-easy", *session.posargs)


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """Build the HTML docs only."""
    _install(session, "docs")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
