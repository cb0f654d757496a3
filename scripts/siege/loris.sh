#!/bin/bash
# scripts/siege/loris.sh PORT N: opens N TCP connections to 127.0.0.1:PORT
# that never send a byte (slowloris), prints "opened", holds them until
# killed. share/doc/performance.md, "Under siege".
port=$1 n=$2
for _ in $(seq 1 "$n"); do exec {fd}<>"/dev/tcp/127.0.0.1/$port" || break; done
echo opened
exec sleep 600
