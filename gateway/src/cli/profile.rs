//! `switchyard models profile --data FILE.npy`: the training data's profile for a manifest's
//! `[data_profile.INPUT]` table (per feature: range, mean, std, deciles), computed from a NumPy
//! `.npy` file of the training inputs (`float32` or `float64`, C order, `[rows, features]` or
//! `[rows]`).

use std::path::Path;

use anyhow::{Context, bail};
use model_store::InputProfile;

/// The `.npy` file's values, row-major, and its number of features per row.
pub fn read_npy(path: &Path) -> anyhow::Result<(Vec<f64>, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bad = |why: &str| anyhow::anyhow!("{} is not a NumPy .npy file this command reads: {why}", path.display());
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

/// The profile of row-major `values` with `features` per row.
pub fn profile(values: &[f64], features: usize) -> anyhow::Result<InputProfile> {
    let rows = values.len() / features;
    if rows == 0 {
        bail!("no rows to profile");
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!("row {} feature {} is not a finite number", i / features, i % features);
    }
    let mut p = InputProfile { rows: rows as u64, ..InputProfile::default() };
    for f in 0..features {
        let mut column: Vec<f64> = values.iter().skip(f).step_by(features).copied().collect();
        column.sort_by(f64::total_cmp);
        let mean = column.iter().sum::<f64>() / rows as f64;
        let var = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / rows as f64;
        p.min.push(column[0]);
        p.max.push(column[rows - 1]);
        p.mean.push(mean);
        p.std.push(var.sqrt());
        // The k-th decile: the value below which k tenths of the rows lie (nearest rank).
        p.deciles.push((1..10).map(|k| column[((k * rows).div_ceil(10)).saturating_sub(1).min(rows - 1)]).collect());
    }
    Ok(p)
}

/// `models profile`: prints `[data_profile.INPUT]` as TOML (or the profile as JSON).
pub fn run(data: &Path, input: &str, json: bool) -> anyhow::Result<i32> {
    let (values, features) = read_npy(data)?;
    let p = profile(&values, features)?;
    if json {
        out!("{}", serde_json::to_string(&p)?);
    } else {
        let mut table = toml::Table::new();
        table.insert(input.to_owned(), toml::Value::try_from(&p)?);
        let mut outer = toml::Table::new();
        outer.insert("data_profile".to_owned(), toml::Value::Table(table));
        out!("# {} rows, {features} features, from {}; paste into the version's manifest", p.rows, data.display());
        out!("{}", toml::to_string(&outer)?);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_files_are_read_and_profiled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.npy");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2), }";
        let padded = format!("{header:<117}\n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for i in 0..100 {
            bytes.extend((i as f32).to_le_bytes());
            bytes.extend((1.0f32).to_le_bytes());
        }
        std::fs::write(&path, &bytes).expect("write");
        let (values, features) = read_npy(&path).expect("read");
        assert_eq!((values.len(), features), (200, 2));
        let p = profile(&values, features).expect("profile");
        assert_eq!((p.min[0], p.max[0], p.rows), (0.0, 99.0, 100));
        assert_eq!(p.deciles[0][0], 9.0, "a tenth of 0..100 lies at or below 9");
        assert_eq!(p.deciles[0][8], 89.0);
        assert_eq!((p.std[1], p.mean[1]), (0.0, 1.0));
        assert!(p.problem().is_none());
        std::fs::write(&path, b"not numpy").expect("write");
        assert!(read_npy(&path).unwrap_err().to_string().contains("no \\x93NUMPY magic"));
    }
}
