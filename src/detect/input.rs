//! Reading what `detect` needs from disk: images and class-name lists.

use std::path::Path;

use image::RgbImage;

use super::DetectError;

/// Opens and decodes an image (format sniffed from the bytes, not the extension).
pub fn load_image(path: &Path) -> Result<RgbImage, DetectError> {
    let bad = |why: String| DetectError::Image {
        path: path.to_path_buf(),
        why,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    if reader.format().is_none() {
        return Err(bad("not a known image format (JPEG or PNG expected)".into()));
    }
    let img = reader.decode().map_err(|e| bad(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// Class names, one per line (Darknet `.names`); trailing blank lines ignored.
pub fn load_names(path: &Path) -> Result<Vec<String>, DetectError> {
    let text = std::fs::read_to_string(path).map_err(|source| DetectError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut names: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while names.last().is_some_and(|n| n.is_empty()) {
        names.pop();
    }
    if names.is_empty() {
        return Err(DetectError::Names {
            path: path.to_path_buf(),
            why: "no class names (expected one per line)".into(),
        });
    }
    Ok(names)
}

/// Checks the names list against the model's class count.
pub fn check_names(path: &Path, names: &[String], num_classes: usize) -> Result<(), DetectError> {
    if names.len() != num_classes {
        return Err(DetectError::Names {
            path: path.to_path_buf(),
            why: format!(
                "{} class names but the model has {} classes",
                names.len(),
                num_classes
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_skip_trailing_blank_lines_and_crlf() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.names");
        std::fs::write(&p, "person\r\nbicycle\r\n\r\n").unwrap();
        assert_eq!(load_names(&p).unwrap(), vec!["person", "bicycle"]);
        assert!(check_names(&p, &load_names(&p).unwrap(), 3).is_err());
    }

    #[test]
    fn non_image_and_truncated_jpeg_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("notes.jpg");
        std::fs::write(&txt, "hello, not an image").unwrap();
        let e = load_image(&txt).unwrap_err().to_string();
        assert!(e.contains("notes.jpg"), "{e}");

        let mut jpeg = Vec::new();
        let img = RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]));
        img.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &jpeg[..jpeg.len() / 3]).unwrap();
        let e = load_image(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.jpg"), "{e}");
    }
}
