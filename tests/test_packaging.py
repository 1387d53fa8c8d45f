"""What the package index shows: the README's links work there, the metadata names the project."""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_links_are_absolute() -> None:
    # The index renders the README away from the repository: a relative link leads nowhere.
    links = LINK.findall((ROOT / "README.md").read_text())
    assert links
    relative = [link for link in links if not link.startswith("https://")]
    assert not relative, f"README.md: use https:// links (the docs site's, or GitHub's): {relative}"


def test_metadata_names_the_project_and_its_documentation() -> None:
    urls = dict(
        entry.split(", ", 1) for entry in metadata("pydantic-aioredis").get_all("Project-URL") or []
    )
    assert urls["Repository"] == "https://github.com/andrewthetechie/pydantic-aioredis"
    assert urls["Documentation"].startswith("https://")
    assert {"Homepage", "Issues", "Changelog"} <= set(urls)
