#!/usr/bin/env bash
# Real-Slurm end-to-end test of `razor slurm submit` (docs/slurm.md): starts munged, slurmctld and slurmd (Debian's
# Slurm 22.05) single-node on 127.0.0.1 with a throwaway key and slurm.conf in a temporary folder, submits the
# quantize and pack array jobs for the tiny fixture plus their merge jobs, waits for them (bounded), and checks the
# merged checkpoint / GGUF equal a single-process `razor quantize` / `razor pack` byte for byte. Every daemon it started is stopped on exit.
#
#   bash tests/slurm_test.sh RAZOR_BINARY MODELS_DIR
#
# Exit 77 (ctest: skipped) with the reason on stdout when Slurm cannot run here: not root, or the packages missing
# (scripts/test.sh fails on that skip too: CI runs as root with scripts/setup-deps.sh's packages). Once it can run,
# a daemon that does not come up is a failure. KEEP=1 keeps the temporary folder.
set -uo pipefail

RAZOR=${1:?usage: slurm_test.sh RAZOR_BINARY MODELS_DIR}
MODELS=${2:?usage: slurm_test.sh RAZOR_BINARY MODELS_DIR}
MODEL="$MODELS/tiny-qwen3-5-moe"
WAIT_S=${RAZOR_SLURM_WAIT_S:-180}
t_start=$(date +%s)

skip() { echo "SKIP slurm_test: $*"; exit 77; }
fail() { echo "FAIL slurm_test: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root: slurmd launches jobs as their user and this test runs SlurmUser=root (uid $(id -u))"
missing=()
for b in munged mungekey slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
[ ${#missing[@]} -eq 0 ] || skip "missing ${missing[*]} (apt-get install slurmctld slurmd slurm-client munge)"
export PATH="$PATH:/usr/sbin:/sbin"
[ -x "$RAZOR" ] || fail "no razor binary at $RAZOR"
case "$RAZOR" in /*) ;; *) RAZOR="$PWD/$RAZOR" ;; esac
[ -f "$MODEL/config.json" ] || fail "no fixture at $MODEL"

T=$(mktemp -d /tmp/razor-slurm.XXXXXX) || fail "mktemp"
chmod 711 "$T"  # munged wants every directory above its socket searchable
pids=()
cleanup() {
  local rc=$?
  [ -n "${wk_pid:-}" ] && kill "$wk_pid" 2>/dev/null  # the razor worker this script started, if still there
  # Stop only what this script started, by the pids the daemons wrote (slurmd first: it owns the job steps).
  for f in slurmd slurmctld munged; do
    [ -f "$T/$f.pid" ] && kill "$(cat "$T/$f.pid")" 2>/dev/null
  done
  for f in slurmd slurmctld munged; do
    if [ -f "$T/$f.pid" ]; then
      p=$(cat "$T/$f.pid")
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$p" 2>/dev/null
    fi
  done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for l in "$T"/slurmctld.log "$T"/slurmd.log "$T"/munged.log "$T"/worker.out "$T"/worker.err "$WORK"/logs/* \
      "$WORK"/worker*/logs/*; do
      [ -f "$l" ] && { echo "---- $l (tail)"; tail -n 30 "$l"; }
    done
  fi
  [ "${KEEP:-0}" = 1 ] && echo "kept $T" || rm -rf "$T"
  exit "$rc"
}
WORK="$T/shared fs/it's \$work"  # the scripts must quote it (a space, a quote, a dollar)
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- munge: throwaway key, its own socket
mungekey -c -b 1024 -k "$T/munge.key" >/dev/null 2>&1 || fail "mungekey could not create a key"
chmod 400 "$T/munge.key"
munged -f --key-file="$T/munge.key" --socket="$T/munge.sock" --pid-file="$T/munged.pid" \
  --log-file="$T/munged.log" --seed-file="$T/munged.seed" >"$T/munged.out" 2>&1 ||
  fail "munged refused to start: $(tail -n 3 "$T/munged.out" "$T/munged.log" 2>/dev/null | tr '\n' ' ')"
for _ in $(seq 50); do [ -S "$T/munge.sock" ] && break; sleep 0.1; done
munge -S "$T/munge.sock" -n 2>/dev/null | unmunge -S "$T/munge.sock" >/dev/null 2>&1 ||
  fail "munged does not answer on $T/munge.sock"

# ---- two free TCP ports above 1024 (not listed in /proc/net/tcp*)
port_free() {
  local hex
  hex=$(printf ':%04X ' "$1")
  ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '{print $2}' | grep -q "${hex% }\$"
}
pick_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    [ "$p" != "${1:-0}" ] && port_free "$p" && { echo "$p"; return; }
  done
  return 1
}
CTLD_PORT=$(pick_port) || fail "no free port"
SLURMD_PORT=$(pick_port "$CTLD_PORT") || fail "no free port"
HOST=$(uname -n | cut -d. -f1)
NCPU=$(nproc)
mkdir -p "$T/state" "$T/spool"

cat >"$T/slurm.conf" <<EOF
ClusterName=razortest
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldDebug=info
SlurmdDebug=info
NodeName=razornode NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$NCPU State=UNKNOWN
PartitionName=razor Nodes=razornode Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"

slurmctld -i >"$T/slurmctld.out" 2>&1 || fail "slurmctld refused to start: $(tail -n 5 "$T/slurmctld.out" "$T/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
up=0
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && { up=1; break; }; sleep 0.2; done
[ $up = 1 ] || fail "slurmctld does not answer: $(tail -n 5 "$T/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
slurmd -N razornode >"$T/slurmd.out" 2>&1 || fail "slurmd refused to start: $(tail -n 5 "$T/slurmd.out" "$T/slurmd.log" 2>/dev/null | tr '\n' ' ')"
idle=0
for _ in $(seq 150); do
  st=$(sinfo -h -n razornode -o %t 2>/dev/null)
  case "$st" in idle*|mix*|alloc*) idle=1; break ;; esac
  sleep 0.2
done
[ $idle = 1 ] || fail "node razornode not idle (state '$st'): $(tail -n 5 "$T/slurmd.log" 2>/dev/null | tr '\n' ' ')"
t_up=$(date +%s)
echo "slurm up in $((t_up - t_start)) s: $(sinfo -h -o '%P %a %D %t %N') (Slurm $(sinfo -V | awk '{print $2}'))"

# ---- the reference: one process
"$RAZOR" quantize "$MODEL" --cpu --out "$T/single" >/dev/null 2>&1 || fail "single razor quantize failed"

"$RAZOR" pack "$MODEL" --type q4_K --out "$T/single.gguf" >/dev/null 2>&1 || fail "single razor pack failed"

# ---- two array jobs (3 tasks over 4 layers: quantize; 2 tasks: pack) and their merges, through the real sbatch
mkdir -p "$WORK"
submit() {  # KIND ARGS... -> "array_id merge_id"
  local out a m
  out=$("$RAZOR" slurm submit "$@" 2>&1) || fail "razor slurm submit $*: $out"
  echo "submitted $1: $out" >&2
  a=$(printf '%s' "$out" | sed -n 's/.*"array_job_id":"\([0-9]*\)".*/\1/p')
  m=$(printf '%s' "$out" | sed -n 's/.*"merge_job_id":"\([0-9]*\)".*/\1/p')
  [ -n "$a" ] && [ -n "$m" ] || fail "no job ids in: $out"
  scontrol show job "$m" | grep -q "Dependency=afterok:${a}" || fail "merge job $m has no afterok:$a dependency"
  echo "$a $m"
}
read -r q_array q_merge < <(submit quantize "$MODEL" --cpu --tasks 3 --out "$WORK/merged" --work-dir "$WORK")
[ -n "${q_merge:-}" ] || exit 1
read -r p_array p_merge < <(submit pack "$MODEL" --type q4_K --layers-per-task 2 --out "$WORK/gguf/merged.gguf" \
  --work-dir "$WORK/pack")
[ -n "${p_merge:-}" ] || exit 1

wait_job() {  # MERGE_ID ARRAY_ID
  local state="" reason deadline=$(( t_up + WAIT_S ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1)
    reason=$(scontrol show job "$1" 2>/dev/null | sed -n 's/.*Reason=\([A-Za-z_]*\).*/\1/p' | head -n 1)
    case "$state" in
      COMPLETED) return 0 ;;
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) fail "merge job $1 ended $state" ;;
    esac
    [ "$reason" = DependencyNeverSatisfied ] && fail "an array task of job $2 failed (merge $1: DependencyNeverSatisfied)"
    sleep 1
  done
  fail "merge job $1 not done ${WAIT_S} s after Slurm came up (state ${state:-unknown})"
}
wait_job "$q_merge" "$q_array"
wait_job "$p_merge" "$p_array"
t_done=$(date +%s)
echo "array jobs $q_array, $p_array + merge jobs $q_merge, $p_merge completed in $((t_done - t_up)) s"
for i in 0 1 2; do
  scontrol show job "${q_array}_$i" | grep -q "JobState=COMPLETED" || fail "quantize array task $i not COMPLETED"
done
for i in 0 1; do
  scontrol show job "${p_array}_$i" | grep -q "JobState=COMPLETED" || fail "pack array task $i not COMPLETED"
done
ls "$WORK/logs" | grep -q "^task-${q_array}_0.out$" || fail "no task log task-${q_array}_0.out in $WORK/logs"
cmp -s "$T/single.gguf" "$WORK/gguf/merged.gguf" || fail "the Slurm-merged GGUF differs from a single razor pack"

# ---- a failing task: the merge is cancelled (--kill-on-invalid-dep), not left pending
read -r f_array f_merge < <(submit quantize "$MODEL" --tasks 2 --razor /bin/false --out "$WORK/never" \
  --work-dir "$WORK/failing")
[ -n "${f_merge:-}" ] || exit 1
fstate=""
for _ in $(seq 60); do
  fstate=$(scontrol show job "$f_merge" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1)
  [ "$fstate" = CANCELLED ] && break
  sleep 1
done
[ "$fstate" = CANCELLED ] || fail "merge job $f_merge after failing tasks is ${fstate:-unknown}, not CANCELLED"
[ ! -e "$WORK/never" ] || fail "a merge output exists although the tasks failed"
echo "failing tasks of job $f_array: merge job $f_merge CANCELLED"

# ---- through the worker channel (what the workbench sends, docs/slurm.md): method `slurm` of a real
# `razor worker` over stdin/stdout. A coprocess: its stdin stays open until the answer (end of input = shutdown =
# cancel).
coproc WK { "$RAZOR" worker --cpu --telemetry-ms 0 2>"$T/worker.err"; }
wk_pid=$WK_PID
wk_in=${WK[1]}
wk_out=${WK[0]}
: >"$T/worker.out"
wk_send() { printf '%s\n' "$1" >&"$wk_in"; }
wk_answer() {  # ID [REGEX: send a cancel for ID once a line matches it]; the job's lines go to $T/worker.out
  local id=$1 line sent=0 deadline=$(( $(date +%s) + WAIT_S ))
  while [ "$(date +%s)" -lt "$deadline" ] && IFS= read -r -t 60 line <&"$wk_out"; do
    printf '%s\n' "$line" >>"$T/worker.out"
    if [ -n "${2:-}" ] && [ $sent = 0 ] && printf '%s' "$line" | grep -q "$2"; then
      wk_send '{"t":"cancel","id":'"$id"'}'
      sent=1
    fi
    case "$line" in *'"t":"result","id":'"$id,"*|*'"t":"error","id":'"$id,"*) printf '%s\n' "$line"; return 0 ;; esac
  done
  return 1
}
json_id() { printf '%s' "$1" | sed -n 's/.*"'"$2"'":"\([0-9]*\)".*/\1/p'; }
wk_send '{"t":"req","id":1,"method":"slurm","params":{"kind":"quantize","model":"'"$MODEL"'","out":"'"$WORK/worker/merged"'","work_dir":"'"$WORK/worker"'","tasks":2,"task_args":["--cpu"],"poll_s":0.5}}'
res=$(wk_answer 1) || fail "no answer from the worker's slurm job"
case "$res" in *'"t":"result"'*) ;; *) fail "worker slurm job: $res" ;; esac
w_array=$(json_id "$res" array_job_id)
w_merge=$(json_id "$res" merge_job_id)
[ -n "$w_array" ] && [ -n "$w_merge" ] || fail "no job ids in the result: $res"
printf '%s' "$res" | grep -q '"states":\["COMPLETED","COMPLETED"\]' || fail "task states in the result: $res"
printf '%s' "$res" | grep -q '"merge_state":"COMPLETED"' || fail "merge state in the result: $res"
printf '%s' "$res" | grep -q '"tasks":2' || fail "task count in the result: $res"
for f in array.sh merge.sh submit.sh; do
  grep -q '"t":"artifact","id":1,.*"kind":"file","path":"'"$WORK/worker/$f"'"' "$T/worker.out" || fail "no file artifact $f"
done
grep -q '"t":"log","id":1,.*"msg":"submitted array job '"$w_array"' (2 tasks) and merge job '"$w_merge"' ' "$T/worker.out" ||
  fail "no log line with the job ids"
grep '"t":"progress","id":1,' "$T/worker.out" | grep -q '"total":2.0,"what":"array '"$w_array"': ' ||
  fail "no progress line about the array tasks"
last=$(grep '"t":"progress","id":1,' "$T/worker.out" | tail -n 1)
case "$last" in *'"done":2.0,"total":2.0,"what":"merge '"$w_merge"' COMPLETED (2/2 tasks completed)"'*) ;;
  *) fail "last progress line: $last" ;; esac
echo "worker method slurm: array job $w_array + merge job $w_merge COMPLETED, $(grep -c '"t":"progress","id":1,' "$T/worker.out") progress lines"

# ---- cancel through the worker: tasks that would run 10 minutes; cancel once one runs; nothing is left in Slurm
printf '#!/bin/bash\nsleep 600\n' >"$T/slow-razor"
chmod 755 "$T/slow-razor"
wk_send '{"t":"req","id":2,"method":"slurm","params":{"kind":"quantize","model":"'"$MODEL"'","out":"'"$WORK/worker-cancel/never"'","work_dir":"'"$WORK/worker-cancel"'","tasks":2,"razor":"'"$T/slow-razor"'","poll_s":0.5}}'
res=$(wk_answer 2 '"t":"progress","id":2,.*[1-9] running') || fail "no answer from the cancelled slurm job"
case "$res" in *'"code":"cancelled"'*'scancel '*) ;; *) fail "cancelled slurm job answered: $res" ;; esac
c_array=$(grep -o '"msg":"submitted array job [0-9]* (2 tasks) and merge job [0-9]*' "$T/worker.out" | tail -n 1 |
  awk '{print $4, $10}')
read -r c_array c_merge <<<"$c_array"
[ -n "${c_merge:-}" ] || fail "no job ids logged for the cancelled job"
left=""
for _ in $(seq 60); do
  left=$(squeue -h -o '%A %F %T' | awk -v a="$c_array" -v m="$c_merge" '$2 == a || $1 == m || $1 == a')
  [ -z "$left" ] && break
  sleep 0.5
done
[ -z "$left" ] || fail "squeue still lists jobs of the cancelled submission: $left"
for j in "${c_array}_0" "${c_array}_1" "$c_merge"; do
  scontrol show job "$j" | grep -q "JobState=CANCELLED" || fail "job $j is not CANCELLED after the cancel"
done
[ ! -e "$WORK/worker-cancel/never" ] || fail "the cancelled job wrote an output"
wk_send '{"t":"shutdown"}'
IFS= read -r -t 30 line <&"$wk_out"
[ "$line" = '{"t":"bye"}' ] || fail "the worker did not say bye: $line"
wait "$wk_pid" 2>/dev/null
wk_pid=""
echo "worker method slurm cancelled: scancel $c_array $c_merge, squeue empty, tasks and merge CANCELLED"

# ---- merged == single: every file byte for byte but the summary; the summary's totals equal
totals() { awk '/^ "totals": \{/{p=1} p{print} p&&/^ \}/{exit}' "$1"; }
same_as_single() {  # MERGED_DIR PARTS_OF_TASK_0
  local n=0 f b
  for f in "$T/single"/*; do
    b=$(basename "$f")
    [ -f "$1/$b" ] || fail "merged output $1 lacks $b"
    n=$((n + 1))
    [ "$b" = razor_quant_summary.json ] && continue
    cmp -s "$f" "$1/$b" || fail "$b differs between the single run and the Slurm merge $1"
  done
  [ "$n" -eq "$(ls "$1" | wc -l)" ] || fail "merged output $1 has other files than the single run"
  [ -n "$(totals "$T/single/razor_quant_summary.json")" ] || fail "no totals in the single run's summary"
  [ "$(totals "$T/single/razor_quant_summary.json")" = "$(totals "$1/razor_quant_summary.json")" ] ||
    fail "summary totals differ ($1)"
  grep -q '"layers": "'"$2"'"' "$1/razor_quant_summary.json" || fail "merged summary $1 does not list the parts"
  echo "$n"
}
n=$(same_as_single "$WORK/merged" "0:2,rest") || exit 1
same_as_single "$WORK/worker/merged" "0:2,rest" >/dev/null || exit 1
echo "PASS slurm_test: merged checkpoint == single razor quantize ($n files; also through the worker), merged GGUF == single razor pack; total $(( $(date +%s) - t_start )) s"
