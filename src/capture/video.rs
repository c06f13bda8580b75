//! Video files (MP4/MOV, H.264/H.265, anything ffmpeg reads) through an `ffmpeg` subprocess
//! writing raw RGB24 to a pipe: no build-time dependency, every codec.

use super::{monotonic_ns, pace, CaptureError, Frame, FrameSource};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Instant;

/// Decoded frames of a video file.
pub struct VideoSource {
    path: PathBuf,
    child: Child,
    out: ChildStdout,
    width: u32,
    height: u32,
    fps: Option<f64>,
    seq: u64,
    start: Instant,
}

fn spawn_err(path: &Path, tool: &'static str, e: std::io::Error) -> CaptureError {
    if e.kind() == std::io::ErrorKind::NotFound {
        CaptureError::FfmpegMissing {
            path: path.to_path_buf(),
            tool,
        }
    } else {
        CaptureError::Video {
            path: path.to_path_buf(),
            reason: format!("cannot start {tool}: {e}"),
        }
    }
}

/// Width and height of the first video stream, from ffprobe.
fn probe_size(path: &Path) -> Result<(u32, u32), CaptureError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0:s=x",
        ])
        .arg(path)
        .output()
        .map_err(|e| spawn_err(path, "ffprobe", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = || CaptureError::Video {
        path: path.to_path_buf(),
        reason: format!(
            "ffprobe found no video stream: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    };
    let (w, h) = text.trim().split_once('x').ok_or_else(bad)?;
    match (w.trim().parse(), h.trim().parse()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(bad()),
    }
}

impl VideoSource {
    /// # Errors
    /// ffmpeg/ffprobe missing, or a file with no decodable video stream.
    pub fn open(path: &Path, fps: Option<f64>) -> Result<VideoSource, CaptureError> {
        if !path.is_file() {
            return Err(CaptureError::Io {
                path: path.to_path_buf(),
                source: std::io::ErrorKind::NotFound.into(),
            });
        }
        let (width, height) = probe_size(path)?;
        let mut child = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-noautorotate", "-i"])
            .arg(path)
            .args([
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "pipe:1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| spawn_err(path, "ffmpeg", e))?;
        let out = child.stdout.take().ok_or_else(|| CaptureError::Video {
            path: path.to_path_buf(),
            reason: "no stdout pipe".into(),
        })?;
        tracing::info!("video {}: {width}x{height}, fps {fps:?}", path.display());
        Ok(VideoSource {
            path: path.to_path_buf(),
            child,
            out,
            width,
            height,
            fps,
            seq: 0,
            start: Instant::now(),
        })
    }
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        let mut buf = vec![0u8; self.width as usize * self.height as usize * 3];
        let mut got = 0;
        while got < buf.len() {
            match self.out.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    })
                }
            }
        }
        if got == 0 {
            return Ok(None);
        }
        if got < buf.len() {
            tracing::warn!(
                "video {}: last frame truncated ({got} of {} bytes), ending",
                self.path.display(),
                buf.len()
            );
            return Ok(None);
        }
        pace(self.start, self.seq, self.fps);
        let seq = self.seq;
        self.seq += 1;
        let image = image::RgbImage::from_raw(self.width, self.height, buf).ok_or_else(|| {
            CaptureError::Video {
                path: self.path.clone(),
                reason: "frame size mismatch".into(),
            }
        })?;
        Ok(Some(Frame {
            seq,
            t_capture_ns: monotonic_ns(),
            source_id: format!("video:{}", self.path.display()),
            path: None,
            image,
        }))
    }

    fn nominal_fps(&self) -> Option<f64> {
        self.fps
    }
}

impl Drop for VideoSource {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
