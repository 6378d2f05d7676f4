"""Prompt templates as data: Jinja2 files rendered strictly (a missing variable is an error)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from ..base.errors import ConfigError


def prompts_dir() -> Path:
    """The installed copy inside the package, else the top-level `prompts/` of a checkout."""
    package = Path(__file__).parent.parent
    packaged = package / "prompts"
    return packaged if packaged.is_dir() else package.parent / "prompts"


@cache
def _environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template_name: str, /, **variables: Any) -> str:
    """Render `prompts/<template_name>.j2`; every variable it uses must be given."""
    try:
        template = _environment(prompts_dir()).get_template(f"{template_name}.j2")
        return template.render(**variables).strip()
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(
            f"Prompt template {template_name}.j2 is missing from {prompts_dir()}."
        ) from exc
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"Prompt template {template_name}.j2 needs a variable: {exc.message}"
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"Prompt template {template_name}.j2 line {exc.lineno}: {exc.message}"
        ) from exc
