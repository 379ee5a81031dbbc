"""``fitwatch report``: findings after the fact, from any run's TensorBoard event files.

Reads the event files (TensorBoard's own reader), gives each scalar series a role
(:mod:`~fitwatch.report.roles`: the HF Trainer's and Lightning's usual names, fitwatch's own tags, or
``--map``), rebuilds the records the detectors read and replays them through the real
:class:`~fitwatch.monitor.Monitor` (:mod:`~fitwatch.report.replay`), merges what the callbacks raised live
(``findings.jsonl``), and shows the result as tables, JSON or one HTML page.

.. code-block:: python

    from fitwatch.report import build_report, report_document

    report = build_report(["runs/"])
    report.fails("warning")            # what `fitwatch report runs/ --fail-on warning` exits non-zero on
    report_document(report)            # what `--json` prints
"""

from fitwatch.report.build import Report, ReportedFinding, RunReport, build_report
from fitwatch.report.compare import RunDiff, diff_runs
from fitwatch.report.events import ReportInputError
from fitwatch.report.render import report_document
from fitwatch.report.roles import ROLES, RoleMapping, parse_mapping

__all__ = [
    "ROLES",
    "Report",
    "ReportInputError",
    "ReportedFinding",
    "RoleMapping",
    "RunDiff",
    "RunReport",
    "build_report",
    "diff_runs",
    "parse_mapping",
    "report_document",
]
