#!/usr/bin/env bash
# run_servers.sh - start, stop or query the local raft-kv cluster of logs/server_registry.txt
# (five servers on localhost by default), in tmux panes or in the background.
#
#   ./run_servers.sh [start] [--no-tmux]   build if needed, start every server of the registry
#   ./run_servers.sh stop                  stop them (SIGTERM, then SIGKILL what is left)
#   ./run_servers.sh status                ask each server for its status line
#   ./run_servers.sh add NAME PORT         start NAME on localhost:PORT with --join (in a new
#                                          tmux pane when the cluster runs in tmux) and add it
#   ./run_servers.sh remove NAME           remove NAME from the cluster, then stop it
#
# The first server of the registry starts with True (it campaigns at once), the others
# with False. With tmux (and no --no-tmux) they run in the tmux session "raftkv", one pane
# each plus a client pane; otherwise in the background, output in logs/NAME.out.
# RK_DIR=DIR uses another directory than logs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

LOG_DIR=${RK_DIR:-logs}
REGISTRY=$LOG_DIR/server_registry.txt
SESSION=raftkv
SERVER_BIN=./server/raft_server
CLIENT_BIN=./client/raft_client
STOP_WAIT_TENTHS=50 # 5 s for SIGTERM before SIGKILL

NAMES=()
HOSTS=()
PORTS=()

usage() {
    echo "usage: $0 [start] [--no-tmux] | stop | status | add NAME PORT | remove NAME" >&2
    exit 2
}

die() {
    echo "run_servers.sh: $*" >&2
    exit 1
}

have_tmux() {
    command -v tmux >/dev/null 2>&1
}

tmux_session_exists() {
    have_tmux && tmux has-session -t "=$SESSION" 2>/dev/null
}

build() {
    echo "building (make -s) ..."
    make -s || die "the build failed"
    [[ -x $SERVER_BIN && -x $CLIENT_BIN ]] || die "make did not produce $SERVER_BIN and $CLIENT_BIN"
}

# Writes the default five-server registry when there is none.
ensure_registry() {
    mkdir -p "$LOG_DIR"
    [[ -e $REGISTRY ]] && return 0
    {
        echo "# name host port"
        local port
        for port in 2000 3000 4000 5000 6000; do
            echo "server$((port / 1000)) localhost $port"
        done
    } >"$REGISTRY"
    echo "created $REGISTRY"
}

# Fills NAMES/HOSTS/PORTS from the registry (blank lines and # comments skipped).
load_registry() {
    [[ -r $REGISTRY ]] || die "$REGISTRY is missing (./run_servers.sh start creates it)"
    local name host port rest lineno=0
    while read -r name host port rest || [[ -n ${name:-} ]]; do
        lineno=$((lineno + 1))
        [[ -z ${name:-} || $name == \#* ]] && continue
        if [[ -z ${port:-} || -n ${rest:-} || ! $port =~ ^[0-9]+$ ]]; then
            die "$REGISTRY:$lineno: expected 'name host port'"
        fi
        NAMES+=("$name")
        HOSTS+=("$host")
        PORTS+=("$port")
    done <"$REGISTRY"
    ((${#NAMES[@]} > 0)) || die "$REGISTRY lists no server"
}

pid_file() {
    echo "$LOG_DIR/$1.pid"
}

# True if pid is alive and is a raft_server (a recycled pid is left alone).
is_our_server() {
    local pid=$1
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        grep -qa raft_server "/proc/$pid/cmdline" 2>/dev/null
}

# Prints the pids of the servers that still run (from the pid files).
running_pids() {
    local f pid
    for f in "$LOG_DIR"/*.pid; do
        [[ -e $f ]] || continue
        pid=$(<"$f")
        if is_our_server "$pid"; then
            echo "$pid"
        fi
    done
}

# The start flag of registry entry i: the first server campaigns at once.
campaign_flag() {
    if (($1 == 0)); then echo True; else echo False; fi
}

# The server command line for registry entry i, quoted for a shell (tmux panes).
server_cmd() {
    local i=$1
    printf '%q ' "$SERVER_BIN" "${NAMES[i]}" "${HOSTS[i]}" "${PORTS[i]}" "$(campaign_flag "$i")" \
        --dir "$LOG_DIR"
}

start_tmux() {
    local i pane pid cmd
    for i in "${!NAMES[@]}"; do
        cmd="exec $(server_cmd "$i")"
        if ((i == 0)); then
            pane=$(tmux new-session -d -s "$SESSION" -x 200 -y 50 -c "$PWD" -P -F '#{pane_id}' \
                "$cmd" \; set-option -t "$SESSION" remain-on-exit on)
        else
            pane=$(tmux split-window -t "$SESSION" -c "$PWD" -P -F '#{pane_id}' "$cmd")
            tmux select-layout -t "$SESSION" tiled >/dev/null
        fi
        pid=$(tmux display-message -p -t "$pane" '#{pane_pid}')
        echo "$pid" >"$(pid_file "${NAMES[i]}")"
        tmux select-pane -t "$pane" -T "${NAMES[i]}"
    done
    # a pane that prints every change as it is committed (raft_client watch, issue 17)
    pane=$(tmux split-window -t "$SESSION" -c "$PWD" -P -F '#{pane_id}' \
        "exec $(printf '%q ' "$CLIENT_BIN" --dir "$LOG_DIR" -q watch '')")
    tmux select-pane -t "$pane" -T watch
    pane=$(tmux split-window -t "$SESSION" -c "$PWD" -P -F '#{pane_id}' \
        "exec $(printf '%q ' "$CLIENT_BIN" --dir "$LOG_DIR")")
    tmux select-pane -t "$pane" -T client
    tmux select-layout -t "$SESSION" tiled >/dev/null
    echo "started ${#NAMES[@]} servers in tmux session '$SESSION' (a pane watches every change;" \
        "the last pane: the client)"
    if [[ -t 0 && -t 1 ]]; then
        if [[ -n ${TMUX:-} ]]; then
            tmux switch-client -t "$SESSION"
        else
            tmux attach-session -t "$SESSION"
        fi
    else
        echo "attach with: tmux attach -t $SESSION    stop with: ./run_servers.sh stop"
    fi
}

start_background() {
    local i out failed=0
    for i in "${!NAMES[@]}"; do
        out=$LOG_DIR/${NAMES[i]}.out
        nohup "$SERVER_BIN" "${NAMES[i]}" "${HOSTS[i]}" "${PORTS[i]}" "$(campaign_flag "$i")" \
            --dir "$LOG_DIR" </dev/null >"$out" 2>&1 &
        echo $! >"$(pid_file "${NAMES[i]}")"
        echo "started ${NAMES[i]} (${HOSTS[i]}:${PORTS[i]}) pid $!, output in $out"
    done
    sleep 0.5
    for i in "${!NAMES[@]}"; do
        if ! is_our_server "$(<"$(pid_file "${NAMES[i]}")")"; then
            echo "${NAMES[i]} exited at once; the end of ${LOG_DIR}/${NAMES[i]}.out:" >&2
            tail -n 5 "$LOG_DIR/${NAMES[i]}.out" >&2 || true
            failed=1
        fi
    done
    cat <<EOF
use the client (it reads $REGISTRY and finds the leader):
  $CLIENT_BIN --dir $LOG_DIR                 interactive prompt
  $CLIENT_BIN --dir $LOG_DIR set KEY VALUE   one command
  ./run_servers.sh status | stop
EOF
    return "$failed"
}

cmd_start() {
    local use_tmux=$1
    build
    ensure_registry
    load_registry
    if tmux_session_exists || [[ -n $(running_pids) ]]; then
        die "the cluster is already running (./run_servers.sh stop first)"
    fi
    if ((use_tmux)) && have_tmux; then
        start_tmux
    else
        ((use_tmux)) && echo "tmux not found: starting in the background"
        start_background
    fi
}

cmd_stop() {
    local -a pids=()
    local pid tries=0
    mapfile -t pids < <(running_pids)
    if tmux_session_exists; then
        mapfile -t -O "${#pids[@]}" pids < <(tmux list-panes -s -t "$SESSION" -F '#{pane_pid}')
    fi
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    while ((tries < STOP_WAIT_TENTHS)) && [[ -n $(running_pids) ]]; do
        sleep 0.1
        tries=$((tries + 1))
    done
    for pid in $(running_pids); do
        echo "pid $pid did not stop: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    done
    if tmux_session_exists; then
        tmux kill-session -t "=$SESSION"
    fi
    rm -f "$LOG_DIR"/*.pid
    echo "stopped"
}

# The members as the cluster knows them (raft_client members), into NAMES/HOSTS/PORTS;
# false if no leader answered (then the registry's servers are asked).
load_members() {
    local out name host port role
    out=$("$CLIENT_BIN" --dir "$LOG_DIR" --timeout 2 -q members 2>/dev/null) || return 1
    NAMES=() HOSTS=() PORTS=()
    while read -r name host port role; do
        [[ $name == \(* || -z $name ]] && continue
        NAMES+=("$name")
        HOSTS+=("$host")
        PORTS+=("$port")
    done <<<"$out"
    ((${#NAMES[@]} > 0))
}

# Starts NAME with --join on localhost:PORT (a tmux pane if the cluster runs in tmux),
# then adds it (raft_client add waits until it votes); a server that could not be added
# is stopped again.
cmd_add() {
    local name=$1 port=$2 pane pid out
    [[ $name =~ ^[A-Za-z0-9._-]+$ && $port =~ ^[0-9]+$ ]] || usage
    [[ -x $SERVER_BIN && -x $CLIENT_BIN ]] || build
    local cmd=("$SERVER_BIN" "$name" localhost "$port" False --join --dir "$LOG_DIR")
    if tmux_session_exists; then
        pane=$(tmux split-window -t "$SESSION" -c "$PWD" -P -F '#{pane_id}' \
            "exec $(printf '%q ' "${cmd[@]}")")
        tmux select-layout -t "$SESSION" tiled >/dev/null
        tmux select-pane -t "$pane" -T "$name"
        pid=$(tmux display-message -p -t "$pane" '#{pane_pid}')
    else
        out=$LOG_DIR/$name.out
        nohup "${cmd[@]}" </dev/null >"$out" 2>&1 &
        pid=$!
    fi
    echo "$pid" >"$(pid_file "$name")"
    sleep 0.3
    if "$CLIENT_BIN" --dir "$LOG_DIR" -q add "$name" localhost "$port"; then
        echo "$name (localhost:$port) is a voter"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    rm -f "$(pid_file "$name")"
    return 1
}

# Removes NAME (raft_client remove), then stops it.
cmd_remove() {
    local name=$1 pid tries=0
    [[ -x $CLIENT_BIN ]] || build
    "$CLIENT_BIN" --dir "$LOG_DIR" -q remove "$name" || return 1
    [[ -e $(pid_file "$name") ]] || return 0
    pid=$(<"$(pid_file "$name")")
    if is_our_server "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        while ((tries < STOP_WAIT_TENTHS)) && is_our_server "$pid"; do
            sleep 0.1
            tries=$((tries + 1))
        done
    fi
    rm -f "$(pid_file "$name")"
    echo "$name removed and stopped"
}

# One line per server: its status line, or "not reachable" (the client fails over to
# other servers, so a line from another server means this one did not answer). The
# servers are the members the cluster names, or the registry's if none answers.
cmd_status() {
    [[ -x $CLIENT_BIN ]] || build
    load_members || load_registry
    local i line answered=0
    for i in "${!NAMES[@]}"; do
        line=$("$CLIENT_BIN" "${HOSTS[i]}" "${PORTS[i]}" --dir "$LOG_DIR" --timeout 1 -q \
            status 2>/dev/null) || true
        if [[ $line == "name=${NAMES[i]} "* ]]; then
            answered=$((answered + 1))
        else
            line="not reachable"
        fi
        printf '%-10s %s:%s  %s\n' "${NAMES[i]}" "${HOSTS[i]}" "${PORTS[i]}" "$line"
    done
    ((answered > 0))
}

main() {
    local action=start use_tmux=1 arg
    case ${1:-} in
    add)
        (($# == 3)) || usage
        cmd_add "$2" "$3"
        return
        ;;
    remove)
        (($# == 2)) || usage
        cmd_remove "$2"
        return
        ;;
    esac
    for arg in "$@"; do
        case $arg in
        start | stop | status) action=$arg ;;
        --no-tmux) use_tmux=0 ;;
        -h | --help)
            sed -n '2,15p' "$0"
            exit 0
            ;;
        *) usage ;;
        esac
    done
    case $action in
    start) cmd_start "$use_tmux" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    esac
}

main "$@"
