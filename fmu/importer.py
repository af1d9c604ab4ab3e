"""Import a foreign FMI 2.0 co-simulation FMU as a co2twin component.

``FMUComponent("pi.fmu", kp=3.0)`` reads the FMU's ``modelDescription.xml`` and
returns a component of a class made for that FMU, whose ports come from the
model variables:

* causality ``input`` -> :attr:`inputs`, ``output`` -> :attr:`outputs`,
  ``parameter`` -> :attr:`parameters` (``variability="tunable"`` ones are
  tunable during a run); Real, Integer, Boolean and Enumeration variables are
  carried as floats, String parameters are left at their start value;
* units from the variable or its declared type; bounds from ``min``/``max``;
  start values from ``start`` (an output without one starts at 0, or the
  nearest bound when 0 is outside them);
* names that are not Python identifiers (``a.b``, ``der(x)``) become
  identifiers by replacing every other character with ``_``
  (:attr:`FMUComponent.variable_names` maps port name -> FMU name).

Units. A unit is accepted when

1. its name is a co2twin unit (``cosim.units.UNITS``)
   (and, if the FMU defines it, defined as co2twin defines it), or
2. its ``UnitDefinitions`` entry has the same SI definition (base-unit exponents,
   ``factor`` and ``offset``) as exactly one co2twin unit, e.g. a unit ``Volt``
   with ``<BaseUnit kg="1" m="2" s="-3" A="-1"/>`` is ``V``; or
3. the variable declares no unit at all: it is dimensionless, ``1``.

Any other unit raises :class:`~cosim.errors.FMUError` naming the file, the
variable and the unit: values are never rescaled behind the user's back.

The component runs the FMU through FMPy's ``FMU2Slave``: one instance per
component, instantiated on the first :meth:`~FMUComponent.initialize` (later ones
reset it), freed by :meth:`~FMUComponent.close` or when the component is garbage
collected. ``get_state``/``set_state`` use ``fmi2GetFMUstate``/``fmi2SetFMUstate``,
serialised to bytes when the FMU can (``canSerializeFMUstate``), else as handles
that live as long as the instance.
"""
from __future__ import annotations

import math
import re
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar
from xml.etree import ElementTree

from cosim.component import Component
from cosim.errors import FMUError
from cosim.ports import Parameter, Port
from cosim.units import UNITS

__all__ = ["SI_UNITS", "FMUComponent", "read_fmu"]

_BASE = ("kg", "m", "s", "A", "K", "mol", "cd", "rad")


def _si(factor: float = 1.0, offset: float = 0.0, **exponents: int) -> tuple:
    return (tuple(exponents.get(b, 0) for b in _BASE), factor, offset)


#: co2twin unit -> its SI definition (base-unit exponents, factor, offset), as FMI 2.0 writes it
SI_UNITS: dict[str, tuple] = {
    "s": _si(s=1),
    "h": _si(3600.0, s=1),
    "A": _si(A=1),
    "V": _si(kg=1, m=2, s=-3, A=-1),
    "W": _si(kg=1, m=2, s=-3),
    "Ohm": _si(kg=1, m=2, s=-3, A=-2),
    "C": _si(s=1, A=1),
    "Ah": _si(3600.0, s=1, A=1),
    "mA/cm2": _si(10.0, m=-2, A=1),
    "cm2": _si(1e-4, m=2),
    "L": _si(1e-3, m=3),
    "mL/min": _si(1e-6 / 60.0, m=3, s=-1),
    "mol": _si(mol=1),
    "mol/s": _si(mol=1, s=-1),
    "mol/L": _si(1e3, mol=1, m=-3),
    "g/L": _si(1.0, kg=1, m=-3),
    "g/h": _si(1e-3 / 3600.0, kg=1, s=-1),
    "degC": _si(1.0, 273.15, K=1),
    "A/s": _si(A=1, s=-1),
    "kWh": _si(3.6e6, kg=1, m=2, s=-2),
    "kWh/kg": _si(3.6e6, m=2, s=-2),
    "kWh/kmol": _si(3.6e3, kg=1, m=2, s=-2, mol=-1),
    "W/K": _si(kg=1, m=2, s=-3, K=-1),
    "J/K": _si(kg=1, m=2, s=-2, K=-1),
    "J/(mL*K)": _si(1e6, kg=1, m=-1, s=-2, K=-1),
    "Ohm*cm2": _si(1e-4, kg=1, m=4, s=-3, A=-2),
    "V/K": _si(kg=1, m=2, s=-3, A=-1, K=-1),
    "1/K": _si(K=-1),
    "1/s": _si(s=-1),
}
# "1", "%", "pH" and "mol/mol" are left out: as SI they are all dimensionless, so a
# BaseUnit definition cannot tell them apart; they match by name only.
SI_UNITS = {u: d for u, d in SI_UNITS.items() if u in UNITS}

_SUPPORTED_TYPES = {"Real", "Integer", "Boolean", "Enumeration"}


# -- reading and checking the file ------------------------------------------------------------
def read_fmu(path: str | Path) -> Any:
    """The FMPy model description of ``path`` after every check an import needs.

    Raises :class:`FMUError` naming the file when it is missing, not a ZIP
    archive, has no ``modelDescription.xml``, is not FMI 2.0, has no
    ``CoSimulation`` element (model exchange only) or no binary for this platform.
    """
    import fmpy
    from fmpy import read_model_description

    path = Path(path)
    if not path.is_file():
        raise FMUError(f"{path}: no such FMU file")
    if not zipfile.is_zipfile(path):
        raise FMUError(f"{path}: not an FMU (an FMU is a ZIP archive; this file is not one)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "modelDescription.xml" not in names:
                raise FMUError(f"{path}: no modelDescription.xml at the top of the archive")
            root = ElementTree.fromstring(zf.read("modelDescription.xml"))
    except (zipfile.BadZipFile, ElementTree.ParseError) as exc:
        raise FMUError(f"{path}: unreadable FMU: {exc}") from None
    version = root.get("fmiVersion")
    if version != "2.0":
        raise FMUError(
            f"{path}: fmiVersion is {version!r}; co2twin imports FMI 2.0 co-simulation FMUs only"
        )
    if root.find("CoSimulation") is None:
        kinds = [k for k in ("ModelExchange",) if root.find(k) is not None]
        raise FMUError(
            f"{path}: no CoSimulation element in modelDescription.xml "
            f"({' and '.join(kinds) or 'no interface'} only); co2twin needs a co-simulation FMU"
        )
    try:
        md = read_model_description(str(path), validate=True)
    except Exception as exc:  # noqa: BLE001 -- FMPy raises ValidationError or bare Exception
        text = "; ".join(getattr(exc, "problems", []) or [str(exc)])
        raise FMUError(f"{path}: invalid modelDescription.xml: {text}") from None
    identifier = md.coSimulation.modelIdentifier
    library = f"binaries/{fmpy.platform}/{identifier}{fmpy.sharedLibraryExtension}"
    if library not in names:
        found = sorted({n.split("/")[1] for n in names
                        if n.startswith("binaries/") and n.count("/") >= 2 and not n.endswith("/")})
        raise FMUError(
            f"{path}: no binary for this platform ({fmpy.platform}): {library} is missing; "
            f"the FMU has binaries for {', '.join(found) or 'no platform'}"
        )
    return md


def _identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    return ident


def _attr(variable: Any, name: str) -> Any:
    """An attribute of a variable, else of its declared type."""
    value = getattr(variable, name, None)
    if value is None and variable.declaredType is not None:
        value = getattr(variable.declaredType, name, None)
    return value


def _number(text: Any, default: float) -> float:
    if text is None:
        return default
    if isinstance(text, str) and text.lower() in ("true", "false"):
        return 1.0 if text.lower() == "true" else 0.0
    return float(text)


def _unit_definitions(md: Any) -> dict[str, tuple | None]:
    defs: dict[str, tuple | None] = {}
    for unit in md.unitDefinitions:
        base = unit.baseUnit
        if base is None:
            defs[unit.name] = None
            continue
        exponents = tuple(int(getattr(base, b, 0) or 0) for b in _BASE)
        defs[unit.name] = (exponents, float(base.factor or 1.0), float(base.offset or 0.0))
    return defs


def _same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and math.isclose(a[1], b[1], rel_tol=1e-12) and math.isclose(
        a[2], b[2], rel_tol=1e-12, abs_tol=1e-12)


def _co2twin_unit(path: Path, variable: Any, defs: Mapping[str, tuple | None]) -> str:
    unit = _attr(variable, "unit")
    if unit is None or unit == "":
        return "1"
    definition = defs.get(unit)
    if unit in UNITS:
        own = SI_UNITS.get(unit)
        if definition is not None and own is not None and not _same(own, definition):
            raise FMUError(
                f"{path}: variable {variable.name!r} has unit {unit!r}, but the FMU defines "
                f"{unit!r} otherwise than co2twin does (BaseUnit exponents, factor, offset "
                f"{definition} instead of {own})"
            )
        return unit
    if definition is not None:
        matches = [u for u, d in SI_UNITS.items() if _same(d, definition)]
        if len(matches) == 1:
            return matches[0]
    why = ("its UnitDefinitions entry has no BaseUnit" if unit in defs and definition is None
           else "its BaseUnit definition matches no co2twin unit" if definition is not None
           else "it has no UnitDefinitions entry")
    raise FMUError(
        f"{path}: variable {variable.name!r} has unit {unit!r}, which is not a co2twin unit "
        f"and {why}; co2twin units: {', '.join(sorted(UNITS))}"
    )


def _describe(path: Path, md: Any, measured: Iterable[str]) -> dict[str, Any]:
    """Ports, parameters and value references of the FMU, as class attributes."""
    defs = _unit_definitions(md)
    inputs: list[Port] = []
    outputs: list[Port] = []
    parameters: list[Parameter] = []
    # (causality, port or parameter name) -> (type, value reference)
    refs: dict[tuple[str, str], tuple[str, int]] = {}
    names: dict[str, tuple[str, str]] = {}  # FMU name -> (causality, identifier)
    seen: dict[tuple[str, str], str] = {}
    measured = set(measured)
    problems: list[str] = []
    for v in md.modelVariables:
        if v.causality not in ("input", "output", "parameter"):
            continue
        if v.type not in _SUPPORTED_TYPES:
            if v.causality == "parameter":
                continue  # e.g. a String file name: keeps its start value
            raise FMUError(
                f"{path}: {v.causality} {v.name!r} is a {v.type}; co2twin signals are numbers "
                f"(Real, Integer, Boolean, Enumeration)"
            )
        ident = _identifier(v.name)
        other = seen.get((v.causality, ident))
        if other is not None:
            raise FMUError(
                f"{path}: {v.causality} variables {other!r} and {v.name!r} both become the "
                f"port name {ident!r}; rename one in the FMU"
            )
        seen[(v.causality, ident)] = v.name
        names[v.name] = (v.causality, ident)
        unit = _co2twin_unit(path, v, defs)
        lower = _number(_attr(v, "min"), -math.inf)
        upper = _number(_attr(v, "max"), math.inf)
        if v.type == "Boolean":
            lower, upper = 0.0, 1.0
        default = min(max(0.0, lower), upper)
        start = _number(v.start, default)
        try:
            if v.causality == "parameter":
                parameters.append(Parameter(ident, start, unit, v.description or "", lower, upper,
                                            tunable=v.variability == "tunable"))
            else:
                port = Port(ident, unit, lower, upper, v.description or "", start,
                            measured=ident in measured or v.name in measured)
                (inputs if v.causality == "input" else outputs).append(port)
        except ValueError as exc:
            raise FMUError(f"{path}: variable {v.name!r}: {exc}") from None
        refs[(v.causality, ident)] = (v.type, v.valueReference)
    known = {n for _, n in names.values()} | set(names)
    unknown = sorted(set(measured) - known)
    if unknown:
        problems.append(f"measured names no input or output: {', '.join(unknown)}")
    if problems:
        raise FMUError(f"{path}: " + "; ".join(problems))
    return {
        "inputs": tuple(inputs),
        "outputs": tuple(outputs),
        "parameters": tuple(parameters),
        "_refs": refs,
        "variable_names": {ident: name for name, (_, ident) in names.items()},
    }


# -- the component ----------------------------------------------------------------------------
class FMUComponent(Component):
    """A foreign FMI 2.0 co-simulation FMU as a co2twin component.

    ``FMUComponent(path, measured=(), instance_name=None, **parameters)`` returns an
    instance of a subclass made for that FMU (named after its model), with the
    FMU's ports and parameters as class attributes, so it wires, records and
    checkpoints like any other component. ``measured`` names the inputs that read
    a sensor (and so see sensor faults) and the outputs that are sensor readings.
    """

    #: set on each per-FMU subclass
    fmu_path: Path
    model_description: Any
    variable_names: ClassVar[dict[str, str]] = {}
    _refs: ClassVar[dict[tuple[str, str], tuple[str, int]]] = {}

    def __new__(  # noqa: PYI034 -- returns an instance of a per-FMU subclass
        cls, path: str | Path | None = None, *args: Any, **kwargs: Any
    ) -> FMUComponent:
        if cls is not FMUComponent:  # already a per-FMU class
            return super().__new__(cls)
        if path is None:
            raise FMUError("FMUComponent needs the path of an .fmu file")
        return super().__new__(cls.subclass(path, measured=kwargs.get("measured", ())))

    @classmethod
    def subclass(cls, path: str | Path, *, measured: Iterable[str] = ()) -> type[FMUComponent]:
        """The component class of the FMU at ``path`` (checked, not yet instantiated)."""
        path = Path(path)
        md = read_fmu(path)
        attrs = _describe(path, md, measured)
        name = _identifier(md.modelName or path.stem)
        attrs.update(
            fmu_path=path.resolve(),
            model_description=md,
            __doc__=md.description or f"FMU {path.name} ({md.modelName})",
            __module__=__name__,
        )
        return type(f"FMU_{name}", (FMUComponent,), attrs)

    def __init__(self, path: str | Path | None = None, *, measured: Iterable[str] = (),
                 instance_name: str | None = None, **params: float) -> None:
        super().__init__(**params)
        self.instance_name = instance_name or self.model_description.modelName
        # everything the finaliser frees lives here, never a reference to self
        self._res: dict[str, Any] = {"slave": None, "dir": None, "handles": [], "state": "none"}
        self._finalizer = weakref.finalize(self, _release, self._res)
        cs = self.model_description.coSimulation
        self._can_get = bool(cs.canGetAndSetFMUstate)
        self._can_serialize = self._can_get and bool(cs.canSerializeFMUstate)
        self._in = [(p.name,) + self._refs[("input", p.name)] for p in self.inputs]
        self._out = [(p.name,) + self._refs[("output", p.name)] for p in self.outputs]
        self._pushed: dict[str, float] = {}
        self._t = 0.0

    # -- lifecycle ---------------------------------------------------------------------
    def _slave(self) -> Any:
        res = self._res
        if res["slave"] is None:
            from fmpy.fmi2 import FMU2Slave

            if not self._finalizer.alive:  # closed before: free this instance too
                self._finalizer = weakref.finalize(self, _release, res)

            res["dir"] = tempfile.mkdtemp(prefix="co2twin_fmu_")
            with zipfile.ZipFile(self.fmu_path) as zf:
                zf.extractall(res["dir"])
            md = self.model_description
            slave = self._call("load", lambda: FMU2Slave(
                guid=md.guid, unzipDirectory=res["dir"],
                modelIdentifier=md.coSimulation.modelIdentifier, instanceName=self.instance_name))
            self._call("fmi2Instantiate", slave.instantiate)
            res["slave"] = slave
            res["state"] = "instantiated"
        return res["slave"]

    def initialize(self, t0: float) -> None:
        """Instantiate (or reset) the FMU, set the parameters and start values, initialise at ``t0``."""
        slave = self._slave()
        res = self._res
        if res["state"] != "instantiated":
            self._call("fmi2Reset", slave.reset)
            self._free_handles()
            res["state"] = "instantiated"
        self._t = float(t0)
        res["state"] = "initializing"  # a failure from here on makes the next initialize reset
        self._call("fmi2SetupExperiment", lambda: slave.setupExperiment(startTime=t0))
        for spec in self.parameters:
            self._set(("parameter", spec.name), getattr(self.p, spec.name))
        for port in self.inputs:
            self._set(("input", port.name), port.start)
        self._call("fmi2EnterInitializationMode", slave.enterInitializationMode)
        self._call("fmi2ExitInitializationMode", slave.exitInitializationMode)
        res["state"] = "running"
        self._pushed = dict(vars(self.p))

    def close(self) -> None:
        """Terminate and free the FMU instance and delete its extracted files (idempotent)."""
        self._finalizer()

    def __enter__(self) -> FMUComponent:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stepping ----------------------------------------------------------------------
    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Set the inputs, ``fmi2DoStep(t, dt)`` unless ``dt == 0``, return the outputs."""
        slave = self._running("step()")
        if self._pushed != vars(self.p):
            for name, value in vars(self.p).items():
                if self._pushed.get(name) != value:
                    self._set(("parameter", name), value)
            self._pushed = dict(vars(self.p))
        for name, kind, vr in self._in:
            self._write(kind, vr, inputs[name], name)
        if dt > 0:
            self._call("fmi2DoStep", lambda: slave.doStep(
                currentCommunicationPoint=t, communicationStepSize=dt), t)
            self._t = t + dt
        return {name: self._read(kind, vr, name) for name, kind, vr in self._out}

    def _running(self, what: str) -> Any:
        if self._res["state"] != "running":
            raise FMUError(f"{self.fmu_path}: {what} before initialize() or after close()")
        return self._res["slave"]

    def _set(self, key: tuple[str, str], value: float) -> None:
        kind, vr = self._refs[key]
        self._write(kind, vr, value, key[1])

    def _write(self, kind: str, vr: int, value: Any, name: str) -> None:
        slave = self._res["slave"]
        if kind == "Real":
            self._call("fmi2SetReal", lambda: slave.setReal([vr], [float(value)]), name=name)
        elif kind == "Boolean":
            self._call("fmi2SetBoolean", lambda: slave.setBoolean([vr], [bool(value)]), name=name)
        else:
            self._call("fmi2SetInteger", lambda: slave.setInteger([vr], [round(float(value))]),
                       name=name)

    def _read(self, kind: str, vr: int, name: str) -> float:
        slave = self._res["slave"]
        if kind == "Real":
            return self._call("fmi2GetReal", lambda: slave.getReal([vr]), name=name)[0]
        if kind == "Boolean":
            return float(self._call("fmi2GetBoolean", lambda: slave.getBoolean([vr]), name=name)[0])
        return float(self._call("fmi2GetInteger", lambda: slave.getInteger([vr]), name=name)[0])

    def _call(self, what: str, fn: Any, t: float | None = None, name: str | None = None) -> Any:
        try:
            return fn()
        except FMUError:
            raise
        except Exception as exc:  # noqa: BLE001 -- FMPy raises FMICallException or bare Exception
            where = f" at t={t:g} s" if t is not None else ""
            var = f" ({self.variable_names.get(name, name)})" if name else ""
            raise FMUError(f"{self.fmu_path}: {what}{var}{where} failed: {exc}") from None

    # -- checkpointing -----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The FMU state (serialised bytes, or a handle kept until close) and the parameters."""
        slave = self._running("get_state()")
        if not self._can_get:
            raise FMUError(
                f"{self.fmu_path}: the FMU cannot save its state (canGetAndSetFMUstate is "
                f"not true), so a simulation holding it cannot take checkpoints"
            )
        handle = self._call("fmi2GetFMUstate", slave.getFMUstate)
        if self._can_serialize:
            try:
                fmu_state: Any = bytes(self._call("fmi2SerializeFMUstate",
                                                  lambda: slave.serializeFMUstate(handle)))
            finally:
                self._call("fmi2FreeFMUstate", lambda: slave.freeFMUstate(handle))
        else:
            self._res["handles"].append(handle)
            fmu_state = _Handle(handle, self._res)
        return {"fmu": fmu_state, "t": self._t, "pushed": dict(self._pushed),
                "__parameters__": dict(vars(self.p))}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Return the FMU to what :meth:`get_state` saved."""
        from types import SimpleNamespace

        slave = self._running("set_state()")
        fmu_state = state["fmu"]
        if isinstance(fmu_state, _Handle):
            if fmu_state.res is not self._res or fmu_state.handle not in self._res["handles"]:
                raise FMUError(f"{self.fmu_path}: set_state() with a state of another instance "
                               "or one freed by a reset")
            self._call("fmi2SetFMUstate", lambda: slave.setFMUstate(fmu_state.handle))
        else:
            handle = self._call("fmi2DeSerializeFMUstate",
                                lambda: slave.deSerializeFMUstate(fmu_state))
            try:
                self._call("fmi2SetFMUstate", lambda: slave.setFMUstate(handle))
            finally:
                self._call("fmi2FreeFMUstate", lambda: slave.freeFMUstate(handle))
        self._t = state["t"]
        self._pushed = dict(state["pushed"])
        self.p = SimpleNamespace(**state["__parameters__"])

    def _free_handles(self) -> None:
        slave = self._res["slave"]
        while self._res["handles"]:
            handle = self._res["handles"].pop()
            with suppress(Exception):  # freeing must not raise
                slave.freeFMUstate(handle)


class _Handle:
    """An ``fmi2FMUstate`` handle of one instance (freed with the instance)."""

    __slots__ = ("handle", "res")

    def __init__(self, handle: Any, res: dict) -> None:
        self.handle = handle
        self.res = res

    def __deepcopy__(self, memo: dict) -> _Handle:
        return self  # a handle is a reference; copies share it


def _release(res: dict) -> None:
    """Terminate and free the instance, then delete the extracted files; never raises."""
    slave, res["slave"] = res["slave"], None
    if slave is not None:
        # freeing must not raise: each step is tried whatever the one before did
        for handle in res["handles"]:
            with suppress(Exception):
                slave.freeFMUstate(handle)
        res["handles"].clear()
        if res["state"] == "running":
            with suppress(Exception):
                slave.terminate()
        with suppress(Exception):
            slave.freeInstance()
    res["state"] = "closed"
    directory, res["dir"] = res["dir"], None
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
