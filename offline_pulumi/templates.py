"""Project templates on the local disk (``pulumi new --generate-only <dir>``).

Like the real CLI (pkg/workspace/templates.go), every file of the template directory is
copied with ``${PROJECT}`` and ``${DESCRIPTION}`` replaced; the template's own ``template:``
section stays out of the generated ``Pulumi.yaml``. Templates from the internet are not
available offline.
"""

from __future__ import annotations

from pathlib import Path

from offline_pulumi.errors import CLIError, UnsupportedError
from offline_pulumi.fileio import write_atomic
from offline_pulumi.project import PROJECT_FILES, load_yaml

_SKIPPED = {".git", "node_modules", "__pycache__"}


def generate(template: Path, target: Path, name: str, description: str | None,
             force: bool) -> None:
    """Copy ``template`` into ``target``; raise CLIError if it would change existing files."""
    if not template.is_dir() or not any((template / f).is_file() for f in PROJECT_FILES):
        raise UnsupportedError(f"the template '{template}' (only a local directory holding "
                               "a Pulumi.yaml can be used offline)")
    if description is None:
        description = _template_description(template)
    files = [p for p in sorted(template.rglob("*"))
             if p.is_file() and not _SKIPPED.intersection(p.relative_to(template).parts)]
    existing = [p for p in files if (target / p.relative_to(template)).exists()]
    if existing and not force:
        raise CLIError(f"{target} is not empty; rerun in an empty directory, pass the path to "
                       "an empty directory to --dir, or use --force")
    for source in files:
        relative = source.relative_to(template)
        data = source.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            write_atomic(target / relative, data)
            continue
        text = text.replace("${PROJECT}", name).replace("${DESCRIPTION}", description)
        if relative.name in PROJECT_FILES:
            text = _without_template_section(text)
        write_atomic(target / relative, text.encode())


def _template_description(template: Path) -> str:
    for name in PROJECT_FILES:
        path = template / name
        if path.is_file():
            data = load_yaml(path)
            section = data.get("template") if isinstance(data, dict) else None
            if isinstance(section, dict) and isinstance(section.get("description"), str):
                return str(section["description"])
    return ""


def _without_template_section(text: str) -> str:
    """Drop a top-level ``template:`` block (the template's metadata, not the project's)."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        top_level = bool(line.strip()) and not line[0].isspace()
        if top_level:
            skipping = line.startswith("template:")
        if not skipping:
            kept.append(line)
    return "".join(kept)
