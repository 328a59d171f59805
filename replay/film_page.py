"""The film page of ``escope export --html``, from its three source files.

The page's HTML, style and script live in ``film_assets/`` as real
``film.html``, ``film.css`` and ``film.js`` (package data, installed with
the wheel), so editors and linters treat them as what they are.  The
exported page is one self-contained file, readable offline and under its
own Content-Security-Policy (no external script or style): the HTML's
``<link>`` to the style and ``<script src>`` to the script are replaced by
their text, inline.  ``film.render_html`` then fills in ``{{TITLE}}``
(escaped text) and ``{{DATA}}`` (JSON with ``<``, ``>`` and ``&``
escaped).  The script is plain ES2017 with no library, so the page works
offline and from ``file://``.  Every recorded text reaches the DOM through
``textContent``; ``innerHTML`` is never used.  ``film.py`` documents the
data layout.

Keys: Right/Left one step, Shift+Right/Left next/previous step in this
frame or a caller (pdb's ``n``/``rn``), PageDown/PageUp 100 steps,
Home/End, ``f`` the failure.  ``#step=N`` in the URL opens step N and the
page keeps it up to date, so a link names a moment of the film.
"""

from __future__ import annotations

from importlib import resources

#: where the page's source files are, inside this package
ASSETS = "film_assets"
#: the tags of film.html that stand for the inline style and script
STYLE_LINK = '<link rel="stylesheet" href="film.css">'
SCRIPT_LINK = '<script src="film.js"></script>'


def _asset(name: str) -> str:
    # newline="" keeps the files' bytes: the page must not depend on the platform's line endings
    with resources.files(__package__).joinpath(ASSETS).joinpath(name).open("r", encoding="utf-8", newline="") as fh:
        return fh.read()


def build_page() -> str:
    """film.html with film.css and film.js inline: the page's template."""
    html = _asset("film.html")
    if html.count(STYLE_LINK) != 1 or html.count(SCRIPT_LINK) != 1:
        raise ValueError(f"{ASSETS}/film.html must hold {STYLE_LINK} and {SCRIPT_LINK} once each")
    return (html.replace(STYLE_LINK, "<style>\n" + _asset("film.css") + "</style>")
                .replace(SCRIPT_LINK, "<script>\n" + _asset("film.js") + "</script>"))


#: the page with ``{{TITLE}}`` and ``{{DATA}}`` to fill in (read when an export first needs it)
PAGE = build_page()
