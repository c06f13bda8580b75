//! Which number format a network's convolutions run in.

use super::QuantError;
use candle_core::quantized::GgmlDType;

/// Precision of the conv weights (activations stay f32 between layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// Plain f32 (the reference).
    #[default]
    F32,
    /// Weights stored in f16; the matmul runs in f16.
    F16,
    /// Weights stored in bf16. On CUDA the whole network runs in bf16; on a CPU with AMX-BF16 or
    /// AVX512-BF16 the stride-1 and -2 convs do (`quant::bf16`, the rest stays f32); other CPUs refuse it.
    Bf16,
    /// GGML Q8_0 blocks of 32 (int8 + one f16 scale), via candle's `QMatMul`.
    #[value(alias = "q8_0")]
    Q8,
    /// GGML Q4_0 blocks of 32: smallest file, least accurate.
    #[value(alias = "q4_0")]
    Q4,
}

impl Precision {
    /// The GGML type weights are stored as in a model file.
    pub fn ggml(self) -> GgmlDType {
        match self {
            Precision::F32 => GgmlDType::F32,
            Precision::F16 => GgmlDType::F16,
            Precision::Bf16 => GgmlDType::BF16,
            Precision::Q8 => GgmlDType::Q8_0,
            Precision::Q4 => GgmlDType::Q4_0,
        }
    }

    /// Name as written in model files and shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Q8 => "q8_0",
            Precision::Q4 => "q4_0",
        }
    }

    /// Parses a name written by [`Precision::name`] (or its short form).
    pub fn from_name(name: &str) -> Result<Precision, QuantError> {
        match name {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            "bf16" => Ok(Precision::Bf16),
            "q8_0" | "q8" => Ok(Precision::Q8),
            "q4_0" | "q4" => Ok(Precision::Q4),
            other => Err(QuantError::UnknownPrecision(other.to_string())),
        }
    }

    /// The dtype the whole network runs in on a CUDA device (None: not a CUDA precision).
    pub fn cuda_dtype(self) -> Option<candle_core::DType> {
        match self {
            Precision::F32 => Some(candle_core::DType::F32),
            Precision::F16 => Some(candle_core::DType::F16),
            Precision::Bf16 => Some(candle_core::DType::BF16),
            Precision::Q8 | Precision::Q4 => None,
        }
    }

    /// True for the block-quantized formats (K must be padded to [`Precision::block`]).
    pub fn is_quantized(self) -> bool {
        matches!(self, Precision::Q8 | Precision::Q4)
    }

    /// Block size along K: the reduction dim must be a multiple of it.
    pub fn block(self) -> usize {
        self.ggml().block_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            Precision::F32,
            Precision::F16,
            Precision::Bf16,
            Precision::Q8,
            Precision::Q4,
        ] {
            assert_eq!(Precision::from_name(p.name()).unwrap(), p);
        }
        assert!(Precision::from_name("int3").is_err());
        assert_eq!(Precision::Q8.block(), 32);
    }
}
