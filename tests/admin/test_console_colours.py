"""Dark mode holds only if no colour is written outside the console's palette: every colour of
the console's stylesheet, scripts, templates and the Python that writes its HTML is a variable of
console.css, defined for light and (twice, identically) for dark."""

from __future__ import annotations

import re
from pathlib import Path

import taskhub

ROOT = Path(taskhub.__file__).parent
STYLESHEET = ROOT / "static" / "taskhub" / "console.css"
#: Everything that draws the console: its static files, templates, and the modules writing HTML.
SOURCES = [
    *sorted((ROOT / "static" / "taskhub").glob("*.css")),
    *sorted((ROOT / "static" / "taskhub").glob("*.js")),
    *sorted((ROOT / "templates" / "admin" / "taskhub").rglob("*.html")),
    ROOT / "console" / "admin.py",
    ROOT / "console" / "admin_tools.py",
    ROOT / "console" / "workflow_admin.py",
    ROOT / "workflows" / "diagram.py",
]
NAMED = "white|black|red|green|blue|grey|gray|orange|purple|pink|silver|yellow|navy|teal|maroon"
COLOUR = re.compile(
    r"(?<![&\w])#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3,4})(?![\w-])"  # #fff, #198754
    r"|\b(?:rgba?|hsla?|hwb|lab|lch|oklab|oklch)\("  # functional notations
    r"|(?:color|background(?:-color)?|fill|stroke|border(?:-[\w-]+)?)[\"']?\s*[:=,]\s*[\"']?"
    rf"[^;\"'{{}}<>]*?(?<![\w-])(?:{NAMED})(?![\w-])",  # a named colour given to a property
    re.IGNORECASE,
)
THEME_BLOCKS = {
    "light": ':root, html[data-theme="light"]',
    "dark (the OS preference)": ":root",
    "dark (the theme toggle)": 'html[data-theme="dark"]',
}


def without_comments(css: str) -> str:
    return re.sub(r"/\*.*?\*/", lambda m: " " * len(m.group()), css, flags=re.S)


def theme_blocks(css: str) -> dict[str, dict[str, str]]:
    """The palette each theme block defines: {block: {variable: value}}."""
    found = {}
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", without_comments(css)):
        selector = " ".join(selector.split())
        if selector in THEME_BLOCKS.values():
            key = next(k for k, v in THEME_BLOCKS.items() if v == selector)
            found[key] = dict(re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", body))
    return found


def colours_outside_the_palette(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each colour written in ``path`` but not as a variable of the palette."""
    text = path.read_text()
    if path == STYLESHEET:
        text = without_comments(text)
    return [
        (text.count("\n", 0, match.start()) + 1, match.group())
        for match in COLOUR.finditer(text)
        if not (path == STYLESHEET and _in_palette(text, match.start()))
    ]


def _in_palette(css: str, at: int) -> bool:
    """Whether the colour at ``at`` is the value of a --th- variable in a theme block."""
    opened = css.rfind("{", 0, at)
    selector = " ".join(css[css.rfind("}", 0, opened) + 1 : opened].split())
    selector = selector.split("{")[-1].strip()
    if css.rfind("}", opened, at) != -1 or selector not in THEME_BLOCKS.values():
        return False
    declaration = css[max(css.rfind(";", 0, at), opened) + 1 : at]
    return re.fullmatch(r"\s*--th-[\w-]+\s*:\s*", declaration) is not None


def test_no_colour_is_written_outside_the_palette():
    assert all(path.exists() for path in SOURCES)
    found = [
        f"{path.relative_to(ROOT)}:{line}: {text}"
        for path in SOURCES
        for line, text in colours_outside_the_palette(path)
    ]
    assert found == [], "use a variable of console.css or the admin's instead:\n" + "\n".join(found)


def test_the_scan_finds_colours_and_passes_ids_anchors_and_entities(tmp_path):
    sample = tmp_path / "sample.html"
    sample.write_text(
        '<span style="color:#666">a</span>\n<rect fill="red"/> x.style.background = "rgb(1,2,3)";\n'
        '<a href="#top">b</a> &#123; <div id="th-feed"></div> color: var(--body-fg); #add-row\n'
        ".x { border: 1px solid grey; background: var(--th-green-bg); }"
    )
    assert colours_outside_the_palette(sample) == [
        (1, "#666"),
        (2, 'fill="red'),
        (2, "rgb("),
        (4, "border: 1px solid grey"),
    ]


def test_every_colour_of_the_palette_has_a_dark_variant_and_both_dark_blocks_agree():
    blocks = theme_blocks(STYLESHEET.read_text())
    assert set(blocks) == set(THEME_BLOCKS), blocks.keys()
    light = blocks["light"]
    assert len(light) >= 30 and all(name.startswith("--th-") for name in light)
    assert blocks["dark (the OS preference)"] == blocks["dark (the theme toggle)"]
    dark = blocks["dark (the theme toggle)"]
    assert set(dark) == set(light)
    # badge backgrounds change with the theme (text colours may coincide)
    changed = [name for name in light if name.endswith("-bg") and light[name] != dark[name]]
    assert len(changed) == sum(name.endswith("-bg") for name in light)
