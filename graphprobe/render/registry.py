"""The renderers by output extension: ``renderer_for("x.svg")`` gives the one that writes SVG.

Every output format is a small :class:`Renderer` (as pyinstrument's renderers): a name, the file
extensions it answers to, and ``render(report, options) -> bytes``, the whole file. The command
line writes every output through :func:`renderer_for` (``render -o``, ``check -o``, ``show -o``),
so the extensions it accepts are the ones registered here, listed in one place.

A renderer takes the report's data (:class:`~graphprobe.model.report.ReportData`; a
:class:`~graphprobe.Report` is one) and never imports :mod:`graphprobe.report`: data flows one way,
model -> render -> report. The bytes are those of the matching ``Report`` method
(``to_text``, ``to_json``, ``to_dot``, ``to_svg``, ``to_png``, ``to_html``); tests/test_registry.py
holds them to it.

Examples
--------
>>> renderer_for("out/graph.SVG").name
'svg'
>>> known_extensions()
['.dot', '.gv', '.html', '.json', '.png', '.svg', '.txt']
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from ..errors import UsageError

if TYPE_CHECKING:
    from ..model.report import ReportData
    from .dot import DotOptions

__all__ = ["Renderer", "UnknownExtension", "register", "renderer_for", "renderers", "known_extensions",
           "TextRenderer", "JsonRenderer", "DotRenderer", "SvgRenderer", "PngRenderer", "HtmlRenderer"]

# Each renderer imports its module inside render(): the command line looks up the renderer for
# -o (and refuses an unknown extension) before the script runs, and only the format asked for
# pays for its imports (the HTML page's, the layout fallbacks').


class Renderer(Protocol):
    """One output format: what :func:`renderer_for` returns.

    Attributes
    ----------
    name : str
        A short name for the format (``svg``, ``text`` ...).
    extensions : tuple of str
        The file extensions, lower case with their dot, that choose this renderer.
    """

    name: str
    extensions: tuple[str, ...]

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        """The whole file for ``report``; ``options`` shape a picture (formats without one ignore it)."""
        ...


class TextRenderer:
    """The text report (``.txt``): what ``graphprobe check`` prints, without colours."""

    name = "text"
    extensions: tuple[str, ...] = (".txt",)

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        from .text import render_text

        return render_text(report).encode("utf-8")


class JsonRenderer:
    """The report's JSON contract (``.json``, schema 1), ending in a newline."""

    name = "json"
    extensions: tuple[str, ...] = (".json",)

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        return (report.to_json() + "\n").encode("utf-8")


class DotRenderer:
    """The Graphviz DOT text of the picture (``.dot``, ``.gv``), not laid out."""

    name = "dot"
    extensions: tuple[str, ...] = (".dot", ".gv")

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        from .dot import to_dot

        return to_dot(report, options).encode("utf-8")


class _Image:
    """A laid-out picture, in the engine's format ``name``, with the fallbacks of :mod:`.image`."""

    name = ""
    extensions: tuple[str, ...] = ()

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        from .image import render_image

        return render_image(report, self.name, options)


class SvgRenderer(_Image):
    """The picture as SVG (``.svg``)."""

    name = "svg"
    extensions: tuple[str, ...] = (".svg",)


class PngRenderer(_Image):
    """The picture as PNG (``.png``), at most 4,000 px on its long side."""

    name = "png"
    extensions: tuple[str, ...] = (".png",)


class HtmlRenderer:
    """One self-contained HTML page (``.html``): the picture, the findings, a node inspector."""

    name = "html"
    extensions: tuple[str, ...] = (".html",)

    def render(self, report: ReportData, options: DotOptions | None = None) -> bytes:
        from .html import render_html

        return render_html(report, options).encode("utf-8")


class UnknownExtension(UsageError):
    """No renderer answers to an output file's extension (a usage error: exit 2).

    Attributes
    ----------
    path : str
        The output file asked for.
    extension : str
        Its extension, lower case (``""`` when it has none).
    known : list of str
        The extensions that have a renderer, sorted.
    """

    def __init__(self, path: str, extension: str, known: list[str]) -> None:
        self.path, self.extension, self.known = path, extension, known
        super().__init__(f"graphprobe: unknown output extension {extension or '(none)'!r} in {path}. "
                         f"End the file name with one of {', '.join(known)}.")


_BY_EXTENSION: dict[str, Renderer] = {}


def register(renderer: Renderer) -> Renderer:
    """Make ``renderer`` the one for each of its extensions; returns it.

    Raises
    ------
    ValueError
        An extension is not lower case with a leading dot, or already has another renderer.
    """
    for ext in renderer.extensions:
        if not ext.startswith(".") or ext != ext.lower():
            raise ValueError(f"a renderer's extension is lower case with its dot, not {ext!r}")
        held = _BY_EXTENSION.get(ext)
        if held is not None and held is not renderer:
            raise ValueError(f"{ext} already has the {held.name} renderer")
    for ext in renderer.extensions:
        _BY_EXTENSION[ext] = renderer
    return renderer


def renderer_for(path: str | os.PathLike[str]) -> Renderer:
    """The renderer for the output file ``path``, chosen by its extension (any case).

    Raises
    ------
    UnknownExtension
        No renderer has that extension; the message lists those that do.

    Complexity: O(1).
    """
    text = os.fspath(path)
    ext = os.path.splitext(text)[1].lower()
    found = _BY_EXTENSION.get(ext)
    if found is None:
        raise UnknownExtension(text, ext, known_extensions())
    return found


def renderers() -> list[Renderer]:
    """Every registered renderer, once each, in the order they were registered."""
    seen: dict[int, Renderer] = {}
    for r in _BY_EXTENSION.values():
        seen.setdefault(id(r), r)
    return list(seen.values())


def known_extensions() -> list[str]:
    """The extensions that have a renderer, sorted."""
    return sorted(_BY_EXTENSION)


for _renderer in (SvgRenderer(), PngRenderer(), DotRenderer(), JsonRenderer(), TextRenderer(), HtmlRenderer()):
    register(_renderer)
del _renderer
