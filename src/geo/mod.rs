//! Pixel → ray → ground: where a detection is on the Earth, from the camera intrinsics, the
//! camera mount and the vehicle's attitude and position at the frame's capture time.
//!
//! Conventions (those of ArduPilot's LANDING_TARGET): camera x right, y down, z along the
//! optical axis; a down-looking camera with the image top towards the nose maps to body FRD as
//! `(−y, x, z)`; the mount rotation (roll, pitch, yaw in degrees, body frame) is applied after.
//! Flat earth, spherical radius 6378137 m: fine for the few hundred metres a camera sees.

mod error;
mod intrinsics;

pub use error::GeoError;
pub use intrinsics::Intrinsics;

const EARTH_RADIUS_M: f64 = 6_378_137.0;

/// Vehicle attitude in radians, NED (ATTITUDE message convention).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Attitude {
    pub roll: f64,
    pub pitch: f64,
    pub yaw: f64,
}

/// Vehicle position: WGS84 degrees, altitude AMSL and height above the ground in metres.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Position {
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub alt_amsl_m: f64,
    pub height_agl_m: f64,
}

/// Where a pixel's ray meets the ground.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundFix {
    pub north_m: f64,
    pub east_m: f64,
    pub lat_deg: f64,
    pub lon_deg: f64,
    pub alt_amsl_m: f64,
    pub slant_m: f64,
    pub bearing_deg: f64,
}

/// Angles of a box for LANDING_TARGET (radians, camera frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetAngles {
    pub angle_x: f64,
    pub angle_y: f64,
    pub size_x: f64,
    pub size_y: f64,
}

type V3 = [f64; 3];
type M3 = [[f64; 3]; 3];

fn mul(m: &M3, v: V3) -> V3 {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

/// `Rz(yaw)·Ry(pitch)·Rx(roll)`: body → NED (aerospace 3-2-1 Euler angles).
pub fn euler_to_matrix(roll: f64, pitch: f64, yaw: f64) -> [[f64; 3]; 3] {
    let (sr, cr) = roll.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let (sy, cy) = yaw.sin_cos();
    [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]
}

/// The ray of pixel (u, v) in body FRD, through the mount rotation (degrees).
pub fn pixel_ray_body(cam: &Intrinsics, mount_rpy_deg: [f64; 3], u: f64, v: f64) -> V3 {
    let (x, y) = cam.undistort(u, v);
    let canonical = [-y, x, 1.0];
    let [r, p, yw] = mount_rpy_deg.map(f64::to_radians);
    mul(&euler_to_matrix(r, p, yw), canonical)
}

/// Intersects pixel (u, v)'s ray with flat ground `pos.height_agl_m` below the camera.
/// `None` when the ray points at or above the horizon or the height is not positive.
pub fn project_to_ground(
    cam: &Intrinsics,
    mount_rpy_deg: [f64; 3],
    att: &Attitude,
    pos: &Position,
    u: f64,
    v: f64,
) -> Option<GroundFix> {
    let body = pixel_ray_body(cam, mount_rpy_deg, u, v);
    let ned = mul(&euler_to_matrix(att.roll, att.pitch, att.yaw), body);
    if ned[2] <= 1e-9 || pos.height_agl_m <= 0.0 {
        return None;
    }
    let t = pos.height_agl_m / ned[2];
    let (north, east) = (t * ned[0], t * ned[1]);
    let slant = t * (ned[0] * ned[0] + ned[1] * ned[1] + ned[2] * ned[2]).sqrt();
    let lat0 = pos.lat_deg.to_radians();
    Some(GroundFix {
        north_m: north,
        east_m: east,
        lat_deg: pos.lat_deg + (north / EARTH_RADIUS_M).to_degrees(),
        lon_deg: pos.lon_deg + (east / (EARTH_RADIUS_M * lat0.cos())).to_degrees(),
        alt_amsl_m: pos.alt_amsl_m - pos.height_agl_m,
        slant_m: slant,
        bearing_deg: east.atan2(north).to_degrees().rem_euclid(360.0),
    })
}

/// LANDING_TARGET angles of a box (centre and size in pixels) from the undistorted ray.
pub fn target_angles(cam: &Intrinsics, cu: f64, cv: f64, w: f64, h: f64) -> TargetAngles {
    let (x, y) = cam.undistort(cu, cv);
    TargetAngles {
        angle_x: x.atan(),
        angle_y: y.atan(),
        size_x: 2.0 * (w / 2.0 / cam.fx).atan(),
        size_y: 2.0 * (h / 2.0 / cam.fy).atan(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(yaw_deg: f64) -> Attitude {
        Attitude {
            yaw: yaw_deg.to_radians(),
            ..Default::default()
        }
    }

    #[test]
    fn centre_pixel_projects_below_the_vehicle() {
        let cam = Intrinsics::pinhole(1280, 720, 640.0, 640.0, 640.0, 360.0);
        let pos = Position {
            lat_deg: 47.0,
            lon_deg: 8.0,
            alt_amsl_m: 500.0,
            height_agl_m: 50.0,
        };
        let fix = project_to_ground(&cam, [0.0; 3], &level(37.0), &pos, 640.0, 360.0).unwrap();
        assert!(fix.north_m.abs() < 1e-9 && fix.east_m.abs() < 1e-9);
        assert!((fix.slant_m - 50.0).abs() < 1e-9 && (fix.alt_amsl_m - 450.0).abs() < 1e-9);
    }

    #[test]
    fn image_top_is_ahead_and_right_is_right_when_facing_north() {
        let cam = Intrinsics::pinhole(1280, 720, 640.0, 640.0, 640.0, 360.0);
        let pos = Position {
            height_agl_m: 10.0,
            ..Default::default()
        };
        let top = project_to_ground(&cam, [0.0; 3], &level(0.0), &pos, 640.0, 40.0).unwrap();
        assert!(top.north_m > 4.9 && top.east_m.abs() < 1e-9);
        let right = project_to_ground(&cam, [0.0; 3], &level(0.0), &pos, 960.0, 360.0).unwrap();
        assert!(right.east_m > 4.9 && right.north_m.abs() < 1e-9);
    }

    #[test]
    fn a_ray_above_the_horizon_has_no_fix() {
        let cam = Intrinsics::pinhole(640, 480, 500.0, 500.0, 320.0, 240.0);
        let att = Attitude {
            pitch: 100f64.to_radians(),
            ..Default::default()
        };
        let pos = Position {
            height_agl_m: 10.0,
            ..Default::default()
        };
        assert!(project_to_ground(&cam, [0.0; 3], &att, &pos, 320.0, 240.0).is_none());
    }
}
