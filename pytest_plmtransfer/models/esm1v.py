"""ESM-1v (Meier et al. 2021): five models of ESM-1b's architecture trained on UniRef90 with
different seeds, for zero-shot variant effects; fair-esm's ``esm1v_t33_650M_UR90S_1`` .. ``_5``.

Everything but the table is ESM-1b's (:mod:`.esm`). fair-esm downloads their weights from its
model directory (there is no contact-regression file for ESM-1v, and no digest).
"""

from __future__ import annotations

from typing import Any

from pytest_plmtransfer.models.esm import EsmConfig, register_table

URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
ESM1V_CONFIGS = {
    f"esm1v_t33_650M_UR90S_{member}": EsmConfig(
        "ESM-1b", 33, 1280, 20, f"ESM-1v, 33 layers, 650M, UniRef90, {member} of 5"
    )
    for member in range(1, 6)
}


def register(registry: Any) -> None:
    register_table(registry, ESM1V_CONFIGS, URL)
