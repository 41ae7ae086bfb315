"""Email templates with Jinja2: a directory per template under ``templates/``, found by listing them.

A template ``NAME`` is three files: ``NAME/subject.txt``, ``NAME/text.txt`` and ``NAME/html.html``
(HTML is autoescaped, text and subject are not); files and directories starting with ``_`` are
shared layouts. Every variable a template names is required (pass ``null`` for "none"): a missing
one is a ``TemplateError`` naming it, before anything is rendered, and ``StrictUndefined`` catches
the rest (a missing attribute of a given value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from jinja2 import meta

from satworks.errors import TemplateError

PARTS = ("subject.txt", "text.txt", "html.html")


@dataclass(frozen=True)
class RenderedEmail:
    """What an email says; ``html`` None for a text-only email."""

    subject: str
    text: str
    html: str | None = None


class EmailTemplates:
    """The shipped templates (or those under ``package``/``directory``), rendered with a strict environment."""

    def __init__(self, package: str = "satworks.emails", directory: str = "templates") -> None:
        root = resources.files(package).joinpath(directory)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader(package, directory),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            auto_reload=False,
        )
        self.env.filters.update(sat=_sat, paragraphs=_paragraphs, http_url=_http_url)
        names = sorted(
            entry.name
            for entry in root.iterdir()
            if entry.is_dir() and not entry.name.startswith("_") and all(entry.joinpath(p).is_file() for p in PARTS)
        )
        self.required: dict[str, frozenset[str]] = {name: self._variables(name) for name in names}

    @property
    def names(self) -> list[str]:
        return list(self.required)

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render template ``name``; raises ``TemplateError`` for an unknown name or a bad context."""
        if name not in self.required:
            raise TemplateError(f"unknown email template {name!r}", details={"template": name, "known": self.names})
        missing = sorted(self.required[name] - context.keys())
        if missing:
            raise TemplateError(
                f"email template {name!r} needs {', '.join(missing)}", details={"template": name, "missing": missing}
            )
        try:
            subject, text, html = (self.env.get_template(f"{name}/{part}").render(context) for part in PARTS)
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"email template {name!r}: {exc.message}", details={"template": name}) from exc
        except (TypeError, ValueError) as exc:  # a filter given the wrong kind of value (e.g. sat of "abc")
            raise TemplateError(f"email template {name!r}: {exc}", details={"template": name}) from exc
        return RenderedEmail(subject=" ".join(subject.split()), text=text.strip() + "\n", html=html)

    def _variables(self, name: str) -> frozenset[str]:
        found: set[str] = set()
        for part in PARTS:
            source, _, _ = self.env.loader.get_source(self.env, f"{name}/{part}")  # type: ignore[union-attr]
            found |= meta.find_undeclared_variables(self.env.parse(source))
        return frozenset(found - set(self.env.globals))


def _sat(value: object) -> str:
    """``125000`` → ``125,000 sat``; integers only (amounts are integer satoshis)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"sat expects an integer amount, got {value!r}")
    return f"{value:,} sat"


def _paragraphs(value: object) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", str(value)) if p.strip()]


def _http_url(value: object) -> str:
    """Only http(s) links go into an href (no ``javascript:`` from a context value)."""
    text = str(value)
    if urlsplit(text).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s) URL, got {text!r}")
    return text
