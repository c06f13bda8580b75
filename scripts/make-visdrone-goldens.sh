#!/usr/bin/env bash
# Golden numbers for `kestrel eval --protocol visdrone`: runs the OFFICIAL VisDrone2018-DET toolkit,
# unchanged, under GNU Octave on the fixtures of tests/fixtures/visdrone/make_fixtures.py and
# writes tests/fixtures/visdrone/goldens.txt. Not part of CI (CI has neither Octave nor the toolkit,
# whose code must never be committed here).
#
# usage: scripts/make-visdrone-goldens.sh TOOLKIT_DIR
#   TOOLKIT_DIR: a checkout of github.com/VisDrone/VisDrone2018-DET-toolkit (commit 0054457 used)
#   needs: octave (apt-get install -y octave), .venv with opencv (scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
toolkit=$(realpath "$1")
fix=tests/fixtures/visdrone
rm -rf "$fix/sets"
.venv/bin/python "$fix/make_fixtures.py" "$fix/sets"
drv=$(mktemp -d)
# `mean2` comes from Octave's image package (absent): the toolkit only needs "mean of all elements".
echo 'function m = mean2(x); m = mean(x(:)); end' > "$drv/mean2.m"
cat > "$drv/golden.m" <<'M'
function golden(toolkit, setdir)
  addpath(fullfile(toolkit, 'utils'));
  gtPath = fullfile(setdir, 'annotations');
  nameImgs = findImageList(gtPath);
  numImgs = length(nameImgs);
  [allgt, alldet] = saveAnnoRes(gtPath, fullfile(setdir, 'results'), fullfile(setdir, 'images'), numImgs, nameImgs);
  [a, a50, a75, r1, r10, r100, r500] = calcAccuracy(numImgs, allgt, alldet);
  printf('GOLDEN %.10f %.10f %.10f %.10f %.10f %.10f %.10f\n', a, a50, a75, r1, r10, r100, r500);
end
M
out="$fix/goldens.txt"
{
  echo "# official VisDrone2018-DET toolkit $(git -C "$toolkit" rev-parse --short HEAD 2>/dev/null || echo '?'), $(octave --version | head -1)"
  echo "# set AP AP50 AP75 AR1 AR10 AR100 AR500 (percent, as the toolkit computes them)"
  for s in $(ls "$fix/sets"); do
    sd=$(realpath "$fix/sets/$s")
    line=$(cd "$drv" && octave --no-gui --quiet --eval "golden('$toolkit', '$sd')" 2>/dev/null | grep "^GOLDEN")
    echo "$s ${line#GOLDEN }"
  done
} > "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$drv"
cat "$out"
