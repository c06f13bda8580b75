#!/usr/bin/env bash
# Golden numbers for `kestrel eval --protocol visdrone`: runs the OFFICIAL VisDrone2018-DET toolkit,
# unchanged, under GNU Octave on the fixtures of tests/fixtures/visdrone/make_fixtures.py and
# writes tests/fixtures/visdrone/goldens.txt (overall) and goldens_per_class.txt (per class: calcAccuracy
# again with the GT cells filtered to one class, detections unchanged — the toolkit itself is not
# edited). Not part of CI (CI has neither Octave nor the toolkit, whose code must never be committed).
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
  for c = 1:10
    gtc = cellfun(@(g) g(g(:, 6) == c, :), allgt, 'UniformOutput', false);
    if ~any(cellfun(@(g) any(g(:, 6) == c), gtc)), continue; end
    [a, a50, a75, r1, r10, r100, r500] = calcAccuracy(numImgs, gtc, alldet);
    printf('CLASS %d %.10f %.10f %.10f %.10f %.10f %.10f %.10f\n', c, a, a50, a75, r1, r10, r100, r500);
  end
end
M
out="$fix/goldens.txt"
pc="$fix/goldens_per_class.txt"
head="# official VisDrone2018-DET toolkit $(git -C "$toolkit" rev-parse --short HEAD 2>/dev/null || echo '?'), $(octave --version | head -1)"
echo "$head" > "$pc.tmp"
echo "# set class AP AP50 AP75 AR1 AR10 AR100 AR500 (percent; calcAccuracy on the GT of that class only)" >> "$pc.tmp"
{
  echo "# official VisDrone2018-DET toolkit $(git -C "$toolkit" rev-parse --short HEAD 2>/dev/null || echo '?'), $(octave --version | head -1)"
  echo "# set AP AP50 AP75 AR1 AR10 AR100 AR500 (percent, as the toolkit computes them)"
  for s in $(ls "$fix/sets"); do
    sd=$(realpath "$fix/sets/$s")
    log=$(cd "$drv" && octave --no-gui --quiet --eval "golden('$toolkit', '$sd')" 2>/dev/null)
    line=$(grep "^GOLDEN" <<<"$log")
    echo "$s ${line#GOLDEN }"
    grep "^CLASS" <<<"$log" | sed "s/^CLASS /$s /" >> "$pc.tmp"
  done
} > "$out.tmp"
mv "$out.tmp" "$out"
mv "$pc.tmp" "$pc"
rm -rf "$drv"
cat "$out"
