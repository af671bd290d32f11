"""Open every page of a built book in headless Chromium and report problems.

Usage:
    python scripts/browser_check.py BUILD_DIR [BUILD_DIR ...] \
        [--screens _build/screens] [--require-alt] [--only SUBSTRING] \
        [--max-height PX] [--timings]

Each build directory (for example ``_build/html`` and
``_build/no-solutions/_build/html``) is served by a local ``http.server`` on
127.0.0.1 (a thread; nothing leaves the machine) and every page of it is
opened at 1200x900 in a new tab of one browser context per build (one reader,
so the theme's files come from the HTTP cache; the theme's "invalid theme mode"
error of a first visit therefore shows on the first page only). Per page it
checks:

* JavaScript: no console error and no uncaught page error (messages that are
  known and deliberately ignored are listed in ``IGNORED_CONSOLE`` with the
  reason); no request to another host (the book must read offline);
* math: after MathJax has finished (``MathJax.startup.promise``) no raw
  ``$...$``, ``\\(`` or ``\\[`` is left in text outside code, every ``.math``
  element holds a rendered ``mjx-container``, and MathJax reported no TeX error;
* images: every ``<img>`` loaded (``naturalWidth > 0``); images in the article
  without alt text (missing, empty, or just the file name, as myst-nb writes it)
  are *warnings*, failures only with ``--require-alt``;
* width: no ``pre``, code block, cell output, table or display equation is
  wider than its container (``scrollWidth > clientWidth + 1`` or wider than its
  parent), collapsed ``<details>`` and toggles opened, unless it sits inside an
  element with class ``deliberate-scroll``; the report gives the element, where
  it is, its longest line in characters, how many fit and the first too-long line;
* links: every same-site ``<a href>`` resolves to an existing file and, if it
  has a ``#fragment``, to an element with that id on the target page;
* launch buttons: on ``notebooks/NAME.html`` the Colab / Binder / ``.ipynb``
  download buttons that sphinx-book-theme emits exist and point at
  ``notebooks/NAME.ipynb``;

and, once per build, that ``search.html?q=<SEARCH_TERM>`` lists the chapter 7
page. With ``--screens DIR`` a screenshot of each page is written to
``DIR/<build name>/<page>.png`` (full page, cut at ``--max-height`` pixels,
16000 by default, because the longest chapters are 30-50k px tall and a full
capture of them takes 10-20 s each). The exit status is 1 if any check failed.

Chromium: $SEQLIB_CHROMIUM, else Debian's ``chromium`` on the PATH (which
scripts/_env.sh installs when it can), else playwright's own download. Exit
status 2 (and a line starting "skipped:") when playwright or Chromium cannot be
used; scripts/test.sh then skips the check.

The checks are JavaScript functions (``WAIT_JS``, ``CHECK_JS``) that
``check_page(page)`` runs in a page opened with ``open_page``; the tests in
tests/test_browser.py run them on small good and bad fixture pages.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import html
import http.server
import os
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus, unquote, urlsplit

VIEWPORT = {"width": 1200, "height": 900}
# Pages that are not chapters: generated indexes, and the search page (checked
# by check_search only).
SKIP_PAGES = frozenset({"genindex.html", "search.html", "py-modindex.html"})
# A term that only chapter 7 explains; the search must list that chapter.
SEARCH_TERM = "shifted window"
SEARCH_EXPECTED = "notebooks/07_swin_transformer.html"
SCREENSHOT_MAX_HEIGHT = 16000
PAGE_TIMEOUT_MS = 60_000
MATHJAX_TIMEOUT_MS = 30_000

# Console messages and page errors that are known and deliberately not
# reported: (regular expression searched in the message, reason). Keep it
# empty unless a message is outside the book's control; everything else fails.
IGNORED_CONSOLE: tuple[tuple[str, str], ...] = (
    (
        r"status of 404 .*/favicon\.ico\)$",
        "Chromium asks a site for /favicon.ico, at a random moment, when the "
        "page names no icon (the book sets no html_favicon); the 404 says "
        "nothing about the page it lands on",
    ),
)

# Wait until the page is settled: MathJax has typeset it, lazy images loaded.
WAIT_JS = """
async (timeoutMs) => {
  const timeout = new Promise((resolve) =>
    setTimeout(() => resolve('timeout'), timeoutMs));
  const mj = window.MathJax;
  let mathjax = 'absent';
  if (mj && mj.startup && mj.startup.promise) {
    mathjax = await Promise.race([mj.startup.promise.then(() => 'done'),
                                  timeout]);
  }
  const pending = [...document.images].map((img) => {
    if (img.loading === 'lazy') img.loading = 'eager';
    if (img.complete) return null;
    return new Promise((resolve) => {
      img.addEventListener('load', resolve, {once: true});
      img.addEventListener('error', resolve, {once: true});
    });
  }).filter(Boolean);
  await Promise.race([Promise.all(pending), timeout]);
  return mathjax;
}
"""

# Every in-page check; returns {failures, warnings, links, images}.
CHECK_JS = r"""
(opts) => {
  const failures = [];
  const warnings = [];
  const article = document.querySelector('article.bd-article')
    || document.querySelector('article') || document.querySelector('main')
    || document.body;
  const cells = [...document.querySelectorAll('div.cell')];
  const short = (s, n = 100) => {
    s = s.replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  };
  // Where an element is, for a reader of the report.
  const where = (el) => {
    let desc = el.tagName.toLowerCase();
    const cls = (typeof el.className === 'string' ? el.className : '')
      .split(/\s+/).filter((c) => c && !/^(docutils|container|notranslate)$/.test(c));
    if (cls.length) desc += '.' + cls.slice(0, 3).join('.');
    const cell = el.closest('div.cell');
    if (cell) {
      const part = el.closest('.cell_output') ? 'output of ' : '';
      desc += ` (${part}code cell ${cells.indexOf(cell) + 1})`;
    }
    let node = el.closest('section');
    while (node) {
      const h = node.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4');
      if (h) {
        desc += ` under "${short(h.textContent.replace(/[#¶]\s*$/, ''), 60)}"`;
        break;
      }
      node = node.parentElement && node.parentElement.closest('section');
    }
    return desc;
  };

  // --- math -------------------------------------------------------------
  const CODE = 'pre, code, kbd, samp, script, style, textarea, template, '
    + 'mjx-container, .math, .highlight, .MathJax, .MathJax_Preview';
  const RAW = /\$\$?[^$\s](?:[^$]{0,200}?[^$\s\\])?\$\$?|\\\(|\\\[|\\begin\{/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let rawCount = 0;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const parent = n.parentElement;
    if (!parent || parent.closest(CODE)) continue;
    const m = n.textContent.match(RAW);
    if (m && rawCount++ < 10) {
      const text = n.textContent;
      const around = text.slice(Math.max(0, m.index - 30), m.index + m[0].length + 50);
      failures.push(`raw TeX in text: "${short(m[0], 60)}" in "…${short(around, 100)}…"`
        + ` in ${where(parent)}`);
    }
  }
  if (rawCount > 10) failures.push(`raw TeX in text: ${rawCount - 10} more`);
  const maths = [...document.querySelectorAll('.math')];
  const unrendered = maths.filter((el) => !el.querySelector('mjx-container'));
  unrendered.slice(0, 10).forEach((el) =>
    failures.push(`math not rendered: "${short(el.textContent, 60)}" in ${where(el)}`));
  if (unrendered.length > 10) {
    failures.push(`math not rendered: ${unrendered.length - 10} more`);
  }
  document.querySelectorAll('mjx-merror').forEach((el) =>
    failures.push(`MathJax error: "${short(el.getAttribute('data-mjx-error')
      || el.textContent, 80)}" in ${where(el)}`));

  // --- images -----------------------------------------------------------
  const images = [...document.images];
  let noAlt = 0;
  let inArticle = 0;
  for (const img of images) {
    const src = img.getAttribute('src') || '';
    if (!img.complete || img.naturalWidth === 0) {
      failures.push(`image not loaded: ${short(src, 120)} in ${where(img)}`);
    }
    if (!article.contains(img)) continue;
    inArticle += 1;
    const alt = (img.getAttribute('alt') || '').trim();
    const file = src.split('/').pop();
    let why = '';
    if (img.getAttribute('alt') === null) why = 'no alt attribute';
    else if (!alt) why = 'empty alt';
    else if (alt === src || alt.split('/').pop() === file
             || /\.(png|jpe?g|gif|svg|webp)$/i.test(alt)) why = 'alt is the file name';
    if (why) {
      noAlt += 1;
      warnings.push(`image without alt text (${why}): ${short(file, 40)} in ${where(img)}`);
    }
  }

  // --- width ------------------------------------------------------------
  // Open collapsed content so that what a reader can expand is measured too.
  const undo = [];
  document.querySelectorAll('details:not([open])').forEach((d) => {
    d.open = true;
    undo.push(() => { d.open = false; });
  });
  document.querySelectorAll('.toggle-hidden').forEach((e) => {
    e.classList.remove('toggle-hidden');
    undo.push(() => e.classList.add('toggle-hidden'));
  });
  const WIDE = 'pre, div.highlight, div.cell_output, div.output, table, '
    + '.pst-scrollable-table-container, mjx-container[display="true"]';
  const over = [];
  for (const el of article.querySelectorAll(WIDE)) {
    if (el.closest('.deliberate-scroll')) continue;
    if (!el.getClientRects().length) continue;
    const parent = el.parentElement;
    const width = el.getBoundingClientRect().width;
    if (el.scrollWidth > el.clientWidth + 1
        || (parent && parent.clientWidth > 0 && width > parent.clientWidth + 1)) {
      over.push(el);
    }
  }
  // Report the innermost element only (a pre, not also its cell output).
  const innermost = over.filter((el) => !over.some((o) => o !== el && el.contains(o)));
  const charWidth = (el) => {
    const probe = document.createElement('span');
    probe.textContent = 'M'.repeat(40);
    probe.style.cssText = 'position:absolute;visibility:hidden;white-space:pre';
    const host = el.tagName === 'TABLE' ? (el.querySelector('td, th') || el)
      : (el.matches('pre') ? el : (el.querySelector('pre') || el));
    host.appendChild(probe);
    const w = probe.getBoundingClientRect().width / 40;
    probe.remove();
    return w || 8;
  };
  const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  for (const el of innermost) {
    const cs = getComputedStyle(el);
    const parent = el.parentElement;
    const inner = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const avail = Math.min(inner > 0 ? inner : el.clientWidth,
                           parent ? parent.clientWidth : Infinity);
    const full = Math.max(el.scrollWidth, el.getBoundingClientRect().width);
    let msg = `too wide: ${where(el)} is ${Math.round(full)} px in ${Math.round(avail)} px`;
    if (el.tagName === 'TABLE') {
      // A table overflows when its cells cannot wrap: name the longest
      // unbreakable text (an identifier, a URL, a number column).
      const cols = el.rows.length ? el.rows[0].cells.length : 0;
      const words = (el.innerText || '').split(/\s+/);
      const word = words.reduce((a, w) => (w.length > a.length ? w : a), '');
      msg += `; ${cols} columns; longest unbreakable text ${word.length} chars: "${clip(word, 80)}"`;
    } else if (el.tagName === 'MJX-CONTAINER') {
      msg += ` (display equation: "${short(el.querySelector('mjx-assistive-mml')
        ? el.querySelector('mjx-assistive-mml').textContent : '', 60)}")`;
      // custom.css lets a long display equation scroll sideways on purpose
      // (MathJax 3 does not break lines): listed, not failed.
      if (['auto', 'scroll'].includes(cs.overflowX)) {
        warnings.push(msg.replace('too wide: ', 'scrolls: '));
        continue;
      }
    } else {
      const cw = charWidth(el);
      const fits = Math.floor(avail / cw);
      const lines = (el.innerText || '').split('\n').map((l) => l.replace(/\s+$/, ''));
      const longest = Math.max(0, ...lines.map((l) => l.length));
      const first = lines.find((l) => l.length > fits);
      msg += `; longest line ${longest} chars, ~${fits} fit`;
      if (first !== undefined) msg += `; first too-long line: "${clip(first, 130)}"`;
    }
    failures.push(msg);
  }
  undo.forEach((f) => f());

  // --- launch buttons -----------------------------------------------------
  const nb = location.pathname.match(/\/notebooks\/([^/]+)\.html$/);
  if (nb) {
    const stem = decodeURIComponent(nb[1]);
    const own = new RegExp('(^|[/=])notebooks/' + stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
                           + '\\.ipynb($|[?#&])');
    const buttons = [...document.querySelectorAll(
      '.dropdown-launch-buttons a, .dropdown-download-buttons a, a.btn-launch')];
    let colab = 0;
    let download = 0;
    for (const a of buttons) {
      const href = a.getAttribute('href') || '';
      const decoded = decodeURIComponent(href);
      const isLaunch = /colab\.research|binder|jupyterhub|deepnote/i.test(href);
      const isNotebook = /\.ipynb/i.test(decoded);
      if (!isLaunch && !isNotebook) continue;
      if (/colab\.research/i.test(href)) colab += 1;
      if (!isLaunch && isNotebook) download += 1;
      if (!own.test(decoded)) {
        failures.push(`launch button "${short(a.textContent, 30)}" points at ${short(href, 140)},`
          + ` not notebooks/${stem}.ipynb`);
      }
    }
    if (!colab) failures.push('no Colab launch button on a notebook page');
    if (!download) failures.push('no .ipynb download button on a notebook page');
  }

  // --- links (resolved by the caller, which can fetch other pages) --------
  const links = [];
  const seen = new Set();
  for (const a of document.querySelectorAll('a[href]')) {
    const raw = a.getAttribute('href');
    if (!raw || /^(mailto|javascript|tel|data):/i.test(raw)) continue;
    let url;
    try { url = new URL(raw, location.href); } catch (e) {
      failures.push(`malformed link: ${short(raw, 120)}`);
      continue;
    }
    if (url.origin !== location.origin || seen.has(url.href)) continue;
    seen.add(url.href);
    const samePage = url.pathname === location.pathname;
    const frag = decodeURIComponent(url.hash.slice(1));
    if (samePage) {
      if (frag && !document.getElementById(frag)
          && !document.getElementsByName(frag).length) {
        failures.push(`broken link: ${short(raw, 120)} (no element with id "${frag}" on this page)`
          + ` in ${where(a)}`);
      }
      continue;
    }
    links.push({href: url.href, raw: raw, where: where(a)});
  }
  return {failures, warnings, links, images: inArticle, noAlt};
}
"""

# Any URL not on the local server. (No page.route to block them: routing
# disables the browser's HTTP cache. launch() makes Chromium resolve no host
# name but the local one instead.)
_OFFSITE = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/])[a-z]+://")
# Per page: the console errors collected since open_page attached to it.
_WATCHED: dict[int, list[str]] = {}


def _ignored(text: str) -> bool:
    return any(re.search(pattern, text) for pattern, _ in IGNORED_CONSOLE)


def watch(page) -> list[str]:
    """Collect console errors, page errors and off-site requests of page."""
    messages: list[str] = []

    def on_console(msg) -> None:
        if msg.type != "error":
            return
        loc = msg.location or {}
        text = msg.text
        if loc.get("url") and loc["url"] not in text:
            text += f" ({loc['url']})"
        if not _ignored(text):
            messages.append(f"console error: {text}")

    def on_pageerror(err) -> None:
        text = str(err).splitlines()[0] if str(err) else repr(err)
        if not _ignored(text):
            messages.append(f"page error: {text}")

    def on_request(request) -> None:
        if _OFFSITE.match(request.url):
            messages.append(
                "request to another host (the book must read offline): "
                f"{request.url[:160]}"
            )

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    page.on("request", on_request)
    _WATCHED[id(page)] = messages
    page.on("close", lambda _: _WATCHED.pop(id(page), None))
    return messages


def open_page(page, url: str) -> None:
    """Watch page for errors, open url and wait for MathJax and images."""
    watch(page)
    page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    state = page.evaluate(WAIT_JS, MATHJAX_TIMEOUT_MS)
    if state == "timeout":
        _WATCHED[id(page)].append(
            f"MathJax or images not finished after {MATHJAX_TIMEOUT_MS} ms"
        )


# Fetches from the local server, never through a proxy from the environment.
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# id="..." of any element, name="..." of an <a>: what a #fragment can name.
# (A regular expression, not html.parser: ten times faster on 2 MB chapters.)
_ID = re.compile(r"""\s(?:id|name)=(?:"([^"<>]*)"|'([^'<>]*)')""")


def _target(url: str, cache: dict) -> tuple[str | None, frozenset[str]]:
    """(error or None, ids) of the page at url, fetched once."""
    if url not in cache:
        try:
            with _LOCAL.open(url, timeout=30) as resp:
                body = resp.read()
                kind = resp.headers.get_content_type()
            ids: frozenset[str] = frozenset()
            if kind == "text/html":
                text = body.decode("utf-8", "replace")
                ids = frozenset(
                    html.unescape(a or b) for a, b in _ID.findall(text)
                )
            cache[url] = (None, ids)
        except urllib.error.HTTPError as err:
            cache[url] = (f"HTTP {err.code}", frozenset())
        except OSError as err:
            cache[url] = (str(err), frozenset())
    return cache[url]


def check_links(links: list[dict], cache: dict | None = None) -> list[str]:
    """Failures for links (from CHECK_JS) whose page or anchor is missing."""
    cache = {} if cache is None else cache
    problems = []
    for link in links:
        parts = urlsplit(link["href"])
        page_url = parts._replace(fragment="").geturl()
        error, ids = _target(page_url, cache)
        fragment = unquote(parts.fragment)
        if error:
            problems.append(
                f"broken link: {link['raw']} ({error}) in {link['where']}"
            )
        elif fragment and fragment not in ids:
            problems.append(
                f"broken link: {link['raw']} (no element with id "
                f'"{fragment}" on {parts.path.lstrip("/")}) in {link["where"]}'
            )
    return problems


def check_page(
    page,
    *,
    require_alt: bool = False,
    warnings: list[str] | None = None,
    cache: dict | None = None,
) -> list[str]:
    """Every check on a page opened with open_page; returns the failures.

    Images without alt text go to ``warnings`` (if given), or are failures
    with ``require_alt``. ``cache`` keeps fetched link targets between pages.
    """
    result = page.evaluate(CHECK_JS, {})
    problems = list(_WATCHED.get(id(page), []))
    problems += result["failures"]
    problems += check_links(result["links"], cache)
    listed = result["warnings"]
    alt = [w for w in listed if w.startswith("image without alt")]
    other = [w for w in listed if w not in alt]
    if require_alt:
        problems += alt
        alt = []
    if (alt or other) and warnings is not None:
        summary = (
            f"{result['noAlt']} of {result['images']} images in the article "
            "without alt text"
        )
        warnings += [summary] + ["  " + w for w in alt + other]
    return problems


def check_search(
    page,
    base_url: str,
    term: str = SEARCH_TERM,
    expected: str = SEARCH_EXPECTED,
) -> list[str]:
    """Failures if search.html?q=term does not list the page expected."""
    url = f"{base_url.rstrip('/')}/search.html?q={quote_plus(term)}"
    open_page(page, url)
    try:
        page.wait_for_function(
            """() => {
              const s = document.querySelector('#search-results .search-summary');
              return s && s.textContent.trim().length > 0;
            }""",
            timeout=20_000,
        )
    except Exception as err:  # playwright's TimeoutError
        return [
            f'search for "{term}" did not finish: {str(err).splitlines()[0]}'
        ]
    hrefs = page.eval_on_selector_all(
        "#search-results a[href]", "els => els.map(a => a.href)"
    )
    problems = list(_WATCHED.get(id(page), []))
    if not any(urlsplit(h).path.endswith("/" + expected) for h in hrefs):
        found = sorted({urlsplit(h).path.lstrip("/") for h in hrefs})
        problems.append(
            f'search for "{term}" does not list {expected}; it lists '
            f"{', '.join(found) or 'nothing'}"
        )
    return problems


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve root on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def find_chromium() -> str | None:
    """The Chromium to drive: $SEQLIB_CHROMIUM, else Debian's chromium."""
    env = os.environ.get("SEQLIB_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def launch(playwright):
    """A headless Chromium: the system one, else playwright's own download."""
    exe = find_chromium()
    return playwright.chromium.launch(
        executable_path=exe,
        headless=True,
        args=[
            "--disable-gpu",
            "--no-proxy-server",
            # Nothing leaves the machine: no host name resolves.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ],
    )


def site_pages(root: Path) -> tuple[list[str], list[str]]:
    """(pages to open, problems) for a build: every .html but SKIP_PAGES.

    A page that only redirects (the book's index.html) is not opened; its
    target must exist.
    """
    pages, problems = [], []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in {"_static", "_sources", "_images"}:
            continue
        if rel in SKIP_PAGES:
            continue
        head = path.read_text(encoding="utf-8", errors="replace")[:2000]
        redirect = re.search(
            r'http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', head, re.I
        )
        if redirect and len(head) < 2000:
            target = (path.parent / redirect.group(1).split("#")[0]).resolve()
            if not target.is_file():
                problems.append(
                    f"{rel}: redirects to missing {redirect.group(1)}"
                )
            continue
        pages.append(rel)
    return pages, problems


def build_name(build: Path) -> str:
    """_build/html -> html; _build/no-solutions/_build/html -> no-solutions-html."""
    try:
        build = build.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    parts = [p for p in build.parts if p not in {"_build", "/", ".", ""}]
    return (
        "-".join(parts[-2:])
        if len(parts) > 1
        else (parts[0] if parts else "html")
    )


def check_build(
    browser,
    root: Path,
    *,
    screens: Path | None = None,
    max_height: int = SCREENSHOT_MAX_HEIGHT,
    require_alt: bool = False,
    only: str | None = None,
    search: bool = True,
    timings: list[str] | None = None,
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({page: failures}, {page: warnings}) for one built book."""
    pages, site_problems = site_pages(root)
    if only:
        pages = [p for p in pages if only in p]
    failures: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    if site_problems:
        failures["(site)"] = site_problems
    cache: dict = {}
    # One browser context per build, as one reader: its HTTP cache spares
    # reloading the theme and MathJax on every page (a third of the time).
    # A fresh page for each page, with its own error watcher.
    with (
        serve(root) as base,
        contextlib.closing(browser.new_context(viewport=VIEWPORT)) as context,
    ):
        for rel in pages:
            page = context.new_page()
            found: list[str] = []
            warned: list[str] = []
            try:
                t0 = time.monotonic()
                open_page(page, base + rel)
                t1 = time.monotonic()
                found = check_page(
                    page, require_alt=require_alt, warnings=warned, cache=cache
                )
                t2 = time.monotonic()
                if screens is not None:
                    shot = screens / (rel[: -len(".html")] + ".png")
                    shot.parent.mkdir(parents=True, exist_ok=True)
                    height = page.evaluate(
                        "document.documentElement.scrollHeight"
                    )
                    clip = None
                    if max_height and height > max_height:
                        clip = {
                            "x": 0,
                            "y": 0,
                            "width": VIEWPORT["width"],
                            "height": max_height,
                        }
                    page.screenshot(
                        path=str(shot),
                        full_page=True,
                        clip=clip,
                        animations="disabled",
                    )
                if timings is not None:
                    timings.append(
                        f"{rel}: open {t1 - t0:.1f} s, check {t2 - t1:.1f} s,"
                        f" screenshot {time.monotonic() - t2:.1f} s"
                    )
            except Exception as err:  # a page that cannot be checked fails
                found.append(f"could not check: {str(err).splitlines()[0]}")
            finally:
                page.close()
            if found:
                failures[rel] = found
            if warned:
                warnings[rel] = warned
        if search and (root / "search.html").is_file():
            page = context.new_page()
            try:
                found = check_search(page, base)
            finally:
                page.close()
            if found:
                failures["search.html"] = found
    return failures, warnings


def report(
    name: str,
    failures: dict[str, list[str]],
    warnings: dict[str, list[str]],
    out=None,
) -> None:
    out = sys.stdout if out is None else out
    for rel in sorted(set(failures) | set(warnings)):
        bad = failures.get(rel, [])
        alt = warnings.get(rel, [])
        head = f"{name}/{rel}: {len(bad)} problem{'s' * (len(bad) != 1)}"
        if alt:
            head += f"; warning: {alt[0]}"
        print(head, file=out)
        for line in bad:
            print(f"  FAIL {line}", file=out)
        for line in alt[1:]:
            print(f"  warn {line.strip()}", file=out)


def _run(browser, args) -> tuple[int, list[str]]:
    total = 0
    timings = []
    for build in args.builds:
        name = build_name(build)
        start = time.monotonic()
        per_page: list[str] | None = [] if args.timings else None
        failures, warnings = check_build(
            browser,
            build,
            screens=args.screens / name if args.screens else None,
            max_height=args.max_height,
            require_alt=args.require_alt,
            only=args.only,
            timings=per_page,
        )
        if per_page:
            print("\n".join(["time per page:"] + per_page))
        seconds = time.monotonic() - start
        report(name, failures, warnings)
        count = sum(len(v) for v in failures.values())
        listed = [w.strip() for v in warnings.values() for w in v[1:]]
        alt = sum(w.startswith("image without alt") for w in listed)
        scrolls = sum(w.startswith("scrolls:") for w in listed)
        timings.append(
            f"{name} ({build}): {count} problems on "
            f"{len(failures)} pages, {alt} images without alt text, "
            f"{scrolls} display equations that scroll, {seconds:.0f} s"
        )
        total += count
    return total, timings


def main(argv: list[str] | None = None, browser=None) -> int:
    """The command line; ``browser``: an open one to use (the tests')."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("builds", nargs="+", type=Path, metavar="BUILD_DIR")
    parser.add_argument(
        "--screens", type=Path, help="write a screenshot of each page here"
    )
    parser.add_argument(
        "--max-height",
        type=int,
        default=SCREENSHOT_MAX_HEIGHT,
        help="cut screenshots at this many pixels (0: whole page)",
    )
    parser.add_argument(
        "--require-alt",
        action="store_true",
        help="fail (not only warn) on images without alt text",
    )
    parser.add_argument("--only", help="check only pages whose path has this")
    parser.add_argument(
        "--timings", action="store_true", help="print the time of each page"
    )
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("skipped: playwright is not installed (pip install playwright)")
        return 2
    for build in args.builds:
        if not (build / "search.html").is_file() and not list(
            build.glob("*.html")
        ):
            print(f"{build}: not a built book (no .html files)")
            return 1
    if browser is not None:
        total, timings = _run(browser, args)
    else:
        with sync_playwright() as pw:
            try:
                browser = launch(pw)
            except Exception as err:
                print(
                    "skipped: cannot start Chromium: "
                    f"{str(err).splitlines()[0]}"
                )
                return 2
            try:
                total, timings = _run(browser, args)
            finally:
                browser.close()
    print("\n".join(["", "browser check:"] + ["  " + t for t in timings]))
    if args.screens:
        print(f"  screenshots in {args.screens}/")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
