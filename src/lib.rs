//! Kestrel: real-time object detection on a drone's companion computer.
//!
//! Data flows one way, and the modules follow it:
//! `capture` (frames) → `pipeline` (threads, channels, stats) → `model` (Darknet network on Candle)
//! → `detect` (letterbox, decode, NMS) → `publish` (MAVLink, JSONL, annotated images).
//! Offline tools sit beside the flow: `eval` (VisDrone / COCO metrics), `prune` (SlimYOLOv3
//! channel pruning) and `quant` (reduced precision).
//!
//! Every module owns its types and its `thiserror` error enum; only the binary uses `anyhow`.

pub mod capture;
pub mod clock;
pub mod config;
pub mod detect;
pub mod eval;
pub mod geo;
pub mod model;
pub mod pipeline;
pub mod prune;
pub mod publish;
pub mod quant;
