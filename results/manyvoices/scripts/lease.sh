# lease.sh in | out, in the work tree's root: the tree that travels with every device call cut to about 15 MB for a
# lease (the big tracked files taken out of the index and listed in .git/info/exclude; nothing leaves the disk or
# the repository), and put back after it. Commit nothing between "in" and "out".
set -e
BIG="checkpoints tests/official results docs/training-step.png docs/sampling.png demo/indomain_noisy demo/ood_noisy"
case "$1" in
  in)
    [ -f .git/lease.index ] && { echo "error: already in a lease (.git/lease.index exists)"; exit 1; }
    mkdir -p .git/info && touch .git/info/exclude
    cp .git/index .git/lease.index && cp .git/info/exclude .git/lease.exclude
    git rm -r -q --cached $BIG
    for p in $BIG; do echo "/$p" >> .git/info/exclude; done
    echo "tracked for the lease: $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes"
    # .carry (ignored): these scripts as they are now, carried by name (results/ is out of the lease's tree); made
    # here and only here, so an edit since the last lease cannot stay behind in an old copy
    mkdir -p .carry && cp results/manyvoices/scripts/*.sh .carry/ && echo ".carry: the scripts copied" ;;
  out)
    [ -f .git/lease.index ] || { echo "error: not in a lease (no .git/lease.index)"; exit 1; }
    mv .git/lease.index .git/index && mv .git/lease.exclude .git/info/exclude
    git status --short | head -5 ;;
  *) echo "usage: bash results/manyvoices/scripts/lease.sh in|out"; exit 2 ;;
esac
