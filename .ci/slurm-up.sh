#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (Debian/Ubuntu, as root, no systemd
# needed): munged, slurmctld and slurmd, with one partition "debug" holding this host.
# Used by tests/test_slurm.py; works by hand too:
#     sudo .ci/slurm-up.sh      # then: sinfo; sbatch ...; snakemake --profile workflow/profiles/slurm
#     sudo .ci/slurm-down.sh
# Installs slurmctld, slurmd, slurm-client and munge with apt-get when they are missing.
# Writes /etc/slurm/slurm.conf from .ci/slurm/slurm.conf.in, but refuses to replace a
# slurm.conf it did not write (GFE_SLURM_FORCE=1 overrides). State, spool, logs and pid
# files go to $GFE_SLURM_DIR (default /var/tmp/gfe-slurm); logs: $GFE_SLURM_DIR/log/.
# Exit status: 0 up, 2 cannot start here (not root, no apt-get, packages missing),
# 3 a foreign slurm.conf is in the way, 1 started but the cluster does not answer.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${GFE_SLURM_DIR:-/var/tmp/gfe-slurm}"
CONF=/etc/slurm/slurm.conf
MARKER="written by gfe .ci/slurm-up.sh"
CTLD_PORT="${GFE_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${GFE_SLURMD_PORT:-6818}"

say() { echo "slurm-up: $*" >&2; }
cannot() { say "cannot start a cluster here: $*"; exit 2; }

[ "$(id -u)" = 0 ] || cannot "must run as root (munged, slurmd and /etc/slurm need it)"

missing=()
for cmd in munged mungekey slurmctld slurmd sbatch squeue sinfo srun scontrol; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || cannot "missing ${missing[*]} and no apt-get to install them"
    say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' postinst would start munge/slurmctld/slurmd through their init scripts
    # (before slurm.conf exists, failing the install): forbid that while apt runs, unless
    # a policy-rc.d is there already (containers have one that does the same).
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\n# temporary, from .ci/slurm-up.sh\nexit 101\n' > "$policy"
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    { apt-get update -qq && apt-get install -y -qq slurmctld slurmd slurm-client munge; } >&2 \
        || cannot "apt-get install slurmctld slurmd slurm-client munge failed"
    if [ -n "$policy" ]; then rm -f "$policy"; trap - EXIT; fi
fi

if [ -e "$CONF" ] && ! grep -q "$MARKER" "$CONF" && [ "${GFE_SLURM_FORCE:-0}" != 1 ]; then
    say "$CONF exists and was not written by this script; not replacing it (GFE_SLURM_FORCE=1 does)"
    exit 3
fi

# A cluster of ours already running? Restart it with the current template.
"$HERE/slurm-down.sh" >/dev/null 2>&1 || true

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"

# --- munge ------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    mungekey --create --keyfile /etc/munge/munge.key
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running; using it"
else
    runuser -u munge -- munged --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n | unmunge >/dev/null || { say "munged does not answer"; exit 1; }
    cat /run/munge/munged.pid > "$DIR/munged.pid"  # ours: slurm-down.sh stops it
fi

# --- slurm.conf -------------------------------------------------------------------
HOST="$(hostname -s)"
# Hardware as slurmd sees it (CPUs, sockets, cores, threads); memory: 90% of the total.
NODE_HW="$(slurmd -C 2>/dev/null | head -n1 | tr ' ' '\n' \
    | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ' || true)"
[ -n "$NODE_HW" ] || NODE_HW="CPUs=$(nproc)"
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p /etc/slurm
sed -e "s|@GENERATED_MARKER@|$MARKER from .ci/slurm/slurm.conf.in; .ci/slurm-down.sh stops it|" \
    -e "s|@HOST@|$HOST|g" -e "s|@DIR@|$DIR|g" -e "s|@NODE_HW@|$NODE_HW|" \
    -e "s|@MEM_MB@|$MEM_MB|" -e "s|@CTLD_PORT@|$CTLD_PORT|" -e "s|@SLURMD_PORT@|$SLURMD_PORT|" \
    "$HERE/slurm/slurm.conf.in" > "$CONF"
chmod 0644 "$CONF"

# --- daemons ----------------------------------------------------------------------
# -c: start from a clean state (no jobs from a previous run); both daemonise.
slurmctld -c
slurmd -N "$HOST"

for _ in $(seq 60); do
    state="$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)"
    case "$state" in idle*|mixed*|allocated*) break ;; esac
    sleep 0.5
done
case "$state" in
    idle*|mixed*|allocated*) ;;
    *) say "node $HOST is '${state:-not answering}'; see $DIR/log/"
       tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
       exit 1 ;;
esac
if ! out="$(timeout 60 srun -N1 -n1 -t 1 hostname 2>&1)"; then
    say "srun test job failed: $out"; exit 1
fi
say "up: node $HOST ($NODE_HW RealMemory=$MEM_MB), partition debug; logs in $DIR/log"
sinfo >&2
