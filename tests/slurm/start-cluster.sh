#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine for the workflow's SLURM tests.
#
# Usage (as root):  tests/slurm/start-cluster.sh
#
# What it does, in order:
#   1. installs Debian's slurm-wlm and munge with apt-get when slurmctld/munged are missing;
#   2. writes /etc/slurm/slurm.conf and /etc/slurm/gres.conf for this host (CPUs and memory
#      from nproc and free, two GPUs as generic resources backed by no real device);
#   3. creates a munge key if there is none, then starts munged, slurmctld and slurmd as
#      plain daemons (no systemd needed);
#   4. waits until sinfo reports the node idle, or fails and prints the daemons' logs.
#
# Running it again is harmless: daemons that already run with the same configuration are
# left alone; a changed configuration restarts the SLURM daemons. It refuses to overwrite a
# slurm.conf or gres.conf that it did not write (the marker line below identifies its own).
# tests/slurm/stop-cluster.sh stops what this script started.
#
# Environment (all optional):
#   SLURM_TEST_STATE_DIR     state, spool, pid and log files    (default /var/lib/slurm-test)
#   SLURM_TEST_GPUS          number of GPUs the node advertises (default 2)
#   SLURM_TEST_MIN_JOB_AGE   seconds squeue keeps finished jobs (default 900)
#   SLURM_TEST_KILL_WAIT     seconds from SIGTERM to SIGKILL     (default 10)
#   SLURM_TEST_TIMEOUT       seconds to wait for an idle node   (default 90)
set -euo pipefail

readonly MARKER="# Managed by tests/slurm/start-cluster.sh (one-node test cluster); safe for it to overwrite."
readonly CONF_DIR=/etc/slurm
readonly STATE_DIR="${SLURM_TEST_STATE_DIR:-/var/lib/slurm-test}"
readonly GPUS="${SLURM_TEST_GPUS:-2}"
readonly MIN_JOB_AGE="${SLURM_TEST_MIN_JOB_AGE:-900}"
readonly KILL_WAIT="${SLURM_TEST_KILL_WAIT:-10}"
readonly TIMEOUT="${SLURM_TEST_TIMEOUT:-90}"
readonly LOG_DIR="$STATE_DIR/log"
readonly FAKE_GPU_DIR="$STATE_DIR/fake-gpu"
# Present only in a state directory this script created; stop-cluster.sh deletes
# nothing else.
readonly STATE_MARKER="$STATE_DIR/.slurm-test-cluster"
readonly MUNGE_RUN_DIR=/run/munge
readonly MUNGE_KEY=/etc/munge/munge.key

die() {
    echo "start-cluster.sh: error: $*" >&2
    exit 1
}

info() {
    echo "start-cluster.sh: $*"
}

require_positive_integer() {
    local name=$1 value=$2
    [[ "$value" =~ ^[1-9][0-9]*$ ]] ||
        die "$name must be a positive integer, got '$value'; set it to e.g. $3 or unset it."
}

# shellcheck source=tests/slurm/pid.sh
source "$(dirname "${BASH_SOURCE[0]}")/pid.sh"

stop_pid_file() {
    local pid_file=$1 pid
    pid_alive "$pid_file" || { rm -f "$pid_file"; return 0; }
    pid=$(<"$pid_file")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    rm -f "$pid_file"
}

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v sinfo >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    command -v apt-get >/dev/null ||
        die "slurmctld, slurmd or munged is missing and apt-get is not available;" \
            "install slurm-wlm and munge with this system's package manager."
    info "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d exit 101 stops the packages' maintainer scripts from trying to start
    # services through an init system that is not running here.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null ||
        { [[ $created_policy == 1 ]] && rm -f "$policy"; die "apt-get install slurm-wlm munge failed"; }
    [[ $created_policy == 1 ]] && rm -f "$policy"
    return 0
}

# Sockets, cores and threads as slurmd detects them, when they add up to the CPUs that
# nproc reports; without them slurmctld assumes one core per socket and slurmd logs
# a topology mismatch. Empty when the two disagree (e.g. a CPU-limited container).
hardware_topology() {
    local cpus=$1 detected
    detected=$(slurmd -C 2>/dev/null | head -n 1) || return 0
    if [[ " $detected " == *" CPUs=$cpus "* ]]; then
        grep -oE '(Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=[0-9]+' \
            <<<"$detected" | sed 's/^/ /' | tr -d '\n'
    fi
}

# Refuse to replace a configuration file that somebody else wrote: a real cluster's
# slurm.conf must never be clobbered by a test helper.
check_ownership() {
    local file=$1
    if [[ -e "$file" ]] && ! grep -qxF "$MARKER" "$file"; then
        die "$file exists and was not written by this script (its marker line is missing)." \
            "Refusing to overwrite it. Move it away if this machine is meant to host the" \
            "test cluster, or run the tests against the cluster it configures."
    fi
}

write_slurm_conf() {
    local node=$1 cpus=$2 memory_mb=$3 topology=$4
    cat <<EOF
$MARKER
# Regenerated on every start; edit tests/slurm/start-cluster.sh instead.
ClusterName=clrtest
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# No mail is sent from here; a valid MailProg keeps slurmctld from logging an error.
MailProg=/bin/true

StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log

# Containers here have neither systemd nor a delegated cgroup v2 tree: track processes
# through /proc and do no task binding or cgroup confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# No slurmdbd: sacct cannot answer, so status queries go through squeue, which only
# sees a finished job for MinJobAge seconds. Keep that well above three times the
# status-check interval so that no finished job disappears before it is polled.
AccountingStorageType=accounting_storage/none
MinJobAge=$MIN_JOB_AGE
# SIGTERM first, SIGKILL KillWait seconds later (scancel, time limit, preemption).
KillWait=$KILL_WAIT
ReturnToService=2

SchedulerType=sched/backfill
# Reject at submission a job this node can never run (too many CPUs, GPUs or memory):
# sbatch fails and Snakemake reports it, instead of the job pending forever.
EnforcePartLimits=ALL
SelectType=select/cons_tres
# Allocate single CPUs (not whole cores) and memory, so that two jobs share the node.
SelectTypeParameters=CR_CPU_Memory
# A job that gives no --mem must not claim the whole node.
DefMemPerCPU=1024
GresTypes=gpu

NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus$topology RealMemory=$memory_mb Gres=gpu:$GPUS State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
}

write_gres_conf() {
    local node=$1
    cat <<EOF
$MARKER
# Links to /dev/null stand in for GPU device files: slurmd counts a gpu GRES only when
# it names a File, and that File must be a character device. Jobs asking for --gpus or
# --gres schedule; nothing is confined to a device (TaskPlugin=task/none binds nothing).
AutoDetect=off
EOF
    local index
    for ((index = 0; index < GPUS; index++)); do
        echo "NodeName=$node Name=gpu File=$FAKE_GPU_DIR/gpu$index"
    done
}

# Install a generated file only when its content changed; report whether it did.
install_if_changed() {
    local content=$1 target=$2
    if [[ -f "$target" ]] && [[ "$(<"$target")" == "$content" ]]; then
        return 1
    fi
    printf '%s\n' "$content" >"$target"
    chmod 644 "$target"
    return 0
}

start_munge() {
    if [[ ! -s "$MUNGE_KEY" ]]; then
        info "creating munge key $MUNGE_KEY"
        install -d -o munge -g munge -m 0700 /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY"
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
        chown munge:munge "$MUNGE_KEY"
        chmod 0400 "$MUNGE_KEY"
    fi
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    install -d -o munge -g munge -m 0755 "$MUNGE_RUN_DIR"
    info "starting munged"
    runuser -u munge -- munged
    # Remembered so that stop-cluster.sh stops munged only if this script started it.
    touch "$STATE_DIR/started-munged"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "munged did not come up; see /var/log/munge/munged.log"
}

show_logs_and_die() {
    echo "start-cluster.sh: error: $*" >&2
    for log in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        echo "----- last lines of $log -----" >&2
        tail -n 40 "$log" >&2 2>/dev/null || echo "(missing)" >&2
    done
    sinfo -R >&2 2>/dev/null || true
    exit 1
}

wait_for_idle_node() {
    local node=$1 state=""
    for _ in $(seq $((TIMEOUT * 2))); do
        state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
        case "$state" in
        idle | mixed | allocated) return 0 ;;
        drain* | down* | fail* | inval*)
            # A drained node does not recover by itself; its reason says what to fix.
            show_logs_and_die "node $node is '$state': $(sinfo -h -n "$node" -o %E)" ;;
        esac
        pid_alive "$STATE_DIR/slurmctld.pid" || show_logs_and_die "slurmctld exited"
        pid_alive "$STATE_DIR/slurmd.pid" || show_logs_and_die "slurmd exited"
        sleep 0.5
    done
    show_logs_and_die "node $node not idle after ${TIMEOUT}s (last state: '${state:-none}');" \
        "raise SLURM_TEST_TIMEOUT if this machine is just slow"
}

main() {
    [[ $(id -u) == 0 ]] || die "run as root (it installs packages and starts daemons)."
    require_positive_integer SLURM_TEST_GPUS "$GPUS" 2
    require_positive_integer SLURM_TEST_MIN_JOB_AGE "$MIN_JOB_AGE" 900
    require_positive_integer SLURM_TEST_KILL_WAIT "$KILL_WAIT" 10
    require_positive_integer SLURM_TEST_TIMEOUT "$TIMEOUT" 90

    install_packages

    local node cpus memory_mb topology
    node=$(hostname -s)
    cpus=$(nproc)
    memory_mb=$(free -m | awk '/^Mem:/ {print $2}')
    [[ "$memory_mb" =~ ^[0-9]+$ ]] || die "could not read total memory from 'free -m'"
    topology=$(hardware_topology "$cpus")

    if [[ -d "$STATE_DIR" && ! -e "$STATE_MARKER" ]] && [[ -n "$(ls -A "$STATE_DIR")" ]]; then
        die "state directory $STATE_DIR holds files this script did not create;" \
            "point SLURM_TEST_STATE_DIR at an empty or new directory."
    fi
    mkdir -p "$CONF_DIR"
    check_ownership "$CONF_DIR/slurm.conf"
    check_ownership "$CONF_DIR/gres.conf"
    local changed=0 index
    install_if_changed "$(write_slurm_conf "$node" "$cpus" "$memory_mb" "$topology")" \
        "$CONF_DIR/slurm.conf" && changed=1
    install_if_changed "$(write_gres_conf "$node")" "$CONF_DIR/gres.conf" && changed=1

    mkdir -p "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd" "$LOG_DIR" "$FAKE_GPU_DIR"
    touch "$STATE_MARKER"
    for ((index = 0; index < GPUS; index++)); do
        ln -sfn /dev/null "$FAKE_GPU_DIR/gpu$index"
    done
    start_munge

    if [[ $changed == 1 ]]; then
        info "configuration written; (re)starting slurmctld and slurmd"
        stop_pid_file "$STATE_DIR/slurmd.pid"
        stop_pid_file "$STATE_DIR/slurmctld.pid"
    fi
    if ! pid_alive "$STATE_DIR/slurmctld.pid"; then
        info "starting slurmctld"
        # A new configuration starts from clean state: a node drained under the old one
        # would otherwise stay drained.
        local clear_state=()
        [[ $changed == 1 ]] && clear_state=(-c)
        slurmctld "${clear_state[@]}" || show_logs_and_die "slurmctld failed to start"
    fi
    if ! pid_alive "$STATE_DIR/slurmd.pid"; then
        info "starting slurmd"
        slurmd || show_logs_and_die "slurmd failed to start"
    fi
    # The daemons write their pid files a moment after forking.
    for _ in $(seq 20); do
        pid_alive "$STATE_DIR/slurmctld.pid" && pid_alive "$STATE_DIR/slurmd.pid" && break
        sleep 0.25
    done

    wait_for_idle_node "$node"
    info "cluster up: node $node, $cpus CPUs, ${memory_mb} MB, gpu:$GPUS, MinJobAge=${MIN_JOB_AGE}s"
    sinfo -N -o "%N %T %c %m %G"
}

main "$@"
