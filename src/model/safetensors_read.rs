//! Reading safetensors tensor by tensor with positioned reads instead of a memory map.
//!
//! candle's tensors own their storage, so a memory-mapped checkpoint is copied into memory anyway;
//! keeping the map while the copies are made leaves every touched page of it resident too, and the
//! peak memory of a load is then twice the weights. Reading each tensor straight from the file into
//! the buffer the tensor will own (converting dtype in small chunks) keeps the peak at the weights
//! plus a few MiB.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use half::{bf16, f16};

#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: DType,
    shape: Vec<usize>,
    /// Absolute offset of the data in the file.
    start: u64,
}

/// The tensors of one or more safetensors files, read on demand.
#[derive(Debug)]
pub struct SafetensorsReader {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
}

#[derive(serde::Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

impl SafetensorsReader {
    /// Opens each file and reads its header; the message of an error names the file.
    pub fn open(paths: &[PathBuf]) -> std::result::Result<Self, String> {
        let mut files = Vec::new();
        let mut entries = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let size = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
            for (name, e) in read_header(&f, size).map_err(|m| format!("{}: {m}", path.display()))? {
                entries.insert(name, Entry { file: i, ..e });
            }
            files.push((path.clone(), f));
        }
        Ok(Self { files, entries })
    }

    /// The entry of `name` and the part of it to read: the whole tensor, or the rows a
    /// [`row_range`](super::row_range) name asks for (`None` if there is no such tensor or rows).
    fn part(&self, name: &str) -> Option<Entry> {
        let Some((base, r0, n)) = super::row_range::parse(name) else {
            return self.entries.get(name).cloned();
        };
        let e = self.entries.get(base)?;
        match e.shape[..] {
            [rows, cols] if r0 + n <= rows => Some(Entry {
                shape: vec![n, cols],
                start: e.start + (r0 * cols * e.dtype.size_in_bytes()) as u64,
                ..e.clone()
            }),
            _ => None,
        }
    }

    /// Reads `name` as `dtype`, converting from the stored dtype chunk by chunk.
    fn read(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let e = &self.part(name).ok_or_else(|| candle_core::Error::Msg(format!("cannot find tensor {name}")))?;
        let (path, file) = &self.files[e.file];
        let n: usize = e.shape.iter().product();
        let io = |err: std::io::Error| candle_core::Error::Msg(format!("{}: reading {name}: {err}", path.display()));
        let t = match (e.dtype, dtype) {
            (DType::F32, DType::F32) => {
                Tensor::from_vec(read_exact(file, e.start, vec![0f32; n]).map_err(io)?, e.shape.clone(), dev)?
            }
            (DType::F16, DType::F16) => {
                Tensor::from_vec(read_exact(file, e.start, weight_vec(n)).map_err(io)?, e.shape.clone(), dev)?
            }
            (DType::BF16, DType::BF16) => {
                Tensor::from_vec(read_exact(file, e.start, vec![bf16::ZERO; n]).map_err(io)?, e.shape.clone(), dev)?
            }
            (src, DType::F32) => Tensor::from_vec(
                read_converted(file, e.start, n, src, |x: f32| x, Vec::with_capacity(n)).map_err(io)?,
                e.shape.clone(),
                dev,
            )?,
            (src, DType::F16) => Tensor::from_vec(
                read_converted(file, e.start, n, src, f16::from_f32, super::huge_arena::weight_capacity(n))
                    .map_err(io)?,
                e.shape.clone(),
                dev,
            )?,
            (src, DType::BF16) => Tensor::from_vec(
                read_converted(file, e.start, n, src, bf16::from_f32, Vec::with_capacity(n)).map_err(io)?,
                e.shape.clone(),
                dev,
            )?,
            (src, dst) => candle_core::bail!("{name}: cannot read {src:?} as {dst:?}"),
        };
        Ok(t)
    }
}

impl SimpleBackend for SafetensorsReader {
    fn get(&self, s: Shape, name: &str, _h: candle_nn::Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let e = self.part(name).ok_or_else(|| candle_core::Error::Msg(format!("cannot find tensor {name}")))?;
        if e.shape.as_slice() != s.dims() {
            candle_core::bail!("shape mismatch for {name}, got {:?}, expected {:?}", e.shape, s.dims());
        }
        self.read(name, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.read(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.part(name).is_some()
    }
}

fn read_header(f: &File, size: u64) -> std::result::Result<Vec<(String, Entry)>, String> {
    let mut len = [0u8; 8];
    f.read_exact_at(&mut len, 0).map_err(|_| "file too short for a safetensors header".to_string())?;
    let hlen = u64::from_le_bytes(len);
    if hlen > size.saturating_sub(8) || hlen > 100 << 20 {
        return Err(format!("header length {hlen} exceeds the file"));
    }
    let mut header = vec![0u8; hlen as usize];
    f.read_exact_at(&mut header, 8).map_err(|e| e.to_string())?;
    let map: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("invalid header: {e}"))?;
    let base = 8 + hlen;
    let mut out = Vec::new();
    for (name, v) in map {
        if name == "__metadata__" {
            continue;
        }
        let h: HeaderEntry = serde_json::from_value(v).map_err(|e| format!("invalid header entry {name}: {e}"))?;
        let dtype = match h.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            other => return Err(format!("tensor {name} has unsupported dtype {other}")),
        };
        let n: usize = h.shape.iter().product();
        let (a, b) = h.data_offsets;
        let len = n * dtype.size_in_bytes();
        if b < a || (b - a) as usize != len || base + b > size {
            return Err(format!("tensor {name} lies outside the file or has the wrong length"));
        }
        out.push((name, Entry { file: 0, dtype, shape: h.shape, start: base + a }));
    }
    Ok(out)
}

/// Plain-old-data element types the file holds.
trait Pod: Copy + Default {}
impl Pod for f32 {}
impl Pod for f16 {}
impl Pod for bf16 {}

/// `n` elements of the file's own dtype, read straight into the vector that will own them.
/// `n` f16 values on huge pages where the weights' arena takes them (`huge_arena`): f16 is read
/// only for a model kept in f16, so the buffer is the weight's final form. (f32 is also read to be
/// quantized, a temporary that must not pin the arena.)
fn weight_vec(n: usize) -> Vec<f16> {
    super::huge_arena::filled_vec(n, f16::ZERO)
}

/// `v` filled from `f` at `start` (as many elements as it holds).
fn read_exact<T: Pod>(f: &File, start: u64, mut v: Vec<T>) -> std::io::Result<Vec<T>> {
    let n = v.len();
    // SAFETY: T is f32, f16 or bf16: every bit pattern is a valid value, and the byte view covers
    // exactly the vector's initialised elements. safetensors stores little-endian, as is x86/arm64.
    let bytes = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, n * std::mem::size_of::<T>()) };
    f.read_exact_at(bytes, start)?;
    Ok(v)
}

/// `n` elements stored as `src`, converted to `T` through f32 in chunks of 1 MiB, into `out`
/// (cleared first; made with room for `n`, so its buffer is the one it came with).
fn read_converted<T: Pod>(
    f: &File,
    start: u64,
    n: usize,
    src: DType,
    conv: impl Fn(f32) -> T,
    mut out: Vec<T>,
) -> std::io::Result<Vec<T>> {
    const CHUNK: usize = 1 << 18;
    let es = src.size_in_bytes();
    out.clear();
    out.reserve_exact(n);
    let mut buf = vec![0u8; CHUNK * es];
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        let b = &mut buf[..k * es];
        f.read_exact_at(b, start + (done * es) as u64)?;
        match src {
            DType::F32 => out.extend(b.chunks_exact(4).map(|c| conv(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))),
            DType::F16 => out.extend(b.chunks_exact(2).map(|c| conv(f16::from_le_bytes([c[0], c[1]]).to_f32()))),
            _ => out.extend(b.chunks_exact(2).map(|c| conv(bf16::from_le_bytes([c[0], c[1]]).to_f32()))),
        }
        done += k;
    }
    Ok(out)
}

/// Whether `path` names a readable safetensors file (used in tests).
pub fn is_readable(path: &Path) -> bool {
    SafetensorsReader::open(&[path.to_path_buf()]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_candle_wrote_in_every_dtype() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let dev = Device::Cpu;
        let a = Tensor::arange(0f32, 12., &dev).unwrap().reshape((3, 4)).unwrap();
        let mut m = HashMap::new();
        m.insert("a".to_string(), a.clone());
        m.insert("h".to_string(), a.to_dtype(DType::F16).unwrap());
        m.insert("b".to_string(), a.to_dtype(DType::BF16).unwrap());
        candle_core::safetensors::save(&m, &p).unwrap();
        let r = SafetensorsReader::open(std::slice::from_ref(&p)).unwrap();
        for name in ["a", "h", "b"] {
            for dt in [DType::F32, DType::F16] {
                let t = r.get(Shape::from((3, 4)), name, candle_nn::Init::Const(0.), dt, &dev).unwrap();
                assert_eq!(t.dtype(), dt);
                assert_eq!(t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(), a.to_vec2::<f32>().unwrap());
            }
        }
        // Rows 1..3, from f32 and converted from f16; ranges past the end or of a 1-D tensor are absent.
        let rows = super::super::row_range::name;
        for name in ["a", "h"] {
            let t =
                r.get(Shape::from((2, 4)), &rows(name, 1, 2), candle_nn::Init::Const(0.), DType::F32, &dev).unwrap();
            assert_eq!(t.to_vec2::<f32>().unwrap(), a.narrow(0, 1, 2).unwrap().to_vec2::<f32>().unwrap());
        }
        assert!(r.contains_tensor(&rows("a", 2, 1)));
        assert!(!r.contains_tensor(&rows("a", 2, 2)));
        assert!(!r.contains_tensor(&rows("zz", 0, 1)));
        let e = r.get(Shape::from((4, 3)), "a", candle_nn::Init::Const(0.), DType::F32, &dev).unwrap_err().to_string();
        assert!(e.contains("shape mismatch for a"), "{e}");
        assert!(r.get(Shape::from(1), "zz", candle_nn::Init::Const(0.), DType::F32, &dev).is_err());
        assert!(is_readable(&p));
        std::fs::write(&p, b"\x10\0\0\0\0\0\0\0{}").unwrap();
        assert!(!is_readable(&p));
    }

    #[test]
    fn f16_matrices_are_read_onto_the_weights_arena_and_f32_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let dev = Device::Cpu;
        // 128 KiB in f16: a size the arena takes.
        let a = Tensor::arange(0f32, 256. * 256., &dev).unwrap().reshape((256, 256)).unwrap();
        let mut m = HashMap::new();
        m.insert("f32".to_string(), a.clone());
        m.insert("f16".to_string(), a.to_dtype(DType::F16).unwrap());
        candle_core::safetensors::save(&m, &p).unwrap();
        let r = SafetensorsReader::open(std::slice::from_ref(&p)).unwrap();
        let on_arena = |t: &Tensor| {
            let (s, l) = t.storage_and_layout();
            let p = match &*s {
                candle_core::Storage::Cpu(candle_core::CpuStorage::F16(v)) => {
                    v[l.start_offset()..].as_ptr() as *const u8
                }
                candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)) => {
                    v[l.start_offset()..].as_ptr() as *const u8
                }
                _ => panic!("unexpected storage"),
            };
            super::super::huge_arena::holds_weight(p, t.elem_count() * t.dtype().size_in_bytes())
        };
        let get = |name: &str, dt| r.get(Shape::from((256, 256)), name, candle_nn::Init::Const(0.), dt, &dev).unwrap();
        // As stored, and converted from f32: the model is kept in f16, so the buffer is final.
        for name in ["f16", "f32"] {
            let t = get(name, DType::F16);
            assert!(on_arena(&t), "{name} read as f16");
            assert_eq!(
                t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(),
                a.to_dtype(DType::F16).unwrap().to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap()
            );
        }
        // f32 may be a temporary to quantize: never on the arena.
        for name in ["f16", "f32"] {
            assert!(!on_arena(&get(name, DType::F32)), "{name} read as f32");
        }
    }
}
