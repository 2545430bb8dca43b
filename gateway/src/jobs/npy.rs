//! NumPy `.npy` files: what prediction jobs and `models profile` read (float32 or float64, C
//! order, `[rows, features]` or `[rows]`) and what jobs write (a float32 `[rows, n]` array).

use std::path::Path;

use anyhow::Context;

/// The `.npy` file's values, row-major, and its number of features per row.
pub fn read_npy(path: &Path) -> anyhow::Result<(Vec<f64>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes, &path.display().to_string())
}

/// An `.npy` file's bytes (`what` names it in errors): its values, row-major, and its number of
/// features per row.
pub fn parse(bytes: &[u8], what: &str) -> anyhow::Result<(Vec<f64>, usize)> {
    let bad = |why: &str| anyhow::anyhow!("{what} is not a NumPy .npy file this command reads: {why}");
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(bad(&format!("format version {v}"))),
    };
    let header = std::str::from_utf8(bytes.get(start..start + header_len).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[at..].trim_start())
    };
    let descr = field("descr").and_then(|d| d.strip_prefix('\'')).and_then(|d| d.split('\'').next()).unwrap_or("");
    let size = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => return Err(bad(&format!("dtype {other:?}; float32 or float64 (little-endian) only"))),
    };
    if field("fortran_order").is_some_and(|f| f.starts_with("True")) {
        return Err(bad("Fortran order; save it with np.ascontiguousarray"));
    }
    let shape_text = field("shape").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split(')').next()).unwrap_or("");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("shape"))?;
    let (rows, features) = match shape.as_slice() {
        [r] => (*r, 1),
        [r, f] if *f > 0 => (*r, *f),
        _ => return Err(bad(&format!("shape {shape:?}; [rows] or [rows, features]"))),
    };
    let data = &bytes[start + header_len..];
    let n = rows.checked_mul(features).ok_or_else(|| bad("shape too large"))?;
    if data.len() != n * size {
        return Err(bad(&format!("{} data bytes for shape {shape:?}", data.len())));
    }
    let values = data
        .chunks_exact(size)
        .map(|c| {
            if size == 4 {
                f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            } else {
                f64::from_le_bytes(c.try_into().expect("8 bytes"))
            }
        })
        .collect();
    Ok((values, features))
}

/// A version 1.0 `.npy` header for a float32 C-order `[rows, width]` array.
pub fn header(rows: usize, width: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {width}), }}");
    // Magic (6) + version (2) + length (2) + dict, padded with spaces to a multiple of 64, ending in \n.
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let padded = format!("{dict:<width$}\n", width = total - 10 - 1);
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend(u16::try_from(padded.len()).unwrap_or(u16::MAX).to_le_bytes());
    h.extend(padded.as_bytes());
    h
}

/// The arrays of an `.npz` archive (`np.savez`, stored, or `np.savez_compressed`, deflated): the
/// one it holds, or the one named `prefer` (`prefer.npy` in the archive) when it holds several.
pub fn read_npz(path: &Path, prefer: &str) -> anyhow::Result<(Vec<f64>, usize)> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| anyhow::anyhow!("{} is not a NumPy .npz archive: {e}", path.display()))?;
    let names: Vec<String> = archive.file_names().filter(|n| n.ends_with(".npy")).map(str::to_owned).collect();
    let wanted = format!("{prefer}.npy");
    let name = match names.as_slice() {
        [one] => one.clone(),
        _ if names.contains(&wanted) => wanted,
        _ => anyhow::bail!(
            "{} holds {} arrays ({}); with several, one must be named after the model's input ('{prefer}')",
            path.display(),
            names.len(),
            names.iter().map(|n| n.trim_end_matches(".npy")).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut entry = archive.by_name(&name).map_err(|e| anyhow::anyhow!("{}: {name}: {e}", path.display()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0).min(1 << 32));
    entry.read_to_end(&mut bytes).with_context(|| format!("{}: cannot read {name}", path.display()))?;
    parse(&bytes, &format!("{} ({name})", path.display()))
}

/// Writes `npy` (an `.npy` file's bytes) into a new `.npz` archive as `name.npy`, stored (as
/// `np.savez` does), with a fixed timestamp: the same array gives the same bytes.
pub fn write_npz(path: &Path, name: &str, npy: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut archive = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default())
        .large_file(npy.len() as u64 >= u64::from(u32::MAX));
    archive.start_file(format!("{name}.npy"), options)?;
    archive.write_all(npy)?;
    archive.finish()?.sync_all()?;
    Ok(())
}
