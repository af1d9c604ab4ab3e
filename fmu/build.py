"""Package the twin as a self-contained FMI 2.0 co-simulation FMU with PythonFMU.

``build_fmu(scenario, output)``:

1. stages the entry module (``fmu/entry.py`` as ``co2twin_fmu.py``), our packages
   (co2twin, cosim, components, models with the trained ``.keras`` models and cards, fmu),
   the scenario with its data files and a build record (``co2twin_build.json``);
2. builds with :class:`pythonfmu.FmuBuilder` (which adds PythonFMU's own Python part);
3. bundles the third-party packages co2twin's run path needs
   (:data:`RUNTIME_DISTRIBUTIONS` and their requirements but :data:`NOT_BUNDLED`, as installed for the build
   interpreter: CPython of this minor version on Linux x86_64) into
   ``resources/site-packages``, without their tests; compiles every module to bytecode that
   is never checked against its source (so a host's unpacking, which resets file times,
   costs no recompilation and nothing is written into the unpack folder);
4. checks the result in a fresh interpreter that has only the standard library and the
   FMU's resources on its path (``python -I -S``): it instantiates and steps the slave and
   every module it loads must come from the FMU (an :class:`FMUError` names any other);
5. post-processes ``modelDescription.xml`` (units, bounds, descriptions, default
   experiment, ``ModelStructure/InitialUnknowns``) so FMPy's validation is clean;
6. compiles ``fmu/loader.c`` with gcc into ``binaries/linux64/<id>.so`` (the PythonFMU
   library beside it as ``<id>_pythonfmu.so``); see the loader's header for what it does.
   PythonFMU's ``win64`` library is left out: without a loader it cannot work there.

The FMU then runs on Linux x86_64 with a shared libpython of the build's minor version
and that version's standard library, and nothing else (README, "FMU export and import").
"""
from __future__ import annotations

import html
import importlib.util
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from cosim.atomic import atomic_path
from cosim.errors import FMUError

__all__ = ["DEFAULT_SCENARIO", "DEFAULT_SUPPLY_SCENARIO", "MODEL_IDENTIFIER", "NOT_BUNDLED",
           "RUNTIME_DISTRIBUTIONS", "build_fmu", "build_info", "bundle_distributions"]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("co2twin", "cosim", "components", "models", "fmu")
MODEL_IDENTIFIER = "Co2Twin"
#: the scenario an FMU is built from without --scenario (ships inside the package)
DEFAULT_SCENARIO = Path(__file__).resolve().parent / "default_scenario.yaml"
#: the scenario ``--supply`` builds from without --scenario: the nominal plant on PV, battery
#: and grid, irradiance and price driven by the host
DEFAULT_SUPPLY_SCENARIO = Path(__file__).resolve().parent / "default_supply_scenario.yaml"
BUILD_INFO = "co2twin_build.json"  # = fmu.slave.BUILD_INFO, which reads the GUID from it
ENTRY_MODULE = "co2twin_fmu"
BUNDLE = "site-packages"
#: what co2twin's run path (fmu.slave -> co2twin.scenario -> components, models, cosim)
#: imports from outside the standard library; their requirements are bundled too. Not
#: typer, rich, matplotlib, pyarrow or FMPy: the CLI, plots, Parquet files and FMU import
#: are not on it (step 4 of the module docstring fails the build if that ever changes).
RUNTIME_DISTRIBUTIONS = ("numpy", "pandas", "PyYAML", "pydantic", "simpy", "h5py")
#: requirements left out, and why (the build's isolated check still passes without them)
NOT_BUNDLED = {
    "tzdata": "time zone database (python-dateutil requires it; the run path converts no time "
              "zones, and dateutil falls back to the system's)",
}
#: parts of a distribution the FMU never runs
_SKIP_DIRS = {"tests", "__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyi", ".pxd", ".pyx", ".h", ".c", ".cpp")
_SKIP_META = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}

# Run by `python -I -S -B` in the FMU's resources folder: what PythonFMU does for an
# instance (folder first on sys.path, import the entry module, instantiate, step), then
# report every module loaded from outside the standard library and the folder.
_PROBE = r'''
import json, sys, sysconfig
resources = sys.argv[1]
sys.path.insert(0, resources)
import co2twin_fmu
slave = co2twin_fmu.Co2Twin(instance_name="probe", resources=resources)
slave.exit_initialization_mode()
for k in range(3):
    assert slave.do_step(k * slave._step, slave._step), "doStep failed"
stdlib = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
outside = sorted({f"{name} ({mod.__file__})" for name, mod in list(sys.modules.items())
                  if isinstance(getattr(mod, "__file__", None), str)
                  and not mod.__file__.startswith(resources + "/")
                  and not any(mod.__file__.startswith(p + "/") for p in stdlib)})
bundle = resources + "/site-packages/"
used = sorted({m.__file__[len(bundle):].split("/")[0] for m in list(sys.modules.values())
               if isinstance(getattr(m, "__file__", None), str) and m.__file__.startswith(bundle)})
print(json.dumps({"outside": outside, "used": used, "python": sys.version.split()[0]}))
'''


def build_info() -> dict[str, Any]:
    """The build interpreter as the FMU records it: version, libpython, home, platform."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlib = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    libpython = str(Path(libdir) / ldlib) if libdir and ldlib else ""
    return {
        "python": sys.executable,
        "version": sys.version.split()[0],
        "minor": f"{sys.version_info.major}.{sys.version_info.minor}",
        "libpython": libpython,
        "pythonhome": sys.base_prefix,
        "platform": "linux64",
        "machine": sysconfig.get_platform(),
        "cache_tag": sys.implementation.cache_tag,
    }


def build_fmu(scenario: str | Path | None = None, output: str | Path = "co2twin.fmu",
              *, loader: bool = True, supply: bool = False) -> Path:
    """Build the FMU of ``scenario`` (default: :data:`DEFAULT_SCENARIO`, with ``supply``
    :data:`DEFAULT_SUPPLY_SCENARIO`) at ``output``.

    A scenario with a ``supply:`` section exports the supply too (inputs
    :data:`fmu.slave.SUPPLY_INPUTS`, outputs :data:`fmu.slave.SUPPLY_OUTPUT_SIGNALS`);
    ``supply`` asks for it, and refuses a scenario without one.
    """
    from co2twin.scenario import load_scenario

    if not sys.platform.startswith("linux"):
        raise FMUError(f"{output}: the FMU is built for linux64 only (its loader and bundled packages "
                       f"are Linux x86_64 builds); this is {sys.platform}")
    default = DEFAULT_SUPPLY_SCENARIO if supply else DEFAULT_SCENARIO
    scenario_path = Path(scenario) if scenario is not None else default
    output = Path(output)
    sc = load_scenario(scenario_path)
    if not sc.has_plant or sc.components:
        raise FMUError(f"{scenario_path}: the exported FMU is the standard plant; expected a "
                       "scenario with the plant and without components: entries")
    if supply and sc.supply is None:
        raise FMUError(f"{scenario_path}: --supply exports the solar and battery supply; expected a "
                       "scenario with a supply: section, found none (or leave out --scenario for "
                       f"{DEFAULT_SUPPLY_SCENARIO.name})")
    info = build_info()
    with tempfile.TemporaryDirectory(prefix="co2twin_fmu_") as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        script = stage / f"{ENTRY_MODULE}.py"
        shutil.copy2(ROOT / "fmu" / "entry.py", script)
        files = _stage(stage, scenario_path, sc, info)
        raw = Path(tmp) / f"{MODEL_IDENTIFIER}.fmu"
        _pythonfmu_build(script, raw, files, output)
        tree = Path(tmp) / "fmu"
        with zipfile.ZipFile(raw) as z:
            z.extractall(tree)
        resources = tree / "resources"
        md_text = _fix_model_description((tree / "modelDescription.xml").read_bytes(), sc)
        info["guid"] = ET.fromstring(md_text).get("guid") or ""
        info["bundle"] = bundle_distributions(resources / BUNDLE)
        (resources / BUILD_INFO).write_text(json.dumps(info, indent=2))
        _compile(resources)
        info["bundle_imported"] = _probe(resources, output)
        (resources / BUILD_INFO).write_text(json.dumps(info, indent=2))
        (tree / "modelDescription.xml").write_bytes(md_text)
        linux = tree / "binaries" / "linux64"
        if loader:
            (linux / f"{MODEL_IDENTIFIER}.so").rename(linux / f"{MODEL_IDENTIFIER}_pythonfmu.so")
            shutil.copy2(_compile_loader(Path(tmp), info), linux / f"{MODEL_IDENTIFIER}.so")
        shutil.rmtree(tree / "binaries" / "win64", ignore_errors=True)
        info["glibc"] = _glibc_needed(linux)
        (resources / BUILD_INFO).write_text(json.dumps(info, indent=2))
        _write_documentation(tree / "documentation", sc, info)
        output.parent.mkdir(parents=True, exist_ok=True)
        _zip(tree, output)
    return output


def _pythonfmu_build(script: Path, raw: Path, files: list[Path], output: Path) -> None:
    """PythonFMU's archive of the staged entry module and files (capabilities declared here)."""
    from pythonfmu import FmuBuilder

    stage = script.parent
    cwd = os.getcwd()
    try:
        FmuBuilder.build_FMU(script, dest=raw, project_files=files,
                             needsExecutionTool=False, canGetAndSetFMUstate=True,
                             canSerializeFMUstate=True, canHandleVariableCommunicationStepSize=True)
    except Exception as exc:  # PythonFMU raises plain exceptions
        raise FMUError(f"{output}: PythonFMU could not build the FMU: {exc}") from exc
    finally:  # PythonFMU leaves the staging folder on sys.path and the entry module loaded
        os.chdir(cwd)
        sys.modules.pop(ENTRY_MODULE, None)
        while str(stage) in sys.path:
            sys.path.remove(str(stage))


def _stage(stage: Path, scenario_path: Path, sc: Any, info: dict[str, Any]) -> list[Path]:
    """Copy our packages, the scenario and its data files into ``stage``; the files to pack."""
    files: list[Path] = []
    for pkg in PACKAGES:
        dst = stage / pkg
        shutil.copytree(ROOT / pkg, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        files.append(dst)
    shutil.copy2(scenario_path, stage / "scenario.yaml")
    files.append(stage / "scenario.yaml")
    for rel in _data_files(sc):
        src = sc.base_dir / rel
        if not src.is_file():
            raise FMUError(f"{scenario_path}: data file {rel} not found")
        dst = stage / rel
        if stage.resolve() not in dst.resolve().parents:
            raise FMUError(f"{scenario_path}: data file {rel} must lie beside or below the scenario")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        files.append(stage / Path(rel).parts[0])
    (stage / BUILD_INFO).write_text(json.dumps(info, indent=2))
    files.append(stage / BUILD_INFO)
    return sorted(set(files))


def _data_files(sc: Any) -> list[str]:
    """CSV files the scenario's inputs, events and supply profiles read (relative to the scenario)."""
    out = []
    from co2twin.supply_schema import PROFILE_PORTS

    profiles = [] if sc.supply is None else [getattr(sc.supply, key) for key in PROFILE_PORTS]
    for spec in list(sc.inputs.values()) + list(sc.events) + [p for p in profiles if p is not None]:
        csv = getattr(spec, "csv", None)
        if csv is not None:
            out.append(csv.path)
    return out


def _requirements(dist: metadata.Distribution) -> list[str]:
    """Names of the distributions ``dist`` requires here (markers evaluated, no extras)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        raise FMUError("co2twin fmu build needs the packaging library to read requirements "
                       "(pip install packaging, or the fmu extra)") from None

    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def _closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` and everything they require, each once."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen or key in NOT_BUNDLED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise FMUError(f"co2twin fmu build: {name} (needed by the FMU's run path) is not installed "
                           f"for {sys.executable}") from None
        seen[key] = dist
        todo.extend(_requirements(dist))
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def bundle_distributions(folder: Path, roots: tuple[str, ...] = RUNTIME_DISTRIBUTIONS) -> dict[str, str]:
    """Copy the installed files of ``roots`` and their requirements into ``folder``.

    Leaves out tests, type stubs, C sources and bytecode (compiled afresh later). Returns
    ``{distribution: version}``.
    """
    bundled = {}
    for dist in _closure(roots):
        files = dist.files
        if files is None:
            raise FMUError(f"co2twin fmu build: {dist.metadata['Name']} has no RECORD of its files; "
                           "reinstall it with pip")
        for rel in files:
            parts = Path(rel).parts
            if not parts or parts[0] == ".." or _SKIP_DIRS & set(parts) or rel.name.endswith(_SKIP_SUFFIXES):
                continue
            if parts[0].endswith(".dist-info") and rel.name in _SKIP_META:
                continue
            src = Path(str(dist.locate_file(rel)))
            if not src.is_file():
                continue
            dst = folder.joinpath(*parts)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        bundled[dist.metadata["Name"]] = dist.version
    return bundled


def _compile(folder: Path) -> None:
    """Bytecode for every module under ``folder``, valid without looking at the sources."""
    for src in folder.rglob("*.py"):
        try:
            py_compile.compile(str(src), cfile=importlib.util.cache_from_source(str(src)),
                               doraise=True, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except py_compile.PyCompileError as exc:
            raise FMUError(f"co2twin fmu build: {src.relative_to(folder)} does not compile: "
                           f"{exc.msg}") from None


def _probe(resources: Path, output: Path) -> list[str]:
    """Run the packed FMU's Python part isolated (module docstring, step 4); bundle entries used."""
    proc = subprocess.run([sys.executable, "-I", "-S", "-B", "-c", _PROBE, str(resources)],
                          capture_output=True, text=True, check=False, timeout=300, cwd=resources)
    if proc.returncode != 0:
        raise FMUError(f"{output}: the FMU does not run with only the standard library and its own "
                       f"resources on the path:\n{proc.stderr.strip()[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    if found["outside"]:
        raise FMUError(f"{output}: the FMU loaded modules from outside its resources and the standard "
                       f"library: {', '.join(found['outside'])}")
    used: list[str] = found["used"]
    return used


def _compile_loader(tmp: Path, info: dict[str, Any]) -> Path:
    """Compile ``fmu/loader.c`` into a shared library (see the module docstring)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise FMUError(f"{ROOT / 'fmu' / 'loader.c'}: no C compiler (gcc) found to build the loader")
    for key in ("libpython", "pythonhome", "guid"):
        if '"' in info[key] or "\\" in info[key]:
            raise FMUError(f"{key} {info[key]!r} contains a quote or backslash; cannot build the loader")
    from fmu.slave import STATE_MAGIC

    out = tmp / f"{MODEL_IDENTIFIER}.so"
    cmd = [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-pthread",
           "-o", str(out), str(ROOT / "fmu" / "loader.c"),
           f'-DCO2TWIN_PY_VERSION="{info["minor"]}"',
           f'-DCO2TWIN_LIBPYTHON="{info["libpython"]}"',
           f'-DCO2TWIN_PYTHONHOME="{info["pythonhome"]}"',
           f'-DCO2TWIN_GUID="{info["guid"]}"',
           f'-DCO2TWIN_STATE_MAGIC="{STATE_MAGIC}"',
           f'-DCO2TWIN_PYTHONFMU_LIB="{MODEL_IDENTIFIER}_pythonfmu.so"', "-ldl"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FMUError(f"{ROOT / 'fmu' / 'loader.c'}: gcc failed:\n{proc.stderr}")
    return out


def _glibc_needed(binaries: Path) -> str:
    """The newest glibc symbol version the FMU's libraries ask for (their ``GLIBC_2.x`` names)."""
    minors = [int(m) for lib in binaries.glob("*.so")
              for m in re.findall(rb"GLIBC_2\.(\d+)", lib.read_bytes())]
    return f"2.{max(minors)}" if minors else ""


def _write_documentation(folder: Path, sc: Any, info: dict[str, Any]) -> None:
    """``documentation/index.html``: where the FMU runs and what it needs there."""
    folder.mkdir(parents=True, exist_ok=True)
    minor = info["minor"]
    bundle = ", ".join(f"{name} {version}" for name, version in info["bundle"].items())
    text = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>co2twin FMU</title></head><body>
<h1>co2twin FMU ({html.escape(sc.name)})</h1>
<p>Digital twin of a CO2-to-formic-acid electroreduction pilot plant, FMI 2.0 co-simulation.</p>
<h2>Platform</h2>
<p>linux64 only (Linux x86_64 with glibc {html.escape(info['glibc'] or '?')} or newer). Built with
CPython {html.escape(info['version'])}.</p>
<p>The machine running it needs a shared CPython {minor} library with its standard library
(Debian/Ubuntu: the <code>libpython{minor}</code> package) and nothing else: the FMU carries
its code, trained models and Python packages ({html.escape(bundle)}).
The loader looks for <code>libpython{minor}.so.1.0</code> in
<code>$CO2TWIN_LIBPYTHON</code>, at {html.escape(info['libpython'] or '(none recorded)')}, through the
dynamic linker, then in /usr/local/lib, /usr/lib/x86_64-linux-gnu, /usr/lib64 and /usr/lib;
<code>$CO2TWIN_PYTHONHOME</code> names its standard library's prefix if it is not found beside it.
A host that already runs Python (FMPy) must run CPython {minor}.</p>
<h2>Communication step</h2>
<p>Any positive step. Steps that are multiples of the internal step
(parameter <code>step_size</code>, {sc.step:g} s) reproduce <code>co2twin run</code> exactly; a step that
ends between internal grid points refines the internal step once and for all to the
largest divisor that puts it on the grid.</p>
</body></html>
"""
    (folder / "index.html").write_text(text, encoding="utf-8")


def _zip(tree: Path, output: Path) -> None:
    """Write the FMU archive atomically: model description first, then everything else."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name != "modelDescription.xml" or p.parent != tree)
    with atomic_path(output) as tmp_out, zipfile.ZipFile(tmp_out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in files:
            z.write(path, path.relative_to(tree).as_posix())


def _fix_model_description(data: bytes, sc: Any) -> bytes:
    """Units, bounds, descriptions, default experiment and InitialUnknowns for PythonFMU's XML."""
    from fmu.slave import variables

    root = ET.fromstring(data)
    table = {v.name: v for v in variables(sc)}
    units: list[str] = []
    model_vars = _child(root, "ModelVariables")
    outputs: list[int] = []
    for index, sv in enumerate(model_vars.findall("ScalarVariable"), start=1):
        name = sv.get("name")
        var = table.get(name) if name is not None else None
        if var is None:
            raise FMUError(f"modelDescription.xml: variable {name} unknown to fmu/slave.py")
        if var.description:
            sv.set("description", var.description)
        real = sv.find("Real")
        if real is not None and var.unit is not None:
            real.set("unit", var.unit)
            if var.unit not in units:
                units.append(var.unit)
        if real is not None:
            for attr, bound in (("min", var.lower), ("max", var.upper)):
                if bound is not None:
                    real.set(attr, repr(float(bound)))
        if sv.get("causality") == "output":
            outputs.append(index)
    for tag in ("UnitDefinitions", "DefaultExperiment"):
        for old in root.findall(tag):
            root.remove(old)
    unit_defs = ET.Element("UnitDefinitions")
    for u in units:
        ET.SubElement(unit_defs, "Unit", name=u)
    position = [c.tag for c in root].index("CoSimulation") + 1
    root.insert(position, unit_defs)
    experiment = ET.Element("DefaultExperiment", startTime=repr(float(sc.start)),
                            stopTime=repr(float(sc.end)), stepSize=repr(float(sc.step)))
    root.insert([c.tag for c in root].index("ModelVariables"), experiment)
    structure = _child(root, "ModelStructure")
    for old in structure.findall("InitialUnknowns"):
        structure.remove(old)
    if outputs:
        initial = ET.SubElement(structure, "InitialUnknowns")
        for index in outputs:
            ET.SubElement(initial, "Unknown", index=str(index))
    root.set("generationTool", f"co2twin fmu build ({root.get('generationTool', 'PythonFMU')}, "
                               "co2twin C loader)")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _child(root: ET.Element, tag: str) -> ET.Element:
    """The ``<tag>`` element under ``root``, which every FMI 2.0 model description has."""
    element = root.find(tag)
    if element is None:
        raise FMUError(f"modelDescription.xml written by PythonFMU has no <{tag}> element; "
                       "is pythonfmu the pinned 0.7.0?")
    return element
