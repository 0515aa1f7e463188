#!/usr/bin/env bash
# cluster.sh - a real single-node SLURM cluster on this machine, for gan-hpc's tests and for trying
# the SLURM launcher on a workstation. Runs as root, without systemd, idempotently.
#
#   slurm/cluster.sh start    install packages if missing, write the config, start the daemons and
#                             wait until the node is idle (about 30 s the first time, 1-2 s after)
#   slurm/cluster.sh stop     cancel every job, stop the daemons this script started (by pidfile)
#   slurm/cluster.sh status   daemon pids and `sinfo`
#   slurm/cluster.sh env      print the line clients need: export SLURM_CONF=...
#   slurm/cluster.sh purge    stop, then delete the prefix (state, logs, accounting database)
#
# What runs (Debian 12 packages slurm-wlm 22.05, munge, slurmdbd, mariadb-server):
#   munged                  authentication between the SLURM daemons and clients
#   mariadbd + slurmdbd     job accounting: `sacct` is how submitit (and gan-hpc) learn a job's
#                           state; without it a cancelled job never looks finished
#   slurmctld + slurmd      the controller and the one compute node "localhost", partition "debug"
#
# Knobs (environment):
#   GAN_HPC_SLURM_PREFIX=/tmp/gan-hpc-slurm   config, state, logs, pids and database live here
#   GAN_HPC_SLURM_DB_PORT=3307                the private mariadbd listens on 127.0.0.1 only
#
# Clients (sbatch, squeue, sacct, scontrol, gan-hpc) need `eval "$(slurm/cluster.sh env)"`. The
# tests find the config under the default prefix by themselves.
set -euo pipefail

PREFIX=${GAN_HPC_SLURM_PREFIX:-/tmp/gan-hpc-slurm}
DB_PORT=${GAN_HPC_SLURM_DB_PORT:-3307}
DB_PASSWORD=gan-hpc-slurmdbd
CLUSTER_NAME=gan-hpc
NODE=localhost       # slurmd is started with -N localhost, so the real hostname does not matter
PARTITION=debug
export SLURM_CONF=$PREFIX/etc/slurm.conf
ETC=$PREFIX/etc
RUN=$PREFIX/run
LOG=$PREFIX/log
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

say() { echo "[cluster.sh $(date +%T)] $*" >&2; }
fail() { say "error: $*"; exit 1; }
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }   # $1: a pidfile

wait_for() {  # $1: tries (0.5 s apart), rest: a command that succeeds once ready
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

install_packages() {
  local missing=() package
  for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  say "installing ${missing[*]}"
  mkdir -p "$LOG"
  # No systemd here: a policy-rc.d that says "no" keeps the packages' postinst scripts from
  # starting daemons with the distribution's config; this script starts its own.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; added_policy=1
  fi
  local status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends "${missing[@]}"; } >"$LOG/apt.log" 2>&1 || status=$?
  [[ $added_policy == 1 ]] && rm -f "$policy"
  [[ $status == 0 ]] || { cat "$LOG/apt.log" >&2; fail "apt-get install failed"; }
}

replace_if_changed() {  # $1: target file, content on stdin; sets CONFIG_CHANGED=1 when it differs
  local new; new=$(mktemp)
  cat >"$new"
  if [[ -f $1 ]] && cmp -s "$new" "$1"; then rm -f "$new"; return 0; fi
  mv "$new" "$1"
  CONFIG_CHANGED=1
}

hardware_field() {  # $1: field of `slurmd -C`, e.g. CPUs
  slurmd -C | head -1 | sed -n "s/.* $1=\([0-9]*\).*/\1/p"
}

write_config() {
  mkdir -p "$ETC" "$RUN" "$LOG" "$PREFIX/state" "$PREFIX/spool"
  # Declare the node as slurmd detects it, with 90% of its memory so it is never "low memory".
  local memory_mb=$(( $(hardware_field RealMemory) * 9 / 10 ))
  replace_if_changed "$SLURM_CONF" <<EOF
# written by gan-hpc slurm/cluster.sh; a single-node test cluster
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job must wait before it can start again (default
# 120 s); 10 s keeps a preempt-and-requeue cycle near half a minute.
AuthInfo=cred_expire=10
MpiDefault=none
# linuxproc tracks a task's whole process tree, so signals (scancel, --signal) reach the
# trainer that a task starts, as cgroups do on a production cluster.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# sacct then shows each trial job's comment: its trial id
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
MailProg=/bin/true
SchedulerType=sched/backfill
# a requeued job may start again only after cred_expire; the backfill pass that starts it runs
# every bf_interval (default 30 s) or the main scheduler every sched_interval (default 60 s)
SchedulerParameters=bf_interval=5,sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
StateSaveLocation=$PREFIX/state
SlurmdSpoolDir=$PREFIX/spool
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$NODE CPUs=$(hardware_field CPUs) Sockets=$(hardware_field SocketsPerBoard) CoresPerSocket=$(hardware_field CoresPerSocket) ThreadsPerCore=$(hardware_field ThreadsPerCore) RealMemory=$memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  replace_if_changed "$ETC/slurmdbd.conf" <<EOF
# written by gan-hpc slurm/cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a config others can read
}

munge_works() { munge -n | unmunge; }

start_munge() {
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  [[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  munge_works >/dev/null 2>&1 && return 0   # a munged is already serving (ours or the system's)
  say "starting munged"
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  wait_for 50 munge_works || fail "munged did not come up"
  wait_for 10 test -s /run/munge/munged.pid
  cp /run/munge/munged.pid "$RUN/munged.pid"   # remember that this script started it
}

sql() { mariadb --no-defaults --socket="$RUN/mysqld.sock" -uroot "$@"; }

start_database() {
  if [[ ! -d $PREFIX/mysql/mysql ]]; then
    say "creating the accounting database"
    mkdir -p "$PREFIX/mysql"
    mariadb-install-db --no-defaults --user=root --datadir="$PREFIX/mysql" --skip-test-db \
      --auth-root-authentication-method=normal >"$LOG/mariadb-install.log" 2>&1 \
      || fail "mariadb-install-db failed (see $LOG/mariadb-install.log)"
  fi
  if ! running "$RUN/mysqld.pid"; then
    say "starting mariadbd on 127.0.0.1:$DB_PORT"
    setsid mariadbd --no-defaults --user=root --datadir="$PREFIX/mysql" \
      --socket="$RUN/mysqld.sock" --pid-file="$RUN/mysqld.pid" --port="$DB_PORT" \
      --bind-address=127.0.0.1 --log-error="$LOG/mariadb.log" --skip-log-bin \
      --innodb-buffer-pool-size=128M </dev/null >/dev/null 2>&1 &
  fi
  wait_for 120 mariadb-admin --no-defaults --socket="$RUN/mysqld.sock" -uroot ping \
    || fail "mariadbd did not come up (see $LOG/mariadb.log)"
  sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
          CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
          GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
          FLUSH PRIVILEGES;"
}

start_slurmdbd() {
  # slurmdbd reads slurmdbd.conf from the directory of $SLURM_CONF
  running "$RUN/slurmdbd.pid" || { say "starting slurmdbd"; slurmdbd; }
  wait_for 60 sacctmgr -n show cluster || fail "slurmdbd does not answer (see $LOG/slurmdbd.log)"
  if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER_NAME"; then
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
  fi
}

controller_up() { scontrol ping | grep -q UP; }

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null || true; }

start_slurm() {
  if [[ $CONFIG_CHANGED == 1 ]]; then   # running daemons would keep the old config
    local daemon
    for daemon in slurmd slurmctld; do
      running "$RUN/$daemon.pid" && stop_daemon "$daemon"
    done
  fi
  running "$RUN/slurmctld.pid" || { say "starting slurmctld"; slurmctld -f "$SLURM_CONF"; }
  wait_for 60 controller_up || fail "slurmctld does not answer (see $LOG/slurmctld.log)"
  running "$RUN/slurmd.pid" || { say "starting slurmd"; slurmd -f "$SLURM_CONF" -N "$NODE"; }
  local state=""
  for _ in $(seq 120); do
    state=$(node_state)
    case $state in
      idle | mixed | allocated) break ;;
      # a node that was down when the controller last saw it stays down until resumed
      down* | drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  case $state in
    idle | mixed | allocated) ;;
    *) fail "node $NODE is '$state' (see $LOG/slurmctld.log and $LOG/slurmd.log)" ;;
  esac
  # sacct only sees jobs once slurmctld has registered with slurmdbd
  wait_for 60 sacct -n -X -S now || fail "sacct does not answer (see $LOG/slurmdbd.log)"
}

stop_daemon() {  # $1: daemon name, its pidfile is $RUN/$1.pid
  local pidfile=$RUN/$1.pid pid
  if ! running "$pidfile"; then rm -f "$pidfile"; return 0; fi
  pid=$(cat "$pidfile")
  say "stopping $1 (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  say "$1 ignored SIGTERM for 30 s; SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

cancel_all_jobs() {
  running "$RUN/slurmctld.pid" || return 0
  local jobs
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  [[ -z $jobs ]] && return 0
  say "cancelling jobs: $(echo $jobs)"
  scancel $jobs 2>/dev/null || true
  wait_for 60 test -z "$(squeue -h -o %i 2>/dev/null)" || true
}

do_start() {
  local started=$SECONDS
  CONFIG_CHANGED=0
  install_packages
  write_config
  start_munge
  start_database
  start_slurmdbd
  start_slurm
  say "ready in $((SECONDS - started)) s: partition $PARTITION on node $NODE; clients need:"
  say "  export SLURM_CONF=$SLURM_CONF"
}

do_stop() {
  cancel_all_jobs
  local daemon
  for daemon in slurmd slurmctld slurmdbd mysqld munged; do stop_daemon "$daemon"; done
}

do_status() {
  local daemon
  for daemon in munged mysqld slurmdbd slurmctld slurmd; do
    if running "$RUN/$daemon.pid"; then
      echo "$daemon: running (pid $(cat "$RUN/$daemon.pid"))"
    else
      echo "$daemon: stopped"
    fi
  done
  sinfo 2>/dev/null || true
}

command=${1:-start}
case $command in
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  start | stop | status | purge)
    [[ $(id -u) == 0 ]] || fail "run as root (it installs packages and starts daemons)"
    case $command in
      start) do_start ;;
      stop) do_stop ;;
      status) do_status ;;
      purge) do_stop; rm -rf "$PREFIX" ;;
    esac
    ;;
  *) echo "usage: $0 start|stop|status|env|purge" >&2; exit 2 ;;
esac
