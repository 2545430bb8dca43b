//! `switchyard models profile --data FILE.npy`: the training data's profile for a manifest's
//! `[data_profile.INPUT]` table (per feature: range, mean, std, deciles), computed from a NumPy
//! `.npy` file of the training inputs (`float32` or `float64`, C order, `[rows, features]` or
//! `[rows]`).

use std::path::Path;

use anyhow::bail;

pub use crate::jobs::npy::read_npy;
use model_store::InputProfile;

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
