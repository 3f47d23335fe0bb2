"""The verdicts on what adaptation costs besides accuracy: forgetting (:mod:`.forgetting`) and
robustness under shift (:mod:`.robustness`), each sentence from that section's tests alone."""
from __future__ import annotations

from tlbench.report.sections import CLASSIFICATION_ONLY, ReportInput, Section
from tlbench.report.sections.forgetting import forgetting_sentences
from tlbench.report.sections.robustness import robustness_sentences
from tlbench.report.sections.verdicts import sentences_table
from tlbench.report.tables import Table


def retention_table(inp: ReportInput) -> Table | None:
    cap = ("Forgetting: told apart from none by a t test per strategy, Holm across each row's strategies. "
           "Robustness: effective robustness whose 95% interval excludes 0. A strategy not named cannot be "
           "told apart, which is not evidence that it forgets nothing or sits on the trend.")
    return sentences_table("retention_verdicts", "Verdicts: forgetting and robustness", cap,
                           forgetting_sentences(inp) + robustness_sentences(inp))


SECTIONS = [Section("retention_verdicts", "table", retention_table, order=12, missing=lambda inp: None,
                    tasks=CLASSIFICATION_ONLY)]
