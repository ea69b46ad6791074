#!/usr/bin/env bash
# Everything a lent GPU should check and measure, in one call of at most ~9.5 minutes:
#   1. the environment (GPU, driver, torch, timm, accelerate);
#   2. device_check.py without compile: every family on CUDA against the CPU in float64, channels_last,
#      gradient checkpointing, bf16 and fp16 autocast (fp16 with a GradScaler), features_only / forward_intermediates;
#   3. training through `accelerate launch` on scikit-learn's digits: bf16 + channels_last + EMA, then fp16;
#      then zerosnet-validate of the bf16 run on the GPU with input noise;
#   4. benchmark.py with bf16 autocast: eager and channels_last, the default models;
#   5. device_check.py's torch.compile checks (fullgraph, against eager);
#   6. benchmark.py: eager against torch.compile for timm's resnet50 and zerosnet50 (target 3 on the GPU);
#   7. benchmark.py with TIMM_ZEROSNET_TRITON=0: the multistep nets with their combination as plain ops, against
#      the same references, to compare with stage 4 (the fused Triton combination);
#   8. profile_gpu.py: where the kernel time of a bf16 training step goes, fused and plain;
#   9. profile_gpu.py: bf16 inference of zerosnet50 and resnetv2_50, NCHW then channels_last, fused and plain (the
#      multistep models' channels_last inference was slower than NCHW on the H200, unexplained).
# Each stage gets what is left of the deadline (DEADLINE_S, default 560 s) or its own cap, whichever is less, so
# the later stages are cut first. Results go to $OUT: session.log and results.tgz (remade after every stage), made
# from a fresh work folder of each call (WORK, default a new $TMPDIR/gpu_session_work.XXXXXX: a second call on the same
# machine found the first call's run and was refused). The exit status is 1 if a stage's command failed.
# Usage, from the repository root: OUT=/tmp/gpu bash benchmarks/gpu_session.sh
# Rehearsal on a CPU: DEVICE=cpu BATCH=2 CIFAR_BATCH=8 MEM_BATCH=4 EPOCHS=1 DEADLINE_S=3000 bash benchmarks/gpu_session.sh
# (stage 3 then skips its fp16 run, which needs a GPU, and trains with every core, up to TRAIN_CAP=600 s)
# On the lent machine a missing package travels as wheels in .whl/ (see benchmarks/README.md).
set -u
OUT=${OUT:-/tmp/gpu_session}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}  # cpu: a rehearsal of the plumbing (with small BATCH, CIFAR_BATCH, EPOCHS)
BATCH=${BATCH:-128}           # benchmark batch at 224x224
CIFAR_BATCH=${CIFAR_BATCH:-512}  # benchmark batch at 32x32
EPOCHS=${EPOCHS:-3}           # digits training epochs
MEM_BATCH=${MEM_BATCH:-256}   # extra batch of check 2 (memory) at 224x224
STAGES=${STAGES:-123456789}   # which stages to run, e.g. STAGES=56 for the compile stages alone
DEADLINE_S=${DEADLINE_S:-560}
mkdir -p "$OUT" || exit 1
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_session_work.XXXXXX")} || exit 1
if [[ -e $WORK && -n $(ls -A "$WORK") ]]; then
    echo "WORK=$WORK is not empty: a call measures into a fresh folder; pass an empty or new one" >&2
    exit 2
fi
mkdir -p "$WORK" || exit 1
LOG=$OUT/session.log
START=$SECONDS
FAILED=()
echo "=== $(date +%F' '%T) work folder $WORK" | tee -a "$LOG"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing .whl/ failed" | tee -a "$LOG"; exit 1; }
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

# stage N TITLE: true (and a header in the log) if stage N is selected
stage() {
    [[ $STAGES == *$1* ]] || return 1
    echo "=== $1 $2" | tee -a "$LOG"
}

# run CAP CMD...: CMD with a time limit of min(CAP, what is left of the deadline); its output goes to the log
run() {
    local cap=$1
    shift
    local left=$((DEADLINE_S - (SECONDS - START)))
    local limit=$((cap < left ? cap : left))
    if ((limit < 10)); then
        echo "--- skipped (deadline): $*" | tee -a "$LOG"
        return 124
    fi
    echo "--- $(date +%T) [limit ${limit} s] $*" | tee -a "$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    echo "--- exit $rc after $((SECONDS - START)) s" | tee -a "$LOG"
    ((rc == 0)) || FAILED+=("$* (exit $rc)")
    tar czf "$OUT/results.tgz" -C "$WORK" . 2>/dev/null
    return $rc
}

if stage 1 environment; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv >>"$LOG" 2>&1
    run 60 $PY -c "import os, torch, timm, accelerate, timm_zerosnet; print('torch', torch.__version__, 'cuda', \
torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'timm', timm.__version__, 'accelerate', \
accelerate.__version__, 'gpu', torch.cuda.is_available() and torch.cuda.get_device_name(0), 'cores', os.cpu_count())"
fi

stage 2 "device checks (no compile)" &&
    run 150 $PY benchmarks/device_check.py --device $DEVICE --no-compile --out "$WORK/device_check.json"

if stage 3 "training through accelerate launch, digits"; then
    LAUNCH="-m accelerate.commands.launch --num_processes 1 --num_machines 1 --dynamo_backend no"
    if [[ $DEVICE == cpu ]]; then  # the rehearsal: the machine's cores, a CPU's pace, and no fp16 (it needs a GPU)
        THREADS=$(nproc) TRAIN_CAP=${TRAIN_CAP:-600}
    else
        THREADS=4 TRAIN_CAP=${TRAIN_CAP:-75}
    fi
    TRAIN="-m timm_zerosnet.train -c digits_demo --epochs $EPOCHS --threads $THREADS --output $WORK/runs"
    run "$TRAIN_CAP" $PY $LAUNCH --mixed_precision bf16 $TRAIN --experiment bf16 --channels-last --model-ema
    if [[ $DEVICE == cpu ]]; then
        echo "--- skipped: fp16 mixed precision needs a GPU (zerosnet-train refuses it on the CPU)" | tee -a "$LOG"
    else
        run 60 $PY $LAUNCH --mixed_precision fp16 $TRAIN --experiment fp16
    fi
    run 45 $PY -m timm_zerosnet.validate --checkpoint "$WORK/runs/bf16" --mixed-precision bf16 \
        --noise randn:0.1,rand:0.1 --workers 0 --results-file "$WORK/validate_bf16.json"
    rm -rf "$WORK"/runs/*/checkpoints "$WORK"/runs/*/*.safetensors # keep the logs and metrics, not the weights
fi

BENCH="benchmarks/benchmark.py --device $DEVICE --amp --batch-size $BATCH --batch-size-cifar $CIFAR_BATCH --isolate none"
BENCH="$BENCH --reps 3 --min-rep-s 0.2"
stage 4 "benchmark: eager and channels_last, bf16 autocast" &&
    run 170 $PY $BENCH --modes eager,channels_last --mem-batch "$MEM_BATCH" --out-dir "$WORK/bench" --tag gpu

CMODELS=zerosnet20_tra_cifar,lmresnet20_cifar,zerosnet18_diffstride_cifar # DiffStride last: slowest
stage 5 "torch.compile checks" &&
    run 100 $PY benchmarks/device_check.py --device $DEVICE --models $CMODELS --compile-models $CMODELS \
        --out "$WORK/device_check_compile.json"

stage 6 "benchmark: torch.compile speed-up" &&
    run 300 $PY $BENCH --modes eager,compile --models resnet50,zerosnet50 --no-auto-add --baseline resnet50 \
        --mem-batch '' --out-dir "$WORK/bench" --tag gpu_compile --no-chart

PAIRS=timm-resnetv2_20_cifar,lmresnet20_cifar,zerosnet20_cifar,resnetv2_50,lmresnet50,zerosnet50
stage 7 "benchmark: the multistep combination as plain ops (TIMM_ZEROSNET_TRITON=0)" &&
    TIMM_ZEROSNET_TRITON=0 run 100 $PY $BENCH --modes eager,channels_last --models $PAIRS --no-auto-add \
        --baseline resnetv2_50 --mem-batch '' --out-dir "$WORK/bench" --tag gpu_plain --no-chart

stage 8 "profile: kernel time of a bf16 training step, fused and plain" &&
    run 90 $PY benchmarks/profile_gpu.py --device $DEVICE --models zerosnet50,lmresnet50,preresnet50,resnetv2_50 \
        --batch "$BATCH" --plain

if stage 9 "profile: bf16 inference, NCHW and channels_last, fused and plain"; then
    IMODELS="--models zerosnet50,resnetv2_50 --batch $BATCH --phase infer --plain"
    run 45 $PY benchmarks/profile_gpu.py --device $DEVICE $IMODELS
    run 45 $PY benchmarks/profile_gpu.py --device $DEVICE $IMODELS --channels-last
fi

echo "=== done after $((SECONDS - START)) s; ${#FAILED[@]} command(s) failed" | tee -a "$LOG"
for failed in "${FAILED[@]}"; do
    echo "failed: $failed" | tee -a "$LOG"
done
tar czf "$OUT/results.tgz" -C "$WORK" .
((${#FAILED[@]} == 0))
