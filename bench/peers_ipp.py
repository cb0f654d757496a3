"""The plush benchmark workloads on ipyparallel (the peer plush rebuilds).

Run by bench/run.lua: /usr/bin/python3 bench/peers_ipp.py --phase N --counts ...
(see peers_common.py for the protocol). One cluster of N engines per run,
started with ipyparallel.Cluster (its defaults: local launchers, the
profile under $IPYTHONDIR, which the driver points at a temporary folder).
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


def power10(x):
    return x ** 10.0  # Lua's x ^ 10 is a float power


def main():
    args = pc.parse_args()
    pc.on_term()
    import ipyparallel as ipp

    pc.emit(kind="info", system="ipyparallel", version=ipp.__version__,
            python=sys.version.split()[0])
    n = args.phase
    r = pc.Runner(args.counts)
    cluster = rc = None
    pids = []
    try:
        t0 = pc.now()
        cluster = ipp.Cluster(n=n, log_level=logging.ERROR)
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(n, timeout=900)
        start = pc.now() - t0
        pc.emit(kind="samples", w=f"start_{n}", v=[start])

        ctl = cluster.controller.pid
        engine_pids = [la.pid for es in cluster.engines.values()
                       for la in es.launchers.values()]
        pids = [ctl] + engine_pids + pc.descendants(ctl)
        for p in engine_pids:
            pids += pc.descendants(p)

        # idle, right after start: the engines have run nothing yet
        r.run("rss_engine", lambda k: [x for x in map(pc.rss, engine_pids[:k]) if x])
        # the controller is a hub process and the scheduler processes it
        # forks: their PSS summed (a sum of RSS would count the pages they
        # share several times)
        r.run(f"rss_controller_{n}",
              lambda k: [sum(pc.pss(p) or 0 for p in [ctl] + pc.descendants(ctl))])

        e0 = rc[0]
        e0.block = True
        dv = rc[:]
        dv.block = True

        r.run("exec_rt", lambda k: pc.timed(k, lambda: e0.execute("a=1"), warm=10))
        r.run("apply_rt", lambda k: pc.timed(k, lambda: e0.apply_sync(noop), warm=10))
        r.run("bcast_exec_8", lambda k: pc.timed(k, lambda: dv.execute("a=1"), warm=5))

        def lb_noop(k):
            lv = rc.load_balanced_view()
            for ar in [lv.apply_async(noop) for _ in range(20)]:
                ar.get()
            out = []
            for _ in range(max(1, args.counts.get("lb_noop_batches", 1))):
                t = pc.now()
                ars = [lv.apply_async(noop) for _ in range(k)]
                for ar in ars:
                    ar.get()
                out.append(k / (pc.now() - t))
            return out
        r.run("lb_noop", lb_noop)

        for tag, size in pc.SIZES.items():
            if not (r.wants("push_" + tag) or r.wants("pull_" + tag)):
                continue
            data = b"x" * size

            def push(k, data=data, size=size):
                return [size / t for t in pc.timed(k, lambda: e0.push({"x": data}))]

            def pull(k, size=size):
                e0.push({"x": data})
                out = []
                for _ in range(k):
                    t = pc.now()
                    v = e0.pull("x")
                    out.append(size / (pc.now() - t))
                    assert len(v) == size
                    del v
                return out
            r.run_warm("push_" + tag, push, "push_first_" + tag)
            r.run_warm("pull_" + tag, pull, "pull_first_" + tag)
            del data
            e0.execute("x = None")

        seq = list(range(1, pc.NUMBERS + 1))
        r.run("push_table", lambda k: pc.timed(k, lambda: e0.push({"t": seq})))

        def pull_table(k):
            e0.push({"t": seq})

            def op():
                assert len(e0.pull("t")) == pc.NUMBERS
            return pc.timed(k, op)
        r.run("pull_table", pull_table)

        def scatter_gather(k):
            def op():
                dv.scatter("part", seq)
                assert len(dv.gather("part")) == pc.NUMBERS
            return pc.timed(k, op)
        r.run("scatter_gather", scatter_gather)

        def pmap(k):
            def op():
                assert len(dv.map_sync(power10, seq)) == pc.NUMBERS
            return pc.timed(k, op)
        r.run("map", pmap)
    finally:
        # everything this script started, before stopping loses track of it
        pids = list(set(pids + pc.descendants(os.getpid())))
        if rc is not None:
            try:
                rc.close()
            except Exception:  # noqa: BLE001
                pass
        if cluster is not None:
            try:
                cluster.stop_cluster_sync()
            except Exception as e:  # noqa: BLE001
                pc.log("stop_cluster failed:", e)
        left = pc.end_processes(pids)
        if left:
            pc.log("had to kill leftover ipyparallel processes:", left)
            pc.emit(kind="killed", pids=left)
    pc.emit(kind="done")


if __name__ == "__main__":
    main()
