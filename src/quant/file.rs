//! The Kestrel model file: one GGUF file holding the cfg text, format/version info, and every
//! conv's BN-folded kernel (f32, f16, q8_0 or q4_0) and bias, so `--weights MODEL` needs no `--cfg`.

use super::qconv::{pad_rows, padded_k};
use super::{Precision, QuantError};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// Value of the `kestrel.format` key: tells a Kestrel model from other GGUF files.
pub const FORMAT: &str = "kestrel-darknet";
/// Layout version written by this build; older/newer versions are refused.
pub const VERSION: u32 = 1;
/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// One conv layer as stored: BN already folded into kernel and bias.
#[derive(Debug)]
pub struct StoredConv {
    /// Index of the layer in the cfg.
    pub layer: usize,
    /// OIHW shape of the unpadded kernel.
    pub kernel_shape: [usize; 4],
    /// `[cout, Kpad]` (K padded to the block for q8_0/q4_0).
    pub kernel: QTensor,
    pub bias: Vec<f32>,
}

impl StoredConv {
    /// Quantizes a folded OIHW kernel for storage.
    pub fn quantize(
        layer: usize,
        kernel_shape: [usize; 4],
        kernel: &[f32],
        bias: Vec<f32>,
        precision: Precision,
    ) -> Result<StoredConv, QuantError> {
        let [o, i, kh, kw] = kernel_shape;
        let k = i * kh * kw;
        let k_padded = padded_k(k, precision.block());
        let rows = pad_rows(kernel, o, k, k_padded);
        let t = Tensor::from_vec(rows, (o, k_padded), &Device::Cpu)?;
        let kernel = QTensor::quantize(&t, precision.ggml())?;
        Ok(StoredConv {
            layer,
            kernel_shape,
            kernel,
            bias,
        })
    }

    /// The kernel back in f32, OIHW order without padding.
    pub fn kernel_f32(&self) -> Result<Vec<f32>, QuantError> {
        let [o, i, kh, kw] = self.kernel_shape;
        let k = i * kh * kw;
        let full: Vec<Vec<f32>> = self.kernel.dequantize(&Device::Cpu)?.to_vec2()?;
        let mut out = Vec::with_capacity(o * k);
        for row in full {
            out.extend_from_slice(&row[..k]);
        }
        Ok(out)
    }
}

/// Everything a model file holds.
#[derive(Debug)]
pub struct ModelFile {
    /// The Darknet cfg, verbatim.
    pub cfg_text: String,
    /// Name of the cfg the model came from (for messages).
    pub cfg_name: String,
    pub precision: Precision,
    pub convs: Vec<StoredConv>,
    /// Weighted-shortcut fusion weights (layer, values), f32.
    pub shortcuts: Vec<(usize, Vec<f32>)>,
    /// Per conv layer: "q" or "f32", the faster path measured at quantize time (may be empty).
    pub plan: Vec<(usize, String)>,
}

/// True when the file starts with the GGUF magic (a model file rather than Darknet `.weights`).
pub fn is_model_file(path: &Path) -> Result<bool, QuantError> {
    let mut f = std::fs::File::open(path).map_err(|source| io(path, source))?;
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) => Ok(&magic == GGUF_MAGIC),
        Err(_) => Ok(false),
    }
}

fn io(path: &Path, source: std::io::Error) -> QuantError {
    QuantError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn bad(path: &Path, what: impl Into<String>) -> QuantError {
    QuantError::BadModelFile {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn f32_tensor(values: &[f32]) -> Result<QTensor, QuantError> {
    let t = Tensor::from_slice(values, values.len(), &Device::Cpu)?;
    Ok(QTensor::quantize(&t, GgmlDType::F32)?)
}

impl ModelFile {
    /// Writes the file (via a temporary sibling, renamed into place).
    pub fn write(&self, path: &Path) -> Result<(), QuantError> {
        let mut meta: Vec<(String, Value)> = vec![
            (
                "general.architecture".into(),
                Value::String("darknet".into()),
            ),
            ("general.name".into(), Value::String(self.cfg_name.clone())),
            ("kestrel.format".into(), Value::String(FORMAT.into())),
            ("kestrel.version".into(), Value::U32(VERSION)),
            (
                "kestrel.writer".into(),
                Value::String(format!("kestrel {}", env!("CARGO_PKG_VERSION"))),
            ),
            (
                "kestrel.precision".into(),
                Value::String(self.precision.name().into()),
            ),
            ("kestrel.cfg".into(), Value::String(self.cfg_text.clone())),
        ];
        let mut tensors: Vec<(String, QTensor)> = Vec::new();
        for c in &self.convs {
            let shape = c.kernel_shape.iter().map(|&d| Value::U64(d as u64));
            meta.push((
                format!("kestrel.conv.{}.shape", c.layer),
                Value::Array(shape.collect()),
            ));
            tensors.push((format!("conv.{}.bias", c.layer), f32_tensor(&c.bias)?));
        }
        for (layer, w) in &self.shortcuts {
            tensors.push((format!("shortcut.{layer}.weight"), f32_tensor(w)?));
        }
        for (layer, choice) in &self.plan {
            meta.push((
                format!("kestrel.plan.{layer}"),
                Value::String(choice.clone()),
            ));
        }
        let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut t_refs: Vec<(String, &QTensor)> =
            tensors.iter().map(|(k, v)| (k.clone(), v)).collect();
        let names: Vec<String> = self
            .convs
            .iter()
            .map(|c| format!("conv.{}.weight", c.layer))
            .collect();
        for (name, c) in names.iter().zip(&self.convs) {
            t_refs.push((name.clone(), &c.kernel));
        }
        let t_refs: Vec<(&str, &QTensor)> = t_refs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let tmp = path.with_extension("tmp-kestrel");
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = std::io::BufWriter::new(file);
        gguf_file::write(&mut w, &meta_refs, &t_refs).map_err(|e| bad(path, e.to_string()))?;
        drop(w);
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    }

    /// Reads and checks a model file; every failure names the file and what is wrong.
    pub fn read(path: &Path) -> Result<ModelFile, QuantError> {
        let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
        let len = f.metadata().map_err(|e| io(path, e))?.len();
        let mut magic = [0u8; 4];
        if f.read_exact(&mut magic).is_err() || &magic != GGUF_MAGIC {
            return Err(bad(path, "missing GGUF magic (not a Kestrel model file)"));
        }
        f.rewind().map_err(|e| io(path, e))?;
        let content = gguf_file::Content::read(&mut f).map_err(|e| {
            bad(
                path,
                format!("header unreadable (truncated or corrupt?): {e}"),
            )
        })?;
        let meta = Meta {
            path,
            map: &content.metadata,
        };
        if meta.string("kestrel.format")? != FORMAT {
            return Err(bad(path, "GGUF file, but not a Kestrel model"));
        }
        let version = meta.u64("kestrel.version")?;
        if version != u64::from(VERSION) {
            return Err(bad(
                path,
                format!("format version {version}, this build reads {VERSION}"),
            ));
        }
        check_size(path, &content, len)?;
        let precision = Precision::from_name(&meta.string("kestrel.precision")?)
            .map_err(|e| bad(path, e.to_string()))?;
        let mut tensor = |name: &str| {
            content
                .tensor(&mut f, name, &Device::Cpu)
                .map_err(|e| bad(path, format!("tensor {name}: {e}")))
        };
        let mut convs = Vec::new();
        let mut shortcuts = Vec::new();
        for layer in layer_ids(&content, "conv.", ".weight") {
            let kernel_shape = meta.shape(layer)?;
            let kernel = tensor(&format!("conv.{layer}.weight"))?;
            let bias = tensor(&format!("conv.{layer}.bias"))?
                .dequantize(&Device::Cpu)?
                .to_vec1()?;
            convs.push(StoredConv {
                layer,
                kernel_shape,
                kernel,
                bias,
            });
        }
        for layer in layer_ids(&content, "shortcut.", ".weight") {
            let w = tensor(&format!("shortcut.{layer}.weight"))?;
            shortcuts.push((layer, w.dequantize(&Device::Cpu)?.to_vec1()?));
        }
        let plan = content
            .metadata
            .iter()
            .filter_map(|(k, v)| {
                let layer = k.strip_prefix("kestrel.plan.")?.parse().ok()?;
                Some((layer, v.to_string().ok()?.clone()))
            })
            .collect::<Vec<_>>();
        let mut plan = plan;
        plan.sort();
        Ok(ModelFile {
            cfg_text: meta.string("kestrel.cfg")?,
            cfg_name: meta.string("general.name").unwrap_or_default(),
            precision,
            convs,
            shortcuts,
            plan,
        })
    }
}

/// Refuses a file shorter than its own tensor table says (a truncated download or copy).
fn check_size(path: &Path, content: &gguf_file::Content, len: u64) -> Result<(), QuantError> {
    let mut need = content.tensor_data_offset;
    for info in content.tensor_infos.values() {
        let bytes =
            info.shape.elem_count() / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        need = need.max(content.tensor_data_offset + info.offset + bytes as u64);
    }
    if len < need {
        return Err(bad(
            path,
            format!("truncated: {len} bytes, the tensor table needs {need}"),
        ));
    }
    Ok(())
}

/// Sorted layer indices of tensors named `{prefix}{layer}{suffix}`.
fn layer_ids(content: &gguf_file::Content, prefix: &str, suffix: &str) -> Vec<usize> {
    let mut ids: Vec<usize> = content
        .tensor_infos
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

struct Meta<'a> {
    path: &'a Path,
    map: &'a HashMap<String, Value>,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value, QuantError> {
        self.map
            .get(key)
            .ok_or_else(|| bad(self.path, format!("metadata key {key} missing")))
    }

    fn string(&self, key: &str) -> Result<String, QuantError> {
        let v = self.get(key)?.to_string();
        v.cloned()
            .map_err(|_| bad(self.path, format!("metadata key {key} is not a string")))
    }

    fn u64(&self, key: &str) -> Result<u64, QuantError> {
        match self.get(key)? {
            Value::U32(v) => Ok(u64::from(*v)),
            Value::U64(v) => Ok(*v),
            _ => Err(bad(
                self.path,
                format!("metadata key {key} is not an integer"),
            )),
        }
    }

    fn shape(&self, layer: usize) -> Result<[usize; 4], QuantError> {
        let key = format!("kestrel.conv.{layer}.shape");
        let dims = self
            .get(&key)?
            .to_vec()
            .map_err(|_| bad(self.path, format!("{key} is not an array")))?;
        let dims: Vec<usize> = dims
            .iter()
            .filter_map(|v| v.to_u64().ok().map(|d| d as usize))
            .collect();
        <[usize; 4]>::try_from(dims).map_err(|_| bad(self.path, format!("{key} is not 4 integers")))
    }
}

/// A path with `.gguf` when the user gave none (for messages and defaults).
pub fn default_out(weights: &Path, precision: Precision) -> PathBuf {
    weights.with_extension(format!("{}.gguf", precision.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(p: Precision) -> ModelFile {
        let kernel: Vec<f32> = (0..4 * 19 * 9)
            .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let conv =
            StoredConv::quantize(0, [4, 19, 3, 3], &kernel, vec![0.5, -1.0, 2.0, 0.0], p).unwrap();
        ModelFile {
            cfg_text: "[net]\nwidth=32\n".into(),
            cfg_name: "t".into(),
            precision: p,
            convs: vec![conv],
            shortcuts: vec![(3, vec![1.0, 0.5])],
            plan: vec![(0, "q".into())],
        }
    }

    #[test]
    fn write_read_identical_and_truncation_detected() {
        let dir = tempfile::tempdir().unwrap();
        for p in [
            Precision::Q8,
            Precision::Q4,
            Precision::F16,
            Precision::Bf16,
            Precision::F32,
        ] {
            let path = dir.path().join(format!("m.{}.gguf", p.name()));
            let m = sample(p);
            m.write(&path).unwrap();
            assert!(is_model_file(&path).unwrap());
            let r = ModelFile::read(&path).unwrap();
            assert_eq!(r.cfg_text, m.cfg_text);
            assert_eq!(r.precision, p);
            assert_eq!(
                r.convs[0].kernel.data().unwrap(),
                m.convs[0].kernel.data().unwrap()
            );
            assert_eq!(r.convs[0].bias, m.convs[0].bias);
            assert_eq!(r.shortcuts, m.shortcuts);
            assert_eq!(r.plan, m.plan);
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
            let e = ModelFile::read(&path).unwrap_err().to_string();
            assert!(e.contains("m.") && e.contains("truncated"), "{e}");
        }
    }
}
