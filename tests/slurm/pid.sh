# shellcheck shell=bash
# Shared by start-cluster.sh and stop-cluster.sh (sourced, not run).

# A pid file names a running process only if that process still exists; stale files
# from a killed machine must not count as "running".
pid_alive() {
    local pid_file=$1 pid
    [[ -s "$pid_file" ]] || return 1
    pid=$(<"$pid_file")
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}
