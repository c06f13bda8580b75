//! Errors of `model`: every variant says where (file, line, section, key, layer).

use std::path::PathBuf;

/// Everything that can go wrong while parsing a cfg, reading weights or running the network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A `[block]` name Darknet-family cfgs do not define here.
    #[error("{file}:{line}: unknown block [{block}]")]
    UnknownBlock {
        file: String,
        line: usize,
        block: String,
    },
    /// A required key is absent from a section.
    #[error("{file}:{line}: [{section}] (layer {layer}) is missing required key `{key}`")]
    MissingKey {
        file: String,
        line: usize,
        section: String,
        layer: isize,
        key: String,
    },
    /// A value that is not of the expected form (number, list, known name).
    #[error("{file}:{line}: [{section}] key `{key}`: invalid value `{value}` ({why})")]
    BadValue {
        file: String,
        line: usize,
        section: String,
        key: String,
        value: String,
        why: String,
    },
    /// A line that is neither `[section]`, `key=value`, comment nor blank.
    #[error("{file}:{line}: cannot parse line `{text}`")]
    Syntax {
        file: String,
        line: usize,
        text: String,
    },
    /// A structural error of a layer (bad route/shortcut target, channel mismatch, bad shape).
    #[error("{file}:{line}: [{section}] layer {layer}, key `{key}`: {why}")]
    Layer {
        file: String,
        line: usize,
        section: String,
        layer: usize,
        key: String,
        why: String,
    },
    /// The `.weights` header is not one Kestrel accepts.
    #[error("{path}: bad .weights header: {why}")]
    WeightsHeader { path: PathBuf, why: String },
    /// The `.weights` file ends before every parameter of the cfg was read.
    #[error("{path}: truncated .weights: layer {layer} ({kind}) runs past end of file; expected {expected} bytes for the cfg, file has {actual}")]
    WeightsTruncated {
        path: PathBuf,
        layer: usize,
        kind: String,
        expected: u64,
        actual: u64,
    },
    /// The `.weights` file has bytes the cfg does not account for.
    #[error(
        "{path}: oversized .weights: expected {expected} bytes for the cfg, file has {actual}"
    )]
    WeightsOversized {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    /// Weights that do not fit the cfg they are combined with.
    #[error("weights do not match cfg at layer {layer}: {why}")]
    WeightsMismatch { layer: usize, why: String },
    /// An input tensor the network cannot take.
    #[error("bad input: {0}")]
    Input(String),
    /// A tensor operation failed inside a layer.
    #[error("layer {layer} ({kind}): {source}")]
    Tensor {
        layer: usize,
        kind: String,
        source: candle_core::Error,
    },
    /// A tensor operation failed outside any layer (input checks, decode).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Output formatting failed.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}
