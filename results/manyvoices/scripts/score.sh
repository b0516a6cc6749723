# score.sh NAME CHECKPOINT: the checkpoint's enhancement of the three test sets, scored: held-out LibriSpeech speakers
# (libri), the VoiceBank-DEMAND p287 pairs (p287), out of domain (ood: demo/ood_noisy, carried by name under the lease
# trick). The enhanced audio goes to $R/enhanced/NAME/SET, the scores (scores.csv ...) to $R/scores/NAME/SET, which
# watch.sh's logs.tgz brings home; the paired comparisons (evaluate.py --compare) run at home on them.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
REPO=${REPO:-/tmp/repo} D=${D:-/tmp/data} R=${R:-/tmp/runs} DEV=${DEV:-cuda}; cd $REPO
n=$1 ck=$2
for s in libri:$D/valid/libri_test/noisy:$D/valid/libri_test/clean p287:$REPO/demo/vbdmd/noisy:$REPO/demo/vbdmd/clean \
         ood:$REPO/demo/ood_noisy:$REPO/demo/speech_test; do
  IFS=: read set noisy clean <<< "$s"
  python3 enhance.py $noisy -o $R/enhanced/$n/$set --checkpoint $ck --device $DEV --overwrite ${ENHANCE_EXTRA} &&
    python3 evaluate.py --clean $clean --noisy $noisy --enhanced $R/enhanced/$n/$set --out $R/scores/$n/$set --overwrite
done
