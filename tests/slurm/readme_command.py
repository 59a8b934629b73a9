"""Print the shell commands of one README.md section, as written, for tests to run.

    python tests/slurm/readme_command.py "## Running on a cluster" [REPO]

Reads the ``bash`` code blocks of the section (up to the next ``## `` heading) of
``REPO/README.md`` (default: this repository), joins continuation lines, drops comments and blank
lines, replaces the placeholder the README documents (``/path/to/pepmix``) by ``REPO``, and prints
one command per line. Used by ``tests/slurm/test_demo_on_slurm.sh`` (the cluster command) and by
``tests/e2e/test_readme_inventory.py``, so that an edit of the README changes what is run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PLACEHOLDER = "/path/to/pepmix"


def section(text: str, heading: str) -> str:
    """The text of the section starting at the line ``heading`` (up to the next ``## ``)."""
    match = re.search(rf"^{re.escape(heading)}[ \t]*$", text, flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"README.md has no section {heading!r}")
    end = text.find("\n## ", match.end())
    return text[match.start() : end if end >= 0 else len(text)]


def blocks(text: str, language: str = "bash") -> list[str]:
    """Code blocks of ``language`` in ``text``, list indentation removed."""
    pattern = rf"^([ \t]*)```{language}\n(.*?)^[ \t]*```"
    found = re.findall(pattern, text, flags=re.MULTILINE | re.DOTALL)
    return [re.sub(rf"^{indent}", "", body, flags=re.MULTILINE) for indent, body in found]


def commands(text: str, repo: Path) -> list[str]:
    """Commands of the ``bash`` blocks of ``text``, one string each, placeholder replaced."""
    out = []
    for block in blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(" ".join(line.split()).replace(PLACEHOLDER, str(repo)))
    return out


def main(argv: list[str]) -> int:
    """Print the commands of section ``argv[0]`` of ``argv[1]``/README.md."""
    if not 1 <= len(argv) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    repo = Path(argv[1]).resolve() if len(argv) == 2 else Path(__file__).resolve().parents[2]
    found = commands(section((repo / "README.md").read_text(), argv[0]), repo)
    if not found:
        print(f"README.md section {argv[0]!r} shows no bash command", file=sys.stderr)
        return 1
    print("\n".join(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
