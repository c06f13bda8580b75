//! Annotated frames to a folder, every Nth processed frame, for checking a flight afterwards.
//! Drawing comes from [`super::annotate`].

use super::{annotate::draw_detections, FrameReport, PublishError};
use image::RgbImage;
use std::path::PathBuf;

/// Saves `<dir>/<seq:07>.jpg` with the boxes drawn, for every `every`-th frame.
pub struct FramesSink {
    dir: PathBuf,
    every: u64,
    names: Vec<String>,
    count: u64,
}

impl FramesSink {
    /// # Errors
    /// The folder cannot be created.
    pub fn create(
        dir: PathBuf,
        every: u64,
        names: Vec<String>,
    ) -> Result<FramesSink, PublishError> {
        std::fs::create_dir_all(&dir).map_err(|source| PublishError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(FramesSink {
            dir,
            every: every.max(1),
            names,
            count: 0,
        })
    }

    /// Draws and saves the frame when its turn comes.
    ///
    /// # Errors
    /// The image cannot be written.
    pub fn publish_frame(
        &mut self,
        report: &FrameReport,
        image: &RgbImage,
    ) -> Result<(), PublishError> {
        let due = self.count.is_multiple_of(self.every);
        self.count += 1;
        if !due {
            return Ok(());
        }
        let mut img = image.clone();
        draw_detections(&mut img, &report.detections, &self.names);
        let path = self.dir.join(format!("{:07}.jpg", report.seq));
        img.save(&path).map_err(|e| PublishError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })
    }
}
