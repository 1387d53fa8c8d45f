"""MkDocs hooks of the documentation site (mkdocs.yml names this file).

* The site's address is the Documentation URL in pyproject.toml, written there once.
* The home page is README.md. The README links to this site by absolute URLs, so that its
  links work on the package index too; here they become relative links again, which MkDocs
  checks like any other (a link to a page or an anchor that does not exist fails the strict
  build).
* Every public name must be documented: a name exported by a public module's `__all__` that
  has no page in the reference, or a public class, function, method or property without a
  docstring, is logged as a warning, which fails `mkdocs build --strict`.
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = ("pydantic_aioredis", "pydantic_aioredis.ext.fastapi", "pydantic_aioredis.migrate")
# Members a class gets from pydantic or Python rather than from us.
NOT_OURS = frozenset({"model_config"})

log = logging.getLogger("mkdocs.hooks.pydantic_aioredis")


def documentation_url() -> str:
    """The site's address: pyproject.toml's Documentation URL (as installed), with a final /."""
    for entry in metadata("pydantic-aioredis").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Documentation":
            return url.strip().rstrip("/") + "/"
    raise SystemExit("pyproject.toml has no Documentation URL under [project.urls]")


def on_config(config: Any) -> Any:
    config["site_url"] = documentation_url()
    return config


def on_pre_build(config: Any) -> None:
    reference = _reference_identifiers(Path(config["docs_dir"]) / "reference")
    loader = griffe.GriffeLoader(search_paths=[str(ROOT / "src")])
    package = loader.load("pydantic_aioredis")
    loader.resolve_aliases(external=False)
    for module_path in PUBLIC_MODULES:
        module = package.modules_collection[module_path]
        for name in _exported_names(module):
            if name.startswith("__"):
                continue
            if f"{module_path}.{name}" not in reference:
                log.warning(f"{module_path}.{name} is public but has no page in docs/reference/")
            for problem in _undocumented(module[name], f"{module_path}.{name}"):
                log.warning(problem)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "index.md":
        return markdown
    readme = (ROOT / "README.md").read_text()
    return _site_links_made_relative(readme, documentation_url(), Path(config["docs_dir"]))


def _site_links_made_relative(markdown: str, site: str, docs: Path) -> str:
    """`(https://site/cluster/#speed)` -> `(cluster.md#speed)`, for the home page."""

    def relative(match: re.Match[str]) -> str:
        path, anchor = match.group(1).strip("/"), match.group(2) or ""
        page = f"{path}/index.md" if (docs / path / "index.md").is_file() else f"{path}.md"
        return f"]({page if path else 'index.md'}{anchor})"

    return re.sub(rf"\]\({re.escape(site)}([\w/.-]*)(#[\w-]+)?\)", relative, markdown)


def _reference_identifiers(folder: Path) -> set[str]:
    found: set[str] = set()
    for page in folder.glob("*.md"):
        found.update(re.findall(r"^::: ([\w.]+)", page.read_text(), re.MULTILINE))
    return found


def _exported_names(module: Any) -> list[str]:
    exports = module.exports
    if exports is None:
        raise SystemExit(f"{module.path} has no __all__")
    return [str(name) for name in exports]


def _undocumented(obj: Any, path: str) -> list[str]:
    """Problems of one public object and of its public members."""
    obj = obj.final_target if obj.is_alias else obj
    problems = [] if obj.docstring else [f"{path} has no docstring"]
    if not obj.is_class:
        return problems
    listed = _names_in_sections(obj)
    for name, member in obj.members.items():
        if name.startswith("_") or name in NOT_OURS or member.is_alias:
            continue
        if member.is_attribute and (member.docstring or name in listed):
            continue
        if not member.docstring:
            problems.append(f"{path}.{name} has no docstring")
    return problems


def _names_in_sections(cls: Any) -> set[str]:
    """Names that the class docstring documents, in its Attributes or Args sections."""
    if cls.docstring is None:
        return set()
    names: set[str] = set()
    for section in cls.docstring.parse("google"):
        if section.kind.value in ("attributes", "parameters"):
            names.update(item.name for item in section.value)
    return names
