"""The HTML of the web console and of `show --html`: jinja2 templates, package data.

Autoescape is on for every .html template and no template marks outside data safe: what a
model, page, file or program wrote is shown as text, whatever it holds. The only markup
passed in from Python is this package's own stylesheet, inlined in an exported page.
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..base.text import trim_middle
from .timeline import Timeline, when

OUTPUT_CHARS = 6000  # of a result or arguments on a page; the run folder has them in full


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("autoagent.cli", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["trim_middle"] = lambda text, size=OUTPUT_CHARS: trim_middle(str(text), size)
    env.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=1)
    env.filters["visible"] = visible
    return env


def visible(value: Any) -> str:
    """Text with its control and invisible format characters (bidirectional overrides,
    zero-width spaces) written out as \\uXXXX, so what a human approves reads as it is."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in {"Cc", "Cf"} and c not in "\n\t" else c
        for c in str(value)
    )


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def stylesheet() -> str:
    return resources.files("autoagent.cli").joinpath("static/console.css").read_text("utf-8")


def export_html(timeline: Timeline) -> str:
    """One self-contained page: inline CSS, no script, no external resource."""
    css = stylesheet()
    if "</" in css:  # it is our own file, but a <style> must never end early
        raise ValueError("the console's stylesheet may not contain '</'")
    return render(
        "export.html",
        title=f"Run {timeline.run_id}",
        timeline=timeline,
        live_url=None,
        export=True,
        inline_css=Markup(css),  # the package's own stylesheet, not outside data
    )
