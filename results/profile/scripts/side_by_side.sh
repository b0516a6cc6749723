# Issue 22, before and after on one machine (nvidia-h200-x2), started with setsid: GPU 0 runs the code of
# .before/ (the *.py of the commit before the speed work, carried as an ignored folder), GPU 1 this tree's,
# the same commands at the same time; each profile to $RES/NAME/profile.json and NAME.txt.
#   git show COMMIT:speed.py ... > .before/  (every top-level *.py of that commit)
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
RES=${RES:-/tmp/profiles}; mkdir -p $RES
[ -d .before/demo ] || cp -r demo .before/  # the bundled speech its training step reads
P=${P:-"--device cuda --precision bf16 --repeats 3 --warmup 3"}
REF=${REF:-reference} SMALL=${SMALL:-small} C=${C---compile}  # (REF=tiny SMALL=tiny C= P=...: a dry run on a CPU)
run() {  # GPU FOLDER NAME speed.py-arguments...
  local g=$1 d=$2 n=$3; shift 3
  echo "$(date +%s) $n start" >> $RES/stage
  (cd $d && CUDA_VISIBLE_DEVICES=$g python3 speed.py "$@" --out $RES/$n) > $RES/$n.txt 2>&1
  echo "$(date +%s) $n rc $?" >> $RES/stage
}
( run 0 .before distill-eager-before --profile distill --preset $REF --batch 14 $P
  run 0 .before distill-compiled-before --profile distill --preset $REF --batch 14 $P $C
  run 0 .before teacher-small-compiled-before --profile teacher --preset $SMALL --batch 64 $P $C ) &
( run 1 . distill-eager-nhwc --profile distill --preset $REF --batch 14 $P --channels-last
  run 1 . distill-compiled-nhwc --profile distill --preset $REF --batch 14 $P $C --channels-last
  run 1 . distill-compiled-nhwc-b28 --profile distill --preset $REF --batch 28 $P $C --channels-last
  run 1 . teacher-small-compiled-nhwc --profile teacher --preset $SMALL --batch 64 $P $C --channels-last ) &
wait; echo "$(date +%s) DONE" >> $RES/stage
