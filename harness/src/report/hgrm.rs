//! The HdrHistogram percentile-distribution text format (`.hgrm`) that standard HdrHistogram
//! plotters read.

use std::io::{self, Write};

use hdrhistogram::Histogram;

/// Percentile ticks per half distance, as in `outputPercentileDistribution(out, 5, …)`.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Values are recorded in microseconds and written in milliseconds, as plotters expect.
pub const OUTPUT_SCALING_RATIO: f64 = 1000.0;

/// Writes `h` the way Java's `AbstractHistogram.outputPercentileDistribution(out, ticks,
/// scaling)` does, byte for byte in layout, so existing `.hgrm` plotters read it.
pub fn write_percentile_distribution<W: Write>(
    h: &Histogram<u64>,
    out: &mut W,
    ticks_per_half_distance: u32,
    scaling_ratio: f64,
) -> io::Result<()> {
    let digits = usize::from(h.sigfig());
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    for v in h.iter_quantiles(ticks_per_half_distance) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / scaling_ratio;
        let quantile = v.quantile_iterated_to();
        if quantile < 1.0 {
            writeln!(
                out,
                "{value:12.digits$} {quantile:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - quantile)
            )?;
        } else {
            writeln!(out, "{value:12.digits$} {quantile:2.12} {total:10}")?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        h.mean() / scaling_ratio,
        h.stdev() / scaling_ratio
    )?;
    writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        h.max() as f64 / scaling_ratio,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h.sigfig())
    )
}

/// The per-bucket resolution HdrHistogram derives from its precision (2048 for 3 digits). The
/// crate keeps it private, so it is recomputed with the same rule for the footer.
fn sub_bucket_count(sigfig: u8) -> u32 {
    (2 * 10u32.pow(u32::from(sigfig))).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::latency::new_histogram;
    use crate::report::fixtures::*;

    /// The data rows of an `.hgrm` text: (value, percentile, total count).
    fn rows(text: &str) -> Vec<(f64, f64, u64)> {
        text.lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (
                    cols[0].parse().unwrap(),
                    cols[1].parse().unwrap(),
                    cols[2].parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn writes_the_java_percentile_distribution_layout() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us * 10).unwrap();
        }
        let mut out = Vec::new();
        write_percentile_distribution(&h, &mut out, 5, OUTPUT_SCALING_RATIO).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));

        let rows = rows(&text);
        assert!(rows.len() > 20, "{text}");
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2)
        );
        let last = rows.last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, 10_000);
        assert!(
            (last.0 - 100.0).abs() < 0.1,
            "max is 100 ms, got {}",
            last.0
        );
        // The first row is the median-ish lowest tick: 0.1 ms recorded as the smallest value.
        assert!((rows[0].0 - 0.01).abs() < 0.001, "{}", rows[0].0);

        let footer: Vec<&str> = text.lines().filter(|l| l.starts_with("#[")).collect();
        assert_eq!(footer.len(), 3, "{text}");
        let mean: f64 = footer[0]["#[Mean    =".len()..]
            .split(',')
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!((mean - 50.005).abs() < 0.05, "{}", footer[0]);
        assert!(
            footer[0].contains(", StdDeviation   =       28.8"),
            "{}",
            footer[0]
        );
        assert!(
            footer[1].ends_with("Total count    =        10000]"),
            "{}",
            footer[1]
        );
        assert!(
            footer[2].ends_with("SubBuckets     =         2048]"),
            "{}",
            footer[2]
        );
    }

    #[test]
    fn written_hgrm_parses_back() {
        let tmp = tempfile::tempdir().unwrap();
        let r = run(false);
        write(&r, tmp.path());
        let text = fs::read_to_string(tmp.path().join("latency-all.hgrm")).unwrap();
        let rows = rows(&text);
        assert!(!rows.is_empty(), "{text}");
        assert!(
            rows.windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        let last = rows.last().unwrap();
        assert_eq!(last.1, 1.0);
        assert_eq!(last.2, 6);
        // The slowest response, 9.5 ms from the intended send, within 3 significant digits.
        assert!((last.0 - 9.5).abs() < 0.01, "{}", last.0);
        assert!(text.contains("Total count    =            6]"), "{text}");
    }
}
