"""A notebook executed with nbclient on the kernelspec given (a running
profile's cluster of 2 engines): %px with output tagged by engine, a farm
with a progress bar, remote errors, interrupted loops (remote and local)
after which the engines keep their namespaces. Outputs checked exactly."""
import re
import sys

import nbformat
from nbclient import NotebookClient

kernel = sys.argv[1]
cells = [
    "%px return engine.id * 10",                                    # 0
    "%px print('hi from', engine.id)",                              # 1
    "lb = rc:balanced()\n"
    "d = lb:with{block = false, chunksize = 1}:map(function(x) return x * x end,"
    " {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})\n"
    "d:wait_interactive()",                                         # 2
    "r = d:get()\n#r, r[20]",                                       # 3
    "%pn 0 error('remote boom')",                                   # 4
    "%px kept = engine.id + 100",                                   # 5
    "%px while true do end",                                        # 6 interrupted
    "%px return kept",                                              # 7
    "n = 0\nwhile true do n = n + 1 end",                           # 8 interrupted
    "n > 0",                                                        # 9
]
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "lua"}

client = NotebookClient(nb, kernel_name=kernel, allow_errors=True, interrupt_on_timeout=True,
                        timeout_func=lambda cell: 4 if "while true" in cell.source else 60,
                        startup_timeout=60)
client.execute()

failures = []


def check(i, ok, what):
    if not ok:
        failures.append("cell %d: %s\n  outputs: %r" % (i, what, nb.cells[i].outputs))


def stream(i, name="stdout"):
    return "".join(o.text for o in nb.cells[i].outputs
                   if o.output_type == "stream" and o.name == name)


def only(i, kind):
    return [o for o in nb.cells[i].outputs if o.output_type == kind]


check(0, sorted(stream(0).splitlines()) == ["[engine 0] 0", "[engine 1] 10"], "%px results")
check(1, sorted(stream(1).splitlines()) == ["[engine 0] hi from\t0", "[engine 1] hi from\t1"],
      "%px output")
bars = only(2, "display_data")
check(2, len(bars) == 1 and re.fullmatch(r"\[#{30}\] 20/20  \d+\.\d/s  ETA 0s",
                                         bars[0].data["text/plain"]) is not None,
      "the progress bar's final state")
check(3, [o.data["text/plain"] for o in only(3, "execute_result")] == ["20\t400"], "map results")
errs = only(4, "error")
check(4, len(errs) == 1 and errs[0].ename == "RemoteError"
      and errs[0].evalue == "RemoteError on engine 0: execute:1: remote boom"
      and "stack traceback:" in errs[0].traceback, "remote error")
errs = only(6, "error")
check(6, len(errs) == 1 and errs[0].ename == "Interrupted"
      and errs[0].traceback == ["interrupted: engines 0, 1"], "interrupted %px")
check(7, sorted(stream(7).splitlines()) == ["[engine 0] 100", "[engine 1] 101"],
      "namespaces kept after the interrupt")
errs = only(8, "error")
check(8, len(errs) == 1 and errs[0].ename == "Interrupted"
      and errs[0].evalue == "interrupted"
      and re.fullmatch(r"\tIn\[\d+\]:2: in main chunk", errs[0].traceback[-1]) is not None,
      "interrupted local loop")
check(9, [o.data["text/plain"] for o in only(9, "execute_result")] == ["true"], "after it")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("notebook: %d cells, outputs as expected" % len(cells))
