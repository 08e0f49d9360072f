"""The paper's tables and learning curves from run folders (`actormimic-fast report`).

One job per module, each importing only those before it: runs (reading run folders), formats (how numbers are
written), tables (Table 1 and Table 2 as rows, with the paper's definitions), markdown (the tables as Markdown),
figures (the PNG learning curves; imports matplotlib) and write (a report folder: Markdown, CSV and figures).
"""

from .markdown import table1_markdown, table2_markdown
from .runs import Run, load_run, load_runs
from .tables import Table1Row, Table2Row, table1, table2
from .write import write_report

__all__ = ["Run", "Table1Row", "Table2Row", "load_run", "load_runs", "table1", "table1_markdown", "table2",
           "table2_markdown", "write_report"]
