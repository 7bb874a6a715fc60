"""Run a command and write its peak RSS in KiB to a file; exit with its exit code.

``python peak_rss.py OUT_FILE COMMAND...``. Started from pytest, a command's own ``ru_maxrss`` would
count pytest's memory: Linux carries the high-water mark of the process a child was forked from
across ``exec`` (a 300 MB parent made ``python -c pass`` report 311 MiB). This small parent (about
11 MiB) forks the command instead, so the figure is the command's own. SIGTERM and SIGINT are
passed on to the command.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    out, *command = sys.argv[1:]
    proc = subprocess.Popen(command)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _: proc.send_signal(received))
    _, status, usage = os.wait4(proc.pid, 0)
    Path(out).write_text(str(usage.ru_maxrss))
    sys.exit(os.waitstatus_to_exitcode(status) % 256)
