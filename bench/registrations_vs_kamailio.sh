#!/usr/bin/env bash
# Whole-system side-by-side: the same SIPp load of authenticated registrations over UDP
# (REGISTER -> 401 -> REGISTER with Digest credentials -> 200, one distinct extension per
# registration from an injection CSV) against voxgate and against Kamailio's registrar, one
# server after the other, on loopback. For each server it reports the registrations completed
# with 200, the failures, SIPp's retransmissions, the datagrams the kernel dropped on the
# server's socket, the contacts the server holds afterwards, the response times (SIPp's
# -trace_rtt: REGISTER -> 401 p99, REGISTER with credentials -> 200 p50 and p99, in SIPp's
# millisecond resolution), and the server's CPU time per completed registration, read from
# /proc:
#   - utime+stime of every server process (/proc/PID/stat fields 14 and 15, clock ticks);
#   - on-CPU time of every thread (/proc/PID/task/TID/schedstat, nanoseconds), the precise one.
#
# Servers (all on one UDP socket, one SIP worker):
#   voxgate           target/release/voxgate, store in a directory under /tmp (a disk:
#                     every 200 waits for the binding's fsync, one per loop iteration)
#   voxgate-shm       the same with the store on /dev/shm (tmpfs: the fsync costs nothing),
#                     to show the store's share
#   kamailio-htable   Kamailio, children=1, usrloc in memory (db_mode=0), registrar, auth with
#                     pv_www_authenticate against plaintext passwords in an htable (a hash
#                     table loaded from a db_text file at start)
#   kamailio-dbtext   the same with auth_db's www_authorize against a db_text subscriber table
#                     (calculate_ha1=1: plaintext passwords, as voxgate's config holds them)
# Both sides challenge with MD5 and qop=auth, check the nonce count against replays, accept
# only the extension's own AOR (auth user = To user) and answer a wrong password with 403.
# Before measuring, each server gets one registration with a wrong password, which must fail
# (the run aborts otherwise), then a warm-up with other extensions that is not measured.
#
# Usage: bench/registrations_vs_kamailio.sh [--short] [--users N] [--rate R]
#                                           [--only SERVER[,SERVER...]] [--markdown]
#   --short      500 registrations per server (a CI-size run; tick-based CPU gets coarse)
#   --users      registrations (= distinct extensions) per server (default 5,000)
#   --rate       registrations per second SIPp starts (default 1,000; two requests each)
#   --only       run only these servers (comma-separated names from the list above)
#   --markdown   also print the result as a Markdown table (for bench/RESULTS.md)
#   --keep       keep the temporary directory (configs, logs, SIPp statistics)
#
# Needs: sipp and kamailio (installed with apt-get when missing and running as root), curl,
# and target/release/voxgate (built when missing). Exits non-zero when a server cannot be
# started, accepts a wrong password, or any registration failed.
set -euo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$PWD

users=5000
rate=1000
only=""
markdown=0
keep=0
while [ $# -gt 0 ]; do
    case $1 in
        --short) users=500 ;;
        --users) users=$2; shift ;;
        --rate) rate=$2; shift ;;
        --only) only=$2; shift ;;
        --markdown) markdown=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "register-bench: $*" >&2; }

# ---------------------------------------------------------------------------- prerequisites

missing=()
command -v sipp >/dev/null || missing+=(sip-tester)
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || missing+=(kamailio)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing ${missing[*]}: run as root or apt-get install -y ${missing[*]}"
        exit 2
    fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2
fi
kamailio_bin=$(command -v kamailio || echo /usr/sbin/kamailio)
kamcmd_bin=$(command -v kamcmd || echo /usr/sbin/kamcmd)
kam_modules=$(dirname "$(find /usr/lib /usr/local/lib -name registrar.so -path '*kamailio*' 2>/dev/null | head -n1)")

# VOXGATE_BIN runs another build (CI runs the short version against the debug build).
voxgate_bin=${VOXGATE_BIN:-$root/target/release/voxgate}
if [ ! -x "$voxgate_bin" ]; then
    log "building target/release/voxgate"
    cargo build --release --bin voxgate >&2
fi

tmp=$(mktemp -d)
shm=""
started=()
cleanup() {
    for pid in "${started[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    sleep 0.2
    for pid in "${started[@]}"; do
        kill -9 "$pid" 2>/dev/null || true
    done
    [ -n "$shm" ] && rm -rf "$shm"
    if [ "$keep" -eq 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
# A signal (timeout, Ctrl-C) exits through the EXIT trap too, so no server is left running.
trap 'exit 130' INT TERM

domain=bench.test
# Warm-up registrations: other extensions than the measured ones, so every measured
# registration creates a new binding on both servers.
warm=$((users / 10 < 500 ? users / 10 : 500))
[ "$warm" -ge 1 ] || warm=1

# ------------------------------------------------------------------------------- utilities

# free_udp_port, wait_udp_bound, udp_drops, tree, cpu_ticks, cpu_ns, clk_tck
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"

# ------------------------------------------------------------------------------- the users

# Extensions: measured ones from 200000, warm-up ones from 300000, one wrong-password probe
# (the first warm-up extension with a password that is not its own). Passwords are 20
# characters and differ from the number (voxgate's SEC-09 rule).
password_of() { echo "Bench-$1-secret!"; }
{
    echo SEQUENTIAL
    for i in $(seq 0 $((users - 1))); do n=$((200000 + i)); echo "$n;$(password_of "$n")"; done
} > "$tmp/users.csv"
{
    echo SEQUENTIAL
    for i in $(seq 1 "$warm"); do n=$((300000 + i)); echo "$n;$(password_of "$n")"; done
} > "$tmp/warmup.csv"
printf 'SEQUENTIAL\n300000;%s\n' "$(password_of 300000)-wrong" > "$tmp/wrong.csv"
all_numbers() {
    seq 200000 $((200000 + users - 1))
    seq 300000 $((300000 + warm))
}

# ------------------------------------------------------------------------------ the servers

kamailio_common() {
    local port=$1
    cat <<EOF
#!KAMAILIO
# Registrar with digest authentication, contacts in memory: the usual Kamailio edge
# registrar minus NAT handling. One UDP worker (children=1).
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

loadmodule "ctl.so"
loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "db_text.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

modparam("ctl", "binrpc", "unix:$tmp/kamailio_ctl")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_expires", 3600)
modparam("registrar", "max_contacts", 10)
# Stateless nonces like voxgate's (timestamp + MAC), 5 minutes, with nonce-count replay
# protection (voxgate checks nc too).
modparam("auth", "secret", "bench-secret-0123456789abcdef")
modparam("auth", "nonce_expire", 300)
modparam("auth", "qop", "auth")
modparam("auth", "nonce_count", 1)
EOF
}

kamailio_route() {
    # $1: the authentication call, which returns the auth_db/pv codes (-2 wrong password,
    # -3 unknown user, -4 stale nonce, -5 no credentials, -6 nonce reused).
    cat <<EOF

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (!is_method("REGISTER")) {
        sl_send_reply("501", "Not Implemented");
        exit;
    }
    # No credentials yet: challenge (before the password lookup, which needs \$au).
    if (\$au == \$null) {
        auth_challenge("\$td", "1");
        exit;
    }
    if (!$1) {
        if (\$rc == -2 || \$rc == -3) {
            sl_send_reply("403", "Forbidden");
            exit;
        }
        auth_challenge("\$td", "1");
        exit;
    }
    # The authenticated user registers its own extension only.
    if (\$au != \$tU) {
        sl_send_reply("403", "Credentials Do Not Match The AOR");
        exit;
    }
    consume_credentials();
    if (!save("location")) {
        sl_reply_error();
    }
}
EOF
}

write_kamailio_db() {
    mkdir -p "$tmp/kamdb"
    printf 'id(int,auto) table_name(string) table_version(int) \n0:version:1\n0:subscriber:7\n0:htable:2\n' \
        > "$tmp/kamdb/version"
    {
        echo 'id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null) '
        local i=1 n
        for n in $(all_numbers); do
            echo "$i:$n:$domain:$(password_of "$n")::"
            i=$((i + 1))
        done
    } > "$tmp/kamdb/subscriber"
    {
        echo 'id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int) '
        local i=1 n
        for n in $(all_numbers); do
            echo "$i:$n:0:0:$(password_of "$n"):0"
            i=$((i + 1))
        done
    } > "$tmp/kamdb/htable"
}

start_kamailio() {
    local port=$1 variant=$2
    write_kamailio_db
    {
        kamailio_common "$port"
        case $variant in
            htable)
                cat <<EOF
loadmodule "htable.so"
modparam("htable", "db_url", "text://$tmp/kamdb")
modparam("htable", "htable", "users=>size=16;dbtable=htable;")
EOF
                kamailio_route 'pv_www_authenticate("$td", "$sht(users=>$au)", "0")'
                ;;
            dbtext)
                cat <<EOF
loadmodule "auth_db.so"
modparam("auth_db", "db_url", "text://$tmp/kamdb")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "use_domain", 0)
EOF
                kamailio_route 'www_authorize("$td", "subscriber")'
                ;;
        esac
    } > "$tmp/kamailio.cfg"
    "$kamailio_bin" -c -f "$tmp/kamailio.cfg" > "$tmp/kamailio-check.log" 2>&1 || {
        log "kamailio.cfg rejected:"; cat "$tmp/kamailio-check.log" >&2; return 1
    }
    # -DD: stay in the foreground but fork the workers; -E: log to stderr. 256 MiB of shared
    # memory holds the contacts of the largest runs.
    "$kamailio_bin" -f "$tmp/kamailio.cfg" -DD -E -m 256 -M 16 -w "$tmp" -Y "$tmp" \
        > "$tmp/kamailio-$variant.log" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    wait_udp_bound "$port" || { log "kamailio did not bind"; cat "$tmp/kamailio-$variant.log" >&2; return 1; }
    sleep 0.5 # let every child finish starting
}
start_kamailio-htable() { start_kamailio "$1" htable; }
start_kamailio-dbtext() { start_kamailio "$1" dbtext; }

# Contacts Kamailio holds (usrloc's statistic, over the ctl socket; `ul.dump` fails above a
# few thousand records).
contacts_kamailio() {
    local n
    n=$("$kamcmd_bin" -s "unix:$tmp/kamailio_ctl" stats.get_statistics usrloc: \
        2>/dev/null | awk '$1 == "usrloc:location_contacts" { print $3 + 0 }') || n="?"
    echo "${n:-?}"
}
contacts_kamailio-htable() { contacts_kamailio; }
contacts_kamailio-dbtext() { contacts_kamailio; }

start_voxgate_in() {
    local port=$1 store=$2 name=$3
    {
        cat <<EOF
[sip]
listen = ["udp:127.0.0.1:$port"]
domain = "$domain"

[admin]
listen = "127.0.0.1:0"

[store]
path = "$store"

# SIPp is one source at thousands of requests per second: trusted, as a load balancer is
# (otherwise the flood ban of SEC-13 stops it within two seconds).
[security]
allow = ["127.0.0.1/32"]

[log]
level = "warn"
EOF
        local n
        for n in $(all_numbers); do
            printf '\n[[extension]]\nnumber = "%s"\npassword = "%s"\n' "$n" "$(password_of "$n")"
        done
    } > "$tmp/voxgate.toml"
    "$voxgate_bin" run --config "$tmp/voxgate.toml" > "$tmp/$name.log" 2>&1 &
    server_pid=$!
    started+=("$server_pid")
    for _ in $(seq 1 200); do
        grep -qx ready "$tmp/$name.log" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -qx ready "$tmp/$name.log"; then
        log "voxgate did not print 'ready':"; cat "$tmp/$name.log" >&2; return 1
    fi
    admin_addr=$(awk '$1 == "listening" && $2 == "admin" { print $3 }' "$tmp/$name.log")
    wait_udp_bound "$port" || { log "voxgate did not bind udp $port"; return 1; }
}
start_voxgate() { start_voxgate_in "$1" "$tmp/store" voxgate; }
start_voxgate-shm() {
    shm=$(mktemp -d /dev/shm/voxgate-bench.XXXXXX)
    start_voxgate_in "$1" "$shm/store" voxgate-shm
}

# Contacts voxgate holds (its gauge on /metrics; the driver publishes it once per loop).
contacts_voxgate() {
    sleep 0.5
    local n
    n=$(curl -fsS "http://$admin_addr/metrics" 2>/dev/null |
        awk '$1 == "voxgate_registrations_active" { print $2 + 0 }') || n="?"
    echo "${n:-?}"
}
contacts_voxgate-shm() { contacts_voxgate; }

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

# run_sipp NAME PORT CSV CALLS RATE -> prints "completed failed retransmissions"
run_sipp() {
    local name=$1 port=$2 csv=$3 calls=$4 r=$5 limit
    limit=$((calls / r + 30))
    rm -f "$tmp/$name.csv"
    # SIPp writes its response-time file into the working directory.
    mkdir -p "$tmp/$name.rtt.d"
    (cd "$tmp/$name.rtt.d" &&
        sipp -sf "$root/bench/sipp/register_auth.xml" -inf "$csv" -key domain "$domain" -auth_uri "$domain" \
            -t u1 -i 127.0.0.1 -m "$calls" -r "$r" -nostdin -nd -timeout "$limit" \
            -trace_stat -stf "$tmp/$name.csv" -fd 1 -trace_rtt -rtt_freq 1 \
            127.0.0.1:"$port" > "$tmp/$name.sipp.log" 2>&1) || true
    # The last line of the statistics CSV holds the cumulative counters.
    awk -F';' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { ok = $(col["SuccessfulCall(C)"]); bad = $(col["FailedCall(C)"]); re = $(col["Retransmissions(C)"]) }
        END { if (ok == "") { ok = 0; bad = -1; re = 0 } print ok, bad, re }
    ' "$tmp/$name.csv" 2>/dev/null || echo "0 -1 0"
}

# percentile NAME RTD P -> the P-th percentile (0-100) of response time RTD in ms, or "-"
percentile() {
    local f
    f=$(ls "$tmp/$1.rtt.d"/*_rtt.csv 2>/dev/null | head -n1)
    [ -n "$f" ] || { echo "-"; return; }
    awk -F';' -v k="$2" 'NR > 1 && $3 == k { print $2 }' "$f" | sort -n |
        awk -v p="$3" '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit }
            i = int(NR * p / 100); if (i < 1) i = 1; if (i > NR) i = NR; print v[i] }'
}

# One registration with a wrong password: it must fail, answered 403.
check_wrong_password() {
    local name=$1 port=$2 ok bad
    rm -f "$tmp"/register_auth_*_messages.log
    sipp -sf "$root/bench/sipp/register_auth.xml" -inf "$tmp/wrong.csv" -key domain "$domain" -auth_uri "$domain" \
        -t u1 -i 127.0.0.1 -m 1 -r 10 -nr -nostdin -nd -timeout 10 \
        -trace_stat -stf "$tmp/$name-wrong.csv" -fd 1 -trace_msg \
        -message_file "$tmp/$name-wrong.messages" \
        127.0.0.1:"$port" > "$tmp/$name-wrong.sipp.log" 2>&1 || true
    read -r ok bad < <(awk -F';' '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        { ok = $(col["SuccessfulCall(C)"]); bad = $(col["FailedCall(C)"]) }
        END { print ok + 0, bad + 0 }' "$tmp/$name-wrong.csv" 2>/dev/null || echo "0 0")
    if [ "$ok" -ne 0 ] || [ "$bad" -ne 1 ] ||
        ! grep -q '^SIP/2.0 403' "$tmp/$name-wrong.messages"; then
        log "$name: a wrong password was not refused with 403 (completed $ok, failed $bad); aborting"
        grep '^SIP/2.0' "$tmp/$name-wrong.messages" >&2 || true
        return 1
    fi
    log "$name: wrong password refused with 403"
}

results=()
status=0

bench_one() {
    local name=$1 port pids t0 t1 ticks0 ticks1 ns0 ns1 done failed retrans ok bad drops0 drops1 contacts lat
    port=$(free_udp_port)
    log "$name: starting on udp 127.0.0.1:$port"
    if ! "start_$name" "$port"; then
        results+=("$name|not started|-|-|-|-|-|-|-|-|-")
        status=1
        return
    fi
    # The server must really check passwords: a wrong one may not register, and the
    # answer to the credentials must be 403 (not a lost or garbled request).
    if ! check_wrong_password "$name" "$port"; then
        stop_server
        exit 1
    fi
    # Warm-up, not measured: first-use allocations, page faults, caches.
    read -r ok bad _ < <(run_sipp "$name-warmup" "$port" "$tmp/warmup.csv" "$warm" "$rate")
    [ "$bad" -eq 0 ] || log "$name: warm-up: $bad of $warm failed"

    mapfile -t pids < <(tree "$server_pid")
    ticks0=$(cpu_ticks "${pids[@]}")
    ns0=$(cpu_ns "${pids[@]}")
    drops0=$(udp_drops "$port")
    t0=$(date +%s.%N)
    read -r done failed retrans < <(run_sipp "$name" "$port" "$tmp/users.csv" "$users" "$rate")
    t1=$(date +%s.%N)
    mapfile -t pids < <(tree "$server_pid")
    ticks1=$(cpu_ticks "${pids[@]}")
    ns1=$(cpu_ns "${pids[@]}")
    drops1=$(udp_drops "$port")
    contacts=$("contacts_$name")
    stop_server

    local procs=${#pids[@]}
    if [ "$done" -le 0 ]; then
        results+=("$name|$done|$failed|$retrans|$((drops1 - drops0))|$contacts|-|-|-|$procs|-")
        status=1
        log "$name: no registration completed; SIPp said:"
        tail -n 20 "$tmp/$name.sipp.log" >&2
        return
    fi
    [ "$failed" -eq 0 ] || status=1
    lat="$(percentile "$name" 1 99)/$(percentile "$name" 2 50)/$(percentile "$name" 2 99)"
    results+=("$(awk -v n="$name" -v a="$done" -v f="$failed" -v re="$retrans" -v t0="$t0" \
        -v t1="$t1" -v d="$((drops1 - drops0))" -v c="$contacts" \
        -v k="$((ticks1 - ticks0))" -v hz="$clk_tck" -v ns="$((ns1 - ns0))" -v p="$procs" '
        BEGIN {
            printf "%s|%d|%d|%d|%d|%s|%.0f|%.1f|%.1f|%d", n, a, f, re, d, c, a / (t1 - t0),
                k * 1e6 / hz / a, ns / 1e3 / a, p
        }')|$lat")
}

servers=(voxgate voxgate-shm kamailio-htable kamailio-dbtext)
[ -n "$only" ] && IFS=',' read -r -a servers <<< "$only"
for s in "${servers[@]}"; do
    declare -F "start_$s" >/dev/null || { log "unknown server $s"; exit 2; }
done
for s in "${servers[@]}"; do
    bench_one "$s"
done

# ---------------------------------------------------------------------------------- report

echo
echo "Authenticated REGISTER over UDP (401 + 200), $users extensions per server at $rate/s" \
    "(SIPp $(sipp -v 2>&1 | grep -o 'v[0-9][0-9.]*' | head -n1), $(nproc) CPUs;" \
    "contacts = held afterwards incl. $((warm + 0)) warm-up)"
printf '%-16s %9s %7s %8s %9s %9s %7s %16s %17s %6s %s\n' server completed failed retrans \
    "rx drops" contacts "reg/s" "CPU µs/reg(tick)" "CPU µs/reg(sched)" procs \
    "ms 401 p99/200 p50/200 p99"
for r in "${results[@]}"; do
    IFS='|' read -r n a f re d c ps tk sc p l <<< "$r"
    printf '%-16s %9s %7s %8s %9s %9s %7s %16s %17s %6s %s\n' "$n" "$a" "$f" "$re" "$d" "$c" "$ps" "$tk" "$sc" "$p" "$l"
done
if [ "$markdown" -eq 1 ]; then
    echo
    echo "| server | completed | failed | retransmissions | socket drops | contacts after | registrations/s | CPU µs/registration (utime+stime) | CPU µs/registration (schedstat) | processes | ms: 401 p99 / 200 p50 / 200 p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${results[@]}"; do
        IFS='|' read -r n a f re d c ps tk sc p l <<< "$r"
        echo "| $n | $a | $f | $re | $d | $c | $ps | $tk | $sc | $p | $l |"
    done
fi
exit "$status"
