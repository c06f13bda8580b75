#!/usr/bin/env python3
"""OpenCV reference for Kestrel's undistortion: reads an OpenCV FileStorage calibration file with
cv2.FileStorage and prints cv2.undistortPointsIter of the given pixels (normalised x, y) as JSON.
Usage: undistort_points.py CALIB.json u1 v1 u2 v2 ..."""
import json
import sys

import cv2
import numpy as np

fs = cv2.FileStorage(sys.argv[1], cv2.FILE_STORAGE_READ)
K = fs.getNode("camera_matrix").mat()
D = fs.getNode("distortion_coefficients").mat()
size = [int(fs.getNode("image_width").real()), int(fs.getNode("image_height").real())]
px = np.array([float(a) for a in sys.argv[2:]], dtype=np.float64).reshape(-1, 1, 2)
crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
und = cv2.undistortPointsIter(px, K, D, None, None, crit).reshape(-1, 2)
print(json.dumps({"K": K.tolist(), "D": D.ravel().tolist(), "size": size, "xy": und.tolist()}))
