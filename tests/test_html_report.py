"""report.html: self-contained (plots as data URIs, no outside link), claims first, provenance;
LaTeX tables; and the page in a real headless browser (Debian's chromium) when one is installed."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_aggregate import write_fixed_store

from harness import html_report, latex
from harness.report import build_report, main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_is_self_contained_with_claims_first(tmp_path):
    png = tmp_path / "p.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    tables = {
        "table1": pd.DataFrame({"variant": ["hsd"], "paper (CIFAR10-DVS)": [81.1]}),
        "claims": pd.DataFrame({"claim": ["HSD beats TET at T = 5"], "verdict": ["<holds>"]}),
        "empty": pd.DataFrame(),
    }
    page = html_report.render(title="t", tables=tables, plots=[png], notes=["n & m"])
    assert page.index('id="claims"') < page.index('id="table1"') and 'id="empty"' not in page
    assert "data:image/png;base64," in page and "p.png" not in page.split("alt=")[0]
    assert "&lt;holds&gt;" in page and "n &amp; m" in page  # text is escaped
    assert ">CIFAR10-DVS (the paper's, not measured)</th>" in page
    # nothing is fetched from elsewhere: every src/href is a data URI or an in-page anchor
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(u.startswith(("data:", "#")) for u in links)


def test_provenance_from_folder_and_rows(tmp_path):
    out = write_fixed_store(tmp_path / "s")
    (out / "COMMAND.txt").write_text("python -m harness.run --sweep latency\nmachine: vm\n")
    rows = pd.DataFrame({"run_id": ["a", "b"], "seed": [0, 1], "git_commit": ["abc", "abc"]})
    info = html_report.provenance(out, rows)
    assert "--sweep latency" in info["commands and machine (COMMAND.txt)"]
    assert '"sweep": "mixed"' in info["sweep (sweep.json)"]
    assert (info["seeds"], info["git commits of the runs"], info["runs"]) == ("0, 1", "abc", "2")
    assert info["devices"] == "(not recorded)"


def test_latex_booktabs_bold_best_and_paper_marked():
    df = pd.DataFrame(
        {
            "variant": ["hsd", "tet_x"],
            "acc": ["81.10 ± 0.50", "79.00 ± 1.00"],
            "mean exit step": [2.0, 1.5],
            "mean exit step ci95": [0.1, 0.2],
            "paper (CIFAR10-DVS)": [81.1, float("nan")],
            "x non-ok": [0, 0],
        }
    )
    tex = latex.to_latex(df, name="early_exit")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    # a column with a single value has no "best": the paper column stays plain
    assert r"hsd & $\mathbf{81.10} \pm \mathbf{0.50}$ & $2.00 \pm 0.10$ & 81.10 \\" in tex
    # lower is better for exit steps; the underscore is escaped; an all-zero non-ok is dropped
    assert r"tet\_x & $79.00 \pm 1.00$ & $\mathbf{1.50} \pm \mathbf{0.20}$ & -- \\" in tex
    assert r"CIFAR10-DVS$^\dagger$" in tex and "As reported in the paper" in tex
    assert "non-ok" not in tex and "95 \\% Student-t" in tex


def test_report_writes_latex_pdf_html_and_notes_missing_early_exit(tmp_path, capsys):
    out = write_fixed_store(tmp_path / "s")
    assert main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: early-exit data is missing for 6 of 6 ok runs" in printed
    assert (out / "tables" / "table1.tex").read_text().startswith(r"\begin{table}")
    assert (out / "plots" / "figure2.pdf").read_bytes().startswith(b"%PDF")
    page = (out / "report.html").read_text()
    pngs = len(list((out / "plots").glob("*.png")))  # every plot is embedded once
    assert "early-exit data is missing" in page and page.count("data:image/png;base64,") == pngs


def _browser(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any fetch would fail loudly
        f"--user-data-dir={user_dir}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


# Injected at the top of a copy of the page: records errors (scripts, failed loads, console) and,
# once loaded, writes how many images there are and which did not render into the DOM.
_CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  String(e.message || (e.target && (e.target.src || e.target.href)) || 'error').slice(0, 200)),
  true);
const _err = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); _err(...a); };
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement('pre');
  out.id = 'selfcheck';
  out.textContent = JSON.stringify({images: imgs.length, broken, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium installed (Debian: apt-get install chromium); the browser check needs one",
)
@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    out = write_fixed_store(tmp_path / "s")
    build_report(out)
    page = (out / "report.html").read_text()
    check = out / "check.html"
    check.write_text(page.replace("<head>", "<head>" + _CHECK, 1))
    dom = _browser(
        "--virtual-time-budget=10000", "--dump-dom", check.as_uri(), user_dir=tmp_path / "u1"
    )
    found = re.search(r'<pre id="selfcheck">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"no self-check in the dumped DOM; stderr: {dom.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    pngs = len(list((out / "plots").glob("*.png")))
    assert pngs >= 4 and result == {"images": pngs, "broken": [], "errors": []}
    shot = tmp_path / "report.png"
    run = _browser(
        f"--screenshot={shot}",
        "--window-size=1280,2400",
        (out / "report.html").as_uri(),
        user_dir=tmp_path / "u2",
    )
    assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG"), run.stderr[-2000:]
