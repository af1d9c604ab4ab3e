"""Issue 10, defect 5: the FMU carries co2twin's run path and its packages; the target machine
needs only a shared libpython of the build's minor version (with its standard library).

Before, the loader started Python with the build machine's site-packages (recorded in the
FMU), so another machine needed the same Python and co2twin's dependencies at the same
paths; and the archive carried PythonFMU's win64 library, which could not work.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest

from fmu_kit import BARE_ENV, OUTPUTS, host, reference, results, vr, vr_list

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="linux64 binaries only")
MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


def _libpythons() -> list[str]:
    """Shared libpythons of this minor version here: the build's, and the system's if any."""
    from fmu.build import build_info

    found = [build_info()["libpython"]]
    system = Path(f"/usr/lib/x86_64-linux-gnu/libpython{MINOR}.so.1.0")
    if system.is_file() and system.resolve() != Path(found[0]).resolve():
        found.append(str(system))
    return found


def test_the_archive_carries_its_packages_and_only_linux64(fmu_path: Path, fmu_model) -> None:
    """The run path's packages in resources/site-packages, without their tests; nothing of
    the CLI, plots, Parquet, FMPy or TensorFlow; no win64 binary; the platform stated."""
    with zipfile.ZipFile(fmu_path) as z:
        names = z.namelist()
        info = json.loads(z.read("resources/co2twin_build.json"))
        doc = z.read("documentation/index.html").decode()
        pyc = z.read("resources/fmu/__pycache__/slave.cpython-{}{}.pyc".format(*sys.version_info[:2]))
    tops = {n.split("/")[2] for n in names if n.startswith("resources/site-packages/")}
    assert {"numpy", "pandas", "pydantic", "pydantic_core", "yaml", "simpy", "h5py"} <= tops
    assert not {"pyarrow", "tensorflow", "keras", "typer", "rich", "matplotlib", "fmpy"} & tops
    assert not [n for n in names if "/tests/" in n and n.startswith("resources/site-packages/")]
    assert sorted({n.split("/")[1] for n in names if n.startswith("binaries/")}) == ["linux64"]
    assert info["minor"] == MINOR and info["bundle"]["numpy"] and "numpy" in info["bundle_imported"]
    assert "site_packages" not in info  # no build-machine folders to import from
    assert int.from_bytes(pyc[4:8], "little") == 1  # bytecode never checked against its source
    assert "linux64 only" in doc and f"CPython {MINOR}" in doc
    assert info["glibc"].startswith("2.") and f"glibc {info['glibc']} or newer" in doc
    assert "linux64" in fmu_model.description and fmu_model.coSimulation.needsExecutionTool is False
    print(f"FMU size: {fmu_path.stat().st_size / 1e6:.1f} MB, {len(names)} files")


@pytest.mark.parametrize("libpython", _libpythons())
def test_c_host_runs_it_with_nothing_but_libpython(fmi_host: Path, fmu_dir: Path, fmu_model,
                                                   libpython: str, tmp_path: Path) -> None:
    """A bare environment (no PYTHONPATH, PYTHONHOME, virtualenv, HOME): the loader starts the
    libpython given, isolated, and every package the FMU uses comes from its own folder."""
    env = {**BARE_ENV, "HOME": str(tmp_path), "CO2TWIN_LIBPYTHON": libpython, "FMI_HOST_LOGGING": "1"}
    proc = host(fmi_host, "steps", fmu_dir, fmu_model.guid, 1.0, 60.0, vr_list(fmu_model, OUTPUTS), env=env)
    log = proc.stderr
    assert f"started by the loader from {libpython}" in log, log
    assert "standard library only" in log
    resources = fmu_dir / "resources"
    bundle = resources / "site-packages"
    for package, where in (("fmu", resources), ("numpy", bundle), ("pandas", bundle), ("pydantic", bundle)):
        assert f"{package} from {where}" in log, (package, log)
    got = results(proc.stdout, "S")
    ref = reference(60.0).iloc[-1]
    for name in OUTPUTS:
        assert abs(got[vr(fmu_model, name)] - ref[name]) <= 1e-9, name
