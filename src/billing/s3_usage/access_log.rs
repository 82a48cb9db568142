//! AWS S3 server access log lines, as AWS documents them ("Amazon S3 server access log format"):
//! space-separated fields, some `"quoted"` (Request-URI, Referer, User-Agent), the time
//! `[06/Feb/2019:00:00:38 +0000]` in brackets, `-` for "none". AWS may append fields at the end, so
//! only the first 13 are required and the rest ignored:
//!
//! `owner bucket [time] ip requester request-id operation key "request-uri" status error-code
//! bytes-sent object-size …`
//!
//! Parsing borrows from the line (no allocation), so an hour of a busy bucket streams through in
//! bounded memory.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

/// How AWS prices a request (S3 pricing, "Requests & data retrievals").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestClass {
    /// GET, SELECT, HEAD, OPTIONS and every other request not listed below.
    Get,
    /// PUT, COPY, POST and LIST requests.
    Put,
    /// DELETE and multi-object delete (free), S3's own operations (lifecycle, replication, the
    /// per-key rows of a batch delete) and requests refused with 403 (AWS does not charge them).
    Free,
}

/// One parsed log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub bucket: &'a str,
    /// Start of the hour of the request (unix seconds, UTC).
    pub hour: i64,
    pub operation: &'a str,
    pub class: RequestClass,
    /// Bytes Sent of a GET or HEAD request (egress); 0 for any other request.
    pub egress_bytes: u64,
}

/// Why a line is not a log record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed access log line: {0}")]
pub struct Malformed(pub &'static str);

/// The fields a line must have (through Object Size).
const REQUIRED_FIELDS: usize = 13;

/// Splits the line into its fields (quoted and bracketed ones without their delimiters).
fn fields(line: &str) -> Result<([&str; REQUIRED_FIELDS], usize), Malformed> {
    let mut out = [""; REQUIRED_FIELDS];
    let mut n = 0;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && n < REQUIRED_FIELDS {
        match bytes[i] {
            b' ' => i += 1,
            b'"' => {
                // A quoted field ends at the next unescaped quote.
                let start = i + 1;
                let mut j = start;
                loop {
                    match bytes.get(j) {
                        None => return Err(Malformed("unterminated quoted field")),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                out[n] = line.get(start..j).ok_or(Malformed("bad quoted field"))?;
                n += 1;
                i = j + 1;
                if bytes.get(i).is_some_and(|b| *b != b' ') {
                    return Err(Malformed("text after a quoted field"));
                }
            }
            b'[' => {
                let start = i + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|b| *b == b']')
                    .ok_or(Malformed("unterminated bracketed field"))?;
                out[n] = line
                    .get(start..start + end)
                    .ok_or(Malformed("bad bracketed field"))?;
                n += 1;
                i = start + end + 1;
            }
            _ => {
                let start = i;
                let end = bytes[start..]
                    .iter()
                    .position(|b| *b == b' ')
                    .map_or(bytes.len(), |e| start + e);
                out[n] = &line[start..end];
                n += 1;
                i = end;
            }
        }
    }
    Ok((out, n))
}

/// `06/Feb/2019:00:00:38 +0000` → the start of its hour, unix seconds UTC.
fn hour_of(time: &str) -> Result<i64, Malformed> {
    let bad = Malformed("bad time");
    let b = time.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[20] != b' ' {
        return Err(bad);
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, Malformed> {
        let s = &b[range];
        if !s.iter().all(u8::is_ascii_digit) {
            return Err(Malformed("bad time"));
        }
        Ok(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let day = num(0..2)?;
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return Err(bad),
    };
    let year = i32::try_from(num(7..11)?).map_err(|_| Malformed("bad time"))?;
    let (hour, minute, second) = (num(12..14)?, num(15..17)?, num(18..20)?);
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad);
    }
    let sign: i64 = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad),
    };
    let offset = sign * i64::from(num(22..24)? * 3600 + num(24..26)? * 60);
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(Malformed("bad date"))?;
    let local = date
        .and_hms_opt(hour, minute, second.min(59))
        .ok_or(Malformed("bad time"))?
        .and_utc()
        .timestamp();
    let utc = local - offset;
    Ok(utc - utc.rem_euclid(3600))
}

/// How AWS prices `operation` (`REST.GET.OBJECT`, `REST.PUT.PART`, `S3.EXPIRE.OBJECT`, …).
pub fn classify(operation: &str) -> Result<(RequestClass, bool), Malformed> {
    let mut parts = operation.splitn(3, '.');
    let (Some(kind), Some(method), Some(resource)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("bad operation"));
    };
    if kind != "REST" && kind != "WEBSITE" {
        // S3's own work (lifecycle, replication, a batch delete's per-key rows): not requests.
        return Ok((RequestClass::Free, false));
    }
    Ok(match method {
        "GET" | "HEAD" => {
            let egress = true;
            if matches!(
                resource,
                "BUCKET" | "BUCKETVERSIONS" | "UPLOADS" | "UPLOAD" | "SERVICE"
            ) {
                (RequestClass::Put, egress)
            } else {
                (RequestClass::Get, egress)
            }
        }
        "DELETE" => (RequestClass::Free, false),
        "POST" if resource == "MULTI_OBJECT_DELETE" => (RequestClass::Free, false),
        "PUT" | "POST" | "COPY" => (RequestClass::Put, false),
        _ => (RequestClass::Get, false),
    })
}

/// Parses one line (without its line break).
pub fn parse_line(line: &str) -> Result<LogLine<'_>, Malformed> {
    let (f, n) = fields(line)?;
    if n < REQUIRED_FIELDS {
        return Err(Malformed("too few fields"));
    }
    let bucket = f[1];
    if bucket.is_empty() || bucket == "-" {
        return Err(Malformed("no bucket"));
    }
    let hour = hour_of(f[2])?;
    let operation = f[6];
    let (mut class, egress) = classify(operation)?;
    let status = f[9];
    if status.len() != 3 || !status.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed("bad HTTP status"));
    }
    let bytes_sent = match f[11] {
        "-" => 0,
        s => s.parse::<u64>().map_err(|_| Malformed("bad Bytes Sent"))?,
    };
    if f[12] != "-" && f[12].parse::<u64>().is_err() {
        return Err(Malformed("bad Object Size"));
    }
    if status == "403" {
        class = RequestClass::Free;
    }
    Ok(LogLine {
        bucket,
        hour,
        operation,
        class,
        egress_bytes: if egress && class != RequestClass::Free {
            bytes_sent
        } else {
            0
        },
    })
}

/// Usage counts of one bucket and hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourUsage {
    /// Every parsed line (free requests included).
    pub lines: u64,
    pub egress_bytes: u64,
    pub get_requests: u64,
    pub put_requests: u64,
}

/// What a set of log lines adds up to.
#[derive(Debug, Clone, Default)]
pub struct LogTotals {
    /// bucket → hour (unix seconds) → usage.
    pub usage: HashMap<String, HashMap<i64, HourUsage>>,
    pub lines: u64,
    pub malformed: u64,
    pub first_malformed: Option<String>,
}

impl LogTotals {
    /// Adds one line (counting it as malformed when it is).
    pub fn add_line(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return;
        }
        self.lines += 1;
        let parsed = match parse_line(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.malformed += 1;
                if self.first_malformed.is_none() {
                    self.first_malformed = Some(e.0.to_owned());
                }
                return;
            }
        };
        let hours = match self.usage.get_mut(parsed.bucket) {
            Some(hours) => hours,
            None => self.usage.entry(parsed.bucket.to_owned()).or_default(),
        };
        let u = hours.entry(parsed.hour).or_default();
        u.lines += 1;
        u.egress_bytes = u.egress_bytes.saturating_add(parsed.egress_bytes);
        match parsed.class {
            RequestClass::Get => u.get_requests += 1,
            RequestClass::Put => u.put_requests += 1,
            RequestClass::Free => {}
        }
    }
}

/// The hour (unix seconds) as a timestamp.
pub fn hour_timestamp(hour: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(hour, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // AWS's documented example lines.
    const GET: &str = r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be A1206F460EXAMPLE REST.GET.OBJECT photos/2019/08/puppy.jpg "GET /amzn-s3-demo-bucket1/photos/2019/08/puppy.jpg?x-foo=bar HTTP/1.1" 200 - 2662992 3462992 70 10 "-" "aws-cli/1.16.2 Python/3.6.5 Linux/4.14.77" - fVHqKzMBT0uEnHlGqJPi/pODRAFKykM2RaIbwuLTL5fz/hmVZ5XFKuU6hB1A14CE5VV8CkFy3bo= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 - -"#;
    const VERSIONING: &str = r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes"#;
    const PUT: &str = r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 [06/Feb/2019:00:01:57 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be DD6CC733AEXAMPLE REST.PUT.OBJECT s3-dg.pdf "PUT /amzn-s3-demo-bucket1/s3-dg.pdf HTTP/1.1" 200 - - 4406583 41754 28 "-" "S3Console/0.4" - 10S62Zv81kBW7BB6SX4XJ48o6kpcl6LPwEoizZQQxJd5qDSCTLX0TgS37kYUBKQW3+bPdrg1234= SigV4 ECDHE-RSA-AES128-SHA AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 - -"#;

    #[test]
    fn parses_aws_documented_lines() {
        let get = parse_line(GET).unwrap();
        assert_eq!(get.bucket, "amzn-s3-demo-bucket1");
        assert_eq!(get.operation, "REST.GET.OBJECT");
        assert_eq!(get.class, RequestClass::Get);
        assert_eq!(get.egress_bytes, 2_662_992);
        assert_eq!(
            hour_timestamp(get.hour).unwrap().to_rfc3339(),
            "2019-02-06T00:00:00+00:00"
        );
        let v = parse_line(VERSIONING).unwrap();
        assert_eq!((v.class, v.egress_bytes), (RequestClass::Get, 113));
        let put = parse_line(PUT).unwrap();
        assert_eq!((put.class, put.egress_bytes), (RequestClass::Put, 0));
    }

    #[test]
    fn classes_follow_aws_pricing() {
        let c = |op| classify(op).unwrap().0;
        assert_eq!(c("REST.GET.BUCKET"), RequestClass::Put); // ListObjects
        assert_eq!(c("REST.GET.BUCKETVERSIONS"), RequestClass::Put);
        assert_eq!(c("REST.HEAD.OBJECT"), RequestClass::Get);
        assert_eq!(c("REST.COPY.OBJECT"), RequestClass::Put);
        assert_eq!(c("REST.POST.UPLOADS"), RequestClass::Put);
        assert_eq!(c("REST.DELETE.OBJECT"), RequestClass::Free);
        assert_eq!(c("REST.POST.MULTI_OBJECT_DELETE"), RequestClass::Free);
        assert_eq!(c("BATCH.DELETE.OBJECT"), RequestClass::Free);
        assert_eq!(c("S3.EXPIRE.OBJECT"), RequestClass::Free);
        assert_eq!(c("REST.OPTIONS.PREFLIGHT"), RequestClass::Get);
        assert!(classify("GARBAGE").is_err());
    }

    #[test]
    fn quoted_fields_may_hold_spaces_and_escaped_quotes_and_offsets_convert() {
        let line = GET
            .replace(
                r#""aws-cli/1.16.2 Python/3.6.5 Linux/4.14.77""#,
                r#""Mozilla/5.0 (say \"hi\")""#,
            )
            .replace(
                "[06/Feb/2019:00:00:38 +0000]",
                "[06/Feb/2019:00:30:38 -0130]",
            );
        let parsed = parse_line(&line).unwrap();
        assert_eq!(
            hour_timestamp(parsed.hour).unwrap().to_rfc3339(),
            "2019-02-06T02:00:00+00:00"
        );
    }

    #[test]
    fn refused_and_malformed_lines() {
        let denied = GET.replace(" 200 - 2662992 ", " 403 AccessDenied 243 ");
        let d = parse_line(&denied).unwrap();
        assert_eq!((d.class, d.egress_bytes), (RequestClass::Free, 0));
        for bad in [
            "",
            "garbage",
            &GET[..120],
            &GET.replace(
                "[06/Feb/2019:00:00:38 +0000]",
                "[06/Fob/2019:00:00:38 +0000]",
            ),
            &GET.replace(" 2662992 ", " 12x "),
            &GET.replace(" 200 ", " OK "),
            &GET.replace("\"GET /amzn", "\"GET /amzn\"x"),
        ] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
        let mut totals = LogTotals::default();
        for line in [GET, "not a log line", PUT, VERSIONING, ""] {
            totals.add_line(line);
        }
        assert_eq!((totals.lines, totals.malformed), (4, 1));
        let hours = &totals.usage["amzn-s3-demo-bucket1"];
        let u = hours.values().next().unwrap();
        assert_eq!(
            *u,
            HourUsage {
                lines: 3,
                egress_bytes: 2_662_992 + 113,
                get_requests: 2,
                put_requests: 1
            }
        );
    }
}
