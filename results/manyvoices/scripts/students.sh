# Started once with setsid: the four students of the paper's comparison, two per GPU, each compiled (eager where the
# compiled run dies, or with COMPILE=--no-compile), each resumed from /tmp/state/NAME (packed parts) where that
# exists. TEACHER: the teacher export; EXTRA: more options of distill.py for every student (--student-init ...).
# The teacher's validation scores (distill.validator's valid_reference.json) are computed once, on GPU 0, while the
# students compile, and renamed into each --out before its first validation: otherwise each student would run the
# teacher's 30-step sampler on the same files itself. A copy in /tmp/state/valid_reference.json skips even that.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/cc/inductor TRITON_CACHE_DIR=/tmp/cc/triton
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs}; mkdir -p $R /tmp/cc; cd $REPO
DEV=${DEV:-cuda} VF=${VF:-16} VS=${VS:-30}  # device, validation files per set and sampler steps (dry runs: cpu, 1, 2)
TEACHER=${TEACHER:-/tmp/state/teacher-medium.pt}
SPEECH=$D/speech,$REPO/demo/speech_train NOISE=$D/noise VALID=$D/valid/libri_test,$REPO/demo/vbdmd
END=$(( $(date +%s) + ${MIN:-20} * 60 ))
REF=/tmp/state/valid_reference.json
mkdir -p /tmp/state
[ -f $REF ] || CUDA_VISIBLE_DEVICES=0 python3 - $TEACHER $VALID $REF $DEV $VF $VS >> $R/reference.txt 2>&1 <<'PY' &
import os, sys, types, distill, data
teacher_path, valid, ref, device, files, steps = sys.argv[1:]
teacher, sde = distill.load_teacher(teacher_path, device)
sets = data.validation_sets("", valid, int(files))  # as distill.py reads them with --valid-files FILES
cfg = types.SimpleNamespace(out="/tmp/reference", valid_steps=int(steps), seed=0)  # its --valid-steps, --seed
distill.validator(teacher, sde, sets, cfg)(teacher)  # writes the file once per set: REF appears only when complete
os.replace("/tmp/reference/valid_reference.json", ref)
PY
one() {  # one NAME GPU TRAJECTORY SISDR_WEIGHT MRSTFT_WEIGHT
  local n=$1 g=$2 t=$3 s=$4 m=$5 resume="" compile=${COMPILE:---compile}  # COMPILE=--no-compile: eager
  mkdir -p $R/$n
  if [ -f $R/$n/checkpoint.pt ]; then resume=--resume
  elif [ -d /tmp/state/$n ]; then python3 teacher.py unpack /tmp/state/$n $R/$n/checkpoint.pt && resume=--resume; fi
  for try in 1 2; do
    [ $(( (END - $(date +%s)) / 60 )) -lt 2 ] && break  # (0 minutes would mean no limit)
    case " $EXTRA " in *" --warm-start "*) resume="" ;; esac  # a warm-started run continues without --resume
    echo "$(date +%s) $n start $try $resume $compile" >> $R/stage
    CUDA_VISIBLE_DEVICES=$g python3 distill.py --teacher $TEACHER --speech $SPEECH --noise $NOISE --valid $VALID \
      --out $R/$n --trajectory $t --sisdr-weight $s --mrstft-weight $m --steps 1000000 \
      --max-minutes $(( (END - $(date +%s)) / 60 )) --batch-size ${B:-16} --grad-accum 1 --lr ${LR:-2e-4} --bf16 \
      $compile --valid-every ${VALID_EVERY:-2000} --valid-files $VF --valid-steps $VS --save-every ${SAVE:-250} \
      --log-every ${LOG:-50} --device $DEV $resume ${EXTRA} >> $R/$n.txt 2>&1
    rc=$?; echo "$(date +%s) $n rc $rc" >> $R/stage
    grep -q '"event": "end"' $R/$n/log.jsonl 2>/dev/null && break
    compile=--no-compile; EXTRA=${EXTRA//--cuda-graphs/}  # graphs replay compiled U-Nets only
    [ -f $R/$n/checkpoint.pt ] && resume=--resume
  done
}
STUDENTS="rosecd:0:randomized:5e-5:2e-4 det-noaux:0:deterministic:0:0"
STUDENTS="$STUDENTS det-aux:1:deterministic:5e-5:2e-4 rand-noaux:1:randomized:0:0"
for s in ${ONLY:-$STUDENTS}; do IFS=: read n g t sw mw <<< "$s"; one $n $g $t $sw $mw & done
( while [ $(date +%s) -lt $END ]; do  # the reference into each --out (a rename: never half a file)
    if [ -f $REF ]; then for s in ${ONLY:-$STUDENTS}; do n=${s%%:*}
      cp $REF $R/$n/valid_reference.json.tmp && mv $R/$n/valid_reference.json.tmp $R/$n/valid_reference.json; done
      echo "$(date +%s) reference copied" >> $R/stage; break; fi; sleep 10; done ) &
wait; echo "$(date +%s) DONE" >> $R/stage
