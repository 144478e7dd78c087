"""Writing the settings file (``.env``) and the private files beside it, for ``gateway setup``.

The commands read the file with python-dotenv (``gateway.config.read_env_file``); this module
writes it the same way round: ``update_env_file`` replaces the lines of the variables it is given
and keeps every other line as it was (comments, other settings, multi-line values), using
dotenv's own parser to find them. Files holding secrets are readable by their owner only (mode
0600) and are replaced atomically, so a crash leaves the old file or the new one, never half.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream

__all__ = ["PRIVATE_MODE", "EnvChanges", "to_line", "update_env_file", "write_private"]

PRIVATE_MODE = 0o600
# Values made only of these need no quotes, so `docker run --env-file` (which takes values
# literally, quotes included) reads them as dotenv does.
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+,=-]*")


@dataclass(frozen=True)
class EnvChanges:
    """What ``update_env_file`` did: variables added, replaced (with their old values, for the
    caller to show or not) and turned off (commented out)."""

    added: tuple[str, ...]
    replaced: Mapping[str, str]
    turned_off: tuple[str, ...]


def write_private(path: Path, text: str) -> None:
    """Create ``path`` holding ``text``, mode 0600; an existing file is never replaced
    (``FileExistsError``)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), PRIVATE_MODE)  # the umask may have taken bits away, never added
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def update_env_file(
    path: Path,
    values: Mapping[str, str],
    *,
    turn_off: Iterable[str] = (),
    note: str = "",
) -> EnvChanges:
    """Set ``values`` in the settings file at ``path`` (created if missing), mode 0600.

    A variable already in the file has its line replaced where it is (later copies are dropped);
    the others are added at the end under ``# note``. Each ``turn_off`` variable in the file is
    commented out, so the settings no longer hold it but its line can be restored by hand.
    """
    target = path.resolve() if path.is_symlink() else path
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    text, changes = _rewrite(old, values, frozenset(turn_off), note)
    _replace(target, text)
    return changes


def to_line(name: str, value: str) -> str:
    """``NAME=value`` as python-dotenv reads it back exactly: unquoted when plain, else in single
    quotes (dotenv takes their content literally, only ``\\\\`` and ``\\'`` escaped)."""
    if _PLAIN.fullmatch(value):
        return f"{name}={value}\n"
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"{name}='{escaped}'\n"


def _rewrite(
    old: str, values: Mapping[str, str], turn_off: frozenset[str], note: str
) -> tuple[str, EnvChanges]:
    out: list[str] = []
    replaced: dict[str, str] = {}
    turned_off: list[str] = []
    for binding in parse_stream(io.StringIO(old)):
        key, original = binding.key, binding.original.string
        if key is not None and key in values:
            if key not in replaced:
                out.append(to_line(key, values[key]))
            replaced[key] = binding.value or ""
        elif key is not None and key in turn_off:
            out.append("".join(f"# {line}\n" for line in original.rstrip("\n").split("\n")))
            turned_off.append(key)
        else:
            out.append(original if original.endswith("\n") else original + "\n")
    added = tuple(name for name in values if name not in replaced)
    if added:
        out.append(("\n" if out else "") + (f"# {note}\n" if note else ""))
        out.extend(to_line(name, values[name]) for name in added)
    return "".join(out), EnvChanges(added, replaced, tuple(dict.fromkeys(turned_off)))


def _replace(path: Path, text: str) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
