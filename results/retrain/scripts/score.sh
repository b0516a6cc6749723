# score.sh NAME CHECKPOINT [enhance options]: enhance and score the in-domain, p287 and out-of-domain sets.
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
name=$1 ckpt=$2; shift 2; E=${E:-/tmp/eval}; S=${S:-/tmp/scores}; cd ${REPO:-/tmp/repo}
for set in ${SETS:-indomain p287 ood}; do
  case $set in indomain) N=demo/indomain_noisy; C=demo/speech_test;; p287) N=demo/vbdmd/noisy; C=demo/vbdmd/clean;; ood) N=demo/ood_noisy; C=demo/speech_test;; esac
  rm -rf $E/$set/$name $S/$set/$name
  if [ $name = noisy ]; then python3 evaluate.py --clean $C --noisy $N --enhanced $N --out $S/$set/$name > /dev/null
  else python3 enhance.py $N -o $E/$set/$name --checkpoint $ckpt --device cuda "$@" > /dev/null && \
       python3 evaluate.py --clean $C --noisy $N --enhanced $E/$set/$name --out $S/$set/$name > /dev/null; fi
  echo "$name $set rc $?"
done
echo "scored $name"
