#!/bin/bash
# `make test-slurm`: configs/slurm-submit.sh on a real one-node Slurm, against the emulator.
#
# Installs Debian's slurm-wlm and munge if missing (needs root and apt), writes a one-node
# slurm.conf in a scratch folder, starts munged, slurmctld and slurmd, starts the emulator with
# the demo data, submits the array script and its dependent status step as written (the URL
# aside), waits for them, and checks: every task ended 0, the status step ended 0 and said
# complete, and an unsharded pull afterwards finds nothing to fetch (the mirror is whole).
# Everything it starts is stopped at the end; nothing outside the scratch folder is written
# but the munge key (/etc/munge/munge.key, made if absent) and the packages. The scratch
# folder (/tmp/xnatsync-slurm.*) is removed after a pass and kept, with every log, otherwise.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PY:-python3}
START=$(date +%s)
say() { echo "test-slurm [$(( $(date +%s) - START ))s]: $*"; }
fail() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (to install and run slurmd and munged)"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
say "$(dpkg-query -W -f '${Package} ${Version}' slurm-wlm munge 2>/dev/null | tr '\n' ' ')"

W=$(mktemp -d /tmp/xnatsync-slurm.XXXXXX)
chmod 755 "$W"  # the munge user reaches its folder inside
PIDS=()
PASSED=0
cleanup() {
    local status=$? daemons=() pid _
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for f in "$W/slurmctld.pid" "$W/slurmd.pid" "$W/munge/munged.pid"; do
        if [ -s "$f" ]; then
            pid=$(cat "$f")
            kill "$pid" 2>/dev/null && daemons+=("$pid")
        fi
    done
    # the daemons write their state into $W as they stop: remove it once they have gone
    for _ in $(seq 100); do
        alive=0
        for pid in "${daemons[@]}" "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    if [ "$PASSED" = 1 ]; then
        rm -rf "$W" || echo "test-slurm: could not remove $W (a daemon still writing)"
    else
        echo "test-slurm: logs kept in $W"
    fi
    exit "$status"
}
trap cleanup EXIT

# munge: a key, and the daemon as the munge user on a socket of our own
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p "$W/munge" && chown munge:munge "$W/munge"
runuser -u munge -- munged --socket="$W/munge/munge.socket" --pid-file="$W/munge/munged.pid" \
    --log-file="$W/munge/munged.log" --seed-file="$W/munge/seed" \
    || fail "munged did not start: $(tail -3 "$W/munge/munged.log" 2>/dev/null)"

HOST=$(hostname -s)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$W/state" "$W/spool"
cat > "$W/slurm.conf" <<CONF
ClusterName=xnatsync
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge/munge.socket
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/slurmctld.log
SlurmdLogFile=$W/slurmd.log
SlurmctldPort=$(( 16817 + RANDOM % 1000 ))
SlurmdPort=$(( 17818 + RANDOM % 1000 ))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName=$HOST CPUs=$(nproc) RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$W/slurm.conf
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start: $(tail -5 "$W/slurmctld.log")"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start: $(tail -5 "$W/slurmd.log")"
for _ in $(seq 100); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed)' && break
    sleep 0.2
done
sinfo -h -o %T | grep -qE '^(idle|mixed)' \
    || fail "the node is not idle: $(sinfo -h -o '%T %E'); slurmd: $(tail -5 "$W/slurmd.log")"
say "slurmctld and slurmd up ($(sinfo -h -o '%D node, %c CPUs, %m MB'))"

# the emulator with the demo data, on a free port
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
$PY -m xnatsync emulator --seed demo --port "$PORT" >"$W/emulator.log" 2>&1 &
PIDS+=($!)
$PY - <<PYWAIT || fail "the emulator did not start: $(tail -5 "$W/emulator.log")"
import socket, time
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", $PORT), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
PYWAIT
say "emulator at $URL"

# the job as written: configs/ with the emulator's URL, submitted from a folder like the repo's
mkdir -p "$W/job/configs"
for f in "$REPO"/configs/slurm-*.sh; do
    sed "s#https://xnat.example.org#$URL#g" "$f" > "$W/job/configs/$(basename "$f")"
done
cd "$W/job"
export XNATSYNC_USER=admin XNATSYNC_PASSWORD=admin
export PATH="$(dirname "$(command -v "$PY")"):$PATH"
ids=$(bash configs/slurm-submit.sh)
STATUS_JOB=${ids##*$'\n'}
STATUS_JOB=${STATUS_JOB%%;*}
say "submitted; status step is job $STATUS_JOB"
for _ in $(seq 1200); do
    [ -z "$(squeue -h -j "$STATUS_JOB" 2>/dev/null)" ] && break
    sleep 0.5
done
[ -z "$(squeue -h -j "$STATUS_JOB")" ] || fail "jobs still queued after 10 minutes: $(squeue)"
say "all jobs ended"

bad=0
for log in xnatsync-pull-*.log; do
    grep -q "error" "$log" && { say "$log:"; cat "$log"; bad=1; }
done
tasks=$(ls xnatsync-pull-*.log | wc -l)
[ "$tasks" = 16 ] || fail "$tasks array task logs, expected 16"
exit_code=$(scontrol show job "$STATUS_JOB" | grep -o 'ExitCode=[0-9:]*' | head -1)
cat xnatsync-status-"$STATUS_JOB".log
[ "$exit_code" = "ExitCode=0:0" ] || fail "the status step ended $exit_code"
grep -q "complete: all 16 shards finished" xnatsync-status-"$STATUS_JOB".log \
    || fail "the status step did not say complete"
[ "$bad" = 0 ] || fail "an array task logged an error"
xnatsync pull "$URL" --project DEMO --dest mirror --no-progress --report after.json >/dev/null
$PY - <<PYCHECK || fail "an unsharded pull after the array still had files to fetch"
import json, sys
report = json.load(open("after.json"))
print("unsharded pull after the array:", report["files_transferred"], "fetched,",
      report["files_skipped"], "up to date, status", report["status"])
sys.exit(report["files_transferred"] != 0 or report["status"] != "ok")
PYCHECK
PASSED=1
say "passed: 16 shards on Slurm made the whole mirror ($(find mirror -type f -not -path '*/.xnatsync/*' | wc -l) files)"
