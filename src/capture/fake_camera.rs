//! The camera logic that sits above the driver call — reopen with backoff after an unplug,
//! driver timestamps turned into CLOCK_MONOTONIC capture times, decode errors per frame —
//! written against [`CameraDevice`], so it is tested with a fake device where no camera exists.
//! The real device is `camera::NokhwaDevice` (feature `camera`).

use super::{monotonic_ns, CaptureError, Frame, FrameSource};
use std::time::Duration;

/// A capture mode as the driver offers it, independent of the driver crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `mjpeg`, `yuyv`, … in lower case.
    pub format: &'static str,
}

/// Index of the offered mode closest to the wish: same pixel format first, then nearest size, then
/// nearest fps. Kept free of the driver so the choice is tested without a camera.
pub fn choose_mode(offered: &[Mode], want: Mode) -> Option<usize> {
    let dist = |a: u32, b: u32| (i64::from(a) - i64::from(b)).abs();
    (0..offered.len()).min_by_key(|&i| {
        let m = offered[i];
        (
            m.format != want.format,
            dist(m.width, want.width) + dist(m.height, want.height),
            dist(m.fps, want.fps),
        )
    })
}

/// One raw frame from a device: decoded RGB plus how old the driver says it is.
pub struct RawFrame {
    pub image: image::RgbImage,
    /// Age of the frame at the moment it was handed over (driver timestamp → now), if known.
    pub age: Option<Duration>,
}

/// What a camera driver must offer. `open` may be called again after `frame` failed.
pub trait CameraDevice: Send {
    fn name(&self) -> String;
    /// # Errors
    /// Device absent or busy.
    fn open(&mut self) -> Result<(), CaptureError>;
    /// # Errors
    /// `Decode` for one bad frame; anything else means the device is lost and must be reopened.
    fn frame(&mut self) -> Result<RawFrame, CaptureError>;
}

/// A camera as a [`FrameSource`]: survives unplugging by reopening with exponential backoff.
pub struct CameraSource<D: CameraDevice> {
    device: D,
    open: bool,
    seq: u64,
    backoff: Duration,
    max_backoff: Duration,
    /// How many times the device was lost (reported in stats).
    pub reopens: u64,
}

impl<D: CameraDevice> CameraSource<D> {
    pub fn new(device: D) -> Self {
        CameraSource {
            device,
            open: false,
            seq: 0,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            reopens: 0,
        }
    }

    fn ensure_open(&mut self) {
        while !self.open {
            match self.device.open() {
                Ok(()) => {
                    self.open = true;
                    self.backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in {:?}", self.backoff);
                    std::thread::sleep(self.backoff);
                    self.backoff = (self.backoff * 2).min(self.max_backoff);
                }
            }
        }
    }
}

impl<D: CameraDevice> FrameSource for CameraSource<D> {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            self.ensure_open();
            match self.device.frame() {
                Ok(raw) => {
                    let now = monotonic_ns();
                    let age = raw.age.map(|a| a.as_nanos() as u64).unwrap_or(0);
                    let seq = self.seq;
                    self.seq += 1;
                    let t_capture_ns = now.saturating_sub(age);
                    return Ok(Some(Frame {
                        seq,
                        t_capture_ns,
                        source_id: self.device.name(),
                        path: None,
                        image: raw.image,
                    }));
                }
                Err(e @ CaptureError::Decode { .. }) => {
                    self.seq += 1;
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!("{e}: camera lost, reopening");
                    self.open = false;
                    self.reopens += 1;
                }
            }
        }
    }

    fn reopens(&self) -> u64 {
        self.reopens
    }
}

/// A camera that is not there: serves the given images (cycled) at `fps`, each `age` old by its
/// driver clock, and is unplugged once after `unplug_after` frames, staying absent for
/// `absent_opens` open attempts. Drives [`CameraSource`] and the whole pipeline in tests and demos
/// on machines without a camera.
pub struct FakeCamera {
    pub images: Vec<image::RgbImage>,
    pub fps: f64,
    pub age: Duration,
    pub unplug_after: Option<u64>,
    pub absent_opens: u32,
    /// Open attempts so far, failed ones included (shared so a test can read it after the run).
    pub opens: std::sync::Arc<std::sync::atomic::AtomicU64>,
    served: u64,
    absent_left: u32,
    open: bool,
}

impl FakeCamera {
    pub fn new(images: Vec<image::RgbImage>, fps: f64) -> FakeCamera {
        FakeCamera {
            images,
            fps,
            age: Duration::ZERO,
            unplug_after: None,
            absent_opens: 0,
            opens: Default::default(),
            served: 0,
            absent_left: 0,
            open: false,
        }
    }

    fn lost(reason: &str) -> CaptureError {
        CaptureError::Camera {
            device: "fake".into(),
            reason: reason.into(),
        }
    }
}

impl CameraDevice for FakeCamera {
    fn name(&self) -> String {
        "camera:fake".into()
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        self.opens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.absent_left > 0 {
            self.absent_left -= 1;
            return Err(Self::lost("no such device (unplugged)"));
        }
        self.open = true;
        Ok(())
    }

    fn frame(&mut self) -> Result<RawFrame, CaptureError> {
        if !self.open || self.images.is_empty() {
            return Err(Self::lost("not open"));
        }
        if self.unplug_after == Some(self.served) {
            self.unplug_after = None;
            self.open = false;
            self.absent_left = self.absent_opens;
            return Err(Self::lost("device unplugged"));
        }
        if self.fps > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(1.0 / self.fps));
        }
        let image = self.images[(self.served % self.images.len() as u64) as usize].clone();
        self.served += 1;
        Ok(RawFrame {
            image,
            age: Some(self.age),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A device scripted frame by frame: `Ok` frames, a bad frame, and an unplug.
    struct Scripted {
        script: Vec<&'static str>,
        opens: usize,
        fail_opens: usize,
    }

    impl CameraDevice for Scripted {
        fn name(&self) -> String {
            "camera:fake".into()
        }
        fn open(&mut self) -> Result<(), CaptureError> {
            self.opens += 1;
            if self.fail_opens > 0 {
                self.fail_opens -= 1;
                return Err(CaptureError::Camera {
                    device: "fake".into(),
                    reason: "absent".into(),
                });
            }
            Ok(())
        }
        fn frame(&mut self) -> Result<RawFrame, CaptureError> {
            match self.script.remove(0) {
                "ok" => Ok(RawFrame {
                    image: image::RgbImage::new(4, 4),
                    age: Some(Duration::from_millis(20)),
                }),
                "bad" => Err(CaptureError::Decode {
                    path: PathBuf::from("fake"),
                    reason: "corrupt".into(),
                }),
                _ => {
                    self.fail_opens = 2;
                    Err(CaptureError::Camera {
                        device: "fake".into(),
                        reason: "unplugged".into(),
                    })
                }
            }
        }
    }

    #[test]
    fn mode_choice_prefers_format_then_size_then_fps() {
        let m = |width, height, fps, format| Mode {
            width,
            height,
            fps,
            format,
        };
        let offered = [
            m(640, 480, 30, "yuyv"),
            m(1280, 720, 30, "mjpeg"),
            m(1280, 720, 60, "mjpeg"),
            m(1920, 1080, 30, "mjpeg"),
        ];
        assert_eq!(choose_mode(&offered, m(1200, 700, 25, "mjpeg")), Some(1));
        assert_eq!(choose_mode(&offered, m(1280, 720, 50, "mjpeg")), Some(2));
        assert_eq!(choose_mode(&offered, m(1920, 1080, 30, "yuyv")), Some(0));
        assert_eq!(choose_mode(&[], m(1, 1, 1, "mjpeg")), None);
    }

    #[test]
    fn unplug_reopens_with_backoff_and_bad_frames_are_per_frame() {
        let dev = Scripted {
            script: vec!["ok", "bad", "unplug", "ok"],
            opens: 0,
            fail_opens: 1,
        };
        let mut cam = CameraSource::new(dev);
        let before = monotonic_ns();
        let f = cam.next_frame().unwrap().unwrap();
        let after = monotonic_ns();
        // The stamp is the driver's capture instant: 20 ms before the frame was dequeued, which
        // happened somewhere between `before` (plus a reopen backoff) and `after`.
        assert!(
            f.t_capture_ns + 20_000_000 <= after && f.t_capture_ns + 20_000_000 >= before,
            "driver age applied"
        );
        assert!(matches!(cam.next_frame(), Err(CaptureError::Decode { .. })));
        let g = cam.next_frame().unwrap().unwrap();
        assert_eq!((f.seq, g.seq), (0, 2));
        assert_eq!(cam.reopens, 1);
        assert_eq!(
            cam.device.opens,
            2 + 3,
            "1 failed + 1 ok, then 2 failed + 1 ok"
        );
    }
}
