//! Darknet `.weights` for pruning: 16/20-byte header, then per conv β,γ,mean,var (or bias) and
//! the OIHW kernel as little-endian f32. Read and written whole (SPP3 is 256 MB).

use std::path::Path;

use super::net::{BatchNorm, ConvParams, Layer, Net};
use super::PruneError;

/// The header fields kept so a written file carries the same version and `seen`.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    pub major: i32,
    pub minor: i32,
    pub revision: i32,
    pub seen: u64,
}

/// Reads the conv parameters of `layers` (widths known) from `path`; exact size required.
pub fn read(
    path: &Path,
    layers: &[Layer],
    widths: &[usize],
    in_ch: usize,
) -> Result<(Header, Vec<Option<ConvParams>>), PruneError> {
    let bytes = std::fs::read(path).map_err(|e| PruneError::io(path, e))?;
    let err = |msg: String| PruneError::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let int = |o: usize| -> Result<i32, PruneError> {
        let b: [u8; 4] = bytes
            .get(o..o + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| err("shorter than the header".into()))?;
        Ok(i32::from_le_bytes(b))
    };
    let (major, minor, revision) = (int(0)?, int(4)?, int(8)?);
    if major > 1000 || minor > 1000 {
        return Err(err(format!(
            "transposed weights (version {major}.{minor}) are not supported"
        )));
    }
    let (seen, mut off) = if major * 10 + minor >= 2 {
        let lo = int(12)? as u32 as u64;
        let hi = int(16)? as u32 as u64;
        (lo | (hi << 32), 20)
    } else {
        (int(12)? as u32 as u64, 16)
    };
    let mut take = |n: usize, layer: usize| -> Result<Vec<f32>, PruneError> {
        let end = off + 4 * n;
        let s = bytes.get(off..end).ok_or_else(|| {
            err(format!(
                "ends inside conv layer {layer}: the weights do not match the cfg"
            ))
        })?;
        off = end;
        Ok(s.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut params = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let Layer::Conv(c) = l else {
            params.push(None);
            continue;
        };
        let inp = if i == 0 { in_ch } else { widths[i - 1] };
        let n = c.filters;
        let bias = take(n, i)?;
        let bn = if c.batch_norm {
            Some(BatchNorm {
                gamma: take(n, i)?,
                mean: take(n, i)?,
                var: take(n, i)?,
            })
        } else {
            None
        };
        let kernel = take(n * inp * c.size * c.size, i)?;
        params.push(Some(ConvParams {
            out: n,
            inp,
            k: c.size,
            bias,
            bn,
            kernel,
        }));
    }
    if off != bytes.len() {
        return Err(err(format!(
            "{} bytes left after the last conv: the weights do not match the cfg",
            bytes.len() - off
        )));
    }
    let header = Header {
        major,
        minor,
        revision,
        seen,
    };
    Ok((header, params))
}

/// Writes `net`'s parameters with a 20-byte Darknet 0.2 header.
pub fn write(path: &Path, net: &Net, header: Header) -> Result<(), PruneError> {
    let mut buf: Vec<u8> = Vec::new();
    let (major, minor) = if header.major * 10 + header.minor >= 2 {
        (header.major, header.minor)
    } else {
        (0, 2)
    };
    for v in [major, minor, header.revision] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf.extend_from_slice(&header.seen.to_le_bytes());
    let mut put = |v: &[f32]| {
        v.iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()))
    };
    for p in net.params.iter().flatten() {
        put(&p.bias);
        if let Some(bn) = &p.bn {
            put(&bn.gamma);
            put(&bn.mean);
            put(&bn.var);
        }
        put(&p.kernel);
    }
    std::fs::write(path, buf).map_err(|e| PruneError::io(path, e))
}

/// Loads cfg + weights into a [`Net`].
pub fn load_net(cfg_path: &Path, weights_path: &Path) -> Result<(Net, Header), PruneError> {
    let text = std::fs::read_to_string(cfg_path).map_err(|e| PruneError::io(cfg_path, e))?;
    let cfg = super::cfg_text::CfgText::parse(&text, &cfg_path.display().to_string())?;
    let input = cfg.input()?;
    let layers = cfg.layers()?;
    let widths = Net::compute_widths(&layers, input.2)?;
    let (header, params) = read(weights_path, &layers, &widths, input.2)?;
    Ok((
        Net {
            cfg,
            layers,
            widths,
            params,
            input,
        },
        header,
    ))
}
