# chain.sh (issues 20 and 22, one H200, 2026-12-01 seventh session): one job after another on the one GPU, so
# that no timing is disturbed.
# 1. the teacher export's probability-flow ODE through enhance.py's own --sampler ode (fp32, GPU) on the five sets,
#    scored on the machine's CPU into $R/scores/teacher-medium-ode-gpu/SET;
# 2. issue 22's profiles named in PROFILES (prof.sh = results/profile/scripts/one_gpu.sh), into $R/profiles.
# Started by: START=1 SCRIPT=chain.sh PROFILES="student-medium-compiled ..." bash .carry/watch.sh (after setup, stage).
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
D=/tmp/data R=/tmp/runs; mkdir -p $R; cd /tmp/repo
n=teacher-medium-ode-gpu ck=/tmp/state/teacher-medium.pt
for s in libri:$D/valid/libri_test/noisy:$D/valid/libri_test/clean libri_low:$D/valid/libri_low/noisy:$D/valid/libri_low/clean \
         ood:/tmp/repo/demo/ood_noisy:/tmp/repo/demo/speech_test ood_high:$D/valid/ood_high/noisy:$D/valid/ood_high/clean \
         p287:/tmp/repo/demo/vbdmd/noisy:/tmp/repo/demo/vbdmd/clean; do
  IFS=: read set noisy clean <<< "$s"
  echo "$(date +%s) $n $set start" >> $R/stage
  python3 enhance.py $noisy -o /tmp/enh/$n/$set --checkpoint $ck --sampler ode --device cuda --precision fp32 \
    --overwrite > $R/enh-$set.txt 2>&1
  echo "$(date +%s) $n $set enhanced rc $?" >> $R/stage
  python3 evaluate.py --clean $clean --noisy $noisy --enhanced /tmp/enh/$n/$set --out $R/scores/$n/$set --overwrite \
    > $R/eval-$set.txt 2>&1
  echo "$(date +%s) $n $set scored rc $?" >> $R/stage
done
cp /tmp/prof.sh /tmp/prof-chain.sh
for p in $PROFILES; do
  ONLY=$p RES=$R/profiles bash /tmp/prof-chain.sh >> $R/prof.txt 2>&1
  echo "$(date +%s) profile $p: $(grep " rc " $R/profiles/stage | tail -1)" >> $R/stage  # no "DONE" here: watch.sh stops at one
done
echo "$(date +%s) DONE" >> $R/stage
