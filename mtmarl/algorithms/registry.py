"""The algorithm registry: ``algorithm=NAME`` looks the class up here.

Built-in: ``mappo`` (:class:`~mtmarl.algorithms.MAPPO`; IPPO and MATPPO by its critic) and
``coma`` (:class:`~mtmarl.algorithms.COMA`). Add your own with :func:`register_algorithm`
(from a module that ``mtmarl train ... --import MODULE`` imports), or let an installed package
declare it under the entry-point group ``mtmarl.algorithms`` (:data:`ENTRY_POINT_GROUP`), loaded
the first time the registry is read::

    # the pyproject.toml of your package
    [project.entry-points."mtmarl.algorithms"]
    my_algo = "my_package.algorithms:MyAlgorithm"   # an Algorithm subclass (or a module
                                                    # that calls register_algorithm)
"""

from __future__ import annotations

import types

from mtmarl._registry import Registry, loaded_entry_points
from mtmarl.algorithms.base import Algorithm, AlgorithmConfig
from mtmarl.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "ENTRY_POINT_GROUP",
    "get_algorithm",
    "list_algorithms",
    "register_algorithm",
]

#: Entry-point group under which installed packages declare algorithms.
ENTRY_POINT_GROUP = "mtmarl.algorithms"

ALGORITHMS: dict[str, type[Algorithm]] = Registry(
    "The registered algorithms by name (``algorithm=NAME``); read it through "
    ":func:`get_algorithm` / :func:`list_algorithms`, which also load the installed packages' "
    "entry points."
)


def register_algorithm(cls: type[Algorithm], *, overwrite: bool = False) -> type[Algorithm]:
    """Add an :class:`~mtmarl.algorithms.Algorithm` subclass under its ``name``.

    Usable as a class decorator.

    Raises:
        ConfigError: not an Algorithm subclass, no ``name``, a ``config_class`` that is not
            an :class:`~mtmarl.algorithms.AlgorithmConfig` subclass, no critics, or a name
            taken (unless ``overwrite``).

    Examples:
        >>> from mtmarl.algorithms import MAPPO
        >>> try:
        ...     register_algorithm(MAPPO)
        ... except ConfigError as err:
        ...     print(err)
        algorithm 'mappo' is already registered (pass overwrite=True to replace it)
    """
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise ConfigError(f"register_algorithm expected an Algorithm subclass, got {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{cls.__name__} must set a class attribute name (a non-empty str)")
    if not (isinstance(cls.config_class, type) and issubclass(cls.config_class, AlgorithmConfig)):
        raise ConfigError(
            f"{cls.__name__}.config_class must be an AlgorithmConfig subclass, got "
            f"{cls.config_class!r}"
        )
    if not cls.critics:
        raise ConfigError(f"{cls.__name__}.critics must name at least one critic it trains")
    if name in ALGORITHMS and ALGORITHMS[name] is not cls and not overwrite:
        raise ConfigError(
            f"algorithm {name!r} is already registered (pass overwrite=True to replace it)"
        )
    if name in ALGORITHMS and ALGORITHMS[name] is cls and not overwrite:
        raise ConfigError(
            f"algorithm {name!r} is already registered (pass overwrite=True to replace it)"
        )
    ALGORITHMS[name] = cls
    return cls


def get_algorithm(name: str) -> type[Algorithm]:
    """The algorithm class registered as ``name``.

    Raises:
        ConfigError: no algorithm has that name (the message lists the known ones).
        ImportError: an installed package's entry point is broken.

    Examples:
        >>> get_algorithm("coma").critics
        ('coma',)
        >>> try:
        ...     get_algorithm("qmix")
        ... except ConfigError as err:
        ...     print(err)
        algorithm must be one of ['coma', 'mappo'], got 'qmix'
    """
    _load_entry_points()
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"algorithm must be one of {sorted(ALGORITHMS)}, got {name!r}") from None


def list_algorithms() -> list[type[Algorithm]]:
    """All registered algorithms, sorted by name.

    Examples:
        >>> [cls.name for cls in list_algorithms()]
        ['coma', 'mappo']
    """
    _load_entry_points()
    return [ALGORITHMS[name] for name in sorted(ALGORITHMS)]


_entry_points_loaded = False


def _load_entry_points() -> None:
    """Load the :data:`ENTRY_POINT_GROUP` entry points of the installed packages, once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    try:
        for who, loaded in loaded_entry_points(ENTRY_POINT_GROUP):
            if isinstance(loaded, types.ModuleType):
                continue  # a module registered its algorithms on import
            if not (isinstance(loaded, type) and issubclass(loaded, Algorithm)):
                raise ImportError(
                    f"{who} must name an Algorithm subclass or a module that calls "
                    f"register_algorithm; got {type(loaded).__name__}"
                )
            if ALGORITHMS.get(loaded.name) is not loaded:
                try:
                    register_algorithm(loaded)
                except ConfigError as err:
                    raise ImportError(f"{who}: {err}") from err
    except BaseException:
        _entry_points_loaded = False  # the next lookup reports the broken entry point again
        raise
