#!/usr/bin/env bash
# Golden numbers for `kestrel eval --protocol visdrone` on VisDrone-VID layouts: runs the OFFICIAL
# VisDrone2018-VID toolkit, unchanged, under GNU Octave on the fixtures of
# tests/fixtures/visdrone/make_vid_fixtures.py and writes tests/fixtures/visdrone/vid_goldens.txt
# (overall line `SET all …` and one line per class from the AP/AR matrices calcAccuracy returns).
# Not part of CI (CI has neither Octave nor the toolkit, whose code must never be committed here).
#
# usage: scripts/make-visdrone-vid-goldens.sh TOOLKIT_DIR
#   TOOLKIT_DIR: a checkout of github.com/VisDrone/VisDrone2018-VID-toolkit (commit b5712fb used)
#   needs: octave (apt-get install -y octave), .venv with opencv (scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
toolkit=$(realpath "$1")
fix=tests/fixtures/visdrone
rm -rf "$fix/vid_sets"
.venv/bin/python "$fix/make_vid_fixtures.py" "$fix/vid_sets"
drv=$(mktemp -d)
# `mean2` comes from Octave's image package (absent): the toolkit only needs "mean of all elements".
echo 'function m = mean2(x); m = mean(x(:)); end' > "$drv/mean2.m"
cat > "$drv/golden_vid.m" <<'M'
function golden_vid(toolkit, setdir)
  addpath(toolkit);
  gtPath = fullfile(setdir, 'annotations');
  nameSeqs = findSeqList(gtPath);
  numSeqs = length(nameSeqs);
  [allgt, alldet] = saveAnnoRes(gtPath, fullfile(setdir, 'results'), fullfile(setdir, 'sequences'), numSeqs, nameSeqs);
  [AP, AR, a, a50, a75, r1, r10, r100, r500] = calcAccuracy(numSeqs, allgt, alldet);
  printf('GOLDEN all %.10f %.10f %.10f %.10f %.10f %.10f %.10f\n', a, a50, a75, r1, r10, r100, r500);
  for c = 1:10
    if ~any(cellfun(@(g) any(g(:, 8) == c), allgt)), continue; end
    printf('GOLDEN %d %.10f %.10f %.10f %.10f %.10f %.10f %.10f\n', c, mean(AP(c, :)), AP(c, 1), AP(c, 6), ...
           mean(AR(c, :, 1)), mean(AR(c, :, 2)), mean(AR(c, :, 3)), mean(AR(c, :, 4)));
  end
end
M
out="$fix/vid_goldens.txt"
{
  echo "# official VisDrone2018-VID toolkit $(git -C "$toolkit" rev-parse --short HEAD 2>/dev/null || echo '?'), $(octave --version | head -1)"
  echo "# set class|all AP AP50 AP75 AR1 AR10 AR100 AR500 (percent, as the toolkit computes them)"
  for s in $(ls "$fix/vid_sets"); do
    sd=$(realpath "$fix/vid_sets/$s")
    (cd "$drv" && octave --no-gui --quiet --eval "golden_vid('$toolkit', '$sd')" 2>/dev/null) \
      | grep "^GOLDEN" | sed "s/^GOLDEN /$s /"
  done
} > "$out.tmp"
mv "$out.tmp" "$out"
rm -rf "$drv"
cat "$out"
