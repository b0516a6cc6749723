# Started once with setsid: one teacher run per GPU (RUNS="NAME:PRESET:GPU:SPEECH ..."), each compiled, falling
# back to eager if the compiled run dies; a run resumes from /tmp/state/PRESET (packed parts) where that exists.
# SPEECH is "all" (LibriSpeech + LJ) or "libri" (LibriSpeech only).
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs}; mkdir -p $R; cd $REPO
NOISE=$D/noise VALID=$D/valid/libri_test,$REPO/demo/vbdmd
one() {  # one NAME PRESET GPU SPEECH
  local n=$1 p=$2 g=$3 s=$4 resume="" compile=${COMPILE:---compile} speech
  if [ $s = all ]; then speech=$D/speech,$REPO/demo/speech_train; else speech=$D/speech/libri; fi
  if [ -f $R/$n/checkpoint.pt ]; then resume=--resume
  elif [ -d /tmp/state/$p ]; then python3 teacher.py unpack /tmp/state/$p $R/$n/checkpoint.pt && resume=--resume; fi
  for try in 1 2; do
    echo "$(date +%s) $n start $try $resume $compile $speech" >> $R/stage
    CUDA_VISIBLE_DEVICES=$g python3 teacher.py --preset $p --speech $speech --noise $NOISE --valid $VALID --out $R/$n \
      --steps 1000000 --max-minutes ${MIN:-20} --lr ${LR:-5e-4} --batch-size ${B:-64} --grad-accum 1 --bf16 --grad-clip 1 \
      $compile --valid-every ${VALID_EVERY:-4000} --valid-files 16 --valid-steps 30 --save-every ${SAVE:-250} \
      --log-every ${LOG:-50} --device ${DEV:-cuda} $resume ${EXTRA} >> $R/$n.txt 2>&1
    rc=$?; echo "$(date +%s) $n rc $rc" >> $R/stage
    grep -q '"event": "end"' $R/$n/log.jsonl 2>/dev/null && break
    compile=--no-compile; [ -f $R/$n/checkpoint.pt ] && resume=--resume
  done
}
for r in ${RUNS:-lj:medium:0:all libri:medium:1:libri}; do IFS=: read n p g s <<< "$r"; one $n $p $g $s & done
wait; echo "$(date +%s) DONE" >> $R/stage
