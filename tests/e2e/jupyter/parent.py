"""A kernel whose Jupyter process is gone (JPY_PARENT_PID names it) leaves
by itself, with a line on stderr and status 0, within a few seconds."""
import os
import subprocess
import sys
import time

from jupyter_client import BlockingKernelClient
from jupyter_client.connect import write_connection_file

plush, workdir = sys.argv[1], sys.argv[2]
fname, info = write_connection_file(os.path.join(workdir, "parent-kernel.json"))
parent = subprocess.Popen(["sleep", "600"])
log = open(os.path.join(workdir, "parent.log"), "w")
kernel = subprocess.Popen([plush, "kernel", "--connection-file", fname], stderr=log,
                          env=dict(os.environ, JPY_PARENT_PID=str(parent.pid)))
failures = []
try:
    kc = BlockingKernelClient(connection_file=fname)
    kc.load_connection_file()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    kc.stop_channels()
    parent.kill()
    parent.wait()
    try:
        code = kernel.wait(timeout=20)
        if code != 0:
            failures.append("the kernel left with status %d" % code)
    except subprocess.TimeoutExpired:
        failures.append("the kernel outlived its Jupyter process")
finally:
    for p in (parent, kernel):
        if p.poll() is None:
            p.kill()
            p.wait()
    log.close()
text = open(os.path.join(workdir, "parent.log")).read()
want = ("plush kernel: the Jupyter process that started this kernel (pid %d) is gone: leaving\n"
        % parent.pid)
if text != want:
    failures.append("the kernel's stderr: %r" % text)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("a kernel whose Jupyter is gone leaves")
