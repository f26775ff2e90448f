#!/bin/bash
# Issue 6 device check: correctness first, then speed. Runs on the lent GPU machine from the repository
# root after ../shared/device/prepare.sh, e.g. the device tool's run with carry [".device"] and
#   command: bash scripts/device-check.sh            (the default kernels: on H100/H200 the TMA-loaded wgmma GEMMs)
#   command: bash scripts/device-check.sh hopper     (H100/H200: the wgmma GEMMs, LinearWgmma and LinearWgmmaTma)
#   command: bash scripts/device-check.sh tma        (H100/H200: the TMA-loaded GEMM alone, then the model on it)
# Logs and JSON go under $OUT, packed at the end into $OUT/device-check.tar.gz (the device tool returns
# at most 8 files). Each step has its own time limit and a failing step does not stop the
# later ones; status.txt records every step's exit code (0 ok, 1 a check or case failed, 124 timed out).
# The limits add up to 600 s in hopper mode (490 s otherwise; 90 s more when the smoke step fails and
# memcheck runs); on an H200 hopper mode took ~200 s before the TMA step. Run it with the device tool's
# timeout_s at 600 (every limit). Building the synthetic DiT-XL/2 takes ~10 s of host time per model.
# hopper: the steps run with SMOOTHCACHE_KERNELS=wgmma (fp16 GEMMs on LinearWgmma; its GEMM table keeps
# the mma.sync kernel and cuBLAS rows for comparison), plus the TMA-loaded GEMM's own step (gemm-tma), the
# forward on the mma.sync kernels (SMOOTHCACHE_KERNELS=tensorcores) and on wgmma-tma in the same call for the ratios,
# and sampling on wgmma-tma.
# Its smoke step runs first, in its own process: a wgmma kernel that reads its descriptors wrongly fails
# there, and the GEMM step's layout probe then names the elements it read.
set -u
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
STATUS="$OUT/status.txt"
: > "$STATUS"

# Steps that could run past BUDGET seconds from the start (a step's limit counted in full) are skipped, so that the
# packing at the end always runs inside the device tool's 600 s.
BUDGET=${DEVICE_CHECK_BUDGET:-570}
step() {
    local name=$1 limit=$2
    shift 2
    if [ $((SECONDS + limit)) -gt "$BUDGET" ]; then
        echo "$name: skipped, $SECONDS s gone and its limit $limit s would pass the budget of $BUDGET s" | tee -a "$STATUS"
        return
    fi
    local start=$SECONDS
    timeout "$limit" bash .device/on-device.sh smoothcache "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$STATUS"
}

forward() { # forward NAME TABLE: the fp16 forward at batch 2 and 16, profiled, on a GEMM tuning table (none: built-in)
    SMOOTHCACHE_GEMM_TUNING=$2 step "$1" 50 bench --suite forward --device cuda --precision fp16 --batch 2 --iterations 10 --profile ${NO_PDL:-} --json "$OUT/$1.json"
}

# Each forward and sampling step's DiT-XL/2 fp16 times side by side, with the kernel options they ran with.
xl_summary() {
    echo "== DiT-XL/2 fp16: forward ms (replay, pdl) at batch 2 | 16; 8-image job s uncached / cached (speedup)"
    python3 - "$OUT" <<'PY' 2>/dev/null || echo "(python3 not available: see the logs above)"
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "forward-*.json")) + glob.glob(os.path.join(sys.argv[1], "sampling*.json"))):
    d, name = json.load(open(path)), os.path.basename(path)[:-5]
    rows = [r for r in (d.get("forward") or []) if "XL" in r["model"] and r["precision"] == "fp16"]
    cells = [f'{r["milliseconds"]:.2f} ({r.get("replayMilliseconds") or 0:.2f}, {r.get("dependentReplayMilliseconds") or 0:.2f})' for r in sorted(rows, key=lambda r: r["batch"])]
    jobs = [r for r in (d.get("sampling") or []) if "XL" in r["model"]]
    cells += [f'{j["uncachedSeconds"]:.3f} / {j["cachedSeconds"]:.3f} ({j["uncachedSeconds"] / j["cachedSeconds"]:.2f}x)' for j in jobs]
    print(f'{name:32} {" | ".join(cells)}   {d.get("kernelOptions") or ""}')
PY
}

# gemm_checks LIMIT ITERATIONS: bench-gemm --tma, its checks first, then its table in what time is left. If a check
# fails, the same checks without PtxTarget.PromoteLocalScalars (the GEMMs' PTX edit) say whether that edit is why; if
# they pass, the later steps run without it, and gemm-tma.log is theirs (the failing one kept as gemm-tma-promoted.log).
gemm_checks() {
    step gemm-tma "$1" bench-gemm --tma --iterations "$2" --json "$OUT/gemm-tma.json"
    if grep -q "^FAIL" "$OUT/gemm-tma.log"; then
        SMOOTHCACHE_PROMOTE_LOCALS=off step gemm-tma-unpromoted "$1" bench-gemm --tma --iterations 1 --json "$OUT/gemm-tma-unpromoted.json"
        if ! grep -q "^FAIL" "$OUT/gemm-tma-unpromoted.log"; then
            export SMOOTHCACHE_PROMOTE_LOCALS=off
            echo "the checks pass without PromoteLocalScalars: the later steps run without it" | tee -a "$STATUS"
            mv "$OUT/gemm-tma.log" "$OUT/gemm-tma-promoted.log"
            cp "$OUT/gemm-tma-unpromoted.log" "$OUT/gemm-tma.log"
        fi
    fi
}

# The tails of the logs named (those that exist).
show_logs() {
    for f in "$@"; do
        [ -f "$f" ] && { echo "== $(basename "$f" .log)"; grep -v "^NVIDIA\|^device:" "$f" | tail -n 30; }
    done
}

# The tuner's shapes, choices and per-forward totals (the last $1 lines).
show_tune() {
    [ -f "$OUT/tune.log" ] && { echo "== tune (shapes, choices, per-forward totals)"; grep -E "^[0-9]|chosen|FAIL|^batch|^wrote" "$OUT/tune.log" | tail -n "$1"; }
}

# Last, where the device tool's tail surely shows them: the XL numbers side by side and every step's exit code; then
# everything packed into one file (the device tool returns at most 8).
finish() {
    xl_summary
    echo "== summary"
    cat "$STATUS"
    (cd "$OUT" && tar czf device-check.tar.gz --remove-files -- *.log *.json status.txt 2>/dev/null)
    exit 0
}

MODE=${1:-default}
case "$MODE" in
    default|hopper|tma|quick|deep) ;;
    *) echo "usage: bash scripts/device-check.sh [default|hopper|tma|quick|deep]" >&2; exit 2 ;;
esac
# deep (~440 s; run it with timeout_s 600): the TMA GEMM in 64-deep K tiles (eighteenth session, never run on a GPU). Its
# float64 checks and layout probe with the others' (gemm-tma; the table after them has the 64-deep rows near the top and
# "multiplies only" rows for both depths), smoke, then only if every check passed: `smoothcache tune` over the shipped
# table's winners and the 64-deep and 3-stage variants (writes gemm-tuning.json), the forward on the shipped table and on
# the new one, and the job on the new one. If the new table wins, copy gemm-tuning.json over tuning/nvidia-h200.json.
if [ "$MODE" = deep ]; then
    export SMOOTHCACHE_KERNELS=wgmma-tma
    gemm_checks 100 5
    step smoke 40 bench --suite smoke --device cuda
    if grep -q "^PASS" "$OUT/gemm-tma.log" && ! grep -q "^FAIL" "$OUT/gemm-tma.log" && grep -q "^GEMM y = x W^T" "$OUT/gemm-tma.log"; then
        # Every check passed (the timing table after them may have run out of time).
        step tune 150 tune --device cuda --batch 2 16 --iterations 20 --out "$OUT/gemm-tuning.json" --json "$OUT/tune.json" --variants \
            128x128-barrier 128x128-deep 128x128-released 128x128-multicast 256x128-deep 128x128-shallow 128x128-shallowreleased \
            128x128x64-barrier 128x128x64-deep 128x128x64-released 128x128x64-deepreleased 128x128x64-multicast 128x128x64-shallow \
            128x128x64-shallowreleased 256x128x64-barrier 256x128x64-released 256x128x64-shallowreleased
        forward forward-defaults ""
        if [ -f "$OUT/gemm-tuning.json" ]; then
            forward forward-tuned "$OUT/gemm-tuning.json"
            SMOOTHCACHE_GEMM_TUNING="$OUT/gemm-tuning.json" step sampling-tuned 75 bench --suite sampling --device cuda --precision fp16 --json "$OUT/sampling-tuned.json"
        fi
        # Each kernel alone at batch 16: the adaLN on float16 x and residuals beside float32 ones, fc2 into both, the
        # conditioning GEMM's few-row kernel in warps of 32, 16 and 8 columns (SMOOTHCACHE_SKINNY_COLUMNS) and as a
        # sampling run plans it (21 steps' rows at once), the attention with its copies, mma or ex2 left out.
        step kernels 75 bench --suite kernels --device cuda --xl --batch 16 --iterations 10 --json "$OUT/kernels.json"
    else
        echo "gemm-tma did not pass every check: no tuning (the 64-deep variants would be in it)" | tee -a "$STATUS"
    fi
    show_logs "$OUT"/smoke.log "$OUT"/kernels.log "$OUT"/forward-*.log "$OUT"/sampling*.log
    show_tune 40
    echo "== gemm-tma (x64, multiplies-only and head-then-split rows, failed checks)"
    grep -E "^FAIL|x64|only|then split|^kernel|cuBLAS HGEMM|swizzled fp16" "$OUT/gemm-tma.log" | tail -n 90
    finish
fi
# quick (~170 s on an H200; with DEVICE_CHECK_BUDGET and timeout_s it fits what device time is left): the defaults on
# the shipped tuning table, without tuning: gemm-tma's checks, smoke, the forward (profiled), the job and each kernel alone
# at batch 16. If a GEMM check fails, the same checks without PtxTarget.PromoteLocalScalars say whether that edit is why.
if [ "$MODE" = quick ]; then
    export SMOOTHCACHE_KERNELS=wgmma-tma
    gemm_checks 60 2
    step smoke 40 bench --suite smoke --device cuda
    forward forward-defaults ""
    step sampling 75 bench --suite sampling --device cuda --precision fp16 --json "$OUT/sampling.json"
    step kernels 75 bench --suite kernels --device cuda --xl --batch 16 --iterations 10 --json "$OUT/kernels.json"
    show_logs "$OUT"/smoke.log "$OUT"/kernels.log "$OUT"/forward-*.log "$OUT"/sampling*.log
    echo "== gemm-tma checks that failed"
    grep "^FAIL" "$OUT"/gemm-tma*.log || echo "(none)"
    finish
fi
# tma: the TMA-loaded GEMM (~400 s, limits 600 s; the budget above skips what would not fit; run it with the device
# tool's timeout_s at 600): its checks and timings; only if its checks pass, the smoke suite, the TMA GEMM in clusters
# (gemm-cluster, in its own process: never run on a GPU, a protocol fault would hang it), then `smoothcache tune` at
# DiT-XL/2's GEMM shapes (batch 2 and 16; every variant and split, the cluster ones too if gemm-cluster passed), which
# writes gemm-tuning.json; then the fp16 forward (batch 2 and 16, profiled) on the built-in choices and on the tuned table,
# and the sampling job on the tuned table. Every forward step also replays its recording with programmatic dependent
# launch (the "pdl ms" column), the sampling step its jobs (the "pdl" columns).
if [ "$MODE" = tma ]; then
    export SMOOTHCACHE_KERNELS=wgmma-tma
    gemm_checks 90 20
    # The model runs on the TMA GEMM once its checks (first in the log) passed, even if the table after them ran out of time.
    if grep -q "^PASS" "$OUT/gemm-tma.log" && ! grep -q "^FAIL" "$OUT/gemm-tma.log"; then
        step smoke 40 bench --suite smoke --device cuda
        # Its last step replays a recording with programmatic dependent launch, never run on a GPU before: if the smoke
        # step timed out (a hang there would), the later steps leave such replays out rather than time out too.
        grep -q "^smoke: exit 124" "$STATUS" && NO_PDL=--no-pdl && echo "smoke timed out: later steps run with --no-pdl" | tee -a "$STATUS"
        # The rings whose stages the warps release were never run on a GPU: if gemm-tma's checks did not all finish (its
        # table starts after them), one of them may hang, and the tuner tries only the rings without releases.
        if ! grep -q "^GEMM y = x W^T" "$OUT/gemm-tma.log"; then
            VARIANTS="--variants 128x128-barrier 128x128-deep 128x128-shallow 256x128-barrier 256x128-deep 128x128x64-barrier 128x128x64-deep 128x128x64-shallow"
            echo "gemm-tma's checks did not all finish: the tuner tries only rings without releases" | tee -a "$STATUS"
        else
            RELEASES_OK=1
            step gemm-cluster 60 bench-gemm --tma --cluster --iterations 20 --json "$OUT/gemm-cluster.json"
            grep -q "^gemm-cluster: exit 0" "$STATUS" && VARIANTS=--cluster
        fi
        step tune 180 tune --device cuda --batch 2 16 --iterations 20 ${VARIANTS:-} --out "$OUT/gemm-tuning.json" --json "$OUT/tune.json"
        forward forward-tma none
        # Replays with programmatic dependent launch were never run on a GPU: if the first forward step timed out (a
        # hang there would), the later steps leave them out rather than time out too.
        grep -q "^forward-tma: exit 124" "$STATUS" && NO_PDL=--no-pdl && echo "forward-tma timed out: later steps run with --no-pdl" | tee -a "$STATUS"
        # The table is written even when a candidate failed its check (none that failed is in it).
        if [ -f "$OUT/gemm-tuning.json" ]; then TUNING="$OUT/gemm-tuning.json"; else TUNING=none; fi
        echo "sampling on GEMM tuning: $TUNING" | tee -a "$STATUS"
        [ "$TUNING" != none ] && forward forward-tuned "$TUNING"
        SMOOTHCACHE_GEMM_TUNING=$TUNING step sampling 75 bench --suite sampling --device cuda --precision fp16 ${NO_PDL:-} --json "$OUT/sampling.json"
        # Each kernel alone at batch 16 (both attention stagings, the conditioning GEMM on each of its kernels).
        SMOOTHCACHE_GEMM_TUNING=$TUNING step kernels 75 bench --suite kernels --device cuda --xl --batch 16 --iterations 10 --json "$OUT/kernels.json"
        # What is left of the budget: the likeliest single variants everywhere, for the record.
        for v in 128x128x64-barrier ${RELEASES_OK:+128x128x64-shallowreleased}; do
            SMOOTHCACHE_TMA_GEMM=$v forward "forward-$v" none
        done
    fi
    show_logs "$OUT"/smoke.log "$OUT"/gemm-cluster.log "$OUT"/kernels.log "$OUT"/forward-*.log "$OUT"/sampling*.log
    show_tune 60
    echo "== gemm-tma"
    grep -v "^PASS" "$OUT/gemm-tma.log" | tail -n 150
    finish
fi
if [ "$MODE" = hopper ]; then
    export SMOOTHCACHE_KERNELS=wgmma
fi
# 1. Every operator, then chains of them and a whole dit-digits forward, each compared with the CPU
#    backend, waiting after every launch (names the kernel that faults). If it fails and the machine
#    has compute-sanitizer, the same run under memcheck says which access of which kernel was illegal.
step smoke 60 bench --suite smoke --device cuda
if ! grep -q "^smoke: exit 0" "$STATUS"; then
    SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /opt/nvidia/*/bin/compute-sanitizer 2>/dev/null | head -1)
    if [ -n "$SAN" ]; then
        timeout 90 bash .device/on-device.sh sh "$SAN --tool memcheck --print-limit 5 dotnet .device/app/smoothcache.dll bench --suite smoke --device cuda" > "$OUT/sanitizer.log" 2>&1
        echo "sanitizer: exit $? (log: sanitizer.log)" | tee -a "$STATUS"
    else
        echo "sanitizer: compute-sanitizer not found on this machine" | tee -a "$STATUS"
    fi
fi
# A wgmma kernel that fails its smoke step is not worth timing in a whole model: after the sanitizer, only
# the GEMM step runs, for its checks and the wgmma layout probe (which names the elements read wrongly).
if [ "$MODE" = hopper ] && ! grep -q "^smoke: exit 0" "$STATUS"; then
    SKIP=1
else
    SKIP=0
fi
# 2. Kernel checks (CUDA vs float64 / vs the CPU backend), then GEMM timings against cuBLAS: fp16
#    tensor cores, fp32 as 3xTF32 (the fp32 path's) and as SIMT SGEMM, cuBLAS SGEMM and HGEMM.
#    The fp16 GEMM is also timed at every split count in --splits (data for SplitK.Choose).
if [ "$MODE" = hopper ]; then
    step gemm 125 bench-gemm --iterations 20 --json "$OUT/gemm.json"
else
    step gemm 140 bench-gemm --iterations 20 --splits 1 2 3 4 6 8 --json "$OUT/gemm.json"
fi
# 2b. Hopper only, in its own process (a fault there leaves the other steps alone): the TMA-loaded wgmma GEMM,
#     never run on a GPU before the tenth session; its layout probe, float64 checks, then timings beside cuBLAS
#     and the cp.async wgmma kernel.
[ "$MODE" = hopper ] && step gemm-tma 75 bench-gemm --tma --iterations 20 --json "$OUT/gemm-tma.json"
if [ "$SKIP" = 0 ]; then
# 3. Each operator at DiT-XL/2's shapes, batch 16 (8 images with CFG) and batch 2 (one image with CFG, one
#    block per multiprocessor in the attention): GEMMs, fused attention (fp32 SIMT, fp16 tensor-core),
#    adaLN plain and after a residual.
if [ "$MODE" != hopper ]; then
    step kernels 75 bench --suite kernels --device cuda --xl --batch 16 --iterations 10 --json "$OUT/kernels.json"
    step kernels-b2 30 bench --suite kernels --device cuda --xl --batch 2 --iterations 20 --json "$OUT/kernels-b2.json"
fi
# 4. One forward: synthetic DiT-XL/2 and dit-digits, batch 2 and 16 (and 20), fp16 and fp32, each
#    followed by a profiled forward (device time per kernel, the kernels' share of the forward).
step forward 80 bench --suite forward --device cuda --iterations 10 --profile --json "$OUT/forward.json"
grep -q "^forward: exit 124" "$STATUS" && NO_PDL=--no-pdl && echo "forward timed out: sampling runs with --no-pdl" | tee -a "$STATUS"
if [ "$MODE" = hopper ]; then
    # The same forward on the mma.sync GEMMs and on the TMA-loaded ones, in this call: the ratios to quote.
    SMOOTHCACHE_KERNELS=tensorcores step forward-mma 70 bench --suite forward --device cuda --iterations 10 --json "$OUT/forward-mma.json"
    SMOOTHCACHE_KERNELS=wgmma-tma step forward-tma 70 bench --suite forward --device cuda --iterations 10 --profile --json "$OUT/forward-tma.json"
fi
# 5. Sampling jobs uncached vs SmoothCache (dit-digits 10 images, XL 8 images), DDIM 50, one run each (fp32 jobs take seconds); in hopper mode with
#    the TMA-loaded GEMMs (the cp.async wgmma kernel's job took 1.62 s uncached on an H200, ninth session).
if [ "$MODE" = hopper ]; then
    SMOOTHCACHE_KERNELS=wgmma-tma step sampling 120 bench --suite sampling --device cuda --runs 1 ${NO_PDL:-} --json "$OUT/sampling.json"
else
    step sampling 120 bench --suite sampling --device cuda --runs 1 ${NO_PDL:-} --json "$OUT/sampling.json"
fi
fi

# The device tool shows the last 12,000 characters: the logs first, the newest kernel's and the summary last.
for name in smoke sanitizer kernels kernels-b2 forward forward-mma forward-tma sampling gemm-tma; do
    [ -f "$OUT/$name.log" ] || continue
    echo "== $name"
    grep -v "^NVIDIA\|^device:" "$OUT/$name.log" | tail -n 40
done
echo "== checks that failed, and the layout probes"
grep -h "^FAIL\| probe: " "$OUT/gemm.log" "$OUT/gemm-tma.log" 2>/dev/null || echo "(none)"
echo "== summary"
cat "$STATUS"
# The device tool returns at most 8 files from $OUT: pack them all into one.
(cd "$OUT" && tar czf device-check.tar.gz --remove-files -- *.log *.json status.txt 2>/dev/null)
echo "== logs and JSON: \$OUT/device-check.tar.gz"
