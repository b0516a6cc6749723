# Issue 22 on one H200 (nvidia-h200; no second GPU lent): training-step profiles one after another on GPU 0, each
# with its own cold compile cache; ONLY="NAME ..." picks them (carried in .carry/ under the lease trick, since
# results/ stays home). Code: /tmp/repo (this tree, from setup.sh), /tmp/before (.before, the code of 9d11303).
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
RES=${RES:-/tmp/profiles}; mkdir -p $RES
rm -rf /tmp/before && cp -r .before /tmp/before && cp -r demo /tmp/before/ 2>/dev/null
P="--device cuda --precision bf16 --repeats 3 --warmup 3"
run() {  # FOLDER NAME speed.py-arguments...
  local d=$1 n=$2; shift 2
  echo "$(date +%s) $n start" >> $RES/stage
  (cd $d && TORCHINDUCTOR_CACHE_DIR=/tmp/cc-$n TRITON_CACHE_DIR=/tmp/cc-$n/triton python3 speed.py "$@" --out $RES/$n) > $RES/$n.txt 2>&1
  echo "$(date +%s) $n rc $?" >> $RES/stage
}
for n in ${ONLY:-distill-compiled-graphs}; do case $n in
  distill-compiled-graphs) run /tmp/repo $n --profile distill --preset reference --batch 14 $P --compile --cuda-graph ;;
  distill-compiled) run /tmp/repo $n --profile distill --preset reference --batch 14 $P --compile ;;
  distill-compiled-before) run /tmp/before $n --profile distill --preset reference --batch 14 $P --compile ;;
  distill-compiled-graphs-b28) run /tmp/repo $n --profile distill --preset reference --batch 28 $P --compile --cuda-graph ;;
  teacher-small-compiled-graphs) run /tmp/repo $n --profile teacher --preset small --batch 64 $P --compile --cuda-graph ;;
  teacher-small-compiled-before) run /tmp/before $n --profile teacher --preset small --batch 64 $P --compile ;;
  distill-compiled-nhwc) run /tmp/repo $n --profile distill --preset reference --batch 14 $P --compile --channels-last ;;
  distill-compiled-nhwc-b28) run /tmp/repo $n --profile distill --preset reference --batch 28 $P --compile --channels-last ;;
  teacher-small-compiled-nhwc) run /tmp/repo $n --profile teacher --preset small --batch 64 $P --compile --channels-last ;;
  student-medium-compiled) run /tmp/repo $n --profile distill --preset medium --batch 16 $P --compile ;;
  student-medium-compiled-graphs) run /tmp/repo $n --profile distill --preset medium --batch 16 $P --compile --cuda-graph ;;
  student-medium-compiled-graphs-b32) run /tmp/repo $n --profile distill --preset medium --batch 32 $P --compile --cuda-graph ;;
  *) echo "$(date +%s) $n unknown" >> $RES/stage ;;
esac; done
echo "$(date +%s) DONE" >> $RES/stage
