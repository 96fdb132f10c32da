"""What every benchmark's results file starts from: the command that made it."""

from __future__ import annotations

import sys
from pathlib import Path


def command_line() -> str:
    """This script's command line, as the results files quote it."""
    return "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def write_report(out: Path, title: str, text: str) -> None:
    """Print `text` and write it to OUT.md under `title`, with the command that made it."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(f"# {title}\n\nCommand: `{command_line()}`\n\n{text}\n")
