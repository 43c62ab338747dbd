#!/usr/bin/env bash
# A single-node Slurm cluster for the study tests, in a folder of its own, without systemd or
# munge (auth/none): `start DIR` writes DIR/slurm.conf, starts slurmctld and slurmd in the
# foreground as background jobs, records their PIDs and waits until the node is idle;
# `stop DIR` stops exactly those PIDs. Clients need SLURM_CONF=DIR/slurm.conf.
set -euo pipefail
cmd=${1:?start|stop}; dir=${2:?folder}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
case $cmd in
start)
  for p in slurmctld slurmd sinfo sbatch squeue scancel; do
    command -v "$p" >/dev/null || { echo "slurm-test-cluster: $p not installed" >&2; exit 3; }
  done
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  host=$(hostname -s)
  node=$(slurmd -C | head -1 | sed "s/^NodeName=[^ ]*/NodeName=$host/")
  cat > "$dir/slurm.conf" <<CONF
ClusterName=studio-test
SlurmctldHost=$host
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=sched_interval=1
MailProg=/bin/true
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -D -f "$dir/slurm.conf" >"$dir/log/slurmctld.out" 2>&1 &
  echo $! > "$dir/slurmctld.started"
  slurmd -D -f "$dir/slurm.conf" >"$dir/log/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.started"
  for _ in $(seq 1 100); do
    state=$(sinfo -h -o %t 2>/dev/null || true)
    [[ $state == idle ]] && { echo "slurm-test-cluster: up ($dir)"; exit 0; }
    sleep 0.2
  done
  echo "slurm-test-cluster: the node did not become idle (state: ${state:-none}); see $dir/log" >&2
  exit 1
  ;;
stop)
  for f in slurmd slurmctld; do
    if [[ -f "$dir/$f.started" ]]; then
      pid=$(cat "$dir/$f.started")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$f.started"
    fi
  done
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
