# Run in the work tree's root before a lease, on the development machine: everything a lease carries, made from
# ../shared and the package index into ignored folders (a new checkout has none of them).
#   .whl, .sdist  wheels for the device's Python 3.12 (soundfile, cffi, pycparser, pystoi; Cython for pesq's build)
#                 and pesq 0.0.4's sdist with pytest-runner taken out of its setup_requires (nothing can be fetched
#                 on the device)
#   .xfer0 ...    the audio in parts of at most 14.5 MiB: the held-out LibriSpeech set (data.py testset, seed 1234)
#                 and the nonspeech noise first, then LibriSpeech train, then the LJ utterances beyond demo/'s
#   (.carry, the scripts themselves, is made by lease.sh in, every lease)
#   .state/valid_reference.json  the teacher-medium export's validation scores (PC-30 on the GPU), so that a lease of
#                 students.sh does not compute them again
set -e
S=${SHARED:-../shared/data}
[ -d "$S/librispeech_mini" ] || { echo "error: $S/librispeech_mini not found (set SHARED=.../data)"; exit 1; }
mkdir -p .whl .sdist
mkdir -p .state && [ -f .state/valid_reference.json ] || \
  cp results/manyvoices/logs/valid_reference-teacher-medium.json .state/valid_reference.json
P="--no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64"
pip download -q $P --platform manylinux_2_17_x86_64 -d .whl soundfile cffi pycparser pystoi Cython
if [ ! -f .sdist/pesq-0.0.4.tar.gz ]; then
  T=$(mktemp -d)
  python -m pip install -q wheel  # pesq's metadata step (no build isolation) needs bdist_wheel; a new machine lacks it
  pip download -q --no-deps --no-binary=:all: --no-build-isolation -d $T pesq==0.0.4
  tar xzf $T/pesq-0.0.4.tar.gz -C $T && sed -i "s/, 'pytest-runner'//" $T/pesq-0.0.4/setup.py
  tar czf .sdist/pesq-0.0.4.tar.gz -C $T pesq-0.0.4 && rm -rf $T
fi
if [ ! -d .xfer0 ]; then
  T=$(mktemp -d)
  python data.py testset --speech $S/librispeech_mini/test --noise $S/noise_nonspeech100 --out $T/libri_test
  python - "$S" "$T/libri_test" <<'PY'
import glob, os, shutil, sys
shared, test = sys.argv[1:]
demo = set(os.listdir("demo/speech_train")) | set(os.listdir("demo/speech_test"))
items = [(f, "valid/libri_test/" + os.path.relpath(f, test)) for f in sorted(glob.glob(test + "/*/*.flac"))]
items += [(f, "noise/" + os.path.basename(f)) for f in sorted(glob.glob(shared + "/noise_nonspeech100/*.flac"))]
train = shared + "/librispeech_mini/train"
items += [(f, "speech/libri/" + os.path.relpath(f, train))
          for f in sorted(glob.glob(train + "/**/*.flac", recursive=True))]
items += [(f, "speech/lj/" + os.path.basename(f)) for f in sorted(glob.glob(shared + "/ljspeech_16k/*.flac"))
          if os.path.basename(f) not in demo]
part, size = 0, 0
for f, rel in items:
    if size + os.path.getsize(f) > 14.5 * 2**20:
        part, size = part + 1, 0
    os.makedirs(os.path.dirname(f".xfer{part}/{rel}"), exist_ok=True)
    shutil.copy(f, f".xfer{part}/{rel}")
    size += os.path.getsize(f)
print(f"{len(items)} files in {part + 1} parts")
PY
  rm -rf $T
fi
ls .whl .sdist; for d in .xfer*; do echo "$d $(find $d -type f | wc -l) files"; done
