# Started once with setsid: one teacher per GPU (PRESETS="small:0 medium:1"), each compiled, falling back to
# eager if the compiled run dies; resumes from /tmp/state/PRESET (packed parts) where that exists.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs}; mkdir -p $R; cd $REPO
SPEECH=$D/speech,$REPO/demo/speech_train NOISE=$D/noise VALID=$D/valid/libri_test,$REPO/demo/vbdmd
one() {  # one() PRESET GPU
  local p=$1 g=$2 resume="" compile=${COMPILE:---compile}
  if [ -f $R/$p/checkpoint.pt ]; then resume=--resume
  elif [ -d /tmp/state/$p ]; then python3 teacher.py unpack /tmp/state/$p $R/$p/checkpoint.pt && resume=--resume; fi
  for try in 1 2; do
    echo "$(date +%s) $p start $try $resume $compile" >> $R/stage
    CUDA_VISIBLE_DEVICES=$g python3 teacher.py --preset $p --speech $SPEECH --noise $NOISE --valid $VALID --out $R/$p \
      --steps 1000000 --max-minutes ${MIN:-20} --lr ${LR:-5e-4} --batch-size ${B:-64} --grad-accum 1 --bf16 --grad-clip 1 \
      $compile --valid-every ${VALID_EVERY:-1000} --valid-files 16 --valid-steps 30 --save-every ${SAVE:-250} \
      --log-every ${LOG:-50} --device ${DEV:-cuda} $resume ${EXTRA} >> $R/$p.txt 2>&1
    rc=$?; echo "$(date +%s) $p rc $rc" >> $R/stage
    grep -q '"event": "end"' $R/$p/log.jsonl 2>/dev/null && break
    compile=--no-compile; [ -f $R/$p/checkpoint.pt ] && resume=--resume
  done
}
for pg in ${PRESETS:-small:0 medium:1}; do one ${pg%%:*} ${pg##*:} & done
wait; echo "$(date +%s) DONE" >> $R/stage
