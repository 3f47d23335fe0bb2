"""The verdicts on what adaptation costs besides accuracy: forgetting (:mod:`.forgetting`) and
robustness under shift (:mod:`.robustness`), each sentence from that section's tests alone."""
from __future__ import annotations

import pandas as pd

from tlbench.report.sections import ReportInput, Section
from tlbench.report.sections.forgetting import forgetting_sentences
from tlbench.report.sections.robustness import robustness_sentences
from tlbench.report.tables import Cell, Table


def retention_sentences(inp: ReportInput) -> list[str]:
    return forgetting_sentences(inp) + robustness_sentences(inp)


def retention_table(inp: ReportInput) -> Table | None:
    found = retention_sentences(inp)
    if not found:
        return None
    cap = ("Forgetting: told apart from none by a t test per strategy, Holm across each row's strategies. "
           "Robustness: effective robustness whose 95% interval excludes 0. A strategy not named cannot be "
           "told apart, which is not evidence that it forgets nothing or sits on the trend.")
    return Table("retention_verdicts", "Verdicts: forgetting and robustness", cap, ["Verdict"],
                 [[Cell(s)] for s in found], pd.DataFrame({"verdict": found}), numeric_from=99)


SECTIONS = [Section("retention_verdicts", "table", retention_table, order=12, missing=lambda inp: None)]
