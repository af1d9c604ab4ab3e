"""Entry module of the co2twin FMU: ``fmu/build.py`` packs it as ``resources/co2twin_fmu.py``.

PythonFMU 0.7.0 imports this module (named in ``resources/slavemodule.txt``) once per
process and instantiates its ``Co2Twin`` for every ``fmi2Instantiate``. A host may free an
instance, delete its unpack folder and instantiate again from another folder (libcosim, Ecos
and FMPy's ``simulate_fmu`` do): the FMU's packages imported for the first instance would
then still sit in ``sys.modules`` pointing into a folder that is gone. So ``Co2Twin`` here
is a factory: for each instance it calls :func:`prepare` with the instance's own resources
folder (its ``fmuResourceLocation``), which

* forgets every folder whose instances have all been freed: the FMU's own packages loaded
  from there (``co2twin``, ``cosim``, ``components``, ``models``, ``fmu``, ``pythonfmu``
  and this module) leave ``sys.modules`` and are imported afresh from the instance's
  folder; packages that cannot be imported twice (NumPy and the rest of the bundled
  ``site-packages``, C extensions) stay loaded, their search paths moved to the
  instance's folder; the folder leaves ``sys.path`` and the import caches;
* when another folder still has live instances (two unpacked copies in use at once), keeps
  its modules and adds the instance's folder to their search paths, so that a later import
  still works once the other folder is deleted;
* puts the instance's folder first on ``sys.path`` and its ``site-packages`` bundle last
  (a host's own packages come first; in the interpreter the C loader starts, the path
  holds only the standard library).

Modules a host imported from anywhere else are never touched: a Python host that has
co2twin installed and imported keeps using its own modules. Each instance takes its
scenario and trained models from its own folder (``fmu.slave``).

Standard library only: this runs before the FMU's packages are importable.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import os
import sys
import types
import weakref
from typing import Any

#: packages the FMU carries in its resources folder, imported afresh for a new folder
OWN_PACKAGES = ("co2twin", "cosim", "components", "models", "fmu", "pythonfmu", "co2twin_fmu")
#: folder of the bundled third-party packages, inside the resources folder
BUNDLE = "site-packages"
#: module holding the live instances by folder; made here, never a file, never purged
_REGISTRY = "_co2twin_fmu_instances"

# PythonFMU 0.7.0 releases one reference to this module's dict per fmi2Instantiate that
# it never took (findClass: Py_DECREF of PyModule_GetDict's borrowed reference), after
# running this file's code once more in the module's namespace. Taking one here on every
# run balances it, plus one kept for good, so the dict outlives the module when purged.
ctypes.pythonapi.Py_IncRef(ctypes.py_object(globals()))


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + os.sep)


def _folders() -> dict[str, weakref.WeakSet[Any]]:
    """Resources folder -> its live instances (a module object in ``sys.modules`` holds it)."""
    module = sys.modules.get(_REGISTRY)
    if module is None:
        module = types.ModuleType(_REGISTRY, "live co2twin FMU instances by resources folder")
        module.folders = {}  # type: ignore[attr-defined]
        sys.modules[_REGISTRY] = module
    folders: dict[str, weakref.WeakSet[Any]] = module.folders
    return folders


def _locations(module: Any) -> list[str]:
    """Where a module was loaded from: its file and, for a package, its search path."""
    out = []
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        out.append(file)
    path = getattr(module, "__path__", None)
    if isinstance(path, list):
        out.extend(p for p in path if isinstance(p, str))
    return out


def _moved(path: str, old: str, new: str) -> str:
    return new + path[len(old):]


def _repoint(module: Any, old: str, new: str, *, replace: bool) -> None:
    """Point a package's search path from folder ``old`` to folder ``new`` (or add ``new``)."""
    path = getattr(module, "__path__", None)
    if not isinstance(path, list):
        return
    for entry in list(path):
        if not (isinstance(entry, str) and _under(entry, old)):
            continue
        moved = _moved(entry, old, new)
        if not os.path.isdir(moved):
            continue
        if replace:
            path[path.index(entry)] = moved
        elif moved not in path:
            path.append(moved)


def _forget(folder: str) -> None:
    """Take a folder whose instances are all gone off ``sys.path`` and the import caches."""
    sys.path[:] = [p for p in sys.path if not _under(p, folder)]
    for key in [k for k in sys.path_importer_cache if isinstance(k, str) and _under(k, folder)]:
        del sys.path_importer_cache[key]


def _put_on_path(folder: str) -> None:
    """The instance's folder first on ``sys.path``, its bundle last (once each)."""
    bundle = os.path.join(folder, BUNDLE)
    sys.path[:] = [p for p in sys.path if p not in (folder, bundle)]
    sys.path.insert(0, folder)
    if os.path.isdir(bundle):
        sys.path.append(bundle)


def prepare(resources: str) -> str:
    """Make the FMU's code and packages come from ``resources`` (see the module docstring).

    Returns the folder as registered (absolute, normalised).
    """
    here = os.path.abspath(resources)
    folders = _folders()
    gc.collect()  # instances the host freed may still wait in reference cycles
    dead = {f for f, live in folders.items() if f != here and not live}
    for name, module in list(sys.modules.items()):
        places = _locations(module)
        owner = next((f for f in folders if f != here and any(_under(p, f) for p in places)), None)
        if owner is None:
            continue
        if owner in dead and name.partition(".")[0] in OWN_PACKAGES:
            del sys.modules[name]
        else:
            _repoint(module, owner, here, replace=owner in dead)
    for folder in dead:
        _forget(folder)
        del folders[folder]
    _put_on_path(here)
    folders.setdefault(here, weakref.WeakSet())
    importlib.invalidate_caches()  # a folder may have been deleted and unpacked again
    return here


def register(folder: str, instance: Any) -> None:
    """Count ``instance`` as live in ``folder`` until it is garbage."""
    _folders().setdefault(folder, weakref.WeakSet()).add(instance)


if "pythonfmu" not in sys.modules:  # first import: its folder's bundle holds pythonfmu
    _put_on_path(os.path.dirname(os.path.abspath(__file__)))

from pythonfmu import Fmi2Slave  # noqa: E402


class Co2Twin(Fmi2Slave):
    """What PythonFMU instantiates: returns an ``fmu.slave.Co2Twin`` from the instance's folder."""

    def __new__(cls, **kwargs: Any) -> Any:  # noqa: D102 - see the class docstring
        folder = prepare(kwargs["resources"])
        from fmu import slave

        instance = slave.Co2Twin(**kwargs)
        register(folder, instance)
        return instance

    def do_step(self, current_time: float, step_size: float) -> bool:  # never called: see __new__
        raise NotImplementedError

    @staticmethod
    def _fmu_state_to_bytes(state: Any) -> bytes:
        """PythonFMU serialises a state through the class; the state knows how."""
        to_bytes = getattr(state, "to_bytes", None)
        return to_bytes() if callable(to_bytes) else b""

    @staticmethod
    def _fmu_state_from_bytes(data: bytes) -> Any:
        """A state from bytes; never raises (PythonFMU would drop the instance): a bad state
        comes back as an object that ``_set_fmu_state`` refuses with fmi2Error."""
        try:
            from fmu.slave import FmuState
        except Exception as exc:  # noqa: BLE001 - no exception may reach PythonFMU
            return ("not a co2twin FMU state", repr(exc))
        return FmuState.from_bytes(data)
