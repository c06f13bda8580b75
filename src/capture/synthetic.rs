//! A deterministic synthetic scene: bright rectangles moving over a textured background.
//! Same seed and frame number → the same pixels, so tests and demos are reproducible.

use super::{monotonic_ns, pace, CaptureError, Frame, FrameSource};
use image::{Rgb, RgbImage};
use std::time::Instant;

/// Moving rectangles over a checker/gradient texture.
pub struct SyntheticSource {
    width: u32,
    height: u32,
    fps: Option<f64>,
    seq: u64,
    start: Instant,
}

impl SyntheticSource {
    pub fn new(width: u32, height: u32, fps: Option<f64>) -> SyntheticSource {
        SyntheticSource {
            width: width.max(16),
            height: height.max(16),
            fps,
            seq: 0,
            start: Instant::now(),
        }
    }
}

/// The pixels of frame `n` (pure function of the size and `n`).
pub fn render(width: u32, height: u32, n: u64) -> RgbImage {
    let mut img = RgbImage::from_fn(width, height, |x, y| {
        let checker = if ((x / 16) + (y / 16)) % 2 == 0 {
            40
        } else {
            70
        };
        Rgb([
            checker + (x * 60 / width) as u8,
            checker + (y * 60 / height) as u8,
            checker,
        ])
    });
    let objects = [
        (0.2f64, 0.3f64, 3u32, [230u8, 40, 40]),
        (0.6, 0.6, 5, [40, 200, 60]),
        (0.4, 0.8, 7, [240, 220, 50]),
    ];
    for (i, (fx, fy, speed, colour)) in objects.iter().enumerate() {
        let (bw, bh) = (width / 8 + i as u32 * 4, height / 10 + i as u32 * 3);
        let x0 = ((fx * width as f64) as u64 + n * *speed as u64)
            % u64::from(width.saturating_sub(bw).max(1));
        let y0 = (fy * height as f64) as u32 % height.saturating_sub(bh).max(1);
        for y in y0..(y0 + bh).min(height) {
            for x in (x0 as u32)..(x0 as u32 + bw).min(width) {
                img.put_pixel(x, y, Rgb(*colour));
            }
        }
    }
    img
}

impl FrameSource for SyntheticSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        pace(self.start, self.seq, self.fps);
        let seq = self.seq;
        self.seq += 1;
        let t_capture_ns = monotonic_ns();
        let image = render(self.width, self.height, seq);
        Ok(Some(Frame {
            seq,
            t_capture_ns,
            source_id: "synthetic".into(),
            path: None,
            image,
        }))
    }

    fn nominal_fps(&self) -> Option<f64> {
        self.fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_moving() {
        assert_eq!(render(64, 48, 3), render(64, 48, 3));
        assert_ne!(render(64, 48, 3), render(64, 48, 4));
    }

    #[test]
    fn frames_are_numbered_and_monotonic() {
        let mut s = SyntheticSource::new(32, 32, None);
        let a = s.next_frame().unwrap().unwrap();
        let b = s.next_frame().unwrap().unwrap();
        assert_eq!((a.seq, b.seq), (0, 1));
        assert!(b.t_capture_ns >= a.t_capture_ns);
    }
}
