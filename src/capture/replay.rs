//! Replay of images from disk: VisDrone-VID (`sequences/<seq>/0000001.jpg …`), VisDrone-DET
//! (`images/*.jpg`) or any folder of images, sorted by name; paced at a frame rate or flat out.

use super::{monotonic_ns, pace, CaptureError, Frame, FrameSource};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Frames per second (real time); `None` = as fast as the pipeline takes them.
    pub fps: Option<f64>,
    /// Start again at the first image after the last one.
    pub looped: bool,
}

/// Images from a folder, decoded on the capture thread.
pub struct ReplaySource {
    files: Vec<PathBuf>,
    next: usize,
    seq: u64,
    opts: ReplayOptions,
    source_id: String,
    start: Instant,
}

fn is_image(p: &Path) -> bool {
    let ext = p
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

fn images_in(dir: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let rd = std::fs::read_dir(dir).map_err(|source| CaptureError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort();
    Ok(files)
}

/// The images of a replay folder in playback order: every VID sequence in turn, or the DET
/// `images/` folder, or the folder itself.
///
/// # Errors
/// Unreadable folder, or no images.
pub fn list_replay_files(dir: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let seqs = dir.join("sequences");
    let files = if seqs.is_dir() {
        let rd = std::fs::read_dir(&seqs).map_err(|source| CaptureError::Io {
            path: seqs.clone(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let mut all = Vec::new();
        for d in dirs {
            all.extend(images_in(&d)?);
        }
        all
    } else if dir.join("images").is_dir() {
        images_in(&dir.join("images"))?
    } else {
        images_in(dir)?
    };
    if files.is_empty() {
        return Err(CaptureError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(files)
}

impl ReplaySource {
    /// # Errors
    /// Unreadable folder, or no images.
    pub fn open(dir: &Path, opts: ReplayOptions) -> Result<ReplaySource, CaptureError> {
        let files = list_replay_files(dir)?;
        tracing::info!(
            "replay {}: {} images, fps {:?}, loop {}",
            dir.display(),
            files.len(),
            opts.fps,
            opts.looped
        );
        Ok(ReplaySource {
            files,
            next: 0,
            seq: 0,
            opts,
            source_id: format!("replay:{}", dir.display()),
            start: Instant::now(),
        })
    }
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.next >= self.files.len() {
            if !self.opts.looped {
                return Ok(None);
            }
            self.next = 0;
        }
        let path = self.files[self.next].clone();
        self.next += 1;
        pace(self.start, self.seq, self.opts.fps);
        let seq = self.seq;
        self.seq += 1;
        let t_capture_ns = monotonic_ns();
        let _span = tracing::debug_span!("decode", seq).entered();
        let bytes = std::fs::read(&path).map_err(|source| CaptureError::Io {
            path: path.clone(),
            source,
        })?;
        let image = image::load_from_memory(&bytes)
            .map_err(|e| CaptureError::Decode {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .to_rgb8();
        Ok(Some(Frame {
            seq,
            t_capture_ns,
            source_id: self.source_id.clone(),
            path: Some(path),
            image,
        }))
    }

    fn nominal_fps(&self) -> Option<f64> {
        self.opts.fps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vid_sequences_are_played_in_order() {
        let d = tempfile::tempdir().unwrap();
        for (s, f) in [
            ("b", "0000002.jpg"),
            ("a", "0000002.jpg"),
            ("a", "0000001.jpg"),
        ] {
            let p = d.path().join("sequences").join(s);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join(f), b"x").unwrap();
        }
        let files = list_replay_files(d.path()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "sequences/a/0000001.jpg",
                "sequences/a/0000002.jpg",
                "sequences/b/0000002.jpg"
            ]
        );
    }

    #[test]
    fn empty_folder_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let e = list_replay_files(d.path()).unwrap_err().to_string();
        assert!(e.contains(&d.path().display().to_string()), "{e}");
    }

    #[test]
    fn corrupt_image_is_a_per_frame_error_and_the_source_goes_on() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("1.jpg"), b"\xff\xd8garbage").unwrap();
        image::RgbImage::new(8, 8)
            .save(d.path().join("2.png"))
            .unwrap();
        let mut s = ReplaySource::open(d.path(), ReplayOptions::default()).unwrap();
        assert!(matches!(s.next_frame(), Err(CaptureError::Decode { .. })));
        let f = s.next_frame().unwrap().unwrap();
        assert_eq!((f.seq, f.image.width()), (1, 8));
        assert!(s.next_frame().unwrap().is_none());
    }
}
