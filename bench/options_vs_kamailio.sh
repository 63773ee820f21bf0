#!/usr/bin/env bash
# Whole-system side-by-side: the same SIPp OPTIONS load over UDP against voxgate and against
# Kamailio (answering OPTIONS statelessly with sl_send_reply), one after the other, on
# loopback. For each server it reports the requests answered with 200, the failures, and the
# server's CPU time per answered request, read from /proc:
#   - utime+stime of every server process (/proc/PID/stat fields 14 and 15, clock ticks);
#   - on-CPU time of every thread (/proc/PID/task/TID/schedstat, nanoseconds), the precise one;
# and the datagrams the kernel dropped on the server's socket (receive queue full).
# Kamailio runs with children=1 (one UDP worker, comparable to voxgate's one control thread);
# its main, timer and other helper processes are counted too, as are all of voxgate's threads.
#
# Usage: bench/options_vs_kamailio.sh [--short] [--requests N] [--rate R]
#                                     [--only voxgate|kamailio] [--markdown]
#   --short      2,000 requests (a CI-size run; tick-based CPU numbers get coarse there)
#   --requests   requests per server (default 20,000)
#   --rate       requests per second SIPp sends (default 2,000)
#   --only       run one server
#   --markdown   also print the result as a Markdown table (for bench/RESULTS.md)
#
# Needs: sipp and kamailio (installed with apt-get when missing and running as root), and
# target/release/voxgate (built when missing). Exits non-zero when a server cannot be started
# or any request failed.
set -euo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$PWD

requests=20000
rate=2000
only=""
markdown=0
while [ $# -gt 0 ]; do
    case $1 in
        --short) requests=2000 ;;
        --requests) requests=$2; shift ;;
        --rate) rate=$2; shift ;;
        --only) only=$2; shift ;;
        --markdown) markdown=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "options-bench: $*" >&2; }

# ---------------------------------------------------------------------------- prerequisites

missing=()
command -v sipp >/dev/null || missing+=(sip-tester)
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing ${missing[*]}: run as root or apt-get install -y ${missing[*]}"
        exit 2
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
kamailio_bin=$(command -v kamailio || echo /usr/sbin/kamailio)
kam_modules=$(dirname "$(find /usr/lib /usr/local/lib -name sl.so -path '*kamailio*' 2>/dev/null | head -n1)")

# VOXGATE_BIN runs another build (CI runs the short version against the debug build).
voxgate_bin=${VOXGATE_BIN:-$root/target/release/voxgate}
if [ "$only" != kamailio ] && [ ! -x "$voxgate_bin" ]; then
    log "building target/release/voxgate"
    cargo build --release --bin voxgate >&2
fi

tmp=$(mktemp -d)
started=()
cleanup() {
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in "${started[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

# ------------------------------------------------------------------------------- utilities

# free_udp_port, wait_udp_bound, udp_drops, tree, cpu_ticks, cpu_ns, clk_tck
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

# ------------------------------------------------------------------------------ the servers

start_kamailio() {
    local port=$1
    cat > "$tmp/kamailio.cfg" <<EOF
#!KAMAILIO
# Stateless OPTIONS answering: the cheapest thing Kamailio can do with a request.
debug=0
log_stderror=yes
memdbg=5
memlog=5
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
dns=no
rev_dns=no
listen=udp:127.0.0.1:$port
mpath="$kam_modules/"
loadmodule "sl.so"

request_route {
    if (method == "OPTIONS") {
        sl_send_reply("200", "OK");
        exit;
    }
    sl_send_reply("501", "Not Implemented");
}
EOF
    "$kamailio_bin" -c -f "$tmp/kamailio.cfg" > "$tmp/kamailio-check.log" 2>&1 || {
        log "kamailio.cfg rejected:"; cat "$tmp/kamailio-check.log" >&2; return 1
    }
    # -DD: stay in the foreground but fork the workers; -E: log to stderr.
    "$kamailio_bin" -f "$tmp/kamailio.cfg" -DD -E -m 64 -M 8 -w "$tmp" -Y "$tmp" \
        > "$tmp/kamailio.log" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    wait_udp_bound "$port" || { log "kamailio did not bind"; cat "$tmp/kamailio.log" >&2; return 1; }
    sleep 0.5 # let every child finish starting
}

start_voxgate() {
    local port=$1
    cat > "$tmp/voxgate.toml" <<EOF
[sip]
listen = ["udp:127.0.0.1:$port"]
domain = "voxgate.bench"

[admin]
listen = "127.0.0.1:0"

[store]
path = "$tmp/store"

# SIPp is one source at thousands of requests per second: trusted, as a load balancer is.
[security]
allow = ["127.0.0.1/32"]

[log]
level = "warn"
EOF
    "$voxgate_bin" run --config "$tmp/voxgate.toml" > "$tmp/voxgate.log" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    for _ in $(seq 1 100); do
        grep -qx ready "$tmp/voxgate.log" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -qx ready "$tmp/voxgate.log"; then
        log "voxgate did not print 'ready':"; cat "$tmp/voxgate.log" >&2; return 1
    fi
    wait_udp_bound "$port" || { log "voxgate did not bind udp $port"; return 1; }
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------------- the load

# run_sipp NAME PORT CALLS -> prints "answered failed"
run_sipp() {
    local name=$1 port=$2 calls=$3 limit
    limit=$((calls / rate + 30))
    rm -f "$tmp/$name.csv"
    sipp -sf "$root/bench/sipp/options_uac.xml" -t u1 -i 127.0.0.1 \
        -m "$calls" -r "$rate" -nostdin -nd -timeout "$limit" \
        -trace_stat -stf "$tmp/$name.csv" -fd 1 \
        127.0.0.1:"$port" > "$tmp/$name.sipp.log" 2>&1 || true
    # The last line of the statistics CSV holds the cumulative counters.
    awk -F';' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { ok = $(col["SuccessfulCall(C)"]); bad = $(col["FailedCall(C)"]) }
        END { if (ok == "") { ok = 0; bad = -1 } print ok, bad }
    ' "$tmp/$name.csv" 2>/dev/null || echo "0 -1"
}

results=()
status=0

bench_one() {
    local name=$1 port pids t0 t1 ticks0 ticks1 ns0 ns1 answered failed warm drops0 drops1
    port=$(free_udp_port)
    log "$name: starting on udp 127.0.0.1:$port"
    if ! "start_$name" "$port"; then
        results+=("$name|not started|-|-|-|-|-|-")
        status=1
        return
    fi
    # Warm-up, not measured: first-use allocations, page faults, caches.
    warm=$((requests / 10 < 1000 ? requests / 10 : 1000))
    run_sipp "$name-warmup" "$port" "$warm" > /dev/null

    mapfile -t pids < <(tree "$server_pid")
    ticks0=$(cpu_ticks "${pids[@]}")
    ns0=$(cpu_ns "${pids[@]}")
    drops0=$(udp_drops "$port")
    t0=$(date +%s.%N)
    read -r answered failed < <(run_sipp "$name" "$port" "$requests")
    t1=$(date +%s.%N)
    mapfile -t pids < <(tree "$server_pid")
    ticks1=$(cpu_ticks "${pids[@]}")
    ns1=$(cpu_ns "${pids[@]}")
    drops1=$(udp_drops "$port")
    stop_server

    local procs=${#pids[@]}
    if [ "$answered" -le 0 ]; then
        results+=("$name|$answered|$failed|$((drops1 - drops0))|-|-|-|$procs")
        status=1
        log "$name: no request answered; SIPp said:"
        tail -n 20 "$tmp/$name.sipp.log" >&2
        return
    fi
    [ "$failed" -eq 0 ] || status=1
    results+=("$(awk -v n="$name" -v a="$answered" -v f="$failed" -v t0="$t0" -v t1="$t1" \
        -v d="$((drops1 - drops0))" \
        -v k="$((ticks1 - ticks0))" -v hz="$clk_tck" -v ns="$((ns1 - ns0))" -v p="$procs" '
        BEGIN {
            printf "%s|%d|%d|%d|%.0f|%.2f|%.2f|%d", n, a, f, d, a / (t1 - t0),
                k * 1e6 / hz / a, ns / 1e3 / a, p
        }')")
}

servers=(voxgate kamailio)
[ -n "$only" ] && servers=("$only")
for s in "${servers[@]}"; do
    bench_one "$s"
done

# ---------------------------------------------------------------------------------- report

echo
echo "OPTIONS over UDP, $requests requests per server at $rate/s (SIPp $(sipp -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -n1), $(nproc) CPUs)"
printf '%-9s %9s %7s %9s %9s %17s %18s %6s\n' server answered failed "rx drops" "answer/s" \
    "CPU µs/req(tick)" "CPU µs/req(sched)" procs
for r in "${results[@]}"; do
    IFS='|' read -r n a f d ps tk sc p <<< "$r"
    printf '%-9s %9s %7s %9s %9s %17s %18s %6s\n' "$n" "$a" "$f" "$d" "$ps" "$tk" "$sc" "$p"
done
if [ "$markdown" -eq 1 ]; then
    echo
    echo "| server | answered | failed | socket drops | answered/s | CPU µs/request (utime+stime) | CPU µs/request (schedstat) | processes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${results[@]}"; do
        IFS='|' read -r n a f d ps tk sc p <<< "$r"
        echo "| $n | $a | $f | $d | $ps | $tk | $sc | $p |"
    done
fi
exit "$status"
