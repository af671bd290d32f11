"""The browser check (scripts/browser_check.py) on small fixture pages.

Each check must fail on a page that breaks it and pass on a good page.
Skipped when playwright or a Chromium cannot be used.
"""

from __future__ import annotations

import importlib.util
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import browser_check as bc  # noqa: E402

if importlib.util.find_spec("playwright") is None:
    pytest.skip(
        "skipped: playwright is not installed (pip install -e '.[test]')",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402

GOOD_STYLE = """
body { margin: 0; font-family: sans-serif; }
article { width: 600px; margin: 20px; }
pre { overflow-x: auto; font-family: monospace; font-size: 14px; }
.deliberate-scroll { overflow-x: auto; }
"""


def html(body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        f"<style>{GOOD_STYLE}</style>{head}</head>"
        f"<body><article class='bd-article'>{body}</article></body></html>"
    )


def png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        crc = zlib.crc32(body).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + body + crc

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


LAUNCH = """
<div class="dropdown dropdown-launch-buttons"><ul>
<li><a href="https://colab.research.google.com/github/o/r/blob/main/notebooks/{nb}.ipynb">Colab</a></li>
</ul></div>
<div class="dropdown dropdown-download-buttons"><ul>
<li><a href="../_sources/notebooks/{dl}.ipynb">.ipynb</a></li>
</ul></div>
"""

GOOD = html(
    "<h1 id='top'>A chapter</h1>"
    "<section id='s1'><h2>Section</h2>"
    "<p>Prose with a dollar: it costs 5 $ to print. "
    "<a href='#s1'>here</a>, <a href='other.html#target'>there</a>, "
    "<a href='other.html'>page</a>, <a href='https://example.org/x'>out</a></p>"
    "<div class='highlight'><pre>"
    + "x = 1  # short line\n"
    * 3
    + "</pre></div>"
    "<div class='deliberate-scroll'><pre>" + "y" * 150 + "</pre></div>"
    "<img src='ok.png' alt='a one-pixel figure'>"
    "</section>"
)
OTHER = html("<h1>Other</h1><p id='target'>Target.</p>")

BAD = {
    # name: (page html, expected substring of a failure)
    "wide_pre": (
        html("<div class='highlight'><pre>" + "z" * 120 + "</pre></div>"),
        "too wide: pre",
    ),
    "wide_pre_collapsed": (
        html(
            "<details><summary>listing</summary><div class='highlight'>"
            "<pre>" + "w = 1 " * 20 + "</pre></div></details>"
        ),
        "longest line 119 chars",  # trailing space stripped
    ),
    "wide_table": (
        html("<table><tr><td>" + "Unbreakable" * 30 + "</td></tr></table>"),
        "too wide: table",
    ),
    "broken_image": (
        html("<img src='missing.png' alt='gone'>"),
        "image not loaded: missing.png",
    ),
    "raw_dollar_math": (
        html("<p>The loss is $x^2$ here.</p>"),
        'raw TeX in text: "$x^2$"',
    ),
    "raw_paren_math": (
        html("<p>The loss is \\(x^2\\) here.</p>"),
        "raw TeX in text",
    ),
    "unrendered_math": (
        html("<p><span class='math'>\\(x\\)</span></p>"),
        "math not rendered",
    ),
    "broken_link": (
        html("<p><a href='nowhere.html'>gone</a></p>"),
        "broken link: nowhere.html (HTTP 404)",
    ),
    "missing_anchor": (
        html("<p><a href='other.html#nope'>gone</a></p>"),
        'broken link: other.html#nope (no element with id "nope"',
    ),
    "missing_local_anchor": (
        html("<p><a href='#nope'>gone</a></p>"),
        'no element with id "nope" on this page',
    ),
    "console_error": (
        html("<script>console.error('boom')</script>"),
        "console error: boom",
    ),
    "page_error": (
        html("<script>undefinedFunction()</script>"),
        "page error:",
    ),
    "offsite_request": (
        html("<img src='http://example.invalid/x.png' alt='x'>"),
        "request to another host",
    ),
}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        try:
            b = bc.launch(pw)
        except Exception as err:
            pytest.skip(
                "skipped: cannot start Chromium (install Debian's chromium, "
                f"or set SEQLIB_CHROMIUM): {str(err).splitlines()[0]}"
            )
        yield b
        b.close()


@pytest.fixture
def site(tmp_path):
    (tmp_path / "ok.png").write_bytes(png())
    (tmp_path / "other.html").write_text(OTHER)
    return tmp_path


@pytest.fixture(scope="module")
def context(browser):
    ctx = browser.new_context(viewport=bc.VIEWPORT)
    yield ctx
    ctx.close()


def run(context, root: Path, name: str, **kw) -> list[str]:
    """The failures check_page finds on root/name (a fresh page)."""
    with bc.serve(root) as base:
        page = context.new_page()
        try:
            bc.open_page(page, base + name)
            return bc.check_page(page, **kw)
        finally:
            page.close()


def test_good_page_passes(context, site):
    (site / "good.html").write_text(GOOD)
    assert run(context, site, "good.html") == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_page_fails(context, site, case):
    page, expected = BAD[case]
    (site / "bad.html").write_text(page)
    problems = run(context, site, "bad.html")
    assert any(expected in p for p in problems), problems


def test_wide_pre_reports_line(context, site):
    line = "result = model(x)  # " + "a long comment " * 7
    (site / "bad.html").write_text(
        html(f"<div class='highlight'><pre>short\n{line}</pre></div>")
    )
    (problem,) = run(context, site, "bad.html")
    assert f"longest line {len(line.rstrip())} chars" in problem
    assert f'first too-long line: "{line.rstrip()[:40]}' in problem


def test_missing_alt_warns_unless_required(context, site):
    (site / "alt.html").write_text(
        html("<img src='ok.png'><img src='ok.png' alt='ok.png'>")
    )
    warnings: list[str] = []
    assert run(context, site, "alt.html", warnings=warnings) == []
    assert warnings[0] == "2 of 2 images in the article without alt text"
    assert "no alt attribute" in warnings[1]
    assert "alt is the file name" in warnings[2]
    failures = run(context, site, "alt.html", require_alt=True)
    assert len(failures) == 2 and all("without alt" in f for f in failures)


def test_launch_buttons(context, site):
    nb = site / "notebooks"
    nb.mkdir()
    good = html(LAUNCH.format(nb="03_attn", dl="03_attn"))
    (nb / "03_attn.html").write_text(good)
    sources = site / "_sources" / "notebooks"
    sources.mkdir(parents=True)
    (sources / "03_attn.ipynb").write_text("{}")
    (sources / "04_caps.ipynb").write_text("{}")
    assert run(context, site, "notebooks/03_attn.html") == []

    (nb / "03_attn.html").write_text(
        html(LAUNCH.format(nb="04_caps", dl="03_attn"))
    )
    problems = run(context, site, "notebooks/03_attn.html")
    assert any(
        "launch button" in p and "not notebooks/03_attn.ipynb" in p
        for p in problems
    ), problems

    (nb / "03_attn.html").write_text(html("<p>no buttons</p>"))
    problems = run(context, site, "notebooks/03_attn.html")
    assert "no Colab launch button on a notebook page" in problems


def test_mathjax_rendered_passes(context, site):
    es5 = bc_mathjax()
    if es5 is None:
        pytest.skip("skipped: django-static-mathjax (MathJax 3) not installed")
    (site / "tex-chtml.js").symlink_to(es5 / "tex-chtml.js")
    (site / "output").symlink_to(es5 / "output")
    page = html(
        "<p>Inline <span class='math notranslate nohighlight'>\\(x^2\\)</span>.</p>"
        "<div class='math notranslate nohighlight'>\\[a = b\\]</div>",
        head="<script defer src='tex-chtml.js'></script>",
    )
    (site / "math.html").write_text(page)
    assert run(context, site, "math.html") == []


def bc_mathjax() -> Path | None:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        return None
    es5 = (
        Path(next(iter(spec.submodule_search_locations)))
        / "static/mathjax/es5"
    )
    return es5 if (es5 / "tex-chtml.js").is_file() else None


SEARCH = """<!doctype html><html><body><div id="search-results"></div>
<script>
const q = new URLSearchParams(location.search).get('q');
setTimeout(() => {
  const out = document.getElementById('search-results');
  const hit = q === 'shifted window' ? '{hit}' : 'book/intro.html';
  out.innerHTML = '<p class="search-summary">Found 1 page</p>'
    + '<ul class="search"><li><a href="' + hit + '">hit</a></li></ul>';
}, 50);
</script></body></html>"""


def test_search(context, site):
    hit = "notebooks/07_swin_transformer.html"
    with bc.serve(site) as base:
        (site / "search.html").write_text(SEARCH.replace("{hit}", hit))
        page = context.new_page()
        assert bc.check_search(page, base) == []
        page.close()
        (site / "search.html").write_text(
            SEARCH.replace("{hit}", "notebooks/06_vit.html")
        )
        # a new context: the first one may serve search.html from its cache
        fresh = context.browser.new_context()
        problems = bc.check_search(fresh.new_page(), base)
        fresh.close()
    assert f"does not list {hit}" in problems[0], problems


def test_main_on_a_site(browser, site, tmp_path, capsys):
    (site / "good.html").write_text(GOOD)
    (site / "index.html").write_text(
        '<meta http-equiv="Refresh" content="0; url=good.html" />'
    )
    screens = tmp_path / "screens"
    code = bc.main([str(site), "--screens", str(screens)], browser=browser)
    out = capsys.readouterr().out
    assert code == 0, out
    assert (screens / bc.build_name(site) / "good.png").stat().st_size > 0

    (site / "bad.html").write_text(BAD["wide_pre"][0])
    assert bc.main([str(site)], browser=browser) == 1
    out = capsys.readouterr().out
    assert "bad.html: 1 problem" in out, out
