"""The one text-table renderer: every plain-text table the plugin and the ``plmtransfer`` CLI print.

Layer tables, claim outcomes, baseline and paper comparisons, ledger comparisons and timings all
go through :func:`text_table`, so a table looks the same whichever of them prints it, and the
CLI's ``report`` prints, byte for byte, what the plugin's ``--plm-report`` prints for one ledger.

Columns are separated by two spaces; a rule of dashes under the header; trailing blanks are
stripped from every line (they are invisible on a terminal and only make diffs noisy).
"""

from __future__ import annotations

from collections.abc import Sequence

SEPARATOR = "  "


def text_table(
    header: Sequence[str], body: Sequence[Sequence[str]], align: str = "", *, rule: bool = True, free_last: bool = False
) -> list[str]:
    """The lines of a table.

    ``align``: one letter per column, ``l`` (left, for names) or ``r`` (right, for numbers);
    columns beyond it are left-aligned. ``free_last``: the last column is neither padded nor
    counted in the widths (a free-text message column: one long message must not widen the rule).
    ``rule``: a line of dashes under the header.
    """
    n = len(header)
    measured = n - 1 if free_last else n
    widths = [max([len(header[i]), *(len(row[i]) for row in body)]) for i in range(measured)]
    if free_last:
        widths.append(len(header[-1]))
    right = [i < len(align) and align[i] == "r" for i in range(n)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell if free_last and i == n - 1 else (cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i]))
            for i, cell in enumerate(cells)
        ]
        return SEPARATOR.join(padded).rstrip()

    lines = [line(header)]
    if rule:
        lines.append(SEPARATOR.join("-" * w for w in widths))
    lines.extend(line(row) for row in body)
    return lines
