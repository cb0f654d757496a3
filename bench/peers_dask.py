"""The plush benchmark workloads on Dask distributed.

Run by bench/run.lua: /usr/bin/python3 bench/peers_dask.py --phase N --counts ...
(see peers_common.py for the protocol). One LocalCluster(n_workers=N,
threads_per_worker=1, processes=True) per run.

Nearest equivalents: Dask has no code strings, so no `execute`; "apply" is
client.submit(f, workers=[w0]).result(); broadcast is client.run(f); push is
client.scatter(value, workers=[w0], hash=False) and pull is
future.result(); scatter+gather scatters the contiguous parts (one per
worker) and gathers them back; map submits one x ** 10.0 chunk per worker
(client.map over the parts) and gathers. The scheduler of a LocalCluster runs
inside this process, so it has no RSS of its own to report.
"""
import logging
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers_common as pc  # noqa: E402

warnings.filterwarnings("ignore")


def noop():
    return None


def chunk_power10(c):
    return [x ** 10.0 for x in c]  # Lua's x ^ 10 is a float power


def main():
    args = pc.parse_args()
    pc.on_term()
    import distributed
    from distributed import Client, LocalCluster, wait

    pc.emit(kind="info", system="dask", version=distributed.__version__,
            python=sys.version.split()[0])
    n = args.phase
    r = pc.Runner(args.counts)
    cluster = client = None
    pids = []
    try:
        t0 = pc.now()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        client.wait_for_workers(n, timeout=900)
        start = pc.now() - t0
        pc.emit(kind="samples", w=f"start_{n}", v=[start])

        worker_pids = client.run(os.getpid)  # address -> pid
        pids = list(worker_pids.values())
        for p in list(pids):
            pids += pc.descendants(p)
        workers = sorted(worker_pids)
        w0 = [workers[0]]

        r.run("rss_engine", lambda k: [x for x in map(pc.rss, list(worker_pids.values())[:k]) if x])

        r.run("apply_rt", lambda k: pc.timed(
            k, lambda: client.submit(noop, pure=False, workers=w0).result(), warm=10))
        r.run("bcast_exec_8", lambda k: pc.timed(k, lambda: client.run(noop), warm=5))

        def lb_noop(k):
            wait([client.submit(noop, pure=False) for _ in range(20)])
            out = []
            for _ in range(max(1, args.counts.get("lb_noop_batches", 1))):
                t = pc.now()
                futs = [client.submit(noop, pure=False) for _ in range(k)]
                wait(futs)
                out.append(k / (pc.now() - t))
                assert all(f.status == "finished" for f in futs)
                del futs
            return out
        r.run("lb_noop", lb_noop)

        def push_pull(value, size, k, pull):
            out = []
            fut = None
            if pull:
                fut = client.scatter(value, workers=w0, hash=False)
            for _ in range(k):
                t = pc.now()
                if pull:
                    v = fut.result()
                    dt = pc.now() - t
                    assert len(v) == len(value)
                    del v
                else:
                    f = client.scatter(value, workers=w0, hash=False)
                    dt = pc.now() - t
                    f.release()
                out.append(size / dt if size else dt)
            if fut is not None:
                fut.release()
            return out

        for tag, size in pc.SIZES.items():
            if not (r.wants("push_" + tag) or r.wants("pull_" + tag)):
                continue
            data = b"x" * size
            r.run_warm("push_" + tag, lambda k: push_pull(data, size, k, False),
                       "push_first_" + tag)
            r.run_warm("pull_" + tag, lambda k: push_pull(data, size, k, True),
                       "pull_first_" + tag)
            del data

        seq = list(range(1, pc.NUMBERS + 1))

        # scatter([x]) sends x as one value (scatter(x) would send each item)
        def push_table(k):
            out = []
            for _ in range(k):
                t = pc.now()
                f = client.scatter([seq], workers=w0, hash=False)[0]
                out.append(pc.now() - t)
                f.release()
            return out
        r.run("push_table", push_table)

        def pull_table(k):
            f = client.scatter([seq], workers=w0, hash=False)[0]

            def op():
                assert len(f.result()) == pc.NUMBERS
            out = pc.timed(k, op)
            f.release()
            return out
        r.run("pull_table", pull_table)

        def scatter_gather(k):
            def op():
                futs = client.scatter(pc.split(seq, n), hash=False)
                parts = client.gather(futs)
                assert sum(len(p) for p in parts) == pc.NUMBERS
                for f in futs:
                    f.release()
            return pc.timed(k, op)
        r.run("scatter_gather", scatter_gather)

        def pmap(k):
            def op():
                futs = client.map(chunk_power10, pc.split(seq, n), pure=False)
                res = [y for part in client.gather(futs) for y in part]
                assert len(res) == pc.NUMBERS
            return pc.timed(k, op)
        r.run("map", pmap)
    finally:
        # everything this script started, before stopping loses track of it
        pids = list(set(pids + pc.descendants(os.getpid())))
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
        if cluster is not None:
            try:
                cluster.close()
            except Exception as e:  # noqa: BLE001
                pc.log("cluster.close failed:", e)
        left = pc.end_processes(pids)
        if left:
            pc.log("had to kill leftover dask processes:", left)
            pc.emit(kind="killed", pids=left)
    pc.emit(kind="done")


if __name__ == "__main__":
    main()
