"""Writing one benchmark's section of ``docs/benchmarks.md``, leaving the other scripts' sections be."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs/benchmarks.md"
DOC_HEADER = (
    "# Benchmarks\n\nFigures measured on one machine. Each section comes from a script under `bench/`"
    " (see `bench/README.md`) and states its command, machine and method.\n"
)


def write_section(heading: str, text: str, *, path: Path = DOC) -> None:
    """Replace the section titled ``heading`` (``## ...``, up to the next ``## ``) with ``text``,
    or append it; every other section stays as it is."""
    doc = path.read_text() if path.exists() else DOC_HEADER
    if not doc.startswith("# "):  # another script created the file without the page's title
        doc = DOC_HEADER + "\n" + doc.lstrip("\n")
    lines = doc.splitlines(keepends=True)
    start = next((i for i, x in enumerate(lines) if x.rstrip() == heading), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before, after = "".join(lines[:start]).rstrip("\n") + "\n\n", "".join(lines[end:])
    path.write_text(before + text.rstrip("\n") + "\n" + ("\n" + after if after else ""))
