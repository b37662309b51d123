"""Sphinx configuration for mtmarl.

The API reference is generated from the packages' ``__all__`` lists at build time
(see :func:`write_api_pages`), so every public name is documented and none is forgotten.
Tutorials in ``tutorials/`` are sphinx-gallery scripts executed by every build.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import mtmarl  # noqa: E402

project = "mtmarl"
author = "mtmarl developers"
copyright = "2026, mtmarl developers"
release = mtmarl.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
]

#: Sub-packages whose ``__all__`` make up the public API, in reading order.
API_PACKAGES = [
    "mtmarl.nn",
    "mtmarl.transforms",
    "mtmarl.envs",
    "mtmarl.envs.building",
    "mtmarl.envs.community",
    "mtmarl.modules",
    "mtmarl.objectives",
    "mtmarl.algorithms",
    "mtmarl.training",
    "mtmarl.interop",
]


def public_packages() -> list[str]:
    """The API packages that exist in this checkout (later issues add the rest)."""
    found = []
    for name in API_PACKAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        if getattr(module, "__file__", None) is not None:  # skip empty namespace folders
            found.append(name)
    return found


def api_page(package: str) -> str:
    """RST text documenting every name in ``package.__all__``."""
    module = importlib.import_module(package)
    title = f"``{package}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {package}", "   :no-members:", ""]
    lines += [f".. currentmodule:: {package}", ""]
    deeper = [p for p in API_PACKAGES if p.startswith(package + ".")]
    for name in module.__all__:
        obj = getattr(module, name)
        # a name re-exported from a deeper API package is indexed on that package's page only
        home = getattr(obj, "__module__", "") or ""
        extra = ["   :no-index:"] if any(home.startswith(d) for d in deeper) else []
        if isinstance(obj, type):
            lines += [f".. autoclass:: {name}", "   :members:", "   :show-inheritance:", *extra]
        elif callable(obj):
            lines += [f".. autofunction:: {name}", *extra]
        else:
            lines += [f".. autodata:: {name}", "   :no-value:", *extra]
        lines.append("")
    return "\n".join(lines)


def write_api_pages(out_dir: Path = HERE / "api" / "generated") -> list[str]:
    """Write one page per API package; return the page names (for the toctree)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for package in public_packages():
        page = out_dir / f"{package}.rst"
        text = api_page(package)
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
        names.append(package)
    index = out_dir / "index.rst"
    toc = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    toc += [f"   {name}" for name in names]
    text = "\n".join(toc) + "\n"
    if not index.exists() or index.read_text() != text:
        index.write_text(text)
    return names


write_api_pages()

autodoc_member_order = "bysource"
autodoc_inherit_docstrings = False
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" sections as field lists, so that documented dataclass/NamedTuple fields are
# not described twice (once by napoleon, once by autodoc's :members:)
napoleon_use_ivar = True
autosummary_generate = False
nitpicky = False
suppress_warnings = ["config.cache"]

templates_path = []
exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "**.zip"]

html_theme = "furo"
html_title = f"mtmarl {release}"

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "tutorials"),
    "gallery_dirs": str(HERE / "auto_tutorials"),
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
}

os.environ.setdefault("MTMARL_DOCS_BUILD", "1")
