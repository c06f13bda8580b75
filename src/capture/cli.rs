//! `kestrel cameras`: the V4L2 devices and the modes each offers.

use super::CaptureError;

/// Arguments of `kestrel cameras`.
#[derive(clap::Args, Debug, Default)]
pub struct CamerasArgs {}

/// # Errors
/// A build without the `camera` feature, or enumeration failure.
pub fn cameras(_args: CamerasArgs) -> Result<(), CaptureError> {
    #[cfg(feature = "camera")]
    {
        let cams = super::camera::list_cameras()?;
        if cams.is_empty() {
            println!("no cameras found (no /dev/video* devices)");
        }
        for (label, modes) in cams {
            println!("{label}");
            match modes {
                Ok(ms) => ms.iter().for_each(|m| println!("    {m}")),
                Err(e) => println!("    cannot open: {e}"),
            }
        }
        Ok(())
    }
    #[cfg(not(feature = "camera"))]
    Err(CaptureError::CameraNotBuilt)
}
