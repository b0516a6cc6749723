# chain.sh (issues 20 and 22, one H200, 2026-12-01 seventh session): one job after another on the one GPU, so
# that no timing is disturbed.
# 1. the teacher export's probability-flow ODE through enhance.py's own --sampler ode (fp32, GPU) on the five sets,
#    scored on the machine's CPU into $R/scores/teacher-medium-ode-gpu/SET (score.sh; the audio kept out of $R);
# 2. issue 22's profiles named in PROFILES (prof.sh = results/profile/scripts/one_gpu.sh), into $R/profiles.
# (The lease of that session ran the same enhance.py and evaluate.py commands written out here; score.sh holds them now.)
# Started by: START=1 SCRIPT=chain.sh PROFILES="student-medium-compiled ..." bash .carry/watch.sh (after setup, stage).
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
R=/tmp/runs; mkdir -p $R
echo "$(date +%s) teacher-medium-ode-gpu start" >> $R/stage
SETS="libri libri_low ood ood_high p287" ENH=/tmp/enh ENHANCE_EXTRA="--sampler ode --precision fp32" \
  bash /tmp/score.sh teacher-medium-ode-gpu /tmp/state/teacher-medium.pt > $R/ode.txt 2>&1
echo "$(date +%s) teacher-medium-ode-gpu scored rc $?" >> $R/stage
cp /tmp/prof.sh /tmp/prof-chain.sh
for p in $PROFILES; do
  ONLY=$p RES=$R/profiles bash /tmp/prof-chain.sh >> $R/prof.txt 2>&1
  echo "$(date +%s) profile $p: $(grep " rc " $R/profiles/stage | tail -1)" >> $R/stage  # no "DONE" here: watch.sh stops at one
done
echo "$(date +%s) DONE" >> $R/stage
