"""``report.html``: one self-contained page per run, for a reviewer opening a CI artifact.

Everything is in the file: styles inline, figures as SVG data URIs, no script, no font, no
request of any kind, so it reads the same from a downloaded artifact with no server and no
network. Sections, linked from a contents list and from each other by anchors: the leaderboard
(its cells link to the task's section), one section per task (the layer table, the layer-curve
figure with its bands, and links to the claims on that task), the claims with their verdicts
(each links back to its task), extra figures (the papers', when given) and the provenance of
every number (runs, commits, hosts, weights identities, data archives, library versions).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pytest_plmtransfer.infra.tempfiles import atomic_write
from pytest_plmtransfer.measure.protocol import PLMTRANSFER
from pytest_plmtransfer.report.tables import _caption as table_caption
from pytest_plmtransfer.report.tables import _claims_summary as claims_summary
from pytest_plmtransfer.report.tables import _grid as layer_grid
from pytest_plmtransfer.report.tables import claim_rows, leaderboard_caption, leaderboard_grid, task_tables
from pytest_plmtransfer.results.aggregate import normalize
from pytest_plmtransfer.results.ledger import records_to_frame

VERDICTS = {  # outcome -> (what the badge says, css class)
    "passed": ("holds", "pass"),
    "failed": ("broken", "fail"),
    "xfailed": ("expected failure", "xfail"),
    "xpassed": ("unexpectedly holds", "xpass"),
    "skipped": ("not evaluated", "skip"),
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:0 1.5rem 3rem;color:#1b1b1b;line-height:1.45}
h1{margin-top:1.2rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.2rem}
nav ul{columns:2;list-style:none;padding-left:0}nav li{margin:.1rem 0}
.scroll{overflow-x:auto;margin:0 0 1rem}table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}td.best{font-weight:700;background:#fff6d8}
table.wrap{width:100%}table.wrap td,table.wrap th{white-space:normal}table.wrap pre{font-size:.8rem;overflow-x:auto;margin:.2rem 0}
p.cap{font-size:.85rem;color:#444;margin:.6rem 0 .2rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-size:.8rem;font-weight:600;white-space:nowrap}
.pass{background:#d6ecff;color:#00457a}.fail{background:#ffd9c7;color:#8a2c00}
.xfail{background:#eee;color:#333}.xpass{background:#ffe9a8;color:#6b4d00}.skip{background:#f4f4f4;color:#555}
.meta{color:#555;font-size:.9rem}code{font-size:.85em}
"""


def anchor(prefix: str, name: str) -> str:
    from pytest_plmtransfer.report.plots import safe_name

    return f"{prefix}-{safe_name(name)}"


def _badge(outcome: Any, attrs: str = "") -> str:
    word, cls = VERDICTS.get(str(outcome), (str(outcome), "skip"))
    return f'<span{attrs} class="badge {cls}">{_e(word)}</span>'


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(
    header: Sequence[str],
    body: Iterable[Sequence[str]],
    *,
    caption: str | None = None,
    left: int = 1,
    table_id: str,
    wrap: bool = False,
    best_marks: bool = False,
) -> str:
    """A table from cells that are already HTML, its caption above it (outside the scrolling box,
    so a wide table never hides it); the first ``left`` columns are left-aligned."""
    out = []
    if caption:
        out.append(f'<p class="cap" id="{table_id}-caption">{_e(caption)}</p>')
    described = f' aria-describedby="{table_id}-caption"' if caption else ""
    wrapping = ' class="wrap"' if wrap else ""
    out.append(f'<div class="scroll"><table id="{table_id}"{described}{wrapping}>')
    heads = (f'<th class="l">{h}</th>' if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
    out.append("<thead><tr>" + "".join(heads))
    out.append("</tr></thead><tbody>")
    for row in body:
        cells = []
        for i, cell in enumerate(row):
            cls = "l" if i < left else ""
            if best_marks and cell.endswith("*"):  # the best layer of a layer table
                cls, cell = "best", cell[:-1]
            cells.append(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _data_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _figure(fig_id: str, image: Path, title: str, caption: str) -> str:
    return (
        f'<figure id="{fig_id}"><img src="{_data_uri(image)}" alt="{_e(title)}">'
        f"<figcaption><strong>{_e(title)}.</strong> {_e(caption)}</figcaption></figure>"
    )


def _best_image(png: Path) -> Path:
    svg = png.with_suffix(".svg")
    return svg if svg.is_file() else png


CURVE_NOTE = (
    "Lines join measured layers only; ★ marks the layer chosen on validation; one-hot is the black dotted line; "
    "pretrained solid, random dashed, stat dotted; the legend says what the shaded bands are."
)


def _distinct(frame: pd.DataFrame, column: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for value in frame[column].tolist():
        if value is None or (isinstance(value, float) and value != value):
            continue
        seen.setdefault(json.dumps(value, sort_keys=True, default=str), value)
    return list(seen.values())


def _weights_text(value: Any) -> str:
    if isinstance(value, Mapping):
        ident = value.get("weights") or value.get("weights_sha256")
        if isinstance(ident, Mapping):
            ident = ident.get("sha256") or ident.get("path") or json.dumps(ident, sort_keys=True)
        family = (value.get("config") or {}).get("family") if isinstance(value.get("config"), Mapping) else None
        seed = f", seed {value['seed']}" if value.get("seed") is not None else ""
        text = str(ident) if ident else f"no checkpoint ({value.get('init') or 'built from config'}{seed})"
        return text + (f" · {family}" if family else "")
    return "" if value is None else str(value)


def _provenance(layers: pd.DataFrame, claims: pd.DataFrame) -> str:
    both = pd.concat([layers, claims], ignore_index=True, sort=False) if not claims.empty else layers
    out = []
    runs = []
    for run, sub in both.groupby(both["run_id"].astype(str), sort=True):
        stamps = sorted(str(t) for t in sub["timestamp"].dropna())
        runs.append(
            [
                f"<code>{_e(run)}</code>",
                _e(f"{stamps[0]} – {stamps[-1]}" if stamps else ""),
                _e(", ".join(map(str, _distinct(sub, "plugin_version")))),
                "<code>" + _e(", ".join(str(c)[:12] for c in _distinct(sub, "git_commit"))) + "</code>",
                _e(", ".join(map(str, _distinct(sub, "host")))),
                _e(", ".join(sorted(str(s) for s in _distinct(sub, "shard")))),
                str(int((sub["kind"] == "layer").sum())),
                str(int((sub["kind"] == "claim").sum())),
            ]
        )
    out.append(
        _table(
            ["run", "recorded", "plugin", "commit", "host", "shards", "layer records", "claim records"],
            runs,
            caption="runs whose records this report shows",
            left=6,
            table_id="provenance-runs",
        )
    )
    models = []
    data = normalize(layers)
    for (model, init), sub in data.groupby(["model", "init"], sort=True):
        devices = {(r.get("device"), r.get("dtype")) for r in sub.to_dict("records")}
        models.append(
            [
                _e(model),
                _e(init),
                _e(", ".join(sorted(set(sub["seed_key"])))),
                "<br>".join(_e(_weights_text(w)) for w in _distinct(sub, "weights")),
                _e(", ".join(f"{d}/{t}" for d, t in devices)),
                _e(", ".join(map(str, _distinct(sub, "protocol")))),
            ]
        )
    out.append(
        _table(
            ["model", "init", "seeds", "weights identity", "device/dtype", "protocol"],
            models,
            caption="what was measured: two rows with different weights identities are different models",
            left=6,
            table_id="provenance-models",
        )
    )
    tasks = []
    for task, sub in data.groupby("task", sort=True):
        # one row per file read (archive, member, digest); its split sizes as recorded
        files: dict[tuple[str, ...], set[str]] = {}
        for d, sizes in zip(sub.get("data", []), sub.get("split_sizes", [])):
            if isinstance(d, Mapping):
                key = (d.get("archive") or d.get("source"), d.get("member"), d.get("sha256"))
                found = files.setdefault(tuple(str(v or "") for v in key), set())
                if isinstance(sizes, Mapping):
                    found.add(" ".join(f"{k} {v}" for k, v in sizes.items()))
        for (archive, member, digest), sizes in sorted(files.items()):
            tasks.append(
                [_e(task), _e(archive), _e(member), f"<code>{_e(digest[:16])}</code>", _e("; ".join(sorted(sizes)))]
            )
    out.append(
        _table(
            ["task", "archive", "member", "sha256", "split sizes"],
            tasks,
            caption="the data each task was read from",
            left=5,
            table_id="provenance-data",
        )
    )
    libs = [
        _e(", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
        for versions in _distinct(layers, "versions")
        if isinstance(versions, Mapping)
    ]
    machines = [
        _e(", ".join(f"{k} {v}" for k, v in m.items())) for m in _distinct(layers, "machine") if isinstance(m, Mapping)
    ]
    out.append(
        _table(
            ["libraries", "machine"],
            [[lib, mach] for lib, mach in zip(libs or [""], machines or [""])],
            left=2,
            table_id="provenance-env",
            wrap=True,
            caption="library versions and machines (one row per distinct set)",
        )
    )
    return "\n".join(out)


def render_html(
    frame: pd.DataFrame,
    claims: Any = None,
    *,
    curves: Mapping[str, Path] | None = None,
    metric: str | None = None,
    extra_figures: Sequence[Any] = (),
    title: str = "plmtransfer report",
) -> str:
    """The page as a string. ``curves``: task -> layer-curve PNG (SVG beside it preferred), the
    key ``"_all"`` for the overview; ``extra_figures``: objects with ``path``, ``svg``, ``title``
    and ``paper_ref`` (e.g. the papers' figures)."""
    curves = dict(curves or {})
    tables = task_tables(frame, metric)
    crows = claim_rows(claims)
    claim_frame = records_to_frame(crows)
    claim_ids: dict[str, str] = {}
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in crows:
        base, n = anchor("claim", r["claim_id"]), 1
        while base + ("" if n == 1 else f"-{n}") in claim_ids.values():
            n += 1
        claim_ids[r["claim_id"]] = base + ("" if n == 1 else f"-{n}")
        by_task.setdefault(str(r.get("task")), []).append(r)

    toc = ['<li><a href="#leaderboard">Leaderboard</a></li>']
    toc += [f'<li><a href="#{anchor("task", t.key)}">{_e(t.task)}</a></li>' for t in tables]
    if crows:
        toc.append('<li><a href="#claims">Claims</a></li>')
    if "_all" in curves or extra_figures:
        toc.append('<li><a href="#figures">Figures</a></li>')
    toc.append('<li><a href="#provenance">Provenance</a></li>')

    runs = sorted(set(map(str, _distinct(frame, "run_id"))))
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(tables)} task(s), {len(normalize(frame))} layer measurement(s), '
        f"{len(crows)} claim(s){'; ' + _e(claims_summary(crows)) if crows else ''}; "
        f"run(s) {_e(', '.join(runs) or 'n/a')}.</p>",
        '<nav aria-label="contents"><ul>' + "".join(toc) + "</ul></nav>",
        '<section id="leaderboard"><h2>Leaderboard</h2>',
    ]
    if tables:
        opens = [f'<a href="#{anchor("task", t.key)}">' for t in tables]
        _, grid = leaderboard_grid(tables, with_delta=True)
        lead_rows = [
            [rank, _e(label), *(f"{a}{_e(c)}</a>" if c else "" for a, c in zip(opens, cells))]
            for rank, label, *cells in grid
        ]
        header = ["rank", "model/init", *(f"{a}{_e(t.task)}</a>" for a, t in zip(opens, tables))]
        body.append(
            _table(header, lead_rows, caption=leaderboard_caption(tables), left=2, table_id="leaderboard-table")
        )
    else:
        body.append("<p>No layer results.</p>")
    body.append("</section>")

    for t in tables:
        tid = anchor("task", t.key)
        body.append(f'<section id="{tid}"><h2>{_e(t.task)} [{_e(t.protocol)}]</h2>')
        header, grid = layer_grid(t, t.layers, with_summary=True)
        body.append(
            _table(
                [_e(h) for h in header],
                [[_e(c.strip()) for c in row] for row in grid],
                caption=table_caption(t) + " Bold: the best layer.",
                left=1,
                table_id=f"{tid}-table",
                best_marks=True,
            )
        )
        if t.key in curves:
            body.append(
                _figure(f"{tid}-figure", _best_image(curves[t.key]), f"{t.task}: {t.test_metric} by layer", CURVE_NOTE)
            )
        related = by_task.get(t.task, [])
        if related:
            links = ", ".join(
                f'<a href="#{claim_ids[r["claim_id"]]}">{_e(r["claim_id"])}</a> {_badge(r.get("outcome"))}'
                for r in related
            )
            body.append(f"<p>Claims on this task: {links}</p>")
        body.append("</section>")

    if crows:
        body.append(f'<section id="claims"><h2>Claims</h2><p>{_e(claims_summary(crows))}</p>')
        rows = []
        for r in crows:
            task = str(r.get("task"))
            # the claim's own protocol's table (a claim record carries it; the default otherwise)
            key = task if r.get("protocol") in (None, PLMTRANSFER) else f"{task}--{r.get('protocol')}"
            task_link = (
                f'<a href="#{anchor("task", key)}">{_e(task)}</a>' if any(t.key == key for t in tables) else _e(task)
            )
            finding = r["detail"].get("finding") if isinstance(r.get("detail"), Mapping) else None
            expected = r.get("expected_failure")
            first, _, rest = str(r.get("message") or "").strip().partition("\n")
            msg = (f"<em>{_e(finding)}</em><br>" if finding else "") + _e(first)
            if isinstance(expected, str) and expected:
                msg += f"<br>expected to fail: {_e(expected)}"
            if rest.strip():  # the evidence tables of a message: aligned, folded
                n = len(rest.strip().splitlines())
                msg += f"<details><summary>evidence ({n} lines)</summary><pre>{_e(rest.rstrip())}</pre></details>"
            rows.append(
                [
                    _badge(r.get("outcome"), f' id="{claim_ids[r["claim_id"]]}"'),
                    f'<code title="{_e(r["claim_id"])}">{_e(r.get("claim") or r["claim_id"])}</code>',
                    task_link,
                    _e(f"{r.get('model')}/{r.get('init')}"),
                    msg,
                ]
            )
        body.append(
            _table(
                ["verdict", "claim", "task", "model/init", "finding and evidence"],
                rows,
                left=5,
                table_id="claims-table",
                wrap=True,
                caption="each claim's newest outcome; the message gives the numbers and the interval it was judged on",
            )
        )
        body.append("</section>")

    if "_all" in curves or extra_figures:
        body.append('<section id="figures"><h2>Figures</h2>')
        if "_all" in curves:
            body.append(
                _figure("figure-overview", _best_image(curves["_all"]), "All tasks, one panel each", CURVE_NOTE)
            )
        for i, fig in enumerate(extra_figures):
            svg = getattr(fig, "svg", None)
            image = Path(svg) if svg and Path(svg).is_file() else Path(fig.path)
            ref = getattr(fig, "paper_ref", None)
            caption = " ".join(filter(None, [f"Regenerates {ref}." if ref else "", getattr(fig, "description", "")]))
            body.append(_figure(f"figure-{i + 1}", image, str(getattr(fig, "title", image.stem)), caption))
        body.append("</section>")

    body += ['<section id="provenance"><h2>Provenance</h2>', _provenance(frame, claim_frame), "</section>"]
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_html(frame: pd.DataFrame, claims: Any, path: Path | str, **kwargs: Any) -> Path:
    path = Path(path)
    atomic_write(path, render_html(frame, claims, **kwargs))
    return path
