//! USB cameras through nokhwa (V4L2 on Linux). Only the driver calls live here; reopening,
//! timestamps and decode-error handling are in `fake_camera::CameraSource`, tested without hardware.

use super::fake_camera::{choose_mode, CameraDevice, Mode, RawFrame};
use super::spec::SourceOptions;
use super::CaptureError;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::Camera;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// `/dev/videoN` with the mode chosen from what it offers.
pub struct NokhwaDevice {
    index: u32,
    want: (u32, u32, u32, FrameFormat),
    cam: Option<Camera>,
}

fn cam_err(index: u32, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Camera {
        device: format!("/dev/video{index}"),
        reason: e.to_string(),
    }
}

impl NokhwaDevice {
    /// # Errors
    /// An unknown pixel format name.
    pub fn new(index: u32, opts: &SourceOptions) -> Result<NokhwaDevice, CaptureError> {
        let fmt = match opts.pixel_format.as_deref().unwrap_or("mjpeg") {
            "mjpeg" => FrameFormat::MJPEG,
            "yuyv" => FrameFormat::YUYV,
            other => {
                return Err(cam_err(
                    index,
                    format!("pixel format {other}: expected mjpeg or yuyv"),
                ))
            }
        };
        let fps = opts.fps.map(|f| f.round() as u32).unwrap_or(30);
        Ok(NokhwaDevice {
            index,
            want: (
                opts.width.unwrap_or(1280),
                opts.height.unwrap_or(720),
                fps,
                fmt,
            ),
            cam: None,
        })
    }
}

fn format_name(f: FrameFormat) -> &'static str {
    match f {
        FrameFormat::MJPEG => "mjpeg",
        FrameFormat::YUYV => "yuyv",
        FrameFormat::NV12 => "nv12",
        FrameFormat::GRAY => "gray",
        FrameFormat::RAWRGB => "rawrgb",
        FrameFormat::RAWBGR => "rawbgr",
    }
}

/// The offered mode closest to the wish (`fake_camera::choose_mode`: format, then size, then fps).
pub fn choose_format(
    modes: &[CameraFormat],
    w: u32,
    h: u32,
    fps: u32,
    fmt: FrameFormat,
) -> Option<CameraFormat> {
    let offered: Vec<Mode> = modes
        .iter()
        .map(|m| Mode {
            width: m.width(),
            height: m.height(),
            fps: m.frame_rate(),
            format: format_name(m.format()),
        })
        .collect();
    let want = Mode {
        width: w,
        height: h,
        fps,
        format: format_name(fmt),
    };
    choose_mode(&offered, want).map(|i| modes[i])
}

impl CameraDevice for NokhwaDevice {
    fn name(&self) -> String {
        format!("camera:{}", self.index)
    }

    fn open(&mut self) -> Result<(), CaptureError> {
        let idx = CameraIndex::Index(self.index);
        let any = RequestedFormat::new::<RgbFormat>(RequestedFormatType::None);
        let mut cam = Camera::new(idx, any).map_err(|e| cam_err(self.index, e))?;
        let modes = cam
            .compatible_camera_formats()
            .map_err(|e| cam_err(self.index, e))?;
        let (w, h, fps, fmt) = self.want;
        let chosen = choose_format(&modes, w, h, fps, fmt)
            .ok_or_else(|| cam_err(self.index, "offers no capture format"))?;
        tracing::info!(
            "camera {}: using {chosen} (asked {w}x{h}@{fps} {fmt})",
            self.index
        );
        cam.set_camera_requset(RequestedFormat::new::<RgbFormat>(
            RequestedFormatType::Exact(chosen),
        ))
        .map_err(|e| cam_err(self.index, e))?;
        cam.open_stream().map_err(|e| cam_err(self.index, e))?;
        self.cam = Some(cam);
        Ok(())
    }

    fn frame(&mut self) -> Result<RawFrame, CaptureError> {
        let cam = self
            .cam
            .as_mut()
            .ok_or_else(|| cam_err(self.index, "not open"))?;
        let buf = match cam.frame() {
            Ok(b) => b,
            Err(e) => {
                self.cam = None;
                return Err(cam_err(self.index, e));
            }
        };
        let age = buf.capture_timestamp().and_then(|stamp| {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .ok()?;
            now.checked_sub(stamp)
                .filter(|a| *a < Duration::from_secs(5))
        });
        let image = buf
            .decode_image::<RgbFormat>()
            .map_err(|e| CaptureError::Decode {
                path: PathBuf::from(format!("/dev/video{}", self.index)),
                reason: e.to_string(),
            })?;
        Ok(RawFrame { image, age })
    }
}

/// One device: its label, and its modes or why it could not be opened.
pub type CameraListing = (String, Result<Vec<String>, String>);

/// Every V4L2 node with its capture modes (`kestrel cameras`). Nodes that do not open are listed
/// with the reason (UVC metadata nodes, codec nodes).
///
/// # Errors
/// Device enumeration failed.
pub fn list_cameras() -> Result<Vec<CameraListing>, CaptureError> {
    let cams = nokhwa::query(ApiBackend::Video4Linux).map_err(|e| CaptureError::Camera {
        device: "v4l2".into(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for info in cams {
        let label = format!(
            "{} ({}) [{}]",
            info.human_name(),
            info.description(),
            info.index()
        );
        let modes = Camera::new(
            info.index().clone(),
            RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
        )
        .and_then(|mut c| c.compatible_camera_formats())
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    format!(
                        "{}x{} @{} fps {}",
                        m.width(),
                        m.height(),
                        m.frame_rate(),
                        m.format()
                    )
                })
                .collect()
        })
        .map_err(|e| e.to_string());
        out.push((label, modes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nokhwa::utils::Resolution;

    #[test]
    fn choice_prefers_format_then_size_then_fps() {
        let m = |w, h, f, fps| CameraFormat::new(Resolution::new(w, h), f, fps);
        let modes = [
            m(640, 480, FrameFormat::YUYV, 30),
            m(1280, 720, FrameFormat::MJPEG, 30),
            m(1920, 1080, FrameFormat::MJPEG, 30),
        ];
        assert_eq!(
            choose_format(&modes, 1200, 700, 25, FrameFormat::MJPEG),
            Some(modes[1])
        );
        assert_eq!(
            choose_format(&modes, 1920, 1080, 30, FrameFormat::YUYV),
            Some(modes[0])
        );
        assert_eq!(choose_format(&[], 1, 1, 1, FrameFormat::MJPEG), None);
    }
}
