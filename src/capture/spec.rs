//! `--source` strings: `camera:N`, `replay:DIR`, `video:FILE`, `synthetic`.

use super::replay::{ReplayOptions, ReplaySource};
use super::synthetic::SyntheticSource;
use super::video::VideoSource;
use super::{CaptureError, FrameSource};
use std::path::PathBuf;

/// A parsed `--source`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Camera(u32),
    Replay(PathBuf),
    Video(PathBuf),
    Synthetic,
}

impl std::str::FromStr for SourceSpec {
    type Err = CaptureError;
    fn from_str(s: &str) -> Result<Self, CaptureError> {
        let bad = |reason: &str| CaptureError::Spec {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        match s.split_once(':') {
            Some(("camera", n)) => n
                .parse()
                .map(SourceSpec::Camera)
                .map_err(|_| bad("expected camera:N (N = /dev/videoN)")),
            Some(("replay", d)) if !d.is_empty() => Ok(SourceSpec::Replay(PathBuf::from(d))),
            Some(("video", f)) if !f.is_empty() => Ok(SourceSpec::Video(PathBuf::from(f))),
            None if s == "synthetic" => Ok(SourceSpec::Synthetic),
            _ => Err(bad(
                "expected camera:N, replay:DIR, video:FILE or synthetic",
            )),
        }
    }
}

/// Options that apply to whichever source is opened.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub fps: Option<f64>,
    pub looped: bool,
    /// Requested camera / synthetic resolution.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Camera pixel format: `mjpeg` or `yuyv`.
    pub pixel_format: Option<String>,
}

/// Opens a source. Call it on the thread that will read it (cameras are tied to their thread).
///
/// # Errors
/// Missing folders/files/tools, or a camera source in a build without the `camera` feature.
pub fn open_source(
    spec: &SourceSpec,
    opts: &SourceOptions,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    Ok(match spec {
        SourceSpec::Replay(d) => Box::new(ReplaySource::open(
            d,
            ReplayOptions {
                fps: opts.fps,
                looped: opts.looped,
            },
        )?),
        SourceSpec::Video(f) => Box::new(VideoSource::open(f, opts.fps)?),
        SourceSpec::Synthetic => Box::new(SyntheticSource::new(
            opts.width.unwrap_or(640),
            opts.height.unwrap_or(480),
            opts.fps,
        )),
        #[cfg(feature = "camera")]
        SourceSpec::Camera(n) => Box::new(super::fake_camera::CameraSource::new(
            super::camera::NokhwaDevice::new(*n, opts)?,
        )),
        #[cfg(not(feature = "camera"))]
        SourceSpec::Camera(_) => return Err(CaptureError::CameraNotBuilt),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_names_bad_ones() {
        assert_eq!(
            "camera:2".parse::<SourceSpec>().unwrap(),
            SourceSpec::Camera(2)
        );
        assert_eq!(
            "replay:/d".parse::<SourceSpec>().unwrap(),
            SourceSpec::Replay("/d".into())
        );
        assert_eq!(
            "video:a.mp4".parse::<SourceSpec>().unwrap(),
            SourceSpec::Video("a.mp4".into())
        );
        assert_eq!(
            "synthetic".parse::<SourceSpec>().unwrap(),
            SourceSpec::Synthetic
        );
        let e = "camera:x".parse::<SourceSpec>().unwrap_err().to_string();
        assert!(e.contains("camera:x"), "{e}");
        assert!("webcam".parse::<SourceSpec>().is_err());
    }
}
