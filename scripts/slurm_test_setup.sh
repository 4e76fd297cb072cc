#!/usr/bin/env bash
# A one-node SLURM (Debian's slurm-wlm + munge) on this computer, for the dask-jobqueue test.
#
#   scripts/slurm_test_setup.sh start STATE_DIR   # install if missing, configure, start, wait
#   scripts/slurm_test_setup.sh stop STATE_DIR    # stop what `start` started (by pid file)
#
# Everything lives in STATE_DIR (configuration, spool, logs, munge socket, pid files): nothing
# under /etc is changed, no system service is started, and client commands find this cluster
# through SLURM_CONF=STATE_DIR/slurm.conf (printed on the last line of `start`).
#
# Exit status: 0 ready; 77 cannot run here (the reason is the last line on stdout: not root,
# no apt-get, the install or a daemon failed); anything else is a bug in this script.
# Needs root: slurmd runs jobs as their owner and munged reads the host's key.
set -uo pipefail

cmd=${1:-}
state=${2:-}
if [[ -z $cmd || -z $state ]]; then
    echo "usage: $0 start|stop STATE_DIR" >&2
    exit 2
fi
ctld_port=${TRAPGUI_SLURMCTLD_PORT:-16817}
slurmd_port=${TRAPGUI_SLURMD_PORT:-16818}

skip() { echo "skip: $*"; exit 77; }

kill_tree() {  # a process and everything it started, children first
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
    kill -9 "$1" 2>/dev/null
}

stop_all() {
    # jobs first, while slurmd can still end them (their processes do not die with slurmd)
    if [[ -f $state/slurm.conf && -f $state/slurmctld.pid ]]; then
        SLURM_CONF="$state/slurm.conf" scancel --user="$(id -un)" >/dev/null 2>&1
        for _ in $(seq 60); do
            [[ -z $(SLURM_CONF="$state/slurm.conf" squeue -h 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    for name in slurmd slurmctld munged; do
        pidfile="$state/$name.pid"
        [[ -f $pidfile ]] || continue
        pid=$(cat "$pidfile" 2>/dev/null)
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
        fi
        rm -f "$pidfile"
    done
    # whatever is left of a job: step daemons work in our log folder, job processes carry
    # our SLURM_CONF and a job id (the test process has the first only)
    local proc pid env cwd
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $pid == "$$" ]] && continue
        cwd=$(readlink "$proc/cwd" 2>/dev/null)
        if [[ $cwd == "$state" || $cwd == "$state/"* ]]; then
            kill_tree "$pid"
            continue
        fi
        env=$( { tr '\0' '\n' <"$proc/environ"; } 2>/dev/null)
        if grep -qxF "SLURM_CONF=$state/slurm.conf" <<<"$env" \
                && grep -q "^SLURM_JOB_ID=" <<<"$env"; then
            kill_tree "$pid"
        fi
    done
}

if [[ $cmd == stop ]]; then
    stop_all
    exit 0
fi
[[ $cmd == start ]] || { echo "unknown command: $cmd" >&2; exit 2; }

[[ $(id -u) -eq 0 ]] || skip "a one-node SLURM needs root (slurmd and munged), and this runs as $(id -un)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends slurm-wlm munge >"$state.apt.log" 2>&1; then
        apt-get update >>"$state.apt.log" 2>&1
        apt-get install -y --no-install-recommends slurm-wlm munge >>"$state.apt.log" 2>&1 \
            || skip "apt-get could not install slurm-wlm and munge (see $state.apt.log)"
    fi
fi

mkdir -p "$state"/{munge,ctld,spool,log}
chmod 700 "$state/munge"
stop_all  # a previous start in the same folder

# munge: the host's key (made by the package) or one of our own
key=/etc/munge/munge.key
if [[ ! -r $key ]]; then
    key="$state/munge/munge.key"
    [[ -f $key ]] || mungekey --create --keyfile="$key" >/dev/null 2>&1 \
        || dd if=/dev/urandom of="$key" bs=1 count=1024 2>/dev/null
    chmod 400 "$key"
fi
socket="$state/munge/munge.socket.2"
munged --force --key-file="$key" --socket="$socket" --pid-file="$state/munged.pid" \
    --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed" \
    >"$state/log/munged.out" 2>&1 || skip "munged did not start: $(tail -1 "$state/log/munged.out")"

node=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat >"$state/slurm.conf" <<EOF
ClusterName=trapguitest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=trapgui Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
export SLURM_CONF="$state/slurm.conf"

slurmctld -c -f "$SLURM_CONF" >"$state/log/slurmctld.out" 2>&1 \
    || skip "slurmctld did not start: $(tail -1 "$state/log/slurmctld.out")"
slurmd -f "$SLURM_CONF" -N "$node" >"$state/log/slurmd.out" 2>&1 \
    || skip "slurmd did not start: $(tail -1 "$state/log/slurmd.out")"

for _ in $(seq 120); do
    status=$(sinfo -h -N -o "%T" 2>/dev/null | head -1)
    if [[ $status == idle* || $status == mix* ]]; then
        echo "SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
stop_all
skip "the SLURM node did not become idle within 60 s (state '${status:-none}'; see $state/log)"
