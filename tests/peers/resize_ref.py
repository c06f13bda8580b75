"""OpenCV's cv2.resize(INTER_LINEAR) of an image file (RGB order), written as raw bytes.

Usage: resize_ref.py IMAGE WIDTH HEIGHT OUT.rgb
"""

import sys

import cv2

img = cv2.cvtColor(cv2.imread(sys.argv[1], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
w, h = int(sys.argv[2]), int(sys.argv[3])
out = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
with open(sys.argv[4], "wb") as f:
    f.write(out.tobytes())
print(out.shape[1], out.shape[0])
