"""Every paper figure from a synthetic ledger shaped like the authors' full grid.

    PYTHONPATH=. python examples/paper-figures/synthetic_grid.py OUT_DIR

writes ``OUT_DIR/ledger.json`` (``pytest_plmtransfer.testing.paper_grid_records``: the nine
encoders, GB1/AAV/Meltome/SCL/SS3, pretrained/random/stat over three seeds, every layer, CARP
checkpoints at 12.5/25/50/100% with step and MLM loss, bootstrap-style intervals; no number in it
is a measurement) and then runs what a user runs on a real ledger:

    plmtransfer report OUT_DIR/ledger.json --figures OUT_DIR/figures

About a minute and a half on two CPU cores (16k records, 32 figures).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_plmtransfer.report.cli import main
from pytest_plmtransfer.testing import paper_grid_records, write_ledger

if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "paper-figures")
    ledger = write_ledger(out / "ledger.json", paper_grid_records())
    sys.exit(main(["report", str(ledger), "--figures", str(out / "figures")]))
