//! S3 access-log metering benchmark (harness = false).
//!
//! `cargo bench --bench s3_metering -- generate FILE REQUESTS` writes one hour of server access logs
//! in AWS's format: REQUESTS lines over 1 000 buckets (GET 70 %, HEAD 5 %, PUT 15 %, LIST 5 %,
//! DELETE 4 %, a 403 1 %, real-length owner ids, user agents and host ids).
//! `cargo bench --bench s3_metering -- parse FILE` streams it through the metering job's own reader
//! ([`vendor_server::billing::s3_usage::sum_log`]: line by line, (purchase, hour) sums) and prints lines
//! per second. `scripts/bench-s3-metering.sh` runs both for 1 million requests and reports peak RSS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Instant;

use vendor_server::billing::s3_usage::sum_log;

const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";

fn generate(path: &str, requests: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..requests {
        let r = next();
        let bucket = format!(
            "officex-customerpurchaseid-{:08x}-0000-4000-8000-{:012x}",
            r % 1000,
            r % 1000
        );
        let minute = (i * 60 / requests.max(1)) % 60;
        let second = r % 60;
        let (op, method, status, sent, size) = match r % 100 {
            0..70 => (
                "REST.GET.OBJECT",
                "GET",
                200,
                (r >> 20) % 10_000_000,
                "10000000".to_owned(),
            ),
            70..75 => ("REST.HEAD.OBJECT", "HEAD", 200, 0, "10000000".to_owned()),
            75..90 => (
                "REST.PUT.OBJECT",
                "PUT",
                200,
                0,
                ((r >> 20) % 1_000_000).to_string(),
            ),
            90..95 => ("REST.GET.BUCKET", "GET", 200, 4_000, "-".to_owned()),
            95..99 => ("REST.DELETE.OBJECT", "DELETE", 204, 0, "-".to_owned()),
            _ => ("REST.GET.OBJECT", "GET", 403, 243, "-".to_owned()),
        };
        let sent = if sent == 0 {
            "-".to_owned()
        } else {
            sent.to_string()
        };
        let error = if status == 403 { "AccessDenied" } else { "-" };
        writeln!(
            out,
            "{OWNER} {bucket} [07/Dec/2026:10:{minute:02}:{second:02} +0000] 192.0.2.{} {OWNER} {:016X} {op} photos/2026/{:06}.jpg \"{method} /{bucket}/photos/2026/{:06}.jpg HTTP/1.1\" {status} {error} {sent} {size} 70 10 \"-\" \"aws-sdk-js/3.600.0 ua/2.1 os/linux#6.1 lang/js md/nodejs#20.11.0 api/s3#3.600.0\" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 TLS_AES_128_GCM_SHA256 AuthHeader {bucket}.s3.us-east-1.amazonaws.com TLSv1.3 - -",
            r % 250,
            r,
            r % 1_000_000,
            r % 1_000_000,
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn parse(path: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let (totals, bytes) = runtime.block_on(async {
        let file = tokio::fs::File::open(path).await.unwrap();
        sum_log(tokio::io::BufReader::with_capacity(1 << 16, file))
            .await
            .unwrap()
    });
    let secs = started.elapsed().as_secs_f64();
    let hours: usize = totals.usage.values().map(|h| h.len()).sum();
    println!(
        "metering parse: {secs:.3} s, {} lines ({} malformed), {:.0} lines/s, {:.1} MB/s, {} buckets, {hours} (bucket, hour) sums",
        totals.lines,
        totals.malformed,
        totals.lines as f64 / secs,
        bytes as f64 / 1e6 / secs,
        totals.usage.len(),
    );
}

fn main() {
    // Test runners list tests first (`--list`): this target has none to list.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate", path, n] => generate(path, n.parse().unwrap()),
        ["parse", path] => parse(path),
        _ => {
            let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
            let path = format!("{dir}/s3-metering-quick.log");
            generate(&path, 100_000);
            parse(&path);
        }
    }
}
