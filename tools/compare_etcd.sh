#!/usr/bin/env bash
# tools/compare_etcd.sh - raft-kv beside etcd on this machine, back to back: for 3 and then 5
# members, etcd's rows (the scripts in ../shared/bench, Debian's etcd-server; 1, 8, 32 and 64
# clients of 100-byte puts) and right after them ours (`raft_bench --matrix-writes N`), so
# the two are measured a minute apart; then etcd's failover on 5 members and the whole
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
for members in 3 5; do
    echo "== etcd, $members members"
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
    bash "$SHARED/etcd_cluster.sh" stop >/dev/null 2>&1
    bash "$SHARED/etcd_cluster.sh" clean >/dev/null 2>&1
    echo "== raft-kv, $members nodes: tools/raft_bench --matrix-writes $members"
    quiet
    tools/raft_bench --matrix-writes "$members" --out "$RESULTS/raft-writes-$members.md" \
        > /dev/null 2> "$RESULTS/raft-writes-$members.err" ||
        echo "raft_bench --matrix-writes reported a failure (see $RESULTS/raft-writes-$members.err)"
    grep -E '^  [0-9] nodes' "$RESULTS/raft-writes-$members.err"
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

# Side by side: etcd's puts beside our write rows measured right after them, and beside the
# same rows of the whole matrix, run minutes later (how much the machine drifted).
python3 - "$RESULTS" <<'EOF'
import json, re, statistics, sys
d = sys.argv[1]
etcd = {}
for line in open(d + "/etcd.jsonl"):
    r = json.loads(line)
    etcd[(int(r["label"].split("-")[1]), r["clients"])] = r
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
ours = write_rows([d + "/raft-writes-3.md", d + "/raft-writes-5.md"])
later = write_rows([d + "/raft.md"])
def ratio(o, e):
    return "%.1fx" % (o["ops"] / e["ops_per_s"]) if e and o and e["ops_per_s"] else "-"
print("\n| nodes | clients | etcd puts/s | etcd p50 ms | etcd p99 ms | raft-kv writes/s "
      "| raft-kv p50 ms | raft-kv p99 ms | throughput ratio | matrix writes/s (later) "
      "| ratio (later) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(set(etcd) | set(ours) | set(later)):
    e, o, l = etcd.get(key), ours.get(key), later.get(key)
    ecol = "%.0f | %.2f | %.2f" % (e["ops_per_s"], e["p50_ms"], e["p99_ms"]) if e else "- | - | -"
    ocol = "%.0f | %.3f | %.3f" % (o["ops"], o["p50"], o["p99"]) if o else "- | - | -"
    lcol = "%.0f" % l["ops"] if l else "-"
    print("| %d | %d | %s | %s | %s | %s | %s |" % (key[0], key[1], ecol, ocol, ratio(o, e),
                                                   lcol, ratio(l, e)))
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
