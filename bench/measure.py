"""bench/measure.py: the timing and the tables of bench/run.sh.

    measure.py row RUNS NAME TOOL PREPARE CODES CMD... [::: TOOL PREPARE CODES CMD...]...
        Times one row: one warm-up round, then RUNS rounds. In each round
        every tool's command runs once, in turns (the order rotates from one
        round to the next, so no tool always runs first or last after
        another's writes), each after its PREPARE (run by bash). The wall
        time is from the spawn of the command to its exit, with no shell,
        as hyperfine -N takes it, and CPU is the user + system time of its
        process tree. Peak RSS is GNU time's %M (the largest process of
        the tree) of the warm-up round, the one run under GNU time: a
        process spawned from Python shares (vfork) or copies (fork) this
        Python's memory until it execs, and the kernel counts that
        memory's peak in the child's ru_maxrss, so wait4 here would say
        15 MB for /bin/true. Leading NAME=value
        words of CMD are its environment, as in a shell. CODES is the
        comma-separated exit statuses that are success. stdout goes to
        /dev/null, stderr to $BENCH_LOGS/TOOL.err, shown when a status is
        not in CODES. Prints one JSON line per tool.

    measure.py table RUNS RESULTS DURABILITY
        Prints the tables of docs/performance.md from the JSON lines.

    measure.py durability TOOL WORKLOAD ROOT FILES PROBE STRACE
        Reads the output of strace -f -y of TOOL's run of WORKLOAD, which
        wrote FILES files under ROOT, and prints one JSON line: how many
        fsync and fdatasync calls of files and directories under ROOT and
        elsewhere (the tool's own state, kplay's /run and /var in ROOT
        included), syncfs, sync and sync_file_range calls, renames onto
        paths under ROOT and elsewhere, and opens with O_SYNC or O_DSYNC;
        with the first strace line of each, and the lines about the file
        PROBE (a path in ROOT), under any temporary name, and the syncs of
        its directory.
"""

import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time


def spawn(cmd, env, out, err):
    """Runs cmd, no shell; returns its exit status, wall time and rusage."""
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, err, 2)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    return os.waitstatus_to_exitcode(status), wall, ru


def row(argv):
    runs, name, rest = int(argv[0]), argv[1], argv[2:]
    entries = []
    while rest:
        cut = rest.index(":::") if ":::" in rest else len(rest)
        tool, prepare, codes, *cmd = rest[:cut]
        env = dict(os.environ)
        while cmd and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", cmd[0]):
            k, v = cmd.pop(0).split("=", 1)
            env[k] = v
        entries.append({"tool": tool, "prepare": prepare, "codes": {int(c) for c in codes.split(",")},
                        "cmd": cmd, "env": env, "wall": [], "rss_kb": [], "cpu": []})
        rest = rest[cut + 1:]
    logs = os.environ.get("BENCH_LOGS", "/tmp")
    print("== %s: %d rounds after a warm-up, %s in turns" % (
        name, runs, ", ".join(e["tool"] for e in entries)), file=sys.stderr)
    for r in range(runs + 1):
        k = r % len(entries)
        for e in entries[k:] + entries[:k]:
            subprocess.run(["bash", "-c", e["prepare"]], check=True)
            errpath = os.path.join(logs, e["tool"] + ".err")
            rsspath = os.path.join(logs, e["tool"] + ".rss")
            cmd = e["cmd"]
            if r == 0:
                # The warm-up gives the peak RSS (see the doc above).
                cmd = ["/usr/bin/time", "-f", "%M", "-o", rsspath] + cmd
            with open(os.devnull, "wb") as out, open(errpath, "wb") as err:
                code, wall, ru = spawn(cmd, e["env"], out.fileno(), err.fileno())
            if code not in e["codes"]:
                sys.stderr.write("bench/run.sh: %s: %s exited %d (want %s): %s\n" % (
                    name, e["tool"], code, ",".join(map(str, sorted(e["codes"]))), shlex.join(e["cmd"])))
                sys.stderr.write(open(errpath, errors="replace").read()[-4000:])
                sys.exit(1)
            if r == 0:
                e["rss_kb"].append(int(open(rsspath).read().split()[-1]))
                continue
            e["wall"].append(wall)
            e["cpu"].append(ru.ru_utime + ru.ru_stime)
    for e in entries:
        print(json.dumps({"row": name, "tool": e["tool"], "wall": e["wall"],
                          "rss_kb": e["rss_kb"], "cpu": e["cpu"]}))
        print("   %-8s median %9.1f ms, CPU %9.1f ms, peak RSS %6.1f MB" % (
            e["tool"], statistics.median(e["wall"]) * 1000, statistics.median(e["cpu"]) * 1000,
            statistics.median(e["rss_kb"]) / 1024), file=sys.stderr)


NAMES = {"kplay": "kplay", "cfengine": "CFEngine", "puppet": "Puppet", "ansible": "Ansible"}


def fmt(seconds):
    if seconds >= 1:
        return "%.2f s" % seconds
    if seconds >= 0.1:
        return "%.0f ms" % (seconds * 1000)
    return "%.1f ms" % (seconds * 1000)


def ratio(r):
    return ("%.0f×" if r >= 10 else "%.1f×") % r


def table(argv):
    runs, path, durable = argv[0], argv[1], argv[2]
    rows, tools = {}, []
    for line in open(path):
        r = json.loads(line)
        rows.setdefault(r["row"], {})[r["tool"]] = r
        if r["tool"] not in tools:
            tools.append(r["tool"])
    tools.sort(key=list(NAMES).index)
    others = [t for t in tools if t != "kplay"]
    med = lambda r, k: statistics.median(r[k])

    print()
    head = ["workload (medians of %s, in turns)" % runs] + [NAMES[t] for t in tools]
    if "kplay" in tools:
        head += ["%s / kplay" % NAMES[t] for t in others]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    for name, by in rows.items():
        cells = [name] + [fmt(med(by[t], "wall")) if t in by else "" for t in tools]
        if "kplay" in tools:
            k = med(by["kplay"], "wall") if "kplay" in by else None
            cells += [ratio(med(by[t], "wall") / k) if k and t in by else "" for t in others]
        print("| " + " | ".join(cells) + " |")

    print()
    head = ["peak RSS (median CPU time)"] + [NAMES[t] for t in tools]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    for name, by in rows.items():
        cells = [name] + ["%.1f MB (%s)" % (med(by[t], "rss_kb") / 1024, fmt(med(by[t], "cpu")))
                          if t in by else "" for t in tools]
        print("| " + " | ".join(cells) + " |")

    traced = [json.loads(line) for line in open(durable)]
    if not traced:
        return
    print()
    print("| what each tool makes durable (strace of one run on a fresh root) | files written | "
          "fsync of a file | fsync of a directory | fdatasync | syncfs, sync, sync_file_range | "
          "O_SYNC opens | renames into place | fsync, fdatasync of its own state |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in traced:
        c = d["counts"]
        print("| %s, %s | %d | %d | %d | %d | %d | %d | %d | %d |" % (
            NAMES[d["tool"]], d["workload"], d["files"], c["fsync_file"], c["fsync_dir"],
            c["fdatasync_file"] + c["fdatasync_dir"], c["syncfs"] + c["sync"] + c["sync_file_range"],
            c["open_sync"], c["rename_into_root"],
            c["fsync_elsewhere"] + c["fdatasync_elsewhere"]))
    for d in traced:
        print()
        print("%s, %s: the first strace line of each kind, then the lines about %s and the syncs of its directory:" % (
            NAMES[d["tool"]], d["workload"], d["probe"]))
        print()
        for key, line in sorted(d["examples"].items()):
            print("    %s: %s" % (key, line))
        for line in d["sequence"]:
            print("    " + line)


def joined(path):
    """The lines of an strace -f log, each call on one line: strace cuts a
    call that another thread's call interrupts into "NAME(args
    <unfinished ...>" and, later, "<... NAME resumed>rest", which kplay's
    fsyncs, issued together from several threads, often are."""
    unfinished = re.compile(r"^(\d+) +(.*) <unfinished \.\.\.>$")
    resumed = re.compile(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$")
    pending = {}
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = unfinished.match(line)
        if m:
            pending[m.group(1)] = m.group(2)
            continue
        m = resumed.match(line)
        if m and m.group(1) in pending:
            line = m.group(1) + " " + pending.pop(m.group(1)) + m.group(2)
        yield line


def durability(argv):
    tool, workload, root, files, probe, path = (
        argv[0], argv[1], os.path.realpath(argv[2]), int(argv[3]), argv[4], argv[5])
    probe = os.path.join(root, probe.lstrip("/"))
    probe_name, probe_dir = os.path.basename(probe), os.path.dirname(probe) + ">"
    own = (root + "/run", root + "/var")

    def inside(p):
        return (p == root or p.startswith(root + "/")) and not any(
            p == o or p.startswith(o + "/") for o in own)

    counts = {k: 0 for k in ("fsync_file", "fsync_dir", "fsync_elsewhere", "fdatasync_file",
                             "fdatasync_dir", "fdatasync_elsewhere", "syncfs", "sync",
                             "sync_file_range", "rename_into_root", "rename_elsewhere",
                             "open_sync")}
    examples, sequence, seen, synced = {}, [], set(), []
    call = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(\w+)\((.*)\) += (-?\d+)")
    dirfd = re.compile(r"^(?:\d+|AT_FDCWD)<(.*)>$")
    for line in joined(path):
        m = call.match(line)
        if not m or m.group(3).startswith("-"):
            continue
        fn, args = m.group(1), m.group(2)
        seen.update(re.findall(r"<([^<>]*)>", line))
        key = None
        if fn in ("fsync", "fdatasync"):
            f = dirfd.match(args.split(", ")[0])
            target = f.group(1) if f else ""
            if inside(target):
                synced.append((fn, target))  # file or directory: known at the end
                key = fn + "_in_root"
            else:
                key = fn + "_elsewhere"
        elif fn in ("syncfs", "sync", "sync_file_range"):
            key = fn
        elif fn in ("rename", "renameat", "renameat2"):
            # The new name: rename's second argument, renameat's third and
            # fourth (with -y a directory fd prints as N</path>).
            new = args.split(", ")
            target = new[1].strip('"') if fn == "rename" else new[3].strip('"')
            if fn != "rename" and not target.startswith("/"):
                d = dirfd.match(new[2])
                target = (d.group(1) if d else "") + "/" + target
            key = "rename_into_root" if inside(target) else "rename_elsewhere"
        elif fn in ("open", "openat") and re.search(r"O_D?SYNC", args):
            key = "open_sync"
        if key:
            counts[key] = counts.get(key, 0) + 1
            examples.setdefault(key, line.strip())
        # The probe under any temporary name, and the syncs of its directory.
        if len(sequence) < 12 and (probe_name in args or fn in ("syncfs", "sync") or (
                fn in ("fsync", "fdatasync") and probe_dir in args)):
            sequence.append(line.strip())
    # A directory is one that is still there, or the parent of a path seen
    # (a temporary directory renamed into place is gone by now).
    parents = {os.path.dirname(p) for p in seen}
    for fn, target in synced:
        counts[fn + ("_dir" if target in parents or os.path.isdir(target) else "_file")] += 1
    print(json.dumps({"tool": tool, "workload": workload, "files": files, "counts": counts,
                      "examples": examples, "probe": probe, "sequence": sequence}))


if __name__ == "__main__":
    {"row": row, "table": table, "durability": durability}[sys.argv[1]](sys.argv[2:])
