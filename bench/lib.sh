# Shared by the whole-system bench scripts (sourced, not run): free ports, waiting for a
# UDP listener, the kernel's drop count on a socket, and a process tree's CPU time from /proc.
# shellcheck shell=bash


free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait until something listens on 127.0.0.1:$1/udp (from /proc/net/udp, no tools needed).
wait_udp_bound() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    for _ in $(seq 1 100); do
        grep -q " $hex " /proc/net/udp && return 0
        sleep 0.1
    done
    return 1
}

# Datagrams the kernel dropped on 127.0.0.1:$1/udp because its receive queue was full (the
# last column of /proc/net/udp).
udp_drops() {
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    awk -v a="$hex" '$2 == a { d = $NF } END { print d + 0 }' /proc/net/udp
}

# PIDs of $1 and all its descendants.
tree() {
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid" || true); do
        tree "$child"
    done
}

# utime+stime in clock ticks, summed over processes (the fields after the `(comm)`).
cpu_ticks() {
    local total=0 pid rest
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        rest=$(sed 's/^.*) //' "/proc/$pid/stat")
        # After "(comm) ": state is field 3, so utime (14) and stime (15) are words 12 and 13.
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# On-CPU nanoseconds, summed over every thread of the processes.
cpu_ns() {
    local total=0 pid f ns
    for pid in "$@"; do
        for f in /proc/"$pid"/task/*/schedstat; do
            [ -r "$f" ] || continue
            read -r ns _ < "$f" || continue
            total=$((total + ns))
        done
    done
    echo "$total"
}

clk_tck=$(getconf CLK_TCK)
