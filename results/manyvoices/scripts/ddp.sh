# Started once with setsid: ONE teacher run on all GPUs of the machine under torchrun (DDP, compiled), resumed from
# /tmp/state/$STATE (packed parts), or, with WARM=FILE, warm-started from an export (--warm-start: EMA weights, fresh
# Adam moments, for a run whose packed state was lost). If the compiled DDP run dies, it continues compiled on GPU 0
# alone (known to work).
# The compile caches go to /tmp/cc, where a later compile on the same machine (a restart, a fallback) finds them.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export TORCHINDUCTOR_CACHE_DIR=/tmp/cc/inductor TRITON_CACHE_DIR=/tmp/cc/triton
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs}; mkdir -p $R /tmp/cc; cd $REPO
n=${NAME:-lj} p=${PRESET:-medium} st=${STATE:-lj-a2}
SPEECH=$D/speech,$REPO/demo/speech_train NOISE=$D/noise VALID=$D/valid/libri_test,$REPO/demo/vbdmd
END=$(( $(date +%s) + ${MIN:-20} * 60 ))  # a fallback run gets only the minutes left
if [ -n "$WARM" ]; then how="--warm-start $WARM"; else how="--resume"
  [ -f $R/$n/checkpoint.pt ] || python3 teacher.py unpack /tmp/state/$st $R/$n/checkpoint.pt; fi
for try in 1 2; do
  [ $(( (END - $(date +%s)) / 60 )) -lt 2 ] && break  # (0 minutes would mean no limit)
  if [ $try = 1 ]; then launch="torchrun --standalone --nproc_per_node=${NPROC:-2}"; else launch="env CUDA_VISIBLE_DEVICES=0 python3"; fi
  echo "$(date +%s) $n start $try $launch" >> $R/stage
  $launch teacher.py --preset $p --speech $SPEECH --noise $NOISE --valid $VALID --out $R/$n \
    --steps 1000000 --max-minutes $(( (END - $(date +%s)) / 60 )) --lr ${LR:-5e-4} --batch-size ${B:-64} --grad-accum 1 --bf16 --grad-clip 1 \
    --compile --valid-every ${VALID_EVERY:-3000} --valid-files 16 --valid-steps 30 --save-every ${SAVE:-250} \
    --log-every ${LOG:-50} --device cuda $how ${EXTRA} >> $R/$n.txt 2>&1
  rc=$?; echo "$(date +%s) $n rc $rc" >> $R/stage
  grep -q '"event": "end"' $R/$n/log.jsonl 2>/dev/null && break
done
echo "$(date +%s) DONE" >> $R/stage
