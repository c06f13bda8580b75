"""ORT static int8 (QDQ) model from an fp32 export, calibrated on real letterboxed images.

Usage: quantize.py FP32.onnx INT8.onnx SIZE IMAGE...
"""

import sys

from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

import darknet


class Images(CalibrationDataReader):
    def __init__(self, paths, size):
        self.items = iter([{"data": darknet.letterbox(p, size)} for p in paths])

    def get_next(self):
        return next(self.items, None)


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    src, dst, size, images = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    pre = dst + ".pre.onnx"
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    quantize_static(pre, dst, Images(images, size), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    print(f"quantize: {dst} (static QDQ, u8 activations / s8 per-channel weights, "
          f"{len(images)} calibration images)")


if __name__ == "__main__":
    main()
