//! HdrHistogram interval logs (`.hlog`): one histogram per second per outcome class, in the
//! standard log format that `HistogramLogProcessor`, HdrHistogramVisualizer and the crate's own
//! `IntervalLogIterator` read.
//!
//! Each interval holds the answers that *arrived* in that second after doors open, recorded in
//! µs; `BaseTime` and `StartTime` are the wall-clock instant of doors open, so the interval
//! timestamps are seconds since doors open, and the max column is in ms (`MaxValueDivisor`
//! 1000), like the `.hgrm` files.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};

use super::timeline::{SECOND_US, second_of, seconds_spanned};
use crate::history::Attempt;
use crate::latency::{LatencyClass, new_histogram, record};

/// Which latency an interval log holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// From the intended send: what a shopper waited (coordinated-omission corrected).
    FromIntended,
    /// From the actual send: what the server cost.
    FromSend,
}

impl Family {
    fn latency_us(self, attempt: &Attempt) -> u64 {
        match self {
            Family::FromIntended => attempt.response_latency_us(),
            Family::FromSend => attempt.service_latency_us(),
        }
    }

    /// The file name suffix, matching the `.hgrm` files.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::FromIntended => "",
            Family::FromSend => ".from-send",
        }
    }
}

/// Writes `latency-<class><suffix>.hlog` for one class; returns false (and writes nothing) when
/// the class has no answers. `doors_open_at` is the wall-clock instant of doors open.
pub fn write(
    dir: &Path,
    history: &[Attempt],
    class: LatencyClass,
    family: Family,
    doors_open_us: u64,
    doors_open_at: SystemTime,
) -> io::Result<bool> {
    let of_class: Vec<&Attempt> = history
        .iter()
        .filter(|a| class == LatencyClass::All || LatencyClass::of(a) == class)
        .collect();
    if of_class.is_empty() {
        return Ok(false);
    }
    let seconds = seconds_spanned(history, doors_open_us) as usize;
    let mut intervals: Vec<Histogram<u64>> = (0..seconds).map(|_| new_histogram()).collect();
    for attempt in of_class {
        let second = second_of(attempt.completed_us, doors_open_us) as usize;
        record(&mut intervals[second], family.latency_us(attempt));
    }

    let path = dir.join(format!(
        "latency-{}{}.hlog",
        class.as_str(),
        family.suffix()
    ));
    let mut file = BufWriter::new(File::create(path)?);
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut log = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "flashsale latency of {} answers {}, µs recorded, one interval per second after doors open",
                class.as_str(),
                match family {
                    Family::FromIntended => "from the intended send",
                    Family::FromSend => "from the actual send",
                }
            ))
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(doors_open_at)
            .with_base_time(doors_open_at)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut file, &mut serializer)?;
        let tag = Tag::new(class.as_str());
        for (second, h) in intervals.iter().enumerate() {
            log.write_histogram(
                h,
                Duration::from_micros(second as u64 * SECOND_US),
                Duration::from_micros(SECOND_US),
                tag,
            )
            .map_err(|e| io::Error::other(e.to_string()))?;
        }
    }
    file.flush()?;
    Ok(true)
}

/// Writes every class's interval logs of `history` in both families (the classes without
/// answers get no file); what [`super::write_all`] writes, and what a shard writes so a merge can
/// add its histograms to the other shards'.
pub fn write_every_class(
    dir: &Path,
    history: &[Attempt],
    doors_open_us: u64,
    doors_open_at: SystemTime,
) -> io::Result<()> {
    for class in LatencyClass::ALL {
        for family in [Family::FromIntended, Family::FromSend] {
            write(dir, history, class, family, doors_open_us, doors_open_at)?;
        }
    }
    Ok(())
}

/// The whole distribution of one `.hlog` file: every interval's histogram added into one.
/// HdrHistograms add exactly, so the total of several generators' logs is the histogram of
/// their attempts taken together. `None` when the file does not exist.
pub fn read_total(path: &Path) -> io::Result<Option<Histogram<u64>>> {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let mut total = crate::latency::new_histogram();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let LogEntry::Interval(interval) = entry.map_err(|e| bad(format!("{e:?}")))? else {
            continue;
        };
        let encoded =
            <base64ct::Base64 as base64ct::Encoding>::decode_vec(interval.encoded_histogram())
                .map_err(|e| bad(format!("an interval is not base64: {e}")))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut encoded.as_slice())
            .map_err(|e| bad(format!("an interval does not decode: {e:?}")))?;
        total
            .add(&h)
            .map_err(|e| bad(format!("an interval does not add: {e:?}")))?;
    }
    Ok(Some(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Outcome;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    fn answer(outcome: Outcome, intended_us: u64, sent_us: u64, completed_us: u64) -> Attempt {
        Attempt {
            seq: 0,
            buyer: "b".into(),
            idempotency_key: format!("k{completed_us}"),
            quantity: 1,
            try_number: 0,
            intended_us,
            sent_us,
            completed_us,
            outcome,
            status: None,
            code: None,
            order_id: None,
        }
    }

    #[test]
    fn writes_one_interval_per_second_that_reads_back_with_the_crate_iterator() {
        let tmp = tempfile::tempdir().unwrap();
        let open = 100_000;
        let history = vec![
            answer(Outcome::Ok, open, open, open + 2_000),
            answer(Outcome::Ok, open, open + 900_000, open + 950_000),
            // Nothing in second 1; second 2 holds one slow ok queued for 1.5 s.
            answer(
                Outcome::Ok,
                open + 500_000,
                open + 2_000_000,
                open + 2_010_000,
            ),
            answer(Outcome::Unknown, open, open, open + 2_500_000),
        ];
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for family in [Family::FromIntended, Family::FromSend] {
            assert!(write(tmp.path(), &history, LatencyClass::Ok, family, open, wall).unwrap());
        }
        assert!(
            !write(
                tmp.path(),
                &history,
                LatencyClass::SoldOut,
                Family::FromIntended,
                open,
                wall
            )
            .unwrap()
        );
        assert!(!tmp.path().join("latency-sold_out.hlog").exists());

        let read = |name: &str| -> Vec<(u64, Histogram<u64>)> {
            let bytes = std::fs::read(tmp.path().join(name)).unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains("#[StartTime: 1800000000.000"), "{text}");
            assert!(text.contains("#[BaseTime: 1800000000.000"), "{text}");
            let mut deserializer = Deserializer::new();
            IntervalLogIterator::new(&bytes)
                .filter_map(|entry| match entry.unwrap() {
                    LogEntry::Interval(interval) => Some(interval),
                    _ => None,
                })
                .map(|interval| {
                    assert_eq!(interval.tag().unwrap().as_str(), "ok");
                    assert_eq!(interval.duration(), Duration::from_secs(1));
                    let decoded = base64_decode(interval.encoded_histogram());
                    let h: Histogram<u64> =
                        deserializer.deserialize(&mut decoded.as_slice()).unwrap();
                    (interval.start_timestamp().as_secs(), h)
                })
                .collect()
        };
        let intended = read("latency-ok.hlog");
        let seconds: Vec<(u64, u64)> = intended.iter().map(|(s, h)| (*s, h.len())).collect();
        assert_eq!(seconds, [(0, 2), (1, 0), (2, 1)]);
        assert!((1_509_000..1_512_000).contains(&intended[2].1.max()));
        let from_send = read("latency-ok.from-send.hlog");
        assert!((10_000..10_020).contains(&from_send[2].1.max()));
    }

    /// Standard base64, as the interval log encodes histograms; decoded here rather than adding
    /// a dependency the harness itself does not need.
    fn base64_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let mut buffer = 0u32;
        let mut bits = 0;
        for byte in text.bytes().filter(|b| *b != b'=') {
            let value = ALPHABET.iter().position(|c| *c == byte).unwrap() as u32;
            buffer = (buffer << 6) | value;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        out
    }
}
