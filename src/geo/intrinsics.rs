//! Pinhole camera intrinsics with OpenCV's 5-coefficient distortion model, read from an OpenCV
//! FileStorage JSON file (`cv2.FileStorage(path, cv2.FILE_STORAGE_READ)` reads the same file).

use super::GeoError;
use serde::Deserialize;
use std::path::Path;

/// fx, fy, cx, cy in pixels of an `width`×`height` image; k1 k2 p1 p2 k3 as OpenCV orders them.
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsics {
    pub width: u32,
    pub height: u32,
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
    pub dist: [f64; 5],
}

#[derive(Deserialize)]
struct CvMat {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

#[derive(Deserialize)]
struct CvCalib {
    image_width: u32,
    image_height: u32,
    camera_matrix: CvMat,
    distortion_coefficients: CvMat,
}

impl Intrinsics {
    /// An ideal pinhole (no distortion).
    pub fn pinhole(width: u32, height: u32, fx: f64, fy: f64, cx: f64, cy: f64) -> Self {
        Self {
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            dist: [0.0; 5],
        }
    }

    pub fn load(path: &Path) -> Result<Self, GeoError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GeoError::Io {
            path: p.clone(),
            source,
        })?;
        let raw: CvCalib = serde_json::from_str(&text).map_err(|source| GeoError::Json {
            path: p.clone(),
            source,
        })?;
        let field = |field, reason: String| GeoError::Field {
            path: p.clone(),
            field,
            reason,
        };
        let k = &raw.camera_matrix;
        if k.rows != 3 || k.cols != 3 || k.data.len() != 9 {
            return Err(field("camera_matrix", "must be 3x3 with 9 values".into()));
        }
        let d = &raw.distortion_coefficients.data;
        if d.len() < 4 || d.len() > 5 {
            return Err(field(
                "distortion_coefficients",
                format!("needs 4 or 5 values (k1 k2 p1 p2 [k3]), got {}", d.len()),
            ));
        }
        if !(k.data[0] > 0.0 && k.data[4] > 0.0) {
            return Err(field("camera_matrix", "fx and fy must be positive".into()));
        }
        if raw.image_width == 0 || raw.image_height == 0 {
            return Err(field("image_width", "image size must be positive".into()));
        }
        let mut dist = [0.0; 5];
        dist[..d.len()].copy_from_slice(d);
        Ok(Self {
            width: raw.image_width,
            height: raw.image_height,
            fx: k.data[0],
            fy: k.data[4],
            cx: k.data[2],
            cy: k.data[5],
            dist,
        })
    }

    /// The same camera at another resolution (same field of view), e.g. calibrated at 640×480
    /// and run at 1280×960.
    pub fn scaled_to(&self, width: u32, height: u32) -> Self {
        let sx = f64::from(width) / f64::from(self.width);
        let sy = f64::from(height) / f64::from(self.height);
        Self {
            width,
            height,
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
            dist: self.dist,
        }
    }

    /// Pixel → undistorted normalised image coordinates (x right, y down), inverting OpenCV's
    /// distortion by fixed-point iteration as `cv::undistortPoints` does.
    pub fn undistort(&self, u: f64, v: f64) -> (f64, f64) {
        let [k1, k2, p1, p2, k3] = self.dist;
        let xd = (u - self.cx) / self.fx;
        let yd = (v - self.cy) / self.fy;
        let (mut x, mut y) = (xd, yd);
        for _ in 0..20 {
            let r2 = x * x + y * y;
            let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
            let dx = 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
            let dy = p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y;
            x = (xd - dx) / radial;
            y = (yd - dy) / radial;
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undistort_inverts_the_distortion_model() {
        let cam = Intrinsics {
            dist: [-0.2, 0.05, 0.001, -0.002, 0.0],
            ..Intrinsics::pinhole(640, 480, 600.0, 600.0, 320.0, 240.0)
        };
        let (x, y) = (0.3_f64, -0.2_f64);
        let r2 = x * x + y * y;
        let [k1, k2, p1, p2, k3] = cam.dist;
        let radial = 1.0 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2;
        let xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
        let yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y;
        let (ux, uy) = cam.undistort(xd * 600.0 + 320.0, yd * 600.0 + 240.0);
        assert!((ux - x).abs() < 1e-6 && (uy - y).abs() < 1e-6, "{ux} {uy}");
    }

    #[test]
    fn bad_matrix_names_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"image_width":640,"image_height":480,
            "camera_matrix":{"rows":2,"cols":2,"data":[1,0,0,1]},
            "distortion_coefficients":{"rows":5,"cols":1,"data":[0,0,0,0,0]}}"#,
        )
        .unwrap();
        let e = Intrinsics::load(&p).unwrap_err().to_string();
        assert!(e.contains("c.json") && e.contains("camera_matrix"), "{e}");
    }
}
