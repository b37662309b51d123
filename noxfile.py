"""Task runner for mtmarl: the README's two commands call these sessions.

``nox -s tests``  lint (ruff), unit tests, doctests of ``mtmarl/``, the Sphinx build with
                  warnings as errors (tutorials executed), then the ``wheel`` session
                  (queued with ``session.notify``) -- exactly what CI runs, besides
                  ``nox -s slow``.
``nox -s train``  the main job: ``mtmarl train movebox-easy`` (phasic MAPPO).
``nox -s wheel``  packaging: build the sdist and the wheel (``python -m build``),
                  ``twine check`` them, install the wheel into a venv of its own (no
                  source tree on ``sys.path``) and smoke-test the installed package.

Each session builds its own virtual environment under ``.nox/``, reused across runs
(``reuse_existing_virtualenvs``); torch is installed first as the CPU build
``torch==2.13.0`` so that pip never pulls a multi-GB CUDA wheel.
"""

from __future__ import annotations

import sys
import tempfile
import zipfile
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # nox itself depends on tomli there
    import tomli as tomllib

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str) -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Everything CI checks: ruff, pytest (not slow), doctests, docs build, then ``wheel``."""
    # queued first, so that it runs after this session even when a check here fails (nox
    # carries on with the queue and fails at the end); the wheel check takes none of pytest's
    # arguments
    session.notify("wheel", posargs=[])
    # distributed (Ray) and vmas: their integration tests skip without them, CI runs them
    _install(session, "dev,docs,distributed,vmas")
    session.run("ruff", "check", "mtmarl", "tests", "tutorials", "benchmarks", "studies", "docs")
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


# run from a temporary folder with ``python -I`` (no PYTHONPATH, no script folder on sys.path):
# mtmarl comes from the installed wheel only
_WHEEL_SMOKE = """
import sys
from pathlib import Path

from mtmarl.nn import PhaseLinear
import mtmarl
import mtmarl.envs

print(mtmarl.__version__, PhaseLinear.__name__)
where = Path(mtmarl.__file__).resolve()
assert Path(sys.prefix).resolve() in where.parents, f"mtmarl imported from {where}"
# the energy envs read TMY3 weather (pvlib's data files) when they are built
mtmarl.envs.BuildingEnv(num_envs=1).rollout(3)
mtmarl.envs.CommunityEnergyEnv(n_prosumers=2, num_envs=1).rollout(3)
print("wheel ok:", where.parent)
"""


# for the console script: an empty PYTHONPATH counts as unset (python -I ignores it anyway)
_NO_PYTHONPATH = {"PYTHONPATH": ""}


def _check_wheel_contents(session: nox.Session, wheel: Path) -> None:
    """Every package of ``mtmarl/`` and every non-.py file under it must be in the wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    here = Path(__file__).parent
    source = {
        path.relative_to(here).as_posix()
        for path in (here / "mtmarl").rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix != ".pyc"
        and not path.name.startswith(".")
    }
    missing = sorted(source - names)
    if missing:
        session.error(
            f"{wheel.name} lacks {missing}; packages come from [tool.setuptools.packages.find], "
            "data files need [tool.setuptools.package-data]"
        )
    packages = sorted(
        {Path(name).parent.as_posix() for name in source if name.endswith("/__init__.py")}
    )
    session.log(f"{wheel.name}: {len(names)} files, packages {', '.join(packages)}")


@nox.session(python="3.11")
def wheel(session: nox.Session) -> None:
    """Build the sdist and the wheel, ``twine check`` them, install the wheel and smoke-test it.

    The wheel is built from the sdist (``python -m build``'s default), so it also shows that
    the sdist is complete. Both go to a temporary folder, outside the repository; the checks
    run from there, against the wheel installed into this session's venv.
    """
    with open("pyproject.toml", "rb") as file:
        build_requires = tomllib.load(file)["build-system"]["requires"]
    session.install(TORCH)
    # --no-isolation below: the build backend comes from this (reused) venv, not from a fresh
    # one per build; `build` still checks that pyproject's build requirements are met
    session.install("build", "twine", *build_requires)
    with tempfile.TemporaryDirectory(prefix="mtmarl-wheel-") as tmp:
        dist = Path(tmp) / "dist"
        session.run(
            "python", "-m", "build", "--quiet", "--no-isolation", "--outdir", str(dist), "."
        )
        sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
        if len(sdists) != 1 or len(wheels) != 1:
            session.error(
                f"expected one sdist and one wheel in {dist}, got {sorted(dist.iterdir())}"
            )
        session.run("twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
        _check_wheel_contents(session, wheels[0])
        # this very build, even where the reused venv holds an mtmarl of the same version
        session.run("python", "-m", "pip", "uninstall", "--yes", "--quiet", "mtmarl")
        session.install(str(wheels[0]))  # with its dependencies
        smoke = Path(tmp) / "smoke_wheel.py"
        smoke.write_text(_WHEEL_SMOKE)
        with session.chdir(tmp):
            session.run("mtmarl", "list", env=_NO_PYTHONPATH)
            session.run("mtmarl", "--help", env=_NO_PYTHONPATH, silent=True)
            session.run("python", "-I", smoke.name)
