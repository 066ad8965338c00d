"""Packaging: the wheel builds with the declared setuptools floor and ships LICENSE and py.typed,
the version is written once, and CI and the image install from the constraints lock."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from cmdb_worker.worker import __version__

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PACKAGES = ("worker", "schemas", "rules")


def setuptools_floor() -> str:
    """The X of the build system's ``setuptools>=X``."""
    requirement = Requirement(PYPROJECT["build-system"]["requires"][0])
    assert requirement.name == "setuptools"
    floor = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    assert floor, "the build system names no setuptools floor"
    return floor[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel `pip wheel .` builds with exactly the declared setuptools floor (PyPI)."""
    directory = tmp_path_factory.mktemp("wheel")
    pinned = directory / "build-constraints.txt"
    pinned.write_text(f"setuptools=={setuptools_floor()}\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet",
         "--wheel-dir", str(directory), "--build-constraint", str(pinned)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return zipfile.ZipFile(next(directory.glob("cmdb_worker-*.whl")))


def test_the_wheel_builds_with_the_setuptools_floor(wheel: zipfile.ZipFile) -> None:
    """The oldest setuptools pyproject allows builds it, with the version from worker/__init__."""
    name = Path(wheel.filename or "").name
    assert name == f"cmdb_worker-{__version__}-py3-none-any.whl"
    meta = wheel.read(f"cmdb_worker-{__version__}.dist-info/METADATA").decode()
    assert f"Version: {__version__}" in meta and "License-Expression: Apache-2.0" in meta


def test_the_wheel_ships_license_py_typed_and_data(wheel: zipfile.ZipFile) -> None:
    """LICENSE, a py.typed marker per package, the policy and the JSON schemas are in the wheel."""
    names = set(wheel.namelist())
    assert f"cmdb_worker-{__version__}.dist-info/licenses/LICENSE" in names
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    assert "rules/policy.yaml" in names and "schemas/json/finding.json" in names


def test_license_is_the_full_apache_2_text() -> None:
    """LICENSE is the whole Apache License 2.0, as pyproject declares."""
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000
    assert PYPROJECT["project"]["license"] == "Apache-2.0"


def test_the_version_is_written_once() -> None:
    """pyproject takes the version from worker.__version__; the installed metadata, the
    deployment's image tag and labels, and the changelog all agree with it."""
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "worker.__version__"}
    assert metadata.version("cmdb-worker") == __version__
    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(f":{__version__}")
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == __version__
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    assert all(len(pair) == 2 for pair in pairs), "every constraint is name==version"
    return {canonicalize_name(name): version for name, version in pairs}


def test_constraints_pin_every_dependency_and_tool() -> None:
    """constraints.txt pins (==) every runtime and dev requirement of pyproject, and pip."""
    project = PYPROJECT["project"]
    required = [*project["dependencies"], *project["optional-dependencies"]["dev"], "pip"]
    pins = _pins()
    missing = [r for r in required if canonicalize_name(Requirement(r).name) not in pins]
    assert missing == []
    for requirement in map(Requirement, project["dependencies"]):
        assert pins[canonicalize_name(requirement.name)] in requirement.specifier


def test_ci_and_the_image_install_from_the_constraints() -> None:
    """`make setup` (which `.ci/run` reaches through `make test`) and the Dockerfile install with
    `-c constraints.txt`, and the image build context includes it."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install -c constraints.txt /dist/cmdb_worker-*.whl" in dockerfile
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text(encoding="utf-8")


def test_the_base_image_is_pinned_by_digest_with_how_to_refresh_it() -> None:
    """The Dockerfile's base is tag@sha256:<64 hex>, and a comment says how to refresh it."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = re.search(r"^ARG PYTHON_IMAGE=python:[\w.-]+@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert pinned is not None
    assert "docker buildx imagetools inspect" in dockerfile
    stages = re.findall(r"^FROM .*", dockerfile, re.M)
    assert stages and all(line.startswith("FROM ${PYTHON_IMAGE}") for line in stages)
