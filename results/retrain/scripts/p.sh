# The whole retraining, started once with setsid: teacher (torchrun, 2 GPUs) -> export -> four students
# (two per GPU) while the teacher is scored -> export -> students scored -> DONE in $R/stage.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
R=${R:-/tmp/runs} X=${X:-/tmp/export}; mkdir -p $R $X; cd ${REPO:-/tmp/repo}
NPROC=${NPROC:-2} NGPU=${NGPU:-2} PRESET=${PRESET:-small} DEV=${DEV:-cuda}
stage() { echo "$(date +%s) $*" >> $R/stage; }
stage teacher start
torchrun --standalone --nproc_per_node=$NPROC teacher.py --preset $PRESET --speech /tmp/lj --out $R/teacher \
  --steps 1000000 --max-minutes ${TEACHER_MIN:-9} --lr 5e-4 --batch-size ${TB:-64} --grad-accum 1 --bf16 --grad-clip 1 \
  --valid-every ${VALID_EVERY:-1000} --valid-files ${VALID_FILES:-4} --save-every 500 --log-every 50 > $R/teacher.txt 2>&1
stage teacher rc $?
python3 teacher.py export $R/teacher/checkpoint.pt $X/teacher-small.pt > $R/export.txt 2>&1 || { stage export failed; exit 1; }
stage students start
STUDENTS="rosecd:randomized:5e-5:2e-4 det-aux:deterministic:5e-5:2e-4 rand-noaux:randomized:0:0 det-noaux:deterministic:0:0"
i=0; for s in $STUDENTS; do IFS=: read name traj sw mw <<< "$s"
  CUDA_VISIBLE_DEVICES=$(( i % NGPU )) python3 distill.py --teacher $X/teacher-small.pt --speech /tmp/lj --out $R/student-$name \
    --trajectory $traj --sisdr-weight $sw --mrstft-weight $mw --steps 1000000 --max-minutes ${STUDENT_MIN:-3.5} --batch-size ${SB:-16} \
    --grad-accum 1 --lr 2e-4 --bf16 --valid-files 0 --save-every 500 --log-every 20 > $R/student-$name.txt 2>&1 &
  i=$(( i + 1 )); done
CUDA_VISIBLE_DEVICES=$(( NGPU - 1 )) bash /tmp/score.sh teacher $X/teacher-small.pt --device $DEV > $R/score-teacher.txt 2>&1
bash /tmp/score.sh noisy x > $R/score-noisy.txt 2>&1
stage teacher scored
wait
stage students done
i=0; for s in $STUDENTS; do n=${s%%:*}
  python3 teacher.py export $R/student-$n/checkpoint.pt $X/$n-small.pt >> $R/export.txt 2>&1
  CUDA_VISIBLE_DEVICES=$(( i % NGPU )) bash /tmp/score.sh $n $X/$n-small.pt --device $DEV > $R/score-$n.txt 2>&1 &
  i=$(( i + 1 )); done
wait
python3 /tmp/rates.py $R/teacher $R/student-rosecd $R/student-det-aux $R/student-rand-noaux $R/student-det-noaux > $R/rates.txt 2>&1
stage DONE
