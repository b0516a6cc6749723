# Issue 22, before and after on one machine (nvidia-h200-x2), started with setsid: GPU 0 runs the code of
# .before/ (the *.py of the commit before the speed work, carried as an ignored folder), GPU 1 this tree's,
# the same kind of commands at the same time; each profile to $RES/NAME/profile.json and NAME.txt.
#   git show COMMIT:speed.py ... > .before/  (every top-level *.py of that commit)
# Eager channels-last is measured already (35 % slower than eager NCHW: results/profile/); this run measures
# the compiled step with CUDA graphs (teacher.py --cuda-graphs) and without, in both layouts and at the recipe's
# batch of 28, then the two GPUs together (ddp).
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
RES=${RES:-/tmp/profiles}; mkdir -p $RES
[ -d .before/demo ] || cp -r demo .before/  # the bundled speech its training step reads
P=${P:-"--device cuda --precision bf16 --repeats 3 --warmup 3"}
REF=${REF:-reference} SMALL=${SMALL:-small} C=${C---compile} G=${G---cuda-graph}  # (REF=tiny SMALL=tiny C= G= P=...: a
# dry run on a CPU)
run() {  # GPU FOLDER NAME speed.py-arguments...
  local g=$1 d=$2 n=$3; shift 3
  echo "$(date +%s) $n start" >> $RES/stage
  (cd $d && CUDA_VISIBLE_DEVICES=$g python3 speed.py "$@" --out $RES/$n) > $RES/$n.txt 2>&1
  echo "$(date +%s) $n rc $?" >> $RES/stage
}
( run 0 .before distill-eager-before --profile distill --preset $REF --batch 14 $P
  run 0 .before distill-compiled-before --profile distill --preset $REF --batch 14 $P $C
  run 0 . distill-compiled-b28 --profile distill --preset $REF --batch 28 $P $C
  run 0 .before teacher-small-compiled-before --profile teacher --preset $SMALL --batch 64 $P $C ) &
( run 1 . distill-compiled-graphs --profile distill --preset $REF --batch 14 $P $C $G  # teacher.py --cuda-graphs
  run 1 . distill-compiled-nhwc --profile distill --preset $REF --batch 14 $P $C --channels-last
  run 1 . distill-compiled-nhwc-b28 --profile distill --preset $REF --batch 28 $P $C --channels-last
  run 1 . teacher-small-compiled-nhwc --profile teacher --preset $SMALL --batch 64 $P $C --channels-last ) &
wait; echo "$(date +%s) PAIRS DONE" >> $RES/stage
# Two GPUs against one: distill.py itself under torchrun, a random reference teacher, the per-GPU batch of the
# profiles (B, default 14), compiled; its log's crops/s against the one-GPU profile of the same step and layout.
[ -n "$NO_DDP" ] && { echo "$(date +%s) DONE" >> $RES/stage; exit; }
D=${DEV:-cuda}
python3 teacher.py --preset $REF --steps 1 --batch-size 2 --grad-accum 1 --valid-files 0 --device $D --out $RES/ref-teacher \
  > $RES/ref-teacher.txt 2>&1 && python3 teacher.py export $RES/ref-teacher/checkpoint.pt $RES/ref-teacher.pt >> $RES/ref-teacher.txt 2>&1
echo "$(date +%s) ddp start" >> $RES/stage
${LAUNCH:-torchrun --standalone --nproc_per_node=2} distill.py --teacher $RES/ref-teacher.pt --out $RES/ddp --batch-size ${B:-14} \
  --grad-accum 1 --bf16 $C ${LAYOUT} --steps ${DDP_STEPS:-400} --valid-files 0 --log-every 20 --save-every 100000 --device $D \
  > $RES/ddp.txt 2>&1
echo "$(date +%s) ddp rc $?" >> $RES/stage; echo "$(date +%s) DONE" >> $RES/stage
