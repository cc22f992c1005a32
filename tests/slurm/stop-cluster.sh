#!/usr/bin/env bash
# Stop the one-node SLURM test cluster that tests/slurm/start-cluster.sh started.
#
# Usage (as root):  tests/slurm/stop-cluster.sh
#
# Cancels the cluster's jobs, stops slurmd and slurmctld (and munged, if start-cluster.sh
# started it), then deletes the state, spool, pid and log files under the state
# directory. The configuration in /etc/slurm stays, so that start-cluster.sh recognises
# it as its own. Safe to run when nothing is running.
#
# Environment (optional):
#   SLURM_TEST_STATE_DIR   the state directory given to start-cluster.sh (default
#                          /var/lib/slurm-test)
set -euo pipefail

readonly STATE_DIR="${SLURM_TEST_STATE_DIR:-/var/lib/slurm-test}"
readonly MUNGE_PID_FILE=/run/munge/munged.pid

info() {
    echo "stop-cluster.sh: $*"
}

# shellcheck source=tests/slurm/pid.sh
source "$(dirname "${BASH_SOURCE[0]}")/pid.sh"

# SIGTERM, then SIGKILL if the daemon is still there after ten seconds.
stop_pid_file() {
    local name=$1 pid_file=$2 pid
    if ! pid_alive "$pid_file"; then
        rm -f "$pid_file"
        return 0
    fi
    pid=$(<"$pid_file")
    info "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        info "$name did not stop on SIGTERM; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}

# Jobs outlive slurmd (proctrack/linuxproc does not reap them when the daemon stops),
# so cancel them while the controller can still deliver the signals, and give them
# KillWait to finish.
cancel_jobs() {
    pid_alive "$STATE_DIR/slurmctld.pid" || return 0
    local jobs
    jobs=$(squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING -o %i 2>/dev/null || true)
    [[ -n "$jobs" ]] || return 0
    info "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
    # shellcheck disable=SC2086 # one job id per word
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 60); do
        [[ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ]] && return 0
        sleep 0.5
    done
    info "some jobs are still running after 30 s; stopping the daemons anyway"
}

main() {
    [[ $(id -u) == 0 ]] || {
        echo "stop-cluster.sh: error: run as root (it stops daemons started as root)." >&2
        exit 1
    }
    cancel_jobs
    stop_pid_file slurmd "$STATE_DIR/slurmd.pid"
    stop_pid_file slurmctld "$STATE_DIR/slurmctld.pid"
    if [[ -e "$STATE_DIR/started-munged" ]]; then
        stop_pid_file munged "$MUNGE_PID_FILE"
    fi
    if [[ -e "$STATE_DIR/.slurm-test-cluster" ]]; then
        info "removing $STATE_DIR"
        rm -rf -- "$STATE_DIR"
    elif [[ -d "$STATE_DIR" ]]; then
        info "leaving $STATE_DIR alone: start-cluster.sh did not create it"
    fi
    info "stopped"
}

main "$@"
