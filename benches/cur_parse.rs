//! CUR 2.0 parser benchmark (harness = false).
//!
//! `cargo bench --bench cur_parse -- generate FILE MB` writes a gzipped CUR 2.0 CSV of about MB
//! megabytes uncompressed (real column set, 1 000 purchases over a month, 60 % of rows tagged, credits);
//! `cargo bench --bench cur_parse -- parse FILE` streams it through the import's parser and prints the
//! throughput. `scripts/bench-cur-parse.sh` runs both at 100 MB and 1 GB next to `gzip -dc` and reports
//! peak RSS. Without arguments it runs a quick 20 MB round in `target/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::Instant;

use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use vendor_server::billing::cur::{ParseOptions, parse_local_part};
use vendor_server::billing::cur_sample::{SampleRow, SampleWriter};

/// Counts bytes written.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn generate(path: &str, megabytes: u64) {
    let target = megabytes * 1_000_000;
    let gz = GzEncoder::new(
        BufWriter::with_capacity(1 << 20, File::create(path).unwrap()),
        Compression::default(),
    );
    let mut out = SampleWriter::new(
        Counting {
            inner: gz,
            written: 0,
        },
        false,
        &[],
    )
    .unwrap();
    let purchases: Vec<String> = (0..1000u32)
        .map(|i| {
            format!(
                "CustomerPurchaseID_{:08x}-0000-4000-8000-{:012x}",
                i,
                u64::from(i) * 7919
            )
        })
        .collect();
    let buckets: Vec<String> = (0..1000u32).map(|i| format!("officex-{i:06}")).collect();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut rows = 0u64;
    loop {
        for _ in 0..1000 {
            let r = next();
            let day = NaiveDate::from_ymd_opt(2026, 3, 1 + (r % 31) as u32).unwrap();
            let p = ((r >> 8) % 1000) as usize;
            let tagged = (r >> 20) % 10 < 6;
            let credit = (r >> 24) % 100 == 0;
            let micro = (r >> 32) % 10_000_000_000;
            let cost = format!("{}0.{micro:010}", if credit { "-" } else { "" });
            let usage = format!("{}.{:06}", (r >> 40) % 1000, (r >> 12) % 1_000_000);
            out.write(&SampleRow {
                usage_day: day,
                cost: &cost,
                tag: tagged.then(|| purchases[p].as_str()),
                usage_amount: &usage,
                pricing_unit: if r & 1 == 0 { "GB-Mo" } else { "Requests" },
                line_item_type: if credit { "Credit" } else { "Usage" },
                resource_id: &buckets[p],
            })
            .unwrap();
            rows += 1;
        }
        // The csv writer buffers 64 KiB; close enough for sizing.
        if out.get_ref().written >= target {
            break;
        }
    }
    let counting = out.finish().unwrap();
    let uncompressed = counting.written;
    counting.inner.finish().unwrap().flush().unwrap();
    let compressed = std::fs::metadata(path).unwrap().len();
    println!(
        "generated {path}: {rows} rows, {uncompressed} bytes uncompressed, {compressed} bytes gzipped"
    );
}

fn parse(path: &str) {
    let compressed = std::fs::metadata(path).unwrap().len();
    // Uncompressed size (not timed as the parse; also gives Rust's own gunzip-only speed).
    let started = Instant::now();
    let mut gz = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
        1 << 20,
        File::open(path).unwrap(),
    ));
    let mut buf = vec![0u8; 1 << 20];
    let mut uncompressed = 0u64;
    loop {
        let n = gz.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        uncompressed += n as u64;
    }
    let gunzip_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let file = BufReader::with_capacity(1 << 20, File::open(path).unwrap());
    let (totals, stats) = parse_local_part(file, &ParseOptions::default()).unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(stats.error_rows, 0, "{:?}", stats.errors);
    let mb = uncompressed as f64 / 1e6;
    println!(
        "parsed {path}: {} rows ({} untagged), {} (tag, day) keys, {:.1} MB uncompressed ({:.1} MB gzipped)",
        stats.rows_read,
        stats.untagged_rows,
        totals.keys(),
        mb,
        compressed as f64 / 1e6
    );
    println!(
        "import parse: {secs:.2} s = {:.1} MB/s uncompressed; flate2 gunzip alone: {gunzip_secs:.2} s = {:.1} MB/s",
        mb / secs,
        mb / gunzip_secs
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    // Test runners list tests first (`--list`): this target has none to list.
    if all.iter().any(|a| a == "--list") {
        return;
    }
    let bench = all.iter().any(|a| a == "--bench");
    let args: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        ["generate", path, mb] => generate(path, mb.parse().expect("MB")),
        ["parse", path] => parse(path),
        [] if bench => {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/cur-bench-20MB.csv.gz");
            if !std::path::Path::new(path).exists() {
                generate(path, 20);
            }
            parse(path);
        }
        // `cargo test --all-targets`: a 1 MB smoke round.
        [] => {
            let path =
                std::env::temp_dir().join(format!("cur-bench-smoke-{}.csv.gz", std::process::id()));
            let path = path.to_str().unwrap();
            generate(path, 1);
            parse(path);
            std::fs::remove_file(path).unwrap();
        }
        _ => {
            eprintln!("usage: cur_parse generate FILE MB | cur_parse parse FILE");
            std::process::exit(2);
        }
    }
}
