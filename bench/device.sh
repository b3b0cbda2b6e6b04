#!/usr/bin/env bash
# The measurements a lent GPU machine is for (issue 22), as one prepared call of at most 9
# minutes (run it through the device tool with timeout_s 590):
#
#   bash bench/device.sh [OUT]     # OUT: folder for the results (default: $OUT, else ./device-out)
#
# 1. machine.txt: the CPU's flags (is it AMX?), the GPU, torch.
# 2. tests/test_cuda.py: the paths only a CUDA GPU takes.
# 3. gpu-data.json: `bench.gpu`'s data-pipeline rows, train.train on the GPU with the decoded
#    images kept in memory (--cache-images on) and decoded per step (off), 0 and 4 loader workers.
#    gpu-compile.json: train.train on the GPU with --compile off and on (ngf 64, batch 1, bf16).
#    (`python -m bench.gpu` prints each row into the log as it is measured.)
# 4. host-training.json: `bench.training`'s eager rows (fp32 NCHW and channels-last, bf16) on the
#    host CPU, pinned to two cores as on the project's own machines: the training target on a CPU
#    with native bf16 (the hosts seen so far were Intel Xeons with AMX).
# 5. host-compiled.json: `bench.compiled` for the paper's generator on those two cores: the
#    compiled inference candidates and their first and second start.
#
# Each stage has a time limit and the next one runs whatever the last one did; log.txt holds every
# stage's output. The host stages took 57 and 40 s on the project's own 2-core AMD EPYC when it
# was quiet (over 110 and 89 s while a test suite ran beside them). Uses the machine's own
# python3 and PyTorch, with no install: the stages import neither gradio nor OpenVINO. At most 8
# files come back from a lent machine: this writes 6.
set -u
out=${1:-${OUT:-$PWD/device-out}}
mkdir -p "$out"
py=${PYTHON:-python3}
log=$out/log.txt
: >"$log"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

stage() {  # stage NAME SECONDS COMMAND...: run COMMAND for at most SECONDS, its output in the log
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    echo "== $name (at most $limit s): $*" | tee -a "$log"
    timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
}

{
    date -u
    lscpu | grep -E 'Model name|^CPU\(s\)'
    grep -o -w -E 'amx_bf16|amx_tile|avx512_bf16|avx512f|avx2' /proc/cpuinfo | sort | uniq -c
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt" >>"$log"

# shellcheck disable=SC2054  # "0,1" is taskset's list of CPUs, one argument
host=(taskset -c 0,1 env OMP_NUM_THREADS=2 "$py")
gpu=("$py" -m bench.gpu --no-inference --train-steps 0)
# Limits: 70 + 100 + 140 + 110 + 110 = 530 s, so that the whole call stays inside 590 s. Each
# benchmark writes its JSON after every row (or configuration), so a stage cut short keeps what it
# measured; the ngf 64 rows, the ones the training target is about, come first.
stage cuda-tests 70 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py
stage gpu-data 100 "${gpu[@]}" --compile-steps 0 --data-steps 80 --json "$out/gpu-data.json"
stage gpu-compile 140 "${gpu[@]}" --data-steps 0 --compile-steps 40 --json "$out/gpu-compile.json"
stage host-training 110 "${host[@]}" -m bench.training --ngf 64 16 --batch 1 4 --steps 5 \
    --rounds 2 --warmup 1 --no-compile --json "$out/host-training.json"
stage host-compiled 110 "${host[@]}" -m bench.compiled --models paper --runs 10 \
    --json "$out/host-compiled.json"
echo "== done; results in $out" | tee -a "$log"
