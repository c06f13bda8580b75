//! `kestrel run --source video:FILE`: a real H.264 MP4 made by ffmpeg from the real photos,
//! decoded through the ffmpeg subprocess and detected by the real yolov3-tiny; clear errors for a
//! missing or corrupt file and for a machine without ffmpeg.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ffmpeg_tool(name: &str) -> Command {
    let ok = Command::new(name).arg("-version").output().is_ok();
    assert!(
        ok,
        "`{name}` not found: run scripts/setup.sh (apt install ffmpeg)"
    );
    Command::new(name)
}

/// An H.264 MP4 of bus.jpg then zidane.jpg, 3 frames each at 640x480 (padded, aspect kept).
fn photo_clip(dir: &Path) -> PathBuf {
    let out = dir.join("flight.mp4");
    let fit = "scale=640:480:force_original_aspect_ratio=decrease,pad=640:480:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=3";
    let st = ffmpeg_tool("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-t", "1", "-i"])
        .arg(asset("bus.jpg"))
        .args(["-loop", "1", "-t", "1", "-i"])
        .arg(asset("zidane.jpg"))
        .args(["-filter_complex"])
        .arg(format!("[0]{fit}[a];[1]{fit}[b];[a][b]concat=n=2:v=1[v]"))
        .args(["-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(st.success(), "ffmpeg could not encode the test clip");
    out
}

/// Frames in the file as ffprobe decodes them (the peer count).
fn probe_frames(file: &Path) -> u64 {
    let out = ffmpeg_tool("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ffprobe frame count")
}

fn model_args() -> Vec<String> {
    let a = |n| path_str(&asset(n)).to_string();
    let mut v: Vec<String> = vec!["--cfg".into(), a("yolov3-tiny.cfg"), "--weights".into()];
    v.extend([a("yolov3-tiny.weights"), "--names".into(), a("coco.names")]);
    v.extend(["--size", "320", "--mavlink", "none"].map(String::from));
    v
}

#[test]
fn h264_clip_of_real_photos_one_line_per_decoded_frame_with_detections() {
    let d = tempfile::tempdir().unwrap();
    let clip = photo_clip(d.path());
    let expected = probe_frames(&clip);
    assert!(expected >= 4, "clip has {expected} frames");
    let jl = d.path().join("out.jsonl");
    let out = kestrel()
        .args(["run", "--source", &format!("video:{}", path_str(&clip))])
        .args(["--jsonl", path_str(&jl)])
        .args(model_args())
        .output()
        .unwrap();
    assert_success(&out);
    let lines: Vec<Value> = std::fs::read_to_string(&jl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let frames: Vec<u64> = lines.iter().map(|l| l["frame"].as_u64().unwrap()).collect();
    assert_eq!(
        frames,
        (0..expected).collect::<Vec<_>>(),
        "every decoded frame, in order"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["width"] == 640 && l["height"] == 480),
        "{:?}",
        lines[0]
    );
    let labels = |l: &Value| -> Vec<String> {
        l["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        lines.iter().all(|l| !labels(l).is_empty()),
        "every frame has detections"
    );
    let (first, last) = (labels(&lines[0]), labels(lines.last().unwrap()));
    assert!(
        first.contains(&"person".to_string()),
        "bus.jpg frames show its people: {first:?}"
    );
    assert!(
        last.contains(&"person".to_string()),
        "zidane.jpg frames show people: {last:?}"
    );
    assert_ne!(first, last, "the clip changes photo half-way");
}

fn run_err(source: &str, path_env: Option<&str>) -> String {
    let mut cmd = kestrel();
    cmd.args(["run", "--source", source, "--jsonl", "-"])
        .args(model_args());
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{source} must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_and_corrupt_video_files_are_named() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("nope.mp4");
    let err = run_err(&format!("video:{}", path_str(&missing)), None);
    assert!(
        err.contains("nope.mp4") && !err.contains("panicked"),
        "{err}"
    );
    let corrupt = d.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"\x00\x00\x00\x18ftypmp42 this is not a video").unwrap();
    let err = run_err(&format!("video:{}", path_str(&corrupt)), None);
    assert!(
        err.contains("corrupt.mp4") && err.contains("video"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn without_ffmpeg_on_path_the_error_says_install_it() {
    let d = tempfile::tempdir().unwrap();
    let clip = photo_clip(d.path());
    let empty_bin = d.path().join("bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let err = run_err(
        &format!("video:{}", path_str(&clip)),
        Some(path_str(&empty_bin)),
    );
    assert!(
        err.contains("not found") && err.contains("install ffmpeg"),
        "{err}"
    );
    assert!(err.contains("flight.mp4"), "{err}");
}
