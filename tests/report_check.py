"""Open a Snakemake 9 HTML report in headless Chromium and check the results it lists.

The report is a React app that renders its menu from embedded data, so reading the HTML source
proves nothing: this drives a real browser (Debian's ``chromium`` + ``chromium-driver`` via
selenium), clicks through every result category and subcategory, and collects the file names
the rendered page shows.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ReportCheckError", "browser_available", "check_report", "find_browser"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
RENDER_TIMEOUT_S = 60.0


class ReportCheckError(AssertionError):
    """The rendered report lacks expected results, or could not be rendered at all."""


def _which(names: Sequence[str], env: str) -> str | None:
    """First executable of ``names`` on PATH, or the path in environment variable ``env``."""
    if os.environ.get(env):
        return os.environ[env] if os.access(os.environ[env], os.X_OK) else None
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def find_browser() -> tuple[str | None, str | None]:
    """(chromium binary, chromedriver) paths; None for what is missing (CHROMIUM/CHROMEDRIVER)."""
    return _which(CHROMIUM_NAMES, "CHROMIUM"), _which(DRIVER_NAMES, "CHROMEDRIVER")


def browser_available() -> tuple[bool, str]:
    """Whether selenium, chromium and chromedriver are all there, and what is missing if not."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python package selenium (pip install -e '.[test]')")
    chromium, driver = find_browser()
    if chromium is None:
        missing.append("chromium (apt-get install chromium)")
    if driver is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    return not missing, "; ".join(missing)


def _driver(window: tuple[int, int] = (1600, 1000)) -> Any:
    """A headless Chromium WebDriver (no sandbox: CI runs as root)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, driver = find_browser()
    if chromium is None or driver is None:
        raise ReportCheckError(f"no headless browser: {browser_available()[1]}")
    opts = Options()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={window[0]},{window[1]}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def _wait(predicate: Any, what: str, timeout: float = RENDER_TIMEOUT_S) -> Any:
    """Poll ``predicate()`` until it returns a truthy value; raise naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - the page may still be mid-render
            last_err = err
        time.sleep(0.2)
    raise ReportCheckError(f"timed out after {timeout:g} s waiting for {what} ({last_err})")


def _click_menu_item(drv: Any, label: str) -> None:
    """Click the rendered navbar entry whose text is exactly ``label``."""
    from selenium.webdriver.common.by import By

    xpath = f"//a[.//span[normalize-space(text())={_xpath_literal(label)}]]"
    link = _wait(lambda: drv.find_element(By.XPATH, xpath), f"menu entry {label!r}")
    drv.execute_script("arguments[0].click();", link)


def _xpath_literal(text: str) -> str:
    """``text`` as an XPath string literal, also when it contains quotes."""
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ', "\'", '.join(f"'{p}'" for p in text.split("'")) + ")"


def _result_rows(drv: Any) -> list[str]:
    """Text of each row of the rendered result table (empty when no table is shown)."""
    rows = drv.execute_script(
        "return Array.from(document.querySelectorAll('#app table tbody tr')).map(r => r.innerText);"
    )
    return [" ".join(str(r).split()) for r in rows or []]


def _matches(name: str, row: str) -> bool:
    """Whether a rendered result row shows ``name`` (a file name or a path ending in it)."""
    return any(cell == name or cell.endswith("/" + name) for cell in row.split())


def _check_caption(drv: Any, name: str, snippets: Sequence[str]) -> None:
    """Open the rendered info panel of result ``name``; assert its text holds ``snippets``."""
    paths = drv.execute_script("return Object.keys(results);")
    matches = [p for p in paths if p == name or p.endswith("/" + name)]
    if not matches:
        raise ReportCheckError(f"no result {name!r} in the report to read the caption of")
    # open its info panel under its own category/subcategory; show it when it is an image
    drv.execute_script(
        """
        const path = arguments[0];
        let cat, sub;
        for (const c of Object.keys(categories)) {
            for (const s of Object.keys(categories[c])) {
                if (categories[c][s].includes(path)) { cat = c; sub = s; }
            }
        }
        const view = {navbarMode: 'resultinfo', resultPath: path, category: cat, subcategory: sub};
        if ((results[path].mime_type || '').startsWith('image/')) {
            view.content = 'img';
            view.contentPath = results[path].data_uri;
        }
        app.setView(view);
        """,
        matches[0],
    )
    text = _wait(
        lambda: (
            (t := drv.execute_script("return document.querySelector('#app').innerText"))
            and "DESCRIPTION" in t.upper()
            and matches[0] in t
            and t
        ),
        f"the caption of {name}",
    )
    flat = " ".join(text.split())
    absent = [s for s in snippets if " ".join(s.split()) not in flat]
    if absent:
        raise ReportCheckError(f"the rendered caption of {name} lacks {absent}: {flat[:2000]}")


def check_report(
    html_path: str | os.PathLike[str],
    expected_names: Sequence[str],
    screenshot_path: str | os.PathLike[str],
    *,
    caption_contains: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, str]:
    """Render ``html_path`` in headless Chromium; assert every expected result is listed.

    Clicks each result category (and each subcategory of a multi-subcategory category) in the
    navbar and reads the rendered list. ``expected_names`` are file names such as
    ``table1_comparison.md``; a listed path ending in ``/<name>`` counts. Optionally opens the
    info panel of each result in ``caption_contains`` and asserts that its rendered caption
    holds the given snippets. Saves a PNG screenshot to ``screenshot_path`` (the first listing,
    or the last caption checked; also when the check fails). Returns
    {name: "category/subcategory"}; raises :class:`ReportCheckError` naming what is missing.
    """
    html = Path(html_path).resolve()
    if not html.is_file():
        raise ReportCheckError(f"report {html} does not exist")
    shot = Path(screenshot_path)
    shot.parent.mkdir(parents=True, exist_ok=True)
    drv = _driver()
    found: dict[str, str] = {}
    listed: dict[str, list[str]] = {}
    shot_taken = False
    try:
        drv.get(html.as_uri())
        _wait(
            lambda: drv.execute_script(
                "return typeof app !== 'undefined' && typeof categories !== 'undefined' "
                "&& document.querySelector('#app').innerText.length > 0"
            ),
            "the report app to render",
        )
        cats: dict[str, list[str]] = drv.execute_script(
            "const out = {}; for (const c of Object.keys(categories)) "
            "{ out[c] = Object.keys(categories[c]); } return out;"
        )
        single_cat = len(cats) == 1
        for cat in sorted(cats):
            subs = sorted(cats[cat]) if len(cats[cat]) > 1 else [None]
            for sub in subs:
                # back to a view without a result table, then click to the listing
                drv.execute_script("app.setView({navbarMode: 'menu'});")
                _wait(lambda: not _result_rows(drv), "the menu to replace the result list")
                _click_menu_item(drv, "Results" if single_cat else cat)
                if sub is not None:
                    _click_menu_item(drv, sub)
                where = cat if sub is None else f"{cat}/{sub}"
                n_expected = drv.execute_script(
                    "return categories[arguments[0]][arguments[1]].length;",
                    cat,
                    sub if sub is not None else cats[cat][0],
                )
                lines = _wait(
                    lambda n=n_expected: (rows := _result_rows(drv)) and len(rows) == n and rows,
                    f"the {n_expected} results of {where} to render",
                )
                listed[where] = lines
                for name in expected_names:
                    if name not in found and any(_matches(name, ln) for ln in lines):
                        found[name] = where
                if not shot_taken:
                    drv.save_screenshot(str(shot))
                    shot_taken = True
        missing = [n for n in expected_names if n not in found]
        if missing:
            shown = "; ".join(f"{w}: {', '.join(ls)}" for w, ls in listed.items())
            raise ReportCheckError(
                f"rendered report {html} does not list {missing}; it lists {shown or 'nothing'}"
            )
        for name, snippets in (caption_contains or {}).items():
            _check_caption(drv, name, snippets)
            drv.save_screenshot(str(shot))
        return found
    finally:
        if not shot_taken:
            try:
                drv.save_screenshot(str(shot))
            except Exception:  # noqa: BLE001 - keep the original error
                pass
        drv.quit()
