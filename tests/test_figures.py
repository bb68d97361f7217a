"""The papers' figures from a ledger: every expected file (PNG and SVG parse), filters, stated
skips, and one protocol per figure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from matplotlib.container import BarContainer

from pytest_plmtransfer.report import figures
from pytest_plmtransfer.report.cli import main
from pytest_plmtransfer.report.figures import render_figures
from pytest_plmtransfer.results.aggregate import ResultsError
from pytest_plmtransfer.results.ledger import records_to_frame
from pytest_plmtransfer.testing import paper_grid_records, write_ledger

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# the authors' model names (their families and parameter counts come from the names), few layers
MODELS = {"onehot": 0, "carp_600k": 3, "carp_38M": 4, "esm1_t6_43M_UR50S": 3, "esm1_t12_85M_UR50S": 4}


def small_records(**kw):
    return paper_grid_records(
        models=MODELS,
        tasks=("gb1_sampled",),
        classification_tasks=("scl_balanced",),
        seeds=(42, 0),
        checkpoints=(0.5, 1.0),
        **kw,
    )


@pytest.fixture(scope="module")
def frame():
    return records_to_frame(small_records())


@pytest.fixture(scope="module")
def rendered(frame, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, render_figures(frame, out)


@pytest.mark.slow
def test_every_figure_is_written_as_png_and_svg_naming_its_paper_figure(rendered):
    out, figs = rendered
    stems = sorted(f.path.stem for f in figs)
    assert stems == sorted(
        [f"workshop_grid_{m}_paper" for m in MODELS if m != "onehot"]
        + [f"workshop_sizes_{fam}_{t}" for fam in ("esm", "carp") for t in ("gb1_sampled", "scl_balanced")]
        + [
            "icml_pretrained_vs_onehot_paper",
            "icml_best_layer_paper",
            "icml_layer_cuts_esm_paper",
            "icml_layer_cuts_carp_paper",
            "icml_ablation_gaps_paper",
            "icml_pretraining_fraction_paper",
            "icml_pretraining_loss_paper",
            "icml_model_size_paper",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.png" for s in stems] + [f"{s}.svg" for s in stems])
    for f in figs:
        assert f.path.read_bytes()[:8] == PNG_MAGIC
        assert ET.parse(f.svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
        assert f.paper_ref.startswith(("workshop Fig", "ICML 2024")) and f.title and f.description
    refs = {f.path.stem: f.paper_ref for f in figs}
    assert refs["workshop_sizes_esm_gb1_sampled"] == "workshop Fig. 2 (and Fig. A4)"
    assert refs["workshop_sizes_carp_gb1_sampled"] == "workshop Fig. 4 (and Fig. A8)"
    assert refs["workshop_sizes_carp_scl_balanced"] == "workshop Fig. A10"
    assert "plot_pretrain_degree" in refs["icml_pretraining_loss_paper"]
    # the checkpoints have no grids of their own unless named; every input was there
    assert figs.skipped == []


def capture(monkeypatch):
    """The data drawn per figure stem: every line's y values and every bar's height."""
    drawn: dict[str, list[float]] = {}
    real = figures._save

    def spy(fig, out_dir, stem, *args):
        ys = [float(y) for ax in fig.axes for line in ax.lines for y in line.get_ydata()]
        ys += [
            float(b.get_height()) for ax in fig.axes for c in ax.containers if isinstance(c, BarContainer) for b in c
        ]
        drawn[stem] = ys
        return real(fig, out_dir, stem, *args)

    monkeypatch.setattr(figures, "_save", spy)
    return drawn


def test_filters_and_several_metrics(frame, tmp_path, monkeypatch):
    drawn = capture(monkeypatch)
    figs = render_figures(
        frame,
        tmp_path,
        models=["carp_600k"],
        tasks=["gb1_sampled"],
        inits=["pretrained"],
        metrics=["test_spearman", "test_ndcg"],
    )
    stems = {f.path.stem for f in figs}
    assert {"workshop_grid_carp_600k_test_spearman", "workshop_grid_carp_600k_test_ndcg"} <= stems
    assert not any("esm" in s or "38M" in s for s in stems)
    sub = frame[(frame["model"] == "carp_600k") & (frame["task"] == "gb1_sampled") & (frame["init"] == "pretrained")]
    onehot = frame[(frame["model"] == "onehot") & (frame["task"] == "gb1_sampled")]["test_spearman"]
    # the grid draws exactly the selected curve and the one-hot level, nothing else
    assert sorted(drawn["workshop_grid_carp_600k_test_spearman"]) == pytest.approx(
        sorted([*sub.sort_values("layer")["test_spearman"], *onehot, *onehot])  # axhline: two points
    )
    assert any("workshop CARP model-size panels: fewer than two CARP models" in s for s in figs.skipped)
    assert any(s.startswith("icml_ablation_gaps: ") and "no random or stat" in s for s in figs.skipped)
    with pytest.raises(ResultsError, match="no records with model esm2_t6; the records hold: "):
        render_figures(frame, tmp_path, models=["esm2_t6"])


@pytest.mark.slow
def test_missing_inputs_are_skipped_with_a_reason(tmp_path):
    plain = records_to_frame([r for r in small_records() if "@" not in r["model"] and r["model"] != "onehot"])
    figs = render_figures(plain, tmp_path, tasks=["gb1_sampled"])
    reasons = "\n".join(figs.skipped)
    assert "icml_pretraining_fraction: ICML performance vs pretraining fraction: the records carry no" in reasons
    assert "no checkpoint_fraction" in reasons and "no mlm_loss" in reasons
    assert "icml_model_size: ICML performance vs model size (paper): no parameter counts or no one-hot" in reasons
    assert "icml_pretrained_vs_onehot: " in reasons
    assert {f.path.stem for f in figs} >= {"workshop_grid_carp_600k_paper", "icml_best_layer_paper"}
    assert render_figures(plain.iloc[:0], tmp_path).skipped == ["all figures: no layer records"]


@pytest.mark.slow
def test_protocols_are_never_mixed_in_one_figure(tmp_path, monkeypatch):
    authors = small_records(protocol="authors")
    ours = small_records(protocol="plmtransfer")
    for rec in ours:  # the same keys, other values: a mixed figure would show both
        rec["metrics"] = {k: v + 10 for k, v in rec["metrics"].items()}
    drawn = capture(monkeypatch)
    figs = render_figures(records_to_frame(authors + ours), tmp_path, models=["carp_600k"], tasks=["gb1_sampled"])
    by_protocol = {p: [f for f in figs if f.path.stem.endswith(f"_{p}")] for p in ("authors", "plmtransfer")}
    assert len(by_protocol["authors"]) == len(by_protocol["plmtransfer"]) == len(figs) // 2 > 0
    for protocol, found in by_protocol.items():
        for f in found:
            assert f"({protocol}" in f.title
            values = [v for v in drawn[f.path.stem] if abs(v) > 1.5]  # differences and depths are small
            if f.path.stem.startswith("workshop_grid"):
                assert values if protocol == "plmtransfer" else not values, f.path.stem
    # records without a protocol are one protocol (plmtransfer), and the files carry no suffix
    plain = render_figures(records_to_frame(authors).assign(protocol=None), tmp_path / "plain", models=["carp_600k"])
    assert all(f.path.stem.endswith(("_paper", "_gb1_sampled", "_scl_balanced")) for f in plain)
    assert all("(plmtransfer protocol)" in f.title for f in plain if f.path.stem.startswith("workshop_grid"))


@pytest.mark.slow
def test_cli_report_figures(tmp_path, capsys):
    ledger = write_ledger(tmp_path / "ledger.json", small_records())
    code = main(
        [
            "report",
            str(ledger),
            "--figures",
            str(tmp_path / "figs"),
            "--model",
            "esm1_t6_43M_UR50S",
            "--task",
            "gb1_sampled",
            "--metric",
            "test_spearman",
            "--metric",
            "test_ndcg",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "gb1_sampled: test_spearman by layer" in out and "gb1_sampled: test_ndcg by layer" in out
    assert "  workshop_grid_esm1_t6_43M_UR50S_test_ndcg.png: workshop Figs. 1 and 3" in out
    assert "  not drawn: icml_pretraining_loss: " in out
    assert (tmp_path / "figs" / "workshop_grid_esm1_t6_43M_UR50S_test_spearman.svg").is_file()
    listed = [line.split(":")[0].strip() for line in out.splitlines() if line.startswith("  ") and ".png:" in line]
    files = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert files == sorted([*listed, *(name.replace(".png", ".svg") for name in listed)])


@pytest.mark.slow
def test_cli_report_out_and_figures_draw_each_figure_once(tmp_path, monkeypatch, capsys):
    drawn = []
    real = figures._save
    monkeypatch.setattr(
        figures, "_save", lambda fig, out_dir, stem, *a: drawn.append(stem) or real(fig, out_dir, stem, *a)
    )
    ledger = write_ledger(tmp_path / "ledger.json", small_records())
    assert main(["report", str(ledger), "--out", str(tmp_path / "out"), "--figures", str(tmp_path / "figs")]) == 0
    assert drawn and len(drawn) == len(set(drawn)), "a figure was drawn twice"
    figs, copied = tmp_path / "figs", tmp_path / "out" / "figures"
    assert sorted(p.name for p in figs.iterdir()) == sorted(p.name for p in copied.iterdir())
    assert len(list(figs.glob("*.png"))) == len(drawn)
    assert all((copied / p.name).read_bytes() == p.read_bytes() for p in figs.iterdir())
