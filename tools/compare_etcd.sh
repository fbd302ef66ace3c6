#!/usr/bin/env bash
# tools/compare_etcd.sh - raft-kv beside etcd on this machine, back to back: for 3 and then 5
# members, etcd's rows (the scripts in ../shared/bench, Debian's etcd-server; 1, 8, 32 and 64
# clients of 100-byte puts) measured twice, by kvload.py (a thread per client) and by
# raft_bench's event loop (`--etcd`), and right after them ours with the same two kinds of
# generator (`raft_bench --matrix-writes N --engine threads|loop`), so the compared numbers
# are a minute or two apart; then etcd's failover on 5 members and the whole
# `raft_bench --matrix`. Prints both side by side as Markdown. etcd is a comparison only,
# never a dependency of raft-kv.
#
# Usage (from the repo root, after `make all tools/raft_bench`):
#   tools/compare_etcd.sh [--no-failover] [--etcd-trials N]
# Env: SHARED_BENCH (default ../shared/bench), RESULTS (default /tmp/rk_compare: raw output),
#      RK_SERVER_BIN (default ./server/raft_server), QUIET_MAX_WAIT (s to wait for an idle
#      machine before each phase, default 120).
set -u

SHARED=${SHARED_BENCH:-../shared/bench}
RESULTS=${RESULTS:-/tmp/rk_compare}
CLIENTS="1 8 32 64"
ETCD_FAILOVER=1
ETCD_TRIALS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --no-failover) ETCD_FAILOVER=0 ;;
        --etcd-trials) shift; ETCD_TRIALS=${1:?--etcd-trials needs a number} ;;
        *) sed -n '2,11p' "$0"; exit 2 ;;
    esac
    shift
done

die() { echo "compare_etcd.sh: $*" >&2; exit 1; }
# Waits (bounded) for an idle machine before each phase; says what it saw either way.
# sync first: the previous phase's dirty pages (etcd writes a lot) would otherwise be
# written back during the next phase and slow its fsyncs, which the CPU gate cannot see.
quiet() {
    sync; sleep 2
    python3 "$SHARED/quiet.py" --threshold 15 --max-wait "${QUIET_MAX_WAIT:-120}" | sed 's/^/  gate: /'
}
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
    die "etcd is not installed: apt-get install -y etcd-server etcd-client"
[ -x "$SHARED/etcd_cluster.sh" ] || [ -f "$SHARED/etcd_cluster.sh" ] ||
    die "no $SHARED/etcd_cluster.sh (set SHARED_BENCH)"
[ -x tools/raft_bench ] || die "build tools/raft_bench first (make bench builds it)"

mkdir -p "$RESULTS"
: > "$RESULTS/etcd.jsonl"
ETCD_BASE=${BASE:-/tmp/etcdbench}
trap 'bash "$SHARED/etcd_cluster.sh" stop >/dev/null 2>&1' EXIT

etcd_ops() {  # about 4-6 s per run at the rates the README lists
    case "$1" in 1) echo 2000 ;; 8) echo 6000 ;; 32) echo 10000 ;; *) echo 12000 ;; esac
}

echo "== machine: $(nproc) cores, $(uptime)" | tee "$RESULTS/machine.txt"
# Our write rows on N nodes with one engine: threads (a thread per client, like kvload.py)
# or loop (one epoll thread for every client, as for etcd below).
raft_rows() {  # members engine
    echo "== raft-kv, $1 nodes: tools/raft_bench --matrix-writes $1 --engine $2"
    quiet
    tools/raft_bench --matrix-writes "$1" --engine "$2" --out "$RESULTS/raft-$2-$1.md" \
        > /dev/null 2> "$RESULTS/raft-$2-$1.err" ||
        echo "raft_bench --matrix-writes reported a failure (see $RESULTS/raft-$2-$1.err)"
    grep -E '^  [0-9] nodes' "$RESULTS/raft-$2-$1.err"
}
for members in 3 5; do
    echo "== etcd, $members members: kvload.py (a thread per client)"
    quiet
    bash "$SHARED/etcd_cluster.sh" clean >/dev/null 2>&1
    bash "$SHARED/etcd_cluster.sh" start "$members" || die "etcd did not start"
    leader=$(bash "$SHARED/etcd_cluster.sh" leader) || die "no etcd leader"
    for c in $CLIENTS; do
        python3 "$SHARED/kvload.py" --backend etcd --http-client raw --endpoints "$leader" \
            --clients "$c" --ops "$(etcd_ops "$c")" --value-size 100 --max-seconds 20 \
            --server-pidfile "$ETCD_BASE/pids" --label "etcd-$members" \
            > "$RESULTS/etcd-$members-$c.txt" 2>&1
        grep '^RESULT ' "$RESULTS/etcd-$members-$c.txt" | sed 's/^RESULT //' >> "$RESULTS/etcd.jsonl"
        grep -E '^(ok=|latency|other)' "$RESULTS/etcd-$members-$c.txt" | sed "s/^/  $c clients: /"
    done
    echo "== etcd, $members members: raft_bench --etcd (one epoll thread for every client)"
    for c in $CLIENTS; do
        tools/raft_bench --etcd "$leader" --engine loop --clients "$c" --ops "$(etcd_ops "$c")" \
            --max-seconds 20 --server-pidfile "$ETCD_BASE/pids" \
            > "$RESULTS/etcdloop-$members-$c.txt" 2>&1
        grep -E '^etcd ' "$RESULTS/etcdloop-$members-$c.txt" | sed "s/^/  $c clients: /"
    done
    bash "$SHARED/etcd_cluster.sh" stop >/dev/null 2>&1
    bash "$SHARED/etcd_cluster.sh" clean >/dev/null 2>&1
    raft_rows "$members" threads
    raft_rows "$members" loop
done

if [ "$ETCD_FAILOVER" = 1 ]; then
    echo "== etcd failover, 5 members, $ETCD_TRIALS kills"
    python3 "$SHARED/failover.py" --members 5 --trials "$ETCD_TRIALS" --quiet-max-wait 30 \
        > "$RESULTS/etcd-failover.txt" 2>&1
    grep -E '^(recovery|trial .* failed)' "$RESULTS/etcd-failover.txt"
    bash "$SHARED/etcd_cluster.sh" clean >/dev/null 2>&1
fi

echo "== raft-kv: tools/raft_bench --matrix"
quiet
tools/raft_bench --matrix --out "$RESULTS/raft.md" > /dev/null 2> "$RESULTS/raft.err" ||
    echo "raft_bench --matrix reported a failure (see $RESULTS/raft.err)"

# Side by side: etcd's puts beside our write rows measured right after them, with each
# generator (and the same rows of the whole matrix, run minutes later: the drift).
python3 - "$RESULTS" <<'EOF'
import json, re, statistics, sys
d = sys.argv[1]
etcd = {}
for line in open(d + "/etcd.jsonl"):
    r = json.loads(line)
    etcd[(int(r["label"].split("-")[1]), r["clients"])] = {
        "ops": r["ops_per_s"], "p50": r["p50_ms"], "p99": r["p99_ms"]}
etcd_loop = {}
for m in (3, 5):
    for c in (1, 8, 32, 64):
        try:
            text = open("%s/etcdloop-%d-%d.txt" % (d, m, c)).read()
        except OSError:
            continue
        x = re.search(r"^etcd +(\d+) ops/s +p50 ([\d.]+) +p90 [\d.]+ +p99 ([\d.]+)", text, re.M)
        if x:
            etcd_loop[(m, c)] = {"ops": float(x.group(1)), "p50": float(x.group(2)),
                                 "p99": float(x.group(3))}
def write_rows(paths):
    rows = {}
    for path in paths:
        try:
            lines = open(path).readlines()
        except OSError:
            continue
        for line in lines:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 10 and cells[0].isdigit() and cells[2] == "0%" and cells[4]:
                rows[(int(cells[0]), int(cells[1]))] = {
                    "ops": float(cells[4]), "p50": float(cells[5]), "p99": float(cells[7])}
    return rows
threads = write_rows([d + "/raft-threads-3.md", d + "/raft-threads-5.md"])
loop = write_rows([d + "/raft-loop-3.md", d + "/raft-loop-5.md"])
later = write_rows([d + "/raft.md"])
def ratio(o, e):
    return "%.1fx" % (o["ops"] / e["ops"]) if e and o and e["ops"] else "-"
def cols(x, digits):
    if not x:
        return "- | - | -"
    return ("%.0f | %." + str(digits) + "f | %." + str(digits) + "f") % (x["ops"], x["p50"], x["p99"])
def table(title, e_rows, o_rows, extra=None):
    print("\n" + title + "\n")
    head = ("| nodes | clients | etcd puts/s | etcd p50 ms | etcd p99 ms | raft-kv writes/s "
            "| raft-kv p50 ms | raft-kv p99 ms | ratio |")
    sep = "|---|---|---|---|---|---|---|---|---|"
    if extra:
        head += " matrix writes/s (later) | ratio (later) |"
        sep += "---|---|"
    print(head)
    print(sep)
    for key in sorted(set(e_rows) | set(o_rows)):
        e, o = e_rows.get(key), o_rows.get(key)
        line = "| %d | %d | %s | %s | %s |" % (key[0], key[1], cols(e, 2), cols(o, 3), ratio(o, e))
        if extra:
            l = extra.get(key)
            line += " %s | %s |" % ("%.0f" % l["ops"] if l else "-", ratio(l, e))
        print(line)
table("A thread per client (etcd: kvload.py; raft-kv: raft_bench --engine threads):",
      etcd, threads, later)
table("One generator for both (raft_bench --engine loop; etcd through raft_bench --etcd):",
      etcd_loop, loop)
try:
    fo = [json.loads(l[7:]) for l in open(d + "/etcd-failover.txt") if l.startswith("RESULT ")]
    rec = sorted(o["recovery_ms"] for o in fo if o["recovery_ms"] is not None)
    if rec:
        print("\netcd failover (5 members, %d kills): median %.0f ms, max %.0f ms"
              % (len(rec), statistics.median(rec), rec[-1]))
except OSError:
    pass
for line in open(d + "/raft.md"):
    if line.startswith("| prober") or line.startswith("| client session"):
        print("raft-kv failover:", line.strip())
EOF
