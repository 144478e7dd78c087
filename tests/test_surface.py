"""The public surface and the import rule, pinned (as httpx's ``tests/test_exported_members.py`` does).

Every public module says what it exports in ``__all__``, and exports every public thing it
defines; every platform module offers exactly the ``Platform`` protocol's members; and the web
side, imported whole in a fresh interpreter, loads no worker module and no platform SDK.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import gateway
import handlers
from gateway.platforms import PLATFORMS
from gateway.types import Platform

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_ON_THE_WEB_SIDE = ("handlers", "slack_sdk", "github", "stripe")


def _modules(package: ModuleType) -> list[str]:
    names = [package.__name__]
    names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [name for name in names if not name.endswith("__main__")]


PUBLIC = [
    name
    for name in _modules(gateway) + _modules(handlers)
    if not any(part.startswith("_") and part != "__init__" for part in name.split("."))
]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_module_exports_exactly_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert all(hasattr(module, member) for member in exported), name
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == name
    }
    assert defined <= set(exported), f"{name} defines but does not export {sorted(defined - set(exported))}"


def _protocol_members() -> set[str]:
    members = set(Platform.__annotations__)
    members |= {
        name for name, value in vars(Platform).items() if not name.startswith("_") and callable(value)
    }
    members |= {name for name, value in vars(Platform).items() if isinstance(value, property)}
    return members


@pytest.mark.parametrize("name", list(PLATFORMS))
def test_every_platform_offers_exactly_the_platform_protocol(name: str) -> None:
    platform = PLATFORMS[name]
    assert set(getattr(platform, "__all__", ())) == _protocol_members()
    assert platform.name == name


def test_the_web_side_loads_no_worker_module_and_no_platform_sdk() -> None:
    script = (
        "import importlib, pkgutil, sys, gateway\n"
        "for m in pkgutil.walk_packages(gateway.__path__, 'gateway.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = result.stdout.split()
    assert "gateway.app" in loaded and "gateway.cli" in loaded
    leaked = [m for m in loaded if m.split(".")[0] in FORBIDDEN_ON_THE_WEB_SIDE]
    assert leaked == []
