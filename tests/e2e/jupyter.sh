# The Jupyter kernel (share/doc/jupyter.md): `plush kernel install` into a
# temporary prefix, then Debian's python3 with Jupyter's own packages:
#   kernel_tests.py  jupyter_kernel_test's KernelTests (execute, stdout,
#                    stderr, errors, completion, inspection, is_complete,
#                    history) on an embedded cluster, and exact checks of our own
#   notebook.py      nbclient runs a notebook on a running profile's cluster:
#                    %px, a farm with a progress bar, a remote error,
#                    interrupted loops (remote and local)
#   badkey.py        wrong-key, unsigned and malformed messages are dropped
#                    and never run; the embedded cluster stops with the kernel
#   parent.py        a kernel whose Jupyter process is killed leaves by itself
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
PY=/usr/bin/python3
$PY -c 'import jupyter_kernel_test, nbclient, jupyter_client' 2>/dev/null ||
  { echo "SKIP: python3-jupyter-kernel-test / python3-nbclient not installed"; exit 77; }
"$PLUSH" -e 'require "plush.zmq"' 2>/dev/null ||
  { echo "SKIP: plush built without libzmq (libzmq3-dev)"; exit 77; }
P="e2e-jupyter-$$"
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

out=$("$PLUSH" kernel install --prefix "$tmp/k")
[ "$out" = "installed the kernelspec plush in $tmp/k/share/jupyter/kernels/plush" ] ||
  fail "install said: $out"
"$PLUSH" kernel install --prefix "$tmp/k" --name plush-p --profile "$P" >/dev/null
spec=$(cat "$tmp/k/share/jupyter/kernels/plush-p/kernel.json")
expected='{"argv":["'$PLUSH'","kernel","--profile","'$P'","--connection-file","{connection_file}"],"display_name":"plush (plush-p)","interrupt_mode":"signal","language":"lua","metadata":{"debugger":false}}'
[ "$(printf '%s' "$spec" | $PY -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True, separators=(",", ":")))')" = "$expected" ] ||
  fail "kernel.json: $spec"
"$PLUSH" kernel install --prefix "$tmp/k" --user 2>/dev/null && fail "--user with --prefix accepted"
export JUPYTER_PATH=$tmp/k/share/jupyter JUPYTER_RUNTIME_DIR=$tmp/rt
specs=$($PY -c 'from jupyter_client.kernelspec import KernelSpecManager as M
print(" ".join(sorted(M().find_kernel_specs())))')
case " $specs " in *" plush plush-p "*) ;; *) fail "jupyter_client finds the kernelspecs: $specs" ;; esac

cd "$here/jupyter"
$PY -m unittest -q kernel_tests 2>"$tmp/unittest.log" || { cat "$tmp/unittest.log"; fail "kernel_tests"; }
$PY badkey.py "$tmp/kernel.log" "$tmp/marker" || fail "badkey"
$PY parent.py "$PLUSH" "$tmp" || fail "parent"
start_cluster "$P" 2
$PY notebook.py plush-p || fail "notebook"
echo "4 passed, 0 failed"
