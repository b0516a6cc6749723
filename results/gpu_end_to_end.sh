# RESULTS.md 5, "End-to-end time": enhance.py on a GPU with cuDNN's autotuning (cudnn.benchmark) on and off, at fp16 x 8
# chunks a call and at 1 chunk a call, each configuration and set in its own process, two rounds in opposite orders.
# Usage: bash results/gpu_end_to_end.sh CHECKPOINT NOISY_DIR [NOISY_DIR ...] > OUT.txt
# (run on 2026-12-01 with checkpoints/rosecd-medium.pt on libri_test's noisy/, written by `python data.py testset`,
# and on demo/vbdmd/noisy; its output: results/gpu_end_to_end.txt).
CK=$1; shift
run() {  # run NAME PRECISION BATCH AUTOTUNE
  for s in $SETS; do
    rm -rf /tmp/e2e-out
    python3 - $4 --checkpoint $CK --precision $2 --batch $3 -o /tmp/e2e-out $s <<'PY' 2>&1 | grep "file(s)" | \
      sed "s|^|$1 $s: |"
import sys, enhance
autotune = sys.argv.pop(1) == "on"
optimise = enhance.optimise  # as enhance.py calls it, with cuDNN's autotuning as asked
enhance.optimise = lambda *args, **kwargs: optimise(*args, **{**kwargs, "autotune": autotune})
enhance.main(sys.argv[1:])
PY
  done
}
SETS="$*"
for round in 1 2; do
  if [ $round = 1 ]; then ORDER="a b c d"; else ORDER="d c b a"; fi
  for o in $ORDER; do case $o in
    a) run fp16-b8-autotune fp16 8 on ;; b) run fp32-b1-autotune fp32 1 on ;;
    c) run fp16-b8-no-autotune fp16 8 off ;; d) run fp16-b1-autotune fp16 1 on ;; esac; done
done
