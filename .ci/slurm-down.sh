#!/usr/bin/env bash
# Stop the cluster that .ci/slurm-up.sh started: cancel its jobs, stop slurmd and
# slurmctld, and munged if slurm-up.sh started it. Only the processes named in the pid
# files under $GFE_SLURM_DIR (default /var/tmp/gfe-slurm) are signalled. Leaves
# /etc/slurm/slurm.conf and the logs in place (the next slurm-up.sh replaces them).
set -uo pipefail

DIR="${GFE_SLURM_DIR:-/var/tmp/gfe-slurm}"

say() { echo "slurm-down: $*" >&2; }

stop_pidfile() {  # name pidfile
    local name=$1 file=$2 pid
    [ -s "$file" ] || return 0
    pid="$(cat "$file")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name ($pid) still running after 10 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        say "stopped $name ($pid)"
    fi
    rm -f "$file"
}

if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    jobs="$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,CONFIGURING -o %i 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
        say "cancelling jobs: ${jobs//$'\n'/ }"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        for _ in $(seq 50); do
            [ -z "$(timeout 5 squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

stop_pidfile slurmd "$DIR/slurmd.pid"
stop_pidfile slurmctld "$DIR/slurmctld.pid"
stop_pidfile munged "$DIR/munged.pid"
exit 0
