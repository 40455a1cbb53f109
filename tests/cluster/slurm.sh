#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, with accounting, for the tests marked `slurm`
# (tests/cluster/test_slurm.py; docs/slurm.md). Run as root on Debian 12 (or a derivative):
#
#     sudo bash tests/cluster/slurm.sh          # install if needed, configure, start; exit 0 when up
#     sudo bash tests/cluster/slurm.sh stop     # stop the daemons it starts
#
# What it sets up, as a university cluster has it:
#   munged            authentication (auth/munge)
#   mariadbd          the accounting database
#   slurmdbd          accounting: sacct answers from the database, as on a real cluster
#   slurmctld         the controller; slurmd: one node (this machine's CPUs and memory, from
#                     `slurmd -C`) in one default partition, `debug`; jobs may be requeued
#   sacctmgr          the cluster, an account `rnn`, the user root (and $SUDO_USER) in it;
#                     AccountingStorageEnforce=associations: a user without an account is refused
# No systemd needed: the daemons are started directly and write their pid files under /run.
# Idempotent: a second run finds the same configuration and the daemons answering, and exits 0
# at once; a changed configuration restarts them.
#
# Timers: a requeued job may start again cred_expire + 1 s after it was requeued, and is started
# by the next pass of the main scheduler (every sched_interval s). SLURM's defaults, which real
# clusters keep, are 120 s and 60 s (a requeue then takes 2 to 3 min); the test cluster uses
# 10 s and 10 s (11 to 20 s). Set them with CRED_EXPIRE=120 SCHED_INTERVAL=60 to measure the
# defaults (tests/cluster/measure_delays.py; docs/slurm.md). Everything else is SLURM's default
# (KillWait=30: SIGTERM, then SIGKILL 30 s later; MinJobAge=300).
set -euo pipefail
CRED_EXPIRE=${CRED_EXPIRE:-10}
SCHED_INTERVAL=${SCHED_INTERVAL:-10}

CLUSTER=rnntest
ACCOUNT=rnn
PARTITION=debug
DB_PASSWORD=rnn-experiments-slurmdbd   # the accounting database, reachable from localhost only
ETC=/etc/slurm
LOG=/var/log/slurm

say() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"

alive() {  # pid file -> whether that process runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop_daemon() {  # name pidfile
    if alive "$2"; then
        local pid; pid=$(cat "$2")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        say "stopped $1"
    fi
}

if [ "${1:-}" = stop ]; then
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
    stop_daemon slurmdbd /run/slurmdbd.pid
    if mariadb-admin ping >/dev/null 2>&1; then mariadb-admin shutdown && say "stopped mariadbd"; fi
    stop_daemon munged /run/munge/munged.pid
    exit 0
fi

# -- packages --------------------------------------------------------------------------------
PACKAGES=(slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- configuration ---------------------------------------------------------------------------
HOST=$(hostname -s)
# this machine's CPUs, sockets, cores and memory as slurmd sees them (its first line)
NODE=$(slurmd -C | head -n 1)
case "$NODE" in "NodeName=$HOST "*) ;; *) die "slurmd -C printed '$NODE', expected NodeName=$HOST ...";; esac

SLURM_CONF="# written by tests/cluster/slurm.sh: a one-node test cluster
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=$CRED_EXPIRE
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=$SCHED_INTERVAL
JobRequeue=1
ReturnToService=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
$NODE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
"

SLURMDBD_CONF="# written by tests/cluster/slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
"

changed=0
write_if_changed() {  # path mode owner content
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$(printf '%s' "$4")" ]; then
        printf '%s' "$4" > "$1.tmp"
        chmod "$2" "$1.tmp"
        chown "$3" "$1.tmp"
        mv "$1.tmp" "$1"
        changed=1
    fi
}
mkdir -p "$ETC" "$LOG" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm "$LOG" /var/lib/slurm/slurmctld
write_if_changed "$ETC/slurm.conf" 644 root:root "$SLURM_CONF"
write_if_changed "$ETC/slurmdbd.conf" 600 slurm:slurm "$SLURMDBD_CONF"

cluster_up() {
    alive /run/slurmctld.pid && alive /run/slurmd.pid && alive /run/slurmdbd.pid \
        && scontrol ping 2>/dev/null | grep -q "is UP" \
        && sacctmgr -n -P show user root format=defaultaccount 2>/dev/null | grep -qx $ACCOUNT \
        && sinfo -h -N -n "$HOST" -o %t 2>/dev/null | grep -Eqx "idle|mix|alloc|comp"
}

if [ "$changed" = 0 ] && cluster_up; then
    say "cluster $CLUSTER is up (node $HOST, partition $PARTITION); nothing to do"
    exit 0
fi
if [ "$changed" = 1 ]; then  # daemons running with another configuration: restart them
    stop_daemon slurmd /run/slurmd.pid
    stop_daemon slurmctld /run/slurmctld.pid
    stop_daemon slurmdbd /run/slurmdbd.pid
fi

wait_for() {  # description seconds command...
    local what=$1 n=$2; shift 2
    for _ in $(seq $((n * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up within $n s"
}

# -- munge -----------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 600 /etc/munge/munge.key
fi
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 0755 /run/munge
    runuser -u munge -- /usr/sbin/munged --force
    wait_for munged 10 sh -c 'munge -n | unmunge'
    say "started munged"
fi

# -- accounting database ---------------------------------------------------------------------
if ! mariadb-admin ping >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    (setsid /usr/bin/mysqld_safe --user=mysql >/dev/null 2>&1 &)
    wait_for mariadbd 60 mariadb-admin ping
    say "started mariadbd"
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

if ! alive /run/slurmdbd.pid; then
    slurmdbd
    wait_for slurmdbd 30 sacctmgr -n show cluster
    say "started slurmdbd"
fi
sacctmgr -n -P show cluster format=cluster | grep -qx $CLUSTER || sacctmgr -i add cluster $CLUSTER >/dev/null
sacctmgr -n -P show account $ACCOUNT format=account | grep -qx $ACCOUNT \
    || sacctmgr -i add account $ACCOUNT cluster=$CLUSTER description="rnn-experiments tests" organization=rnn >/dev/null
for user in root ${SUDO_USER:-}; do
    sacctmgr -n -P show association cluster=$CLUSTER account=$ACCOUNT user="$user" format=user | grep -qx "$user" \
        || sacctmgr -i add user "$user" account=$ACCOUNT cluster=$CLUSTER >/dev/null
    sacctmgr -n -P show user "$user" format=defaultaccount | grep -qx $ACCOUNT \
        || sacctmgr -i modify user "$user" set defaultaccount=$ACCOUNT >/dev/null
done

# -- controller and node ---------------------------------------------------------------------
if ! alive /run/slurmctld.pid; then
    slurmctld
    wait_for slurmctld 30 sh -c 'scontrol ping | grep -q "is UP"'
    say "started slurmctld"
fi
if ! alive /run/slurmd.pid; then
    slurmd
    say "started slurmd"
fi
# a node left DOWN or DRAINED (by a test, or by a restart) goes back to service
wait_for "node $HOST" 30 sh -c "sinfo -h -N -n $HOST -o %t | grep -Eqvx 'unk.*|.*[*]'"
case "$(sinfo -h -N -n "$HOST" -o %t)" in
    down*|drain*|drng*) scontrol update nodename="$HOST" state=resume ;;
esac
wait_for "node $HOST (idle)" 30 sh -c "sinfo -h -N -n $HOST -o %t | grep -Eqx 'idle|mix|alloc|comp'"
cluster_up || die "the cluster did not come up: see $LOG/*.log"
say "cluster $CLUSTER is up: node $HOST ($(echo "$NODE" | grep -o 'CPUs=[0-9]*') $(echo "$NODE" | grep -o 'RealMemory=[0-9]*') MB), partition $PARTITION (default), accounting through slurmdbd"
