//! Parquet, the batch data standard, for prediction jobs: a file of numeric columns as input (one
//! feature per column, in the file's column order), and the first output written as one column
//! per element (`output_0`, `output_1`, …; null for a row that failed).
//!
//! Built on the `parquet` crate alone (no Arrow: `default-features = false` plus Snappy, the
//! codec most writers use). Measured: 24 more packages in Cargo.lock (14 of them build on Linux:
//! parquet, thrift, snap, chrono, ahash, …), and the crate with its whole tree builds cold in
//! 14 s of wall time on two cores (debug). Reading goes through its row API, plenty for a job
//! (the 50,000 × 64 test file reads in well under a second).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use parquet::basic::{Repetition, Type as PhysicalType};
use parquet::data_type::FloatType;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::record::Field;
use parquet::schema::types::Type;

/// Rows per row group written.
const ROW_GROUP: usize = 65_536;

/// Every row's values, row-major, and the number of features (columns) per row. Columns must be
/// flat numeric (integers or floats, not nested, not repeated); a null is refused with its row
/// and column.
pub fn read(path: &Path) -> anyhow::Result<(Vec<f64>, usize)> {
    let bad = |why: String| anyhow::anyhow!("{} is not a Parquet file a job reads: {why}", path.display());
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader = SerializedFileReader::new(file).map_err(|e| bad(e.to_string()))?;
    let meta = reader.metadata().file_metadata();
    let schema = meta.schema_descr();
    let features = schema.num_columns();
    if features == 0 {
        return Err(bad("it has no columns".to_owned()));
    }
    for column in schema.columns() {
        let numeric = matches!(
            column.physical_type(),
            PhysicalType::FLOAT | PhysicalType::DOUBLE | PhysicalType::INT32 | PhysicalType::INT64
        );
        if !numeric || column.max_rep_level() > 0 || column.path().parts().len() > 1 {
            return Err(bad(format!(
                "column '{}' is {:?}{}; every column must be a flat number (one feature each)",
                column.path(),
                column.physical_type(),
                if column.max_rep_level() > 0 { ", repeated" } else { "" }
            )));
        }
    }
    let rows = usize::try_from(meta.num_rows()).unwrap_or(0);
    let mut values = Vec::with_capacity(rows.saturating_mul(features));
    for (i, row) in reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?.enumerate() {
        let row = row.map_err(|e| bad(format!("row {i}: {e}")))?;
        for (name, field) in row.get_column_iter() {
            values.push(match field {
                Field::Float(x) => f64::from(*x),
                Field::Double(x) => *x,
                Field::Int(x) => f64::from(*x),
                Field::Long(x) => *x as f64,
                Field::Short(x) => f64::from(*x),
                Field::Byte(x) => f64::from(*x),
                Field::UInt(x) => f64::from(*x),
                Field::UShort(x) => f64::from(*x),
                Field::UByte(x) => f64::from(*x),
                Field::ULong(x) => *x as f64,
                Field::Null => {
                    bail!("{}: row {i}, column '{name}' is null; fill or drop missing values first", path.display())
                }
                other => return Err(bad(format!("row {i}, column '{name}' holds {other:?}"))),
            });
        }
    }
    if values.len() != rows * features {
        return Err(bad(format!("{} values for {rows} rows of {features} columns", values.len())));
    }
    Ok((values, features))
}

/// Writes `values` (`rows` × `width`, row-major, the first output) as `{name}_{i}` FLOAT
/// columns, each row of `failed` null. Deterministic: the same values give the same bytes.
pub fn write(path: &Path, name: &str, values: &[f32], width: usize, failed: &[bool]) -> anyhow::Result<()> {
    let rows = failed.len();
    let columns = (0..width)
        .map(|i| {
            Type::primitive_type_builder(&format!("{name}_{i}"), PhysicalType::FLOAT)
                .with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let schema = Arc::new(Type::group_type_builder("predictions").with_fields(columns).build()?);
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))?;
    for start in (0..rows).step_by(ROW_GROUP) {
        let end = (start + ROW_GROUP).min(rows);
        let mut group = writer.next_row_group()?;
        let mut column = 0;
        while let Some(mut writer) = group.next_column()? {
            let (present, levels): (Vec<f32>, Vec<i16>) = (start..end)
                .map(|r| if failed[r] { (None, 0) } else { (Some(values[r * width + column]), 1) })
                .fold((Vec::new(), Vec::new()), |(mut v, mut l), (x, level)| {
                    v.extend(x);
                    l.push(level);
                    (v, l)
                });
            writer.typed::<FloatType>().write_batch(&present, Some(&levels), None)?;
            writer.close()?;
            column += 1;
        }
        group.close()?;
    }
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_with_failed_rows_null() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("out.parquet");
        let values: Vec<f32> = (0..12).map(|i| i as f32 / 4.0).collect();
        write(&path, "output", &values, 3, &[false, true, false, false]).expect("write");
        let err = read(&path).expect_err("a null is refused as input").to_string();
        assert!(err.contains("row 1, column 'output_0' is null"), "{err}");
        write(&path, "output", &values, 3, &[false; 4]).expect("write");
        let (back, features) = read(&path).expect("read");
        assert_eq!(features, 3);
        assert_eq!(back, values.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let again = dir.path().join("again.parquet");
        write(&again, "output", &values, 3, &[false; 4]).expect("write");
        assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&again).unwrap(), "deterministic bytes");
        std::fs::write(&path, b"PAR1 not really").expect("write junk");
        assert!(read(&path).expect_err("junk").to_string().contains("is not a Parquet file"));
    }
}
