//! Counters and latency percentiles of a run: printed every few seconds and at exit, and
//! written as JSON by `--stats-json`. Latency samples live in fixed-size rings, so memory stays
//! bounded however long the run.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;

const RING: usize = 20_000;

/// The most recent latency samples of one stage, in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    ring: Vec<f64>,
    next: usize,
    count: u64,
    sum: f64,
}

impl Samples {
    pub fn push(&mut self, ms: f64) {
        if self.ring.len() < RING {
            self.ring.push(ms);
        } else {
            self.ring[self.next] = ms;
            self.next = (self.next + 1) % RING;
        }
        self.count += 1;
        self.sum += ms;
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f64
        }
    }

    /// p50/p90/p99/max over the ring.
    pub fn summary(&self) -> Value {
        let mut v = self.ring.clone();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() - 1) as f64 * p).round() as usize]
            }
        };
        json!({"n": self.count, "mean": self.mean(), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": v.last().copied().unwrap_or(0.0)})
    }
}

/// Everything counted during a run.
#[derive(Debug, Clone)]
pub struct Stats {
    pub start: Instant,
    pub frames_in: u64,
    pub frames_inferred: u64,
    pub frames_out: u64,
    pub decode_errors: u64,
    pub dropped_stale: u64,
    pub dropped_publish: u64,
    pub infer_errors: u64,
    pub sink_errors: u64,
    pub detections: u64,
    /// Times the source lost its device (camera unplugged) and reopened it.
    pub source_reopens: u64,
    /// Capture → all sinks done.
    pub end_to_end: Samples,
    /// Per stage: decode, queue, preprocess, forward, postprocess, publish.
    pub stages: BTreeMap<&'static str, Samples>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            start: Instant::now(),
            frames_in: 0,
            frames_inferred: 0,
            frames_out: 0,
            decode_errors: 0,
            dropped_stale: 0,
            dropped_publish: 0,
            infer_errors: 0,
            sink_errors: 0,
            detections: 0,
            source_reopens: 0,
            end_to_end: Samples::default(),
            stages: BTreeMap::new(),
        }
    }
}

impl Stats {
    pub fn stage(&mut self, name: &'static str, ms: f64) {
        self.stages.entry(name).or_default().push(ms);
    }

    fn stage_mean(&self, name: &str) -> f64 {
        self.stages.get(name).map(Samples::mean).unwrap_or(0.0)
    }

    /// (decode + preprocess + postprocess + publish) / forward, by means: the pipeline's cost
    /// relative to the model.
    pub fn overhead_fraction(&self) -> f64 {
        let f = self.stage_mean("forward");
        let o = ["decode", "preprocess", "postprocess", "publish"]
            .iter()
            .map(|s| self.stage_mean(s))
            .sum::<f64>();
        if f > 0.0 {
            o / f
        } else {
            0.0
        }
    }

    pub fn summary(&self) -> Value {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let stages: serde_json::Map<String, Value> = self
            .stages
            .iter()
            .map(|(k, v)| (k.to_string(), v.summary()))
            .collect();
        json!({
            "elapsed_s": secs,
            "frames_in": self.frames_in, "frames_inferred": self.frames_inferred, "frames_out": self.frames_out,
            "fps_in": self.frames_in as f64 / secs, "fps_out": self.frames_out as f64 / secs,
            "detections": self.detections, "source_reopens": self.source_reopens,
            "drops": {"stale": self.dropped_stale, "publish_queue": self.dropped_publish,
                      "decode_errors": self.decode_errors, "infer_errors": self.infer_errors, "sink_errors": self.sink_errors},
            "latency_ms": {"capture_to_publish": self.end_to_end.summary(), "stages": stages},
            "overhead_fraction": self.overhead_fraction(),
        })
    }

    /// One human line for the periodic report.
    pub fn line(&self) -> String {
        let s = self.summary();
        let e = &s["latency_ms"]["capture_to_publish"];
        format!(
            "frames in {} out {} | fps in {:.1} out {:.1} | drops stale {} publish {} decode {} | latency ms p50 {:.1} p90 {:.1} p99 {:.1} | overhead {:.1}% of model",
            self.frames_in, self.frames_out, s["fps_in"].as_f64().unwrap_or(0.0), s["fps_out"].as_f64().unwrap_or(0.0),
            self.dropped_stale, self.dropped_publish, self.decode_errors,
            e["p50"].as_f64().unwrap_or(0.0), e["p90"].as_f64().unwrap_or(0.0), e["p99"].as_f64().unwrap_or(0.0),
            self.overhead_fraction() * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_bounded_ring() {
        let mut s = Samples::default();
        for i in 0..(RING as u64 + 100) {
            s.push((i % 100) as f64);
        }
        assert_eq!(s.ring.len(), RING);
        let v = s.summary();
        assert_eq!(v["p50"], 50.0);
        // Nearest rank: 99 % of the uniform 0..99 samples are ≤ 98.
        assert_eq!(v["p99"], 98.0);
        assert_eq!(v["n"], RING as u64 + 100);
    }
}
